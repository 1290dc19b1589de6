//! Bounded work per input per turn: a peer that sends without end is read
//! a budget per turn (or closed at the byte that breaks a limit), and the
//! others are served in the same turns. Counted in bytes read and turns,
//! not time.

use std::time::Duration;

use follower_maze::engine::Ending;
use follower_maze::engine::Port;

use crate::support::{config, ms, padded_broadcasts, with_clients};

/// A flood no test's turns can read to its end (a loop that reads until
/// `WouldBlock` still ends, and fails the test, instead of hanging it).
const ENDLESS: u64 = 64 << 20;

/// What a registered client is read per turn at most: 16 KiB.
const CLIENT_READ_BUDGET: u64 = 16 * 1024;

/// Lines `seq|B\r\n` for seqs `1..=count`.
fn broadcasts(count: u64) -> Vec<u8> {
    padded_broadcasts(1, count, 1)
}

#[test]
fn an_id_line_with_no_newline_is_refused_at_the_limit() {
    let (mut harness, source, clients) = with_clients(config(), &[1]);
    let limit = config().max_id_line as u64;
    let flooder = harness.connect(Port::Clients);
    flooder.flood(b'7', ENDLESS);
    harness.turn();
    assert!(
        flooder.taken() <= 2 * limit,
        "read {} bytes of an id line longer than {limit}",
        flooder.taken()
    );
    assert_eq!(flooder.ended(), Some(Ending::Close), "closed at once");
    assert_eq!(harness.engine.stats().bad_ids, 1);
    source.send(&broadcasts(3));
    harness.settle();
    assert_eq!(clients[0].take_received(), broadcasts(3));
}

#[test]
fn a_client_that_sends_without_end_after_its_id_is_read_a_budget_per_turn() {
    let (mut harness, source, clients) = with_clients(config(), &[1, 2]);
    let (reader, flooder) = (&clients[0], &clients[1]);
    flooder.flood(b'x', ENDLESS);
    source.send(&broadcasts(100));
    for turn in 0..10 {
        let before = flooder.taken();
        harness.turn();
        let read = flooder.taken() - before;
        assert!(
            read <= CLIENT_READ_BUDGET,
            "turn {turn}: read {read} bytes from one client"
        );
        assert!(read > 0, "turn {turn}: the flooder is still read");
    }
    assert_eq!(reader.take_received(), broadcasts(100));
    assert_eq!(flooder.take_received(), broadcasts(100), "it is served too");
    assert_eq!(flooder.ended(), None, "sending is no reason to close it");
}

#[test]
fn a_client_left_with_bytes_is_revisited_without_readiness() {
    // Readiness is edge-triggered: a client whose bytes a turn's budget left
    // unread is not reported again. The engine keeps it on its own list.
    let (mut harness, _source, clients) = with_clients(config(), &[1]);
    clients[0].flood(b'x', ENDLESS);
    harness.turn();
    assert_eq!(
        harness.engine.timeout(harness.now),
        Some(Duration::ZERO),
        "work is waiting"
    );
    for _ in 0..3 {
        let before = clients[0].taken();
        // A turn with no readiness reported at all.
        harness.engine.tick(harness.now, &mut harness.net);
        assert_eq!(clients[0].taken() - before, CLIENT_READ_BUDGET);
    }
}

#[test]
fn lines_far_apart_cost_steps_per_line_not_per_seq_skipped() {
    // Each line a whole window ahead of the last: every line gives up on a
    // gap of 65,536 seqs. Crossing it must cost a few steps, not 65,536.
    let gap = 1u64 << 16;
    let lines = 2000u64;
    let config = follower_maze::Config {
        window_capacity: gap as usize,
        ..config()
    };
    let (mut harness, source, clients) = with_clients(config, &[2]);
    let line = |k: u64| format!("{}|P|1|2\n", k * gap);
    let stream: String = (1..=lines).map(line).collect();
    source.send(stream.as_bytes());
    source.close_sending();
    harness.run_for(ms(1100), ms(100));
    assert_eq!(
        clients[0].take_received(),
        stream.as_bytes(),
        "every line, in order"
    );
    let counters = harness.engine.pipeline().counters().window;
    assert_eq!(counters.skipped, lines * gap - lines);
    assert!(
        counters.steps <= 4 * lines,
        "{} steps for {lines} lines",
        counters.steps
    );
}

#[test]
fn fresh_follows_without_end_stop_at_the_graph_budget_and_are_still_delivered() {
    // 20,000 follows between fresh ids against a 256 KiB budget: the graph
    // stops growing at its budget, the refusals are counted, and the one
    // followed is told every time.
    let budget = 256 * 1024;
    let config = follower_maze::Config {
        max_follow_bytes: budget,
        ..config()
    };
    let (mut harness, source, clients) = with_clients(config, &[7]);
    let follows = 20_000u64;
    let stream: String = (1..=follows)
        .map(|seq| match seq % 100 {
            // The connected user is followed now and then.
            0 => format!("{seq}|F|{}|7\n", seq + 1_000_000),
            _ => format!("{seq}|F|{}|{}\n", seq + 1_000_000, seq + 2_000_000),
        })
        .collect();
    source.send(stream.as_bytes());
    harness.settle();
    let stats = harness.engine.stats();
    let graph = harness.engine.pipeline().router().graph();
    assert!(graph.bytes() <= budget, "{} bytes", graph.bytes());
    assert!(stats.follows_refused > 0);
    assert_eq!(stats.follow_edges as u64 + stats.follows_refused, follows);
    let told = clients[0].take_received();
    assert_eq!(
        told.iter().filter(|&&byte| byte == b'\n').count(),
        200,
        "every follow of user 7 delivered, recorded or not"
    );
}

/// Connections accepted on the client port per turn at most.
const CLIENT_ACCEPTS_PER_TURN: usize = 1024;

#[test]
fn a_flood_of_connections_is_accepted_a_budget_per_turn() {
    // More connections than a turn accepts, all at once: the turn that
    // meets them takes a budget's worth and goes on to the source; the rest
    // are taken in the next turns without readiness (it will not come
    // again for connections already queued).
    let (mut harness, source, clients) = with_clients(config(), &[1]);
    let flood: Vec<_> = (0..3000)
        .map(|i| harness.client(&(i + 2).to_string()))
        .collect();
    source.send(&broadcasts(1));
    harness.turn();
    let stats = harness.engine.stats();
    assert_eq!(
        stats.clients + stats.clients_awaiting_id,
        1 + CLIENT_ACCEPTS_PER_TURN
    );
    assert_eq!(
        clients[0].take_received(),
        broadcasts(1),
        "served meanwhile"
    );
    assert_eq!(harness.engine.timeout(harness.now), Some(Duration::ZERO));
    harness.settle();
    assert_eq!(harness.engine.stats().clients, 3001, "every one taken in");
    source.send(b"2|B\n");
    harness.settle();
    let received: Vec<Vec<u8>> = flood.iter().map(|peer| peer.take_received()).collect();
    assert!(received.iter().all(|bytes| bytes.ends_with(b"2|B\n")));
    let first = [broadcasts(1), b"2|B\n".to_vec()].concat();
    let taken_before_1 = received.iter().filter(|bytes| **bytes == first).count();
    assert_eq!(taken_before_1, CLIENT_ACCEPTS_PER_TURN, "the first turn's");
}
