//! Every knob of the simulator, with its flag and environment variable.
//!
//! The original test client's knobs keep its variable names, meanings and
//! defaults (`totalEvents`, `concurrencyLevel`, ...), so anyone who ran it can
//! run ours the same way; the adversarial and tuning knobs are flags only.

use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use super::generator::GeneratorConfig;
use super::line::LineEnding;
use super::mix::Mix;
use super::model::User;

/// Parses a whole number of milliseconds, the original client's unit for
/// every time it takes.
fn parse_millis(text: &str) -> Result<Duration, std::num::ParseIntError> {
    text.parse().map(Duration::from_millis)
}

/// Parses one port of `--client-ports`: 1..=65535. A cluster's edges listen
/// on ports known in advance, so 0 (a server's "any free port") names no
/// port a client could connect to, and an empty item is a typo.
fn parse_client_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err("0 is not a port a client can connect to (1..=65535)".into()),
        Ok(port) => Ok(port),
        Err(_) if text.trim().is_empty() => {
            Err("an empty port: list ports as P1,P2,... (1..=65535 each)".into())
        }
        Err(_) => Err(format!("{text:?} is not a port (1..=65535)")),
    }
}

/// How the simulator runs.
///
/// [`SimConfig::default`] is the original client's defaults (ignoring the
/// environment); change fields for tests, or parse flags and variables with
/// [`clap::Parser::parse`].
#[derive(Debug, Clone, Parser)]
pub struct SimConfig {
    /// Host of the server under test.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// The server's event source port.
    #[arg(long, env = "eventListenerPort", default_value_t = 9090)]
    pub event_port: u16,

    /// The server's user client port (ignored when --client-ports is given).
    #[arg(long, env = "clientListenerPort", default_value_t = 9099)]
    pub client_port: u16,

    /// Client ports of a cluster's edges, comma-separated (P1,P2,...):
    /// replaces --client-port. Client i connects to the i-th port, round
    /// robin (silent clients likewise), so clients spread over every edge;
    /// each is still verified against exactly what a standalone server
    /// would send it. A port may be listed twice. With --demo, each stands
    /// for the demo server's client port (the count is kept).
    #[arg(
        long,
        env = "clientListenerPorts",
        value_delimiter = ',',
        value_name = "P1,P2,...",
        value_parser = parse_client_port
    )]
    pub client_ports: Option<Vec<u16>>,

    /// Events to send, numbered 1..=N.
    #[arg(long, env = "totalEvents", default_value_t = 10_000_000)]
    pub total_events: u64,

    /// Connected (and verified) user clients, each with a distinct id.
    #[arg(long, env = "concurrencyLevel", default_value_t = 100)]
    pub concurrency_level: u32,

    /// Users in the population, connected or not [default: 10 × concurrencyLevel].
    #[arg(long, env = "numberOfUsers")]
    pub number_of_users: Option<User>,

    /// Seed of every random choice; the same seed makes the same run.
    #[arg(long, env = "randomSeed", default_value_t = 666)]
    pub random_seed: u64,

    /// Milliseconds a client may wait for a notification it is owed (and the
    /// source for the server to read) before the run fails.
    #[arg(long = "timeout", env = "timeout", default_value = "20000", value_parser = parse_millis)]
    pub timeout: Duration,

    /// Largest batch; batches are contiguous seq ranges of random size
    /// 1..=this, each shuffled (1 sends in order).
    #[arg(long, env = "maxEventSourceBatchSize", default_value_t = 100)]
    pub max_event_source_batch_size: u32,

    /// Milliseconds between plain progress lines, shown when stderr is not
    /// a terminal or with --plain-progress (a terminal gets a live bar); 0
    /// turns progress off, the bar too.
    #[arg(long = "log-interval", env = "logInterval", default_value = "1000", value_parser = parse_millis)]
    pub log_interval: Duration,

    /// Log the plain progress lines every --log-interval even when stderr
    /// is a terminal, instead of drawing the live bar there.
    #[arg(long)]
    pub plain_progress: bool,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "logLevel", default_value = "info")]
    pub log_level: log::LevelFilter,

    /// Event mix: `original`, `fanout`, or weights like B=1,F=30,U=10,P=10,S=49.
    #[arg(long, default_value = "original")]
    pub mix: Mix,

    /// End lines with a bare LF (what the original client sent) instead of
    /// CRLF (what the protocol specifies).
    #[arg(long)]
    pub lf: bool,

    /// Seqs never sent; the server must skip them (each costs it its hole
    /// timeout) and nobody may expect them.
    #[arg(long, default_value_t = 0)]
    pub holes: u64,

    /// Extra clients that send an id and never read; not verified, and the
    /// verified clients must pass regardless.
    #[arg(long, default_value_t = 0)]
    pub silent_clients: u32,

    /// Garbage lines mixed into the event stream; the server must skip them.
    #[arg(long, default_value_t = 0)]
    pub malformed: u64,

    /// Extra connections that claim the id of a verified client; each is
    /// verified on its own.
    #[arg(long, default_value_t = 0)]
    pub duplicate_ids: u32,

    /// Connect every verified client's id a second time, on the next client
    /// port (client i's twin on port i+1, round robin; on the same port when
    /// only one is given), and verify both connections against the same
    /// stream. It exists for clusters: a server must send every connection
    /// of an id each notification for it, and twins put the connections of
    /// one id on different edges, so an edge that delivers only to its own
    /// connections, or differently from another edge, fails the run.
    #[arg(long)]
    pub twin_ids: bool,

    /// Send each batch on its own (TCP_NODELAY, a pause between batches)
    /// instead of in large writes.
    #[arg(long)]
    pub drip: bool,

    /// Milliseconds between batches with --drip (0: only a turn of the loop).
    #[arg(long = "drip-pause-ms", default_value = "1", value_parser = parse_millis)]
    pub drip_pause: Duration,

    /// Milliseconds to wait after the last client sent its id, so the server
    /// has registered them all before the first event.
    #[arg(long = "settle-ms", default_value = "100", value_parser = parse_millis)]
    pub settle: Duration,

    /// Milliseconds to keep listening after every notification arrived, to
    /// catch extra or duplicate ones at the end.
    #[arg(long = "grace-ms", default_value = "200", value_parser = parse_millis)]
    pub grace: Duration,

    /// Count the lines each client receives instead of checking each one
    /// (seq, order, bytes): the reading then costs about what the loopback
    /// baseline's does, so a throughput run (e.g. with --ratio) measures the
    /// server, not the verifier. Leave it off to test correctness.
    #[arg(long)]
    pub count_only: bool,

    /// Expectations pending over all clients past which the source stops
    /// generating (and so sending) until clients catch up; bounds memory.
    #[arg(long, default_value_t = 4_000_000)]
    pub max_pending: usize,
}

