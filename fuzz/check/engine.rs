//! The check behind the `engine` fuzz target, shared with
//! `tests/fuzz_seeds.rs`, which runs it over the seeds in
//! `fuzz/seeds/engine/` so it keeps compiling and passing under `cargo test`.
//!
//! The whole sans-IO core ([`Harness`]: an `Engine` on a `MemoryNet` with a
//! clock of its own) is driven by a list of [`Op`]s decoded from the input:
//! event lines composed in permuted blocks and sent in pieces split
//! anywhere, junk and overlong lines, clients that connect and send their id
//! in pieces (some bad), readers that take a few bytes or none, half-closes,
//! resets, a second source while one is open, sources that close and hand
//! over (carrying the run on, or starting a new one), and the clock. Every
//! limit in [`config`] is small, so they are hit often.
//!
//! What each client is owed is decided by a model written here, without the
//! server's code, which the generator keeps decidable:
//! - Each run sends every seq at most once, in blocks of [`BLOCK`] seqs,
//!   permuted only within a block, and the window spans a block (seqs and
//!   bytes) at least, so no hole is skipped for lack of room.
//! - The clock never moves a whole hole timeout while a sent seq is missing
//!   (the sent seqs are not 1..=n), so no hole is skipped for time.
//! - A new run starts only where the old one has no hole, and its seq 1 is
//!   sent before its probation could run out. A source that carries a run
//!   on never sends seq 1 (the core takes seq 1 from a new source as a new
//!   run).
//! - Lines go only to the source being fed; the second sources get junk.
//! - A client is owed an event when its whole id line was sent before the
//!   event's line was (the core reads ids sent before events first).
//!
//! At the end every client reads freely, the engine settles and shuts down,
//! and then:
//! 1. Nothing panicked.
//! 2. Each client received exactly a contiguous stretch of the lines the
//!    model says its user gets, byte for byte and in (run, seq) order, from
//!    where it registered on; one still connected received whole lines only.
//! 3. One still connected (not cut or closed, not reset by us) received
//!    every event it was owed, and everything after.
//! 4. After every turn, `window_bytes <= WINDOW_BYTES` (the budget) and
//!    `queued_bytes` stays within
//!    [`queued_bound`] (the budget plus one turn's overshoot).
//! 5. A client that always read everything is never cut, and the source
//!    being fed is never closed by the engine.
//! 6. Nothing is held, skipped, late or duplicated that the model does not
//!    expect, and a new run is counted for each one started.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use follower_maze::engine::memory::{Harness, Peer};
use follower_maze::engine::{Ending, Port};
use follower_maze::{Config, Stats};

/// Longest event line, terminator included.
const MAX_LINE: usize = 32;
/// Longest id line, terminator included: `"0000003\n"` fits, one more
/// zero does not.
const MAX_ID_LINE: usize = 8;
/// Seqs are sent in blocks this long, permuted within each block.
const BLOCK: u64 = 8;
/// The window spans two blocks of seqs. At least one is what the model
/// needs: a line too far ahead then gives up only seqs below its own block,
/// which were all sent (and read) before it.
const WINDOW_CAPACITY: usize = 2 * BLOCK as usize;
/// One block of the longest lines: a block with a hole holds at most
/// `BLOCK - 1` frames, so the byte budget never skips a hole that is still
/// to be filled; in-order frames waiting for room in the outboxes can reach
/// it (the capacity spans twice as many).
const WINDOW_BYTES: usize = BLOCK as usize * MAX_LINE;
/// Bytes queued for one client alone past which it is cut; past half of
/// it a client that still reads holds the source. Below the shared budget,
/// so both are reached. A client that reads everything is never cut:
/// frames stop once it owes a turn's output (half the limit), so it owes at
/// most that and two lines, below the limit from `4 * MAX_LINE` on.
const OUTPUT_LIMIT: usize = 8 * MAX_LINE;
/// Bytes queued for all clients past which the source is not read.
const MAX_QUEUED_BYTES: usize = 512;
/// Client connections at once.
const MAX_CLIENTS: usize = 6;
/// How long a hole may stall the stream.
const HOLE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a new source's first events wait for the run to be decided
/// (the core's `PROBATION_TIME`, private to `engine::pipeline`).
const PROBATION: Duration = Duration::from_millis(100);
/// Broadcast ranges shorter than this are copied into a client's own
/// buffer (the core's `COPY_BELOW`, private to `engine::outbox`).
const COPY_BELOW: usize = 256;
/// User ids clients claim and events name.
const USERS: u64 = 5;
/// Client connections per input, at most.
const MAX_CLIENT_PEERS: usize = 16;
/// Second sources per input, at most.
const MAX_INTRUDERS: usize = 8;
/// Events composed per input, at most (seq 1 of a run may go past it).
const MAX_EVENTS: usize = 2000;
/// Turns a settle may take before it counts as a livelock.
const SETTLE_TURNS: usize = 20_000;
/// Clock steps, in milliseconds: around each timeout of [`config`].
pub const STEPS_MS: [u64; 16] = [
    1, 10, 50, 99, 100, 101, 200, 249, 250, 299, 300, 999, 1000, 1500, 2500, 5000,
];

