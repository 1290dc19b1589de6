//! The cluster end to end: a real `nats-server` with JetStream, the real
//! binary as one ingest and two edges, and the simulator's clients spread
//! over the edges. Each test skips with one line when `nats-server` is not
//! installed (and fails instead under `FOLLOWER_MAZE_REQUIRE_NATS=1`, as in
//! `.ci/run`).

#[path = "support/common.rs"]
mod common;
#[path = "support/binary.rs"]
mod support_binary;
#[path = "support/cluster.rs"]
mod support_cluster;
#[path = "support/nats.rs"]
mod support_nats;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use follower_maze_sim::{self as sim, SimConfig};
use support_cluster::{Node, edge, ingest};
use support_nats::NatsServer;

/// The stream every test uses (each test has a nats-server of its own).
const STREAM: &str = "follower-maze";

/// An ingest and two edges on `nats`.
fn cluster(nats: &NatsServer) -> (Node, Node, Node) {
    let ingest = ingest(&nats.url(), STREAM, &[]);
    let first = edge(&nats.url(), STREAM, &[]);
    let second = edge(&nats.url(), STREAM, &[]);
    (ingest, first, second)
}

/// A simulator run of `events` events against `ingest`, its clients spread
/// over `edges`.
fn simulation(ingest: &Node, edges: &[&Node], events: u64) -> SimConfig {
    SimConfig {
        total_events: events,
        concurrency_level: 20,
        client_ports: Some(edges.iter().map(|edge| edge.addr.port()).collect()),
        timeout: Duration::from_secs(30),
        ..SimConfig::small(ingest.addr.port(), 0)
    }
}

/// `config` sending its batches one by one, a millisecond apart, so the run
/// lasts long enough (about 4 s for 200,000 events) for something to
/// happen in the middle of it.
fn dripping(config: SimConfig) -> SimConfig {
    SimConfig {
        drip: true,
        drip_pause: Duration::from_millis(1),
        ..config
    }
}

/// Starts `config` on a thread of its own.
fn start_run(config: SimConfig) -> JoinHandle<Result<sim::Report, sim::Failure>> {
    std::thread::spawn(move || sim::run(&config))
}

/// Runs `config`, failing the test with the simulator's reasons.
fn must_pass(config: &SimConfig) -> sim::Report {
    match sim::run(config) {
        Ok(report) => report,
        Err(failure) => panic!("the simulation failed: {failure}"),
    }
}

#[test]
fn a_million_events_reach_every_client_of_two_edges_exactly() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (ingest, first, second) = cluster(&nats);
    // Every id twice, once on each edge: both connections are verified
    // against the exact stream a standalone server would send.
    let report = must_pass(&SimConfig {
        concurrency_level: 100,
        twin_ids: true,
        ..simulation(&ingest, &[&first, &second], 1_000_000)
    });
    assert_eq!(report.events, 1_000_000);
    assert_eq!(report.twin_clients, 100);
    assert!(report.notifications > 0);
}

/// A client of user `id` on `addr`, with a read timeout.
fn client(addr: SocketAddr, id: u64) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("the client connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    writeln!(stream, "{id}").unwrap();
    stream
}

/// Everything `stream` receives until it has been quiet for its read
/// timeout, at least `at_least` bytes (waiting up to 30 s for them).
fn read_until_quiet(stream: &mut TcpStream, at_least: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(_) if received.len() >= at_least || Instant::now() > deadline => return received,
            Err(_) => {}
        }
    }
}

/// Sends, through a new source connection to `ingest`, from seq `first`
/// on, a status update of each of `users`, with a broadcast in place of
/// every seq divisible by 100.
fn send_statuses(ingest: &Node, first: u64, users: RangeInclusive<u64>) {
    let mut lines = Vec::new();
    for (offset, user) in users.enumerate() {
        let seq = first + offset as u64;
        if seq.is_multiple_of(100) {
            lines.extend_from_slice(format!("{seq}|B\r\n").as_bytes());
        } else {
            lines.extend_from_slice(format!("{seq}|S|{user}\r\n").as_bytes());
        }
    }
    let mut source = TcpStream::connect(ingest.addr).expect("the source connects");
    source.write_all(&lines).unwrap();
}

