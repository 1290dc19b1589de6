//! The Prometheus endpoint, served from the server's own loop.
pub mod endpoint;
pub mod exposition;
pub mod http;
