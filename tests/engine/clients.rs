//! Client lifecycle: ids and their deadline, half-close, going away, slow
//! versus stuck, back-pressure, shutdown.

use follower_maze::Config;
use follower_maze::engine::memory::Harness;
use follower_maze::engine::{Ending, Port};

use crate::support::{config, ms, private_messages, with_source};

#[test]
fn an_id_sent_before_events_is_taken_in_before_they_are_routed() {
    let (mut harness, source) = with_source(config());
    // In one turn, with no readiness reported for the client port (as when
    // the loop sees the source's readiness first): the client connects and
    // sends its id, then the source sends an event for it.
    let client = harness.client("7");
    source.send(b"1|P|1|7\n");
    let now = harness.now;
    harness.engine.ready(
        follower_maze::engine::ConnId::Source,
        Default::default(),
        now,
        &mut harness.net,
    );
    harness.engine.tick(now, &mut harness.net);
    assert_eq!(client.take_received(), b"1|P|1|7\n");
}

#[test]
fn a_client_without_an_id_in_time_is_closed_and_counted() {
    let mut harness = Harness::new(config());
    let silent = harness.connect(Port::Clients);
    let slow_but_in_time = harness.connect(Port::Clients);
    harness.settle();
    harness.run_for(ms(1900), ms(100));
    slow_but_in_time.send(b"5\r\n");
    harness.settle();
    assert_eq!(silent.ended(), None, "not before the deadline");
    harness.run_for(ms(200), ms(100));
    assert_eq!(silent.ended(), Some(Ending::Close));
    assert_eq!(slow_but_in_time.ended(), None, "it sent its id in time");
    let stats = harness.engine.stats();
    assert_eq!(
        (stats.bad_ids, stats.clients, stats.clients_awaiting_id),
        (1, 1, 0)
    );
}

#[test]
fn a_bad_id_line_closes_only_that_client() {
    let (mut harness, source) = with_source(config());
    let bad = harness.client("seven");
    let good = harness.client("7");
    harness.settle();
    source.send(b"1|B\n");
    harness.settle();
    assert_eq!(bad.ended(), Some(Ending::Close));
    assert_eq!(good.take_received(), b"1|B\n");
    assert_eq!(harness.engine.stats().bad_ids, 1);
}

#[test]
fn a_client_that_half_closes_after_its_id_keeps_receiving() {
    let (mut harness, source) = with_source(config());
    let client = harness.client("3");
    client.send(b"ignored chatter\n");
    client.close_sending();
    harness.settle();
    assert!(
        client.read_closed_seen(),
        "the transport is told, to probe it"
    );
    source.send(b"1|B\n2|P|9|3\n");
    harness.settle();
    assert_eq!(client.take_received(), b"1|B\n2|P|9|3\n");
    assert_eq!(client.ended(), None);
}

#[test]
fn a_client_that_resets_is_closed_and_unregistered() {
    let (mut harness, source) = with_source(config());
    let gone = harness.client("3");
    let stays = harness.client("3");
    harness.settle();
    gone.reset();
    harness.settle();
    assert_eq!(gone.ended(), Some(Ending::Close));
    assert_eq!(harness.engine.stats().clients, 1);
    source.send(b"1|P|1|3\n");
    harness.settle();
    assert_eq!(stays.take_received(), b"1|P|1|3\n");
}

#[test]
fn a_stuck_client_is_cut_at_the_write_deadline_and_reset() {
    let (mut harness, source) = with_source(config());
    let stuck = harness.client("2");
    let reader = harness.client("3");
    harness.settle();
    stuck.set_room(Some(0));
    source.send(b"1|B\n");
    harness.settle();
    harness.run_for(ms(9_900), ms(100));
    assert_eq!(stuck.ended(), None, "not before the write deadline");
    harness.run_for(ms(200), ms(100));
    assert_eq!(
        stuck.ended(),
        Some(Ending::Reset),
        "cut, unsent bytes dropped"
    );
    assert_eq!(harness.engine.stats().cut_write_deadline, 1);
    assert_eq!(reader.take_received(), b"1|B\n", "the others are served");
}

#[test]
fn a_slow_reader_is_never_cut_and_gets_every_byte_in_order() {
    // A small output limit, so the reader is far behind most of the time.
    let (mut harness, source) = with_source(Config {
        client_output_limit: 4096,
        ..config()
    });
    let slow = harness.client("2");
    harness.settle();
    let stream = private_messages(1, 2000, 2);
    source.send(&stream);
    let mut received = Vec::new();
    // 200 bytes every 100 ms: slow, and steady.
    for _ in 0..2000 {
        slow.set_room(Some(200));
        harness.advance(ms(100));
        harness.settle();
        received.extend(slow.take_received());
        if received.len() == stream.len() {
            break;
        }
    }
    assert_eq!(slow.ended(), None);
    assert_eq!(received, stream);
    let stats = harness.engine.stats();
    assert_eq!(stats.slow_consumers, 0);
    assert!(stats.source_pauses > 0, "it held the source instead");
}

#[test]
fn a_crawling_reader_is_cut_for_lag() {
    let (mut harness, source) = with_source(Config {
        client_output_limit: 4096,
        ..config()
    });
    let crawler = harness.client("2");
    harness.settle();
    source.send(&private_messages(1, 2000, 2));
    // A few bytes a second: progress, so never the write deadline, but
    // the oldest byte it owes grows older than the lag bound.
    for _ in 0..40 {
        crawler.set_room(Some(5));
        harness.run_for(ms(1000), ms(500));
    }
    assert_eq!(crawler.ended(), Some(Ending::Reset));
    assert_eq!(harness.engine.stats().cut_lag, 1);
}

#[test]
fn back_pressure_pauses_the_source_and_releases_it_when_output_drains() {
    let budget = 64 * 1024;
    let (mut harness, source) = with_source(Config {
        max_queued_bytes: budget,
        ..config()
    });
    let client = harness.client("2");
    harness.settle();
    client.set_room(Some(0));
    let stream = private_messages(1, 20_000, 2);
    source.send(&stream);
    harness.settle();
    let stats = harness.engine.stats();
    assert!(stats.source_pauses >= 1);
    assert!(stats.events_in < 20_000, "reading stopped: {stats:?}");
    assert!(stats.queued_bytes <= budget + 1024, "bounded: {stats:?}");
    client.set_room(None);
    harness.run_for(ms(500), ms(10));
    assert_eq!(client.take_received(), stream, "nothing lost");
}

#[test]
fn shutdown_delivers_what_was_received_behind_a_hole_and_closes_the_rest() {
    let (mut harness, source) = with_source(config());
    let client = harness.client("2");
    let no_id = harness.connect(Port::Clients);
    harness.settle();
    source.send(b"2|P|1|2\n3|P|1|2\n");
    harness.settle();
    assert!(client.take_received().is_empty(), "waiting for seq 1");
    let now = harness.now;
    harness.engine.shutdown(now, &mut harness.net);
    harness.settle();
    assert_eq!(client.take_received(), b"2|P|1|2\n3|P|1|2\n");
    assert!(harness.engine.is_flushed());
    assert_eq!(no_id.ended(), Some(Ending::Close));
    assert_eq!(source.ended(), Some(Ending::Close));
}
