//! The check behind the `source_stream` fuzz target, shared with
//! `tests/fuzz_seeds.rs`, which runs it over the committed seeds so it keeps
//! compiling and passing under `cargo test`.
//!
//! Arbitrary bytes from an event source, fed in chunks split where the
//! input's first byte says, through framing, parsing, the reorder window and
//! the router. Nothing may panic, and every delivery must be a whole line
//! within the limit, in strictly increasing seq order.

use std::time::{Duration, Instant};

use follower_maze::engine::inbox::Inbox;
use follower_maze::engine::pipeline::Pipeline;
use follower_maze::engine::protocol::{self, Line};

/// The line limit under test: small, so overlong lines are common.
const MAX_LINE: usize = 64;

/// Runs one input; panics on any broken rule.
pub fn check(data: &[u8]) {
    let Some((&split_seed, stream)) = data.split_first() else {
        return;
    };
    let mut inbox = Inbox::new(256, MAX_LINE);
    let mut pipeline = Pipeline::new(16, 256, Duration::from_millis(10), Instant::now());
    // Users 0..4 online, one connection each.
    for user in 0..4 {
        pipeline.register(user, user as usize);
    }
    let mut last_seq = 0;
    let mut deliver = |_conn: usize, frame: &[u8]| {
        assert!(frame.ends_with(b"\n") && frame.len() <= MAX_LINE);
        let event = protocol::parse_event(protocol::strip_terminator(frame))
            .expect("only valid events are delivered");
        assert!(event.seq >= last_seq, "out of order");
        last_seq = event.seq;
    };
    let now = Instant::now();
    let chunk = usize::from(split_seed % 31) + 1;
    for (i, mut piece) in stream.chunks(chunk).enumerate() {
        inbox
            .read_from(&mut piece, usize::MAX)
            .expect("reading a slice cannot fail");
        while let Some(line) = inbox.next_line() {
            match line {
                Line::Frame { start, end } => {
                    let _ = pipeline.on_frame(inbox.frame(start, end), now, &mut deliver);
                }
                Line::Overlong => pipeline.overlong_line(),
            }
        }
        inbox.compact();
        // Time passes now and then, so holes get skipped too.
        if i % 7 == 6 {
            pipeline.on_timer(now + Duration::from_secs(i as u64), &mut deliver);
        }
    }
    // The source goes away: everything received is released, holes given
    // up on, as the server's shutdown does.
    pipeline.source_disconnected(now, &mut deliver);
    pipeline.end_of_stream();
    for _ in 0..1000 {
        if !pipeline.has_ready() {
            break;
        }
        pipeline.release_ready(now, &mut deliver);
    }
    assert!(
        !pipeline.has_ready(),
        "the end of the stream releases everything"
    );
    let counters = pipeline.counters();
    assert_eq!(pipeline.window_depth(), (0, 0));
    assert!(counters.events_routed <= counters.events_in);
}