/// Milliseconds.
fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The configuration under test: every limit small.
pub fn config() -> Config {
    Config {
        window_capacity: WINDOW_CAPACITY,
        window_bytes: WINDOW_BYTES,
        hole_timeout: HOLE_TIMEOUT,
        max_line: MAX_LINE,
        max_id_line: MAX_ID_LINE,
        id_timeout: ms(300),
        write_deadline: ms(1500),
        max_lag: ms(2500),
        client_output_limit: OUTPUT_LIMIT,
        max_clients: MAX_CLIENTS,
        max_queued_bytes: MAX_QUEUED_BYTES,
        ..Config::default()
    }
}

/// The most `queued_bytes` may be after a turn with `clients` registered.
///
/// Routing stops once queued bytes pass the budget, checked before each
/// event, so the budget is passed by one event at most: a broadcast adds
/// its line to the log once; any other event adds its line to each
/// recipient (one per client), which first takes in the broadcasts it has
/// not seen and copies them when shorter than [`COPY_BELOW`]. After that
/// event no broadcast is routed, so each client copies at most once more
/// (its unseen broadcasts, when it is next written). A client that
/// registers later owes only later broadcasts.
pub fn queued_bound(clients: usize) -> usize {
    MAX_QUEUED_BYTES + MAX_LINE + clients * (MAX_LINE + COPY_BELOW - 1)
}

/// One step of a fuzz input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Composes the next event line of the stream (not sent yet): `pick`
    /// chooses among the seqs of the block not composed yet, `what` the
    /// kind and users, `style` the terminator and leading zeros.
    Event {
        /// Which remaining seq of the block.
        pick: u8,
        /// Kind and users.
        what: u8,
        /// Formatting.
        style: u8,
    },
    /// Composes `count % 32 + 1` events and sends everything composed.
    Burst {
        /// How many.
        count: u8,
    },
    /// Composes a line the source must drop (see [`junk_line`]).
    Junk {
        /// Which one.
        style: u8,
    },
    /// Sends the next `bytes` composed bytes to the source (0: all).
    Send {
        /// How many.
        bytes: u8,
    },
    /// One loop turn.
    Turn,
    /// Turns until no work waits.
    Settle,
    /// Moves the clock on (`STEPS_MS`), then settles.
    Advance {
        /// Index into the steps.
        step: u8,
    },
    /// A client connects; `id` chooses its user and id line.
    Connect {
        /// User and form of the id line.
        id: u8,
    },
    /// A client sends the next `bytes` of what it has to say (0: all).
    SendId {
        /// Which client.
        client: u8,
        /// How many bytes.
        bytes: u8,
    },
    /// A client reads: `room` says how much the engine may write to it.
    Room {
        /// Which client.
        client: u8,
        /// No limit, nothing, or a few bytes.
        room: u8,
    },
    /// A client ends its sending side.
    HalfClose {
        /// Which client.
        client: u8,
    },
    /// A client resets its connection.
    Reset {
        /// Which client.
        client: u8,
    },
    /// A second source connects while the one being fed is open, and
    /// sends junk.
    Intruder {
        /// The junk, and whether it half-closes or resets.
        style: u8,
    },
    /// The source being fed closes; the next composed line goes to a new
    /// one, which starts a new run if `restart` is odd and the run allows.
    CloseSource {
        /// Odd: send everything composed and start over at seq 1.
        restart: u8,
    },
}

/// Number of op codes: an input's byte picks one modulo this.
const OP_CODES: u8 = 14;

