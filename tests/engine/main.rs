//! The core's rules driven in memory: an [`Engine`] on a
//! [`MemoryNet`](follower_maze::engine::memory::MemoryNet) with a clock
//! that moves only when a test says so. No sockets, no sleeps.
//!
//! [`Engine`]: follower_maze::engine::Engine

mod clients;
mod sources;
mod support;
