//! The metrics listener and its connections on the server's own mio loop:
//! read a request, write the whole response, close. A handful of
//! connections at once; each gets a deadline for the whole exchange, so a
//! scraper that never sends or never reads is cut like any slow client.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::http::{MAX_REQUEST_BYTES, Pages, respond};
use crate::engine::inbox::{interrupted, would_block};

/// Most metrics connections at once; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 8;
/// How long one exchange (request in, response out) may take.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// One scraper's connection.
#[derive(Debug)]
struct Conn {
    /// The socket.
    stream: TcpStream,
    /// The request so far.
    input: Vec<u8>,
    /// The response, once the request is complete.
    output: Option<Vec<u8>>,
    /// Bytes of `output` written.
    written: usize,
    /// True once the whole response is written and the sending side shut:
    /// what the peer still sends is read and dropped until it closes, so
    /// closing never resets a response it has not read yet.
    draining: bool,
    /// When it is cut if not done.
    deadline: Instant,
}

/// The metrics listener and its connections.
#[derive(Debug)]
pub struct Endpoint {
    /// Accepts scrapers.
    listener: TcpListener,
    /// Where it listens.
    addr: SocketAddr,
    /// Open connections, by key (token `first + 1 + key`).
    conns: Slab<Conn>,
    /// The registry and first token, once registered.
    registered: Option<(Registry, usize)>,
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    pub refused: u64,
}

impl Endpoint {
    /// Binds the metrics listener on `addr`.
    pub fn bind(addr: SocketAddr) -> io::Result<Endpoint> {
        let listener = TcpListener::bind(addr).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot listen for metrics on {addr} (--metrics-addr): {err}"),
            )
        })?;
        Ok(Endpoint {
            addr: listener.local_addr()?,
            listener,
            conns: Slab::with_capacity(MAX_CONNECTIONS),
            registered: None,
            refused: 0,
        })
    }

    /// Where scrapers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Tokens used from the first one given to [`Endpoint::register`].
    pub fn token_span() -> usize {
        1 + MAX_CONNECTIONS
    }

    /// Registers the listener as token `first`; connections get the next
    /// [`MAX_CONNECTIONS`] tokens.
    pub fn register(&mut self, registry: &Registry, first: Token) -> io::Result<()> {
        registry.register(&mut self.listener, first, Interest::READABLE)?;
        self.registered = Some((registry.try_clone()?, first.0));
        Ok(())
    }

    /// Handles readiness of token `offset` (0: the listener) of ours.
    pub fn ready(&mut self, offset: usize, now: Instant, pages: &impl Pages) {
        if offset == 0 {
            return self.accept(now);
        }
        let key = offset - 1;
        if let Some(conn) = self.conns.get_mut(key)
            && !serve(conn, pages)
        {
            self.close(key);
        }
    }

    /// Cuts connections past their deadline.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.deadline <= now)
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            debug!("metrics: cutting a connection that did not finish in {DEADLINE:?}");
            self.close(key);
        }
    }

    /// When the next connection is cut, if any is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|(_, conn)| conn.deadline).min()
    }

    /// Accepts every pending connection, closing those past the cap.
    fn accept(&mut self, now: Instant) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if would_block(&err) => return,
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    debug!("metrics: accept failed: {err}");
                    return;
                }
            };
            let Some((registry, first)) = &self.registered else {
                return;
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                self.refused += 1;
                continue; // Dropped: closed.
            }
            let entry = self.conns.vacant_entry();
            let token = Token(first + 1 + entry.key());
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_ok()
            {
                entry.insert(Conn {
                    stream,
                    input: Vec::new(),
                    output: None,
                    written: 0,
                    draining: false,
                    deadline: now + DEADLINE,
                });
            }
        }
    }

    /// Deregisters and drops connection `key`.
    fn close(&mut self, key: usize) {
        let mut conn = self.conns.remove(key);
        if let Some((registry, _)) = &self.registered {
            let _ = registry.deregister(&mut conn.stream);
        }
    }
}

/// Reads what `conn` sent, answers once the request is complete, and
/// writes what the socket takes. False when the connection is done (the
/// response written, or the peer gone or in error).
fn serve(conn: &mut Conn, pages: &impl Pages) -> bool {
    let mut buffer = [0u8; 4096];
    while conn.draining {
        match conn.stream.read(&mut buffer) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(err) if would_block(&err) => return true,
            Err(err) if interrupted(&err) => {}
            Err(_) => return false,
        }
    }
    while conn.output.is_none() {
        match conn.stream.read(&mut buffer) {
            Ok(0) => return false,
            Ok(n) => {
                conn.input.extend_from_slice(&buffer[..n]);
                conn.output = respond(&conn.input, pages);
                if conn.input.len() > MAX_REQUEST_BYTES && conn.output.is_none() {
                    return false; // `respond` answers these; never reached.
                }
            }
            Err(err) if would_block(&err) => break,
            Err(err) if interrupted(&err) => {}
            Err(_) => return false,
        }
    }
    let Some(output) = &conn.output else {
        return true;
    };
    while conn.written < output.len() {
        match conn.stream.write(&output[conn.written..]) {
            Ok(n) => conn.written += n,
            Err(err) if would_block(&err) => return true,
            Err(err) if interrupted(&err) => {}
            Err(_) => return false,
        }
    }
    conn.draining = conn.stream.shutdown(std::net::Shutdown::Write).is_ok();
    conn.draining && serve(conn, pages)
}
