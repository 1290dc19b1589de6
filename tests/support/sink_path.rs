//! The server's source path without sockets, shared by `tests/alloc.rs` and
//! the `route` benches: server-sized reads into an [`Inbox`], every line
//! framed and parsed in one pass ([`Inbox::next_event`]) and handed to
//! [`Pipeline::on_parsed_frame`], as the server does; deliveries into one
//! [`Outbox`] per connection and broadcasts into one [`BroadcastLog`]; and
//! at the end of each 8 MiB turn the outboxes written out (to `io::sink`,
//! so the copy to a socket is left out) and shrunk, and the log released,
//! by the server's rules.

use std::io;
use std::time::Instant;

use follower_maze::engine::inbox::Inbox;
use follower_maze::engine::outbox::{BroadcastLog, Outbox};
use follower_maze::engine::pipeline::{Deliver, Pipeline};
use follower_maze::engine::protocol::EventLine;
use follower_maze::engine::router::ConnKey;

/// The server's source inbox and read size.
pub const INBOX_BYTES: usize = 1024 * 1024;
/// The server's largest turn: source bytes routed before outboxes are written.
pub const TURN_BYTES: usize = 8 * 1024 * 1024;
/// The server's idle outbox size past which the buffer is freed.
pub const OUTBOX_KEEP_BYTES: usize = 64 * 1024;

/// One outbox per connection key, and the broadcast log they share.
pub struct SinkOutboxes {
    /// Indexed by connection key.
    outboxes: Vec<Outbox>,
    /// Broadcasts for every connection.
    log: BroadcastLog,
    /// Keys that gained frames of their own this turn.
    dirty: Vec<ConnKey>,
    /// The log's end when every outbox last took it in.
    log_flushed: u64,
    /// The routing time given to every frame (lag is not measured here).
    now: Instant,
}

impl SinkOutboxes {
    /// Outboxes for `connections` connections, each of which has once held
    /// `warm` bytes, as a long-running server's outboxes have.
    pub fn new(connections: usize, warm: usize) -> SinkOutboxes {
        let log = BroadcastLog::new();
        let now = Instant::now();
        let outboxes = (0..connections)
            .map(|_| {
                let mut outbox = Outbox::new(&log);
                outbox.push(&vec![b'x'; warm], &log, now);
                let written = outbox.write_to(&mut io::sink(), &log);
                assert_eq!(written.ok(), Some(warm), "io::sink takes everything");
                outbox.shrink_if_idle(OUTBOX_KEEP_BYTES, warm);
                outbox
            })
            .collect();
        SinkOutboxes {
            outboxes,
            log,
            dirty: Vec::with_capacity(connections),
            log_flushed: 0,
            now,
        }
    }

    /// The end of a turn: the outboxes that are owed anything written out
    /// (all of them when broadcasts came), then the log released.
    pub fn drain(&mut self) {
        if self.log.end() != self.log_flushed {
            self.dirty.clear();
            self.dirty.extend(0..self.outboxes.len());
            self.log_flushed = self.log.end();
        }
        for &key in &self.dirty {
            let outbox = &mut self.outboxes[key];
            let written = outbox.write_to(&mut io::sink(), &self.log);
            assert!(written.is_ok(), "io::sink never fails");
            outbox.shrink_if_idle(OUTBOX_KEEP_BYTES, written.unwrap_or(0));
        }
        self.dirty.clear();
        let needed = self.outboxes.iter().map(Outbox::log_needed).min();
        self.log.release_before(needed.unwrap_or(self.log.end()));
    }
}

impl Deliver for SinkOutboxes {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        let outbox = &mut self.outboxes[conn];
        if outbox.pending(&self.log) == 0 {
            self.dirty.push(conn);
        }
        outbox.push(frame, &self.log, self.now);
    }

    fn broadcast(&mut self, frame: &[u8], _conns: impl Iterator<Item = ConnKey>) {
        self.log.push(frame, self.now);
    }
}

/// Routes `bytes` (valid event lines) through `pipeline` into `out` in
/// server-sized reads, draining the outboxes every [`TURN_BYTES`] and at the
/// end.
pub fn route_in_turns(
    pipeline: &mut Pipeline,
    inbox: &mut Inbox,
    out: &mut SinkOutboxes,
    mut bytes: &[u8],
) {
    let now = Instant::now();
    let mut turn = 0;
    while !bytes.is_empty() {
        // Reading from a slice cannot fail; it advances `bytes`.
        let read = inbox.read_from(&mut bytes, INBOX_BYTES);
        assert!(matches!(read, Ok(n) if n > 0));
        turn += read.unwrap_or(0);
        while let Some(line) = inbox.next_event() {
            let EventLine::Frame { start, end, parsed } = line else {
                panic!("the stream holds no overlong line");
            };
            let routed = pipeline.on_parsed_frame(parsed, inbox.frame(start, end), now, out);
            assert!(routed.is_ok(), "the stream holds valid lines");
        }
        inbox.compact();
        if turn >= TURN_BYTES || bytes.is_empty() {
            out.drain();
            turn = 0;
        }
    }
}
