//! The server `--demo` runs against: the `follower-maze` binary, started as a
//! child process on loopback ports it picks itself and stopped with SIGTERM.
//!
//! A child process, not the server's library on a thread: the simulator
//! does not depend on the server's code at all, so that its model and
//! verifier cannot share the server's bugs, and so it runs the server the
//! way a user does. The binary is looked for next to the simulator's own
//! executable first, which is where cargo puts both in a workspace build.

use std::env;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The server binary's file name, as cargo builds it.
pub const SERVER_BIN: &str = "follower-maze";

/// How long the server may take, once started, to accept on both ports.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server may take to exit after SIGTERM before it is killed:
/// its default shutdown grace (5 s of flushing) with room to spare.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The end of every message about a server that cannot be found or does not
/// come up: how to get one.
const HOW_TO_BUILD: &str = "build it with `cargo build --release` at the workspace root (it lands next to follower-maze-sim, in target/release), or name it with --server-bin or FOLLOWER_MAZE_BIN";

/// What the demo asks of the server beyond its defaults.
#[derive(Debug, Clone, Copy)]
pub struct DemoSettings {
    /// The server's log level: the simulator's own, so one flag sets both.
    pub log_level: log::LevelFilter,
    /// How long a missing seq may stall the stream, when not the server's
    /// default (a run with `--holes` should not wait a second per hole).
    pub hole_timeout: Option<Duration>,
}

/// Finds the server binary: `explicit` if given (from `--server-bin` or
/// `FOLLOWER_MAZE_BIN`; it must exist), else `follower-maze` next to this
/// executable, else on `PATH`. The error says where it looked and how to
/// build one.
pub fn find_server(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let exe_dir = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    find_server_in(explicit, exe_dir.as_deref(), env::var_os("PATH").as_deref())
}

/// [`find_server`] with the executable's directory and `PATH` handed in.
fn find_server_in(
    explicit: Option<&Path>,
    exe_dir: Option<&Path>,
    path: Option<&OsStr>,
) -> Result<PathBuf, String> {
    if let Some(binary) = explicit {
        return if binary.is_file() {
            Ok(binary.to_path_buf())
        } else {
            Err(format!(
                "no server binary at {}; {HOW_TO_BUILD}",
                binary.display()
            ))
        };
    }
    let beside = exe_dir.map(|dir| dir.join(SERVER_BIN));
    let on_path = path
        .into_iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join(SERVER_BIN));
    let looked_beside = exe_dir.map_or_else(String::new, |dir| format!(" in {}", dir.display()));
    beside
        .into_iter()
        .chain(on_path)
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "cannot find the {SERVER_BIN} server binary next to this executable{looked_beside} or on PATH; {HOW_TO_BUILD}"
            )
        })
}

/// A `follower-maze` server running as a child process. [`DemoServer::stop`]
/// ends it as an operator would; dropping it kills it, so no server is left
/// behind when the demo fails.
#[derive(Debug)]
pub struct DemoServer {
    /// The server process.
    child: Child,
    /// Where the event source connects.
    event_addr: SocketAddr,
    /// Where clients connect.
    client_addr: SocketAddr,
    /// Copies the server's log to ours until the server exits; joined then,
    /// so that its last lines are out before the simulator's.
    log_thread: Option<thread::JoinHandle<()>>,
}

