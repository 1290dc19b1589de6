//! How a run shows its progress: a live bar for a person at a terminal, the
//! original client's plain lines for everything else.
//!
//! When stderr is a terminal the run draws an [`indicatif`] bar there:
//! events sent out of the total (with the current rate and an ETA),
//! notifications verified out of those expected so far, and the expectations
//! still pending. When stderr is not a terminal (a script, CI, a pipe), or
//! with `--plain-progress`, the run logs the original client's plain line
//! every `logInterval` instead, through `log` as before. `--log-interval 0`
//! turns progress off either way. [`progress_display`] makes that choice.
//!
//! The bar is updated from the run's loop at most every [`BAR_REFRESH`],
//! on the loop's clock, never per event; log lines written while it is
//! shown go through [`Bar::suspend`] so they do not tear it. (With
//! `--demo` the server writes its own log lines to the same terminal; one
//! written while the bar is drawn can leave a stale copy of the bar above
//! it. `--plain-progress` avoids that.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{
    HumanCount, HumanFloatCount, ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressState,
    ProgressStyle,
};

/// How often the bar is given new counts, at most.
pub const BAR_REFRESH: Duration = Duration::from_millis(100);

/// Redraws per second the bar allows itself (indicatif's own limit, over
/// [`BAR_REFRESH`]).
const BAR_HZ: u8 = 10;

/// The bar's layout, on two lines so that it mostly fits a terminal of 80
/// columns (a longer line wraps, and indicatif counts the wrapped rows when
/// it redraws): the elapsed time, the bar (as wide as the terminal allows) and the
/// events sent out of the total; then the events' current rate (indicatif's
/// smoothed estimate) and the ETA, and the notifications
/// ([`Counts::message`]).
const BAR_TEMPLATE: &str = "[{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events sent\n\
    {rate} events/s, ETA {eta}; {notifications}";

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressDisplay {
    /// Not at all (`--log-interval 0`).
    Off,
    /// The original client's plain line every `logInterval`, logged.
    Lines,
    /// A live bar on stderr.
    Bar,
}

/// The display for a run: nothing when `log_interval` is zero; else plain
/// lines when `plain` (`--plain-progress`) is set or stderr is not a
/// terminal; else the bar.
pub fn progress_display(
    stderr_is_terminal: bool,
    log_interval: Duration,
    plain: bool,
) -> ProgressDisplay {
    if log_interval.is_zero() {
        ProgressDisplay::Off
    } else if plain || !stderr_is_terminal {
        ProgressDisplay::Lines
    } else {
        ProgressDisplay::Bar
    }
}

/// The counts one update of the bar shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Events fully written.
    pub events: u64,
    /// Notifications verified.
    pub verified: u64,
    /// Expectations not yet met, over all clients.
    pub pending: u64,
}

impl Counts {
    /// The bar's message: notifications verified out of those expected so
    /// far (verified plus pending), and the pending ones.
    pub fn message(&self) -> String {
        format!(
            "{}/{} notifications verified, {} pending",
            HumanCount(self.verified),
            HumanCount(self.verified + self.pending),
            HumanCount(self.pending)
        )
    }
}

/// The live bar on stderr. Dropped unfinished (a run that ends early), it
/// clears itself all the same.
#[derive(Debug)]
pub struct Bar {
    /// indicatif's bar, its length the run's total events, its position
    /// the events sent.
    bar: ProgressBar,
    /// The notification counts its `{notifications}` key shows. They are
    /// stored before the position is set, and only setting the position
    /// draws: one draw per update shows all the counts of that update
    /// (indicatif draws on `set_message` too, so a message would be drawn
    /// with the previous position, and its rate limit could skip the
    /// second draw).
    notifications: Arc<Notifications>,
}

/// The notification counts, as the bar's key reads them.
#[derive(Debug, Default)]
struct Notifications {
    /// Notifications verified.
    verified: AtomicU64,
    /// Expectations pending.
    pending: AtomicU64,
}

