//! The Prometheus endpoint, served from the server's own loop.
pub mod exposition;
pub mod http;