impl Default for SimConfig {
    /// The original client's defaults, ignoring the environment and
    /// arguments of the process: a library user's (or a test's) defaults
    /// must not change with `totalEvents` or `timeout` set in the shell.
    fn default() -> Self {
        // No environment variables, and a command line of the name alone.
        let built_in_only = SimConfig::command().mut_args(|arg| arg.env(None::<&str>));
        let parsed = built_in_only
            .try_get_matches_from(["follower-maze-sim"])
            .and_then(|matches| SimConfig::from_arg_matches(&matches));
        parsed.expect("the built-in defaults parse")
    }
}

impl SimConfig {
    /// A small, fast run against `event_port` and `client_port` on loopback,
    /// for tests: the original's shape at a smaller size.
    pub fn small(event_port: u16, client_port: u16) -> SimConfig {
        SimConfig {
            event_port,
            client_port,
            total_events: 2000,
            concurrency_level: 10,
            timeout: Duration::from_secs(5),
            log_interval: Duration::ZERO,
            settle: Duration::from_millis(50),
            grace: Duration::from_millis(100),
            ..SimConfig::default()
        }
    }

    /// The client ports, in round-robin order: `--client-ports`, else
    /// `--client-port` alone. Every client connection goes to one of these.
    pub fn client_port_list(&self) -> &[u16] {
        match &self.client_ports {
            Some(ports) => ports,
            None => std::slice::from_ref(&self.client_port),
        }
    }

    /// Users in the population: `numberOfUsers`, or ten per connected client.
    pub fn users(&self) -> User {
        self.number_of_users
            .unwrap_or_else(|| self.concurrency_level.saturating_mul(10))
    }

    /// The line terminator chosen.
    pub fn ending(&self) -> LineEnding {
        if self.lf {
            LineEnding::Lf
        } else {
            LineEnding::Crlf
        }
    }

    /// The shape of the event stream.
    pub fn generator(&self) -> GeneratorConfig {
        GeneratorConfig {
            total_events: self.total_events,
            users: self.users(),
            max_batch: self.max_event_source_batch_size,
            seed: self.random_seed,
            mix: self.mix,
            ending: self.ending(),
            holes: self.holes,
            malformed: self.malformed,
        }
    }