impl DemoServer {
    /// Starts `binary` on loopback with `settings` (passed in the
    /// environment variables the server reads, over any the simulator's
    /// environment has), and waits, for at most [`START_TIMEOUT`], until it
    /// says where it listens. It is given port 0 for both and picks free
    /// ones itself: ports found free here and handed over could be taken
    /// by another process in between. Its log goes where the simulator's
    /// goes, at `settings.log_level`.
    pub fn start(binary: &Path, settings: &DemoSettings) -> Result<DemoServer, String> {
        // The lines that say where it listens are logged at info.
        let server_level = settings.log_level.max(log::LevelFilter::Info);
        let mut command = Command::new(binary);
        command
            .env("FOLLOWER_MAZE_BIND", Ipv4Addr::LOCALHOST.to_string())
            .env("eventListenerPort", "0")
            .env("clientListenerPort", "0")
            .env("logLevel", server_level.as_str())
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(timeout) = settings.hole_timeout {
            command.env(
                "FOLLOWER_MAZE_HOLE_TIMEOUT_MS",
                timeout.as_millis().to_string(),
            );
        }
        let mut child = command.spawn().map_err(|err| {
            format!(
                "cannot start the server {}: {err}; {HOW_TO_BUILD}",
                binary.display()
            )
        })?;
        let log = child.stderr.take().expect("stderr is piped");
        let (found, addrs) = mpsc::channel();
        let shown = settings.log_level;
        let log_thread = thread::spawn(move || forward_log(log, shown, &found));
        let mut server = DemoServer {
            child,
            event_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            client_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            log_thread: Some(log_thread),
        };
        server
            .wait_for_addrs(&addrs, START_TIMEOUT)
            .map_err(|why| format!("the server {} {why}; {HOW_TO_BUILD}", binary.display()))?;
        Ok(server)
    }

    /// Where the event source connects.
    pub fn event_addr(&self) -> SocketAddr {
        self.event_addr
    }

    /// Where clients connect.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Stops the server with SIGTERM, so it flushes what it holds and logs
    /// its final counts, and waits for it to exit; after [`STOP_TIMEOUT`] it
    /// is killed and this is an error.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        terminate(&self.child)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if let Some(log) = self.log_thread.take() {
                    let _ = log.join();
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.child.kill()?;
                self.child.wait()?;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the server did not exit within {STOP_TIMEOUT:?} of SIGTERM, so it was killed"
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the server's log has named both addresses it listens
    /// on, or says why not: it exited, or `patience` ran out.
    fn wait_for_addrs(
        &mut self,
        addrs: &mpsc::Receiver<Listening>,
        patience: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        let (mut events, mut clients) = (None, None);
        while events.is_none() || clients.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => return Err(format!("exited ({status}) before it listened")),
                Ok(None) => {}
                Err(err) => return Err(format!("cannot be watched: {err}")),
            }
            if Instant::now() >= deadline {
                return Err(format!("did not say where it listens within {patience:?}"));
            }
            match addrs.recv_timeout(Duration::from_millis(20)) {
                Ok(Listening::Events(addr)) => events = Some(addr),
                Ok(Listening::Clients(addr)) => clients = Some(addr),
                Err(_) => {}
            }
        }
        self.event_addr = events.unwrap_or(self.event_addr);
        self.client_addr = clients.unwrap_or(self.client_addr);
        Ok(())
    }
}

/// An address the server's log says it listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listening {
    /// The event port's.
    Events(SocketAddr),
    /// The client port's.
    Clients(SocketAddr),
}

/// The start of the server's log line naming its event port's address.
const EVENTS_LINE: &str = "listening for the event source on ";
/// The start of the server's log line naming its client port's address.
const CLIENTS_LINE: &str = "listening for clients on ";

/// What a server log line says about where it listens, if anything.
fn listening_in(line: &str) -> Option<Listening> {
    let after = |marker: &str| {
        let at = line.find(marker)? + marker.len();
        line[at..].trim().parse::<SocketAddr>().ok()
    };
    after(EVENTS_LINE)
        .map(Listening::Events)
        .or_else(|| after(CLIENTS_LINE).map(Listening::Clients))
}

