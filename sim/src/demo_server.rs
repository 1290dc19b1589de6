//! The server `--demo` runs against: the `follower-maze` binary, started as a
//! child process on free loopback ports and stopped with SIGTERM.
//!
//! A child process, not the server's library on a thread: the simulator
//! does not depend on the server's code at all, so that its model and
//! verifier cannot share the server's bugs, and so it runs the server the
//! way a user does. The binary is looked for next to the simulator's own
//! executable first, which is where cargo puts both in a workspace build.

use std::env;
use std::ffi::OsStr;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
}

impl DemoServer {
    /// Starts `binary` on two free loopback ports with `settings` (passed in
    /// the environment variables the server reads, over any the simulator's
    /// environment has), its output going where the simulator's goes, and
    /// waits until both ports accept, for at most [`START_TIMEOUT`].
    pub fn start(binary: &Path, settings: &DemoSettings) -> Result<DemoServer, String> {
        let (event_port, client_port) =
            free_ports().map_err(|err| format!("cannot find two free loopback ports: {err}"))?;
        let mut command = Command::new(binary);
        command
            .env("FOLLOWER_MAZE_BIND", Ipv4Addr::LOCALHOST.to_string())
            .env("eventListenerPort", event_port.to_string())
            .env("clientListenerPort", client_port.to_string())
            .env("logLevel", settings.log_level.as_str())
            .stdin(Stdio::null());
        if let Some(timeout) = settings.hole_timeout {
            command.env(
                "FOLLOWER_MAZE_HOLE_TIMEOUT_MS",
                timeout.as_millis().to_string(),
            );
        }
        let child = command.spawn().map_err(|err| {
            format!(
                "cannot start the server {}: {err}; {HOW_TO_BUILD}",
                binary.display()
            )
        })?;
        let mut server = DemoServer {
            child,
            event_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, event_port)),
            client_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, client_port)),
        };
        server
            .wait_until_accepting(START_TIMEOUT)
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

    /// Waits until both ports accept a connection (each probe is closed at
    /// once; the server sees a client that leaves before its id and a source
    /// that sends nothing), or says why not: the server exited, or
    /// `patience` ran out.
    fn wait_until_accepting(&mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        let mut waiting = vec![self.client_addr, self.event_addr];
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Err(format!("exited ({status}) before it accepted")),
                Ok(None) => {}
                Err(err) => return Err(format!("cannot be watched: {err}")),
            }
            waiting.retain(|addr| !accepts(addr));
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "did not accept on {} within {patience:?}",
                    waiting[0]
                ));
            }
            thread::sleep(Duration::from_millis(20));
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

/// True when something listening at `addr` accepted a connection. A
/// connection to a loopback port in the ephemeral range that nothing
/// listens on can connect to itself (TCP's simultaneous open, when the
/// kernel picks that very port as the local one), which is not the server
/// accepting.
fn accepts(addr: &SocketAddr) -> bool {
    TcpStream::connect_timeout(addr, Duration::from_millis(100))
        .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
}

/// Two distinct free loopback ports: both bound at once (so they differ),
/// read, and released for the server to bind.
fn free_ports() -> io::Result<(u16, u16)> {
    let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let second = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
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
    fn the_free_ports_differ() {
        let (a, b) = free_ports().expect("free ports");
        assert_ne!(a, b);
        assert!(a != 0 && b != 0);
    }
}
