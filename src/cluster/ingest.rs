//! `follower-maze ingest`: the event source in, the shared log out.
//!
//! The standalone server's source side (framing, strict parsing, the
//! reorder window, hole skipping, new runs, back-pressure) runs unchanged
//! on the mio loop; its in-order events are batched into records
//! ([`crate::engine::batcher`]) and handed to the bridge thread, which
//! appends them to the JetStream stream. Once [`MAX_UNSTORED_RECORDS`] are
//! not yet stored, the loop stops reading the source, and the bridge never
//! holds more than that (a run boundary may close a record or two past it,
//! which wait in the engine until stores make room).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use log::info;
use mio::{Poll, Waker};

use super::args::ClusterArgs;
use super::bridge::{IngestBridge, IngestNews};
use crate::config::Config;
use crate::engine::batcher::{BATCH_BYTES, Batcher};
use crate::runner::{COMPANION_TOKEN, Companion, run_with_companion};
use crate::server::Server;
use crate::stats::Stats;

/// Records handed to the log and not yet stored, at most (about 64 k
/// events, 4 MiB): enough to keep the log busy, little to lose track of.
pub const MAX_UNSTORED_RECORDS: usize = 64;

/// Runs an ingest until SIGINT, SIGTERM or SIGHUP: connects to the log, carries on
/// the run it holds, listens on the event port only. Returns the final
/// stats, or the error that stopped it (the log unreachable, or another
/// ingest appending to the same stream).
pub fn run(config: Config, cluster: &ClusterArgs) -> io::Result<Stats> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), COMPANION_TOKEN)?);
    let (bridge, start) =
        IngestBridge::start(cluster.stream_settings(), MAX_UNSTORED_RECORDS, waker)?;
    if start.run == 0 {
        info!(
            "the stream {} is empty: run 1 starts with the first event",
            cluster.stream
        );
    } else {
        info!(
            "the stream {} holds run {} up to seq {} (stream seq {}): carrying it on",
            cluster.stream, start.run, start.last_seq, start.last_stream_seq
        );
    }
    // A batch holds at most BATCH_BYTES of lines, or one line alone, and
    // the server counts the headers (under 1 KiB) against its limit too.
    let largest = BATCH_BYTES.max(config.max_line) + 1024;
    if bridge.max_payload() < largest {
        return Err(io::Error::other(format!(
            "nats-server at {} takes messages of at most {} bytes; a batch can be {largest} bytes (raise max_payload, or lower --max-line)",
            cluster.nats_url,
            bridge.max_payload()
        )));
    }
    let batcher = Batcher::new(start.run, MAX_UNSTORED_RECORDS);
    let server = Server::bind_ingest(config, batcher, start.last_seq + 1)?;
    run_with_companion(server, poll, IngestLink { bridge })
}

/// Moves records from the server to the bridge, and the log's
/// acknowledgements back.
struct IngestLink {
    /// The bridge thread's end.
    bridge: IngestBridge,
}

impl Companion for IngestLink {
    fn exchange(&mut self, server: &mut Server, now: Instant) -> io::Result<()> {
        for news in self.bridge.news() {
            match news {
                IngestNews::Stored(count) => server.records_stored(count, now),
                IngestNews::Fenced(why) => {
                    return Err(io::Error::other(format!(
                        "refused by the log, another ingest appends to it: {why}"
                    )));
                }
                IngestNews::Failed(why) => {
                    return Err(io::Error::other(format!("the log failed: {why}")));
                }
            }
        }
        // The engine hands out at most MAX_UNSTORED_RECORDS unstored
        // records, the bridge's bound too.
        while let Some(record) = server.take_record() {
            if self.bridge.append(record).is_err() {
                return Err(io::Error::other(
                    "the bridge refused a record within the bound on unstored records",
                ));
            }
        }
        Ok(())
    }
}
