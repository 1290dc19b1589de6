//! What each client has yet to receive, with broadcasts stored once.
//!
//! A Broadcast goes to every registered client. Copying its frame into
//! thousands of per-client buffers would cost a memmove per recipient,
//! most of the server's time in a broadcast-heavy run. Instead the frame is
//! appended once to the shared [`BroadcastLog`], and each [`Outbox`] holds
//! an ordered list of segments: runs of its own frames (Private, Follow,
//! Status update), copied into its own buffer, and ranges of the log. A
//! write gathers the segments into one vectored `write`.
//!
//! An outbox takes in the broadcasts appended since it last looked lazily:
//! just before it gets a frame of its own (so order is kept) and when it is
//! flushed. Routing a broadcast is therefore O(1), whatever the number of
//! clients; each client pays once per loop turn, not once per broadcast.
//!
//! The log keeps the bytes that some outbox still refers to: no more than
//! the largest backlog of a client, which the server's outbox limits bound.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::time::Instant;

use crate::engine::timeline::Timeline;
use crate::io_errors::{interrupted, would_block};

/// Broadcast frames in arrival order, shared by every outbox.
///
/// Positions are absolute byte offsets since the log was made, so they stay
/// valid while the front is released.
#[derive(Debug, Default)]
pub struct BroadcastLog {
    /// The bytes from position `base` on.
    bytes: Vec<u8>,
    /// The position of `bytes[0]`.
    base: u64,
    /// When each part of the log was routed: how far a client that owes
    /// from it lags.
    times: Timeline,
}

impl BroadcastLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position after the last byte: where the next broadcast starts.
    pub fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// Bytes held in memory.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends a broadcast frame routed at `now`.
    pub fn push(&mut self, frame: &[u8], now: Instant) {
        self.times.mark(self.end(), now);
        self.bytes.extend_from_slice(frame);
    }

    /// The bytes from `start` to `end`, which must still be held.
    fn range(&self, start: u64, end: u64) -> &[u8] {
        let from = (start - self.base) as usize;
        let to = (end - self.base) as usize;
        &self.bytes[from..to]
    }

    /// When the byte at `position` (still held, or the next to come) was
    /// routed, at the latest.
    pub fn routed_at(&self, position: u64) -> Option<Instant> {
        self.times.routed_at(position)
    }

    /// Lets go of the bytes before `needed`: no outbox refers to them any
    /// more. Memory is given back once at least half of the log is dead, so
    /// each byte is moved at most once on average.
    pub fn release_before(&mut self, needed: u64) {
        let dead = (needed.clamp(self.base, self.end()) - self.base) as usize;
        if dead == self.bytes.len() {
            self.bytes.clear();
        } else if dead >= self.bytes.len() / 2 {
            self.bytes.drain(..dead);
        } else {
            return;
        }
        self.base += dead as u64;
        self.times.forget_before(self.base);
    }

    /// Frees the buffer if it is empty and holds more than `keep` bytes of
    /// capacity, so a burst does not pin memory for good.
    pub fn shrink_if_empty(&mut self, keep: usize) {
        if self.bytes.is_empty() && self.bytes.capacity() > keep {
            self.bytes = Vec::with_capacity(keep);
        }
    }
}

/// Ranges of the log shorter than this are copied into the outbox's own
/// buffer instead of being referred to: a segment costs more than a copy of
/// a few bytes, and a client that alternates own frames and broadcasts
/// would otherwise hold one segment per frame.
const COPY_BELOW: usize = 256;

/// Most buffers gathered into one vectored write.
const MAX_SLICES: usize = 64;

/// One run of a client's queued bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Segment {
    /// The next this many bytes of the outbox's own buffer.
    Own(usize),
    /// The log's bytes from `start` to `end`.
    Log {
        /// First position.
        start: u64,
        /// Position after the last.
        end: u64,
    },
}

impl Segment {
    /// Bytes in the run.
    fn len(&self) -> usize {
        match *self {
            Segment::Own(len) => len,
            Segment::Log { start, end } => (end - start) as usize,
        }
    }
}

/// What one client has yet to receive, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Own frames; the unwritten ones are `own[own_head..]`.
    own: Vec<u8>,
    /// Bytes at the front of `own` already written.
    own_head: usize,
    /// The position of `own[own_head]` in the stream of every own byte
    /// this outbox ever queued: where `own_times` is read.
    own_written: u64,
    /// When the own bytes were routed (for copied broadcasts: when they
    /// were routed into the log).
    own_times: Timeline,
    /// Queued runs in the order they are to be written.
    segments: VecDeque<Segment>,
    /// The log position up to which broadcasts have been taken in; the
    /// ones after it are owed but not yet in `segments`.
    log_seen: u64,
    /// Bytes in `segments`.
    queued: usize,
}

impl Outbox {
    /// An empty outbox owed only the broadcasts appended to `log` from now
    /// on.
    pub fn new(log: &BroadcastLog) -> Self {
        Outbox {
            log_seen: log.end(),
            ..Outbox::default()
        }
    }

    /// Bytes the client is owed and has not been sent: queued ones and the
    /// broadcasts not yet taken in.
    pub fn pending(&self, log: &BroadcastLog) -> usize {
        self.queued + (log.end() - self.log_seen) as usize
    }

