//! The cluster's NATS bridges against a real `nats-server` (skipped, with
//! one line on stderr, where it is not installed): records round-trip in
//! order, retried appends are stored once, a second ingest is fenced off,
//! a server restart loses and duplicates nothing, and a slow edge holds
//! back the stream rather than buffering it. The wire format's decoder is
//! tested without a server.

#[path = "support/nats.rs"]
mod nats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use follower_maze::cluster::bridge::{
    DecodeError, EdgeBridge, EdgeNews, IngestBridge, IngestNews, IngestStart, StreamSettings,
    decode, encode,
};
use follower_maze::engine::records::Record;
use futures_util::StreamExt;
use mio::{Events, Poll, Token, Waker};
use nats::NatsServer;

/// The writer id of messages these tests publish by hand.
const WRITER: &str = "0123456789abcdef";

/// How long any wait in these tests may take before it fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Logs (captured per test, shown when one fails); `RUST_LOG` overrides.
fn init_log() {
    let _ = simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .with_module_level("async_nats", log::LevelFilter::Warn)
        .env()
        .init();
}

/// Starts logging and a `nats-server` for a test; `None` (said on stderr)
/// where none is installed, and the test is skipped.
fn logged_server() -> Option<NatsServer> {
    init_log();
    NatsServer::start()
}

/// A `Poll` whose waker a bridge wakes: stands in for the mio loop.
struct Wakeup {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
}

impl Wakeup {
    fn new() -> Wakeup {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        Wakeup {
            poll,
            events: Events::with_capacity(8),
            waker,
        }
    }

    /// Waits until woken or `max` passes.
    fn wait(&mut self, max: Duration) {
        self.poll.poll(&mut self.events, Some(max)).unwrap();
    }
}

/// Settings for a test: the server's URL, and a short timeout so that
/// retries after a restart come quickly.
fn settings(server: &NatsServer, stream: &str) -> StreamSettings {
    StreamSettings {
        timeout: Duration::from_secs(2),
        ..StreamSettings::new(server.url(), stream)
    }
}

/// Starts an ingest on `settings` with `max_in_flight`, waking a
/// [`Wakeup`] of its own; panics if it cannot start.
fn ingest_on(
    settings: StreamSettings,
    max_in_flight: usize,
) -> (IngestBridge, IngestStart, Wakeup) {
    let wakeup = Wakeup::new();
    let (ingest, start) =
        IngestBridge::start(settings, max_in_flight, Arc::clone(&wakeup.waker)).unwrap();
    (ingest, start, wakeup)
}

/// Starts an edge on `settings` with `capacity`, waking a [`Wakeup`] of
/// its own; panics if it cannot start.
fn edge_on(settings: StreamSettings, capacity: usize) -> (EdgeBridge, Wakeup) {
    let wakeup = Wakeup::new();
    let edge = EdgeBridge::start(settings, capacity, Arc::clone(&wakeup.waker)).unwrap();
    (edge, wakeup)
}

/// Starts an edge on `settings` with `capacity` over a stream that holds
/// exactly `records`: it must read them all, then be caught up. Returns
/// the edge and its wakeup.
fn edge_reads_all(
    settings: StreamSettings,
    capacity: usize,
    records: &[Record],
) -> (EdgeBridge, Wakeup) {
    let (mut edge, mut wakeup) = edge_on(settings, capacity);
    let read = read_until(&mut edge, &mut wakeup, |read| {
        read.len() == records.len() + 1
    });
    assert_eq!(read, expected_news(records, records.len() as u64));
    (edge, wakeup)
}

/// Starts an edge, then an ingest, on `settings` (each taking 4 at once),
/// and returns the messages of the errors both must fail with; panics
/// with `expected` where one starts.
fn refused_starts(settings: StreamSettings, expected: &str) -> [String; 2] {
    let wakeup = Wakeup::new();
    let edge = EdgeBridge::start(settings.clone(), 4, Arc::clone(&wakeup.waker))
        .err()
        .expect(expected);
    let ingest = IngestBridge::start(settings, 4, Arc::clone(&wakeup.waker))
        .err()
        .expect(expected);
    [edge.to_string(), ingest.to_string()]
}

