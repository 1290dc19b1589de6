//! Accepting paused after the process ran out of descriptors or memory.
//!
//! An `accept` that fails with `EMFILE` leaves the connection in the
//! kernel's queue, so the listener stays readable and retrying at once
//! would spin the loop. Accepting pauses instead, for a time that doubles
//! while failures go on (as NATS does: 10 ms up to 1 s), and the
//! connections already open are served throughout.

use std::time::{Duration, Instant};

/// The first pause after a failed accept.
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause, however many failures in a row.
pub(super) const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Whether accepting is paused, until when, and for how long next time.
#[derive(Debug)]
pub(super) struct AcceptPause {
    /// Accepting resumes then; `None` while it is not paused.
    until: Option<Instant>,
    /// The pause after the next failure.
    next: Duration,
    /// Accepts that failed for lack of descriptors or memory.
    pub(super) failures: u64,
}

impl AcceptPause {
    /// Not paused.
    pub(super) fn new() -> Self {
        AcceptPause {
            until: None,
            next: FIRST_PAUSE,
            failures: 0,
        }
    }

    /// True while no accept should be tried.
    pub(super) fn is_paused(&self) -> bool {
        self.until.is_some()
    }

    /// An accept failed at `now`: pauses, and returns for how long.
    pub(super) fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let pause = self.next;
        self.next = (pause * 2).min(LONGEST_PAUSE);
        self.until = now.checked_add(pause);
        pause
    }

    /// An accept succeeded: the next failure starts the back-off over.
    pub(super) fn succeeded(&mut self) {
        self.next = FIRST_PAUSE;
    }

    /// When accepting resumes, while paused.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.until
    }

    /// Ends a pause that is over at `now`; true if one just ended (the
    /// listeners must be tried again: their readiness will not be reported
    /// again for connections already queued).
    pub(super) fn resume_if_due(&mut self, now: Instant) -> bool {
        let due = self.until.is_some_and(|until| until <= now);
        if due {
            self.until = None;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_start_over_after_a_success() {
        let start = Instant::now();
        let mut pause = AcceptPause::new();
        let ms = Duration::from_millis;
        let mut now = start;
        let mut taken = Vec::new();
        for _ in 0..9 {
            assert!(!pause.is_paused());
            let length = pause.failed(now);
            taken.push(length.as_millis());
            assert!(pause.is_paused());
            assert!(!pause.resume_if_due(now + length - ms(1)), "too early");
            now += length;
            assert!(pause.resume_if_due(now), "due");
        }
        assert_eq!(taken, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(pause.failures, 9);
        pause.succeeded();
        assert_eq!(pause.failed(now), FIRST_PAUSE);
    }
}
