//! Why a client connection ends, and the one rule that decides when a
//! registered client is cut for not keeping up.
//!
//! Slow is not stuck. A client that reads, however slowly, is left alone:
//! once it owes more than half its output limit (its own frames and its
//! share of the broadcast log together) while bytes are still being written
//! to it, it *holds* the source: the server stops reading the event source
//! until it has caught up, so the source slows to its pace (the shared
//! output budget does the same for all clients together). A client that
//! stops reading lets go of the source after [`HOLD_GRACE`], so it stalls
//! the others for no longer than that, and is left to the cuts. A client is
//! cut only when it
//! - makes no write progress for the write deadline while it owes bytes
//!   (it does not read: NATS calls this its write deadline),
//! - has more queued for it alone (its own frames, not its share of the
//!   broadcast log) than the output limit (Redis's `client-output-buffer-limit`),
//! - or lags the stream by more than the lag bound: the oldest byte it owes
//!   was routed longer ago than that, so one crawling reader cannot hold the
//!   source paused for everyone forever.
//!
//! A client that owes nothing is never cut, however long it stays idle.

use std::fmt;
use std::time::{Duration, Instant};

/// How recently bytes must have been written to a client for it to hold
/// the source: long enough to cover a reader descheduled on a busy machine,
/// short enough that a client that stopped reading stalls the others for
/// about a second (NATS stalls a producer for milliseconds per slow
/// consumer; we hold only for clients that still read).
pub const HOLD_GRACE: Duration = Duration::from_secs(1);

/// Why a registered client was cut for not keeping up. Declared in the
/// order of [`Cut::ALL`], so `cut as usize` indexes per-reason counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cut {
    /// It owed bytes and none could be written for the write deadline.
    WriteDeadline,
    /// More bytes were queued for it alone than the output limit.
    OutputLimit,
    /// The oldest byte it owed was routed longer ago than the lag bound.
    Lag,
}

impl Cut {
    /// Every reason, in the order stats list them.
    pub const ALL: [Cut; 3] = [Cut::WriteDeadline, Cut::OutputLimit, Cut::Lag];

    /// A short name for logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            Cut::WriteDeadline => "write deadline",
            Cut::OutputLimit => "output limit",
            Cut::Lag => "lag",
        }
    }
}

/// Why a client connection is closed: drives the log line, and for cuts,
/// the per-reason counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// It closed (or reset) before sending a complete id line.
    ClosedBeforeId,
    /// Its id line was not a valid id, or too long.
    BadId,
    /// It sent no id line within the id timeout.
    NoIdInTime,
    /// Its id arrived while `--max-clients` were registered.
    ClientLimit,
    /// It had sent no id yet and `--max-pending-clients` were waiting when
    /// a newer connection came: the one that waited longest goes.
    Evicted,
    /// Reading from it failed.
    ReadError,
    /// The connection was reset or hung up: it is gone (a client that
    /// closed is found out this way once something is written to it).
    Gone,
    /// Writing to it failed: it is gone.
    WriteError,
    /// It was cut for not keeping up.
    Cut(Cut),
    /// The server is shutting down.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            CloseReason::ClosedBeforeId => "closed before sending its id",
            CloseReason::BadId => "bad id line",
            CloseReason::NoIdInTime => "no id in time",
            CloseReason::ClientLimit => "client limit reached",
            CloseReason::Evicted => "evicted by a newer connection (pending limit reached)",
            CloseReason::ReadError => "read error",
            CloseReason::Gone => "connection reset or hung up",
            CloseReason::WriteError => "write error",
            CloseReason::Cut(cut) => return write!(f, "slow consumer ({})", cut.name()),
            CloseReason::Shutdown => "shutdown",
        };
        f.write_str(text)
    }
}

/// The limits a registered client must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerLimits {
    /// Longest a client may owe bytes without any being written.
    pub write_deadline: Duration,
    /// Longest ago the oldest byte a client owes may have been routed.
    pub max_lag: Duration,
    /// Most bytes queued for one client alone (its share of the broadcast
    /// log not included); past half of it, counting its share of the log
    /// too, a client that still reads holds the source.
    pub output_limit: usize,
}

