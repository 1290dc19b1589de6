//! What a run did, as a one-line summary for people and as JSON for scripts
//! and benches (written by hand: a flat object needs no serde).

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::baseline::BaselineReport;
use super::failure::FailureReason;

/// Counts and timings of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Seed of the run, to reproduce it.
    pub seed: u64,
    /// Events fully written to the server (holes are not sent).
    pub events: u64,
    /// Seqs left out on purpose (`--holes`).
    pub holes: u64,
    /// Garbage lines written (`--malformed`).
    pub malformed: u64,
    /// Verified client connections (twins included).
    pub clients: usize,
    /// Verified connections that are `--twin-ids` twins.
    pub twin_clients: usize,
    /// Connections that never read (`--silent-clients`).
    pub silent_clients: usize,
    /// The client ports connected to, round robin (`--client-ports`, else
    /// `--client-port`): which edges of a cluster the run covered. Empty
    /// when the run failed before connecting.
    pub client_ports: Vec<u16>,
    /// Notifications received and verified.
    pub notifications: u64,
    /// Bytes of those notifications.
    pub notification_bytes: u64,
    /// From the first connect to the verdict.
    pub wall: Duration,
    /// From the first event written to the last notification verified: the
    /// span the rates are measured over.
    pub active: Duration,
}

impl Report {
    /// Events written per second of the active span.
    pub fn events_per_second(&self) -> f64 {
        per_second(self.events as f64, self.active)
    }

    /// Notifications verified per second of the active span.
    pub fn notifications_per_second(&self) -> f64 {
        per_second(self.notifications as f64, self.active)
    }

    /// Megabytes (10^6 bytes) of notifications verified per second.
    pub fn megabytes_per_second(&self) -> f64 {
        per_second(self.notification_bytes as f64 / 1e6, self.active)
    }

    /// The report as one JSON object, with the verdict: `failures` holds the
    /// reasons as text and is empty on success. With a loopback `baseline`,
    /// its bytes per second and the run's ratio to it are added.
    pub fn to_json(&self, failures: &[FailureReason], baseline: Option<&BaselineReport>) -> String {
        let mut json = String::from("{");
        let mut field = |name: &str, value: &str| {
            if json.len() > 1 {
                json.push(',');
            }
            let _ = write!(json, "\"{name}\":{value}");
        };
        field("passed", if failures.is_empty() { "true" } else { "false" });
        field("seed", &self.seed.to_string());
        field("events", &self.events.to_string());
        field("holes", &self.holes.to_string());
        field("malformed", &self.malformed.to_string());
        field("clients", &self.clients.to_string());
        field("twin_clients", &self.twin_clients.to_string());
        field("silent_clients", &self.silent_clients.to_string());
        field(
            "client_ports",
            &format!("[{}]", port_list(&self.client_ports)),
        );
        field("notifications", &self.notifications.to_string());
        field("notification_bytes", &self.notification_bytes.to_string());
        field("wall_seconds", &format!("{:.6}", self.wall.as_secs_f64()));
        field(
            "active_seconds",
            &format!("{:.6}", self.active.as_secs_f64()),
        );
        field(
            "events_per_second",
            &format!("{:.1}", self.events_per_second()),
        );
        field(
            "notifications_per_second",
            &format!("{:.1}", self.notifications_per_second()),
        );
        field(
            "megabytes_per_second",
            &format!("{:.3}", self.megabytes_per_second()),
        );
        if let Some(baseline) = baseline {
            field(
                "baseline_megabytes_per_second",
                &format!("{:.3}", baseline.bytes_per_second() / 1e6),
            );
            field(
                "baseline_ratio",
                &format!("{:.4}", baseline.ratio(self.megabytes_per_second() * 1e6)),
            );
        }
        let reasons: Vec<String> = failures
            .iter()
            .map(|r| json_string(&r.to_string()))
            .collect();
        field("failures", &format!("[{}]", reasons.join(",")));
        json.push('}');
        json
    }
}

impl fmt::Display for Report {
    /// The summary line: counts, active time and rates.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events, {} notifications ({:.1} MB) to {} clients{} in {:.3} s (wall {:.3} s): {:.0} events/s, {:.0} notifications/s, {:.2} MB/s",
            self.events,
            self.notifications,
            self.notification_bytes as f64 / 1e6,
            self.clients,
            Ports(&self.client_ports),
            self.active.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.events_per_second(),
            self.notifications_per_second(),
            self.megabytes_per_second(),
        )
    }
}

