//! The wait before trying again after a failure: doubling from a first wait
//! up to a cap, and back to the first after a success.
//!
//! Both bridges retry against a server that may be restarting: the first
//! retry comes soon, so a blip costs little, and later ones slow down, so a
//! server that stays away is not hammered. A plain value with no clock, so
//! that the machines holding one stay sans-IO and their tests can count
//! the waits.

use std::time::Duration;

/// The waits between attempts at one thing that keeps failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    /// The wait after the first failure, and again after a success.
    first: Duration,
    /// The longest wait, however many failures came before.
    max: Duration,
    /// The wait after the next failure.
    next: Duration,
}

impl Backoff {
    /// Waits that start at `first` and double up to `max`.
    pub(super) const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// An attempt failed: the wait before the next one. The wait after the
    /// failure that follows is twice as long, up to the cap.
    pub(super) fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// An attempt worked: the next failure waits the first wait again, as a
    /// new problem rather than the old one going on.
    pub(super) fn succeeded(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_success() {
        let mut backoff = Backoff::new(ms(100), ms(2000));
        let waits: Vec<_> = (0..7).map(|_| backoff.failed()).collect();
        assert_eq!(
            waits,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(2000),
                ms(2000)
            ]
        );
        backoff.succeeded();
        assert_eq!(backoff.failed(), ms(100));
        assert_eq!(backoff.failed(), ms(200));
    }
}