/// Run `run`'s records: a new run, then `events` events records of three
/// lines each, the i-th (from 0) with seqs `3i+1..=3i+3`.
fn run_records(run: u64, events: u64) -> Vec<Record> {
    let mut records = vec![Record::NewRun { run }];
    for i in 0..events {
        let first_seq = 3 * i + 1;
        let mut lines = Vec::new();
        for seq in first_seq..first_seq + 3 {
            lines.extend_from_slice(format!("{seq}|B\r\n").as_bytes());
        }
        records.push(Record::Events {
            run,
            first_seq,
            last_seq: first_seq + 2,
            lines,
        });
    }
    records
}

/// Appends `records` through `bridge`, never more than it allows at once,
/// and waits until all are stored; panics on fatal news or after
/// [`PATIENCE`].
fn append_all(bridge: &mut IngestBridge, wakeup: &mut Wakeup, records: Vec<Record>) {
    let total = records.len();
    let mut records = records.into_iter().peekable();
    let mut stored = 0;
    let deadline = Instant::now() + PATIENCE;
    while stored < total {
        while records.peek().is_some() {
            let record = records.next().unwrap();
            if let Err(record) = bridge.append(record) {
                records = std::iter::once(record)
                    .chain(records)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .peekable();
                break;
            }
        }
        for news in bridge.news() {
            match news {
                IngestNews::Stored(n) => stored += n,
                other => panic!("after {stored} of {total} records stored: {other:?}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "only {stored} of {total} records stored after {PATIENCE:?}"
        );
        if stored < total {
            wakeup.wait(Duration::from_millis(100));
        }
    }
}

/// Waits for `ingest`'s news and returns the first that comes (all it
/// gives at once); panics with `silence` after [`PATIENCE`] without any.
fn await_news(ingest: &mut IngestBridge, wakeup: &mut Wakeup, silence: &str) -> Vec<IngestNews> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let news = ingest.news();
        if !news.is_empty() {
            return news;
        }
        assert!(Instant::now() < deadline, "{silence}");
        wakeup.wait(Duration::from_millis(100));
    }
}

/// Reads `edge` until `enough` says so; panics on `Failed` or after
/// [`PATIENCE`] with what it read.
fn read_until(
    edge: &mut EdgeBridge,
    wakeup: &mut Wakeup,
    enough: impl Fn(&[EdgeNews]) -> bool,
) -> Vec<EdgeNews> {
    read_within(edge, wakeup, PATIENCE, enough)
}

/// Reads `edge` until `enough` says so; panics on `Failed` or after
/// `patience` with what it read.
fn read_within(
    edge: &mut EdgeBridge,
    wakeup: &mut Wakeup,
    patience: Duration,
    enough: impl Fn(&[EdgeNews]) -> bool,
) -> Vec<EdgeNews> {
    let deadline = Instant::now() + patience;
    let mut read = Vec::new();
    while !enough(&read) {
        match edge.try_next() {
            Some(EdgeNews::Failed(why)) => panic!("the edge failed after {read:?}: {why}"),
            Some(news) => read.push(news),
            None => {
                assert!(
                    Instant::now() < deadline,
                    "after {patience:?} the edge read only {read:?}"
                );
                wakeup.wait(Duration::from_millis(100));
            }
        }
    }
    read
}

/// What an edge must read of a stream holding `records` (from sequence
/// 1) when it started with the stream ending at `last_at_start`.
fn expected_news(records: &[Record], last_at_start: u64) -> Vec<EdgeNews> {
    let mut news = Vec::new();
    if last_at_start == 0 {
        news.push(EdgeNews::CaughtUp { stream_seq: 0 });
    }
    for (i, record) in records.iter().enumerate() {
        let stream_seq = i as u64 + 1;
        news.push(EdgeNews::Record {
            stream_seq,
            record: record.clone(),
        });
        if stream_seq == last_at_start {
            news.push(EdgeNews::CaughtUp { stream_seq });
        }
    }
    news
}

/// Runs `body` with a JetStream context on `server`, on a runtime of its
/// own, for what the bridges' API does not offer (raw publishes, stream
/// info).
fn with_jetstream<T>(server: &NatsServer, body: impl AsyncFnOnce(jetstream::Context) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        body(jetstream::new(client)).await
    })
}

/// Publishes `record` to `subject` by hand, with the headers writer
/// `writer`'s ingest gives it when it expects the stream to end at
/// sequence `expected`, and returns the server's answer.
async fn publish(
    js: &jetstream::Context,
    subject: &str,
    record: Record,
    expected: u64,
    writer: &str,
) -> Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
    let (headers, payload) = encode(record, expected, writer);
    js.publish_with_headers(subject.to_string(), headers, payload)
        .await
        .unwrap()
        .await
}

