//! The check behind the `source_stream` fuzz target, shared with
//! `tests/fuzz_seeds.rs`, which runs it over the committed seeds so it keeps
//! compiling and passing under `cargo test`.
//!
//! Arbitrary bytes from an event source, fed in chunks split where the
//! input's first byte says, through framing, parsing, the reorder window and
//! the router. Nothing may panic, and every delivery must be a whole line
//! within the limit, in strictly increasing seq order.
//!
//! Lines are framed and parsed in one pass, as the server does
//! ([`Inbox::next_event`]); a second inbox fed the same chunks frames with
//! memchr and parses strictly ([`Inbox::next_line`], [`protocol::parse_event`]),
//! and the two must find the same lines, the same events and the same errors.

use std::time::{Duration, Instant};

use follower_maze::engine::inbox::Inbox;
use follower_maze::engine::pipeline::Pipeline;
use follower_maze::engine::protocol::{self, EventLine, Line};

/// The line limit under test: small, so overlong lines are common.
const MAX_LINE: usize = 64;

/// Runs one input; panics on any broken rule.
pub fn check(data: &[u8]) {
    let Some((&split_seed, stream)) = data.split_first() else {
        return;
    };
    let mut inbox = Inbox::new(256, MAX_LINE);
    let mut general = Inbox::new(256, MAX_LINE);
    let mut pipeline = Pipeline::new(
        16,
        256,
        Duration::from_millis(10),
        Duration::from_millis(100),
        Instant::now(),
    );
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
    for (i, piece) in stream.chunks(chunk).enumerate() {
        for inbox in [&mut inbox, &mut general] {
            inbox
                .read_from(&mut &piece[..], usize::MAX)
                .expect("reading a slice cannot fail");
        }
        while let Some(line) = inbox.next_event() {
            let expected = general.next_line().expect("the general path finds it too");
            match (line, expected) {
                (EventLine::Frame { start, end, parsed }, Line::Frame { start: s, end: e }) => {
                    assert_eq!((start, end), (s, e), "the same frame");
                    let strict =
                        protocol::parse_event(protocol::strip_terminator(general.frame(s, e)));
                    assert_eq!(parsed, strict, "the same event or error");
                    let _ = pipeline.on_parsed_frame(
                        parsed,
                        inbox.frame(start, end),
                        now,
                        &mut deliver,
                    );
                }
                (EventLine::Overlong, Line::Overlong) => pipeline.overlong_line(),
                (line, expected) => {
                    panic!("one pass found {line:?}, the general path {expected:?}")
                }
            }
        }
        assert_eq!(general.next_line(), None, "the general path finds no more");
        inbox.compact();
        general.compact();
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
