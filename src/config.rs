//! Every knob of the server: its default, its flag and its environment
//! variable (flags win over variables, variables over defaults). Sizes take
//! binary units (`64MiB`; see [`crate::units`]).
//!
//! The port and log variables keep the names of the original challenge's test
//! client (`eventListenerPort`, `clientListenerPort`, `logLevel`), so anyone
//! who ran it can run us the same way.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;

use crate::units::parse_bytes;

/// Parses a whole number of milliseconds into a `Duration`.
pub fn parse_millis(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("expected milliseconds as a whole number: {e}"))
}

/// Parses a keepalive interval: milliseconds, rounded up to whole seconds
/// (the kernel's unit), at least one second.
pub fn parse_probe_millis(text: &str) -> Result<Duration, String> {
    let millis = parse_millis(text)?.as_millis() as u64;
    Ok(Duration::from_secs(millis.div_ceil(1000).max(1)))
}

/// The server's configuration.
///
/// Build one with [`Config::default`] and change fields, or parse it from the
/// command line and environment with [`clap::Parser::parse`].
#[derive(Debug, Clone, Parser)]
#[command(
    name = "follower-maze",
    version,
    about = "Fans an out-of-order event stream out, in sequence order, to the TCP clients it concerns.",
    long_about = None
)]
pub struct Config {
    /// Address both listeners bind to (0.0.0.0 or :: for every interface),
    /// unless --event-bind or --client-bind says otherwise.
    #[arg(long, env = "FOLLOWER_MAZE_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Address the event source's listener binds to (default: --bind), so
    /// the event port can stay on loopback while clients come from a
    /// network.
    #[arg(long, env = "FOLLOWER_MAZE_EVENT_BIND")]
    pub event_bind: Option<IpAddr>,

    /// Address the clients' listener binds to (default: --bind).
    #[arg(long, env = "FOLLOWER_MAZE_CLIENT_BIND")]
    pub client_bind: Option<IpAddr>,

    /// Port for the event source (0 picks a free one).
    #[arg(long, env = "eventListenerPort", default_value_t = 9090)]
    pub event_port: u16,

