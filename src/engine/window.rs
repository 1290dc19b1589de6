//! The hole-tolerant reorder window: frames go in by sequence number in any
//! order and come out strictly in order.
//!
//! Storage is a ring of `capacity` slot indices (4 bytes each). A seq near
//! the next one (within `NEAR_SEQS`, 4,096, or half a smaller ring) whose
//! frame is short (at most `INLINE_BYTES`, 38, as event lines almost always
//! are) is held in a cell of a second, small ring, found by the seq alone:
//! holding and releasing it is one fixed-size copy in and one read out.
//! Any other frame goes to a pool of frame buffers, its slot naming the
//! buffer. A released buffer goes back to the pool with its capacity, so
//! once the pool has grown to the largest number of such frames held at
//! once, holding and releasing a frame allocates nothing either way.
//!
//! The window never waits forever. A *release floor* says "every seq below
//! this is given up on": [`ReorderWindow::pop`] skips missing seqs below it
//! instead of stopping. The floor rises in three cases: a frame arrives too
//! far ahead to fit ([`Push::NeedsRoom`]), the held bytes would pass their
//! budget (also `NeedsRoom`), or the caller decides a hole has waited long
//! enough ([`ReorderWindow::skip_hole`]). Every skipped seq is counted.
//!
//! Skipping costs the frames held, not the seqs skipped: a gap of any
//! width is crossed in one step to the lowest held seq, which the window
//! finds without walking the ring. Frames in buffers are kept in a min-heap
//! of their seqs (they leave in seq order, so the one released is always
//! its top); frames in near cells all lie within the near ring's span of
//! the next seq, which is scanned only while any are held. A source that
//! sends seqs a million apart therefore costs a heap operation per line.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::engine::protocol::Seq;

/// Marks an empty ring slot.
const EMPTY: u32 = u32::MAX;

/// Marks a ring slot whose frame is in its near cell.
const NEAR: u32 = u32::MAX - 1;

/// Seqs from the next one on that may be held in near cells: the span a
/// shuffled source keeps out of order (batches of up to 100 in the default
/// run, and in the original test client), with room to spare. A cell is 64
/// bytes with the usual metadata, so the near ring is 256 KiB.
const NEAR_SEQS: usize = 4096;

/// Longest frame held in a near cell: an event line with ten-digit seq and
/// ids (`1234567890|P|1234567890|1234567890\r\n` is 36 bytes) fits.
const INLINE_BYTES: usize = 38;

/// A near cell: one short frame and its metadata, stored inline.
#[derive(Debug, Clone, Copy)]
struct Cell<M> {
    /// The frame's metadata; `None` only before the cell is first used.
    meta: Option<M>,
    /// The frame's length.
    len: u8,
    /// The frame, at `bytes[..len]`.
    bytes: [u8; INLINE_BYTES],
}

/// Largest ring the window accepts: slot indices must stay below the
/// empty-slot marker, `u32::MAX`.
const MAX_CAPACITY: usize = 1 << 30;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Stored until its turn comes.
    Held,
    /// Its seq was already released or skipped; dropped.
    Late,
    /// Its seq is already held; the second copy is dropped.
    Duplicate,
    /// It is too far ahead to share the ring with the frames held. The floor
    /// has been raised: once everything [`ReorderWindow::pop`] yields has
    /// been popped, pushing it again succeeds.
    NeedsRoom,
}

/// Counts of what the window gave up on, for stats and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounters {
    /// Seqs that never arrived in time and were skipped.
    pub skipped: u64,
    /// Frames whose seq was already released or skipped.
    pub late: u64,
    /// Frames whose seq was already held.
    pub duplicates: u64,
    /// Steps of the window's slow paths: ring slots looked at to release a
    /// frame from a buffer, to cross a gap, or to find the lowest held seq.
    /// What a line costs beyond its own frame, counted so tests can bound
    /// it without a stopwatch.
    pub steps: u64,
}

