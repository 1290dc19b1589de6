//! Shared helpers for the core's tests.

use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::time::Duration;

use follower_maze::Config;
use follower_maze::engine::memory::{Harness, Peer};
use follower_maze::engine::{ConnId, Ending, Port, Readiness};

/// Milliseconds.
pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The defaults, with the limits tests lean on stated.
pub fn config() -> Config {
    Config {
        hole_timeout: ms(1000),
        id_timeout: ms(2000),
        write_deadline: ms(10_000),
        max_lag: ms(15_000),
        ..Config::default()
    }
}

/// [`config`] with a client output limit of `limit` bytes.
pub fn output_limit(limit: usize) -> Config {
    Config {
        client_output_limit: limit,
        ..config()
    }
}

/// A harness with `config` and an event source connected (and opened).
pub fn with_source(config: Config) -> (Harness, Peer) {
    let mut harness = Harness::new(config);
    let source = harness.connect(Port::Events);
    harness.settle();
    (harness, source)
}

/// A harness with `config`, its event source connected, then one client
/// per id in `ids` (in order), each registered and taking all it is sent.
pub fn with_clients(config: Config, ids: &[u64]) -> (Harness, Peer, Vec<Peer>) {
    let (mut harness, source) = with_source(config);
    let clients = ids
        .iter()
        .map(|id| harness.client(&id.to_string()))
        .collect();
    harness.settle();
    assert_eq!(harness.engine.stats().clients, ids.len(), "all registered");
    (harness, source, clients)
}

/// A harness with the default [`config`], its source and one client per id
/// in `ids` (see [`with_clients`]), after the source sent `bytes` and the
/// engine settled.
pub fn after_sending(ids: &[u64], bytes: &[u8]) -> (Harness, Vec<Peer>) {
    let (mut harness, source, clients) = with_clients(config(), ids);
    source.send(bytes);
    harness.settle();
    (harness, clients)
}

/// The queued-output budget of the budget tests (the socket tests' over
/// eight, like the bytes they send).
pub const BUDGET: usize = 8 * 1024;
/// The clients the budget tests connect.
pub const BUDGET_READERS: [u64; 5] = [1, 2, 3, 4, 5];
/// What the budget tests send, as `(count, width)` of
/// [`padded_broadcasts`]: 128 kB to each reader, far more than [`BUDGET`].
pub const BUDGET_BROADCASTS: (u64, usize) = (2000, 60);

/// A config whose queued output may reach only [`BUDGET`].
pub fn budgeted() -> Config {
    Config {
        max_queued_bytes: BUDGET,
        ..config()
    }
}

/// Panics unless queued output never passed [`BUDGET`] by more than one
/// broadcast to every reader: the budget is checked after every line.
#[track_caller]
pub fn assert_within_budget(stats: &follower_maze::Stats) {
    let (_, width) = BUDGET_BROADCASTS;
    let fanout = BUDGET_READERS.len() * (width + "|B\r\n".len());
    assert!(
        stats.queued_bytes_peak <= BUDGET + fanout,
        "queued {} bytes, budget {BUDGET}",
        stats.queued_bytes_peak
    );
}

/// `count` private messages from user 1 to `to`, seqs `first..`, each
/// line as the source sends it.
pub fn private_messages(first: u64, count: u64, to: u64) -> Vec<u8> {
    lines(first, count, |seq| format!("{seq}|P|1|{to}\n"))
}

/// `count` lines `{seq}|B\r\n`, seqs `first..`, each seq padded with
/// leading zeros to `width` digits, so a few events make many bytes.
pub fn padded_broadcasts(first: u64, count: u64, width: usize) -> Vec<u8> {
    lines(first, count, |seq| format!("{seq:0width$}|B\r\n"))
}

/// `count` private messages to `to`, seqs `first..`, each from user 2
/// written with leading zeros to `width` digits: a line of about `width`
/// bytes that only `to` is owed.
pub fn padded_private_messages(first: u64, count: u64, width: usize, to: u64) -> Vec<u8> {
    lines(first, count, |seq| format!("{seq}|P|{:0width$}|{to}\n", 2))
}

/// The lines `line(seq)` for `count` seqs from `first`, back to back.
fn lines(first: u64, count: u64, line: impl Fn(u64) -> String) -> Vec<u8> {
    (first..first + count)
        .fold(String::new(), |mut out, seq| {
            out.write_str(&line(seq)).expect("a String takes it");
            out
        })
        .into_bytes()
}

/// `seqs` in a scrambled but complete order, the same every time.
pub fn shuffled(seqs: RangeInclusive<u64>) -> Vec<u64> {
    let mut seqs: Vec<u64> = seqs.collect();
    for i in 0..seqs.len() {
        let j = (i * 7919 + 13) % seqs.len();
        seqs.swap(i, j);
    }
    seqs
}