    /// Port for user clients (0 picks a free one).
    #[arg(long, env = "clientListenerPort", default_value_t = 9099)]
    pub client_port: u16,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "logLevel", default_value = "info")]
    pub log_level: log::LevelFilter,

    /// Seqs the reorder window spans ahead of the next one (rounded up to a
    /// power of two); an event farther ahead makes the window give up on the
    /// missing seqs it would leave behind.
    #[arg(long, env = "FOLLOWER_MAZE_WINDOW", default_value_t = 1 << 20)]
    pub window_capacity: usize,

    /// Bytes the follower graph may take, estimated (about 138 bytes a
    /// follow between fresh ids, far less for users with many followers);
    /// past it a new follow is still delivered to the one followed but not
    /// recorded, and counted. Half of what a server fed fresh follows for
    /// ever may take in all, so it stays well under 256 MiB.
    #[arg(long, env = "FOLLOWER_MAZE_MAX_FOLLOW_BYTES", value_name = "SIZE", default_value = "128MiB", value_parser = parse_bytes::<usize>)]
    pub max_follow_bytes: usize,

    /// Bytes of out-of-order frames the window may hold; past it the oldest
    /// hole is skipped.
    #[arg(long, env = "FOLLOWER_MAZE_WINDOW_BYTES", value_name = "SIZE", default_value = "64MiB", value_parser = parse_bytes::<usize>)]
    pub window_bytes: usize,

    /// Milliseconds a missing seq may hold up the stream, with no progress,
    /// while the source keeps sending other lines, before it is skipped.
    /// Only the source's activity counts: a silence between two of its
    /// reads counts as 100 ms at most, so a source that pauses (a garbage
    /// collection, a descheduled process) may send the missing line after
    /// it. With no source connected the wait runs on the clock.
    #[arg(long = "hole-timeout-ms", env = "FOLLOWER_MAZE_HOLE_TIMEOUT_MS", default_value = "1000", value_parser = parse_millis)]
    pub hole_timeout: Duration,

    /// Milliseconds a connected source may stay silent while a missing seq
    /// holds up the stream before the seq is skipped anyway, so a hung
    /// source cannot hold back the events after it forever. Far above a
    /// garbage collector's pause (seconds at worst); below the original
    /// test client's 20 s read timeout, so when a source falls silent its
    /// clients still get the events after a lost seq; the same as the write
    /// deadline, the time a stuck client is given. (A source that keeps
    /// sending, however slowly, has each of its reads count 100 ms against
    /// the hole instead: ten reads at the default hole timeout.)
    #[arg(long = "hole-silence-ms", env = "FOLLOWER_MAZE_HOLE_SILENCE_MS", default_value = "10000", value_parser = parse_millis)]
    pub hole_silence: Duration,

    /// Milliseconds the event source may send nothing while another source
    /// waits to connect, before it is closed and the waiting one takes
    /// over, so a source that connects and says nothing (or hangs) cannot
    /// hold the event port forever. A lone source is never closed for
    /// idling: the original test client's source idles while its clients
    /// connect. Long enough for a source between two bursts, short enough
    /// that the waiting one (often a test suite's next case) is not kept
    /// long.
    #[arg(long = "source-idle-ms", env = "FOLLOWER_MAZE_SOURCE_IDLE_MS", default_value = "5000", value_parser = parse_millis)]
    pub source_idle: Duration,

    /// Longest accepted event line in bytes, terminator included; longer
    /// lines are dropped and counted as malformed.
    #[arg(long, env = "FOLLOWER_MAZE_MAX_LINE", value_name = "SIZE", default_value = "1KiB", value_parser = parse_bytes::<usize>)]
    pub max_line: usize,

    /// Longest accepted client id line in bytes, terminator included.
    #[arg(long, env = "FOLLOWER_MAZE_MAX_ID_LINE", value_name = "SIZE", default_value = "32B", value_parser = parse_bytes::<usize>)]
    pub max_id_line: usize,

    /// Milliseconds a new client may take to send its id before it is closed.
    #[arg(long = "id-timeout-ms", env = "FOLLOWER_MAZE_ID_TIMEOUT_MS", default_value = "2000", value_parser = parse_millis)]
    pub id_timeout: Duration,

    /// Milliseconds a client may owe bytes without any of them being
    /// written before it is cut as stuck. Shorter than the original test
    /// client's 20 s read timeout, so clients held up behind a stuck one
    /// (once it fills the output budget) still get their next line in time;
    /// long enough that a reader descheduled on a busy machine is not taken
    /// for stuck (NATS's write deadline is 10 s too).
    #[arg(long = "write-deadline-ms", env = "FOLLOWER_MAZE_WRITE_DEADLINE_MS", default_value = "10000", value_parser = parse_millis)]
    pub write_deadline: Duration,

    /// Milliseconds between TCP keepalive probes of a client whose sending
    /// side has ended (after its id, as `nc -N` does): it keeps receiving,
    /// but one that closed for good is only found out by a write, so if
    /// none comes, the probes end it once its side's lingering socket has
    /// expired (a reset answers them) or three go unanswered. Whole
    /// seconds; at least 1.
    #[arg(long = "read-closed-probe-ms", env = "FOLLOWER_MAZE_READ_CLOSED_PROBE_MS", default_value = "10000", value_parser = parse_probe_millis)]
    pub read_closed_probe: Duration,

    /// Milliseconds a client may lag the stream (the oldest byte it owes
    /// was routed that long ago) before it is cut, so a crawling reader
    /// cannot hold the source paused for everyone. Generous, so a reader
    /// merely slower than a flood catches up; below the original test
    /// client's 20 s read timeout, for the same reason as the write deadline.
    #[arg(long = "max-lag-ms", env = "FOLLOWER_MAZE_MAX_LAG_MS", default_value = "15000", value_parser = parse_millis)]
    pub max_lag: Duration,

    /// Bytes queued for one client alone (its own frames; broadcasts are
    /// held once in a shared log and count against --max-queued-bytes
    /// instead) past which it is cut (Redis's pub/sub hard limit is 32 MiB).
    /// A client that still reads and owes over half of it, broadcasts
    /// included, pauses the source until it catches up instead.
    #[arg(long, env = "FOLLOWER_MAZE_CLIENT_OUTPUT_LIMIT", value_name = "SIZE", default_value = "32MiB", value_parser = parse_bytes::<usize>)]
    pub client_output_limit: usize,

    /// Most registered clients at once (connections that have sent their
    /// id); a connection whose id arrives past it is closed at once.
    /// Connections still awaiting their id do not count: they have their
    /// own cap, --max-pending-clients.
    #[arg(long, env = "FOLLOWER_MAZE_MAX_CLIENTS", default_value_t = 10_000)]
    pub max_clients: usize,

    /// Most connections awaiting their id at once; when it is full, the
    /// oldest of them is closed to admit a new one, so connections that
    /// never send an id cannot lock real clients out. As large as the
    /// listen backlog: a burst of clients that connect first and send their
    /// ids a moment later fits.
    #[arg(
        long,
        env = "FOLLOWER_MAZE_MAX_PENDING_CLIENTS",
        default_value_t = 4096
    )]
    pub max_pending_clients: usize,

    /// Bytes held for all clients together (their own frames, plus each
    /// broadcast once however many clients owe it) past which the server
    /// stops reading the event source, until they drain to half: slow
    /// readers slow the source down instead of losing events.
    #[arg(long, env = "FOLLOWER_MAZE_MAX_QUEUED_BYTES", value_name = "SIZE", default_value = "256MiB", value_parser = parse_bytes::<usize>)]
    pub max_queued_bytes: usize,

    /// Length of each listener's accept queue: connections the kernel
    /// completes before the server accepts them. Large, because clients
    /// connect all at once (the original test client does) and a full queue
    /// makes them wait out SYN retransmits (1 s, 3 s...); the kernel caps it
    /// at net.core.somaxconn.
    #[arg(long, env = "FOLLOWER_MAZE_LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: i32,

    /// Where to serve Prometheus metrics (`GET /metrics`) and a health
    /// check (`GET /healthz`), e.g. 127.0.0.1:9100; off unless set, as
    /// NATS's monitoring port is.
    #[arg(long, env = "FOLLOWER_MAZE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Milliseconds between stats lines at info level (0 turns them off).
    #[arg(long = "stats-interval-ms", env = "FOLLOWER_MAZE_STATS_INTERVAL_MS", default_value = "5000", value_parser = parse_millis)]
    pub stats_interval: Duration,

    /// Milliseconds shutdown may spend flushing queued output before exiting.
    #[arg(long = "shutdown-grace-ms", env = "FOLLOWER_MAZE_SHUTDOWN_GRACE_MS", default_value = "5000", value_parser = parse_millis)]
    pub shutdown_grace: Duration,
}

