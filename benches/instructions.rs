//! Instruction counts of the hot path's three steps (parse, window, route)
//! on the simulator's default-mix stream, under valgrind's callgrind.
//!
//! Why both kinds of bench: the criterion benches (`parse`, `window`,
//! `route`, `end_to_end`) give wall time, which on a shared, noisy machine
//! swings by tens of percent from run to run. These count the instructions
//! the same work executes, which is deterministic: the same code on the same
//! input gives the same count on every run, whatever else the machine is
//! doing, so a change of a fraction of a percent shows. Counts are not time
//! (a cache miss costs no more instructions than a hit), so a change is
//! decided by instructions and CPU time together, and confirmed end to end.
//!
//! What is counted: only the body of each benchmark function. The stream
//! (100,000 events, shuffled batches of up to 100, CRLF) is generated, and
//! the inbox, window, pipeline and outboxes built and warmed by one pass over
//! it, in a setup function; the result is checked, and everything dropped,
//! in a teardown function. Neither is counted.
//!
//! - `parse`: the stream through an [`Inbox`] of the server's size in reads
//!   of at most 1 MiB, every line framed and parsed in one pass
//!   ([`Inbox::next_event`]), as the server and `benches/parse.rs`'s
//!   `frame+parse` do.
//! - `window`: the stream's frames, in the order it sends them (batches of
//!   random size up to 100, where `benches/window.rs` shuffles runs of
//!   exactly 100), through a [`ReorderWindow`] of the server's default size
//!   as the pipeline feeds it (the in-order bypass, else `push` and then
//!   `pop` all that is ready), as `benches/window.rs` does.
//! - `route`: the whole path without sockets (`route_in_turns` from
//!   `tests/support/sink_path.rs`: inbox, parse, window, router, outboxes
//!   drained each 8 MiB turn and at the end), for 100 connections (the
//!   simulator's default run) and 10,000, as `benches/route.rs` does.
//!
//! Running them needs valgrind (Debian's `valgrind`) and `gungraun-runner`
//! of the same version as the `gungraun` dev-dependency in Cargo.toml:
//!
//! ```text
//! cargo install gungraun-runner --version 0.20.0
//! cargo bench --features instruction-counts --bench instructions
//! cargo bench --features instruction-counts --bench instructions -- '*route*'   # one group
//! ```
//!
//! Each run is compared with the previous one (the change is shown beside
//! each count). To compare with a fixed reference instead, e.g. main:
//! `cargo bench --features instruction-counts --bench instructions -- --save-baseline=main` there, then
//! `cargo bench --features instruction-counts --bench instructions -- --baseline=main` on the branch.
//! The callgrind profiles are kept under `target/gungraun/` for
//! `callgrind_annotate`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use follower_maze::engine::inbox::Inbox;
use follower_maze::engine::pipeline::Pipeline;
use follower_maze::engine::protocol::{EventKind, EventLine, parse_event, strip_terminator};
use follower_maze::engine::window::ReorderWindow;
use follower_maze_sim::plan::Plan;
use follower_maze_sim::{CountingSink, Generator, GeneratorConfig, SimConfig};
use gungraun::{library_benchmark, library_benchmark_group, main};

#[path = "../tests/support/sink_path.rs"]
mod sink_path;

use sink_path::{INBOX_BYTES, SinkOutboxes, route_in_turns};

#[path = "support/window_feed.rs"]
mod window_feed;

use window_feed::{Item, feed};

/// Events in every stream: small enough for valgrind to get through the
/// whole file in about a minute.
const EVENTS: u64 = 100_000;
/// The server's default longest event line.
const MAX_LINE: usize = 1024;
/// The server's default window: 2^20 seqs.
const WINDOW_SEQS: usize = 1 << 20;
/// The server's default window byte budget: 64 MiB.
const WINDOW_BYTES: usize = 64 * 1024 * 1024;

/// The stream `config` describes, as wire bytes.
fn generate(config: &GeneratorConfig, verified: &[u32]) -> Vec<u8> {
    let mut generator = Generator::new(config, verified);
    let mut bytes = Vec::with_capacity(config.total_events as usize * 20);
    while generator
        .next_batch(&mut bytes, &mut CountingSink::default())
        .is_some()
    {}
    bytes
}

/// The stream `benches/parse.rs` and `benches/window.rs` use, shortened.
fn default_mix(events: u64) -> Vec<u8> {
    let config = GeneratorConfig {
        total_events: events,
        ..GeneratorConfig::default()
    };
    generate(&config, &[])
}

// ---- parse -----------------------------------------------------------------

/// The stream and the inbox it is read into.
struct ParseInput {
    bytes: Vec<u8>,
    inbox: Inbox,
}

/// What a parse pass did, with its input for the teardown to drop.
struct ParseOutput {
    input: ParseInput,
    /// Frames the inbox split off.
    frames: u64,
    /// Frames that parsed as events.
    parsed: u64,
}

/// Reads `bytes` through `inbox` as the server reads its source and parses
/// every frame; returns the frame and event counts.
fn frame_and_parse(inbox: &mut Inbox, mut bytes: &[u8]) -> (u64, u64) {
    let (mut frames, mut parsed) = (0u64, 0u64);
    loop {
        while let Some(line) = inbox.next_event() {
            if let EventLine::Frame { parsed: event, .. } = line {
                frames += 1;
                if let Ok(event) = event {
                    black_box(event);
                    parsed += 1;
                }
            }
        }
        inbox.compact();
        if bytes.is_empty() {
            return (frames, parsed);
        }
        // Reading from a slice cannot fail; it advances `bytes`.
        let read = inbox.read_from(&mut bytes, INBOX_BYTES);
        debug_assert!(matches!(read, Ok(n) if n > 0));
    }
}