/// What the rule needs to know about one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerState {
    /// Bytes queued for it alone.
    pub own_bytes: usize,
    /// Bytes it owes: its own, and its share of the broadcast log.
    pub pending: usize,
    /// When bytes were last written to it, or when it last began to owe
    /// after owing nothing, whichever is later.
    pub last_progress: Instant,
    /// When the oldest byte it owes was routed, if it owes any.
    pub oldest_owed_at: Option<Instant>,
}

impl ConsumerState {
    /// True when it owes any bytes.
    pub fn owes(&self) -> bool {
        self.pending > 0
    }
}

impl ConsumerLimits {
    /// The verdict on `client` at `now`: `None` to keep it, or why to cut it.
    /// A client over several limits at once is cut for the first in the
    /// order of the fields of [`ConsumerLimits`]'s doc: output, then write
    /// progress, then lag.
    pub fn verdict(&self, client: &ConsumerState, now: Instant) -> Option<Cut> {
        if client.own_bytes > self.output_limit {
            return Some(Cut::OutputLimit);
        }
        if !client.owes() {
            return None;
        }
        if now.saturating_duration_since(client.last_progress) >= self.write_deadline {
            return Some(Cut::WriteDeadline);
        }
        let lag = client
            .oldest_owed_at
            .map(|routed| now.saturating_duration_since(routed));
        if lag.is_some_and(|lag| lag > self.max_lag) {
            return Some(Cut::Lag);
        }
        None
    }

    /// True when `client` holds the source paused at `now`: it owes more
    /// than half its output limit and bytes were written to it within
    /// [`HOLD_GRACE`].
    pub fn holds_source(&self, client: &ConsumerState, now: Instant) -> bool {
        client.pending > self.output_limit / 2
            && now.saturating_duration_since(client.last_progress) < HOLD_GRACE
    }

    /// The earliest time the verdict on `client`, or whether it holds the
    /// source, can change without it changing first (writes and new frames
    /// only move these later); `None` if it owes nothing. Always after
    /// `now` for a client the verdict keeps.
    pub fn next_check(&self, client: &ConsumerState, now: Instant) -> Option<Instant> {
        if !client.owes() {
            return None;
        }
        let stuck = client.last_progress + self.write_deadline;
        let lagging = client
            .oldest_owed_at
            .map(|routed| routed + self.max_lag + Duration::from_nanos(1));
        let hold_ends = self
            .holds_source(client, now)
            .then(|| client.last_progress + HOLD_GRACE);
        [Some(stuck), lagging, hold_ends]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Bytes a client that can be written may gain in one turn (its own
/// frames, or broadcasts): past it the turn ends, so it is written before it
/// is given more and output leaves in steady batches instead of one burst.
pub const TURN_OUTPUT_BYTES: usize = 2 * 1024 * 1024;

/// A registered client's fate, judged from its state at `now`: the one
/// answer [`ConsumerLimits::fate`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It stays.
    Keep {
        /// True while it stalls the source: far behind, still reading.
        holds_source: bool,
        /// When to judge it again; `None` if it owes nothing.
        next_check: Option<Instant>,
    },
    /// It is cut, for this reason.
    Cut(Cut),
}

/// What queueing one more frame for a client does, decided before the frame
/// is queued: the one answer [`ConsumerLimits::admit`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queue it.
    Queue {
        /// Write (or, if blocked, judge) the client at the end of the turn:
        /// it owed nothing before, or now owes enough to hold the source.
        write: bool,
        /// End the turn: the client should be written (and judged) before
        /// anything more is routed.
        end_turn: bool,
    },
    /// Do not queue it: the client is cut.
    Cut(Cut),
}

/// What [`ConsumerLimits::admit`] needs to know about a client before a
/// frame is queued for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owing {
    /// Bytes queued for it alone.
    pub own_bytes: usize,
    /// Bytes it owes: its own, and its share of the broadcast log.
    pub pending: usize,
    /// True when its last write would have blocked.
    pub write_blocked: bool,
}

impl ConsumerLimits {
    /// The whole verdict on `client` at `now`: cut (see
    /// [`ConsumerLimits::verdict`]), or kept, holding the source or not, to
    /// be judged again at the next check.
    pub fn fate(&self, client: &ConsumerState, now: Instant) -> Fate {
        match self.verdict(client, now) {
            Some(cut) => Fate::Cut(cut),
            None => Fate::Keep {
                holds_source: self.holds_source(client, now),
                next_check: self.next_check(client, now),
            },
        }
    }

