//! What the server has done, as plain counters a host can read at any time,
//! and the periodic log line made from them.

use std::fmt;
use std::time::{Duration, Instant};

/// A snapshot of the server's counters and gauges.
///
/// Counters (`u64`) only grow; gauges (`usize`, `bool`) are the value now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Valid event lines received from the source.
    pub events_in: u64,
    /// Events released in sequence order and routed.
    pub events_routed: u64,
    /// Frames queued to clients (one per recipient connection per event).
    pub notifications: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Source lines dropped as malformed or too long.
    pub malformed: u64,
    /// Seqs skipped because they never arrived in time.
    pub skipped: u64,
    /// Events dropped because their seq was already released or skipped.
    pub late: u64,
    /// Events dropped because their seq was already held.
    pub duplicates: u64,
    /// New runs started by a source restarting at a low seq.
    pub runs: u64,
    /// Clients cut for not keeping up, all reasons together: the sum of
    /// the three `cut_` counters.
    pub slow_consumers: u64,
    /// Clients cut for owing bytes with none written for the write deadline.
    pub cut_write_deadline: u64,
    /// Clients cut for having more queued for them alone than the limit.
    pub cut_output_limit: u64,
    /// Clients cut for lagging the stream by more than the lag bound.
    pub cut_lag: u64,
    /// Clients closed for a bad, overlong or missing id line.
    pub bad_ids: u64,
    /// Clients closed because the client limit was reached when their id
    /// arrived.
    pub clients_refused: u64,
    /// Connections that had sent no id yet, closed to admit a newer one
    /// because `--max-pending-clients` were waiting.
    pub clients_evicted: u64,
    /// Event source connections refused because one was already connected.
    pub sources_refused: u64,
    /// Follows not recorded because the follower graph was at its budget
    /// (`--max-follow-bytes`); the followed were still notified.
    pub follows_refused: u64,
    /// Event sources closed for sending nothing for `--source-idle-ms`
    /// while another waited to take over.
    pub sources_idle_closed: u64,
    /// Times accepting failed for lack of file descriptors or memory.
    pub accept_errors: u64,
    /// Times reading the source was paused because too much output queued.
    pub source_pauses: u64,
    /// Registered client connections now.
    pub clients: usize,
    /// Client connections that have not sent their id yet.
    pub clients_awaiting_id: usize,
    /// Clients holding the source paused now: far behind, still reading.
    pub clients_holding_source: usize,
    /// Whether an event source is connected now.
    pub source_connected: bool,
    /// Live follow edges in the graph now (memory the protocol requires).
    pub follow_edges: usize,
    /// Frames held in the reorder window now.
    pub window_depth: usize,
    /// Bytes held in the reorder window now.
    pub window_bytes: usize,
    /// Bytes held for clients and not yet written: each client's own frames,
    /// plus the broadcast log, which holds each broadcast once for every
    /// client that still owes it. In a cluster's ingest: event bytes
    /// batched for the log and not yet handed to it.
    pub queued_bytes: usize,
    /// The most `queued_bytes` has ever been.
    pub queued_bytes_peak: usize,
}

/// Writes an info line every interval with rates since the previous line;
/// stays quiet while nothing happens.
#[derive(Debug)]
pub struct StatsLog {
    /// Time between lines; zero turns the log off.
    interval: Duration,
    /// When the next line is due.
    due: Instant,
    /// The snapshot the last line was computed from, and when.
    last: (Stats, Instant),
}

impl StatsLog {
    /// A log that writes its first line one `interval` from `now`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        StatsLog {
            interval,
            due: now + interval,
            last: (Stats::default(), now),
        }
    }

    /// When the next line is due, if the log is on.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.interval.is_zero()).then_some(self.due)
    }

    /// Logs a line if one is due and anything changed since the last.
    pub fn tick(&mut self, now: Instant, stats: Stats) {
        if self.interval.is_zero() || now < self.due {
            return;
        }
        self.due = now + self.interval;
        let (last, then) = self.last;
        if stats != last {
            let seconds = now.duration_since(then).as_secs_f64().max(1e-9);
            log::info!(
                "{}",
                Rates {
                    stats,
                    last,
                    seconds
                }
            );
        }
        self.last = (stats, now);
    }
}

/// A stats line: rates since the last one plus the gauges and problem counts.
struct Rates {
    /// Now.
    stats: Stats,
    /// At the previous line.
    last: Stats,
    /// Seconds between the two.
    seconds: f64,
}

impl fmt::Display for Rates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, l, secs) = (&self.stats, &self.last, self.seconds);
        let rate = |now: u64, then: u64| (now - then) as f64 / secs;
        write!(
            f,
            "events in {:.0}/s, routed {:.0}/s, notifications {:.0}/s, {:.1} MB/s out; \
             clients {} (+{} awaiting id), {} holding the source, source {}, follows {}, window {} frames / {} B, queued {} B; \
             skipped {}, late {}, duplicate {}, malformed {}, \
             cut {} (write deadline {}, output limit {}, lag {}), bad ids {}, refused {}",
            rate(s.events_in, l.events_in),
            rate(s.events_routed, l.events_routed),
            rate(s.notifications, l.notifications),
            rate(s.bytes_out, l.bytes_out) / 1e6,
            s.clients,
            s.clients_awaiting_id,
            s.clients_holding_source,
            if s.source_connected {
                "connected"
            } else {
                "absent"
            },
            s.follow_edges,
            s.window_depth,
            s.window_bytes,
            s.queued_bytes,
            s.skipped,
            s.late,
            s.duplicates,
            s.malformed,
            s.slow_consumers,
            s.cut_write_deadline,
            s.cut_output_limit,
            s.cut_lag,
            s.bad_ids,
            s.clients_refused + s.sources_refused,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_rates_since_the_last_one() {
        let last = Stats::default();
        let stats = Stats {
            events_in: 2_000,
            notifications: 500,
            clients: 3,
            ..Stats::default()
        };
        let line = Rates {
            stats,
            last,
            seconds: 2.0,
        }
        .to_string();
        assert!(line.starts_with("events in 1000/s"), "{line}");
        assert!(line.contains("notifications 250/s"), "{line}");
        assert!(line.contains("clients 3 "), "{line}");
    }

    #[test]
    fn the_log_is_due_once_per_interval() {
        let start = Instant::now();
        let mut log = StatsLog::new(Duration::from_secs(1), start);
        assert_eq!(log.deadline(), Some(start + Duration::from_secs(1)));
        log.tick(start + Duration::from_millis(1500), Stats::default());
        assert_eq!(log.deadline(), Some(start + Duration::from_millis(2500)));
        assert_eq!(StatsLog::new(Duration::ZERO, start).deadline(), None);
    }
}