/// The stream, and an inbox that has read it once (as the criterion bench's
/// inbox has by its first timed iteration).
fn parse_setup(events: u64) -> ParseInput {
    let bytes = default_mix(events);
    let mut inbox = Inbox::new(INBOX_BYTES, MAX_LINE);
    let (_, parsed) = frame_and_parse(&mut inbox, &bytes);
    assert_eq!(parsed, events, "the generator's lines all parse");
    ParseInput { bytes, inbox }
}

fn parse_check(output: ParseOutput) {
    assert_eq!(output.frames, EVENTS, "one frame per event");
    assert_eq!(output.parsed, EVENTS, "every frame parsed");
    assert!(
        !output.input.inbox.has_unfinished_line(),
        "the stream ends a line"
    );
}

#[library_benchmark]
#[bench::default_mix(args = (EVENTS), setup = parse_setup, teardown = parse_check)]
fn parse(mut input: ParseInput) -> ParseOutput {
    let (frames, parsed) = frame_and_parse(&mut input.inbox, black_box(&input.bytes));
    ParseOutput {
        input,
        frames,
        parsed,
    }
}

library_benchmark_group!(name = parse_group; benchmarks = parse);

// ---- window ----------------------------------------------------------------

/// The stream's frames, their events in the order sent, and a window that
/// has taken the whole stream once (its buffer pool warm, as in the
/// criterion bench after its first iteration).
struct WindowInput {
    bytes: Vec<u8>,
    items: Vec<Item>,
    window: ReorderWindow<EventKind>,
}

/// What a window pass did, with its input for the teardown to drop.
struct WindowOutput {
    input: WindowInput,
    /// Events that came out of the window (bypassed or popped).
    released: u64,
}

/// Feeds every item as the pipeline does; returns how many events came out.
fn feed_all(window: &mut ReorderWindow<EventKind>, bytes: &[u8], items: &[Item]) -> u64 {
    feed(window, bytes, items, |kind, frame| {
        _ = black_box((kind, frame))
    })
}

fn window_setup(events: u64) -> WindowInput {
    let bytes = default_mix(events);
    let mut items = Vec::with_capacity(events as usize);
    let mut start = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let event = parse_event(strip_terminator(line)).expect("generated lines parse");
        items.push((event.seq, event.kind, start, start + line.len()));
        start += line.len();
    }
    let mut window = ReorderWindow::new(WINDOW_SEQS, WINDOW_BYTES);
    assert_eq!(feed_all(&mut window, &bytes, &items), events);
    WindowInput {
        bytes,
        items,
        window,
    }
}

fn window_check(output: WindowOutput) {
    assert_eq!(output.released, EVENTS, "every event released");
    assert_eq!(output.input.window.held(), 0, "every batch completes");
}

#[library_benchmark]
#[bench::default_mix(args = (EVENTS), setup = window_setup, teardown = window_check)]
fn window(mut input: WindowInput) -> WindowOutput {
    let released = feed_all(&mut input.window, &input.bytes, black_box(&input.items));
    WindowOutput { input, released }
}

library_benchmark_group!(name = window_group; benchmarks = window);

// ---- route -----------------------------------------------------------------

/// The stream for `connections` clients, a fresh pipeline with every one of
/// them registered, and an inbox and outboxes warmed by one pass.
struct RouteInput {
    bytes: Vec<u8>,
    pipeline: Pipeline,
    inbox: Inbox,
    out: SinkOutboxes,
    /// Notifications the warm-up pass counted: the pass measured must owe
    /// as many.
    notifications: u64,
}

/// A pipeline of the server's default size, starting at seq 1 with an empty
/// graph, with connection key `i` registered as `users[i]`.
fn pipeline(users: &[u64]) -> Pipeline {
    let mut pipeline = Pipeline::new(
        WINDOW_SEQS,
        WINDOW_BYTES,
        Duration::from_secs(1),
        Duration::from_secs(10),
        Instant::now(),
    );
    for (key, &user) in users.iter().enumerate() {
        pipeline.register(user, key);
    }
    pipeline
}

fn route_setup(connections: u32) -> RouteInput {
    let config = SimConfig {
        total_events: EVENTS,
        concurrency_level: connections,
        ..SimConfig::default()
    };
    let plan = Plan::new(&config);
    let bytes = generate(&config.generator(), &plan.verified);
    let users: Vec<u64> = plan.verified.iter().map(|&u| u64::from(u)).collect();
    let mut inbox = Inbox::new(INBOX_BYTES, MAX_LINE);
    let mut out = SinkOutboxes::new(connections as usize, 0);
    let mut warm = pipeline(&users);
    route_in_turns(&mut warm, &mut inbox, &mut out, &bytes);
    let counters = warm.counters();
    assert_eq!(
        counters.events_routed, EVENTS,
        "the warm-up routed everything"
    );
    RouteInput {
        bytes,
        pipeline: pipeline(&users),
        inbox,
        out,
        notifications: counters.notifications,
    }
}

fn route_check(input: RouteInput) {
    let counters = input.pipeline.counters();
    assert_eq!(counters.events_routed, EVENTS, "every event routed");
    assert_eq!(counters.notifications, input.notifications);
}

#[library_benchmark(setup = route_setup, teardown = route_check)]
#[bench::connections_100(100)]
#[bench::connections_10000(10_000)]
fn route(mut input: RouteInput) -> RouteInput {
    route_in_turns(
        &mut input.pipeline,
        &mut input.inbox,
        &mut input.out,
        black_box(&input.bytes),
    );
    input
}

library_benchmark_group!(name = route_group; benchmarks = route);

main!(
    library_benchmark_groups = parse_group,
    window_group,
    route_group
);
