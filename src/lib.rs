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
//! - [`engine::protocol`]: bytes to frames (memchr line splitting with a length cap)
//!   and frames to [`engine::protocol::Event`]s; no I/O.
//! - [`engine::window`]: holds out-of-order frames until their seq comes up; skips
//!   holes that wait too long.
//! - [`engine::graph`]: who follows whom.
//! - [`engine::router`]: an in-order event to the connections it concerns.
//! - [`engine::pipeline`]: the three above in one pure step, with the hole timer.
//! - [`engine::inbox`]: one socket, its inbox, and the client and source records.
//! - [`engine::outbox`]: what each client is owed: its own frames, and ranges of
//!   the broadcast log, which holds each broadcast once for every client.
//! - [`engine::timeline`]: when each part of an outbox or the log was routed, so a
//!   client's lag behind the stream can be read.
//! - [`engine::consumer`]: why a connection closes, and the rule that tells a slow
//!   client (left alone) from a stuck or crawling one (cut).
//! - [`server`]: the mio loop: listeners, connections in a slab, readiness.
//! - [`runner`]: loops that own a `Poll`: the binary's and a background
//!   thread's.
//! - [`stats`]: counters a host can read, and the periodic log line.
//! - [`limits`]: raising the open-file limit.
//! - [`log_limit`]: rate limiting for log lines peers can trigger.
//! - [`config`]: every knob, with its flag and environment variable.
//!
//! # Running it
//!
//! The `follower-maze` binary is [`Server::run`]: a `Poll` of its own until
//! SIGINT or SIGTERM. Tests and tools use [`BackgroundServer`], the same loop
//! on a thread.
//!
//! # Embedding it in your own loop
//!
//! [`Server`] is a component: it registers in *your* `mio::Registry` under a
//! token range you choose, tells you which readiness events are its own, and
//! tells you how long you may sleep. There is no global state, so two servers
//! can share one loop.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Instant;
//! use follower_maze::{Config, Server};
//! use mio::{Events, Poll, Token};
//!
//! let mut poll = Poll::new()?;
//! let mut server = Server::bind(Config::ephemeral())?; // free loopback ports
//! server.register(poll.registry(), Token(100))?; // tokens 100.. are its own
//!
//! // A client (user 7) and an event source, as plain blocking sockets.
//! let mut client = std::net::TcpStream::connect(server.client_addr())?;
//! client.write_all(b"7\r\n")?;
//! let mut source = std::net::TcpStream::connect(server.event_addr())?;
//!
//! let mut events = Events::with_capacity(64);
//! let mut sent = false;
//! while server.stats().notifications < 2 {
//!     poll.poll(&mut events, server.timeout(Instant::now()))?;
//!     for event in events.iter() {
//!         if !server.handle_event(event) {
//!             // Not the server's: one of the host's own sources.
//!         }
//!     }
//!     server.tick(Instant::now());
//!     if !sent && server.stats().clients == 1 {
//!         source.write_all(b"2|P|1|7\r\n1|B\r\n")?; // out of order
//!         sent = true;
//!     }
//! }
//! // Delivered in sequence order, byte for byte.
//! let mut received = [0u8; 14];
//! client.read_exact(&mut received)?;
//! assert_eq!(&received, b"1|B\r\n2|P|1|7\r\n");
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod limits;
pub mod log_limit;
pub mod runner;
pub mod server;
pub mod stats;

pub use config::Config;
pub use runner::BackgroundServer;
pub use server::Server;
pub use stats::Stats;
