//! What each client has yet to receive, with broadcasts stored once.
//!
//! A Broadcast goes to every registered client. Copying its frame into
//! thousands of per-client buffers was most of the server's time in a
//! broadcast-heavy run (a memmove per recipient). Instead the frame is
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

use crate::engine::inbox::{interrupted, would_block};
use crate::engine::timeline::Timeline;

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
    /// [`crate::engine::timeline::RESOLUTION`]s, never later), or `None` if it owes
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
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A fixed time for tests that do not look at lag.
    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    /// A socket stand-in: takes at most `per_call` bytes per call, gathered
    /// across slices as `writev` does, and at most `room` in all before it
    /// would block.
    struct Socket {
        written: Vec<u8>,
        room: usize,
        per_call: usize,
    }

    impl Socket {
        fn new(room: usize, per_call: usize) -> Self {
            Socket {
                written: Vec::new(),
                room,
                per_call,
            }
        }
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut budget = self.room.min(self.per_call);
            let mut taken = 0;
            for slice in slices {
                let n = slice.len().min(budget);
                self.written.extend_from_slice(&slice[..n]);
                budget -= n;
                taken += n;
            }
            self.room -= taken;
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A broadcast frame of `len` bytes (at least 4) for seq `seq`.
    fn broadcast(seq: u64, len: usize) -> Vec<u8> {
        let mut frame = format!("{seq}|B").into_bytes();
        frame.resize(len.max(4) - 1, b'x');
        frame.push(b'\n');
        frame
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let log = BroadcastLog::new();
        let mut outbox = Outbox::new(&log);
        outbox.push(b"1|P|2|3\r\n", &log, t0());
        outbox.push(b"2|P|2|3\r\n", &log, t0());
        let mut socket = Socket::new(7, 3);
        assert_eq!(outbox.write_to(&mut socket, &log).unwrap(), 7);
        assert_eq!(outbox.pending(&log), 11);
        outbox.push(b"3|P|2|3\n", &log, t0());
        socket.room = 100;
        assert_eq!(outbox.write_to(&mut socket, &log).unwrap(), 19);
        assert_eq!(socket.written, b"1|P|2|3\r\n2|P|2|3\r\n3|P|2|3\n");
        assert_eq!(outbox.pending(&log), 0);
    }

    #[test]
    fn broadcasts_and_own_frames_leave_in_the_order_they_came() {
        let mut log = BroadcastLog::new();
        let mut outbox = Outbox::new(&log);
        let long = broadcast(3, 1000);
        log.push(b"1|B\n", t0());
        outbox.push(b"2|P|1|2\n", &log, t0());
        log.push(&long, t0());
        outbox.push(b"4|P|1|2\n", &log, t0());
        log.push(b"5|B\n", t0());
        let mut socket = Socket::new(usize::MAX, 100);
        let expected = [&b"1|B\n2|P|1|2\n"[..], &long, b"4|P|1|2\n5|B\n"].concat();
        assert_eq!(outbox.pending(&log), expected.len());
        assert_eq!(outbox.write_to(&mut socket, &log).unwrap(), expected.len());
        assert_eq!(socket.written, expected);
    }

    #[test]
    fn a_new_outbox_is_owed_only_later_broadcasts() {
        let mut log = BroadcastLog::new();
        log.push(b"1|B\n", t0());
        let mut outbox = Outbox::new(&log);
        assert_eq!(outbox.pending(&log), 0);
        log.push(b"2|B\n", t0());
        let mut socket = Socket::new(usize::MAX, usize::MAX);
        outbox.write_to(&mut socket, &log).unwrap();
        assert_eq!(socket.written, b"2|B\n");
    }

    #[test]
    fn short_log_ranges_are_copied_and_long_ones_shared() {
        let mut log = BroadcastLog::new();
        let mut outbox = Outbox::new(&log);
        log.push(b"1|B\n", t0());
        outbox.take_in(&log);
        assert_eq!(outbox.log_needed(), log.end(), "copied: the log is free");
        assert_eq!(outbox.own_bytes(), 4);
        let start = log.end();
        log.push(&broadcast(2, COPY_BELOW), t0());
        outbox.take_in(&log);
        assert_eq!(outbox.log_needed(), start, "shared: the log must keep it");
        assert_eq!(outbox.own_bytes(), 4, "nothing more copied");
        assert_eq!(outbox.pending(&log), 4 + COPY_BELOW);
    }

    #[test]
    fn the_log_keeps_what_an_outbox_still_needs_and_no_more() {
        let mut log = BroadcastLog::new();
        let mut slow = Outbox::new(&log);
        let mut fast = Outbox::new(&log);
        let frames: Vec<Vec<u8>> = (1..=4).map(|seq| broadcast(seq, 1000)).collect();
        for frame in &frames {
            log.push(frame, t0());
        }
        let mut socket = Socket::new(usize::MAX, usize::MAX);
        fast.write_to(&mut socket, &log).unwrap();
        let mut blocked = Socket::new(2500, usize::MAX);
        slow.write_to(&mut blocked, &log).unwrap();
        let needed = slow.log_needed().min(fast.log_needed());
        assert_eq!(needed, 2500);
        log.release_before(needed);
        assert_eq!(log.len(), 1500, "half or more was dead: released");
        blocked.room = usize::MAX;
        slow.write_to(&mut blocked, &log).unwrap();
        assert_eq!(blocked.written, frames.concat());
        log.release_before(slow.log_needed().min(fast.log_needed()));
        assert!(log.is_empty());
    }

    #[test]
    fn an_idle_outbox_gives_back_a_burst_but_keeps_a_steady_batch() {
        let log = BroadcastLog::new();
        let mut outbox = Outbox::new(&log);
        let mut socket = Socket::new(usize::MAX, usize::MAX);
        outbox.push(&[b'x'; 100_000], &log, t0());
        let written = outbox.write_to(&mut socket, &log).unwrap();
        outbox.shrink_if_idle(1024, written);
        assert!(
            outbox.own.capacity() >= 100_000,
            "a steady batch keeps its buffer"
        );
        outbox.push(b"1|P|2|3\n", &log, t0());
        let written = outbox.write_to(&mut socket, &log).unwrap();
        outbox.shrink_if_idle(1024, written);
        assert!(
            outbox.own.capacity() <= 1024,
            "an idle burst buffer is freed"
        );
    }

    #[test]
    fn a_reset_peer_is_an_error() {
        struct Reset;
        impl Write for Reset {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let log = BroadcastLog::new();
        let mut outbox = Outbox::new(&log);
        outbox.push(b"1|P|2|3\n", &log, t0());
        assert!(outbox.write_to(&mut Reset, &log).is_err());
    }

    /// One step of a client's life.
    #[derive(Debug, Clone)]
    enum Step {
        /// A broadcast of this many bytes.
        Broadcast(usize),
        /// A frame of its own of this many bytes.
        Own(usize),
        /// The socket takes up to `.0` bytes, at most `.1` per call.
        Write(usize, usize),
        /// The log lets go of what nobody needs.
        Release,
        /// Time passes: this many milliseconds.
        Advance(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (4usize..600).prop_map(Step::Broadcast),
            (4usize..40).prop_map(Step::Own),
            (0usize..3000, 1usize..2000).prop_map(|(room, per_call)| Step::Write(room, per_call)),
            Just(Step::Release),
            (0u64..250).prop_map(Step::Advance),
        ]
    }

    proptest! {
        /// Whatever the mix of broadcasts, own frames, partial writes,
        /// releases and time passing, the client receives exactly the frames
        /// it is owed, in order; `pending` is what it has yet to receive;
        /// and the oldest byte it owes reads as routed no later than it was,
        /// and less than two resolutions earlier.
        #[test]
        fn a_client_receives_exactly_its_frames_in_order(
            steps in proptest::collection::vec(step(), 1..200)
        ) {
            let mut now = t0();
            let mut log = BroadcastLog::new();
            let mut outbox = Outbox::new(&log);
            let mut expected = Vec::new();
            // Where each expected frame starts, and when it was routed.
            let mut routed: Vec<(usize, Instant)> = Vec::new();
            let mut socket = Socket::new(0, 1);
            for (seq, step) in steps.into_iter().enumerate() {
                match step {
                    Step::Broadcast(len) => {
                        let frame = broadcast(seq as u64, len);
                        log.push(&frame, now);
                        routed.push((expected.len(), now));
                        expected.extend_from_slice(&frame);
                    }
                    Step::Own(len) => {
                        let mut frame = format!("{seq}|P|1|2").into_bytes();
                        frame.resize(len.max(frame.len() + 1) - 1, b'y');
                        frame.push(b'\n');
                        outbox.push(&frame, &log, now);
                        routed.push((expected.len(), now));
                        expected.extend_from_slice(&frame);
                    }
                    Step::Write(room, per_call) => {
                        socket.room = room;
                        socket.per_call = per_call;
                        outbox.write_to(&mut socket, &log).unwrap();
                    }
                    Step::Release => log.release_before(outbox.log_needed()),
                    Step::Advance(millis) => now += std::time::Duration::from_millis(millis),
                }
                prop_assert_eq!(
                    outbox.pending(&log),
                    expected.len() - socket.written.len()
                );
                prop_assert_eq!(&socket.written[..], &expected[..socket.written.len()]);
                let oldest = socket.written.len();
                let truth = routed
                    .iter()
                    .take_while(|&&(start, _)| start <= oldest)
                    .last()
                    .filter(|_| oldest < expected.len())
                    .map(|&(_, at)| at);
                let read = outbox.oldest_owed_at(&log);
                prop_assert_eq!(read.is_some(), truth.is_some());
                if let (Some(read), Some(truth)) = (read, truth) {
                    prop_assert!(read <= truth, "read {:?} after the truth", read - t0());
                    prop_assert!(
                        truth - read < 2 * crate::engine::timeline::RESOLUTION,
                        "read {:?}, truth {:?}", read - t0(), truth - t0()
                    );
                }
            }
            socket.room = usize::MAX;
            outbox.write_to(&mut socket, &log).unwrap();
            prop_assert_eq!(socket.written, expected);
            log.release_before(outbox.log_needed());
            prop_assert!(log.is_empty(), "nothing needed is left");
        }
    }
}
