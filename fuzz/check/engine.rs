//! The check behind the `engine` fuzz target, shared with
//! `tests/fuzz_seeds.rs`, which runs it over the seeds in
//! `fuzz/seeds/engine/` so it keeps compiling and passing under `cargo test`.
//!
//! The whole sans-IO core ([`Harness`]: an `Engine` on a `MemoryNet` with a
//! clock of its own) is driven by a list of [`Op`]s decoded from the input:
//! event lines composed in permuted blocks and sent in pieces split
//! anywhere, junk and overlong lines, lines of seqs far beyond the window
//! (up to `2^64 - 2`, and `2^64 - 1`, which is not a seq), clients that
//! connect and send their id in pieces (some bad), clients that send without
//! end (with no newline before their id line is complete, or after it),
//! floods of connections that never send an id, readers that take a few
//! bytes or none, half-closes, resets, a second source while one is open,
//! sources that connect and never send, sources that close and hand over
//! (carrying the run on, or starting a new one), and the clock. Every limit
//! in [`config`] is small, so they are hit often. The fuzz target is built
//! with overflow checks (`fuzz/Cargo.toml`), as `cargo test` is: no
//! arithmetic on input may overflow.
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
//! - A far line (a seq at least a window's capacity beyond every seq
//!   composed) is the last line of its run: the next event starts a new
//!   run. The run's other lines all come before it, so it never gives up a
//!   seq still to be sent, and every client is owed exactly what it would
//!   be without it, plus the far line. (Carrying the run on past it would
//!   leave a hole no line fills, which the model could only judge by
//!   relaxing what a client is owed.) Before the new run's seq 1 the far
//!   line must be out: the seqs just below it are a hole, given up on once
//!   its timeout passes on the clock (a new run would drop the frames still
//!   held behind it), so the clock moves on until it is.
//! - The source being fed is never closed for idling: while a second
//!   source waits behind it and it has sent nothing since, the clock moves
//!   less than [`SOURCE_IDLE`]. A silent source connects only while none
//!   is fed and no sent seq is missing; the next source waits behind it
//!   until it has been silent for [`SOURCE_IDLE`], so the clock moves that
//!   much once it holds the port, out of a reserve the hole timeout keeps
//!   for it, and a hole whose lines wait unread behind it counts as open.
//! - Clients may be evicted (a close) while they send their id in pieces,
//!   or closed for an id line that never ends: neither is still connected,
//!   so only rule 2 holds for them.
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
//!    expect (a far line's run gives up every seq below it not sent), and a
//!    new run is counted for each one started.
//! 7. After every turn: at most [`MAX_PENDING`] connections await their id;
//!    the window's slow-path steps stay within [`STEPS_PER_LINE`] per event
//!    line sent and [`STEPS_PER_TURN`] per turn (a far line costs a step,
//!    not one per seq crossed); a client flooding its id line has been read
//!    twice the id limit at most, and is closed once read; a client flooding
//!    after its id was read [`CHATTER_PER_TURN`] at most in the turn; a
//!    silent source with no other source since it came is not closed.
//! 8. At the end every connection that never sent an id, and every silent
//!    source, is closed, and every client that flooded its id line was
//!    counted as a bad id.

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
/// Connections awaiting their id at once: small, so connections that never
/// send one evict the oldest waiting one often, real clients still sending
/// their id in pieces included.
const MAX_PENDING: usize = 4;
/// How long the source being read may send nothing while another waits
/// before it is closed: short, so a silent source hands over within a clock
/// step or two, and a small part of the hole timeout, so the clock can move
/// that far while a hole waits (see [`Session::advance`]).
const SOURCE_IDLE: Duration = Duration::from_millis(20);
/// How long a connected source may stay silent with a hole open: above the
/// hole timeout (so it never gives up a hole the model expects filled),
/// short enough that a far line behind a silent source is let out within a
/// few clock steps.
const HOLE_SILENCE: Duration = Duration::from_millis(500);
/// Silent sources per input, at most: each may cost up to twice
/// [`SOURCE_IDLE`] of clock while a hole waits (its idle time may start
/// over once, when reading resumes after a pause), reserved out of the
/// hole timeout.
const MAX_SILENT: usize = 4;
/// Connections that never send an id, per input, at most.
const MAX_LURKERS: usize = 48;
/// A flood's length: more than any input's turns can read, so it never
/// runs dry.
const FLOOD_BYTES: u64 = 1 << 40;
/// Bytes the core reads from a registered client per turn at most (the
/// core's `DISCARD_READS_PER_TURN` reads of `DISCARD_BYTES`, private to
/// `engine::clients::ids`).
const CHATTER_PER_TURN: u64 = 16 * 1024;
/// Turns a settle lets clients flood after their id before it holds the
/// floods back: a client that never stops sending keeps the engine busy
/// for ever, and a settle must end.
const FLOOD_TURNS: usize = 4;
/// Window slow-path steps allowed per event line sent: a line costs a pop
/// or two and a scan of the near ring (half the capacity) at most; a step
/// per seq crossed would cost a million for one far line.
const STEPS_PER_LINE: u64 = 4 * (WINDOW_CAPACITY as u64 / 2 + 2);
/// Window slow-path steps allowed per turn besides: a turn asks the window
/// for its next frame a few times (releasing, the timers, shutdown), and
/// each ask of an empty or waiting window is a step.
const STEPS_PER_TURN: u64 = 4;
/// Clock steps the far line of a run that starts over may take to be let
/// out (its hole timeout each, or the clients' write deadlines while the
/// source is paused).
const FAR_TRIES: usize = 24;
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
        max_pending_clients: MAX_PENDING,
        max_queued_bytes: MAX_QUEUED_BYTES,
        source_idle: SOURCE_IDLE,
        hole_silence: HOLE_SILENCE,
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
    /// Composes the run's last line (see [`far_seq`]): a valid event of a
    /// seq far beyond the window, up to the last one, `2^64 - 2`; or a
    /// line of seq `2^64 - 1`, which is not a seq (dropped, and the run
    /// goes on). After a far line the next event starts a new run.
    Far {
        /// How far.
        pick: u8,
        /// Kind and users.
        what: u8,
        /// Formatting.
        style: u8,
    },
    /// A client sends `byte` without end: before its id line is complete
    /// (a newline is sent as a digit then, so the line never ends), or
    /// after it.
    Flood {
        /// Which client.
        client: u8,
        /// The byte.
        byte: u8,
    },
    /// `count % 16 + 1` connections that never send an id.
    Lurkers {
        /// How many.
        count: u8,
    },
    /// A source connects and never sends.
    Silent,
}

