//! A real event source process that stops in the middle of a batch (as a
//! garbage collector's pause or a descheduled process looks from the
//! server) loses nothing: the server's hole timer counts the source's
//! activity, not the clock.
//!
//! The source is this test binary run again as a child process: it sends
//! shuffled batches of 100 lines, as the original test client does, and
//! in the middle it sends one batch without its lowest seq and stops itself
//! with SIGSTOP. The test keeps it stopped for 3 s, three times the hole
//! timeout, then resumes it with SIGCONT, and it sends the missing line
//! and the rest.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/common.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use binary::{Binary, wait_for_line};
use common::PATIENCE;

/// This test's name: the child runs it again, as the source.
const TEST_NAME: &str = "a_source_stopped_mid_batch_loses_nothing";
/// The variable that makes this test binary the source, at the address
/// it holds.
const SOURCE_ROLE: &str = "FOLLOWER_MAZE_TEST_PAUSED_SOURCE";
/// Events in all, in batches of [`BATCH`].
const EVENTS: u64 = 6_000;
/// Lines in a batch, shuffled within it.
const BATCH: u64 = 100;
/// The batch sent without its lowest seq before the source stops itself.
const STOPPED_BATCH: u64 = 30;
/// Users the events name; the connected clients are the first [`CLIENTS`].
const USERS: u64 = 200;
/// Clients connected.
const CLIENTS: u64 = 20;
/// How long the source stays stopped.
const STOPPED_FOR: Duration = Duration::from_secs(3);

/// Event `seq`: the first of each batch (the one held back) and every
/// 50th a broadcast, the rest private messages to a user spread over
/// [`USERS`].
fn event(seq: u64) -> String {
    if seq.is_multiple_of(50) || seq % BATCH == 1 {
        format!("{seq}|B\n")
    } else {
        format!("{seq}|P|{}|{}\n", seq % 7, (seq * 7919) % USERS + 1)
    }
}

/// What user `id` is owed: its private messages and the broadcasts, in
/// order.
fn owed(id: u64) -> String {
    (1..=EVENTS)
        .map(event)
        .filter(|line| line.ends_with("|B\n") || line.ends_with(&format!("|{id}\n")))
        .collect()
}

/// The seqs of batch `batch` (from 0), shuffled the same way every time.
fn shuffled_batch(batch: u64) -> Vec<u64> {
    let first = batch * BATCH + 1;
    let mut seqs: Vec<u64> = (first..first + BATCH).collect();
    for i in 0..seqs.len() {
        let j = (i * 37 + 11) % seqs.len();
        seqs.swap(i, j);
    }
    seqs
}

/// The child's part: the event source, stopping itself mid-batch.
fn run_source(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("the source connects");
    stream.set_nodelay(true).unwrap();
    for batch in 0..EVENTS / BATCH {
        let seqs = shuffled_batch(batch);
        let lowest = batch * BATCH + 1;
        let held_back = (batch == STOPPED_BATCH).then_some(lowest);
        let lines: String = seqs
            .iter()
            .filter(|&&seq| Some(seq) != held_back)
            .map(|&seq| event(seq))
            .collect();
        stream.write_all(lines.as_bytes()).unwrap();
        if let Some(seq) = held_back {
            stream.flush().unwrap();
            // SAFETY: raise(3) on this process; it resumes on SIGCONT.
            assert_eq!(unsafe { libc::raise(libc::SIGSTOP) }, 0);
            stream.write_all(event(seq).as_bytes()).unwrap();
        }
    }
}

/// The state letter of process `pid` (`T` when stopped), from `/proc`.
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|end| stat[end + 2..].chars().next())
        .unwrap_or('?')
}

/// Reads from `client` until it has `len` bytes or the wait runs out.
fn read_bytes(client: &mut TcpStream, len: usize, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut received = Vec::with_capacity(len);
    let mut buf = [0u8; 16 * 1024];
    while received.len() < len && Instant::now() < deadline {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
            Err(err) => panic!("client read failed: {err}"),
        }
    }
    received
}

#[test]
fn a_source_stopped_mid_batch_loses_nothing() {
    if let Ok(addr) = std::env::var(SOURCE_ROLE) {
        return run_source(addr.parse().expect("an address"));
    }
    let args = [
        "--event-port",
        "0",
        "--client-port",
        "0",
        "--hole-timeout-ms",
        "1000",
        "--stats-interval-ms",
        "50",
    ];
    let mut server = Binary::start(&args, &[], None);
    let mut clients: Vec<TcpStream> = (1..=CLIENTS)
        .map(|id| {
            let mut client = TcpStream::connect(server.client_addr).unwrap();
            client
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            write!(client, "{id}\r\n").unwrap();
            client
        })
        .collect();
    wait_for_line(&server.log, &format!("clients {CLIENTS} (+0 awaiting id)"));

    let mut source = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(SOURCE_ROLE, server.event_addr.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("the source starts");
    let pid = source.id();
    let start = Instant::now();
    while process_state(pid) != 'T' {
        assert!(
            start.elapsed() < PATIENCE,
            "the source never stopped itself"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(STOPPED_FOR);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGCONT) }, 0);
    let status = source.wait().unwrap();
    assert!(status.success(), "the source ran to its end: {status}");

    for (i, client) in clients.iter_mut().enumerate() {
        let id = i as u64 + 1;
        let expected = owed(id);
        let received = read_bytes(client, expected.len(), PATIENCE);
        assert!(
            received == expected.as_bytes(),
            "user {id} got {} bytes, owed {}; first difference at line {}",
            received.len(),
            expected.len(),
            received
                .split(|&b| b == b'\n')
                .zip(expected.as_bytes().split(|&b| b == b'\n'))
                .position(|(got, owed)| got != owed)
                .map_or("none".to_string(), |line| line.to_string()),
        );
    }
    server.signal(libc::SIGTERM);
    assert!(server.wait().success());
    // The summary at exit, not a periodic stats line.
    let summary = wait_for_line(&server.log, " notifications (");
    assert!(
        summary.contains("skipped 0, late 0"),
        "nothing given up on: {summary}"
    );
}