/// The ops an input stands for: a code byte, then each argument byte
/// (missing ones are 0).
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut input = data.iter().copied();
    let mut ops = Vec::new();
    while let Some(code) = input.next() {
        let mut arg = || input.next().unwrap_or(0);
        ops.push(match code % OP_CODES {
            0 => Op::Event {
                pick: arg(),
                what: arg(),
                style: arg(),
            },
            1 => Op::Burst { count: arg() },
            2 => Op::Junk { style: arg() },
            3 => Op::Send { bytes: arg() },
            4 => Op::Turn,
            5 => Op::Settle,
            6 => Op::Advance { step: arg() },
            7 => Op::Connect { id: arg() },
            8 => Op::SendId {
                client: arg(),
                bytes: arg(),
            },
            9 => Op::Room {
                client: arg(),
                room: arg(),
            },
            10 => Op::HalfClose { client: arg() },
            11 => Op::Reset { client: arg() },
            12 => Op::Intruder { style: arg() },
            _ => Op::CloseSource { restart: arg() },
        });
    }
    ops
}

/// The input that decodes to `ops`: how the committed seeds are written.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for &op in ops {
        let (code, args): (u8, &[u8]) = match op {
            Op::Event { pick, what, style } => (0, &[pick, what, style]),
            Op::Burst { count } => (1, &[count]),
            Op::Junk { style } => (2, &[style]),
            Op::Send { bytes } => (3, &[bytes]),
            Op::Turn => (4, &[]),
            Op::Settle => (5, &[]),
            Op::Advance { step } => (6, &[step]),
            Op::Connect { id } => (7, &[id]),
            Op::SendId { client, bytes } => (8, &[client, bytes]),
            Op::Room { client, room } => (9, &[client, room]),
            Op::HalfClose { client } => (10, &[client]),
            Op::Reset { client } => (11, &[client]),
            Op::Intruder { style } => (12, &[style]),
            Op::CloseSource { restart } => (13, &[restart]),
        };
        out.push(code);
        out.extend_from_slice(args);
    }
    out
}

/// Runs one input; panics on any broken rule.
pub fn check(data: &[u8]) {
    run(&decode(data));
}

/// What a run did, for the seed test to tell which paths a seed took.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The engine's counters after shutdown.
    pub stats: Stats,
    /// Clients checked for completeness (connected to the end, registered).
    pub complete_clients: usize,
    /// The most bytes the window held after a turn.
    pub window_bytes_peak: usize,
    /// The most queued bytes after a turn.
    pub queued_bytes_peak: usize,
    /// The most clients holding the source after a turn.
    pub holding_peak: usize,
}

/// Runs `ops`, then shuts down and checks every client; panics on any
/// broken rule.
pub fn run(ops: &[Op]) -> Outcome {
    let mut session = Session::new();
    for &op in ops {
        session.apply(op);
    }
    session.finish()
}

/// What an event does, with the users it names.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Follow(u64, u64),
    Unfollow(u64, u64),
    Broadcast,
    Private(u64, u64),
    Status(u64),
}

/// Kind and users from one byte.
fn kind_of(what: u8) -> Kind {
    let from = u64::from(what / 5) % USERS;
    let to = u64::from(what / 25) % USERS;
    match what % 5 {
        0 => Kind::Follow(from, to),
        1 => Kind::Unfollow(from, to),
        2 => Kind::Broadcast,
        3 => Kind::Private(from, to),
        _ => Kind::Status(from),
    }
}

/// The event line for `seq`: bit 0 of `style` picks CRLF, bits 1-2 add
/// leading zeros to the seq, bit 3 a leading zero to each user, bit 7 pads
/// the seq with zeros to exactly [`MAX_LINE`].
fn event_line(seq: u64, kind: Kind, style: u8) -> Vec<u8> {
    let z = if style & 8 != 0 { "0" } else { "" };
    let body = match kind {
        Kind::Follow(from, to) => format!("F|{z}{from}|{z}{to}"),
        Kind::Unfollow(from, to) => format!("U|{z}{from}|{z}{to}"),
        Kind::Broadcast => "B".to_string(),
        Kind::Private(from, to) => format!("P|{z}{from}|{z}{to}"),
        Kind::Status(from) => format!("S|{z}{from}"),
    };
    let end = if style & 1 != 0 { "\r\n" } else { "\n" };
    let line = format!("{seq}|{body}{end}");
    let room = MAX_LINE.saturating_sub(line.len());
    let zeros = match style & 0x80 {
        0 => usize::from(style >> 1) & 3,
        _ => room,
    };
    format!("{}{line}", "0".repeat(zeros.min(room))).into_bytes()
}