/// Number of op codes: an input's byte picks one modulo this.
const OP_CODES: u8 = 18;

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
            13 => Op::CloseSource { restart: arg() },
            14 => Op::Far {
                pick: arg(),
                what: arg(),
                style: arg(),
            },
            15 => Op::Flood {
                client: arg(),
                byte: arg(),
            },
            16 => Op::Lurkers { count: arg() },
            _ => Op::Silent,
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
            Op::Far { pick, what, style } => (14, &[pick, what, style]),
            Op::Flood { client, byte } => (15, &[client, byte]),
            Op::Lurkers { count } => (16, &[count]),
            Op::Silent => (17, &[]),
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
    /// The window's slow-path steps ([`WindowCounters::steps`]).
    ///
    /// [`WindowCounters::steps`]: follower_maze::engine::window::WindowCounters
    pub window_steps: u64,
    /// Valid event lines sent, all runs.
    pub lines_sent: u64,
    /// Bytes read from clients flooding after their id.
    pub chatter_taken: u64,
    /// Clients (not lurkers) the engine closed before shutdown, other than
    /// the ones we reset: evicted, bad or late ids, cuts.
    pub closed_early: usize,
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

/// The seq of a far line composed when `next` is the first seq of the next
/// block: at least a window's capacity beyond every seq composed (so it
/// never shares the ring with them, and everything held before it is let
/// out when it comes), then `2^20` and more beyond, up to the last seqs,
/// `2^64 - 2` and below; or `2^64 - 1`, which is not a seq.
fn far_seq(pick: u8, next: u64) -> u64 {
    let capacity = WINDOW_CAPACITY as u64;
    let more = u64::from(pick / 8);
    match pick % 8 {
        0 => next + capacity,
        1 => next + capacity + 1 + more,
        2 => next + (1 << 20),
        3 => next + 5 * (1 << 20) + more,
        4 => next + (1 << 32),
        5 => 1 << 63,
        6 => u64::MAX - 1 - more % 4,
        _ => u64::MAX,
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
    /// Bytes it sent before any flood.
    sent_bytes: u64,
    /// It sends without end.
    flood: Option<Flooding>,
    /// Bytes the engine had read from it after the last turn.
    taken_last: u64,
}

/// How a client floods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flooding {
    /// Before its id line was complete: a line that never ends. It must be
    /// closed for it, once read, having been read twice the id limit at
    /// most.
    Id,
    /// After its id line, this byte: it keeps receiving, read a turn's
    /// budget at a time.
    Chatter(u8),
}