#[test]
fn one_id_on_both_edges_receives_identical_bytes() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (ingest, first, second) = cluster(&nats);
    let mut on_first = client(first.addr, 5);
    let mut on_second = client(second.addr, 5);
    std::thread::sleep(Duration::from_millis(200)); // Both registered.
    // User 5 follows users 101..=150 (seqs 1..=50), then users 101..=300
    // post a status each (seqs 51..=250).
    let mut source = TcpStream::connect(ingest.addr).unwrap();
    let follows: String = (1..=50)
        .map(|seq| format!("{seq}|F|5|{}\n", 100 + seq))
        .collect();
    source.write_all(follows.as_bytes()).unwrap();
    drop(source);
    std::thread::sleep(Duration::from_millis(300));
    send_statuses(&ingest, 51, 101..=300);
    let received_first = read_until_quiet(&mut on_first, 1);
    let received_second = read_until_quiet(&mut on_second, 1);
    let expected: String = (51..=250)
        .filter_map(|seq| match seq {
            100 | 200 => Some(format!("{seq}|B\r\n")),
            _ if seq <= 100 => Some(format!("{seq}|S|{}\r\n", seq + 50)),
            _ => None,
        })
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&received_first),
        expected,
        "user 5 hears from whom it follows, and broadcasts"
    );
    assert!(
        received_first.starts_with(b"51|S|101\r\n"),
        "user 5 hears from whom it follows: {:?}",
        String::from_utf8_lossy(&received_first)
    );
    assert_eq!(
        String::from_utf8_lossy(&received_first),
        String::from_utf8_lossy(&received_second)
    );
}

#[test]
fn an_edge_killed_mid_run_catches_up_and_the_other_edge_notices_nothing() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (ingest, first, second) = cluster(&nats);
    let events = 200_000;
    // The simulated clients are all on the first edge; the second is
    // killed and restarted while they run.
    let run = start_run(dripping(simulation(&ingest, &[&first], events)));
    std::thread::sleep(Duration::from_millis(500));
    second.kill();
    std::thread::sleep(Duration::from_millis(300));
    let second = edge(&nats.url(), STREAM, &[]);
    assert!(!run.is_finished(), "the edge came back while events flowed");
    let report = run
        .join()
        .unwrap()
        .unwrap_or_else(|failure| panic!("the first edge's clients noticed: {failure}"));
    assert_eq!(report.events, events);
    // The restarted edge rebuilt the follow graph from the log: one id on
    // both edges hears the same status updates of the users it follows.
    let id = 3;
    let mut on_first = client(first.addr, id);
    let mut on_second = client(second.addr, id);
    std::thread::sleep(Duration::from_millis(200));
    send_statuses(&ingest, events + 1, 1..=1000);
    let received_first = read_until_quiet(&mut on_first, 1);
    let received_second = read_until_quiet(&mut on_second, 1);
    assert!(
        received_first.split(|&b| b == b'\n').count() > 10,
        "user {id} follows users of the simulated run: {:?}",
        String::from_utf8_lossy(&received_first)
    );
    assert_eq!(
        String::from_utf8_lossy(&received_first),
        String::from_utf8_lossy(&received_second)
    );
}

#[test]
fn nothing_is_lost_when_nats_server_restarts_mid_run() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let (ingest, first, second) = cluster(&nats);
    let events = 200_000;
    let run = start_run(dripping(simulation(&ingest, &[&first, &second], events)));
    std::thread::sleep(Duration::from_millis(500));
    nats.restart();
    assert!(
        !run.is_finished(),
        "nats-server restarted while events flowed"
    );
    let report = run
        .join()
        .unwrap()
        .unwrap_or_else(|failure| panic!("events were lost across the restart: {failure}"));
    assert_eq!(report.events, events);
    drop((ingest, first, second));
}

#[test]
fn a_second_ingest_on_the_same_stream_is_refused() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let first = ingest(&nats.url(), STREAM, &[]);
    let mut second = ingest(&nats.url(), STREAM, &[]);
    let reader = edge(&nats.url(), STREAM, &[]);
    let mut witness = client(reader.addr, 1);
    std::thread::sleep(Duration::from_millis(200));
    // The first appends after the second has read where the log ends...
    let mut source = TcpStream::connect(first.addr).unwrap();
    source.write_all(b"1|B\n2|B\n").unwrap();
    assert_eq!(read_until_quiet(&mut witness, 8), b"1|B\n2|B\n", "stored");
    // ...so the second's first append is refused, and it stops.
    let mut late = TcpStream::connect(second.addr).unwrap();
    late.write_all(b"3|B\n").unwrap();
    // It ends without 1 and 2, so they are given up on one hole timeout
    // later (a connected source's silence would hold them for longer).
    late.shutdown(std::net::Shutdown::Write).unwrap();
    let refusal = second.wait_for_line("another ingest");
    assert!(refusal.contains("ERROR"), "{refusal}");
    assert!(
        !second.wait().success(),
        "the refused ingest exits with failure"
    );
    drop(first);
}