/// Lines the source must drop, each for a reason of its own.
const JUNK: [&[u8]; 15] = [
    b"0|B\n",                    // seq 0
    b"1|X|2|3\n",                // unknown kind
    b"1|b\n",                    // kinds are uppercase
    b"1|F|2\n",                  // too few fields
    b"1|B|3\n",                  // too many fields
    b"1|F||3\n",                 // empty number
    b" 1|B\n",                   // a space is not a digit
    b"-1|B\n",                   // no signs
    b"\n",                       // empty
    b"\r\n",                     // empty, CRLF
    b"18446744073709551615|B\n", // 2^64 - 1 is not a seq
    b"99999999999999999999|B\n", // does not fit in 64 bits
    b"1|B\r\r\n",                // a lone \r does not end a line
    b"1|P|2|3|4\n",              // too many fields
    b"1|S\n",                    // too few fields
];

/// A line the source must drop: one of [`JUNK`] (`style < 64`), a valid
/// line of a far seq padded one byte past [`MAX_LINE`] (64..128), or
/// `style - 128` bytes of non-digits, overlong past `MAX_LINE - 2`.
fn junk_line(style: u8) -> Vec<u8> {
    match style {
        0..64 => JUNK[usize::from(style) % JUNK.len()].to_vec(),
        64..128 => format!("{:0>width$}|B\n", 99_999, width = MAX_LINE - 2).into_bytes(),
        _ => {
            let mut line: Vec<u8> = b"#|x"
                .iter()
                .copied()
                .cycle()
                .take(usize::from(style - 128))
                .collect();
            line.push(b'\n');
            line
        }
    }
}

/// One composed event and when its line was sent.
#[derive(Debug)]
struct Event {
    /// Its run: 0 for the first, one more for each start over.
    run: usize,
    seq: u64,
    kind: Kind,
    /// The exact line, terminator included.
    line: Vec<u8>,
    /// The send that carried its last byte, once it did.
    sent_at: Option<u64>,
}

/// Bytes composed for the source and not sent yet, as lines.
#[derive(Debug, Default)]
struct Outgoing {
    bytes: VecDeque<u8>,
    /// Each unsent line's length and its event (`None` for junk).
    lines: VecDeque<(usize, Option<usize>)>,
    /// Bytes of the first line already sent.
    head_sent: usize,
}

impl Outgoing {
    fn push(&mut self, line: &[u8], event: Option<usize>) {
        self.bytes.extend(line);
        self.lines.push_back((line.len(), event));
    }

    /// Takes the next `n` bytes off; returns them and the events whose
    /// lines they complete.
    fn take(&mut self, n: usize) -> (Vec<u8>, Vec<usize>) {
        let n = n.min(self.bytes.len());
        let bytes: Vec<u8> = self.bytes.drain(..n).collect();
        let mut done = Vec::new();
        let mut left = n;
        while left > 0 {
            let (len, event) = self.lines[0];
            let taken = left.min(len - self.head_sent);
            self.head_sent += taken;
            left -= taken;
            if self.head_sent == len {
                self.lines.pop_front();
                self.head_sent = 0;
                done.extend(event);
            }
        }
        (bytes, done)
    }

    /// Bytes left of the line being sent: 0 at a line boundary.
    fn rest_of_line(&self) -> usize {
        match self.head_sent {
            0 => 0,
            sent => self.lines[0].0 - sent,
        }
    }

    /// True when the line being sent is junk.
    fn in_junk(&self) -> bool {
        self.lines
            .front()
            .is_some_and(|&(_, event)| event.is_none())
    }

    fn has_events(&self) -> bool {
        self.lines.iter().any(|&(_, event)| event.is_some())
    }
}

/// A client connection and what the model knows of it.
#[derive(Debug)]
struct Client {
    peer: Peer,
    /// The user its id line names, if that line is valid.
    user: Option<u64>,
    /// What it has yet to send: its id line, maybe chatter after it.
    unsent: VecDeque<u8>,
    /// Bytes of its valid id line not sent yet (`None` once sent, or for
    /// a bad or missing id).
    id_left: Option<usize>,
    /// The send that completed its valid id line.
    registered_at: Option<u64>,
    /// It half-closed or reset: it sends nothing more.
    done_sending: bool,
    /// We reset it: it is gone, whatever the engine says.
    reset: bool,
    /// It never limited what the engine may write to it.
    always_read: bool,
}