    /// Why this configuration cannot make a run, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        let users = self.users();
        if users == 0 {
            return Err("numberOfUsers must be at least 1".into());
        }
        if self.concurrency_level > users {
            return Err(format!(
                "concurrencyLevel {} needs as many distinct ids, but numberOfUsers is {users}",
                self.concurrency_level
            ));
        }
        if self.max_event_source_batch_size == 0 {
            return Err("maxEventSourceBatchSize must be at least 1".into());
        }
        if self.holes > self.total_events / 2 {
            return Err(format!(
                "--holes {} is more than half of totalEvents {}",
                self.holes, self.total_events
            ));
        }
        if self.duplicate_ids > 0 && self.concurrency_level == 0 {
            return Err("--duplicate-ids needs verified clients to duplicate".into());
        }
        if self.twin_ids && self.concurrency_level == 0 {
            return Err("--twin-ids needs verified clients to twin".into());
        }
        if let Some(ports) = &self.client_ports {
            if ports.is_empty() {
                return Err("--client-ports needs at least one port".into());
            }
            if ports.contains(&0) {
                return Err("--client-ports cannot list port 0".into());
            }
        }
        if self.timeout.is_zero() {
            return Err("timeout must be at least 1 ms".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_original_clients() {
        let config = SimConfig::default();
        assert_eq!(config.event_port, 9090);
        assert_eq!(config.client_port, 9099);
        assert_eq!(config.total_events, 10_000_000);
        assert_eq!(config.concurrency_level, 100);
        assert_eq!(config.users(), 1000);
        assert_eq!(config.random_seed, 666);
        assert_eq!(config.timeout, Duration::from_millis(20_000));
        assert_eq!(config.max_event_source_batch_size, 100);
        assert_eq!(config.log_interval, Duration::from_millis(1000));
        assert_eq!(config.log_level, log::LevelFilter::Info);
        assert_eq!(config.mix, Mix::original());
        assert_eq!(config.ending(), LineEnding::Crlf);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn flags_override_and_users_follow_concurrency() {
        let config = SimConfig::try_parse_from([
            "sim",
            "--concurrency-level",
            "7",
            "--mix",
            "fanout",
            "--lf",
            "--timeout",
            "50",
        ])
        .expect("valid flags");
        assert_eq!(config.users(), 70);
        assert_eq!(config.mix, Mix::fanout());
        assert_eq!(config.ending(), LineEnding::Lf);
        assert_eq!(config.timeout, Duration::from_millis(50));
    }

    #[test]
    fn plain_progress_is_a_flag_off_by_default() {
        assert!(!SimConfig::default().plain_progress);
        assert!(!SimConfig::small(1, 2).plain_progress);
        let config = SimConfig::try_parse_from(["sim", "--plain-progress"]).expect("valid");
        assert!(config.plain_progress);
        assert_eq!(config.log_interval, Duration::from_millis(1000));
        assert!(SimConfig::try_parse_from(["sim", "--plain-progress", "yes"]).is_err());
    }

    #[test]
    fn times_are_whole_milliseconds() {
        assert_eq!(parse_millis("1500"), Ok(Duration::from_millis(1500)));
        assert!(parse_millis("1.5").is_err());
        assert!(parse_millis("-1").is_err());
        assert!(SimConfig::try_parse_from(["sim", "--timeout", "soon"]).is_err());
    }

    #[test]
    fn impossible_configurations_are_refused() {
        let base = SimConfig::small(1, 2);
        let too_many = SimConfig {
            number_of_users: Some(5),
            ..base.clone()
        };
        assert!(too_many.validate().is_err());
        let no_batch = SimConfig {
            max_event_source_batch_size: 0,
            ..base.clone()
        };
        assert!(no_batch.validate().is_err());
        let holes = SimConfig {
            holes: 1500,
            ..base
        };
        assert!(holes.validate().is_err());
    }

    #[test]
    fn client_ports_replace_the_client_port() {
        let config = SimConfig::try_parse_from(["sim", "--client-port", "7"]).expect("valid");
        assert_eq!(config.client_ports, None);
        assert_eq!(config.client_port_list(), [7]);
        let config = SimConfig::try_parse_from([
            "sim",
            "--client-port",
            "7",
            "--client-ports",
            "9100,9101, 9100",
        ])
        .expect("valid");
        assert_eq!(config.client_ports, Some(vec![9100, 9101, 9100]));
        assert_eq!(config.client_port_list(), [9100, 9101, 9100]);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(SimConfig::default().client_port_list(), [9099]);
    }

    #[test]
    fn client_ports_come_from_client_listener_ports() {
        // Setting the variable here would race the other tests' parsing, so
        // the name is checked on the argument; the binary's tests set it.
        let command = SimConfig::command();
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some("client-ports"))
            .expect("the --client-ports argument");
        assert_eq!(
            arg.get_env().and_then(|name| name.to_str()),
            Some("clientListenerPorts")
        );
    }

    #[test]
    fn bad_client_ports_are_clap_errors() {
        for (list, says) in [
            ("", "an empty port"),
            ("9100,", "an empty port"),
            ("9100,,9101", "an empty port"),
            ("0", "0 is not a port"),
            ("9100,0", "0 is not a port"),
            ("70000", "is not a port"),
            ("x", "is not a port"),
        ] {
            let error = SimConfig::try_parse_from(["sim", "--client-ports", list])
                .expect_err(list)
                .to_string();
            assert!(error.contains("--client-ports"), "{list:?}: {error}");
            assert!(error.contains(says), "{list:?}: {error}");
        }
        let missing = SimConfig::try_parse_from(["sim", "--client-ports"]);
        assert!(missing.is_err());
    }

    #[test]
    fn a_library_users_port_list_is_validated_too() {
        let base = SimConfig::small(1, 2);
        let empty = SimConfig {
            client_ports: Some(vec![]),
            ..base.clone()
        };
        assert!(empty.validate().is_err());
        let zero = SimConfig {
            client_ports: Some(vec![5, 0]),
            ..base.clone()
        };
        assert!(zero.validate().is_err());
        let no_one_to_twin = SimConfig {
            twin_ids: true,
            concurrency_level: 0,
            ..base
        };
        assert!(no_one_to_twin.validate().is_err());
    }
}
