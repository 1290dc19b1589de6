//! A new source's first events, held aside until its run is known (its
//! probation), neither lose a seq nor pass a limit: two of the cases the
//! `engine` fuzz target found (its seeds in `fuzz/seeds/engine_bugs/` cover
//! the third, shutdown during a probation).

use follower_maze::Config;
use follower_maze::engine::Port;

use crate::support::{config, ms, private_messages, with_clients};

/// `seqs` as private messages from user 1 to `to`, in the order given.
fn messages_in_order(seqs: impl IntoIterator<Item = u64>, to: u64) -> Vec<u8> {
    seqs.into_iter()
        .flat_map(|seq| private_messages(seq, 1, to))
        .collect()
}

#[test]
fn a_hole_is_not_given_up_while_its_seq_is_held_aside() {
    let (mut harness, first, clients) = with_clients(config(), &[2]);
    first.send(&messages_in_order([1, 2, 3, 5], 2));
    first.close_sending();
    harness.settle();
    // The hole at 4 has waited 950 ms of its 1 s when the next source sends
    // it, and its probation (100 ms) outlasts the hole's timer.
    harness.run_for(ms(950), ms(50));
    let second = harness.connect(Port::Events);
    second.send(&messages_in_order([4, 6], 2));
    harness.run_for(ms(300), ms(10));
    assert_eq!(clients[0].take_received(), private_messages(1, 6, 2));
    assert_eq!(harness.engine.stats().skipped, 0);
}

#[test]
fn events_let_in_after_a_probation_stay_within_the_window_budget() {
    let window_bytes = 256;
    let (mut harness, first, clients) = with_clients(
        Config {
            window_bytes,
            max_queued_bytes: 256,
            ..config()
        },
        &[2],
    );
    let reader = &clients[0];
    first.send(&private_messages(1, 5, 2));
    first.close_sending();
    harness.settle();
    reader.set_room(Some(0));
    let second = harness.connect(Port::Events);
    second.send(&private_messages(6, 200, 2));
    for _ in 0..40 {
        harness.advance(ms(10));
        harness.settle();
        let stats = harness.engine.stats();
        let max_frame = b"205|P|1|2\n".len();
        assert!(
            stats.window_bytes <= window_bytes + max_frame,
            "window over its budget: {stats:?}"
        );
    }
    reader.set_room(None);
    harness.run_for(ms(200), ms(10));
    assert_eq!(reader.take_received(), private_messages(1, 205, 2));
    assert_eq!(harness.engine.stats().skipped, 0);
}

#[test]
fn a_new_source_that_sends_nothing_holds_a_hole_only_up_to_the_silence_cap() {
    let (mut harness, first, clients) = with_clients(config(), &[2]);
    first.send(&messages_in_order([1, 2, 3, 5, 6], 2));
    first.close_sending();
    harness.settle();
    // Connected and silent (the producer reconnecting, or a health check):
    // it may yet send seq 4, so only its silence cap gives up on it.
    let _idle = harness.connect(Port::Events);
    harness.run_for(ms(9900), ms(100));
    assert_eq!(clients[0].take_received(), messages_in_order([1, 2, 3], 2));
    harness.run_for(ms(200), ms(100));
    assert_eq!(clients[0].take_received(), messages_in_order([5, 6], 2));
    assert_eq!(harness.engine.stats().skipped, 1);
}