/// The built-in defaults of `T`'s flags: what no arguments parse to while
/// the environment is ignored, so a library user's `T::default()` does not
/// change with the variables (or arguments) of the process.
fn defaults_ignoring_env<T: Parser>() -> T {
    let command = T::command()
        .no_binary_name(true)
        .mut_args(|arg| arg.env(None::<&str>));
    let matches = command
        .try_get_matches_from(std::iter::empty::<&str>())
        .expect("the built-in defaults parse");
    T::from_arg_matches(&matches).expect("the built-in defaults convert")
}

impl Default for Config {
    /// The defaults of the binary, ignoring the environment and arguments.
    fn default() -> Self {
        defaults_ignoring_env()
    }
}

impl Config {
    /// A configuration for tests and embedding: every port 0 (free ports),
    /// loopback, everything else default.
    pub fn ephemeral() -> Config {
        Config {
            event_port: 0,
            client_port: 0,
            ..Config::default()
        }
    }

    /// Refuses the values that would make the standalone server useless,
    /// naming the flag and its variable: the limits of
    /// [`Config::validate_limits`], and one port for both listeners.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_limits()?;
        let (event_ip, _) = self.bind_for(crate::engine::Port::Events);
        let (client_ip, _) = self.bind_for(crate::engine::Port::Clients);
        // An unspecified address (0.0.0.0, ::) takes the port on every
        // address, so it clashes with any other.
        let clash =
            event_ip == client_ip || event_ip.is_unspecified() || client_ip.is_unspecified();
        if self.event_port != 0 && self.event_port == self.client_port && clash {
            return Err(ConfigError {
                flag: "--event-port (eventListenerPort) and --client-port (clientListenerPort)",
                problem: ConfigProblem::SharedPort {
                    port: self.event_port,
                },
            });
        }
        Ok(())
    }

    /// The address the listener for `port` binds to, and the flag that
    /// set it (for error messages).
    pub fn bind_for(&self, port: crate::engine::Port) -> (IpAddr, &'static str) {
        let (specific, flag) = match port {
            crate::engine::Port::Events => {
                (self.event_bind, "--event-bind / FOLLOWER_MAZE_EVENT_BIND")
            }
            crate::engine::Port::Clients => (
                self.client_bind,
                "--client-bind / FOLLOWER_MAZE_CLIENT_BIND",
            ),
        };
        match specific {
            Some(addr) => (addr, flag),
            None => (self.bind, "--bind / FOLLOWER_MAZE_BIND"),
        }
    }

    /// [`Config::validate`] without the ports: what a cluster mode, which
    /// listens on one of them only, checks.
    pub fn validate_limits(&self) -> Result<(), ConfigError> {
        // The shortest lines: `1|B` and `1`, each with its newline.
        const SHORTEST_EVENT_LINE: usize = 4;
        const SHORTEST_ID_LINE: usize = 2;
        let zero = |flag, value: usize, consequence| {
            (value == 0).then_some(ConfigError {
                flag,
                problem: ConfigProblem::Zero { consequence },
            })
        };
        let short = |flag, value: usize, least: usize, consequence, shortest| {
            (value < least).then_some(ConfigError {
                flag,
                problem: ConfigProblem::ShorterThanShortestLine {
                    value,
                    least,
                    consequence,
                    shortest,
                },
            })
        };
        let refusals = [
            zero(
                "--max-clients (FOLLOWER_MAZE_MAX_CLIENTS)",
                self.max_clients,
                "no client could ever connect",
            ),
            zero(
                "--max-pending-clients (FOLLOWER_MAZE_MAX_PENDING_CLIENTS)",
                self.max_pending_clients,
                "no client could ever connect to send its id",
            ),
            short(
                "--max-line (FOLLOWER_MAZE_MAX_LINE)",
                self.max_line,
                SHORTEST_EVENT_LINE,
                "every event line would be dropped",
                "the shortest one (`1|B` and its newline)",
            ),
            short(
                "--max-id-line (FOLLOWER_MAZE_MAX_ID_LINE)",
                self.max_id_line,
                SHORTEST_ID_LINE,
                "every client would be closed for a bad id",
                "the shortest id line (`1` and its newline)",
            ),
            zero(
                "--window-capacity (FOLLOWER_MAZE_WINDOW)",
                self.window_capacity,
                "no event could wait for the ones before it",
            ),
            zero(
                "--window-bytes (FOLLOWER_MAZE_WINDOW_BYTES)",
                self.window_bytes,
                "no event could wait for the ones before it",
            ),
            zero(
                "--client-output-limit (FOLLOWER_MAZE_CLIENT_OUTPUT_LIMIT)",
                self.client_output_limit,
                "every client would be cut at its first notification",
            ),
        ];
        match refusals.into_iter().flatten().next() {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }
}