/// The engine under test, what was sent to it, and the generator's state.
struct Session {
    harness: Harness,
    /// Every event composed, in composing order.
    events: Vec<Event>,
    /// Composed source bytes not sent yet.
    outgoing: Outgoing,
    /// The source being fed, once connected.
    source: Option<Peer>,
    /// Second sources connected while the current one is open, still open.
    intruders: Vec<Peer>,
    intruders_total: usize,
    clients: Vec<Client>,
    /// Sends so far (source and clients): the model's clock.
    sends: u64,
    /// The current run.
    run: usize,
    /// Seqs of the current block not composed yet.
    block_left: Vec<u64>,
    /// The first seq of the next block.
    next_block: u64,
    /// Events of the current run sent, and their highest seq: the sent
    /// seqs are 1..=n exactly when the two are equal.
    sent: u64,
    max_sent: u64,
    seq1_sent: bool,
    /// The next source starts a new run.
    restart_next: bool,
    /// Clock moved since the sent seqs last had a hole in them.
    hole_clock: Duration,
    /// Clock moved since a new run's source connected, until its seq 1 is
    /// sent.
    restart_clock: Option<Duration>,
    window_bytes_peak: usize,
    queued_bytes_peak: usize,
    holding_peak: usize,
}

impl Session {
    fn new() -> Self {
        Session {
            harness: Harness::new(config()),
            events: Vec::new(),
            outgoing: Outgoing::default(),
            source: None,
            intruders: Vec::new(),
            intruders_total: 0,
            clients: Vec::new(),
            sends: 0,
            run: 0,
            block_left: Vec::new(),
            next_block: 1,
            sent: 0,
            max_sent: 0,
            seq1_sent: false,
            restart_next: false,
            hole_clock: Duration::ZERO,
            restart_clock: None,
            window_bytes_peak: 0,
            queued_bytes_peak: 0,
            holding_peak: 0,
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Event { pick, what, style } => self.compose_event(pick, what, style),
            Op::Burst { count } => {
                for i in 0..=count % 32 {
                    let what = (self.events.len() * 37 % 251) as u8;
                    self.compose_event(count.wrapping_mul(i), what, i & 1);
                }
                self.send_source(usize::MAX);
            }
            Op::Junk { style } => {
                self.ensure_source();
                self.outgoing.push(&junk_line(style), None);
            }
            Op::Send { bytes: 0 } => self.send_source(usize::MAX),
            Op::Send { bytes } => self.send_source(usize::from(bytes)),
            Op::Turn => self.turn(),
            Op::Settle => self.settle(),
            Op::Advance { step } => self.advance(ms(STEPS_MS[usize::from(step) % STEPS_MS.len()])),
            Op::Connect { id } => self.connect_client(id),
            Op::SendId { client, bytes } => {
                let bytes = if bytes == 0 {
                    usize::MAX
                } else {
                    usize::from(bytes)
                };
                self.send_client(client, bytes);
            }
            Op::Room { client, room } => {
                let room = match room % 4 {
                    0 => None,
                    1 => Some(0),
                    2 => Some(usize::from(room / 4 % 8) + 1),
                    _ => Some(usize::from(room / 4) * 4),
                };
                if let Some(client) = self.client(client) {
                    client.always_read &= room.is_none();
                    client.peer.set_room(room);
                }
            }
            Op::HalfClose { client } => {
                if let Some(client) = self.client(client) {
                    client.done_sending = true;
                    client.peer.close_sending();
                }
            }
            Op::Reset { client } => {
                if let Some(client) = self.client(client) {
                    client.done_sending = true;
                    client.reset = true;
                    client.peer.reset();
                }
            }
            Op::Intruder { style } => self.intrude(style),
            Op::CloseSource { restart } => self.close_source(restart % 2 == 1),
        }
    }

    /// The client `index` picks, if any connected.
    fn client(&mut self, index: u8) -> Option<&mut Client> {
        let count = self.clients.len();
        (count > 0).then(|| &mut self.clients[usize::from(index) % count])
    }

    /// Connects the source to feed if there is none, starting a new run
    /// if the last source asked for it.
    fn ensure_source(&mut self) {
        if self.source.is_some() {
            return;
        }
        if std::mem::take(&mut self.restart_next) {
            self.run += 1;
            self.block_left.clear();
            self.next_block = 1;
            self.sent = 0;
            self.max_sent = 0;
            self.seq1_sent = false;
            self.hole_clock = Duration::ZERO;
            self.restart_clock = Some(Duration::ZERO);
        }
        self.source = Some(self.harness.connect(Port::Events));
    }

    /// Composes the next event; `pick` chooses its seq within the block.
    fn compose_event(&mut self, pick: u8, what: u8, style: u8) {
        if self.events.len() >= MAX_EVENTS {
            return;
        }
        self.ensure_source();
        if self.block_left.is_empty() {
            self.block_left = (self.next_block..self.next_block + BLOCK).collect();
            self.next_block += BLOCK;
        }
        let seq = self
            .block_left
            .remove(usize::from(pick) % self.block_left.len());
        self.push_event(seq, kind_of(what), style);
    }

