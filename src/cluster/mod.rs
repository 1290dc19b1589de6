//! Scale-out over NATS JetStream: one ingest process reorders the event
//! source and appends the in-order lines to a stream, and any number of edge
//! processes read the whole stream in order and serve clients. The mio loop
//! stays the only owner of sockets and state; [`bridge`] is the one thread
//! per process that talks to NATS on its behalf.

pub mod bridge;
