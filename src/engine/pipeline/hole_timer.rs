//! How long a hole has held the stream up, counted in the source's
//! activity rather than on the clock.
//!
//! A missing seq is evidence of a lost line only while the source keeps
//! sending *other* lines: a source that is merely silent (a garbage
//! collector's pause, a descheduled process, a thread starved on a busy
//! machine) may send the missing line next. So while a source is
//! connected, time counts against a hole only while that source is heard
//! from:
//!
//! - Each read of the source that returns bytes credits the time since the
//!   last one (or since the hole began), up to [`ACTIVITY_QUANTUM`]: a
//!   source that streams has gaps far shorter than that between reads, so
//!   its holes wait exactly `timeout` of wall time; a silence longer than
//!   the quantum counts as the quantum only.
//! - The part of the quantum after the last read counts without another
//!   read, so a hole whose count is within a quantum of `timeout` expires
//!   on time even if the source then falls silent.
//! - A source that stays silent for `silence` with a hole open has the hole
//!   given up on all the same: a hung source must not hold back the events
//!   after the hole forever.
//! - A source that ends with a hole open did not send the missing line
//!   after its silence, so its silences were not pauses: when it goes, the
//!   hole's whole wait counts on the clock, from the moment the hole began.
//!   While no source is connected the wait runs on the clock: the missing
//!   line can only come from the next source, and once one connects its
//!   silences do not count again.
//!
//! The caller restarts the count after a back-pressure pause (the missing
//! line may have waited unread in the socket) and after progress (the next
//! hole starts its own wait).

use std::time::{Duration, Instant};

/// The longest silence between two reads of the source that counts in full
/// against a hole; a longer one counts as this much. Far above the gaps
/// between reads of a streaming source (microseconds to a few milliseconds,
/// a loop turn at most), far below the pauses of a stalled peer (a garbage
/// collection, a descheduled process: a second or more).
pub const ACTIVITY_QUANTUM: Duration = Duration::from_millis(100);

/// Why a hole's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The connected source sent other lines for the hole timeout.
    Active,
    /// The connected source was silent for the silence cap.
    Silent,
    /// No source was connected for what was left of the timeout.
    NoSource,
}

/// The wait of the hole that holds the stream up now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    /// When the wait began (or last started over).
    began: Instant,
    /// Time counted against the hole up to `since`.
    counted: Duration,
    /// True once its source went without sending the missing line, so its
    /// count is on the clock.
    clocked: bool,
    /// When the count was last brought up to date: the hole's start, the
    /// last read of the source, or the source's arrival or departure.
    since: Instant,
}

impl Wait {
    /// A wait that begins at `now` with nothing counted.
    fn new(now: Instant) -> Self {
        Wait {
            began: now,
            counted: Duration::ZERO,
            clocked: false,
            since: now,
        }
    }
}

/// The hole timer: started when a hole starts holding frames up, stopped
/// when it is gone, and credited with the source's activity.
#[derive(Debug, Clone)]
pub struct HoleTimer {
    /// Counted time after which a hole is skipped while its source sends.
    timeout: Duration,
    /// Silence of a connected source after which a hole is skipped.
    silence: Duration,
    /// Whether a source is connected (its silences do not count).
    source: bool,
    /// The current hole's wait, if a hole holds frames up.
    wait: Option<Wait>,
}

impl HoleTimer {
    /// A timer with no hole and no source, that skips a hole after
    /// `timeout` of counted time or `silence` of a silent source.
    pub fn new(timeout: Duration, silence: Duration) -> Self {
        HoleTimer {
            timeout,
            silence,
            source: false,
            wait: None,
        }
    }

    /// The hole timeout, for log lines.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The silence cap, for log lines.
    pub fn silence(&self) -> Duration {
        self.silence
    }

    /// True while a hole's wait runs.
    pub fn is_running(&self) -> bool {
        self.wait.is_some()
    }

    /// A hole holds frames up from `now`, unless one already did.
    pub fn start(&mut self, now: Instant) {
        self.wait.get_or_insert(Wait::new(now));
    }

    /// No hole holds frames up any more.
    pub fn stop(&mut self) {
        self.wait = None;
    }

    /// The running wait starts over at `now` (after progress, or after a
    /// pause in reading the source).
    pub fn restart(&mut self, now: Instant) {
        if self.wait.is_some() {
            self.wait = Some(Wait::new(now));
        }
    }

