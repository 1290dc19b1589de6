//! When each part of a byte stream was routed, to within
//! [`RESOLUTION`]: enough to tell how long ago the oldest byte a client still
//! owes was routed, which is how far it lags the stream.
//!
//! Positions are absolute byte offsets in one stream (the broadcast log, or
//! one outbox's own frames) and only grow. A mark `(position, at)` says the
//! bytes from `position` on were routed at `at` or later, so reading the
//! mark at or before a position can only overstate how old that byte is, by
//! less than the resolution: a lag bound then errs on the early side by at
//! most that much, never late.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Marks closer together than this are merged into the earlier one, so a
/// stream keeps at most one mark per resolution of the time its oldest
/// byte has waited, however many frames it carries.
pub const RESOLUTION: Duration = Duration::from_millis(100);

/// Routing times of a byte stream's positions, coarse, oldest first.
#[derive(Debug, Default)]
pub struct Timeline {
    /// `(position, at)`, both non-decreasing: bytes from `position` up to
    /// the next mark's position were routed at `at` or later.
    marks: VecDeque<(u64, Instant)>,
}

impl Timeline {
    /// An empty timeline (no allocation until the first mark).
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the bytes about to be appended at `position` were routed
    /// at `at`. Called before every append; costs a comparison unless the
    /// last mark is a resolution old.
    pub fn mark(&mut self, position: u64, at: Instant) {
        match self.marks.back_mut() {
            // Nothing was appended since that mark: it stands for these bytes.
            Some(last) if last.0 == position => last.1 = last.1.max(at),
            Some(&mut (_, last)) if at.saturating_duration_since(last) < RESOLUTION => {}
            _ => self.marks.push_back((position, at)),
        }
    }

    /// When the byte at `position` was routed, at the latest; `None` if no
    /// mark covers it (nothing was ever marked at or before it).
    pub fn routed_at(&self, position: u64) -> Option<Instant> {
        let after = self.marks.partition_point(|&(at, _)| at <= position);
        after.checked_sub(1).map(|index| self.marks[index].1)
    }

    /// The marks that cover `start..end`, as `(position, at)` with the first
    /// one moved up to `start`: what a copy of those bytes should be marked
    /// with to keep their times.
    pub fn marks_within(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, Instant)> + '_ {
        let first = self
            .marks
            .partition_point(|&(at, _)| at <= start)
            .saturating_sub(1);
        self.marks
            .range(first..)
            .take_while(move |&&(position, _)| position < end)
            .map(move |&(position, at)| (position.max(start), at))
    }

    /// Forgets the marks that only cover bytes before `position` (they were
    /// written or released); the mark covering `position` stays.
    pub fn forget_before(&mut self, position: u64) {
        while self.marks.len() >= 2 && self.marks[1].0 <= position {
            self.marks.pop_front();
        }
    }

    /// Marks held (for tests of the memory bound).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_position_reads_the_mark_at_or_before_it() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        timeline.mark(0, t0);
        timeline.mark(100, t0 + ms(500));
        timeline.mark(250, t0 + ms(900));
        let table = [
            (0, Some(t0)),
            (99, Some(t0)),
            (100, Some(t0 + ms(500))),
            (249, Some(t0 + ms(500))),
            (250, Some(t0 + ms(900))),
            (10_000, Some(t0 + ms(900))),
        ];
        for (position, expected) in table {
            assert_eq!(
                timeline.routed_at(position),
                expected,
                "position {position}"
            );
        }
    }

    #[test]
    fn nothing_marked_before_a_position_is_unknown() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        assert_eq!(timeline.routed_at(0), None);
        timeline.mark(10, t0);
        assert_eq!(timeline.routed_at(9), None);
        assert_eq!(timeline.routed_at(10), Some(t0));
    }

    #[test]
    fn marks_within_the_resolution_merge_into_the_older_one() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        for i in 0..1000 {
            // A frame every 10 µs for 10 ms: one mark.
            timeline.mark(i * 10, t0 + Duration::from_micros(i * 10));
        }
        assert_eq!(timeline.len(), 1);
        // Overstated age, never understated: byte 9_990 reads as routed at t0.
        assert_eq!(timeline.routed_at(9_990), Some(t0));
        timeline.mark(10_000, t0 + RESOLUTION);
        assert_eq!(timeline.len(), 2);
    }

    #[test]
    fn a_mark_with_nothing_appended_since_is_moved_not_duplicated() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        timeline.mark(5, t0);
        timeline.mark(5, t0 + ms(300));
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline.routed_at(5), Some(t0 + ms(300)));
    }

    #[test]
    fn a_range_reads_the_marks_that_cover_it() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        for (i, position) in [0, 100, 200, 300].into_iter().enumerate() {
            timeline.mark(position, t0 + ms(200 * i as u64));
        }
        let within: Vec<_> = timeline.marks_within(150, 300).collect();
        assert_eq!(within, [(150, t0 + ms(200)), (200, t0 + ms(400))]);
        let within: Vec<_> = timeline.marks_within(0, 50).collect();
        assert_eq!(within, [(0, t0)]);
    }

    #[test]
    fn forgetting_keeps_the_mark_that_covers_the_position() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new();
        for (i, position) in [0, 100, 200, 300].into_iter().enumerate() {
            timeline.mark(position, t0 + ms(200 * i as u64));
        }
        timeline.forget_before(150);
        assert_eq!(timeline.len(), 3);
        assert_eq!(timeline.routed_at(150), Some(t0 + ms(200)));
        timeline.forget_before(300);
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline.routed_at(300), Some(t0 + ms(600)));
        timeline.forget_before(1_000);
        assert_eq!(timeline.len(), 1, "the last mark covers what comes next");
    }
}