/// Panics unless `received` is exactly `expected`, saying where they part
/// (the streams are megabytes: `assert_eq!` would print them whole).
#[track_caller]
pub fn assert_stream(received: &[u8], expected: &[u8], who: &str) {
    if received == expected {
        return;
    }
    let at = received
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(received.len().min(expected.len()));
    let around = |bytes: &[u8]| {
        bytes[at.saturating_sub(20)..bytes.len().min(at + 20)]
            .escape_ascii()
            .to_string()
    };
    panic!(
        "{who} got {} bytes, expected {}; first difference at byte {at}: got {:?}, expected {:?}",
        received.len(),
        expected.len(),
        around(received),
        around(expected)
    );
}

/// One loop turn in which readiness was seen on the event port only (a
/// source connecting, or the open one's bytes), none on the client port:
/// the worst case for an id sent just before the events that concern it.
pub fn turn_seeing_only_the_event_port(harness: &mut Harness) {
    let now = harness.now;
    let net = &mut harness.net;
    harness.engine.accept(Port::Events, now, net);
    let readable = Readiness {
        readable: true,
        ..Readiness::default()
    };
    harness.engine.ready(ConnId::Source, readable, now, net);
    harness.engine.tick(now, net);
}

/// Lets `by` pass as a shell's loop would with no readiness at all: the
/// clock jumps to each time the engine asked to be woken at
/// ([`Engine::timeout`]) and a turn runs there; nothing runs in between.
/// A deadline the engine forgets to ask for is never met. The clock ends
/// `by` later.
///
/// [`Engine::timeout`]: follower_maze::engine::Engine::timeout
pub fn idle_for(harness: &mut Harness, by: Duration) {
    let end = harness.now + by;
    harness.settle();
    while let Some(wait) = harness.engine.timeout(harness.now) {
        assert!(!wait.is_zero(), "the engine still has work after settling");
        if harness.now + wait > end {
            break;
        }
        harness.advance(wait);
        harness.settle();
    }
    harness.now = end;
}

/// A client that takes at most `pace` bytes per step of [`read_at_pace`]
/// (`None`: all it is sent), keeping what it got.
pub struct Reader {
    /// Its connection.
    pub peer: Peer,
    /// Bytes it takes per step.
    pace: Option<usize>,
    /// Every byte it took so far.
    pub received: Vec<u8>,
}

impl Reader {
    /// `peer`, taking `pace` bytes per step.
    pub fn new(peer: Peer, pace: Option<usize>) -> Self {
        Reader {
            peer,
            pace,
            received: Vec::new(),
        }
    }

    /// Readers for `peers`, all at `pace`.
    pub fn all(peers: Vec<Peer>, pace: Option<usize>) -> Vec<Reader> {
        peers
            .into_iter()
            .map(|peer| Reader::new(peer, pace))
            .collect()
    }

    /// True once it has `len` bytes or its connection was ended.
    pub fn is_done(&self, len: usize) -> bool {
        self.received.len() >= len || self.peer.ended().is_some()
    }

    /// True when the engine cut it (reset its connection).
    pub fn was_cut(&self) -> bool {
        self.peer.ended() == Some(Ending::Reset)
    }
}

/// Runs `harness` in steps of `step` until `done` holds or `max` has
/// passed: before each step every reader makes room for its pace, after it
/// takes what it was sent. Returns how long it ran.
pub fn read_at_pace(
    harness: &mut Harness,
    readers: &mut [Reader],
    step: Duration,
    max: Duration,
    mut done: impl FnMut(&[Reader]) -> bool,
) -> Duration {
    let start = harness.now;
    while !done(readers) && harness.now - start < max {
        for reader in readers.iter() {
            reader.peer.set_room(reader.pace);
        }
        harness.advance(step);
        harness.settle();
        for reader in readers.iter_mut() {
            let bytes = reader.peer.take_received();
            reader.received.extend(bytes);
        }
    }
    harness.now - start
}

/// Runs `harness` like [`read_at_pace`] until every reader has `len` bytes
/// or was ended, for at most `max`.
pub fn read_until_done(
    harness: &mut Harness,
    readers: &mut [Reader],
    step: Duration,
    max: Duration,
    len: usize,
) -> Duration {
    read_at_pace(harness, readers, step, max, |readers| {
        readers.iter().all(|reader| reader.is_done(len))
    })
}

/// Panics unless every reader got exactly `expected` and none was cut.
#[track_caller]
pub fn assert_all_got(readers: &[Reader], expected: &[u8]) {
    for reader in readers {
        assert_eq!(
            reader.peer.ended(),
            None,
            "peer #{} ended",
            reader.peer.number
        );
        assert_stream(
            &reader.received,
            expected,
            &format!("peer #{}", reader.peer.number),
        );
    }
}
