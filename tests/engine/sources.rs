//! The event source: holes and their timer, hand-over between sources,
//! refusing a second concurrent source, new runs.

use follower_maze::engine::Ending;
use follower_maze::engine::Port;
use follower_maze::engine::memory::Harness;

use crate::support::{config, ms, private_messages, with_source};

#[test]
fn a_hole_is_skipped_only_after_the_hole_timeout() {
    let (mut harness, source) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    source.send(b"2|P|1|2\n3|P|1|2\n");
    harness.settle();
    harness.run_for(ms(900), ms(100));
    assert!(client.take_received().is_empty(), "seq 1 may still come");
    harness.run_for(ms(200), ms(100));
    assert_eq!(client.take_received(), b"2|P|1|2\n3|P|1|2\n");
    assert_eq!(harness.engine.stats().skipped, 1);
}

#[test]
fn the_hole_timer_waits_while_the_source_is_paused() {
    // The missing seq may be sitting unread behind a paused source: the
    // hole's wait does not run while it is paused.
    let (mut harness, source) = with_source(follower_maze::Config {
        max_queued_bytes: 1024,
        ..config()
    });
    let client = harness.client("2");
    harness.settle();
    client.set_room(Some(0));
    // Seq 502 first: held in the window while 1.. go out until the budget
    // is full; the rest, up to 501, stays unread behind the paused source.
    let mut stream = b"502|P|1|2\n".to_vec();
    stream.extend(private_messages(1, 501, 2));
    source.send(&stream);
    harness.run_for(ms(3000), ms(100));
    assert!(harness.engine.stats().source_pauses > 0);
    assert_eq!(harness.engine.stats().skipped, 0, "no hole given up on");
    client.set_room(None);
    harness.run_for(ms(500), ms(10));
    assert_eq!(client.take_received(), private_messages(1, 502, 2));
    assert_eq!(harness.engine.stats().skipped, 0);
}

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
fn a_source_that_starts_over_at_seq_1_starts_a_new_run() {
    let (mut harness, first) = with_source(config());
    let client = harness.client("2");
    harness.settle();
    first.send(b"1|F|2|3\n2|P|1|2\n");
    first.close_sending();
    harness.settle();
    let second = harness.connect(Port::Events);
    second.send(b"1|P|1|2\n");
    harness.run_for(ms(200), ms(50));
    assert_eq!(client.take_received(), b"2|P|1|2\n1|P|1|2\n");
    let stats = harness.engine.stats();
    assert_eq!((stats.runs, stats.follow_edges), (1, 0), "graph reset");
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
