//! The event source: hand-over between sources, refusing a second
//! concurrent source, carrying on or starting a new run, malformed and
//! overlong lines.

use follower_maze::engine::Ending;
use follower_maze::engine::Port;
use follower_maze::engine::memory::Harness;

use crate::bad_lines::{bad_source_lines, between_good_lines};
use crate::logs;
use crate::support::{config, ms, private_messages, shuffled, with_clients, with_source};

#[test]
fn a_source_that_reconnects_at_once_hands_over_and_loses_nothing() {
    let (mut harness, first) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    let mut expected = Vec::new();
    let mut source = first;
    for round in 0..20u64 {
        let lines = private_messages(round * 10 + 1, 10, 2);
        source.send(&lines);
        source.close_sending();
        expected.extend(lines);
        // The next one connects before the end of the last is read.
        source = harness.connect(Port::Events);
        harness.settle();
    }
    assert_eq!(client.take_received(), expected);
    assert_eq!(harness.engine.stats().sources_refused, 0);
}

#[test]
fn a_second_source_while_the_first_is_open_is_refused() {
    let (mut harness, first) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    let second = harness.connect(Port::Events);
    second.send(b"99|P|1|2\n");
    first.send(b"1|P|1|2\n");
    harness.settle();
    assert_eq!(second.ended(), Some(Ending::Close));
    assert_eq!(first.ended(), None);
    assert_eq!(harness.engine.stats().sources_refused, 1);
    assert_eq!(
        client.take_received(),
        b"1|P|1|2\n",
        "nothing of the second"
    );
}

#[test]
fn an_overlong_source_line_is_dropped_and_the_next_one_routed() {
    let mut harness = Harness::new(follower_maze::Config {
        max_line: 64,
        ..config()
    });
    let source = harness.connect(Port::Events);
    let client = harness.client("2");
    harness.settle();
    let mut bytes = vec![b'9'; 200];
    bytes.extend_from_slice(b"\n1|P|1|2\n");
    source.send(&bytes);
    harness.settle();
    assert_eq!(client.take_received(), b"1|P|1|2\n");
    assert_eq!(harness.engine.stats().malformed, 1);
}

