//! The reorder window: holes and their timer, a full window, duplicates
//! and late events, and releasing a long run once its hole fills or is
//! given up on.

use follower_maze::Config;
use follower_maze::engine::Port;
use follower_maze::engine::memory::{Harness, Peer};

use crate::support::{
    BUDGET_BROADCASTS, BUDGET_READERS, Reader, after_sending, assert_all_got, assert_within_budget,
    budgeted, config, ms, output_limit, padded_broadcasts, private_messages, read_until_done,
    with_clients, with_source,
};

#[test]
fn a_hole_is_skipped_only_after_the_hole_timeout_then_events_flow() {
    let (mut harness, source, clients) = with_clients(config(), &[1]);
    let client = &clients[0];
    source.send(b"1|P|0|1\r\n3|P|0|1\r\n4|P|0|1\r\n");
    harness.settle();
    assert_eq!(client.take_received(), b"1|P|0|1\r\n");
    // The source goes on without seq 2: a line every 100 ms.
    let later = |seq: u64| format!("{seq}|P|0|1\r\n");
    for seq in 5..=13 {
        harness.advance(ms(100));
        source.send(later(seq).as_bytes());
        harness.settle();
    }
    assert!(client.take_received().is_empty(), "seq 2 may still come");
    harness.advance(ms(100));
    source.send(later(14).as_bytes());
    harness.settle();
    let after: String = [3, 4].into_iter().chain(5..=14).map(later).collect();
    assert_eq!(client.take_received(), after.as_bytes());
    // Seq 2 comes after all: late, dropped; the stream goes on.
    source.send(b"2|P|0|1\r\n15|P|0|1\r\n");
    harness.settle();
    assert_eq!(client.take_received(), b"15|P|0|1\r\n");
    let stats = harness.engine.stats();
    assert_eq!((stats.skipped, stats.late), (1, 1));
}

/// What the source does in a row of
/// [`the_hole_timer_counts_the_sources_activity_not_the_clock`].
enum Act {
    /// Sends these lines.
    Send(String),
    /// Ends its connection.
    Close,
}

/// The private message `seq` to user 1, as the source sends it.
fn to_one(seq: u64) -> String {
    format!("{seq}|P|0|1\n")
}

#[test]
fn the_hole_timer_counts_the_sources_activity_not_the_clock() {
    // Each row: the source has sent 1 and 3 at 0 ms (2 is missing); then
    // what it does at each 10 ms step, and when seq 2 is given up on (the
    // defaults: 1 s of the source's activity, 10 s of its silence).
    type Script = fn(u64) -> Option<Act>;
    let table: [(&str, Script, Option<u64>); 6] = [
        (
            "silent 2.5 s mid-batch, then the missing line",
            |t| (t == 2500).then(|| Act::Send(to_one(2) + &to_one(4))),
            None,
        ),
        (
            "silent 2.5 s three times, sending on in between",
            |t| match t {
                2500 | 5500 | 8500 => Some(Act::Send(to_one(4 + (t - 2500) / 3000))),
                9000 => Some(Act::Send(to_one(2))),
                _ => None,
            },
            None,
        ),
        (
            "later seqs every 10 ms without it (as on the clock)",
            |t| (t > 0 && t % 10 == 0).then(|| Act::Send(to_one(3 + t / 10))),
            Some(1000),
        ),
        (
            "later seqs every 500 ms: each silence counts 100 ms",
            |t| (t > 0 && t % 500 == 0).then(|| Act::Send(to_one(3 + t / 500))),
            Some(4600),
        ),
        ("silent past the cap", |_| None, Some(10_000)),
        (
            "ends 300 ms in without it: the wait counts on the clock",
            |t| (t == 300).then_some(Act::Close),
            Some(1000),
        ),
    ];
    for (what, script, expected) in table {
        let (mut harness, source, clients) = with_clients(config(), &[1]);
        source.send((to_one(1) + &to_one(3)).as_bytes());
        harness.settle();
        let mut skipped_at = None;
        let mut sent = vec![1, 3];
        for t in (0..=12_000).step_by(10) {
            harness.advance(ms(10).min(ms(t)));
            match script(t) {
                Some(Act::Send(lines)) => {
                    sent.extend(
                        lines
                            .lines()
                            .map(|l| l.split('|').next().unwrap().parse::<u64>().unwrap()),
                    );
                    source.send(lines.as_bytes());
                }
                Some(Act::Close) => source.close_sending(),
                None => {}
            }
            harness.settle();
            if skipped_at.is_none() && harness.engine.stats().skipped > 0 {
                skipped_at = Some(t);
            }
        }
        assert_eq!(skipped_at, expected, "{what}");
        let stats = harness.engine.stats();
        assert_eq!(stats.late, 0, "{what}: nothing arrived after being skipped");
        sent.sort_unstable();
        let owed: String = sent.into_iter().map(to_one).collect();
        assert_eq!(
            clients[0].take_received().escape_ascii().to_string(),
            owed.as_bytes().escape_ascii().to_string(),
            "{what}: every line sent, in order"
        );
    }
}

