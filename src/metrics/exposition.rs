//! The server's [`Stats`] in the Prometheus exposition format, through the
//! Prometheus project's own client (`prometheus-client`): names, units,
//! help lines and escaping are its business, not ours.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::stats::Stats;

/// The prefix of every metric name.
const PREFIX: &str = "follower_maze";

/// What a scrape adds to the counters: the configured budgets, which are
/// not counters but give the gauges their scale.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budgets {
    /// `--max-queued-bytes`.
    pub max_queued_bytes: usize,
    /// `--max-clients`.
    pub max_clients: usize,
}

/// A snapshot of the stats, encoded at one scrape.
#[derive(Debug)]
struct Snapshot {
    /// The counters and gauges.
    stats: Stats,
    /// The budgets.
    budgets: Budgets,
}

/// `stats` and `budgets` as a Prometheus text exposition (OpenMetrics
/// flavour, which Prometheus scrapes natively).
pub fn encode(stats: Stats, budgets: Budgets) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(Snapshot { stats, budgets }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`encode_classic`]'s output.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// [`encode`] in the classic Prometheus text format (0.0.4), for scrapers
/// that do not ask for OpenMetrics, and for `promtool check metrics`,
/// which reads only this. `prometheus-client` writes OpenMetrics only; for
/// the counters and gauges served here the two formats differ in just
/// three ways, so the classic page is the OpenMetrics one with those
/// rewritten: a counter family is named after its samples (`_total`),
/// and there are no `# UNIT` and `# EOF` lines.
pub fn encode_classic(stats: Stats, budgets: Budgets) -> String {
    let open = encode(stats, budgets);
    let counters: Vec<&str> = open
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut classic = String::with_capacity(open.len());
    for line in open.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let family = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let name = rest.split(' ').next()?;
            counters
                .contains(&name)
                .then(|| (tag, name, &rest[name.len()..]))
        });
        match family {
            Some((tag, name, rest)) => classic.push_str(&format!("{tag}{name}_total{rest}")),
            None => classic.push_str(line),
        }
        classic.push('\n');
    }
    classic
}