#[test]
fn an_edge_started_late_gives_its_clients_no_history() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let ingest = ingest(&nats.url(), STREAM, &[]);
    // A witness on an edge that was there from the start: once it has the
    // last broadcast, the whole history is stored.
    let early = edge(&nats.url(), STREAM, &[]);
    let mut witness = client(early.addr, 1);
    std::thread::sleep(Duration::from_millis(200));
    let history = 300_000u64;
    let broadcasts: String = (1..=history).map(|seq| format!("{seq}|B\n")).collect();
    let mut source = TcpStream::connect(ingest.addr).unwrap();
    source.write_all(broadcasts.as_bytes()).unwrap();
    let seen = read_until_quiet(&mut witness, broadcasts.len());
    assert_eq!(seen.len(), broadcasts.len(), "the witness got the history");
    // A new edge takes clients only once it has routed all of it.
    let late = edge(&nats.url(), STREAM, &[]);
    let mut newcomer = client(late.addr, 2);
    std::thread::sleep(Duration::from_millis(200));
    let next = history + 1;
    source.write_all(format!("{next}|B\n").as_bytes()).unwrap();
    let got = read_until_quiet(&mut newcomer, 1);
    assert!(
        got == format!("{next}|B\n").as_bytes(),
        "the newcomer gets only what came after it, not {} bytes starting {:?}",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(40)])
    );
}

#[test]
fn a_new_run_while_the_log_stalls_loses_nothing() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let ingest = ingest(&nats.url(), STREAM, &[]);
    let edge = edge(&nats.url(), STREAM, &[]);
    let mut witness = client(edge.addr, 1);
    std::thread::sleep(Duration::from_millis(200));
    // With the log stalled, a run of 62,500 broadcasts, seq 1 last so the
    // source is read to its end before any is released, fills the ingest
    // to its bound of unstored records (the run's start, 62 full batches
    // and a quiet one), so it stops reading...
    nats.freeze();
    let first_run: String = (1..=62_500).map(|seq| format!("{seq}|B\n")).collect();
    let mut source = TcpStream::connect(ingest.addr).unwrap();
    let (first, rest) = first_run.split_at("1|B\n".len());
    source.write_all(rest.as_bytes()).unwrap();
    source.write_all(first.as_bytes()).unwrap();
    drop(source);
    std::thread::sleep(Duration::from_millis(300));
    // ...and a new source starting over waits: its run begins once the log
    // takes records again, after every event of the old one.
    let mut next = TcpStream::connect(ingest.addr).unwrap();
    next.write_all(b"1|B\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    nats.resume();
    let expected = first_run + "1|B\n";
    let got = read_until_quiet(&mut witness, expected.len());
    assert!(
        got == expected.as_bytes(),
        "every event of both runs, in order: {} of {} bytes, ending {:?}",
        got.len(),
        expected.len(),
        String::from_utf8_lossy(&got[got.len().saturating_sub(40)..])
    );
    drop(next);
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn ingest_and_edge_serve_metrics_too() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (ingest_port, edge_port) = (free_port(), free_port());
    let ingest_metrics = format!("127.0.0.1:{ingest_port}");
    let edge_metrics = format!("127.0.0.1:{edge_port}");
    let ingest = ingest(&nats.url(), STREAM, &["--metrics-addr", &ingest_metrics]);
    let edge = edge(&nats.url(), STREAM, &["--metrics-addr", &edge_metrics]);
    let mut witness = client(edge.addr, 1);
    std::thread::sleep(Duration::from_millis(200));
    let mut source = TcpStream::connect(ingest.addr).unwrap();
    source.write_all(b"1|B\n2|B\n").unwrap();
    assert_eq!(read_until_quiet(&mut witness, 8), b"1|B\n2|B\n");
    let scrape = |addr: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        page
    };
    let ingest_page = scrape(&ingest_metrics);
    assert!(
        ingest_page.contains("\nfollower_maze_events_routed_total 2\n"),
        "{ingest_page}"
    );
    let edge_page = scrape(&edge_metrics);
    assert!(
        edge_page.contains("\nfollower_maze_notifications_total 2\n"),
        "{edge_page}"
    );
    assert!(
        edge_page.contains("\nfollower_maze_clients 1\n"),
        "{edge_page}"
    );
}