/// A source that connects and never sends.
#[derive(Debug)]
struct Silent {
    peer: Peer,
    /// Another source came after it: only then may the engine close it (a
    /// lone silent source is never closed).
    company: bool,
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
    /// Clock moved since a second source began waiting behind the source
    /// being fed while that one has sent nothing since: past
    /// [`SOURCE_IDLE`] it would be closed for idling.
    idle_guard: Option<Duration>,
    /// The current run's far line, once composed: the run's last line.
    far_seq: Option<u64>,
    /// The far line has been sent: every line the run will send has been,
    /// so no hole below it can be filled any more.
    far_sent: bool,
    /// Seqs given up on in the runs before the current one (far lines),
    /// added as the core counts them (saturating).
    skipped_before: u64,
    /// Valid event lines sent, all runs.
    lines_sent: u64,
    /// Turns so far.
    turns: u64,
    /// The last source fed, and whether it was sent anything.
    last_real: Option<(Peer, bool)>,
    /// Sources that never send.
    silent: Vec<Silent>,
    /// Client connections that never send an id.
    lurkers: Vec<Peer>,
    /// Shutdown has begun: the engine closes whatever is left.
    shut_down: bool,
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
            idle_guard: None,
            far_seq: None,
            far_sent: false,
            skipped_before: 0,
            lines_sent: 0,
            turns: 0,
            last_real: None,
            silent: Vec::new(),
            lurkers: Vec::new(),
            shut_down: false,
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
            Op::Far { pick, what, style } => self.compose_far(pick, what, style),
            Op::Flood { client, byte } => self.flood(client, byte),
            Op::Lurkers { count } => self.connect_lurkers(count),
            Op::Silent => self.connect_silent(),
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
        for silent in &mut self.silent {
            silent.company = true;
        }
        let source = self.harness.connect(Port::Events);
        self.source = Some(source.clone());
        self.last_real = Some((source, false));
        self.hand_over();
        if std::mem::take(&mut self.restart_next) {
            let missing = self.max_sent - self.sent;
            self.skipped_before = self.skipped_before.saturating_add(missing);
            self.far_seq = None;
            self.far_sent = false;
            self.run += 1;
            self.block_left.clear();
            self.next_block = 1;
            self.sent = 0;
            self.max_sent = 0;
            self.seq1_sent = false;
            self.hole_clock = Duration::ZERO;
            self.restart_clock = Some(Duration::ZERO);
        }
    }

    /// Lets the source just connected take over from the silent sources
    /// ahead of it: the engine closes each once it has been silent for
    /// [`SOURCE_IDLE`] with another waiting. The clock moves only while a
    /// silent source holds the port (one still waiting behind a source fed
    /// before, or behind a pipeline full of events, needs the clients to
    /// read, not the clock: the steps that follow, or the end, finish the
    /// handover), to its idle deadline each time, out of the hole's reserve.
    fn hand_over(&mut self) {
        // The sources take the port in order: once the last one is read,
        // every one before it has been read to its end.
        let Some((source, _)) = self.last_real.clone() else {
            return;
        };
        for _ in 0..=2 * MAX_SILENT {
            self.settle();
            if source.reads() > 0 || self.silent_alive() == 0 {
                break;
            }
            // A silent source the engine has read (to `WouldBlock`) holds
            // the port: one waiting is never read.
            let silent_holds = self
                .silent
                .iter()
                .any(|silent| silent.peer.ended().is_none() && silent.peer.reads() > 0);
            // Paused for the clients, it is unread, not idle.
            let stats = self.harness.engine.stats();
            let drained =
                stats.clients_holding_source == 0 && stats.queued_bytes <= MAX_QUEUED_BYTES / 2;
            let room =
                !self.fillable_hole() || self.hole_clock + SOURCE_IDLE + ms(1) <= HOLE_TIMEOUT;
            if !silent_holds || !drained || !room || self.restart_clock.is_some() {
                break;
            }
            // To its idle deadline, not past it (the engine's next one).
            let next = self.harness.engine.timeout(self.harness.now);
            self.jump(next.unwrap_or(SOURCE_IDLE).clamp(ms(1), SOURCE_IDLE));
        }
        if source.reads() > 0 && self.idle_guard.is_some() {
            // It was let in just now: its silence counts from here.
            self.idle_guard = Some(Duration::ZERO);
        }
    }

    /// True while a sent seq is missing that a line still to be sent may
    /// fill, or while the lines sent last wait unread behind a silent source
    /// (a hole they fill is still open in the engine, its wait running on
    /// the clock): the clock must not give it up.
    fn fillable_hole(&self) -> bool {
        let unread = self
            .last_real
            .as_ref()
            .is_some_and(|(source, sent)| *sent && source.reads() == 0);
        (self.sent != self.max_sent && !self.far_sent) || unread
    }

    /// Silent sources the engine has not closed.
    fn silent_alive(&self) -> usize {
        self.silent
            .iter()
            .filter(|silent| silent.peer.ended().is_none())
            .count()
    }

    /// Composes the next event; `pick` chooses its seq within the block.
    fn compose_event(&mut self, pick: u8, what: u8, style: u8) {
        if self.events.len() >= MAX_EVENTS {
            return;
        }
        if self.far_seq.is_some() {
            // The run is over: a new one starts.
            self.close_source(true);
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
        if let Some((_, sent)) = self.last_real.as_mut() {
            *sent = true;
        }
        // It has spoken: sources waiting behind it are refused.
        self.idle_guard = None;
        self.far_sent |= self.far_seq.is_some() && !self.outgoing.has_events();
        for index in done {
            let event = &mut self.events[index];
            event.sent_at = Some(self.sends);
            self.lines_sent += 1;
            self.sent += 1;
            self.max_sent = self.max_sent.max(event.seq);
            if event.seq == 1 {
                self.seq1_sent = true;
                self.restart_clock = None;
            }
        }
        if !self.fillable_hole() {
            // The hole this clock was kept for is gone (its line is read
            // before the timers run): the next one starts at 0.
            self.hole_clock = Duration::ZERO;
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
        // After a far line only a new run can follow.
        let restart = restart || self.far_seq.is_some();
        if restart {
            self.send_source(usize::MAX);
        } else if !self.outgoing.in_junk() {
            self.send_source(self.outgoing.rest_of_line());
        }
        let far = self.far_seq.is_some();
        if !far && ((self.sent > 0 && !self.seq1_sent) || self.restart_clock.is_some()) {
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
        self.idle_guard = None;
        let no_hole = self.sent == self.max_sent || self.far_sent;
        self.restart_next = restart && self.sent > 0 && no_hole && !self.outgoing.has_events();
        if far {
            self.release_far_line();
        }
    }

    /// Waits for the far line that ended the run to be let out before the
    /// next run's seq 1 can come (a new run drops the old run's frames
    /// still held). Its seqs just below it are a hole no line will fill,
    /// given up on once the source has been read to its end and the hole
    /// timeout has passed on the clock (or the silence cap, while a silent
    /// source holds the port); clients that stopped reading, which keep the
    /// source paused, are cut after their write deadline on the same clock.
    fn release_far_line(&mut self) {
        let far = self.far_seq.expect("a far line");
        for _ in 0..FAR_TRIES {
            self.settle();
            // Out once the engine is in this run (its source may still wait
            // behind another) and past the far seq.
            let engine = &self.harness.engine;
            let this_run = engine.stats().runs == self.run as u64;
            if this_run && engine.pipeline().next_seq() > far {
                return;
            }
            self.jump(HOLE_TIMEOUT + ms(1));
        }
        panic!(
            "the far line of seq {far} was never let out: {:?}",
            self.harness.engine.stats()
        );
    }

    /// Composes the run's far line (see [`far_seq`]), after seq 1 of a new
    /// run (so the core can tell the run is new). A line of seq
    /// `2^64 - 1` is junk: the run goes on.
    fn compose_far(&mut self, pick: u8, what: u8, style: u8) {
        if self.far_seq.is_some() || self.events.len() >= MAX_EVENTS {
            return;
        }
        self.ensure_source();
        let seq = far_seq(pick, self.next_block);
        if seq == u64::MAX {
            let line = event_line(seq, kind_of(what), style);
            self.outgoing.push(&line, None);
            return;
        }
        if self.restart_clock.is_some() {
            self.send_seq1();
        }
        self.push_event(seq, kind_of(what), style);
        self.far_seq = Some(seq);
    }

    /// Client `index` floods `byte` (see [`Flooding`]); one that half-closed
    /// or floods already does nothing.
    fn flood(&mut self, index: u8, byte: u8) {
        let Some(client) = self.client(index) else {
            return;
        };
        if client.done_sending || client.flood.is_some() {
            return;
        }
        if client.registered_at.is_some() {
            client.flood = Some(Flooding::Chatter(byte));
            client.peer.flood(byte, FLOOD_BYTES);
            return;
        }
        let byte = if byte == b'\n' { b'7' } else { byte };
        client.flood = Some(Flooding::Id);
        client.done_sending = true;
        client.unsent.clear();
        client.id_left = None;
        client.peer.flood(byte, FLOOD_BYTES);
    }

    /// `count % 16 + 1` client connections that never send anything.
    fn connect_lurkers(&mut self, count: u8) {
        for _ in 0..=count % 16 {
            if self.lurkers.len() >= MAX_LURKERS {
                return;
            }
            let lurker = self.harness.connect(Port::Clients);
            self.lurkers.push(lurker);
        }
    }

    /// A source that never sends connects, while no source is being fed
    /// and no sent seq is missing: it takes the port (or waits for the
    /// source fed last to be read to its end), and the next source waits
    /// behind it until it has been silent for [`SOURCE_IDLE`] (see
    /// [`Session::hand_over`]). Not while a source is being fed: one that
    /// came behind it could take over only once the fed one closes, in
    /// whatever state its holes and probation are then, which the model
    /// cannot decide (a second source that waits behind the fed one is the
    /// `Intruder` op's).
    fn connect_silent(&mut self) {
        if self.silent.len() >= MAX_SILENT || self.source.is_some() || self.fillable_hole() {
            return;
        }
        for silent in &mut self.silent {
            silent.company = true;
        }
        let peer = self.harness.connect(Port::Events);
        self.silent.push(Silent {
            peer,
            company: false,
        });
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
        // Waiting behind the fed source, it would take over once that one
        // idles.
        self.idle_guard.get_or_insert(Duration::ZERO);
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
            sent_bytes: 0,
            flood: None,
            taken_last: 0,
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
        client.sent_bytes += n as u64;
        if let Some(left) = client.id_left {
            client.id_left = left.checked_sub(n).filter(|&left| left > 0);
            if client.id_left.is_none() {
                client.registered_at = Some(sends);
            }
        }
        self.sends = sends;
    }

    /// Moves the clock on by `by`, less if a hole (with the silent sources'
    /// reserve), a new run's probation or the fed source's idling could run
    /// out, then settles.
    fn advance(&mut self, by: Duration) {
        let mut by = by;
        if self.fillable_hole() {
            let reserve = 2 * SOURCE_IDLE * self.silent_alive() as u32;
            by = by.min(HOLE_TIMEOUT.saturating_sub(self.hole_clock + ms(1) + reserve));
        }
        if let Some(waited) = self.restart_clock {
            by = by.min(PROBATION.saturating_sub(waited + ms(1)));
        }
        if let Some(waited) = self.idle_guard {
            by = by.min(SOURCE_IDLE.saturating_sub(waited + ms(1)));
        }
        if !by.is_zero() {
            self.jump(by);
        }
    }

    /// Moves the clock on by `by`, counting it against every wait the model
    /// tracks, then settles.
    fn jump(&mut self, by: Duration) {
        if self.fillable_hole() {
            self.hole_clock += by;
        } else {
            self.hole_clock = Duration::ZERO;
        }
        for waited in [&mut self.restart_clock, &mut self.idle_guard] {
            if let Some(waited) = waited.as_mut() {
                *waited += by;
            }
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
        assert!(
            stats.clients_awaiting_id <= MAX_PENDING,
            "{} connections await their id, over {MAX_PENDING}: {stats:?}",
            stats.clients_awaiting_id
        );
        self.turns += 1;
        let steps = self.harness.engine.pipeline().counters().window.steps;
        assert!(
            steps <= STEPS_PER_LINE * self.lines_sent + STEPS_PER_TURN * self.turns,
            "{steps} window steps for {} event lines sent in {} turns: {stats:?}",
            self.lines_sent,
            self.turns
        );
        for client in &mut self.clients {
            let taken = client.peer.taken();
            match client.flood {
                Some(Flooding::Id) => {
                    assert!(
                        taken <= 2 * MAX_ID_LINE as u64,
                        "a client flooding its id line was read {taken} bytes"
                    );
                    if taken > client.sent_bytes {
                        assert_eq!(
                            client.peer.ended(),
                            Some(Ending::Close),
                            "a client flooding its id line was read and not closed"
                        );
                    }
                }
                Some(Flooding::Chatter(_)) => {
                    let read = taken - client.taken_last;
                    assert!(
                        read <= CHATTER_PER_TURN + 2 * MAX_ID_LINE as u64,
                        "a client flooding after its id was read {read} bytes in one turn"
                    );
                }
                None => {}
            }
            client.taken_last = taken;
        }
        if !self.shut_down {
            for silent in self.silent.iter().filter(|silent| !silent.company) {
                assert_eq!(silent.peer.ended(), None, "a lone silent source was closed");
            }
        }
        for client in self.clients.iter().filter(|c| c.always_read) {
            assert_ne!(
                client.peer.ended(),
                Some(Ending::Reset),
                "a client that always read everything was cut: {stats:?}"
            );
        }
    }

    /// Turns until the engine has no work waiting now. Clients flooding
    /// after their id keep it busy: after [`FLOOD_TURNS`] their floods are
    /// held back until it is idle.
    fn settle(&mut self) {
        let mut held_back = false;
        for turn in 0..SETTLE_TURNS {
            self.turn();
            if self.harness.engine.timeout(self.harness.now) != Some(Duration::ZERO) {
                if held_back {
                    self.hold_floods(false);
                }
                return;
            }
            if turn + 1 == FLOOD_TURNS {
                held_back = self.hold_floods(true);
            }
        }
        panic!(
            "still busy after {SETTLE_TURNS} turns: {:?}",
            self.harness.engine.stats()
        );
    }

    /// Holds back (or lets go on) the floods of the clients flooding after
    /// their id; true if there are any.
    fn hold_floods(&self, hold: bool) -> bool {
        let mut any = false;
        for client in &self.clients {
            if let Some(Flooding::Chatter(byte)) = client.flood {
                client.peer.flood(byte, if hold { 0 } else { FLOOD_BYTES });
                any = true;
            }
        }
        any
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
        self.hand_over();
        if let Some((source, sent)) = &self.last_real {
            assert!(
                source.reads() > 0 || !sent,
                "the source being fed never took over from the silent ones: {:?}",
                self.harness.engine.stats()
            );
        }
        let closed_early = self
            .clients
            .iter()
            .filter(|c| c.peer.ended().is_some() && !c.reset)
            .count();
        let source = self.source.take();
        let now = self.harness.now;
        self.harness.engine.shutdown(now, &mut self.harness.net);
        self.shut_down = true;
        self.settle();
        if let Some(source) = source {
            assert_eq!(source.ended(), Some(Ending::Close), "shutdown closes it");
        }
        let stats = self.harness.engine.stats();
        assert!(self.harness.engine.is_flushed(), "not flushed: {stats:?}");
        assert_eq!((stats.window_depth, stats.window_bytes), (0, 0));
        let counts = (stats.late, stats.duplicates, stats.runs, stats.skipped);
        // The last run's missing seqs are given up on at shutdown, the
        // others' (runs ended by a far line) before.
        let missing = self
            .skipped_before
            .saturating_add(self.max_sent - self.sent);
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
        for lurker in &self.lurkers {
            assert_eq!(lurker.ended(), Some(Ending::Close), "a lurker left open");
            assert!(lurker.take_received().is_empty(), "a lurker received bytes");
        }
        for silent in &self.silent {
            assert_eq!(
                silent.peer.ended(),
                Some(Ending::Close),
                "a silent source left open"
            );
        }
        let id_floods_read = self
            .clients
            .iter()
            .filter(|c| c.flood == Some(Flooding::Id) && c.peer.taken() > c.sent_bytes)
            .count();
        assert!(
            stats.bad_ids >= id_floods_read as u64,
            "{id_floods_read} clients flooded their id line, {} bad ids counted",
            stats.bad_ids
        );
        let chatter_taken = self
            .clients
            .iter()
            .filter(|c| matches!(c.flood, Some(Flooding::Chatter(_))))
            .map(|c| c.peer.taken())
            .sum();
        Outcome {
            stats,
            complete_clients,
            window_bytes_peak: self.window_bytes_peak,
            queued_bytes_peak: self.queued_bytes_peak,
            holding_peak: self.holding_peak,
            window_steps: self.harness.engine.pipeline().counters().window.steps,
            lines_sent: self.lines_sent,
            chatter_taken,
            closed_early,
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