/// The " on port(s) ..." of the summary line and the connect log line,
/// nothing without ports.
pub(crate) struct Ports<'a>(pub(crate) &'a [u16]);

impl fmt::Display for Ports<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => Ok(()),
            [port] => write!(f, " on port {port}"),
            ports => write!(f, " on ports {}", port_list(ports)),
        }
    }
}

/// `ports` as `P1,P2,...`, as `--client-ports` takes them: one way to
/// write them in the log, the summary and the JSON.
pub(crate) fn port_list(ports: &[u16]) -> String {
    let mut list = String::new();
    for (at, port) in ports.iter().enumerate() {
        if at > 0 {
            list.push(',');
        }
        let _ = write!(list, "{port}");
    }
    list
}

/// What `--generate-only` measured: the generator and model alone, output
/// discarded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerateReport {
    /// Events generated.
    pub events: u64,
    /// Bytes of output generated (and discarded).
    pub bytes: u64,
    /// Expectations the model produced (counted, not kept).
    pub expectations: u64,
    /// Time spent.
    pub elapsed: Duration,
}

impl GenerateReport {
    /// Events generated per second.
    pub fn events_per_second(&self) -> f64 {
        per_second(self.events as f64, self.elapsed)
    }
}

impl fmt::Display for GenerateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "generated {} events ({:.1} MB, {} expectations) in {:.3} s: {:.0} events/s, {:.0} MB/s",
            self.events,
            self.bytes as f64 / 1e6,
            self.expectations,
            self.elapsed.as_secs_f64(),
            self.events_per_second(),
            per_second(self.bytes as f64 / 1e6, self.elapsed),
        )
    }
}

/// `amount` per second of `span`, 0 for an empty span.
fn per_second(amount: f64, span: Duration) -> f64 {
    let seconds = span.as_secs_f64();
    if seconds > 0.0 { amount / seconds } else { 0.0 }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            seed: 666,
            events: 1000,
            clients: 10,
            twin_clients: 5,
            client_ports: vec![9100, 9101],
            notifications: 500,
            notification_bytes: 2_000_000,
            wall: Duration::from_secs(3),
            active: Duration::from_secs(2),
            ..Report::default()
        }
    }

    #[test]
    fn rates_use_the_active_span() {
        let report = sample();
        assert_eq!(report.events_per_second(), 500.0);
        assert_eq!(report.notifications_per_second(), 250.0);
        assert_eq!(report.megabytes_per_second(), 1.0);
        assert_eq!(Report::default().events_per_second(), 0.0);
    }

    #[test]
    fn summary_line_shows_counts_and_rates() {
        let line = sample().to_string();
        assert!(
            line.starts_with(
                "1000 events, 500 notifications (2.0 MB) to 10 clients on ports 9100,9101 in 2.000 s"
            ),
            "{line}"
        );
        assert!(line.ends_with("500 events/s, 250 notifications/s, 1.00 MB/s"));
        let one_port = Report {
            client_ports: vec![9099],
            ..sample()
        };
        assert!(
            one_port
                .to_string()
                .contains(" to 10 clients on port 9099 in ")
        );
        assert!(
            Report::default().to_string().contains(" to 0 clients in "),
            "no ports before any connect"
        );
    }

    #[test]
    fn json_is_one_flat_object_with_escaped_failures() {
        let json = sample().to_json(&[], None);
        assert!(json.starts_with("{\"passed\":true,\"seed\":666,\"events\":1000,"));
        assert!(json.ends_with("\"failures\":[]}"));
        assert!(
            json.contains(
                "\"clients\":10,\"twin_clients\":5,\"silent_clients\":0,\"client_ports\":[9100,9101],"
            ),
            "{json}"
        );
        assert!(!json.contains("baseline"));
        let failed = sample().to_json(&[FailureReason::Config("a \"b\"\n".into())], None);
        assert!(failed.contains("\"passed\":false"));
        assert!(failed.contains(r#""failures":["configuration: a \"b\"\n"]"#));
    }

    #[test]
    fn json_carries_the_baseline_and_the_ratio() {
        let baseline = BaselineReport {
            connections: 10,
            bytes: 4_000_000,
            elapsed: Duration::from_secs(1),
        };
        let json = sample().to_json(&[], Some(&baseline));
        assert!(
            json.contains("\"baseline_megabytes_per_second\":4.000,\"baseline_ratio\":0.2500,")
        );
    }
}