/// The level of a server log line (`2026-01-01T00:00:00.000Z INFO  [...]`),
/// if it starts like one.
fn level_of(line: &str) -> Option<log::Level> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Copies the server's log to this process's stderr, leaving out lines
/// above `shown` (the server logs at info at least, see
/// [`DemoServer::start`]), and sends where it listens to `found`.
fn forward_log(log: impl Read, shown: log::LevelFilter, found: &mpsc::Sender<Listening>) {
    for line in BufReader::new(log).lines() {
        let Ok(line) = line else {
            return;
        };
        if let Some(listening) = listening_in(&line) {
            let _ = found.send(listening);
        }
        if level_of(&line).is_none_or(|level| level <= shown) {
            eprintln!("{line}");
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends SIGTERM to `child`, which std's `Child` cannot do (its `kill` is
/// SIGKILL, which would skip the server's graceful shutdown).
fn terminate(child: &Child) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    // SAFETY: kill(2) takes two integers and touches no memory of ours. The
    // pid is our child's and it has not been waited for, so it cannot have
    // been reused by another process.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one for one test,
    /// removed with everything in it when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let root =
                env::temp_dir().join(format!("follower-maze-sim-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            Scratch(root)
        }

        /// A new, empty directory `name` in it.
        fn dir(&self, name: &str) -> PathBuf {
            let dir = self.0.join(name);
            std::fs::create_dir_all(&dir).expect("a scratch directory");
            dir
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `dir` with an empty file named like the server in it.
    fn with_server(dir: &Path) -> PathBuf {
        let binary = dir.join(SERVER_BIN);
        std::fs::write(&binary, b"").expect("a stand-in binary");
        binary
    }

    #[test]
    fn the_server_next_to_this_executable_comes_before_path() {
        let scratch = Scratch::new("beside-first");
        let (beside, on_path) = (scratch.dir("beside"), scratch.dir("on-path"));
        let expected = with_server(&beside);
        with_server(&on_path);
        let path = env::join_paths([&on_path]).unwrap();
        let found = find_server_in(None, Some(&beside), Some(&path));
        assert_eq!(found, Ok(expected));
    }

    #[test]
    fn path_is_searched_in_order_when_nothing_is_beside() {
        let scratch = Scratch::new("path-order");
        let beside = scratch.dir("beside");
        let (first, second) = (scratch.dir("path-1"), scratch.dir("path-2"));
        let expected = with_server(&second);
        let path = env::join_paths([&first, &second]).unwrap();
        let found = find_server_in(None, Some(&beside), Some(&path));
        assert_eq!(found, Ok(expected));
    }

    #[test]
    fn an_explicit_binary_wins_and_must_exist() {
        let scratch = Scratch::new("explicit");
        let beside = scratch.dir("beside");
        with_server(&beside);
        let elsewhere = scratch.dir("elsewhere");
        let explicit = elsewhere.join("my-server");
        std::fs::write(&explicit, b"").unwrap();
        let found = find_server_in(Some(&explicit), Some(&beside), None);
        assert_eq!(found, Ok(explicit));
        let missing = elsewhere.join("missing");
        let err = find_server_in(Some(&missing), Some(&beside), None).unwrap_err();
        assert!(
            err.contains("missing") && err.contains("cargo build --release"),
            "{err}"
        );
    }

    #[test]
    fn when_nothing_is_found_the_error_says_how_to_build_it() {
        let scratch = Scratch::new("nothing");
        let beside = scratch.dir("beside");
        let err = find_server_in(None, Some(&beside), None).unwrap_err();
        assert!(err.contains(&beside.display().to_string()), "{err}");
        assert!(err.contains("cargo build --release"), "{err}");
    }

    #[test]
    fn the_addresses_and_levels_are_read_from_the_servers_log_lines() {
        let events = "2026-12-08T00:34:04.089Z INFO  [follower_maze::runner] \
                      listening for the event source on 127.0.0.1:40517";
        let clients = "2026-12-08T00:34:04.089Z INFO  [follower_maze::runner] \
                       listening for clients on [::1]:35163";
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(
            listening_in(events),
            Some(Listening::Events(addr("127.0.0.1:40517")))
        );
        assert_eq!(
            listening_in(clients),
            Some(Listening::Clients(addr("[::1]:35163")))
        );
        assert_eq!(listening_in("listening for clients on nowhere"), None);
        assert_eq!(level_of(events), Some(log::Level::Info));
        let warning = "2026-12-08T00:34:04.089Z WARN  [follower_maze] x";
        assert_eq!(level_of(warning), Some(log::Level::Warn));
        assert_eq!(level_of("  a continuation"), None);
    }
}
