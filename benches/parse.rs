//! Framing and parsing of the event source's stream: the first step of the
//! hot path, measured on the simulator's default-mix stream.
//!
//! The bytes (1,000,000 events, shuffled batches of up to 100, CRLF) are
//! generated once, outside the timed loop. Each iteration pushes them
//! through an [`Inbox`] of the server's size in reads of at most 1 MiB, as
//! the server reads its source. `frame+parse` is the server's path: every
//! line framed and parsed in one pass ([`Inbox::next_event`]), and is what
//! `scripts/cpu-per-event.sh` compares the server's CPU with.
//! `frame-then-parse` is the general path that one pass leaves unusual
//! lines to: memchr framing, then [`parse_event`]; `framing` alone shows
//! what the memchr splitting costs by itself. Two groups report the server's
//! path as events/s and as bytes/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use follower_maze::engine::inbox::Inbox;
use follower_maze::engine::protocol::{Event, EventLine, Line, parse_event, strip_terminator};
use follower_maze_sim::{CountingSink, Generator, GeneratorConfig};

/// Events in the pre-generated stream.
const EVENTS: u64 = 1_000_000;
/// The server's source inbox: 1 MiB.
const INBOX_BYTES: usize = 1024 * 1024;
/// The server's default longest event line.
const MAX_LINE: usize = 1024;

/// The default-mix stream of [`EVENTS`] events as wire bytes.
fn stream() -> Vec<u8> {
    let config = GeneratorConfig {
        total_events: EVENTS,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&config, &[]);
    let mut out = Vec::with_capacity(EVENTS as usize * 20);
    while generator
        .next_batch(&mut out, &mut CountingSink::default())
        .is_some()
    {}
    out
}

/// Runs `bytes` through `inbox` in server-sized reads, calling
/// `take_lines` after each read (and once before the first) to take the
/// complete lines out; returns the sum of what it returned.
fn read_all(
    inbox: &mut Inbox,
    mut bytes: &[u8],
    mut take_lines: impl FnMut(&mut Inbox) -> u64,
) -> u64 {
    let mut lines = 0;
    loop {
        lines += take_lines(inbox);
        inbox.compact();
        if bytes.is_empty() {
            return lines;
        }
        // Reading from a slice cannot fail; it advances `bytes`.
        let read = inbox.read_from(&mut bytes, INBOX_BYTES);
        debug_assert!(matches!(read, Ok(n) if n > 0));
    }
}

/// Runs `bytes` through `inbox` as the server once did, memchr framing, and
/// calls `on_frame` on every frame; returns how many frames there were.
fn frame_all(inbox: &mut Inbox, bytes: &[u8], mut on_frame: impl FnMut(&[u8])) -> u64 {
    read_all(inbox, bytes, |inbox| {
        let mut frames = 0;
        while let Some(line) = inbox.next_line() {
            if let Line::Frame { start, end } = line {
                on_frame(inbox.frame(start, end));
                frames += 1;
            }
        }
        frames
    })
}

/// Runs `bytes` through `inbox` as the server does, framing and parsing in
/// one pass ([`Inbox::next_event`]), and calls `on_event` on every event;
/// returns how many frames there were.
fn scan_all(inbox: &mut Inbox, bytes: &[u8], mut on_event: impl FnMut(Event)) -> u64 {
    read_all(inbox, bytes, |inbox| {
        let mut frames = 0;
        while let Some(line) = inbox.next_event() {
            if let EventLine::Frame { parsed, .. } = line {
                if let Ok(event) = parsed {
                    on_event(event);
                }
                frames += 1;
            }
        }
        frames
    })
}

fn bench(c: &mut Criterion) {
    let bytes = stream();
    let mut inbox = Inbox::new(INBOX_BYTES, MAX_LINE);
    // Every line of the stream is valid: check it once, untimed.
    let mut valid = 0u64;
    frame_all(&mut inbox, &bytes, |frame| {
        valid += u64::from(parse_event(strip_terminator(frame)).is_ok());
    });
    assert_eq!(valid, EVENTS, "the generator's lines all parse");

    let mut seqs = 0u64;
    scan_all(&mut inbox, &bytes, |event| seqs += event.seq);
    assert_eq!(
        seqs,
        EVENTS * (EVENTS + 1) / 2,
        "one pass finds every event"
    );

    // The server's path: one pass.
    let parse_all = |inbox: &mut Inbox| {
        let mut seqs = 0u64;
        let frames = scan_all(inbox, &bytes, |event| seqs = seqs.wrapping_add(event.seq));
        black_box((frames, seqs))
    };
    // The general path, for lines the one pass leaves to it: memchr
    // framing, then the strict parser.
    let frame_then_parse_all = |inbox: &mut Inbox| {
        let mut seqs = 0u64;
        let frames = frame_all(inbox, &bytes, |frame| {
            if let Ok(event) = parse_event(strip_terminator(frame)) {
                seqs = seqs.wrapping_add(event.seq);
            }
        });
        black_box((frames, seqs))
    };

    let mut events = c.benchmark_group("parse/events");
    events
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(EVENTS));
    events.bench_function("frame+parse", |b| b.iter(|| parse_all(&mut inbox)));
    events.bench_function("frame-then-parse", |b| {
        b.iter(|| frame_then_parse_all(&mut inbox))
    });
    events.bench_function("framing", |b| {
        b.iter(|| frame_all(&mut inbox, &bytes, |frame| _ = black_box(frame)))
    });
    events.finish();

    let mut megabytes = c.benchmark_group("parse/bytes");
    megabytes
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(bytes.len() as u64));
    megabytes.bench_function("frame+parse", |b| b.iter(|| parse_all(&mut inbox)));
    megabytes.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