/// Holds out-of-order frames and releases them in sequence order.
#[derive(Debug)]
pub struct ReorderWindow<M> {
    /// The next seq to release; everything below it is done.
    next: Seq,
    /// Seqs below this are released even when missing (see module docs).
    floor: Seq,
    /// `slots[seq & mask]` is the pool index holding `seq`, or [`EMPTY`].
    slots: Box<[u32]>,
    /// `capacity - 1`; the capacity is a power of two so a mask finds a slot.
    mask: u64,
    /// `near[seq & near_mask]` holds `seq` when its slot says [`NEAR`].
    near: Box<[Cell<M>]>,
    /// `near.len() - 1`; the near ring is a power of two no larger than
    /// half the capacity (or 1).
    near_mask: u64,
    /// Frame buffers with their metadata, reused; indices are stable while
    /// held.
    pool: Vec<(M, Vec<u8>)>,
    /// Pool indices not holding a frame.
    free: Vec<u32>,
    /// The seqs of the frames held in the pool, lowest on top; frames in
    /// near cells are the other `held - pooled.len()`.
    pooled: BinaryHeap<Reverse<Seq>>,
    /// Frames held now.
    held: usize,
    /// Bytes of the frames held now.
    held_bytes: usize,
    /// The highest seq held now (meaningful only while `held > 0`).
    highest: Seq,
    /// Budget for `held_bytes`; past it the oldest hole is skipped.
    max_bytes: usize,
    /// What was given up on so far.
    counters: WindowCounters,
}