impl Bar {
    /// A bar for a run of `total_events`, drawn on stderr.
    pub fn new(total_events: u64) -> Bar {
        Bar::with_target(total_events, ProgressDrawTarget::stderr_with_hz(BAR_HZ))
    }

    /// A bar for `total_events` drawn on `target`.
    fn with_target(total_events: u64, target: ProgressDrawTarget) -> Bar {
        let notifications = Arc::new(Notifications::default());
        let shown = Arc::clone(&notifications);
        let style = ProgressStyle::with_template(BAR_TEMPLATE)
            .expect("the bar's template is valid")
            .with_key(
                "rate",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{:.0}", HumanFloatCount(state.per_sec()));
                },
            )
            .with_key(
                "notifications",
                move |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let counts = Counts {
                        events: state.pos(),
                        verified: shown.verified.load(Ordering::Relaxed),
                        pending: shown.pending.load(Ordering::Relaxed),
                    };
                    let _ = out.write_str(&counts.message());
                },
            )
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total_events), target)
            .with_style(style)
            .with_finish(ProgressFinish::AndClear);
        Bar { bar, notifications }
    }

    /// Shows `counts`: one draw, unless indicatif's rate limit skips it.
    pub fn update(&self, counts: Counts) {
        let notifications = &self.notifications;
        notifications
            .verified
            .store(counts.verified, Ordering::Relaxed);
        notifications
            .pending
            .store(counts.pending, Ordering::Relaxed);
        self.bar.set_position(counts.events);
    }

    /// The counts the bar shows.
    pub fn counts(&self) -> Counts {
        Counts {
            events: self.bar.position(),
            verified: self.notifications.verified.load(Ordering::Relaxed),
            pending: self.notifications.pending.load(Ordering::Relaxed),
        }
    }

    /// Clears the bar for good: what is printed next starts on a clean
    /// line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Runs `f` (a log line, say) with the bar hidden, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_terminal_gets_the_bar() {
        assert_eq!(progress_display(true, SECOND, false), ProgressDisplay::Bar);
        assert_eq!(
            progress_display(true, Duration::from_millis(1), false),
            ProgressDisplay::Bar
        );
    }

    #[test]
    fn anything_but_a_terminal_gets_the_plain_lines() {
        assert_eq!(
            progress_display(false, SECOND, false),
            ProgressDisplay::Lines
        );
        assert_eq!(
            progress_display(false, SECOND, true),
            ProgressDisplay::Lines
        );
    }

    #[test]
    fn plain_progress_forces_the_lines_on_a_terminal() {
        assert_eq!(progress_display(true, SECOND, true), ProgressDisplay::Lines);
    }

    #[test]
    fn a_zero_log_interval_turns_progress_off_everywhere() {
        for terminal in [false, true] {
            for plain in [false, true] {
                assert_eq!(
                    progress_display(terminal, Duration::ZERO, plain),
                    ProgressDisplay::Off,
                    "terminal {terminal}, plain {plain}"
                );
            }
        }
    }

    #[test]
    fn the_message_counts_what_is_expected_so_far() {
        let counts = Counts {
            events: 10,
            verified: 120,
            pending: 30,
        };
        assert_eq!(
            counts.message(),
            "120/150 notifications verified, 30 pending"
        );
        let large = Counts {
            events: 10,
            verified: 1_999_000,
            pending: 1_000,
        };
        assert_eq!(
            large.message(),
            "1,999,000/2,000,000 notifications verified, 1,000 pending"
        );
    }

    #[test]
    fn the_bar_takes_the_counts_and_finishes_cleared() {
        let bar = Bar::with_target(1000, ProgressDrawTarget::hidden());
        bar.update(Counts {
            events: 250,
            verified: 40,
            pending: 2,
        });
        assert_eq!(
            bar.counts(),
            Counts {
                events: 250,
                verified: 40,
                pending: 2,
            }
        );
        assert_eq!(bar.bar.length(), Some(1000));
        assert!(!bar.bar.is_finished());
        bar.finish();
        assert!(bar.bar.is_finished());
    }
}