#[test]
fn the_hole_timer_waits_while_the_source_is_paused() {
    // The missing seq may be sitting unread behind a paused source: the
    // hole's wait does not run while it is paused.
    let (mut harness, source) = with_source(Config {
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

/// [`config`] with a hole timer too long to fire in these tests: only a
/// full window gives up on a hole.
fn no_hole_timer() -> Config {
    Config {
        hole_timeout: ms(60_000),
        ..config()
    }
}

#[test]
fn a_full_window_skips_the_hole_without_waiting() {
    let config = Config {
        window_capacity: 16,
        ..no_hole_timer()
    };
    let (mut harness, source, clients) = with_clients(config, &[1]);
    let events = private_messages(2, 19, 1);
    source.send(&events);
    harness.settle();
    // 17 does not fit while 1 is missing, so 1 is given up on; 2..=17 flow,
    // and 18..=20 follow in order. No time has passed.
    assert_eq!(clients[0].take_received(), events);
    assert_eq!(harness.engine.stats().skipped, 1);
}

#[test]
fn duplicate_and_late_events_are_dropped_and_counted() {
    let (harness, clients) = after_sending(
        &[1],
        b"1|P|0|1\n3|P|0|1\n3|P|0|1\n2|P|0|1\n1|P|0|1\n4|P|0|1\n",
    );
    assert_eq!(
        clients[0].take_received(),
        b"1|P|0|1\n2|P|0|1\n3|P|0|1\n4|P|0|1\n"
    );
    let stats = harness.engine.stats();
    assert_eq!((stats.duplicates, stats.late), (1, 1));
}

#[test]
fn a_full_window_releases_its_run_without_cutting_a_reader() {
    // Seq 1 never comes; the window's byte budget (not the hole timer)
    // makes it give up, and the run behind the hole goes out as the
    // reader takes it.
    // The socket test's bytes over eight.
    let stream = padded_broadcasts(2, 11_999, 120);
    let config = Config {
        window_bytes: 1_000_000,
        ..no_hole_timer()
    };
    let (mut harness, source, clients) = with_clients(config, &[1]);
    source.send(&stream);
    let mut readers = Reader::all(clients, Some(128 * 1024)); // 12.5 MiB/s
    read_until_done(&mut harness, &mut readers, ms(10), ms(10_000), stream.len());
    assert_all_got(&readers, &stream);
    let stats = harness.engine.stats();
    assert_eq!((stats.slow_consumers, stats.skipped), (0, 1), "{stats:?}");
}

/// Sends `padded_broadcasts(2..=count)` first, checks the window holds them
/// all behind the missing seq 1, then sends seq 1. Returns the whole run.
fn fill_a_long_hole(harness: &mut Harness, source: &Peer, count: u64, width: usize) -> Vec<u8> {
    source.send(&padded_broadcasts(2, count - 1, width));
    harness.settle();
    let depth = harness.engine.stats().window_depth;
    assert_eq!(depth, count as usize - 1, "the run is held behind the hole");
    source.send(&padded_broadcasts(1, 1, width));
    padded_broadcasts(1, count, width)
}

#[test]
fn filling_a_long_hole_respects_the_queued_output_budget() {
    let (mut harness, source, clients) = with_clients(budgeted(), &BUDGET_READERS);
    let (count, width) = BUDGET_BROADCASTS; // all released by one event
    let stream = fill_a_long_hole(&mut harness, &source, count, width);
    let mut readers = Reader::all(clients, Some(1024));
    read_until_done(&mut harness, &mut readers, ms(1), ms(10_000), stream.len());
    assert_all_got(&readers, &stream);
    assert_within_budget(&harness.engine.stats());
}

#[test]
fn filling_a_long_hole_does_not_cut_clients_that_read() {
    // 2 MB to each client released by one event: sixteen times the output
    // limit (the socket test's bytes over eight). Readers that take 100 kB/s
    // would lag the stream by 20 s, past the lag bound, if it were all
    // released at once; it goes out as they take it instead.
    let (mut harness, source, clients) = with_clients(output_limit(128 * 1024), &[1, 2, 3]);
    let stream = fill_a_long_hole(&mut harness, &source, 16_000, 128);
    let mut readers = Reader::all(clients, Some(10_000));
    read_until_done(
        &mut harness,
        &mut readers,
        ms(100),
        ms(60_000),
        stream.len(),
    );
    assert_all_got(&readers, &stream);
    assert_eq!(harness.engine.stats().slow_consumers, 0);
}

#[test]
fn a_line_too_far_ahead_of_an_empty_window_with_the_outboxes_full_waits_its_turn() {
    // A new source's first events are let in when its probation ends: five
    // long broadcasts fill the turn's output, leaving the window empty, and
    // the next line is more than a window ahead. Crossing the gap to it
    // needs no room in the outboxes; waiting for room that only a turn's end
    // makes would spin the loop for ever. Run on a thread of its own, so a
    // spin fails the test instead of hanging it.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let small = Config {
            window_capacity: 16,
            window_bytes: 256,
            max_line: 32,
            client_output_limit: 256,
            hole_timeout: ms(250),
            ..config()
        };
        let (mut harness, first, clients) = with_clients(small, &[1]);
        first.send(&padded_broadcasts(1, 8, 1));
        harness.settle();
        first.close_sending();
        harness.settle();
        let next = harness.connect(Port::Events);
        next.send(&padded_broadcasts(9, 5, 28));
        next.send(b"40|B\r\n");
        // It ends: the hole before 40 is given up on by the clock.
        next.close_sending();
        harness.settle();
        harness.run_for(ms(1000), ms(50));
        let stats = harness.engine.stats();
        done.send((clients[0].take_received(), stats.skipped))
            .unwrap();
    });
    let (received, skipped) = finished
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the engine never spins");
    let expected = [
        padded_broadcasts(1, 8, 1),
        padded_broadcasts(9, 5, 28),
        b"40|B\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(
        String::from_utf8_lossy(&received),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(skipped, 26, "seqs 14 to 39");
}
