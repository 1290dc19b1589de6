//! # follower-maze
//!
//! A single-threaded [mio](https://docs.rs/mio) server that reads one out-of-order stream of
//! numbered events and forwards each event, in sequence order and byte for
//! byte, to the user clients it concerns.
//!
//! # Layout
//!
//! Data flows one way: bytes → frames → events → window → in-order events →
//! recipients → outboxes → bytes. All of it, and every rule about
//! connections, is the sans-IO core, [`engine`]: it never touches a socket
//! or reads the clock. Around it:
//!
//! - [`Server`]: the thin [mio](https://docs.rs/mio) shell: listeners,
//!   tokens, the registry, accepting; readiness in, engine
//!   calls out.
//! - [`BackgroundServer`] and [`Server::run`]: loops that own a `Poll`: a
//!   thread's, and the binary's (until SIGINT, SIGTERM or SIGHUP).
//! - [`Config`]: every knob, with its flag and environment variable.
//! - [`Stats`]: counters a host can read, and the periodic log line.
//!
//! # Running it
//!
//! The `follower-maze` binary is [`Server::run`]: a `Poll` of its own until
//! SIGINT, SIGTERM or SIGHUP. Tests and tools use [`BackgroundServer`], the same loop
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
//! let client_addr = server.client_addr().expect("a standalone server has both");
//! let mut client = std::net::TcpStream::connect(client_addr)?;
//! client.write_all(b"7\r\n")?;
//! let mut source = std::net::TcpStream::connect(server.event_addr().unwrap())?;
//!
//! let mut events = Events::with_capacity(64);
//! let mut sent = false;
//! while server.stats().notifications < 2 {
//!     poll.poll(&mut events, server.timeout(Instant::now()))?;
//!     for event in events.iter() {
//!         if !server.handle_event(event, Instant::now()) {
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
#![forbid(unsafe_code)]

pub mod cluster;
mod config;
pub mod engine;
mod io_errors;
mod limits;
mod log_limit;
// Public for the metrics test's limits only; not part of the API.
#[doc(hidden)]
pub mod metrics;
mod runner;
mod server;
mod stats;
mod units;

pub use config::{Config, ConfigError, ConfigProblem};
pub use runner::BackgroundServer;
pub use server::Server;
pub use stats::Stats;