#[test]
fn an_overlong_source_line_is_logged_with_its_first_bytes() {
    let ((), lines) = logs::capture(|| {
        let mut harness = Harness::new(follower_maze::Config {
            max_line: 64,
            ..config()
        });
        let source = harness.connect(Port::Events);
        harness.settle();
        // Dropped before its newline arrives, in two reads...
        source.send(format!("1|P|1|{}", "2".repeat(100)).as_bytes());
        harness.settle();
        source.send(b"222\n");
        // ... and a whole one, dropped at its newline.
        source.send(format!("2|S|{}\r\n", "7".repeat(70)).as_bytes());
        // A line short enough to show whole, terminator and all.
        source.send(b"3|B|\xff\n");
        harness.settle();
        assert_eq!(harness.engine.stats().malformed, 3);
    });
    let first = format!(r#""1|P|1|{}"..."#, "2".repeat(58));
    let second = format!(r#""2|S|{}"..."#, "7".repeat(60));
    for head in [first, second] {
        let line = logs::the_line(&lines, &["skipping malformed event line", &head]);
        assert!(line.contains("line longer than the limit"), "{line}");
    }
    logs::the_line(&lines, &[r#"skipping malformed event line "3|B|\xff\n": "#]);
}

#[test]
fn a_new_source_carries_on_or_starts_a_new_run() {
    let mut harness = Harness::new(config());
    let clients = [harness.client("1"), harness.client("2")];
    harness.settle();
    // Run one, in two connections: 1 follows 2, then 2's status reaches 1.
    let source = harness.connect(Port::Events);
    source.send(b"1|F|1|2\n2|P|2|1\n");
    source.close_sending();
    harness.settle();
    let source = harness.connect(Port::Events);
    source.send(b"3|S|2\n");
    harness.run_for(ms(200), ms(50)); // its run is known after 100 ms
    assert_eq!(clients[0].take_received(), b"2|P|2|1\n3|S|2\n");
    source.close_sending();
    harness.settle();
    // Run two starts over at 1 (shuffled): the old follow is gone.
    let source = harness.connect(Port::Events);
    source.send(b"2|S|2\n1|P|1|2\n3|B\n");
    harness.settle();
    assert_eq!(clients[0].take_received(), b"3|B\n");
    assert_eq!(clients[1].take_received(), b"1|F|1|2\n1|P|1|2\n3|B\n");
    let stats = harness.engine.stats();
    assert_eq!((stats.runs, stats.late, stats.skipped), (1, 0, 0));
    assert_eq!(stats.follow_edges, 0, "the graph was emptied");
}

#[test]
fn a_new_run_after_a_short_run_is_recognised_whatever_its_first_line() {
    let (mut harness, first, clients) = with_clients(config(), &[2]);
    let short = private_messages(1, 10, 2);
    first.send(&short);
    first.close_sending();
    harness.settle();
    assert_eq!(clients[0].take_received(), short);
    // One shuffled batch of 1000 whose first line is far above 11, the old
    // run's next seq: taken into the old run, it would misorder the new one.
    let seqs = shuffled(1..=1000);
    assert!(seqs[0] > 11, "the first line is {}", seqs[0]);
    let second = harness.connect(Port::Events);
    for seq in seqs {
        second.send(format!("{seq}|P|1|2\n").as_bytes());
    }
    harness.settle();
    assert_eq!(clients[0].take_received(), private_messages(1, 1000, 2));
    let stats = harness.engine.stats();
    assert_eq!((stats.runs, stats.late), (1, 0));
}

#[test]
fn an_endless_unterminated_line_at_the_end_is_dropped_and_the_next_source_is_served() {
    let (mut harness, source, clients) = with_clients(config(), &[1]);
    source.send(b"1|P|0|1\n");
    source.send(&vec![b'9'; 1 << 20]);
    source.close_sending();
    harness.settle();
    assert_eq!(clients[0].take_received(), b"1|P|0|1\n");
    assert_eq!(source.ended(), Some(Ending::Close));
    let stats = harness.engine.stats();
    assert_eq!((stats.source_connected, stats.malformed), (false, 1));
    let next = harness.connect(Port::Events);
    next.send(b"2|P|0|1\n");
    harness.run_for(ms(200), ms(50));
    assert_eq!(clients[0].take_received(), b"2|P|0|1\n");
}

#[test]
fn malformed_source_lines_are_skipped_and_counted() {
    let bad = bad_source_lines();
    let (stream, expected) = between_good_lines(&bad);
    let (mut harness, source, clients) = with_clients(config(), &[1]);
    source.send(&stream);
    harness.settle();
    assert_eq!(
        clients[0].take_received().escape_ascii().to_string(),
        expected.escape_ascii().to_string()
    );
    let stats = harness.engine.stats();
    assert_eq!(stats.malformed, bad.len() as u64);
    assert_eq!(stats.events_routed, bad.len() as u64 + 1);
}

#[test]
fn a_silent_source_yields_to_a_waiting_one_after_the_idle_time() {
    // One connects and says nothing (a health check, a hung producer); the
    // real one connects later and waits, then takes over.
    let (mut harness, silent) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    harness.run_for(ms(1000), ms(100));
    let real = harness.connect(Port::Events);
    real.send(b"1|P|1|2\n");
    harness.settle();
    assert_eq!(real.ended(), None, "it waits");
    let idle = config().source_idle;
    // Silent for a second already, but the idle time counts from when the
    // other one came: a stray connection does not end a quiet source at
    // once.
    harness.run_for(idle - ms(100), ms(100));
    assert_eq!(silent.ended(), None, "not before its idle time");
    harness.run_for(ms(200), ms(100));
    assert_eq!(silent.ended(), Some(Ending::Close));
    assert_eq!(client.take_received(), b"1|P|1|2\n");
    let stats = harness.engine.stats();
    assert_eq!((stats.sources_idle_closed, stats.sources_refused), (1, 0));
}

#[test]
fn a_lone_idle_source_is_never_closed() {
    // The original test client's source connects first and idles while its
    // clients connect.
    let (mut harness, source) = with_source(config());
    harness.run_for(ms(60_000), ms(1000));
    assert_eq!(source.ended(), None);
    let client = harness.client("2");
    source.send(b"1|P|1|2\n");
    harness.settle();
    assert_eq!(client.take_received(), b"1|P|1|2\n");
}

#[test]
fn a_waiting_source_is_refused_once_the_current_one_speaks() {
    let (mut harness, first) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    let second = harness.connect(Port::Events);
    second.send(b"99|P|1|2\n");
    harness.run_for(ms(1000), ms(100));
    assert_eq!(second.ended(), None, "waits while the first is silent");
    first.send(b"1|P|1|2\n");
    harness.settle();
    assert_eq!(
        second.ended(),
        Some(Ending::Close),
        "refused: two never interleave"
    );
    assert_eq!(first.ended(), None);
    assert_eq!(client.take_received(), b"1|P|1|2\n");
    assert_eq!(harness.engine.stats().sources_refused, 1);
}

#[test]
fn a_source_that_connects_as_the_current_one_did_waits_for_it_to_idle() {
    // Both in one turn: the current one has not spoken since the newcomer
    // came, so the newcomer waits, and the engine asks to be woken when
    // the current one's idle time is up.
    let (mut harness, silent) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    let real = harness.connect(Port::Events);
    real.send(b"1|P|1|2\n");
    harness.settle();
    crate::support::idle_for(&mut harness, config().source_idle + ms(100));
    assert_eq!((silent.ended(), real.ended()), (Some(Ending::Close), None));
    assert_eq!(client.take_received(), b"1|P|1|2\n");
}

#[test]
fn a_source_whose_bytes_came_as_its_idle_time_ran_out_is_read_not_closed() {
    // It was silent for the whole idle time, then sent: the readiness and
    // the deadline come in one turn. Its bytes are read first, and being
    // read it is not idle: the newcomer is refused, nothing is lost.
    let (mut harness, quiet) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    let newcomer = harness.connect(Port::Events);
    harness.settle();
    harness.advance(config().source_idle);
    quiet.send(b"1|P|1|2\n");
    harness.turn();
    assert_eq!(quiet.ended(), None);
    assert_eq!(newcomer.ended(), Some(Ending::Close));
    assert_eq!(client.take_received(), b"1|P|1|2\n");
}
