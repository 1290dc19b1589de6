//! A cluster of real `follower-maze` binaries, an ingest and edges, as child
//! processes on one NATS server. Needs the test's `mod common` and the
//! `support_binary` module.
#![allow(dead_code)] // Each test file uses its own subset.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::PATIENCE;
use crate::support_binary::{forward_lines, kill_showing_log, last_addr, wait_for_line};

/// How long a node may take to connect to the log and catch up with it.
pub const STARTUP: Duration = Duration::from_secs(60);

/// One cluster process and its log (its stderr).
pub struct Node {
    /// The process.
    pub child: Child,
    /// Where it listens: the event port of an ingest, the client port of an
    /// edge.
    pub addr: SocketAddr,
    /// Its log lines, as they come.
    pub log: mpsc::Receiver<String>,
}

/// Starts `follower-maze MODE --nats-url URL --stream STREAM ARGS...` with
/// both ports free (0); returns it once its log says it listens.
fn start(mode: &str, nats_url: &str, stream: &str, args: &[&str], listening: &str) -> Node {
    let mut child = command(mode, nats_url, stream, args)
        .spawn()
        .expect("the binary starts");
    let log = forward_lines(child.stderr.take().expect("piped stderr"));
    // The lines before the one awaited are kept, to say why a node that
    // never listened did not.
    let mut seen = Vec::new();
    let deadline = Instant::now() + STARTUP;
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains(listening) => break line,
            Ok(line) => seen.push(line),
            Err(err) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "the {mode} never logged {listening:?} within {STARTUP:?} ({err}; exit: \
                     {status:?}); its log:\n{}",
                    seen.join("\n")
                );
            }
        }
    };
    let addr = last_addr(&line);
    Node { child, addr, log }
}

/// The command line of a cluster node, its log (stderr) piped.
pub fn command(mode: &str, nats_url: &str, stream: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_follower-maze"));
    command
        .args([mode, "--nats-url", nats_url, "--stream", stream])
        .args(["--event-port", "0", "--client-port", "0"])
        .args(args)
        .env_remove("eventListenerPort")
        .env_remove("clientListenerPort")
        .env_remove("FOLLOWER_MAZE_NATS_URL")
        .env_remove("FOLLOWER_MAZE_STREAM")
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    command
}

/// An ingest on `stream`, listening for the event source.
pub fn ingest(nats_url: &str, stream: &str, args: &[&str]) -> Node {
    start(
        "ingest",
        nats_url,
        stream,
        args,
        "listening for the event source on",
    )
}

/// An edge on `stream`, caught up and listening for clients.
pub fn edge(nats_url: &str, stream: &str, args: &[&str]) -> Node {
    start("edge", nats_url, stream, args, "listening for clients on")
}

impl Node {
    /// Stops the process with SIGTERM and waits for it.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; panics after [`PATIENCE`].
    pub fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "the node did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The first log line from now on containing `needle`.
    pub fn wait_for_line(&self, needle: &str) -> String {
        wait_for_line(&self.log, needle)
    }
}

impl Drop for Node {
    /// Kills the process; when the test failed, its last log lines go to
    /// stderr first, to tell what the node was doing.
    fn drop(&mut self) {
        let what = format!("the node on {}", self.addr);
        kill_showing_log(&mut self.child, &self.log, &what);
    }
}
