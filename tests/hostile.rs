//! The server among peers that stall, lie and disappear: slow consumers,
//! back-pressure, holes, late and duplicate events, malformed input, bad
//! client ids, source reconnects and the client limit.

#[path = "support/bad_lines.rs"]
mod bad_lines;
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bad_lines::{bad_source_lines, between_good_lines};
use common::*;
use follower_maze::{BackgroundServer, Config, Stats};

/// The queued-output budget of the budget tests.
const BUDGET: usize = 64 * 1024;
/// The clients the budget tests connect.
const BUDGET_READERS: [u64; 5] = [1, 2, 3, 4, 5];
/// What the budget tests send, as `(count, width)` of [`padded_broadcasts`]:
/// 1 MB to each reader, far more than [`BUDGET`] in all.
const BUDGET_BROADCASTS: (u64, usize) = (2000, 500);

/// A server whose queued output may reach only [`BUDGET`], with its source
/// and [`BUDGET_READERS`] connected.
fn start_budgeted() -> (BackgroundServer, TcpStream, Vec<TcpStream>) {
    let config = Config {
        max_queued_bytes: BUDGET,
        max_line: 2048,
        ..Config::ephemeral()
    };
    start_with_clients(config, &BUDGET_READERS)
}

/// Stops `server` and asserts its queued output never passed [`BUDGET`] by
/// more than one broadcast to every reader: the server checks the budget
/// after every line. Returns the final stats.
fn stop_within_budget(server: BackgroundServer) -> Stats {
    let stats = server.stop().unwrap();
    let (_, width) = BUDGET_BROADCASTS;
    let fanout = BUDGET_READERS.len() * (width + "|B\r\n".len());
    assert!(
        stats.queued_bytes_peak <= BUDGET + fanout,
        "queued {} bytes, budget {BUDGET}",
        stats.queued_bytes_peak
    );
    stats
}

/// Runs `send` while each reader, on a thread of its own, reads lines
/// `1..=count` of `padded_broadcasts(1, count, width)`; then panics unless
/// every reader got exactly those lines, in order.
fn read_all_broadcasts_while(
    readers: Vec<TcpStream>,
    count: u64,
    width: usize,
    send: impl FnOnce(),
) {
    let expected = padded_broadcasts(1, count, width);
    let last = padded_broadcasts(count, 1, width);
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut reader| {
            let (expected, last) = (expected.clone(), last.clone());
            std::thread::spawn(move || {
                let received = read_through(&mut reader, &last);
                assert!(
                    received == expected,
                    "a reader missed or misordered broadcasts"
                );
            })
        })
        .collect();
    send();
    for thread in threads {
        thread
            .join()
            .expect("every reader got every broadcast in order");
    }
}

#[test]
fn a_client_that_never_reads_is_cut_while_fifty_others_get_everything() {
    let _heavy = heavy();
    let ids: Vec<u64> = (1..=50).collect();
    let (server, mut source, readers) = start_with_clients(
        Config {
            write_deadline: Duration::from_millis(500),
            max_line: 2048,
            ..Config::ephemeral()
        },
        &ids,
    );
    let mut silent = never_reading_client(&server, 1000);
    let (count, width) = (3000, 1000); // about 3 MB to every client
    read_all_broadcasts_while(readers, count, width, || {
        source
            .write_all(&padded_broadcasts(1, count, width))
            .unwrap();
    });
    // Only the silent client was cut: the readers got everything.
    wait_for(&server, "the slow consumer cut", |s| s.slow_consumers == 1);
    assert_closed(&mut silent);
    let stats = server.stop().unwrap();
    assert_eq!((stats.slow_consumers, stats.cut_write_deadline), (1, 1));
}

