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
        caught_up: None,
        listening: false,
    };
    run_with_companion(Server::edge(config)?, poll, link)
}

/// Moves records from the bridge to the server and opens the client port
/// once caught up.
struct EdgeLink {
    /// The bridge thread's end.
    bridge: EdgeBridge,
    /// The stream seq the edge has caught up to, once it has.
    caught_up: Option<u64>,
    /// True once the client port is open.
    listening: bool,
}

impl Companion for EdgeLink {
    fn exchange(&mut self, server: &mut Server, _now: Instant) -> io::Result<()> {
        if server.is_shutting_down() {
            return Ok(()); // What was taken is routed; nothing more.
        }
        if let Some(stream_seq) = self.caught_up
            && !self.listening
        {
            if server.records_waiting() > 0 {
                return Ok(()); // Routing the last of the history first.
            }
            let addr = server.open_client_port()?;
            self.listening = true;
            info!(
                "caught up with the log at stream seq {stream_seq}; listening for clients on {addr}"
            );
        }
        while server.records_waiting() < FEED_RECORDS {
            match self.bridge.try_next() {
                None => break,
                Some(EdgeNews::Record { record, .. }) => server.push_record(record),
                Some(EdgeNews::CaughtUp { stream_seq }) => {
                    self.caught_up = Some(stream_seq);
                    // Opened next turn, once the history is routed.
                    return Ok(());
                }
                Some(EdgeNews::Failed(why)) => {
                    return Err(io::Error::other(format!("the log failed: {why}")));
                }
            }
        }
        Ok(())
    }
}
