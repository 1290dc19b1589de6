//! Slow is not stuck: readers slower than the source are slowed down to,
//! never cut; a client that does not read is cut at the write deadline, one
//! that crawls at the lag bound, and one owed too much of its own at the
//! output limit, each counted by its reason.

mod common;
#[path = "support/binary.rs"]
mod support_binary;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use follower_maze::Config;
use support_binary::{Binary, wait_for_line};

/// `{seq}|B\n` for every seq in `1..=count`, back to back.
fn broadcasts(count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * 10);
    for seq in 1..=count {
        writeln!(out, "{seq}|B").unwrap();
    }
    out
}

/// Reads `expected.len()` bytes from `stream` at no more than
/// `bytes_per_second`, in reads of up to 64 KiB, and panics unless they are
/// exactly `expected`. Compares as it goes, so nothing is stored.
fn read_throttled(mut stream: TcpStream, expected: &[u8], bytes_per_second: f64) {
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    let started = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    while offset < expected.len() {
        let want = buf.len().min(expected.len() - offset);
        let n = stream
            .read(&mut buf[..want])
            .unwrap_or_else(|e| panic!("read failed at byte {offset}: {e}"));
        assert!(n > 0, "cut after {offset} of {} bytes", expected.len());
        assert!(
            buf[..n] == expected[offset..offset + n],
            "wrong bytes at {offset}"
        );
        offset += n;
        let due = Duration::from_secs_f64(offset as f64 / bytes_per_second);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// A client with a small receive buffer that sends `id` and never reads.
fn never_reading(addr: std::net::SocketAddr, id: u64) -> TcpStream {
    let mut stream = connect_with_recv_buffer(addr, 4096);
    writeln!(stream, "{id}").expect("the id is sent");
    stream
}

/// The case (a): twenty readers, each throttled to a steady rate far
/// below what the source sends, and one client that never reads; four
/// million broadcasts as fast as the source can write them. Run against the
/// real binary, so its peak memory can be read.
#[test]
fn readers_slower_than_the_source_get_everything_and_only_the_stuck_client_is_cut() {
    let _heavy = heavy();
    const READERS: u64 = 20;
    const BROADCASTS: u64 = 4_000_000;
    const BUDGET: u64 = 32 << 20;
    let write_deadline = Duration::from_secs(1);
    let args = [
        "--event-port".to_string(),
        "0".into(),
        "--client-port".into(),
        "0".into(),
        "--max-queued-bytes".into(),
        BUDGET.to_string(),
        "--write-deadline-ms".into(),
        write_deadline.as_millis().to_string(),
        "--stats-interval-ms".into(),
        "50".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let binary = Binary::start(&args, &[], None);
    let idle_rss_kb = binary.status_kb("VmRSS");
    let mut source = TcpStream::connect(binary.event_addr).expect("the source connects");
    // Receive buffers of 256 KiB (the kernel would otherwise grow them to
    // megabytes and hide how far each reader is behind), so what a reader
    // owes sits in the server.
    let readers: Vec<TcpStream> = (1..=READERS)
        .map(|id| {
            let mut stream = connect_with_recv_buffer(binary.client_addr, 256 * 1024);
            writeln!(stream, "{id}").expect("the id is sent");
            stream
        })
        .collect();
    let _stuck = never_reading(binary.client_addr, READERS + 1);
    wait_for_line(&binary.log, "clients 21 (+0 awaiting id)");

    let stream = Arc::new(broadcasts(BROADCASTS));
    // About 39 MB each: at 8 MB/s a reader needs about 5 s, while the
    // source could send it all in well under a second.
    let rate = 8e6;
    let reading: Vec<_> = readers
        .into_iter()
        .map(|reader| {
            let expected = Arc::clone(&stream);
            std::thread::spawn(move || read_throttled(reader, &expected, rate))
        })
        .collect();
    let sent = Arc::clone(&stream);
    let started = Instant::now();
    let writer = std::thread::spawn(move || source.write_all(&sent));

    let cut_line = wait_for_line(&binary.log, "slow consumer (write deadline)");
    let cut_after = started.elapsed();
    for thread in reading {
        thread
            .join()
            .expect("every reader got every broadcast in order");
    }
    writer
        .join()
        .expect("the writer finished")
        .expect("the source was never cut off");
    assert!(cut_line.contains("user 21"), "{cut_line}");
    assert!(
        cut_after >= write_deadline && cut_after <= write_deadline + Duration::from_secs(1),
        "the stuck client was cut {cut_after:?} after the flood began (deadline {write_deadline:?})"
    );

    let peak_kb = binary.status_kb("VmHWM");
    let allowed_kb = idle_rss_kb + BUDGET / 1024 + 8 * 1024;
    eprintln!("peak RSS {peak_kb} kB; idle {idle_rss_kb} kB; allowed {allowed_kb} kB");
    assert!(
        peak_kb <= allowed_kb,
        "peak RSS {peak_kb} kB, idle {idle_rss_kb} kB + budget {} kB + 8 MiB",
        BUDGET / 1024
    );
    // The last stats line counts one cut, for the write deadline, and no
    // other: the readers were never cut.
    let counts = "cut 1 (write deadline 1, output limit 0, lag 0)";
    let mut last_stats = String::new();
    while let Ok(line) = binary.log.recv_timeout(Duration::from_millis(300)) {
        if line.contains("events in") {
            last_stats = line;
        }
    }
    assert!(last_stats.contains(counts), "{last_stats}");
}

/// The case (b): a reader that makes progress but far too slowly
/// holds the source paused (its backlog fills the output budget) until it
/// lags the stream by the lag bound; then it is cut, and the fast readers
/// complete.
#[test]
fn a_crawling_reader_is_cut_at_the_lag_bound_and_the_others_complete() {
    let _heavy = heavy();
    let max_lag = Duration::from_secs(1);
    let (server, mut source, clients) = start_with_clients(
        Config {
            max_lag,
            write_deadline: Duration::from_secs(30),
            max_queued_bytes: 1 << 20,
            max_line: 2048,
            ..Config::ephemeral()
        },
        &[1, 2, 3],
    );
    // A small receive buffer, so what the kernel holds for it is small too
    // and the server's view of its progress is close to its reads.
    let mut crawler = connect_with_recv_buffer(server.client_addr(), 64 * 1024);
    writeln!(crawler, "4").unwrap();
    wait_for(&server, "the crawler registered", |s| s.clients == 4);
    let (count, width) = (8000, 1000); // 8 MB to everyone
    let expected = Arc::new(padded_broadcasts(1, count, width));
    let fast: Vec<_> = clients
        .into_iter()
        .map(|reader| {
            let expected = Arc::clone(&expected);
            std::thread::spawn(move || read_throttled(reader, &expected, f64::INFINITY))
        })
        .collect();
    // Up to 128 KiB every half second: steady progress, but far behind a
    // stream paused at 1 MiB.
    let crawling = std::thread::spawn(move || {
        crawler.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = vec![0u8; 128 * 1024];
        let mut received = 0usize;
        loop {
            match crawler.read(&mut buf) {
                Ok(0) => return received,
                Ok(n) => received += n,
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return received,
                Err(err) => panic!("the crawler's read failed: {err}"),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let started = Instant::now();
    source.write_all(&expected).unwrap();
    for thread in fast {
        thread
            .join()
            .expect("the fast readers got everything in order");
    }
    let stats = wait_for(&server, "the crawler's cut", |s| s.slow_consumers == 1);
    assert!(started.elapsed() >= max_lag);
    let received = crawling.join().expect("the crawler saw its connection end");
    assert!(
        received < expected.len(),
        "the crawler was cut before the end"
    );
    assert_eq!(
        (
            stats.cut_lag,
            stats.cut_write_deadline,
            stats.cut_output_limit
        ),
        (1, 0, 0),
        "{stats:?}"
    );
    assert!(
        stats.source_pauses > 0,
        "the crawler held the source paused"
    );
}

/// Bytes queued for one client alone count against its output limit;
/// broadcasts, held once in the shared log, do not.
#[test]
fn only_a_clients_own_frames_count_against_its_output_limit() {
    let _heavy = heavy();
    let limit = 256 * 1024;
    let server = start(Config {
        client_output_limit: limit,
        write_deadline: Duration::from_secs(60),
        max_lag: Duration::from_secs(60),
        max_line: 2048,
        ..Config::ephemeral()
    });
    let mut source = connect_source(&server);
    let mut owed_privately = never_reading_client(&server, 1);
    let owed_broadcasts = never_reading_client(&server, 2);
    // 4 MB of broadcasts, owed to both and held once: no cut.
    let (count, width) = (4000, 1000);
    source
        .write_all(&padded_broadcasts(1, count, width))
        .unwrap();
    let stats = wait_for(&server, "the broadcasts routed", |s| {
        s.events_routed == count
    });
    assert!(stats.queued_bytes > limit, "{stats:?}");
    assert_eq!(stats.slow_consumers, 0, "{stats:?}");
    // 1 MB of private messages to user 1: past its limit.
    let mut privates = Vec::new();
    for seq in count + 1..=count + 1000 {
        writeln!(privates, "{seq}|P|{:0990}|1", 2).unwrap();
    }
    source.write_all(&privates).unwrap();
    let stats = wait_for(&server, "the output-limit cut", |s| s.slow_consumers == 1);
    assert_eq!((stats.cut_output_limit, stats.clients), (1, 1), "{stats:?}");
    assert_closed(&mut owed_privately);
    drop(owed_broadcasts);
}

/// A reader of its own frames (private messages, the bulk of real traffic)
/// that reads steadily but far slower than the source sends: once it is
/// half its output limit behind it holds the source, which slows to its
/// pace; it is never cut, and never owed much more than that half.
#[test]
fn a_steady_reader_of_its_own_frames_slows_the_source_instead_of_being_cut() {
    let _heavy = heavy();
    let limit = 1 << 20;
    let (server, mut source, mut clients) = start_with_clients(
        Config {
            client_output_limit: limit,
            max_line: 2048,
            ..Config::ephemeral()
        },
        &[1],
    );
    let mut privates = Vec::new();
    for seq in 1..=8000 {
        writeln!(privates, "{seq}|P|{:0990}|1", 2).unwrap();
    }
    let privates = Arc::new(privates); // 8 MB, eight times the limit
    let expected = Arc::clone(&privates);
    let reader = clients.pop().expect("one client");
    let reading = std::thread::spawn(move || read_throttled(reader, &expected, 4e6));
    source.write_all(&privates).unwrap();
    reading
        .join()
        .expect("the slow reader got every message in order");
    let stats = server.stop().unwrap();
    assert_eq!(stats.slow_consumers, 0, "{stats:?}");
    assert!(stats.source_pauses > 0, "it held the source: {stats:?}");
    assert!(
        stats.queued_bytes_peak <= limit,
        "owed at most about half its limit, plus a turn: {stats:?}"
    );
}

/// The default limits, scaled down in time: a lag bound far shorter than
/// the output budget takes to drain at the readers' pace. Two steady
/// readers of a broadcast flood must still not be cut for lag, because
/// each holds the source once it is half its output limit behind, which
/// keeps its lag at a fraction of the bound.
#[test]
fn steady_readers_of_a_flood_stay_within_the_lag_bound() {
    let _heavy = heavy();
    let server = start(Config {
        max_lag: Duration::from_secs(1),
        max_queued_bytes: 64 << 20, // 16 s of reading at 4 MB/s
        client_output_limit: 2 << 20,
        max_line: 2048,
        ..Config::ephemeral()
    });
    let mut source = connect_source(&server);
    // Small receive buffers, so the kernel does not hide how far behind a
    // reader is (see the first test).
    let clients: Vec<TcpStream> = [1, 2]
        .iter()
        .map(|id| {
            let mut stream = connect_with_recv_buffer(server.client_addr(), 256 * 1024);
            writeln!(stream, "{id}").unwrap();
            stream
        })
        .collect();
    wait_for(&server, "the readers registered", |s| s.clients == 2);
    let stream = Arc::new(padded_broadcasts(1, 12_000, 1000)); // 12 MB: 3 s each
    let reading: Vec<_> = clients
        .into_iter()
        .map(|reader| {
            let expected = Arc::clone(&stream);
            std::thread::spawn(move || read_throttled(reader, &expected, 4e6))
        })
        .collect();
    source.write_all(&stream).unwrap();
    for thread in reading {
        thread
            .join()
            .expect("every reader got every broadcast in order");
    }
    let stats = server.stop().unwrap();
    assert_eq!((stats.slow_consumers, stats.cut_lag), (0, 0), "{stats:?}");
    assert!(stats.source_pauses > 0, "{stats:?}");
}
