//! Past one machine: an ingest and any number of edges around one shared,
//! ordered log in NATS JetStream.
//!
//! - [`ingest`]: the standalone server's source side; its in-order events
//!   are appended to the log in batches.
//! - [`edge`]: the standalone server's client side; it routes the log's
//!   records to its own clients.
//! - `bridge`: the one thread that talks to NATS (async-nats on a
//!   current-thread runtime), handing records to and from the mio loop
//!   through bounded channels and a waker. Public for the bridge's tests
//!   against a real nats-server, hidden from the docs, not part of the API.
//! - [`args`]: the flags both modes add.

pub mod args;
#[doc(hidden)]
pub mod bridge;
pub mod edge;
pub mod ingest;
