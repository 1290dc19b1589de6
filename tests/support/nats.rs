//! A real `nats-server` with JetStream, for the cluster's integration tests:
//! on a free loopback port, with a store directory of its own that is
//! removed afterwards, and restartable on the same port and store.
//!
//! Use it with `#[path = "support/nats.rs"] mod nats;`. When `nats-server`
//! is not installed, [`NatsServer::start`] says so once on stderr and
//! returns `None`, and the test returns early; with
//! `FOLLOWER_MAZE_REQUIRE_NATS=1` (CI, where it must be there) it panics.
#![allow(dead_code)] // Each test file uses its own subset.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to shut down gracefully before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports to try when another process takes the one picked.
const PORT_ATTEMPTS: usize = 5;
/// The environment variable that makes a missing `nats-server` an error.
const REQUIRE_ENV: &str = "FOLLOWER_MAZE_REQUIRE_NATS";

/// Where `nats-server` is looked for after `PATH`.
const FALLBACK_DIRS: [&str; 2] = ["/usr/sbin", "/usr/local/bin"];

/// A running `nats-server -js`, killed and its store removed on drop.
pub struct NatsServer {
    /// The executable.
    binary: PathBuf,
    /// The process; `None` while stopped.
    child: Option<Child>,
    /// Its client port on 127.0.0.1.
    port: u16,
    /// The temporary directory holding the store and the log.
    dir: PathBuf,
    /// Flags beyond the port and the store: a cluster node's name and
    /// routes.
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts a server on a free loopback port, or returns `None` (having
    /// said why on stderr) when `nats-server` is not installed. Panics if
    /// it is missing and `FOLLOWER_MAZE_REQUIRE_NATS=1`, or if it does not
    /// start.
    pub fn start() -> Option<NatsServer> {
        let Some(binary) = find_binary() else {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!(
                    "nats-server not found on PATH or in {FALLBACK_DIRS:?}, and {REQUIRE_ENV}=1: install the Debian package nats-server"
                );
            }
            // Once per test binary, and past the test harness's capture of
            // `eprintln!`, so that a run that skips says so.
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping: nats-server not found (install the Debian package nats-server, or run .ci/run, to run the cluster tests)"
                );
            });
            return None;
        };
        let dir = temp_dir();
        fs::create_dir_all(dir.join("store")).expect("create the server's store directory");
        let mut server = NatsServer {
            binary,
            child: None,
            port: 0,
            dir,
            extra: Vec::new(),
        };
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port();
            if server.spawn_and_wait() {
                return Some(server);
            }
            eprintln!(
                "nats-server did not start on port {} (attempt {attempt}); trying another",
                server.port
            );
        }
        panic!(
            "nats-server did not start in {PORT_ATTEMPTS} attempts; its log:\n{}",
            server.log()
        );
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is
    /// answered, as with a server stalled on its disk, until
    /// [`NatsServer::resume`].
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Sends `signal` to the running server.
    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("the server is running");
        // SAFETY: kill(2) on our own child's pid, not reaped while we hold
        // its `Child`.
        let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill failed");
    }

    /// Stops the server gracefully (SIGTERM, so JetStream flushes what it
    /// acknowledged; SIGKILL after 10 s) and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid, which it still is: the
        // child is not reaped until `wait` below.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the stopped server again on the same port and store. Panics
    /// if it does not start (the port is retried for a while, as the old
    /// process's socket may linger).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        for _ in 0..PORT_ATTEMPTS {
            if self.spawn_and_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "nats-server did not start again on port {}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    /// Stops the server and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut log = String::new();
        if let Ok(mut file) = File::open(self.log_path()) {
            let _ = file.read_to_string(&mut log);
        }
        log
    }

    /// Where the server logs.
    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Starts the process on `self.port` and waits until the port accepts
    /// connections; false if the process exits first or it times out.
    fn spawn_and_wait(&mut self) -> bool {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let mut child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store_dir())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.binary.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // e.g. the port was taken
            }
            // A connection to itself is not the server: a loopback port in
            // the ephemeral range that nothing listens on yet can be picked
            // as the probe's own local port (TCP's simultaneous open), and
            // while that socket lives, the server cannot bind the port.
            let probe = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
            if probe.is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok()) {
                self.child = Some(child);
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

/// A NATS cluster of JetStream nodes on loopback: each a [`NatsServer`]
/// with a name and routes to the others.
pub struct NatsCluster {
    /// The nodes, in start order.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other, or returns `None` as
    /// [`NatsServer::start`] does. JetStream may take some seconds more to
    /// elect its leaders: callers retry what they need of it.
    pub fn start(size: usize) -> Option<NatsCluster> {
        let Some(binary) = find_binary() else {
            // Says it is missing, or panics where it is required, as a
            // lone server does.
            assert!(NatsServer::start().is_none());
            return None;
        };
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (index, cluster_port) in cluster_ports.iter().enumerate() {
            let dir = temp_dir();
            fs::create_dir_all(dir.join("store")).expect("create the node's store directory");
            let mut node = NatsServer {
                binary: binary.clone(),
                child: None,
                port: free_port(),
                dir,
                extra: vec![
                    "-n".into(),
                    format!("node{index}"),
                    "--cluster_name".into(),
                    "follower-maze-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{cluster_port}"),
                    "--routes".into(),
                    routes.clone(),
                ],
            };
            assert!(
                node.spawn_and_wait(),
                "cluster node {index} did not start; its log:\n{}",
                node.log()
            );
            nodes.push(node);
        }
        Some(NatsCluster { nodes })
    }

    /// The nodes' URLs, separated by commas, as `--nats-url` takes them.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(NatsServer::url).collect();
        urls.join(",")
    }
}

impl Drop for NatsServer {
    /// Kills the server, waits for it, and removes its directory.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `nats-server` on `PATH`, else in one of [`FALLBACK_DIRS`].
fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is an executable file.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A loopback port free at the moment (the server may still lose it to a
/// race; [`NatsServer::start`] then tries another).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A fresh directory path under the system's temporary directory.
fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    std::env::temp_dir().join(format!(
        "follower-maze-nats-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}
