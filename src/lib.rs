//! # follower-maze
//!
//! A single-threaded [mio] server that reads one out-of-order stream of
//! numbered events and forwards each event, in sequence order and byte for
//! byte, to the user clients it concerns.
//!
//! # Layout
//!
//! Data flows one way: bytes → frames → events → window → in-order events →
//! recipients → outboxes → bytes. Only the first and last steps touch a
//! socket.
//!
//! - [`protocol`]: bytes to frames (memchr line splitting with a length cap)
//!   and frames to [`protocol::Event`]s; no I/O.
//! - [`window`]: holds out-of-order frames until their seq comes up; skips
//!   holes that wait too long.
//! - [`graph`]: who follows whom.
//! - [`router`]: an in-order event to the connections it concerns.
//! - [`pipeline`]: the three above in one pure step, with the hole timer.
//! - [`conn`]: one socket, its inbox and outbox.
//! - [`server`]: the mio loop: listeners, connections in a slab, readiness.
//! - [`runner`]: loops that own a `Poll`: the binary's and a background
//!   thread's.
//! - [`stats`]: counters a host can read, and the periodic log line.
//! - [`limits`]: raising the open-file limit.
//! - [`config`]: every knob, with its flag and environment variable.
//! - [`sim`]: the load generator and verifier behind `follower-maze-sim`.
#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod graph;
pub mod limits;
pub mod pipeline;
pub mod protocol;
pub mod router;
pub mod runner;
pub mod server;
pub mod sim;
pub mod stats;
pub mod window;

pub use config::Config;
pub use runner::BackgroundServer;
pub use server::Server;
pub use stats::Stats;
