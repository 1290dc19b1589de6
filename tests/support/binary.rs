//! The real `follower-maze` binary as a child process, for black-box tests:
//! start it with flags and environment, read its log lines (on its stderr)
//! and its stdout, signal it, and read its CPU time and memory from `/proc`.
//! Needs the test's `mod common`.
#![allow(dead_code)] // Each test file uses its own subset.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::PATIENCE;

/// A running server binary and its log.
pub struct Binary {
    /// The process.
    pub child: Child,
    /// Where its event source connects.
    pub event_addr: SocketAddr,
    /// Where its clients connect.
    pub client_addr: SocketAddr,
    /// Its log lines (its stderr), as they come.
    pub log: mpsc::Receiver<String>,
    /// Everything it writes to stdout, once it has exited.
    stdout: Option<JoinHandle<Vec<u8>>>,
}

impl Binary {
    /// Starts the binary with `args` and `env`, optionally with the open-file
    /// limit (soft and hard) set to `fd_limit`; waits for its listening line.
    pub fn start(args: &[&str], env: &[(&str, String)], fd_limit: Option<u64>) -> Binary {
        let mut command = Command::new(env!("CARGO_BIN_EXE_follower-maze"));
        command
            .args(args)
            .env_remove("eventListenerPort")
            .env_remove("clientListenerPort")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(limit) = fd_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; the closure touches
            // nothing but its own copy of `limit`.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("the binary starts");
        let log = forward_lines(child.stderr.take().expect("piped stderr"));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            bytes
        });
        // Built before waiting, so a binary that never says it listens is
        // killed when the wait panics.
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut binary = Binary {
            child,
            event_addr: unknown,
            client_addr: unknown,
            log,
            stdout: Some(stdout),
        };
        binary.event_addr = wait_for_addr(&binary.log, "listening for the event source on");
        binary.client_addr = wait_for_addr(&binary.log, "listening for clients on");
        binary
    }

    /// Everything the process wrote to stdout; waits for it to exit (call
    /// after [`Binary::wait`]).
    pub fn stdout(&mut self) -> Vec<u8> {
        self.wait();
        let reading = self.stdout.take().expect("stdout is taken once");
        reading.join().expect("the stdout reader does not panic")
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let result = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(result, 0, "kill failed");
    }

    /// Waits for the process to exit; panics after [`PATIENCE`].
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "the binary did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// CPU time (user + system) the process has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Binary {
    /// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`...).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in /proc status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Binary {
    /// Kills the process; when the test failed, its last log lines go to
    /// stderr first, to tell what the server was doing.
    fn drop(&mut self) {
        kill_showing_log(&mut self.child, &self.log, "the server");
    }
}

/// Sends each line of `output` (a child's stderr, where it logs) down a
/// channel from a thread of its own.
pub fn forward_lines(output: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The address at the end of the first log line containing `needle`;
/// panics after [`PATIENCE`].
pub fn wait_for_addr(log: &mpsc::Receiver<String>, needle: &str) -> SocketAddr {
    last_addr(&wait_for_line(log, needle))
}

/// The last address in a log line.
pub fn last_addr(line: &str) -> SocketAddr {
    line.split_whitespace()
        .filter_map(|word| word.trim_end_matches([';', ',']).parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// The first log line containing `needle`; panics after [`PATIENCE`].
pub fn wait_for_line(log: &mpsc::Receiver<String>, needle: &str) -> String {
    wait_for_line_within(log, needle, PATIENCE)
}

/// The first log line containing `needle`; panics after `within`.
pub fn wait_for_line_within(
    log: &mpsc::Receiver<String>,
    needle: &str,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(err) => panic!("no log line with {needle:?} within {within:?}: {err}"),
        }
    }
}

/// Kills `child` and waits for it; when the test is failing, the last 30
/// lines of its `log` go to stderr first, headed by `what` it was.
pub fn kill_showing_log(child: &mut Child, log: &mpsc::Receiver<String>, what: &str) {
    let _ = child.kill();
    let _ = child.wait();
    if std::thread::panicking() {
        let lines: Vec<String> = log.try_iter().collect();
        eprintln!("--- last log lines of {what} ---");
        for line in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("{line}");
        }
    }
}