    /// The source delivered bytes at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.bring_up_to(now);
    }

    /// A source connected at `now`: from then on its silences do not count.
    pub fn source_connected(&mut self, now: Instant) {
        self.bring_up_to(now);
        self.source = true;
    }

    /// The source went at `now` without sending the missing line: the
    /// wait so far counts in full, and from then on runs on the clock.
    pub fn source_disconnected(&mut self, now: Instant) {
        self.source = false;
        if let Some(wait) = self.wait.as_mut() {
            wait.counted = now.saturating_duration_since(wait.began);
            wait.since = now.max(wait.since);
            wait.clocked = true;
        }
    }

    /// When the wait ends unless the source is heard from first; `None`
    /// with no hole, or while the source is connected and more than a
    /// quantum of counted time is left (only its reads can end the wait
    /// then, besides the silence cap).
    pub fn deadline(&self) -> Option<Instant> {
        let wait = self.wait?;
        let left = self.timeout.saturating_sub(wait.counted);
        // A limit too long for the clock is never reached.
        if !self.source {
            return wait.since.checked_add(left);
        }
        let silent = wait.since.checked_add(self.silence);
        let active = (left <= ACTIVITY_QUANTUM).then(|| wait.since + left);
        active.into_iter().chain(silent).min()
    }

    /// Whether the wait has ended by `now`, and why.
    pub fn expired(&self, now: Instant) -> Option<Expiry> {
        let wait = self.wait?;
        if self.deadline()? > now {
            return None;
        }
        let counted = wait.counted + self.credit(now.saturating_duration_since(wait.since));
        Some(
            if !self.source || (wait.clocked && wait.counted >= self.timeout) {
                // Overdue when its source went (a new one may have come since).
                Expiry::NoSource
            } else if counted >= self.timeout {
                Expiry::Active
            } else {
                Expiry::Silent
            },
        )
    }

    /// Counts the time from the wait's last update to `now`.
    fn bring_up_to(&mut self, now: Instant) {
        let credit = |since: Instant| self.credit(now.saturating_duration_since(since));
        if let Some(wait) = self.wait {
            self.wait = Some(Wait {
                counted: wait.counted.saturating_add(credit(wait.since)),
                since: now.max(wait.since),
                ..wait
            });
        }
    }

    /// What a stretch of `gap` since the last update counts: all of it with
    /// no source, at most a quantum of a connected source's silence.
    fn credit(&self, gap: Duration) -> Duration {
        if self.source {
            gap.min(ACTIVITY_QUANTUM)
        } else {
            gap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(1000);
    const SILENCE: Duration = Duration::from_millis(10_000);

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// What happens to a timer, at a time in milliseconds from the start.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Heard,
        Connected,
        Disconnected,
        Restart,
    }

    /// Starts a hole at 0 with a source connected (unless `connected` is
    /// false), applies `steps`, and returns when the hole expires (the first
    /// millisecond `expired` says so, checked every millisecond up to 60 s)
    /// and why.
    fn expiry(connected: bool, steps: &[(u64, Step)]) -> Option<(u64, Expiry)> {
        let t0 = Instant::now();
        let mut timer = HoleTimer::new(TIMEOUT, SILENCE);
        if connected {
            timer.source_connected(t0);
        }
        timer.start(t0);
        let mut steps = steps.iter().peekable();
        for at in 0..=60_000 {
            let now = t0 + ms(at);
            while let Some((_, step)) = steps.next_if(|(when, _)| *when == at) {
                match step {
                    Step::Heard => timer.heard(now),
                    Step::Connected => timer.source_connected(now),
                    Step::Disconnected => timer.source_disconnected(now),
                    Step::Restart => timer.restart(now),
                }
            }
            if let Some(why) = timer.expired(now) {
                assert!(
                    timer.deadline().is_some_and(|d| d <= now),
                    "the deadline says so too"
                );
                return Some((at, why));
            }
        }
        None
    }

    /// A read every `every` ms from `from` to `to`, inclusive.
    fn reads(from: u64, to: u64, every: u64) -> Vec<(u64, Step)> {
        (from..=to)
            .step_by(every as usize)
            .map(|at| (at, Step::Heard))
            .collect()
    }

    #[test]
    fn a_streaming_source_has_its_hole_skipped_at_the_timeout() {
        assert_eq!(
            expiry(true, &reads(1, 5000, 1)),
            Some((1000, Expiry::Active))
        );
        // Reads 50 ms apart count in full too.
        assert_eq!(
            expiry(true, &reads(50, 5000, 50)),
            Some((1000, Expiry::Active))
        );
    }

    #[test]
    fn a_silence_counts_as_one_quantum() {
        // 500 ms of reads, 2.5 s of silence (a quantum of it counts), then
        // reads again: the hole needs 400 ms more of them.
        let mut steps = reads(1, 500, 1);
        steps.extend(reads(3000, 9000, 1));
        assert_eq!(expiry(true, &steps), Some((3400, Expiry::Active)));
    }

    #[test]
    fn the_last_quantum_counts_without_another_read() {
        // 950 ms counted, then silence: the hole expires 50 ms later.
        assert_eq!(
            expiry(true, &reads(1, 950, 1)),
            Some((1000, Expiry::Active))
        );
    }

    #[test]
    fn a_silent_source_has_its_hole_skipped_at_the_silence_cap() {
        assert_eq!(expiry(true, &[]), Some((10_000, Expiry::Silent)));
        // The cap counts from the last read.
        assert_eq!(
            expiry(true, &reads(1, 300, 1)),
            Some((10_300, Expiry::Silent))
        );
    }

    #[test]
    fn a_trickling_source_counts_a_quantum_per_read() {
        // A read every 500 ms counts 100 ms each: nine reads, then the
        // quantum after the ninth.
        assert_eq!(
            expiry(true, &reads(500, 60_000, 500)),
            Some((4600, Expiry::Active))
        );
    }

    #[test]
    fn with_no_source_the_wait_runs_on_the_clock() {
        assert_eq!(expiry(false, &[]), Some((1000, Expiry::NoSource)));
        // 300 ms of reads, then the source goes: 700 ms later.
        let mut steps = reads(1, 300, 1);
        steps.push((300, Step::Disconnected));
        assert_eq!(expiry(true, &steps), Some((1000, Expiry::NoSource)));
    }

    #[test]
    fn a_source_that_ends_had_its_silences_counted_all_along() {
        // Silent 300 ms, then gone: the hole began 1 s before 1000.
        assert_eq!(
            expiry(true, &[(300, Step::Disconnected)]),
            Some((1000, Expiry::NoSource))
        );
        // Silent 5 s, then gone: given up on as it goes.
        assert_eq!(
            expiry(true, &[(5000, Step::Disconnected)]),
            Some((5000, Expiry::NoSource))
        );
        // A wait that started over counts from its restart.
        assert_eq!(
            expiry(true, &[(800, Step::Restart), (900, Step::Disconnected)]),
            Some((1800, Expiry::NoSource))
        );
    }

    #[test]
    fn a_hole_overdue_when_its_source_went_is_skipped_even_if_another_came() {
        // Gone 1.5 s after the hole began, a new source at once: overdue.
        assert_eq!(
            expiry(true, &[(1500, Step::Disconnected), (1500, Step::Connected)]),
            Some((1500, Expiry::NoSource))
        );
    }

    #[test]
    fn a_limit_too_long_for_the_clock_is_never_reached() {
        let t0 = Instant::now();
        let mut timer = HoleTimer::new(Duration::MAX, Duration::MAX);
        timer.source_connected(t0);
        timer.start(t0);
        assert_eq!(timer.deadline(), None);
        assert_eq!(timer.expired(t0 + ms(60_000)), None);
        timer.source_disconnected(t0 + ms(10));
        assert_eq!(timer.deadline(), None);
    }

    #[test]
    fn a_new_source_stops_the_clock() {
        // Gone at 0, back at 400 (400 ms counted), then silent.
        assert_eq!(
            expiry(false, &[(400, Step::Connected)]),
            Some((10_400, Expiry::Silent))
        );
    }

    #[test]
    fn a_restart_starts_the_count_over() {
        let mut steps = reads(1, 900, 1);
        steps.push((900, Step::Restart));
        steps.extend(reads(901, 5000, 1));
        assert_eq!(expiry(true, &steps), Some((1900, Expiry::Active)));
    }

    #[test]
    fn no_hole_no_deadline() {
        let mut timer = HoleTimer::new(TIMEOUT, SILENCE);
        let t0 = Instant::now();
        timer.source_connected(t0);
        timer.heard(t0 + ms(10));
        assert_eq!(timer.deadline(), None);
        assert_eq!(timer.expired(t0 + ms(60_000)), None);
        timer.start(t0 + ms(20));
        timer.stop();
        assert!(!timer.is_running());
        timer.restart(t0 + ms(30));
        assert!(!timer.is_running(), "a restart starts no wait");
    }
}