#[test]
fn a_client_that_stops_reading_is_cut_at_the_write_deadline_even_without_traffic() {
    let _heavy = heavy();
    let deadline = Duration::from_millis(200);
    let (server, mut source, mut readers) = start_with_clients(
        Config {
            write_deadline: deadline,
            max_line: 2048,
            ..Config::ephemeral()
        },
        &[2],
    );
    let mut silent = never_reading_client(&server, 1);
    // Enough to fill the silent client's socket buffers; then no more
    // traffic, so only the deadline (checked with no event to trigger it)
    // can cut it.
    let stream = padded_broadcasts(1, 2000, 1000);
    source.write_all(&stream).unwrap();
    assert_receives(&mut readers[0], &stream);
    let stats = wait_for(&server, "the write-deadline cut", |s| s.slow_consumers == 1);
    assert_eq!(
        (stats.cut_write_deadline, stats.clients),
        (1, 1),
        "{stats:?}"
    );
    assert_closed(&mut silent);
    // The reader owes nothing: idle for many deadlines, it is never cut.
    assert_silent(&mut readers[0], deadline * 5);
    let stats = server.stop().unwrap();
    assert_eq!(stats.slow_consumers, 1, "{stats:?}");
}

#[test]
fn back_pressure_bounds_queued_output_and_loses_nothing() {
    let _heavy = heavy();
    let (server, mut source, readers) = start_budgeted();
    let (count, width) = BUDGET_BROADCASTS;
    // Slow readers: small reads with pauses.
    let expected = padded_broadcasts(1, count, width);
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut reader| {
            let expected = expected.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut received = Vec::new();
                let mut buf = [0u8; 8192];
                while received.len() < expected.len() {
                    let n = reader.read(&mut buf).expect("read");
                    assert!(n > 0, "closed early");
                    received.extend_from_slice(&buf[..n]);
                    std::thread::sleep(Duration::from_micros(200));
                }
                assert!(received == expected, "misordered or altered");
            })
        })
        .collect();
    source.write_all(&expected).unwrap();
    for thread in threads {
        thread
            .join()
            .expect("every slow reader got everything in order");
    }
    let stats = stop_within_budget(server);
    assert!(
        stats.source_pauses > 0,
        "the source was never paused: {stats:?}"
    );
    assert_eq!(stats.slow_consumers, 0);
}

#[test]
fn a_hole_is_skipped_after_the_timeout_then_events_flow() {
    let (server, mut source, mut clients) = start_with_clients(short_hole_timeout(), &[1]);
    source
        .write_all(b"1|P|0|1\r\n3|P|0|1\r\n4|P|0|1\r\n")
        .unwrap();
    assert_receives(&mut clients[0], b"1|P|0|1\r\n");
    assert_receives(&mut clients[0], b"3|P|0|1\r\n4|P|0|1\r\n");
    source.write_all(b"2|P|0|1\r\n5|P|0|1\r\n").unwrap();
    assert_receives(&mut clients[0], b"5|P|0|1\r\n");
    let stats = server.stop().unwrap();
    assert_eq!((stats.skipped, stats.late), (1, 1));
}

#[test]
fn a_full_window_skips_the_hole_without_waiting() {
    let (server, mut source, mut clients) = start_with_clients(
        Config {
            window_capacity: 16,
            hole_timeout: Duration::from_secs(60),
            ..Config::ephemeral()
        },
        &[1],
    );
    let mut events = Vec::new();
    for seq in 2..=20 {
        writeln!(events, "{seq}|P|0|1").unwrap();
    }
    source.write_all(&events).unwrap();
    // 17 does not fit while 1 is missing, so 1 is given up on; 2..=17 flow,
    // and 18..=20 follow in order.
    assert_receives(&mut clients[0], &events);
    assert_eq!(server.stop().unwrap().skipped, 1);
}

#[test]
fn duplicate_and_late_events_are_dropped_and_counted() {
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1]);
    source
        .write_all(b"1|P|0|1\n3|P|0|1\n3|P|0|1\n2|P|0|1\n1|P|0|1\n4|P|0|1\n")
        .unwrap();
    assert_receives(&mut clients[0], b"1|P|0|1\n2|P|0|1\n3|P|0|1\n4|P|0|1\n");
    let stats = server.stop().unwrap();
    assert_eq!((stats.duplicates, stats.late), (1, 1));
}

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

#[test]
fn an_endless_unterminated_line_at_the_end_is_dropped_and_the_server_lives() {
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1]);
    source.write_all(b"1|P|0|1\n").unwrap();
    source.write_all(&vec![b'9'; 1 << 20]).unwrap();
    drop(source);
    assert_receives(&mut clients[0], b"1|P|0|1\n");
    wait_for(&server, "the source gone", |s| {
        !s.source_connected && s.malformed == 1
    });
    let mut source = connect_source(&server);
    source.write_all(b"2|P|0|1\n").unwrap();
    assert_receives(&mut clients[0], b"2|P|0|1\n");
}

