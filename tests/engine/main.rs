//! The core's rules driven in memory: an [`Engine`] on a
//! [`MemoryNet`](follower_maze::engine::memory::MemoryNet) with a clock
//! that moves only when a test says so. No sockets, no sleeps.
//!
//! [`Engine`]: follower_maze::engine::Engine

#[path = "../support/bad_lines.rs"]
mod bad_lines;
mod clients;
mod cluster;
mod cluster_props;
mod floods;
mod limits;
mod logs;
mod probation;
mod routing;
mod sources;
mod support;
mod window;