/// A configuration the server refuses to run with: the flag at fault and
/// what is wrong with its value. A value, not a message, so that callers
/// (and tests) can tell refusals apart; [`fmt::Display`] gives the message
/// an operator reads, naming the flag and its environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    /// The flag and its variable, as `--max-line (FOLLOWER_MAZE_MAX_LINE)`.
    pub flag: &'static str,
    /// What is wrong with its value.
    pub problem: ConfigProblem,
}

/// What is wrong with a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigProblem {
    /// It is 0, and that would have this consequence.
    Zero {
        /// What the server would do with it.
        consequence: &'static str,
    },
    /// A line limit below the shortest valid line of its kind.
    ShorterThanShortestLine {
        /// The value given, in bytes.
        value: usize,
        /// The least that works.
        least: usize,
        /// What the server would do with it.
        consequence: &'static str,
        /// The shortest line, described.
        shortest: &'static str,
    },
    /// The event and client ports are the same, on addresses that clash.
    SharedPort {
        /// The port both name.
        port: u16,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = self.flag;
        match self.problem {
            ConfigProblem::Zero { consequence } => {
                write!(f, "{flag} is 0: {consequence}; it must be at least 1")
            }
            ConfigProblem::ShorterThanShortestLine {
                value,
                least,
                consequence,
                shortest,
            } => write!(
                f,
                "{flag} is {value} bytes: {consequence}; it must be at least {least}, {shortest}"
            ),
            ConfigProblem::SharedPort { port } => write!(
                f,
                "{flag} are both {port}: the event source and the clients need a port each"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original_challenge() {
        let config = Config::default();
        assert_eq!(config.event_port, 9090);
        assert_eq!(config.client_port, 9099);
        assert_eq!(config.hole_timeout, Duration::from_millis(1000));
        assert_eq!(config.hole_silence, Duration::from_millis(10_000));
        assert_eq!(config.log_level, log::LevelFilter::Info);
    }

    #[test]
    fn flags_override_defaults() {
        let config = Config::try_parse_from([
            "follower-maze",
            "--event-port",
            "1",
            "--hole-timeout-ms",
            "250",
        ])
        .unwrap();
        assert_eq!(config.event_port, 1);
        assert_eq!(config.hole_timeout, Duration::from_millis(250));
    }

    #[test]
    fn every_size_flag_takes_binary_units() {
        let config = Config::try_parse_from([
            "follower-maze",
            "--window-bytes",
            "4MiB",
            "--max-line",
            "1KiB",
            "--max-id-line",
            "64B",
            "--client-output-limit",
            "1 MiB",
            "--max-queued-bytes",
            "1GiB",
        ])
        .unwrap();
        assert_eq!(config.window_bytes, 4 << 20);
        assert_eq!(config.max_line, 1024);
        assert_eq!(config.max_id_line, 64);
        assert_eq!(config.client_output_limit, 1 << 20);
        assert_eq!(config.max_queued_bytes, 1 << 30);
        let default = Config::default();
        assert_eq!(
            (default.window_bytes, default.max_line, default.max_id_line),
            (64 << 20, 1024, 32)
        );
        assert_eq!(
            (default.client_output_limit, default.max_queued_bytes),
            (32 << 20, 256 << 20)
        );
        let err = Config::try_parse_from(["follower-maze", "--window-bytes", "64MB"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("64MiB"), "{err}");
    }

    /// The message `validate` gives for the flags in `args`.
    fn refusal(args: &[&str]) -> String {
        let config = Config::try_parse_from(["follower-maze"].iter().chain(args)).unwrap();
        config
            .validate()
            .expect_err(&format!("{args:?} is refused"))
            .to_string()
    }

    #[test]
    fn the_defaults_and_the_smallest_useful_values_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(
            Config::ephemeral().validate(),
            Ok(()),
            "port 0 twice is fine"
        );
        let smallest = Config {
            max_clients: 1,
            max_line: 4,
            max_id_line: 2,
            window_capacity: 1,
            window_bytes: 1,
            client_output_limit: 1,
            ..Config::default()
        };
        assert_eq!(smallest.validate(), Ok(()));
    }

    #[test]
    fn values_that_make_the_server_useless_are_refused_naming_the_flag() {
        for (args, needles) in [
            (
                &["--max-clients", "0"][..],
                &["--max-clients", "FOLLOWER_MAZE_MAX_CLIENTS", "0"][..],
            ),
            (
                &["--max-line", "0"],
                &["--max-line", "FOLLOWER_MAZE_MAX_LINE", "at least 4"],
            ),
            (&["--max-line", "3"], &["--max-line", "is 3"]),
            (
                &["--max-id-line", "0"],
                &["--max-id-line", "FOLLOWER_MAZE_MAX_ID_LINE", "at least 2"],
            ),
            (&["--max-id-line", "1"], &["--max-id-line", "is 1"]),
            (
                &["--window-capacity", "0"],
                &["--window-capacity", "FOLLOWER_MAZE_WINDOW"],
            ),
            (
                &["--window-bytes", "0"],
                &["--window-bytes", "FOLLOWER_MAZE_WINDOW_BYTES"],
            ),
            (
                &["--client-output-limit", "0"],
                &["--client-output-limit", "FOLLOWER_MAZE_CLIENT_OUTPUT_LIMIT"],
            ),
            (
                &["--event-port", "9000", "--client-port", "9000"],
                &[
                    "--event-port",
                    "eventListenerPort",
                    "--client-port",
                    "clientListenerPort",
                    "9000",
                ],
            ),
        ] {
            let message = refusal(args);
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{args:?}: {message:?} lacks {needle:?}"
                );
            }
        }
    }

    #[test]
    fn each_refusal_names_its_flag_and_problem() {
        let zero = |consequence| ConfigProblem::Zero { consequence };
        for (args, flag, problem) in [
            (
                &["--max-pending-clients", "0"][..],
                "--max-pending-clients (FOLLOWER_MAZE_MAX_PENDING_CLIENTS)",
                zero("no client could ever connect to send its id"),
            ),
            (
                &["--max-line", "3"],
                "--max-line (FOLLOWER_MAZE_MAX_LINE)",
                ConfigProblem::ShorterThanShortestLine {
                    value: 3,
                    least: 4,
                    consequence: "every event line would be dropped",
                    shortest: "the shortest one (`1|B` and its newline)",
                },
            ),
            (
                &["--event-port", "9000", "--client-port", "9000"],
                "--event-port (eventListenerPort) and --client-port (clientListenerPort)",
                ConfigProblem::SharedPort { port: 9000 },
            ),
        ] {
            let config = Config::try_parse_from(["follower-maze"].iter().chain(args)).unwrap();
            assert_eq!(
                config.validate(),
                Err(ConfigError { flag, problem }),
                "{args:?}"
            );
        }
        let message = ConfigError {
            flag: "--max-line (FOLLOWER_MAZE_MAX_LINE)",
            problem: ConfigProblem::ShorterThanShortestLine {
                value: 3,
                least: 4,
                consequence: "every event line would be dropped",
                shortest: "the shortest one (`1|B` and its newline)",
            },
        };
        assert_eq!(
            message.to_string(),
            "--max-line (FOLLOWER_MAZE_MAX_LINE) is 3 bytes: every event line would be dropped; \
             it must be at least 4, the shortest one (`1|B` and its newline)"
        );
    }

    #[test]
    fn a_cluster_mode_checks_the_limits_but_not_the_ports() {
        let same_port = Config {
            event_port: 9000,
            client_port: 9000,
            ..Config::default()
        };
        assert_eq!(same_port.validate_limits(), Ok(()));
        let no_clients = Config {
            max_clients: 0,
            ..Config::default()
        };
        assert_eq!(
            no_clients.validate_limits().map_err(|err| err.flag),
            Err("--max-clients (FOLLOWER_MAZE_MAX_CLIENTS)")
        );
    }

    #[test]
    fn keepalive_intervals_are_whole_seconds() {
        assert_eq!(parse_probe_millis("10000"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_probe_millis("1500"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_probe_millis("0"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn bad_millis_are_rejected_with_a_reason() {
        assert!(parse_millis("1.5").unwrap_err().contains("milliseconds"));
        assert!(Config::try_parse_from(["follower-maze", "--hole-timeout-ms", "x"]).is_err());
    }
}