#[test]
fn bad_client_ids_close_only_that_client() {
    let (server, mut source, mut good) = start_with_clients(
        Config {
            id_timeout: Duration::from_millis(100),
            ..Config::ephemeral()
        },
        &[1],
    );
    let bad_lines: [&[u8]; 5] = [
        b"abc\r\n",
        b"\r\n",
        b"12 \n",
        b"-5\n",
        b"123456789012345678901234567890123\n",
    ];
    let mut bad: Vec<TcpStream> = bad_lines
        .iter()
        .map(|line| {
            let mut stream = TcpStream::connect(server.client_addr()).unwrap();
            stream.write_all(line).unwrap();
            stream
        })
        .collect();
    // One that never sends an id at all.
    bad.push(TcpStream::connect(server.client_addr()).unwrap());
    for stream in &mut bad {
        assert_closed(stream);
    }
    let stats = wait_for(&server, "bad ids counted", |s| s.bad_ids == 6);
    assert_eq!(stats.clients, 1);
    source.write_all(b"1|B\n").unwrap();
    assert_receives(&mut good[0], b"1|B\n");
}

#[test]
fn a_second_concurrent_source_is_refused() {
    let server = start(Config::ephemeral());
    let mut first = connect_source(&server);
    wait_for(&server, "the first source", |s| s.source_connected);
    let mut second = connect_source(&server);
    assert_closed(&mut second);
    wait_for(&server, "the refusal counted", |s| s.sources_refused == 1);
    let mut clients = connect_clients(&server, &[1]);
    first.write_all(b"1|B\n").unwrap();
    assert_receives(&mut clients[0], b"1|B\n");
}

#[test]
fn a_new_source_carries_on_or_starts_a_new_run() {
    let server = start(Config::ephemeral());
    let mut clients = connect_clients(&server, &[1, 2]);
    // Run one, in two connections: 1 follows 2, then 2's status reaches 1.
    let mut source = connect_source(&server);
    source.write_all(b"1|F|1|2\n2|P|2|1\n").unwrap();
    drop(source);
    wait_for(&server, "the first source gone", |s| {
        !s.source_connected && s.events_routed == 2
    });
    let mut source = connect_source(&server);
    source.write_all(b"3|S|2\n").unwrap();
    assert_receives(&mut clients[0], b"2|P|2|1\n3|S|2\n");
    drop(source);
    // One snapshot with the event routed and the source gone: a snapshot is
    // published after the flush, so `!source_connected` alone may be stale.
    wait_for(&server, "the second source gone", |s| {
        !s.source_connected && s.events_routed == 3
    });
    // Run two starts over at 1 (shuffled): the old follow is gone.
    let mut source = connect_source(&server);
    source.write_all(b"2|S|2\n1|P|1|2\n3|B\n").unwrap();
    assert_receives(&mut clients[0], b"3|B\n");
    assert_receives(&mut clients[1], b"1|F|1|2\n1|P|1|2\n3|B\n");
    let stats = server.stop().unwrap();
    assert_eq!((stats.runs, stats.late, stats.skipped), (1, 0, 0));
}

#[test]
fn connections_past_the_client_limit_are_closed_at_once() {
    let (server, mut source, mut clients) = start_with_clients(
        Config {
            max_clients: 3,
            ..Config::ephemeral()
        },
        &[1, 2, 3],
    );
    let mut extra = TcpStream::connect(server.client_addr()).unwrap();
    assert_closed(&mut extra);
    wait_for(&server, "the refusal counted", |s| s.clients_refused == 1);
    source.write_all(b"1|B\n").unwrap();
    for client in &mut clients {
        assert_receives(client, b"1|B\n");
    }
}

#[test]
fn a_new_run_after_a_short_run_is_recognised_whatever_its_first_line() {
    use follower_maze_sim::{self as sim, SimConfig};
    let server = start(Config::ephemeral());
    let (event_port, client_port) = (server.event_addr().port(), server.client_addr().port());
    let short = SimConfig {
        total_events: 10,
        ..SimConfig::small(event_port, client_port)
    };
    sim::run(&short).expect("the short run passes");
    // One shuffled batch of 1000: its first line is almost surely above 11.
    let long = SimConfig {
        total_events: 1000,
        max_event_source_batch_size: 1000,
        concurrency_level: 5,
        number_of_users: Some(10),
        ..SimConfig::small(event_port, client_port)
    };
    sim::run(&long).expect("the second run passes");
    let stats = server.stop().unwrap();
    assert_eq!((stats.runs, stats.late), (1, 0));
}