/// The number of messages stream `name` holds.
fn stream_messages(server: &NatsServer, name: &str) -> u64 {
    with_jetstream(server, async |js| {
        let mut stream = js.get_stream(name).await.unwrap();
        stream.info().await.unwrap().state.messages
    })
}

/// The highest stream sequence the server delivered to any consumer of
/// stream `name`.
fn delivered_to_consumers(server: &NatsServer, name: &str) -> u64 {
    with_jetstream(server, async |js| {
        let stream = js.get_stream(name).await.unwrap();
        let mut consumers = stream.consumers();
        let mut delivered = 0;
        while let Some(info) = consumers.next().await {
            delivered = delivered.max(info.unwrap().delivered.stream_sequence);
        }
        delivered
    })
}

#[test]
fn records_round_trip_in_order_and_edges_catch_up() {
    let Some(server) = logged_server() else {
        return;
    };
    let records = run_records(1, 5);

    // An edge that starts before the stream exists creates it and is
    // caught up at once.
    let (mut early, mut early_wakeup) = edge_on(settings(&server, "ROUND"), 16);
    assert_eq!(
        read_until(&mut early, &mut early_wakeup, |read| !read.is_empty()),
        [EdgeNews::CaughtUp { stream_seq: 0 }]
    );

    let (mut ingest, start, mut wakeup) = ingest_on(settings(&server, "ROUND"), 4);
    assert_eq!(
        start,
        IngestStart {
            run: 0,
            last_seq: 0,
            last_stream_seq: 0
        }
    );
    append_all(&mut ingest, &mut wakeup, records.clone());
    drop(ingest);

    let read = read_until(&mut early, &mut early_wakeup, |read| {
        read.len() == records.len()
    });
    assert_eq!(read, expected_news(&records, 0)[1..]);

    // An edge that starts afterwards reads the same, then is caught up.
    let (mut late, _late_wakeup) = edge_reads_all(settings(&server, "ROUND"), 16, &records);
    let last = records.len() as u64;

    // Nothing more: no duplicates, nothing after the catch-up.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(late.try_next(), None);
    assert_eq!(early.try_next(), None);

    // A new ingest continues where the stream ends.
    let (_ingest, start, _wakeup) = ingest_on(settings(&server, "ROUND"), 4);
    assert_eq!(
        start,
        IngestStart {
            run: 1,
            last_seq: 15,
            last_stream_seq: last
        }
    );
}

#[test]
fn dropping_the_ingest_stores_what_was_handed_over() {
    let Some(server) = logged_server() else {
        return;
    };
    let mut records = run_records(1, 30);
    records.push(Record::NewRun { run: 2 });
    let (mut ingest, _, _wakeup) = ingest_on(settings(&server, "DRAIN"), 64);
    for record in &records {
        ingest.append(record.clone()).unwrap();
    }
    drop(ingest); // at once: nothing is acknowledged yet
    assert_eq!(stream_messages(&server, "DRAIN"), records.len() as u64);

    // A new ingest starts after the new run, before any of its events.
    let (_ingest, start, _wakeup) = ingest_on(settings(&server, "DRAIN"), 4);
    assert_eq!(
        start,
        IngestStart {
            run: 2,
            last_seq: 0,
            last_stream_seq: records.len() as u64
        }
    );
}

#[test]
fn a_record_larger_than_the_server_takes_fails_the_ingest() {
    let Some(server) = logged_server() else {
        return;
    };
    let (mut ingest, _, mut wakeup) = ingest_on(settings(&server, "LARGE"), 4);
    let max = ingest.max_payload();
    assert!(max >= 1 << 20, "{max}");
    let line = format!("1|P|2|{}\r\n", "9".repeat(max));
    ingest
        .append(Record::Events {
            run: 1,
            first_seq: 1,
            last_seq: 1,
            lines: line.into_bytes(),
        })
        .unwrap();
    let news = await_news(&mut ingest, &mut wakeup, "no news");
    assert!(
        matches!(&news[..], [IngestNews::Failed(why)] if why.contains("max payload")),
        "{news:?}"
    );
    drop(ingest);
    assert_eq!(stream_messages(&server, "LARGE"), 0);
}