    fn push_event(&mut self, seq: u64, kind: Kind, style: u8) {
        let line = event_line(seq, kind, style);
        self.outgoing.push(&line, Some(self.events.len()));
        self.events.push(Event {
            run: self.run,
            seq,
            kind,
            line,
            sent_at: None,
        });
    }

    /// Sends the next `n` composed bytes to the source.
    fn send_source(&mut self, n: usize) {
        let (bytes, done) = self.outgoing.take(n);
        if bytes.is_empty() {
            return;
        }
        self.ensure_source();
        self.sends += 1;
        self.source.as_ref().expect("connected").send(&bytes);
        for index in done {
            let event = &mut self.events[index];
            event.sent_at = Some(self.sends);
            self.sent += 1;
            self.max_sent = self.max_sent.max(event.seq);
            if event.seq == 1 {
                self.seq1_sent = true;
                self.restart_clock = None;
            }
        }
    }

    /// Makes sure seq 1 of the run is sent (composing it if need be), with
    /// everything composed before it.
    fn send_seq1(&mut self) {
        if self.next_block == 1 {
            self.block_left = (1..=BLOCK).collect();
            self.next_block += BLOCK;
        }
        if let Some(at) = self.block_left.iter().position(|&seq| seq == 1) {
            self.block_left.remove(at);
            self.push_event(1, Kind::Broadcast, 0);
        }
        self.send_source(usize::MAX);
    }

    /// The source being fed closes after the event line it is in the
    /// middle of (a junk line is cut short instead); the next one connects
    /// when something is composed or sent.
    fn close_source(&mut self, restart: bool) {
        let Some(source) = self.source.clone() else {
            return;
        };
        if restart {
            self.send_source(usize::MAX);
        } else if !self.outgoing.in_junk() {
            self.send_source(self.outgoing.rest_of_line());
        }
        if (self.sent > 0 && !self.seq1_sent) || self.restart_clock.is_some() {
            // A later source would send it, and the core would take that
            // for a new run; a new run's source that closes before it, for
            // carrying the old run on.
            self.send_seq1();
        }
        let rest = self.outgoing.rest_of_line();
        if rest > 0 {
            // In the middle of a junk line: the rest is never sent.
            self.outgoing.bytes.drain(..rest);
            self.outgoing.lines.pop_front();
            self.outgoing.head_sent = 0;
        }
        for intruder in self.intruders.drain(..) {
            // Closed, so whichever is waiting when this one ends hands over.
            intruder.close_sending();
        }
        source.close_sending();
        self.source = None;
        let no_hole = self.sent == self.max_sent;
        self.restart_next = restart && self.sent > 0 && no_hole && !self.outgoing.has_events();
    }

    /// A second source connects while the one being fed is open.
    fn intrude(&mut self, style: u8) {
        if self.source.is_none() || self.intruders_total >= MAX_INTRUDERS {
            return;
        }
        self.intruders_total += 1;
        let peer = self.harness.connect(Port::Events);
        let junk = junk_line(style % 16);
        let len = if style & 16 != 0 {
            junk.len() / 2
        } else {
            junk.len()
        };
        peer.send(&junk[..len]);
        match style >> 5 {
            1 => peer.close_sending(),
            2 => peer.reset(),
            _ => self.intruders.push(peer),
        }
    }

    /// A client connects. `id % USERS` is its user; `id / USERS` picks its
    /// id line: plain, CRLF, zero-padded to the limit, followed by chatter,
    /// or bad (not a number, empty, one byte too long), or none at all.
    /// Past 40 it sends the whole line at once.
    fn connect_client(&mut self, id: u8) {
        if self.clients.len() >= MAX_CLIENT_PEERS {
            return;
        }
        let user = u64::from(id) % USERS;
        let form = id / USERS as u8;
        let plain = format!("{user}\n");
        // The bytes it sends, and how many of them are its valid id line.
        let (text, id_len) = match form % 8 {
            0 => (plain.clone(), plain.len()),
            1 => (format!("{user}\r\n"), plain.len() + 1),
            2 => (format!("{user:0>7}\n"), MAX_ID_LINE),
            3 => (format!("{plain}chatter after the id\n"), plain.len()),
            4 => (format!("x{user}\n"), 0),
            5 => ("\n".to_string(), 0),
            6 => (format!("{user:0>8}\n"), 0),
            _ => (String::new(), 0),
        };
        let peer = self.harness.connect(Port::Clients);
        self.clients.push(Client {
            peer,
            user: (id_len > 0).then_some(user),
            unsent: text.into_bytes().into(),
            id_left: (id_len > 0).then_some(id_len),
            registered_at: None,
            done_sending: false,
            reset: false,
            always_read: true,
        });
        if form >= 8 {
            let index = (self.clients.len() - 1) as u8;
            self.send_client(index, usize::MAX);
        }
    }