/// Sends `padded_broadcasts(2..=count)` first (held in the window behind the
/// missing seq 1), waits until the server holds them all, then sends seq 1.
fn fill_a_long_hole(server: &BackgroundServer, source: &mut TcpStream, count: u64, width: usize) {
    source
        .write_all(&padded_broadcasts(2, count - 1, width))
        .unwrap();
    wait_for(server, "the run held behind the hole", |s| {
        s.window_depth == count as usize - 1
    });
    source.write_all(&padded_broadcasts(1, 1, width)).unwrap();
}

#[test]
fn filling_a_long_hole_respects_the_queued_output_budget() {
    let _heavy = heavy();
    let (server, mut source, readers) = start_budgeted();
    let (count, width) = BUDGET_BROADCASTS; // all released at once
    read_all_broadcasts_while(readers, count, width, || {
        fill_a_long_hole(&server, &mut source, count, width);
    });
    stop_within_budget(server);
}

#[test]
fn filling_a_long_hole_does_not_cut_clients_that_read() {
    let _heavy = heavy();
    let (server, mut source, readers) = start_with_clients(
        Config {
            max_line: 2048,
            ..Config::ephemeral()
        },
        &[1, 2, 3],
    );
    // 16 MB to each client released by one event: 16 times the hard limit,
    // and more than loopback socket buffers absorb. A reader stalled by a
    // busy machine still has megabytes of slack.
    let (count, width) = (16_000, 1000);
    read_all_broadcasts_while(readers, count, width, || {
        fill_a_long_hole(&server, &mut source, count, width);
    });
    assert_eq!(server.stop().unwrap().slow_consumers, 0);
}

#[test]
fn stuck_clients_cannot_hold_the_source_paused_forever() {
    let _heavy = heavy();
    // Silent clients hold the broadcast log over the queued-output budget:
    // the source pauses, and nothing new reaches them. The write deadline
    // cuts them, with no traffic to trigger it, and the reader gets all.
    let (server, mut source, readers) = start_with_clients(
        Config {
            max_queued_bytes: 256 * 1024,
            write_deadline: Duration::from_millis(300),
            max_line: 2048,
            ..Config::ephemeral()
        },
        &[1],
    );
    let silent: Vec<TcpStream> = (2..6).map(|id| never_reading_client(&server, id)).collect();
    let (count, width) = (4000, 500);
    read_all_broadcasts_while(readers, count, width, || {
        source
            .write_all(&padded_broadcasts(1, count, width))
            .unwrap();
    });
    let stats = server.stop().unwrap();
    assert!(stats.source_pauses > 0, "{stats:?}");
    assert_eq!(
        (stats.slow_consumers, stats.cut_write_deadline),
        (4, 4),
        "{stats:?}"
    );
    drop(silent);
}

#[test]
fn a_full_window_releases_its_run_without_cutting_a_reader() {
    let _heavy = heavy();
    // Seq 1 never comes; the window's byte budget (not the hole timer) makes
    // it give up, and the run behind the hole goes out as the reader takes it.
    let (server, mut source, readers) = start_with_clients(
        Config {
            window_bytes: 8_000_000,
            hole_timeout: Duration::from_secs(60),
            max_line: 2048,
            ..Config::ephemeral()
        },
        &[1],
    );
    let (count, width) = (12_000, 1000);
    let expected = padded_broadcasts(2, count - 1, width);
    let last = padded_broadcasts(count, 1, width);
    let stream = expected.clone();
    let reading = std::thread::spawn(move || {
        let mut reader = readers.into_iter().next().unwrap();
        assert!(read_through(&mut reader, &last) == expected, "misordered");
    });
    source.write_all(&stream).unwrap();
    reading
        .join()
        .expect("the reader got every event after the hole");
    let stats = server.stop().unwrap();
    assert_eq!((stats.slow_consumers, stats.skipped), (0, 1));
}