    /// Bytes a writable client may gain in one turn: [`TURN_OUTPUT_BYTES`],
    /// or half the output limit if that is less, so a client is written
    /// (and found to hold the source) before it could pass its limit.
    pub fn turn_output_bytes(&self) -> usize {
        TURN_OUTPUT_BYTES.min(self.output_limit / 2)
    }

    /// What queueing a frame of `frame_len` bytes for `client` does: a
    /// frame that would take its own bytes past the output limit cuts it;
    /// one that takes it past half the limit (where it may hold the source)
    /// or a writable client past a turn's output ends the turn.
    pub fn admit(&self, client: &Owing, frame_len: usize) -> Admit {
        if client.own_bytes + frame_len > self.output_limit {
            return Admit::Cut(Cut::OutputLimit);
        }
        let hold_level = self.output_limit / 2;
        let pending = client.pending + frame_len;
        let now_far_behind = client.pending <= hold_level && pending > hold_level;
        let turn_full = !client.write_blocked && pending > self.turn_output_bytes();
        Admit::Queue {
            write: client.pending == 0 || now_far_behind,
            end_turn: now_far_behind || turn_full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConsumerLimits = ConsumerLimits {
        write_deadline: Duration::from_secs(10),
        max_lag: Duration::from_secs(15),
        output_limit: 1000,
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_verdict_table() {
        let t0 = Instant::now();
        let state =
            |own_bytes, owes: bool, progress_ago: u64, oldest_ago: Option<u64>| ConsumerState {
                own_bytes,
                pending: if owes { own_bytes.max(1) } else { 0 },
                last_progress: t0 + secs(100) - secs(progress_ago),
                oldest_owed_at: oldest_ago.map(|ago| t0 + secs(100) - secs(ago)),
            };
        let now = t0 + secs(100);
        #[rustfmt::skip]
        let table = [
            // (own bytes, owes, s since progress, s since oldest owed byte) → verdict
            ((0, false, 90, None), None),                            // idle for long: never cut
            ((10, true, 0, Some(0)), None),                          // keeping up
            ((10, true, 9, Some(9)), None),                          // slow, within both bounds
            ((10, true, 10, Some(10)), Some(Cut::WriteDeadline)),    // stuck for the deadline
            ((0, true, 30, Some(30)), Some(Cut::WriteDeadline)),     // stuck on broadcasts only
            ((10, true, 1, Some(15)), None),                         // lag at the bound is allowed
            ((10, true, 1, Some(16)), Some(Cut::Lag)),               // crawling: progress, but far behind
            ((1001, true, 0, Some(0)), Some(Cut::OutputLimit)),      // too much queued for it alone
            ((1001, true, 20, Some(20)), Some(Cut::OutputLimit)),    // the output limit is named first
            ((1000, true, 0, Some(0)), None),                        // at the limit is allowed
        ];
        for ((own, owes, progress_ago, oldest_ago), expected) in table {
            let client = state(own, owes, progress_ago, oldest_ago);
            assert_eq!(LIMITS.verdict(&client, now), expected, "{client:?}");
        }
    }

    #[test]
    fn the_next_check_is_when_the_verdict_would_change() {
        let t0 = Instant::now();
        let idle = ConsumerState {
            own_bytes: 0,
            pending: 0,
            last_progress: t0,
            oldest_owed_at: None,
        };
        assert_eq!(LIMITS.next_check(&idle, t0), None);
        let stuck = ConsumerState {
            pending: 10,
            oldest_owed_at: Some(t0),
            ..idle
        };
        let at = LIMITS.next_check(&stuck, t0 + secs(5)).unwrap();
        assert_eq!(at, t0 + secs(10));
        assert_eq!(LIMITS.verdict(&stuck, at), Some(Cut::WriteDeadline));
        assert_eq!(LIMITS.verdict(&stuck, at - Duration::from_nanos(1)), None);
        let crawling = ConsumerState {
            last_progress: t0 + secs(14),
            ..stuck
        };
        let at = LIMITS.next_check(&crawling, t0 + secs(14)).unwrap();
        assert_eq!(LIMITS.verdict(&crawling, at), Some(Cut::Lag));
        assert_eq!(
            LIMITS.verdict(&crawling, at - Duration::from_nanos(1)),
            None
        );
    }

    #[test]
    fn a_reader_far_behind_holds_the_source_while_it_still_reads() {
        let t0 = Instant::now();
        let behind = |pending, progress_ago: Duration| ConsumerState {
            own_bytes: 0,
            pending,
            last_progress: t0 - progress_ago,
            oldest_owed_at: Some(t0 - progress_ago),
        };
        let half = LIMITS.output_limit / 2;
        #[rustfmt::skip]
        let table = [
            ((half, Duration::ZERO), false),                                      // at half: no hold
            ((half + 1, Duration::ZERO), true),                                   // past half, reading: holds
            ((half + 1, HOLD_GRACE - Duration::from_millis(1)), true),            // still within the grace
            ((half + 1, HOLD_GRACE), false),                                      // stopped reading: lets go
            ((10 * half, Duration::from_millis(1)), true),                        // far behind, reading: holds
        ];
        for ((pending, progress_ago), expected) in table {
            let client = behind(pending, progress_ago);
            assert_eq!(LIMITS.holds_source(&client, t0), expected, "{client:?}");
        }
        // The hold's end is a check time, so the loop wakes to let go.
        let holding = behind(half + 1, Duration::from_millis(300));
        assert_eq!(
            LIMITS.next_check(&holding, t0),
            Some(t0 - Duration::from_millis(300) + HOLD_GRACE)
        );
    }

    #[test]
    fn close_reasons_read_as_log_text() {
        assert_eq!(
            CloseReason::Cut(Cut::WriteDeadline).to_string(),
            "slow consumer (write deadline)"
        );
        assert_eq!(CloseReason::NoIdInTime.to_string(), "no id in time");
    }

    #[test]
    fn the_admission_table() {
        let backlog = |own_bytes, pending, write_blocked| Owing {
            own_bytes,
            pending,
            write_blocked,
        };
        let queue = |write, end_turn| Admit::Queue { write, end_turn };
        // LIMITS: output limit 1000, so the hold level and a turn's output
        // are both 500.
        #[rustfmt::skip]
        let table = [
            // (own, pending, blocked, frame) → what queueing it does
            ((0, 0, false, 10), queue(true, false)),       // first output: write it this turn
            ((10, 10, false, 10), queue(false, false)),    // more of the same: already to be written
            ((0, 495, false, 10), queue(true, true)),      // past half the limit: write, judge, end turn
            ((0, 495, true, 10), queue(true, true)),       // same while blocked: judged at turn end
            ((0, 600, true, 10), queue(false, false)),     // blocked and already far behind: just queue
            ((0, 600, false, 10), queue(false, true)),     // writable, a turn's worth: end the turn
            ((995, 995, true, 5), queue(false, false)),    // exactly at the limit is allowed
            ((995, 995, true, 6), Admit::Cut(Cut::OutputLimit)), // past it: cut, not queued
            ((0, 5000, true, 6), queue(false, false)),     // owing broadcasts alone is never a cut here
        ];
        for ((own, pending, blocked, frame), expected) in table {
            let client = backlog(own, pending, blocked);
            assert_eq!(
                LIMITS.admit(&client, frame),
                expected,
                "{client:?} + {frame}"
            );
        }
    }

    #[test]
    fn the_fate_is_the_verdict_the_hold_and_the_next_check_together() {
        let t0 = Instant::now();
        let behind = ConsumerState {
            own_bytes: 0,
            pending: 600,
            last_progress: t0,
            oldest_owed_at: Some(t0),
        };
        assert_eq!(
            LIMITS.fate(&behind, t0),
            Fate::Keep {
                holds_source: true,
                next_check: Some(t0 + HOLD_GRACE)
            }
        );
        assert_eq!(
            LIMITS.fate(&behind, t0 + secs(10)),
            Fate::Cut(Cut::WriteDeadline)
        );
        let idle = ConsumerState {
            pending: 0,
            oldest_owed_at: None,
            ..behind
        };
        assert_eq!(
            LIMITS.fate(&idle, t0 + secs(1000)),
            Fate::Keep {
                holds_source: false,
                next_check: None
            }
        );
    }
}
