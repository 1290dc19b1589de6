//! Rate limiting for log lines a peer can trigger at will.

use std::time::{Duration, Instant};

/// Allows a few log lines per second for one kind of problem and counts the
/// rest, so a flood of bad input cannot flood the log.
#[derive(Debug)]
pub struct LogLimit {
    /// Start of the current one-second window.
    window: Instant,
    /// Lines logged in the current window.
    logged: u32,
    /// Lines suppressed in the current window.
    suppressed: u64,
}

impl LogLimit {
    /// Lines allowed per second.
    const PER_SECOND: u32 = 10;

    /// A limit whose first window starts `now`.
    pub fn new(now: Instant) -> Self {
        LogLimit {
            window: now,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether to log one more line now. When a new second begins, the
    /// number of lines suppressed in the last one is logged first.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                log::warn!("{} similar log lines suppressed", self.suppressed);
            }
            *self = LogLimit::new(now);
        }
        self.logged += 1;
        let allowed = self.logged <= Self::PER_SECOND;
        if !allowed {
            self.suppressed += 1;
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_ten_a_second() {
        let start = Instant::now();
        let mut limit = LogLimit::new(start);
        let allowed = (0..25).filter(|_| limit.allow(start)).count();
        assert_eq!(allowed, 10);
        assert!(limit.allow(start + Duration::from_secs(1)));
    }
}
