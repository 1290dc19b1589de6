//! The reorder window alone, on shuffled batches of 1, 100 and 10,000:
//! each batch a contiguous seq range in random order, as the event source
//! sends them.
//!
//! The frames are the generator's default-mix lines, parsed once outside
//! the timed loop. Each iteration feeds 1,000,000 of them to a window of
//! the server's default size (kept warm across iterations) exactly as the
//! pipeline does: the in-order
//! bypass when nothing is held, else `push` and then `pop` everything that
//! became ready. A batch size of 1 is the in-order stream (every event
//! bypasses); 10,000 holds up to 10,000 frames at once.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use follower_maze::engine::protocol::{EventKind, parse_event, strip_terminator};
use follower_maze::engine::window::ReorderWindow;
use follower_maze_sim::{CountingSink, Generator, GeneratorConfig};

#[path = "support/window_feed.rs"]
mod window_feed;

use window_feed::{Item, feed};

/// Events per iteration.
const EVENTS: u64 = 1_000_000;
/// The server's default window: 2^20 seqs and 64 MiB.
const CAPACITY: usize = 1 << 20;
/// The server's default window byte budget.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Every event's frame back to back in seq order, and one item per event.
fn in_order() -> (Vec<u8>, Vec<Item>) {
    let config = GeneratorConfig {
        total_events: EVENTS,
        max_batch: 1,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&config, &[]);
    let mut bytes = Vec::with_capacity(EVENTS as usize * 20);
    while generator
        .next_batch(&mut bytes, &mut CountingSink::default())
        .is_some()
    {}
    let mut items = Vec::with_capacity(EVENTS as usize);
    let mut start = 0;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let event = parse_event(strip_terminator(line)).expect("generated lines parse");
        items.push((event.seq, event.kind, start, start + line.len()));
        start += line.len();
    }
    (bytes, items)
}

/// `items` with each run of `batch` consecutive items shuffled in place
/// (Fisher-Yates with a fixed-seed xorshift: the same order every run).
fn shuffled(items: &[Item], batch: usize) -> Vec<Item> {
    let mut out = items.to_vec();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for chunk in out.chunks_mut(batch) {
        for i in (1..chunk.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            chunk.swap(i, j);
        }
    }
    out
}

/// Feeds every item as the pipeline does; returns a checksum of what came
/// out.
fn feed_all(window: &mut ReorderWindow<EventKind>, bytes: &[u8], items: &[Item]) -> u64 {
    let mut checksum = 0u64;
    feed(window, bytes, items, |kind, frame| {
        checksum = checksum.wrapping_add(black_box((kind, frame)).1.len() as u64);
    });
    assert_eq!(window.held(), 0, "every batch completes");
    checksum
}

fn bench(c: &mut Criterion) {
    let (bytes, items) = in_order();
    let mut group = c.benchmark_group("window");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(EVENTS));
    for batch in [1usize, 100, 10_000] {
        let order = shuffled(&items, batch);
        group.bench_with_input(BenchmarkId::new("batch", batch), &order, |b, order| {
            // One window for every iteration, each carrying on the seqs of
            // the last: its buffer pool stays warm, as in a long run.
            let mut window = ReorderWindow::new(CAPACITY, MAX_BYTES);
            b.iter(|| feed_all(&mut window, &bytes, order))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
