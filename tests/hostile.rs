//! Hostile input over real sockets, as a smoke test of the whole path:
//! garbage, binary bytes and a 1 MiB line from the source are skipped and
//! counted, and the lines around them delivered. The rules for hostile
//! peers (malformed and overlong lines, holes, late and duplicate events,
//! bad client ids, the client limit, a second source, new runs, stuck and
//! slow clients, back-pressure) are the core's, tested in memory in
//! `tests/engine/`.

#[path = "support/bad_lines.rs"]
mod bad_lines;
#[path = "support/common.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bad_lines::{bad_source_lines, between_good_lines};
use common::*;
use follower_maze::Config;

#[test]
fn malformed_source_lines_are_skipped_and_counted() {
    let bad = bad_source_lines();
    let (stream, expected) = between_good_lines(&bad);
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1]);
    source.write_all(&stream).unwrap();
    assert_receives(&mut clients[0], &expected);
    let stats = wait_for(&server, "every bad line counted", |s| {
        s.malformed == bad.len() as u64
    });
    assert_eq!(stats.events_routed, bad.len() as u64 + 1);
}

/// Sends `prefix`, then 1 MiB blocks of `byte` as fast as the connection
/// takes them, from a thread of its own, until a write fails (the server
/// closed it) or the returned guard is dropped.
fn flood(addr: std::net::SocketAddr, prefix: &'static [u8], byte: u8) -> Flood {
    let stop = Arc::new(AtomicBool::new(false));
    let stream = TcpStream::connect(addr).expect("the flooder connects");
    // Short, so the thread sees the guard drop even when the server does
    // not read.
    stream
        .set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let thread = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut stream = stream;
            let block = vec![byte; 1 << 20];
            let mut written = 0u64;
            if stream.write_all(prefix).is_err() {
                return written;
            }
            while !stop.load(Ordering::Relaxed) {
                match stream.write(&block) {
                    Ok(n) => written += n as u64,
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
            written
        }
    });
    Flood {
        stop,
        thread: Some(thread),
    }
}

/// A flooding connection's thread; dropping it stops the flood.
struct Flood {
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread, which returns the bytes it wrote.
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Flood {
    /// Stops the flood; returns the bytes written.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("joined once");
        thread.join().expect("the flooder does not panic")
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Lines `seq|B` for seqs `1..=count`.
fn broadcasts(count: u64) -> Vec<u8> {
    (1..=count)
        .flat_map(|seq| format!("{seq}|B\n").into_bytes())
        .collect()
}

#[test]
fn clients_flooding_an_id_line_with_no_newline_are_closed_at_the_limit() {
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1]);
    let flooders: Vec<Flood> = (0..2)
        .map(|_| flood(server.client_addr(), b"", b'7'))
        .collect();
    wait_for(&server, "both flooders closed for their id", |s| {
        s.bad_ids == 2
    });
    let events = broadcasts(1000);
    source.write_all(&events).unwrap();
    assert_receives(&mut clients[0], &events);
    for flooder in flooders {
        let written = flooder.stop();
        assert!(written < 64 << 20, "closed early: it wrote {written} bytes");
    }
}

#[test]
fn clients_flooding_bytes_after_their_id_do_not_stall_the_others() {
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1]);
    let flooders: Vec<Flood> = (0..2)
        .map(|_| flood(server.client_addr(), b"2\n", b'x'))
        .collect();
    wait_for(&server, "both flooders registered", |s| s.clients == 3);
    let events = broadcasts(1000);
    source.write_all(&events).unwrap();
    assert_receives(&mut clients[0], &events);
    assert_eq!(
        server.stats().clients,
        3,
        "sending is no reason to close one"
    );
    let written: u64 = flooders.into_iter().map(Flood::stop).sum();
    assert!(written > 0, "the flooders flooded");
}

#[test]
fn lines_far_apart_do_not_pin_the_loop() {
    // 20,000 lines, each a whole default window (2^20 seqs) after the last:
    // each gives up on a million missing seqs, which must cost the frames
    // held, not the seqs skipped. The source then ends, so the last line's
    // hole is given up on a hole timeout later.
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[2]);
    let lines: Vec<u8> = (1..=20_000u64)
        .flat_map(|k| format!("{}|P|1|2\n", k << 20).into_bytes())
        .collect();
    source.write_all(&lines).unwrap();
    source.shutdown(std::net::Shutdown::Write).unwrap();
    assert_receives(&mut clients[0], &lines);
    let stats = wait_for(&server, "every line routed", |s| s.events_routed == 20_000);
    assert_eq!(stats.skipped, (20_000 << 20) - 20_000);
}

#[test]
fn a_silent_source_does_not_hold_the_event_port() {
    // A source that connects and says nothing, then the real one: the
    // silent one yields after --source-idle-ms and the real one is served.
    let config = Config {
        source_idle: Duration::from_millis(300),
        ..Config::ephemeral()
    };
    let (server, silent, mut clients) = start_with_clients(config, &[2]);
    let mut real = connect_source(&server);
    real.write_all(b"1|P|1|2\n2|B\n").unwrap();
    assert_receives(&mut clients[0], b"1|P|1|2\n2|B\n");
    let stats = wait_for(&server, "the silent source closed", |s| {
        s.sources_idle_closed == 1
    });
    assert_eq!(stats.sources_refused, 0);
    drop(silent);
}

#[test]
fn connections_that_never_send_an_id_do_not_lock_clients_out() {
    // More id-less connections than --max-clients and than the pending
    // cap: they neither count against the client limit (50 wait, against
    // a limit of 20) nor keep a newer connection out; the oldest of them
    // are closed. (65 stay within the 70 connections a turn may have open
    // or closing, so none of the burst is refused.)
    let config = Config {
        max_clients: 20,
        max_pending_clients: 50,
        ..Config::ephemeral()
    };
    let server = start(config);
    let mut source = connect_source(&server);
    let silent: Vec<TcpStream> = (0..65)
        .map(|_| TcpStream::connect(server.client_addr()).unwrap())
        .collect();
    wait_for(&server, "the oldest 15 closed", |s| {
        s.clients_evicted == 15 && s.clients_awaiting_id == 50
    });
    let mut clients = connect_clients(&server, &[7]);
    source.write_all(b"1|P|1|7\n").unwrap();
    assert_receives(&mut clients[0], b"1|P|1|7\n");
    assert_eq!(server.stats().clients_refused, 0);
    drop(silent);
}

#[test]
fn an_id_sent_late_among_idle_connections_goes_in_before_the_next_event() {
    // Connections that never send an id are not read on every source read
    // (the engine asks which waiting ones are readable), yet a client that
    // sends its id well after connecting is registered on its own, and one
    // that sends its id right before an event is written receives it.
    let server = start(Config::ephemeral());
    let mut source = connect_source(&server);
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(server.client_addr()).unwrap())
        .collect();
    let mut late = TcpStream::connect(server.client_addr()).unwrap();
    wait_for(&server, "all wait for their id", |s| {
        s.clients_awaiting_id == 501
    });
    late.write_all(b"7\n").unwrap();
    wait_for(&server, "the late one registered", |s| s.clients == 1);
    let mut eager = TcpStream::connect(server.client_addr()).unwrap();
    wait_for(&server, "the eager one waits", |s| {
        s.clients_awaiting_id == 501
    });
    eager.write_all(b"8\n").unwrap();
    source.write_all(b"1|P|1|8\n2|P|1|7\n").unwrap();
    assert_receives(&mut eager, b"1|P|1|8\n");
    assert_receives(&mut late, b"2|P|1|7\n");
    drop(idle);
}