#[test]
fn a_republished_record_is_stored_once_even_with_a_stale_expected_sequence() {
    let Some(server) = logged_server() else {
        return;
    };
    let records = run_records(1, 1);
    // The stream is created by an ingest that appends nothing.
    drop(ingest_on(settings(&server, "DEDUP"), 4));

    with_jetstream(&server, async |js| {
        // Both records stored, as one ingest's first attempts store them.
        for (record, expected) in records.iter().zip(0..) {
            let ack = publish(&js, "DEDUP.log", record.clone(), expected, WRITER)
                .await
                .expect("stored");
            assert!(!ack.duplicate, "{ack:?}");
            assert_eq!(ack.sequence, expected + 1);
        }

        // The first record again, exactly as its first publish carried it:
        // its expected last sequence (0) is stale now, yet JetStream checks
        // the Msg-Id first and answers "duplicate", not "wrong last
        // sequence". The ingest's retries rely on this order.
        let ack = publish(&js, "DEDUP.log", records[0].clone(), 0, WRITER)
            .await
            .expect("a duplicate, not an error");
        assert!(ack.duplicate, "{ack:?}");
        assert_eq!(ack.sequence, 1);

        // The same for the second record, expected after sequence 1.
        let ack = publish(&js, "DEDUP.log", records[1].clone(), 1, WRITER)
            .await
            .expect("a duplicate, not an error");
        assert!(ack.duplicate, "{ack:?}");
        assert_eq!(ack.sequence, 2);

        // A new record with a stale expected sequence is refused.
        let refused = publish(&js, "DEDUP.log", run_records(2, 0)[0].clone(), 1, WRITER)
            .await
            .expect_err("a wrong last sequence");
        assert_eq!(
            refused.kind(),
            jetstream::context::PublishErrorKind::WrongLastSequence
        );
    });
    assert_eq!(stream_messages(&server, "DEDUP"), 2);
}

#[test]
fn a_record_stored_before_the_duplicate_window_passed_is_recognised_by_its_id() {
    let Some(server) = logged_server() else {
        return;
    };
    let window = Duration::from_secs(1);
    let settings = StreamSettings {
        duplicate_window: window,
        ..settings(&server, "WINDOW")
    };
    let records = run_records(1, 1);

    let (mut ingest, start, mut wakeup) = ingest_on(settings.clone(), 4);
    assert_eq!(start.last_stream_seq, 0);
    let writer = ingest.writer().to_string();

    with_jetstream(&server, async |js| {
        // The ingest's first attempt at its first record, stored though
        // its ack is lost (published here, by hand, under its writer id).
        let ack = publish(&js, "WINDOW.log", records[0].clone(), 0, &writer)
            .await
            .expect("stored");
        assert_eq!(ack.sequence, 1);
    });
    // Past the window JetStream has forgotten the id: the same record
    // with the same (now stale) expected sequence is refused...
    std::thread::sleep(window * 3);
    with_jetstream(&server, async |js| {
        let refused = publish(&js, "WINDOW.log", records[0].clone(), 0, &writer)
            .await
            .expect_err("the duplicate window has passed");
        assert_eq!(
            refused.kind(),
            jetstream::context::PublishErrorKind::WrongLastSequence
        );
    });

    // ...so the ingest, retrying that very record, recognises its own id at
    // its sequence and goes on.
    append_all(&mut ingest, &mut wakeup, records.clone());
    drop(ingest);
    assert_eq!(stream_messages(&server, "WINDOW"), 2);
}

#[test]
fn a_second_ingest_is_fenced_off() {
    let Some(server) = logged_server() else {
        return;
    };
    let (mut a, start_a, mut wakeup_a) = ingest_on(settings(&server, "FENCE"), 4);
    let (mut b, start_b, mut wakeup_b) = ingest_on(settings(&server, "FENCE"), 4);
    assert_eq!(start_a, start_b);

    let records_a = run_records(1, 3);
    append_all(&mut a, &mut wakeup_a, records_a.clone());

    // B's first record has A's first record's run and seq, so the same
    // record id: it must meet the fence, not pass for a retry of A's.
    b.append(records_a[0].clone()).unwrap();
    let fenced = await_news(&mut b, &mut wakeup_b, "B heard nothing").remove(0);
    let IngestNews::Fenced(why) = fenced else {
        panic!("B was not fenced: {fenced:?}");
    };
    assert!(why.contains("FENCE"), "{why}");
    assert!(why.contains("another ingest"), "{why}");
    // B has stopped: it takes no more records.
    assert_eq!(
        b.append(Record::NewRun { run: 8 }),
        Err(Record::NewRun { run: 8 })
    );
    drop(b);

    // A goes on; the stream holds A's records only.
    let more = vec![Record::NewRun { run: 2 }];
    append_all(&mut a, &mut wakeup_a, more.clone());
    drop(a);
    let all: Vec<Record> = records_a.into_iter().chain(more).collect();
    edge_reads_all(settings(&server, "FENCE"), 16, &all);
}