/// A counter: its name (without prefix and `_total`), unit, help, value.
type CounterRow = (&'static str, Option<Unit>, &'static str, u64);
/// A gauge: its name (without prefix), unit, help, value.
type GaugeRow = (&'static str, Option<Unit>, &'static str, i64);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let bytes = || Some(Unit::Bytes);
        let counters: [CounterRow; 18] = [
            (
                "events_in",
                None,
                "Valid event lines received from the source.",
                s.events_in,
            ),
            (
                "events_routed",
                None,
                "Events released in sequence order and routed (an ingest: appended to the log).",
                s.events_routed,
            ),
            (
                "notifications",
                None,
                "Frames queued to clients, one per recipient connection per event.",
                s.notifications,
            ),
            ("out", bytes(), "Bytes written to clients.", s.bytes_out),
            (
                "malformed_lines",
                None,
                "Source lines dropped as malformed or too long.",
                s.malformed,
            ),
            (
                "skipped_seqs",
                None,
                "Seqs skipped because they never arrived in time.",
                s.skipped,
            ),
            (
                "late_events",
                None,
                "Events dropped because their seq was already released or skipped.",
                s.late,
            ),
            (
                "duplicate_events",
                None,
                "Events dropped because their seq was already held.",
                s.duplicates,
            ),
            (
                "runs",
                None,
                "New runs started by a source starting over at seq 1.",
                s.runs,
            ),
            (
                "bad_ids",
                None,
                "Clients closed for a bad, overlong or missing id line.",
                s.bad_ids,
            ),
            (
                "clients_refused",
                None,
                "Clients closed because --max-clients were registered when their id arrived.",
                s.clients_refused,
            ),
            (
                "clients_evicted",
                None,
                "Connections without an id yet, closed to admit a newer one because --max-pending-clients were waiting.",
                s.clients_evicted,
            ),
            (
                "sources_refused",
                None,
                "Event source connections refused because another was connected and sending.",
                s.sources_refused,
            ),
            (
                "follows_refused",
                None,
                "Follows not recorded because the follower graph was at --max-follow-bytes.",
                s.follows_refused,
            ),
            (
                "sources_idle_closed",
                None,
                "Event sources closed for sending nothing for --source-idle-ms while another waited.",
                s.sources_idle_closed,
            ),
            (
                "accept_errors",
                None,
                "Times accepting failed for lack of file descriptors or memory.",
                s.accept_errors,
            ),
            (
                "source_pauses",
                None,
                "Times reading the source paused because too much output was queued.",
                s.source_pauses,
            ),
            (
                "slow_consumers",
                None,
                "Clients cut for not keeping up, all reasons together.",
                s.slow_consumers,
            ),
        ];
        for (name, unit, help, value) in &counters {
            let counter = ConstCounter::new(*value);
            let metric =
                encoder.encode_descriptor(name, help, unit.as_ref(), counter.metric_type())?;
            counter.encode(metric)?;
        }
        let cut = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "clients_cut",
            "Clients cut for not keeping up, by reason: write_deadline (owed bytes, none written in time), output_limit (too much queued for it alone), lag (too far behind the stream).",
            None,
            cut.metric_type(),
        )?;
        for (reason, value) in [
            ("write_deadline", s.cut_write_deadline),
            ("output_limit", s.cut_output_limit),
            ("lag", s.cut_lag),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        let b = &self.budgets;
        let gauges: [GaugeRow; 12] = [
            (
                "clients",
                None,
                "Registered client connections now.",
                gauge(s.clients),
            ),
            (
                "clients_awaiting_id",
                None,
                "Client connections that have not sent their id yet.",
                gauge(s.clients_awaiting_id),
            ),
            (
                "clients_max",
                None,
                "Most client connections at once (--max-clients).",
                gauge(b.max_clients),
            ),
            (
                "clients_holding_source",
                None,
                "Clients far behind that hold the source paused now.",
                gauge(s.clients_holding_source),
            ),
            (
                "source_connected",
                None,
                "1 while an event source is connected.",
                i64::from(s.source_connected),
            ),
            (
                "current_run",
                None,
                "Runs started over so far: the current run is this plus one.",
                i64::try_from(s.runs).unwrap_or(i64::MAX),
            ),
            (
                "follow_edges",
                None,
                "Live follow edges in the graph now.",
                gauge(s.follow_edges),
            ),
            (
                "window_frames",
                None,
                "Frames held in the reorder window now.",
                gauge(s.window_depth),
            ),
            (
                "window",
                bytes(),
                "Bytes held in the reorder window now.",
                gauge(s.window_bytes),
            ),
            (
                "queued",
                bytes(),
                "Bytes held for clients and not yet written (an ingest: for the log, not yet stored).",
                gauge(s.queued_bytes),
            ),
            (
                "queued_peak",
                bytes(),
                "The most bytes ever queued.",
                gauge(s.queued_bytes_peak),
            ),
            (
                "queued_budget",
                bytes(),
                "Queued bytes past which the source pauses (--max-queued-bytes).",
                gauge(b.max_queued_bytes),
            ),
        ];
        for (name, unit, help, value) in &gauges {
            let gauge = ConstGauge::new(*value);
            let metric =
                encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stat_is_a_named_metric_with_help_and_unit() {
        let stats = Stats {
            events_in: 7,
            bytes_out: 1234,
            cut_lag: 2,
            queued_bytes: 99,
            source_connected: true,
            ..Stats::default()
        };
        let budgets = Budgets {
            max_queued_bytes: 4096,
            max_clients: 10,
        };
        let text = encode(stats, budgets);
        for line in [
            "follower_maze_events_in_total 7",
            "follower_maze_out_bytes_total 1234",
            "follower_maze_clients_cut_total{reason=\"lag\"} 2",
            "follower_maze_clients_cut_total{reason=\"output_limit\"} 0",
            "follower_maze_queued_bytes 99",
            "follower_maze_queued_budget_bytes 4096",
            "follower_maze_source_connected 1",
            "# HELP follower_maze_events_in Valid event lines received from the source.",
            "# UNIT follower_maze_out_bytes bytes",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        let classic = encode_classic(stats, budgets);
        for line in [
            "# HELP follower_maze_events_in_total Valid event lines received from the source.",
            "# TYPE follower_maze_events_in_total counter",
            "follower_maze_events_in_total 7",
            "# TYPE follower_maze_queued_bytes gauge",
            "follower_maze_queued_bytes 99",
        ] {
            assert!(
                classic.lines().any(|l| l == line),
                "no {line:?} in:\n{classic}"
            );
        }
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
    }
}