    /// Client `index` sends the next `n` bytes it has to say.
    fn send_client(&mut self, index: u8, n: usize) {
        let sends = self.sends + 1;
        let Some(client) = self.client(index).filter(|c| !c.done_sending) else {
            return;
        };
        let n = n.min(client.unsent.len());
        if n == 0 {
            return;
        }
        let bytes: Vec<u8> = client.unsent.drain(..n).collect();
        client.peer.send(&bytes);
        if let Some(left) = client.id_left {
            client.id_left = left.checked_sub(n).filter(|&left| left > 0);
            if client.id_left.is_none() {
                client.registered_at = Some(sends);
            }
        }
        self.sends = sends;
    }

    /// Moves the clock on by `by`, less if a hole or a new run's
    /// probation could run out, then settles.
    fn advance(&mut self, by: Duration) {
        let mut by = by;
        if self.sent == self.max_sent {
            self.hole_clock = Duration::ZERO;
        } else {
            by = by.min(HOLE_TIMEOUT.saturating_sub(self.hole_clock + ms(1)));
        }
        if let Some(waited) = self.restart_clock {
            by = by.min(PROBATION.saturating_sub(waited + ms(1)));
        }
        if by.is_zero() {
            return;
        }
        if self.sent != self.max_sent {
            self.hole_clock += by;
        }
        if let Some(waited) = self.restart_clock.as_mut() {
            *waited += by;
        }
        self.harness.advance(by);
        self.settle();
    }

    /// One loop turn, then the per-turn checks.
    fn turn(&mut self) {
        self.harness.turn();
        let stats = self.harness.engine.stats();
        self.window_bytes_peak = self.window_bytes_peak.max(stats.window_bytes);
        self.queued_bytes_peak = self.queued_bytes_peak.max(stats.queued_bytes);
        self.holding_peak = self.holding_peak.max(stats.clients_holding_source);
        assert!(
            stats.window_bytes <= WINDOW_BYTES,
            "the window holds {} bytes, over {WINDOW_BYTES}: {stats:?}",
            stats.window_bytes
        );
        let bound = queued_bound(stats.clients);
        assert!(
            stats.queued_bytes <= bound,
            "{} bytes queued for clients, over the bound of {bound}: {stats:?}",
            stats.queued_bytes
        );
        if let Some(source) = &self.source {
            assert_eq!(source.ended(), None, "the source being fed was closed");
        }
        for client in self.clients.iter().filter(|c| c.always_read) {
            assert_ne!(
                client.peer.ended(),
                Some(Ending::Reset),
                "a client that always read everything was cut: {stats:?}"
            );
        }
    }

    /// Turns until the engine has no work waiting now.
    fn settle(&mut self) {
        for _ in 0..SETTLE_TURNS {
            self.turn();
            if self.harness.engine.timeout(self.harness.now) != Some(Duration::ZERO) {
                return;
            }
        }
        panic!(
            "still busy after {SETTLE_TURNS} turns: {:?}",
            self.harness.engine.stats()
        );
    }

    /// Lets every client read freely, settles, shuts down, settles, and
    /// checks what every client received against the model.
    fn finish(mut self) -> Outcome {
        if self.restart_clock.is_some() {
            self.send_seq1();
        }
        for client in &self.clients {
            client.peer.set_room(None);
        }
        self.settle();
        let source = self.source.take();
        let now = self.harness.now;
        self.harness.engine.shutdown(now, &mut self.harness.net);
        self.settle();
        if let Some(source) = source {
            assert_eq!(source.ended(), Some(Ending::Close), "shutdown closes it");
        }
        let stats = self.harness.engine.stats();
        assert!(self.harness.engine.is_flushed(), "not flushed: {stats:?}");
        assert_eq!((stats.window_depth, stats.window_bytes), (0, 0));
        let counts = (stats.late, stats.duplicates, stats.runs, stats.skipped);
        // Only the last run's missing seqs are given up on, at shutdown.
        let missing = self.max_sent - self.sent;
        assert_eq!(
            counts,
            (0, 0, self.run as u64, missing),
            "(late, duplicates, runs, skipped): {stats:?}"
        );
        let owed = self.owed_by_user();
        let mut complete_clients = 0;
        for client in &self.clients {
            let ended = client.peer.ended();
            let owed = match (client.user, client.registered_at) {
                (Some(user), Some(_)) => &owed[user as usize][..],
                _ => &[],
            };
            let live_since = client
                .registered_at
                .filter(|_| ended.is_none() && !client.reset);
            complete_clients += usize::from(live_since.is_some());
            check_received(&client.peer.take_received(), owed, live_since);
        }
        Outcome {
            stats,
            complete_clients,
            window_bytes_peak: self.window_bytes_peak,
            queued_bytes_peak: self.queued_bytes_peak,
            holding_peak: self.holding_peak,
        }
    }