#[test]
fn a_server_restart_loses_and_duplicates_nothing() {
    let Some(mut server) = logged_server() else {
        return;
    };
    let records = run_records(1, 99);
    let (mut edge, mut edge_wakeup) = edge_on(settings(&server, "RESTART"), 64);
    let (mut ingest, _, mut wakeup) = ingest_on(settings(&server, "RESTART"), 16);

    // The first part is stored and read before the server goes.
    append_all(&mut ingest, &mut wakeup, records[..40].to_vec());
    let read = read_until(&mut edge, &mut edge_wakeup, |read| read.len() == 41);
    assert_eq!(read, expected_news(&records[..40], 0));

    // The next part is handed over while the server is down, for longer
    // than the ack timeout (2 s), so the appends time out and are retried
    // (and the client sends the first attempts when it reconnects, too)...
    server.stop();
    for record in &records[40..56] {
        ingest.append(record.clone()).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    server.start_again();
    // ...and the rest after it is back, as the window allows.
    let mut stored = 0;
    let deadline = Instant::now() + PATIENCE;
    while stored < 16 {
        for news in ingest.news() {
            match news {
                IngestNews::Stored(n) => stored += n,
                other => panic!("after the restart: {other:?}"),
            }
        }
        assert!(Instant::now() < deadline, "{stored} of 16 stored");
        wakeup.wait(Duration::from_millis(100));
    }
    // The edge reads on promptly: it starts a new consumer as soon as it
    // reconnects (the client alone would notice the lost consumer only
    // after missing heartbeats, tens of seconds later).
    let read = read_within(
        &mut edge,
        &mut edge_wakeup,
        Duration::from_secs(10),
        |read| read.len() == 16,
    );
    assert_eq!(read, expected_news(&records[..56], 0)[41..]);
    // Then a quick restart (on another thread) while records go on being
    // handed over one by one, and the rest at full speed.
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        server.restart();
        server
    });
    for record in &records[56..80] {
        append_all(&mut ingest, &mut wakeup, vec![record.clone()]);
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = restarter.join().unwrap();
    append_all(&mut ingest, &mut wakeup, records[80..].to_vec());
    drop(ingest);

    // The edge that ran across both restarts reads every record once.
    let read = read_until(&mut edge, &mut edge_wakeup, |read| read.len() == 44);
    assert_eq!(read, expected_news(&records, 0)[57..]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(edge.try_next(), None);

    // The stream holds each record once, in order.
    assert_eq!(stream_messages(&server, "RESTART"), records.len() as u64);
    edge_reads_all(settings(&server, "RESTART"), 64, &records);
}

#[test]
fn a_slow_edge_holds_the_stream_back() {
    let Some(server) = logged_server() else {
        return;
    };
    let records = run_records(1, 99);
    let (mut ingest, _, mut wakeup) = ingest_on(settings(&server, "SLOW"), 32);
    append_all(&mut ingest, &mut wakeup, records.clone());
    drop(ingest);

    let (mut edge, mut edge_wakeup) = edge_on(settings(&server, "SLOW"), 2);
    let deadline = Instant::now() + PATIENCE;
    let mut read = Vec::new();
    while read.len() < records.len() + 1 {
        assert!(
            edge.queued() <= 2,
            "{} queued after {} read",
            edge.queued(),
            read.len()
        );
        if read.len() == 30 {
            // The bridge holds what the channel takes and at most one pull
            // batch (of the capacity): the rest stays in JetStream.
            std::thread::sleep(Duration::from_secs(1));
            let delivered = delivered_to_consumers(&server, "SLOW");
            assert!(
                delivered <= 30 + 2 + 1 + 2 * 2,
                "the server delivered up to sequence {delivered} with 30 read"
            );
        }
        if read.len() == 50 {
            // Long enough for the bridge to give its consumer up, and
            // start a new one from where it was when there is room.
            std::thread::sleep(Duration::from_secs(6));
            assert!(edge.queued() <= 2);
        }
        match edge.try_next() {
            Some(news) => read.push(news),
            None => {
                assert!(Instant::now() < deadline, "read only {}", read.len());
                edge_wakeup.wait(Duration::from_millis(100));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(read, expected_news(&records, records.len() as u64));
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    init_log();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let started = Instant::now();
    for err in refused_starts(StreamSettings::new(url.clone(), "NOWHERE"), "no server") {
        assert!(err.contains(&url), "{err}");
    }
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_stream_with_another_subject_is_refused() {
    let Some(server) = logged_server() else {
        return;
    };
    with_jetstream(&server, async |js| {
        js.create_stream(jetstream::stream::Config {
            name: "OTHER".to_string(),
            subjects: vec!["orders.>".to_string()],
            ..Default::default()
        })
        .await
        .unwrap();
    });
    for err in refused_starts(settings(&server, "OTHER"), "not a log") {
        assert!(err.contains("not a follower-maze log"), "{err}");
    }
}

/// The headers of a well-formed events record, to break one at a time.
fn events_headers() -> (HeaderMap, Vec<u8>) {
    let record = Record::Events {
        run: 3,
        first_seq: 10,
        last_seq: 12,
        lines: b"10|B\r\n12|B\r\n".to_vec(),
    };
    let (headers, payload) = encode(record, 41, WRITER);
    (headers, payload.to_vec())
}

/// `headers` with `name` set to `value` (or removed, for `None`).
fn with_header(headers: &HeaderMap, name: &str, value: Option<&str>) -> HeaderMap {
    let mut changed = HeaderMap::new();
    for (key, values) in headers.iter() {
        if key.as_ref() as &str != name {
            for value in values {
                changed.append(key.clone(), value.clone());
            }
        }
    }
    if let Some(value) = value {
        changed.insert(name, value);
    }
    changed
}

#[test]
fn decode_reads_what_encode_writes() {
    let records = [
        Record::NewRun { run: 1 },
        Record::NewRun { run: u64::MAX },
        Record::Events {
            run: 2,
            first_seq: 5,
            last_seq: 9,
            lines: b"5|B\r\n9|B\n".to_vec(),
        },
    ];
    for record in records {
        let (headers, payload) = encode(record.clone(), 7, WRITER);
        assert_eq!(
            headers.get("Nats-Expected-Last-Sequence").unwrap().as_str(),
            "7"
        );
        assert_eq!(
            headers.get("Nats-Msg-Id").unwrap().as_str(),
            format!("{WRITER}/{}", record.id())
        );
        assert_eq!(decode(Some(&headers), &payload), Ok(record));
    }
}

#[test]
fn decode_refuses_malformed_messages() {
    let (good, payload) = events_headers();
    assert!(decode(Some(&good), &payload).is_ok());
    let (new_run, empty) = encode(Record::NewRun { run: 3 }, 0, WRITER);
    assert!(decode(Some(&new_run), &empty).is_ok());

    assert_eq!(decode(None, &payload), Err(DecodeError::NoHeaders));
    let mut cases: Vec<(HeaderMap, &[u8], DecodeError)> = Vec::new();
    for name in [
        "Follower-Maze-Kind",
        "Follower-Maze-Run",
        "Follower-Maze-First-Seq",
        "Follower-Maze-Last-Seq",
        "Nats-Msg-Id",
    ] {
        let missing = DecodeError::MissingHeader(name);
        cases.push((with_header(&good, name, None), &payload, missing));
    }
    let snapshot = with_header(&good, "Follower-Maze-Kind", Some("snapshot"));
    cases.push((snapshot, &payload, DecodeError::UnknownKind));
    for bad in ["", "x", "+3", "-3", " 3", "3 ", "0x3", "3.0"] {
        let run = with_header(&good, "Follower-Maze-Run", Some(bad));
        let not_a_number = DecodeError::NotANumber("Follower-Maze-Run");
        cases.push((run, &payload, not_a_number));
    }
    let huge = with_header(
        &good,
        "Follower-Maze-First-Seq",
        Some("18446744073709551616"),
    );
    let out_of_range = DecodeError::OutOfRange("Follower-Maze-First-Seq");
    cases.push((huge, &payload, out_of_range));
    let reversed = with_header(&good, "Follower-Maze-First-Seq", Some("13"));
    let past = DecodeError::SeqsReversed {
        first: 13,
        last: 12,
    };
    cases.push((reversed, &payload, past));
    cases.push((good.clone(), b"", DecodeError::NoLines));
    let mut twice = good.clone();
    twice.append("Follower-Maze-Run", "3");
    let repeated = DecodeError::RepeatedHeader("Follower-Maze-Run");
    cases.push((twice, &payload, repeated));
    // Content that disagrees with its id was not written by an ingest.
    let other_run = with_header(&good, "Follower-Maze-Run", Some("4"));
    cases.push((other_run, &payload, DecodeError::ForeignId));
    let with_lines = DecodeError::NewRunWithPayload { bytes: 5 };
    cases.push((new_run.clone(), b"1|B\r\n", with_lines));
    let bare_id = with_header(&new_run, "Nats-Msg-Id", Some("3:1"));
    cases.push((bare_id, &empty, DecodeError::ForeignId));
    for (headers, payload, expected) in cases {
        assert_eq!(
            decode(Some(&headers), payload),
            Err(expected),
            "{headers:?}"
        );
    }
    assert_eq!(
        DecodeError::SeqsReversed { first: 13, last: 9 }.to_string(),
        "Follower-Maze-First-Seq 13 is past Follower-Maze-Last-Seq 9"
    );
}

#[test]
fn a_nats_url_may_list_several_servers_and_a_dead_one_is_passed_over() {
    let Some(server) = logged_server() else {
        return;
    };
    // Nothing listens on port 1; the list's live server takes over.
    let listed = StreamSettings {
        url: format!("nats://127.0.0.1:1,{}", server.url()),
        ..settings(&server, "LISTED")
    };
    let records = run_records(1, 2);
    let (mut ingest, _start, mut wakeup) = ingest_on(listed.clone(), 4);
    append_all(&mut ingest, &mut wakeup, records.clone());
    drop(ingest);
    edge_reads_all(listed, 16, &records);
    let refused = refused_starts(
        StreamSettings {
            url: format!("{},,nats://127.0.0.1:1", server.url()),
            ..settings(&server, "LISTED")
        },
        "an empty server in the list is refused",
    );
    for message in refused {
        assert!(message.contains("an empty server in the list"), "{message}");
    }
}

/// Starts a bridge with `start` until JetStream in a newly formed cluster
/// takes it (it answers "temporarily unavailable" until its leaders are
/// elected), for at most [`PATIENCE`].
fn start_when_ready<T>(mut start: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match start() {
            Ok(started) => return started,
            Err(err) if std::time::Instant::now() < deadline => {
                eprintln!("not yet: {err}");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(err) => panic!("JetStream never took the bridge: {err}"),
        }
    }
}

#[test]
fn a_stream_replicated_on_three_nodes_loses_nothing_when_one_goes() {
    init_log();
    let Some(mut cluster) = nats::NatsCluster::start(3) else {
        return;
    };
    let replicated = StreamSettings {
        replicas: 3,
        timeout: Duration::from_secs(2),
        ..StreamSettings::new(cluster.urls(), "REPLICATED")
    };
    let records = run_records(1, 6);
    let (first, rest) = records.split_at(3);
    let wakeup = Wakeup::new();
    let (mut ingest, _start) =
        start_when_ready(|| IngestBridge::start(replicated.clone(), 4, Arc::clone(&wakeup.waker)));
    let mut wakeup = wakeup;
    append_all(&mut ingest, &mut wakeup, first.to_vec());
    let info = with_jetstream(&cluster.nodes[1], async |context| {
        context
            .get_stream("REPLICATED")
            .await
            .unwrap()
            .cached_info()
            .clone()
    });
    assert_eq!(info.config.num_replicas, 3);
    // One node is killed (SIGKILL) and its store removed: gone for good.
    // The other two are a majority.
    drop(cluster.nodes.remove(0));
    append_all(&mut ingest, &mut wakeup, rest.to_vec());
    drop(ingest);
    let edge_wakeup = Wakeup::new();
    let mut edge = start_when_ready(|| {
        EdgeBridge::start(replicated.clone(), 16, Arc::clone(&edge_wakeup.waker))
    });
    let mut edge_wakeup = edge_wakeup;
    let read = read_until(&mut edge, &mut edge_wakeup, |read| {
        read.len() == records.len() + 1
    });
    assert_eq!(read, expected_news(&records, records.len() as u64));
}