impl<M: Copy> ReorderWindow<M> {
    /// A window for at least `capacity` seqs (rounded up to a power of two)
    /// holding at most `max_bytes` of frames, starting at seq 1.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY).next_power_of_two();
        // Half the ring at most: a small window (in tests) keeps both kinds
        // of storage in use.
        let near_seqs = (capacity / 2).clamp(1, NEAR_SEQS);
        let unused = Cell {
            meta: None,
            len: 0,
            bytes: [0; INLINE_BYTES],
        };
        ReorderWindow {
            next: 1,
            floor: 1,
            slots: vec![EMPTY; capacity].into_boxed_slice(),
            mask: capacity as u64 - 1,
            near: vec![unused; near_seqs].into_boxed_slice(),
            near_mask: near_seqs as u64 - 1,
            pool: Vec::new(),
            free: Vec::new(),
            pooled: BinaryHeap::new(),
            held: 0,
            held_bytes: 0,
            highest: 0,
            max_bytes,
            counters: WindowCounters::default(),
        }
    }

    /// The seq the window releases next.
    pub fn next_seq(&self) -> Seq {
        self.next
    }

    /// How many seqs fit between the next one and the farthest accepted.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Frames held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes of the frames held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// What the window has given up on so far.
    pub fn counters(&self) -> WindowCounters {
        self.counters
    }

    /// True when [`ReorderWindow::pop`] would release a frame now.
    pub fn is_ready(&self) -> bool {
        self.held > 0
            && (self.slots[(self.next & self.mask) as usize] != EMPTY || self.next < self.floor)
    }

    /// True when frames are held but the next seq is missing: a hole.
    pub fn is_waiting(&self) -> bool {
        self.held > 0 && !self.is_ready()
    }

    /// Gives up on every hole below the highest held seq, so
    /// [`ReorderWindow::pop`] releases every frame held now.
    ///
    /// Used when the stream ends for good (shutdown), so frames already
    /// received are delivered rather than dropped.
    pub fn release_all(&mut self) {
        if self.held > 0 {
            self.raise_floor(self.highest + 1);
        }
    }

    /// Starts again at seq 1; the counters are kept.
    ///
    /// Call [`ReorderWindow::release_all`] and pop first: frames still held
    /// are dropped here and counted as skipped.
    pub fn reset(&mut self) {
        self.start_at(1);
    }

    /// Starts again at seq `next`, as if every seq below it had been
    /// released (an ingest resuming a run the log already holds up to
    /// `next - 1`); frames still held are dropped and counted as skipped,
    /// the counters are kept.
    pub fn start_at(&mut self, next: Seq) {
        for slot in self.slots.iter_mut().filter(|slot| **slot != EMPTY) {
            if *slot != NEAR {
                self.free.push(*slot);
            }
            *slot = EMPTY;
        }
        self.counters.skipped = self.counters.skipped.saturating_add(self.held as u64);
        self.pooled.clear();
        self.held = 0;
        self.held_bytes = 0;
        self.next = next;
        self.floor = next;
        self.highest = 0;
    }

    /// True when [`ReorderWindow::bypass`] would take `seq`.
    #[inline]
    pub fn can_bypass(&self, seq: Seq) -> bool {
        seq == self.next && self.held == 0
    }

    /// Takes `seq` straight through when it is the next one and nothing is
    /// held: the common in-order case needs no copy into the window.
    pub fn bypass(&mut self, seq: Seq) -> bool {
        let next_and_empty = self.can_bypass(seq);
        if next_and_empty {
            self.next += 1;
            self.floor = self.floor.max(self.next);
        }
        next_and_empty
    }

    /// True when a frame of `len` bytes fits the byte budget (an empty
    /// window takes any frame).
    pub fn has_room_for(&self, len: usize) -> bool {
        self.held == 0 || self.held_bytes + len <= self.max_bytes
    }

    /// Stores `frame` (the exact bytes to forward) and `meta` (what the
    /// caller needs to act on it, e.g. the parsed event) under `seq`, which
    /// must be below `u64::MAX` (the parser refuses that one).
    #[inline(always)]
    pub fn push(&mut self, seq: Seq, meta: M, frame: &[u8]) -> Push {
        // The usual case, kept small enough to inline: a short frame near
        // the next seq (so neither late nor too far), not held yet, within
        // the byte budget.
        let slot = (seq & self.mask) as usize;
        let near =
            seq >= self.next && seq - self.next <= self.near_mask && frame.len() <= INLINE_BYTES;
        if near && self.slots[slot] == EMPTY && self.has_room_for(frame.len()) {
            self.hold_near(seq, meta, frame);
            self.slots[slot] = NEAR;
            return Push::Held;
        }
        self.push_slowly(seq, meta, frame)
    }

    /// [`ReorderWindow::push`] in every case.
    #[inline(never)]
    fn push_slowly(&mut self, seq: Seq, meta: M, frame: &[u8]) -> Push {
        if seq < self.next {
            self.counters.late = self.counters.late.saturating_add(1);
            return Push::Late;
        }
        let too_far = seq - self.next >= self.slots.len() as u64;
        if too_far {
            // Only seqs from `seq - capacity + 1` on can share the ring.
            self.raise_floor(seq - self.slots.len() as u64 + 1);
            return Push::NeedsRoom;
        }
        let slot = (seq & self.mask) as usize;
        if self.slots[slot] != EMPTY {
            self.counters.duplicates = self.counters.duplicates.saturating_add(1);
            return Push::Duplicate;
        }
        if self.held > 0 && self.held_bytes + frame.len() > self.max_bytes {
            // Over the byte budget: give up on the oldest hole. If this frame
            // lies in that hole, only the part before it is given up on, so
            // the frame that fills a hole is never the one dropped. The frame
            // is stored either way; the caller releases what this unblocked.
            let lowest_held = self.lowest_held();
            self.raise_floor(seq.min(lowest_held));
        }
        if seq - self.next <= self.near_mask && frame.len() <= INLINE_BYTES {
            self.hold_near(seq, meta, frame);
            self.slots[slot] = NEAR;
            return Push::Held;
        }
        self.held += 1;
        self.held_bytes += frame.len();
        self.highest = self.highest.max(seq);
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.pool.push((meta, Vec::new()));
                (self.pool.len() - 1) as u32
            }
        };
        let (stored_meta, buffer) = &mut self.pool[index as usize];
        *stored_meta = meta;
        if buffer.capacity() > 4 * frame.len().max(64) {
            // A buffer that once held a huge frame must not keep that
            // capacity for tiny ones: the byte budget counts frame lengths.
            *buffer = Vec::with_capacity(frame.len());
        }
        buffer.clear();
        buffer.extend_from_slice(frame);
        self.slots[slot] = index;
        self.pooled.push(Reverse(seq));
        Push::Held
    }

    /// Holds `frame` (at most [`INLINE_BYTES`]) of `seq` (within
    /// [`NEAR_SEQS`] of the next) in its near cell and counts it; the caller
    /// marks its slot [`NEAR`].
    #[inline(always)]
    fn hold_near(&mut self, seq: Seq, meta: M, frame: &[u8]) {
        self.held += 1;
        self.held_bytes += frame.len();
        self.highest = self.highest.max(seq);
        let cell = &mut self.near[(seq & self.near_mask) as usize];
        cell.meta = Some(meta);
        cell.len = frame.len() as u8;
        cell.bytes[..frame.len()].copy_from_slice(frame);
    }

    /// The next frame in sequence order, if it is here (or the seqs before it
    /// are below the floor and skipped).
    #[inline(always)]
    pub fn pop(&mut self) -> Option<(Seq, M, &[u8])> {
        // The usual case, kept small enough to inline: the next seq is here,
        // in its near cell.
        let slot = (self.next & self.mask) as usize;
        if self.slots[slot] == NEAR {
            self.slots[slot] = EMPTY;
            self.held -= 1;
            let seq = self.next;
            self.next += 1;
            let cell = &self.near[(seq & self.near_mask) as usize];
            let meta = cell.meta.expect("a cell marked held holds a frame");
            self.held_bytes -= usize::from(cell.len);
            return Some((seq, meta, &cell.bytes[..usize::from(cell.len)]));
        }
        self.pop_slowly()
    }

    /// [`ReorderWindow::pop`] when the next seq is not in a near cell: in a
    /// buffer, missing below the floor, or missing.
    #[inline(never)]
    fn pop_slowly(&mut self) -> Option<(Seq, M, &[u8])> {
        loop {
            self.counters.steps = self.counters.steps.saturating_add(1);
            let slot = (self.next & self.mask) as usize;
            let index = self.slots[slot];
            if index != EMPTY {
                self.slots[slot] = EMPTY;
                self.held -= 1;
                let seq = self.next;
                self.next += 1;
                let (meta, frame) = if index == NEAR {
                    let cell = &self.near[(seq & self.near_mask) as usize];
                    let meta = cell.meta.expect("a cell marked held holds a frame");
                    (meta, &cell.bytes[..usize::from(cell.len)])
                } else {
                    self.free.push(index);
                    let lowest = self.pooled.pop();
                    debug_assert_eq!(lowest, Some(Reverse(seq)), "buffers leave in seq order");
                    let (meta, frame) = &self.pool[index as usize];
                    (*meta, &frame[..])
                };
                self.held_bytes -= frame.len();
                return Some((seq, meta, frame));
            }
            if self.next >= self.floor {
                return None;
            }
            // Missing and given up on: cross the gap in one step, to the
            // next held frame or the floor, whichever comes first.
            let to = match self.held {
                0 => self.floor,
                _ => self.lowest_held().min(self.floor),
            };
            self.counters.skipped = self.counters.skipped.saturating_add(to - self.next);
            self.next = to;
        }
    }

    /// Crosses the gap below the floor when no frame is held: the seqs in
    /// it are skipped (and counted) at once, as [`ReorderWindow::pop`]
    /// would, since nothing is waiting to be released on the way.
    pub fn cross_gap_if_empty(&mut self) {
        if self.held == 0 && self.next < self.floor {
            let gap = self.floor - self.next;
            self.counters.skipped = self.counters.skipped.saturating_add(gap);
            self.next = self.floor;
        }
    }

    /// Gives up on the hole at the next seq: the floor rises to the lowest
    /// held seq, so [`ReorderWindow::pop`] skips the hole and releases the
    /// run after it. Does nothing when no frame is held (there is no known
    /// future to skip to).
    pub fn skip_hole(&mut self) {
        if self.held > 0 {
            let lowest_held = self.lowest_held();
            self.raise_floor(lowest_held);
        }
    }

    /// The lowest held seq; only meaningful while a frame is held. Costs a
    /// heap peek, plus a scan of the near ring's span while frames are held
    /// in near cells: never a walk over the seqs between.
    fn lowest_held(&mut self) -> Seq {
        let pooled = self.pooled.peek().map(|&Reverse(seq)| seq);
        if self.held == self.pooled.len() {
            return pooled.expect("a frame is held, in a buffer");
        }
        // Near cells hold seqs from `next` to `next + near_mask` at most:
        // they were that close when pushed, and `next` only grows.
        let near_end = self.next.saturating_add(self.near_mask + 1);
        let end = pooled.map_or(near_end, |seq| seq.min(near_end));
        let near = (self.next..end).find(|&seq| self.slots[(seq & self.mask) as usize] == NEAR);
        let looked_at = near.unwrap_or(end) - self.next + 1;
        self.counters.steps = self.counters.steps.saturating_add(looked_at);
        near.or(pooled)
            .expect("a frame is held, in a near cell or a buffer")
    }

    /// Raises the floor to `seq` (never lowers it).
    fn raise_floor(&mut self, seq: Seq) {
        self.floor = self.floor.max(seq);
    }
}

#[cfg(test)]
mod tests;
