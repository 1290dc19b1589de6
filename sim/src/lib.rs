//! # follower-maze-sim
//!
//! The simulator for the follower-maze server (the package at the root of
//! this workspace): a load generator, a reference model and a verifier,
//! which replace the original challenge's test client. It plays the event
//! source and every user client against a server over TCP, and checks every
//! notification each client receives, byte for byte and in order, against
//! what the model says that client is owed.
//!
//! It is independent of the server by construction: this crate does not
//! depend on `follower-maze` (not even for its tests), so the model, the
//! verifier and the parsing they need cannot use the server's code, and a bug
//! in the server cannot be copied into the check that should catch it. The
//! compiler enforces that. The only link is the wire protocol, and the
//! `follower-maze` binary that `--demo` starts as a child process
//! ([`demo_server`]).
//!
//! # Layout
//!
//! - [`config`]: every knob; the original client's keep their variable names.
//! - [`rng`]: a seedable PRNG, so the same seed makes the same run.
//! - [`mix`]: how often each kind of event is drawn.
//! - [`line`](mod@line): line endings, integer formatting, line digests and splitting.
//! - [`model`]: the reference follower graph, independent of the server's,
//!   and who must receive each event.
//! - [`generator`]: events in seq order through the model, then shuffled
//!   batches of wire bytes.
//! - [`plan`]: which ids the client connections claim, and which client
//!   port each connects to (round robin over a cluster's edges).
//! - [`verify`]: per-connection expectations checked line by line.
//! - [`connect`]: opening the source and client sockets.
//! - [`demo_server`]: the `follower-maze` binary as a child process, for
//!   `--demo`.
//! - [`run`](mod@run): the single-threaded mio loop that drives one run.
//! - [`progress`]: what a run shows while it goes: a live bar on a
//!   terminal, the original client's plain lines elsewhere.
//! - [`failure`] and [`report`]: the verdict, as data and as text or JSON.
//! - [`baseline`]: the loopback bandwidth measured the way a run reads, to
//!   put a run's delivered bytes per second in proportion.
//!
//! [`run()`] drives a whole run; [`Generator`] works alone for benches.

#![warn(missing_docs)]

pub mod baseline;
pub mod config;
pub mod connect;
pub mod demo_server;
pub mod failure;
pub mod generator;
pub mod line;
pub mod mix;
pub mod model;
pub mod plan;
pub mod progress;
pub mod report;
pub mod rng;
pub mod run;
pub mod verify;

use std::time::Instant;

pub use baseline::BaselineReport;
pub use config::SimConfig;
pub use failure::{Failure, FailureReason};
pub use generator::{Batch, CountingSink, ExpectSink, Generator, GeneratorConfig};
pub use line::LineEnding;
pub use mix::{Kind, Mix};
pub use report::{GenerateReport, Report};
pub use run::run;

/// A user id as it appears on the wire: an unsigned decimal integer.
///
/// The simulator's own, like everything here: it shares no type with the
/// server, so the model and verifier stay independent of the server's code.
pub type UserId = u64;

/// An event sequence number; the stream starts at 1.
pub type Seq = u64;

/// Generates every event of `config`'s run through the model, with the
/// run's verified clients, and discards the bytes: the generator's speed
/// against a sink, with no network.
pub fn generate_only(config: &SimConfig) -> Result<GenerateReport, FailureReason> {
    config.validate().map_err(FailureReason::Config)?;
    let plan = plan::Plan::new(config);
    let mut generator = Generator::new(&config.generator(), &plan.verified);
    let mut sink = CountingSink::default();
    let mut out = Vec::with_capacity(512 * 1024);
    let mut report = GenerateReport::default();
    let started = Instant::now();
    while let Some(batch) = generator.next_batch(&mut out, &mut sink) {
        report.events += u64::from(batch.events);
        if out.len() >= 256 * 1024 {
            report.bytes += out.len() as u64;
            // The sink: look at the bytes so the work cannot be optimised
            // away, then drop them.
            std::hint::black_box(&out);
            out.clear();
        }
    }
    report.bytes += out.len() as u64;
    std::hint::black_box(&out);
    report.elapsed = started.elapsed();
    report.expectations = sink.expectations;
    Ok(report)
}