    /// For each user, the lines it receives, in delivery order: every
    /// event sent, run by run in seq order, through a follow graph that
    /// each new run starts empty.
    fn owed_by_user(&self) -> Vec<Vec<Owed<'_>>> {
        let mut sent: Vec<&Event> = self.events.iter().filter(|e| e.sent_at.is_some()).collect();
        sent.sort_by_key(|e| (e.run, e.seq));
        let mut owed = vec![Vec::new(); USERS as usize];
        let mut follows = BTreeSet::new();
        let mut run = 0;
        for event in sent {
            if event.run != run {
                follows.clear();
                run = event.run;
            }
            let recipients: Vec<u64> = match event.kind {
                Kind::Follow(from, to) => {
                    follows.insert((from, to));
                    vec![to]
                }
                Kind::Unfollow(from, to) => {
                    follows.remove(&(from, to));
                    vec![]
                }
                Kind::Broadcast => (0..USERS).collect(),
                Kind::Private(_, to) => vec![to],
                Kind::Status(from) => follows
                    .iter()
                    .filter(|&&(_, to)| to == from)
                    .map(|&(follower, _)| follower)
                    .collect(),
            };
            for user in recipients {
                owed[user as usize].push(Owed {
                    sent_at: event.sent_at.expect("sent"),
                    line: &event.line,
                });
            }
        }
        owed
    }
}

/// A line a user's clients receive, and the send that completed it.
#[derive(Debug, Clone, Copy)]
pub struct Owed<'a> {
    /// The send that carried its last byte.
    pub sent_at: u64,
    /// The line, byte for byte.
    pub line: &'a [u8],
}

/// Checks what one client received against the lines its user gets
/// (`owed`, in delivery order; empty for a client with no valid id).
///
/// It must be a contiguous stretch of `owed` in whole lines, of which the
/// last may be cut short if the client is gone. With `live_since` (the
/// client is still connected, and its id line was complete at that send)
/// it must be whole lines up to the end of `owed`, from no later than the
/// first line sent after its id.
pub fn check_received(received: &[u8], owed: &[Owed<'_>], live_since: Option<u64>) {
    let mut lines: Vec<&[u8]> = received.split_inclusive(|&b| b == b'\n').collect();
    let partial = match lines.last() {
        Some(last) if !last.ends_with(b"\n") => lines.pop().expect("a last line"),
        _ => &[][..],
    };
    let shown = || {
        let owed: Vec<String> = owed
            .iter()
            .map(|o| o.line.escape_ascii().to_string())
            .collect();
        format!(
            "received \"{}\", its user gets {owed:?}",
            received.escape_ascii()
        )
    };
    let fits = |at: usize| {
        owed.len() >= at + lines.len()
            && owed[at..]
                .iter()
                .zip(&lines)
                .all(|(o, &line)| o.line == line)
            && (partial.is_empty()
                || owed
                    .get(at + lines.len())
                    .is_some_and(|o| o.line.len() > partial.len() && o.line.starts_with(partial)))
    };
    match live_since {
        Some(registered_at) => {
            assert!(partial.is_empty(), "a partial line: {}", shown());
            let Some(at) = owed.len().checked_sub(lines.len()).filter(|&at| fits(at)) else {
                panic!("not the stream's last lines, in order: {}", shown());
            };
            let first_owed = owed
                .iter()
                .position(|o| o.sent_at > registered_at)
                .unwrap_or(owed.len());
            assert!(
                at <= first_owed,
                "missing owed lines from index {first_owed} (id complete at send {registered_at}): {}",
                shown()
            );
        }
        None => {
            let last = owed.len().saturating_sub(lines.len());
            assert!(
                (0..=last).any(fits),
                "not a stretch of the stream: {}",
                shown()
            );
        }
    }
}
