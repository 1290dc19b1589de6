//! The sans-IO core: every rule of the server, with no sockets and no clock.

pub mod consumer;
pub mod graph;
pub mod inbox;
pub mod outbox;
pub mod pipeline;
pub mod protocol;
pub mod router;
pub mod timeline;
pub mod window;
