//! Slow is not stuck: the write deadline, the lag bound, the output limit
//! (own frames only), holding the source, and the queued-output budget.

use std::time::Duration;

use follower_maze::Config;
use follower_maze::engine::Ending;

use crate::support::{
    BUDGET_BROADCASTS, BUDGET_READERS, Reader, assert_all_got, assert_stream, assert_within_budget,
    budgeted, config, idle_for, ms, output_limit, padded_broadcasts, padded_private_messages,
    private_messages, read_at_pace, read_until_done, with_clients, with_source,
};

#[test]
fn a_stuck_client_is_cut_at_the_write_deadline_while_fifty_readers_get_everything() {
    let ids: Vec<u64> = (1..=50).collect();
    let (mut harness, source, readers) = with_clients(config(), &ids);
    // Takes 1 KiB, as a small socket buffer would, then reads no more.
    let stuck = harness.client("1000");
    harness.settle();
    stuck.set_room(Some(1024));
    let stream = padded_broadcasts(1, 3000, 100); // 300 KB to everyone
    source.send(&stream);
    harness.settle();
    harness.run_for(ms(9_900), ms(100));
    assert_eq!(stuck.ended(), None, "not before the write deadline");
    harness.run_for(ms(200), ms(100));
    assert_eq!(stuck.ended(), Some(Ending::Reset), "cut: reset");
    let stats = harness.engine.stats();
    assert_eq!((stats.slow_consumers, stats.cut_write_deadline), (1, 1));
    for reader in readers {
        assert_stream(&reader.take_received(), &stream, "a reader");
        assert_eq!(reader.ended(), None);
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_at_the_write_deadline_even_without_traffic() {
    let deadline = ms(200);
    let (mut harness, source, readers) = with_clients(
        Config {
            write_deadline: deadline,
            ..config()
        },
        &[2],
    );
    let silent = harness.client("1");
    harness.settle();
    silent.set_room(Some(1024)); // it reads a little, then stops
    let stream = padded_broadcasts(1, 2000, 100);
    source.send(&stream);
    harness.settle();
    assert_stream(&readers[0].take_received(), &stream, "the reader");
    // No more traffic: only the engine's own wake-up can cut it.
    idle_for(&mut harness, deadline - ms(1));
    assert_eq!(silent.ended(), None, "not before the write deadline");
    idle_for(&mut harness, ms(1));
    assert_eq!(silent.ended(), Some(Ending::Reset));
    let stats = harness.engine.stats();
    assert_eq!(
        (stats.cut_write_deadline, stats.clients),
        (1, 1),
        "{stats:?}"
    );
    // The reader owes nothing: idle for many deadlines, it is never cut.
    idle_for(&mut harness, deadline * 5);
    assert_eq!(readers[0].ended(), None);
    assert_eq!(harness.engine.stats().slow_consumers, 1);
}

/// Sends `stream`, private messages to user 1 many times `limit` long, to
/// one reader that takes `pace` bytes every `step`, far slower than the
/// source sends: it holds the source once half its output limit behind,
/// so the source slows to its pace; it is never cut, gets every byte in
/// order, and is never owed much more than that half.
fn a_slow_reader_holds_the_source(limit: usize, stream: &[u8], pace: usize, step: Duration) {
    let (mut harness, source, clients) = with_clients(output_limit(limit), &[1]);
    source.send(stream);
    let mut readers = Reader::all(clients, Some(pace));
    let max = step * (stream.len() / pace * 2) as u32;
    read_until_done(&mut harness, &mut readers, step, max, stream.len());
    assert_all_got(&readers, stream);
    let stats = harness.engine.stats();
    assert_eq!(stats.slow_consumers, 0, "{stats:?}");
    assert!(stats.source_pauses > 0, "it held the source: {stats:?}");
    assert!(
        stats.queued_bytes_peak <= limit,
        "owed at most about half its limit, plus a turn: {stats:?}"
    );
}

#[test]
fn a_slow_reader_is_never_cut_and_gets_every_byte_in_order() {
    // A small output limit, so the reader is far behind most of the time:
    // 200 bytes every 100 ms, slow and steady.
    a_slow_reader_holds_the_source(4096, &private_messages(1, 2000, 1), 200, ms(100));
}

#[test]
fn a_steady_reader_of_its_own_frames_slows_the_source_instead_of_being_cut() {
    // The socket test's bytes and rates over eight: no kernel buffer to
    // fill here, and the ratios to the limit are what matters. 1 MB,
    // eight times the limit, read at 500 kB/s.
    let stream = padded_private_messages(1, 8000, 120, 1);
    a_slow_reader_holds_the_source(128 * 1024, &stream, 5000, ms(10));
}

#[test]
fn a_crawling_reader_of_its_own_frames_is_cut_for_lag() {
    let (mut harness, source, clients) = with_clients(output_limit(4096), &[2]);
    source.send(&private_messages(1, 2000, 2));
    // A few bytes a second: progress, so never the write deadline, but
    // the oldest byte it owes grows older than the lag bound.
    let mut readers = Reader::all(clients, Some(5));
    read_at_pace(&mut harness, &mut readers, ms(1000), ms(40_000), |_| false);
    assert_eq!(readers[0].peer.ended(), Some(Ending::Reset));
    assert_eq!(harness.engine.stats().cut_lag, 1);
}

#[test]
fn a_crawling_reader_is_cut_at_the_lag_bound_and_the_others_complete() {
    // The socket test's bytes and rates over eight.
    let max_lag = ms(1000);
    let (mut harness, source, clients) = with_clients(
        Config {
            max_lag,
            write_deadline: ms(30_000),
            max_queued_bytes: 128 * 1024,
            ..config()
        },
        &[1, 2, 3, 4],
    );
    let stream = padded_broadcasts(1, 8000, 120); // 1 MB to everyone
    source.send(&stream);
    let mut readers = Reader::all(clients, None);
    // The crawler: 16 KiB every half second, steady progress but far
    // behind a stream paused at 128 KiB.
    readers[3] = Reader::new(readers[3].peer.clone(), Some(16 * 1024 / 50));
    let until_cut = read_at_pace(&mut harness, &mut readers, ms(10), ms(30_000), |readers| {
        readers[3].peer.ended().is_some()
    });
    assert!(readers[3].was_cut(), "the crawler was cut");
    assert!(until_cut >= max_lag, "cut after {until_cut:?}");
    read_until_done(&mut harness, &mut readers, ms(10), ms(10_000), stream.len());
    assert!(
        readers[3].received.len() < stream.len(),
        "the crawler was cut before the end"
    );
    assert_all_got(&readers[..3], &stream);
    let stats = harness.engine.stats();
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

#[test]
fn only_a_clients_own_frames_count_against_its_output_limit() {
    // The socket test's bytes over eight.
    let limit = 32 * 1024;
    let (mut harness, source, clients) = with_clients(
        Config {
            write_deadline: ms(60_000),
            max_lag: ms(60_000),
            ..output_limit(limit)
        },
        &[1, 2],
    );
    for client in &clients {
        client.set_room(Some(1024)); // neither reads
    }
    // 500 kB of broadcasts, owed to both and held once: no cut.
    let count = 4000;
    source.send(&padded_broadcasts(1, count, 120));
    // They hold the source while bytes were written to them lately, and
    // let go of it a second after they stopped reading.
    harness.run_for(ms(2000), ms(100));
    let stats = harness.engine.stats();
    assert_eq!(stats.events_routed, count);
    assert!(stats.queued_bytes > limit, "{stats:?}");
    assert_eq!(stats.slow_consumers, 0, "{stats:?}");
    // 125 kB of private messages to user 1: past its limit.
    source.send(&padded_private_messages(count + 1, 1000, 120, 1));
    harness.run_for(ms(100), ms(10));
    let stats = harness.engine.stats();
    assert_eq!((stats.cut_output_limit, stats.clients), (1, 1), "{stats:?}");
    assert_eq!(clients[0].ended(), Some(Ending::Reset));
    assert_eq!(clients[1].ended(), None);
}

#[test]
fn steady_readers_of_a_flood_stay_within_the_lag_bound() {
    // The default limits, scaled down in time: a lag bound far shorter
    // than the output budget takes to drain at the readers' pace. Each
    // reader holds the source once it is half its output limit behind,
    // which keeps its lag at a fraction of the bound.
    // The socket test's bytes and rates over eight.
    let (mut harness, source, clients) = with_clients(
        Config {
            max_lag: ms(1000),
            max_queued_bytes: 8 << 20, // 16 s of reading at 500 kB/s
            ..output_limit(256 * 1024)
        },
        &[1, 2],
    );
    let stream = padded_broadcasts(1, 12_000, 120); // 1.5 MB: 3 s each
    source.send(&stream);
    let mut readers = Reader::all(clients, Some(5000)); // 500 kB/s
    read_until_done(&mut harness, &mut readers, ms(10), ms(20_000), stream.len());
    assert_all_got(&readers, &stream);
    let stats = harness.engine.stats();
    assert_eq!((stats.slow_consumers, stats.cut_lag), (0, 0), "{stats:?}");
    assert!(stats.source_pauses > 0, "{stats:?}");
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
fn back_pressure_bounds_queued_output_of_slow_readers_and_loses_nothing() {
    let (mut harness, source, clients) = with_clients(budgeted(), &BUDGET_READERS);
    let (count, width) = BUDGET_BROADCASTS;
    let stream = padded_broadcasts(1, count, width);
    source.send(&stream);
    // Slow readers: 1 KiB a millisecond.
    let mut readers = Reader::all(clients, Some(1024));
    read_until_done(&mut harness, &mut readers, ms(1), ms(10_000), stream.len());
    assert_all_got(&readers, &stream);
    let stats = harness.engine.stats();
    assert_within_budget(&stats);
    assert!(stats.source_pauses > 0, "never paused: {stats:?}");
    assert_eq!(stats.slow_consumers, 0);
}

#[test]
fn stuck_clients_cannot_hold_the_source_paused_forever() {
    // Silent clients hold the broadcast log over the queued-output budget:
    // the source pauses, and nothing new reaches them. The write deadline
    // cuts them, with no traffic to trigger it, and the reader gets all.
    // The socket test's bytes over eight.
    let (mut harness, source, readers) = with_clients(
        Config {
            max_queued_bytes: 32 * 1024,
            write_deadline: ms(300),
            ..config()
        },
        &[1],
    );
    let silent: Vec<_> = (2..6).map(|id| harness.client(&id.to_string())).collect();
    harness.settle();
    for client in &silent {
        client.set_room(Some(1024));
    }
    let stream = padded_broadcasts(1, 4000, 60);
    source.send(&stream);
    idle_for(&mut harness, ms(1000));
    assert_stream(&readers[0].take_received(), &stream, "the reader");
    let stats = harness.engine.stats();
    assert!(stats.source_pauses > 0, "{stats:?}");
    assert_eq!(
        (stats.slow_consumers, stats.cut_write_deadline),
        (4, 4),
        "{stats:?}"
    );
    assert!(silent.iter().all(|c| c.ended() == Some(Ending::Reset)));
}