    /// Bytes held by this outbox alone (its own buffer's unwritten part,
    /// including short runs of broadcasts copied in); the log's bytes are
    /// counted once, by the log.
    pub fn own_bytes(&self) -> usize {
        self.own.len() - self.own_head
    }

    /// The position, in the stream of own bytes, where the next one goes.
    fn own_end(&self) -> u64 {
        self.own_written + self.own_bytes() as u64
    }

    /// When the oldest byte the client owes was routed (within two
    /// timeline resolutions, never later), or `None` if it owes
    /// nothing: how far it lags the stream.
    pub fn oldest_owed_at(&self, log: &BroadcastLog) -> Option<Instant> {
        match self.segments.front() {
            Some(Segment::Own(_)) => self.own_times.routed_at(self.own_written),
            Some(&Segment::Log { start, .. }) => log.routed_at(start),
            None if self.log_seen < log.end() => log.routed_at(self.log_seen),
            None => None,
        }
    }

    /// The earliest log position this outbox still needs.
    pub fn log_needed(&self) -> u64 {
        self.segments
            .iter()
            .find_map(|segment| match *segment {
                Segment::Log { start, .. } => Some(start),
                Segment::Own(_) => None,
            })
            .unwrap_or(self.log_seen)
    }

    /// Queues the broadcasts appended to `log` since the last look.
    pub fn take_in(&mut self, log: &BroadcastLog) {
        let (start, end) = (self.log_seen, log.end());
        if start == end {
            return;
        }
        let len = (end - start) as usize;
        match self.segments.back_mut() {
            Some(Segment::Log { end: last, .. }) if *last == start => *last = end,
            _ if len < COPY_BELOW => {
                // Copied bytes keep the times they were routed into the log.
                let own_end = self.own_end();
                for (position, at) in log.times.marks_within(start, end) {
                    self.own_times.mark(own_end + (position - start), at);
                }
                self.push_own(log.range(start, end));
            }
            _ => self.segments.push_back(Segment::Log { start, end }),
        }
        self.queued += len;
        self.log_seen = end;
    }

    /// Queues a frame of this client's own, routed at `now`, after every
    /// broadcast it is owed.
    pub fn push(&mut self, frame: &[u8], log: &BroadcastLog, now: Instant) {
        self.take_in(log);
        self.own_times.mark(self.own_end(), now);
        self.push_own(frame);
        self.queued += frame.len();
    }

    /// Appends bytes to the own buffer as (part of) the last segment; the
    /// caller counts them in `queued`.
    fn push_own(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.own_head > 0 && self.own_head >= self.own.len() / 2 {
            // Reclaim the written front before growing the buffer.
            self.own.drain(..self.own_head);
            self.own_head = 0;
        }
        self.own.extend_from_slice(bytes);
        match self.segments.back_mut() {
            Some(Segment::Own(len)) => *len += bytes.len(),
            _ => self.segments.push_back(Segment::Own(bytes.len())),
        }
    }

    /// Takes in the broadcasts owed, then writes until nothing is queued or
    /// `writer` would block; returns how many bytes were written.
    pub fn write_to(&mut self, writer: &mut impl Write, log: &BroadcastLog) -> io::Result<usize> {
        self.take_in(log);
        let mut written = 0;
        while self.queued > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut own_at = self.own_head;
            let mut count = 0;
            for (slice, segment) in slices.iter_mut().zip(&self.segments) {
                let bytes = match *segment {
                    Segment::Own(len) => {
                        own_at += len;
                        &self.own[own_at - len..own_at]
                    }
                    Segment::Log { start, end } => log.range(start, end),
                };
                *slice = IoSlice::new(bytes);
                count += 1;
            }
            match writer.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.consume(n);
                    written += n;
                }
                Err(err) if would_block(&err) => break,
                Err(err) if interrupted(&err) => continue,
                Err(err) => return Err(err),
            }
        }
        if self.queued == 0 {
            self.own.clear();
            self.own_head = 0;
        }
        Ok(written)
    }

    /// Drops the first `n` queued bytes, which were written.
    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let front = self.segments.front_mut().expect("n <= queued");
            let len = front.len();
            let taken = n.min(len);
            match front {
                Segment::Own(left) => {
                    *left -= taken;
                    self.own_head += taken;
                    self.own_written += taken as u64;
                }
                Segment::Log { start, .. } => *start += taken as u64,
            }
            if taken == len {
                self.segments.pop_front();
            }
            n -= taken;
        }
        self.own_times.forget_before(self.own_written);
    }

    /// Frees the buffers' memory if nothing is queued and they are far
    /// larger than both `keep` bytes and the batch just written (`recent`
    /// bytes), so a burst does not pin memory for the connection's lifetime,
    /// while a client that regularly gets large batches keeps its buffer
    /// instead of reallocating it every turn.
    pub fn shrink_if_idle(&mut self, keep: usize, recent: usize) {
        if self.queued > 0 {
            return;
        }
        if self.own.capacity() > keep.max(recent.saturating_mul(4)) {
            self.own = Vec::with_capacity(keep);
            self.own_head = 0;
        }
        // A segment is at least a few hundred bytes of the log, or a run of
        // own frames between two such; a few are the most a batch needs.
        if self.segments.capacity() > MAX_SLICES {
            self.segments = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests;
