//! `follower-maze edge`: the shared log in, clients out.
//!
//! The bridge thread consumes the whole stream in order and hands records
//! to the mio loop, which routes them with the standalone server's graph,
//! outboxes, limits and slow-consumer rules. The client port opens only
//! once every record the stream held at start is routed, so a new client
//! never gets history. The loop takes at most [`FEED_RECORDS`] records
//! ahead of routing; when clients fall behind it stops taking, the
//! bridge's channel fills, the bridge stops pulling, and the backlog stays
//! in JetStream.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use log::info;
use mio::{Poll, Waker};

use super::args::ClusterArgs;
use super::bridge::{EdgeBridge, EdgeNews};
use crate::config::Config;
use crate::runner::{COMPANION_TOKEN, Companion, run_with_companion};
use crate::server::Server;
use crate::stats::Stats;

/// Records taken from the bridge ahead of routing, at most.
pub const FEED_RECORDS: usize = 4;
/// Records the bridge may hold ready for the loop.
pub const BRIDGE_RECORDS: usize = 64;

/// Runs an edge until SIGINT, SIGTERM or SIGHUP: connects to the log, catches up
/// with it, then opens the client port. Returns the final stats, or the
/// error that stopped it.
pub fn run(config: Config, cluster: &ClusterArgs) -> io::Result<Stats> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), COMPANION_TOKEN)?);
    let bridge = EdgeBridge::start(cluster.stream_settings(), BRIDGE_RECORDS, waker)?;
    info!(
        "catching up with the stream {} before taking clients",
        cluster.stream
    );
    let link = EdgeLink {
        bridge,
        gate: Gate::default(),
    };
    run_with_companion(Server::edge(config)?, poll, link)
}

/// Moves records from the bridge to the server and opens the client port
/// once caught up, as [`Gate`] decides.
struct EdgeLink {
    /// The bridge thread's end.
    bridge: EdgeBridge,
    /// When to take records and when to open the client port.
    gate: Gate,
}

/// What an edge does next with the bridge and its client port: the
/// decision, apart from the bridge and the sockets so that it is tested in
/// memory.
#[derive(Debug, Default)]
struct Gate {
    /// The stream seq the edge has caught up to, once the bridge says so.
    caught_up: Option<u64>,
    /// True once the client port is open.
    listening: bool,
}

/// The next step [`Gate`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing this turn.
    Wait,
    /// Open the client port: every record the stream held at start (up to
    /// `stream_seq`) is routed, so a new client gets no history.
    OpenClientPort {
        /// Where the edge caught up.
        stream_seq: u64,
    },
    /// Take up to this many records from the bridge: the loop holds at
    /// most [`FEED_RECORDS`] ahead of routing, so when clients fall behind
    /// the backlog stays in JetStream.
    Take(usize),
}

impl Gate {
    /// The next step, with the server shutting down or not and holding
    /// `records_waiting` records not yet routed.
    fn next_step(&self, shutting_down: bool, records_waiting: usize) -> Step {
        if shutting_down {
            return Step::Wait; // What was taken is routed; nothing more.
        }
        match self.caught_up {
            Some(stream_seq) if !self.listening => {
                if records_waiting > 0 {
                    Step::Wait // Routing the last of the history first.
                } else {
                    Step::OpenClientPort { stream_seq }
                }
            }
            _ => Step::Take(FEED_RECORDS.saturating_sub(records_waiting)),
        }
    }

    /// The bridge says the edge has read what the stream held at start.
    fn caught_up(&mut self, stream_seq: u64) {
        self.caught_up = Some(stream_seq);
    }

    /// The client port is open.
    fn opened(&mut self) {
        self.listening = true;
    }
}

impl Companion for EdgeLink {
    fn exchange(&mut self, server: &mut Server, _now: Instant) -> io::Result<()> {
        loop {
            match self
                .gate
                .next_step(server.is_shutting_down(), server.records_waiting())
            {
                Step::Wait => return Ok(()),
                Step::OpenClientPort { stream_seq } => {
                    let addr = server.open_client_port()?;
                    self.gate.opened();
                    info!(
                        "caught up with the log at stream seq {stream_seq}; listening for clients on {addr}"
                    );
                }
                Step::Take(count) => {
                    for _ in 0..count {
                        match self.bridge.try_next() {
                            None => return Ok(()),
                            Some(EdgeNews::Record { record, .. }) => server.push_record(record),
                            Some(EdgeNews::CaughtUp { stream_seq }) => {
                                // Opened next turn, once the history is
                                // routed.
                                self.gate.caught_up(stream_seq);
                                return Ok(());
                            }
                            Some(EdgeNews::Failed(why)) => {
                                return Err(io::Error::other(format!("the log failed: {why}")));
                            }
                        }
                    }
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_taken_a_few_ahead_and_the_port_opens_once_the_history_is_routed() {
        let mut gate = Gate::default();
        assert_eq!(gate.next_step(false, 0), Step::Take(FEED_RECORDS));
        assert_eq!(gate.next_step(false, 1), Step::Take(FEED_RECORDS - 1));
        assert_eq!(gate.next_step(false, FEED_RECORDS), Step::Take(0));
        assert_eq!(gate.next_step(false, FEED_RECORDS + 1), Step::Take(0));
        gate.caught_up(41);
        assert_eq!(gate.next_step(false, 2), Step::Wait, "history first");
        assert_eq!(
            gate.next_step(false, 0),
            Step::OpenClientPort { stream_seq: 41 }
        );
        gate.opened();
        assert_eq!(gate.next_step(false, 0), Step::Take(FEED_RECORDS));
    }

    #[test]
    fn nothing_is_taken_or_opened_while_shutting_down() {
        let mut gate = Gate::default();
        assert_eq!(gate.next_step(true, 0), Step::Wait);
        gate.caught_up(7);
        assert_eq!(gate.next_step(true, 0), Step::Wait);
    }
}
