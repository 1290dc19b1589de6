//! The metrics listener and its connections on the server's own mio loop:
//! read a request, write the whole response, close. A handful of
//! connections at once; each gets a deadline for the whole exchange, so a
//! scraper that never sends or never reads is cut like any slow client.
//! When all are taken, the oldest idle one makes room for a newcomer, so
//! connections that say nothing cannot lock scrapers out until their
//! deadline. Every call does bounded work (accepts and drain reads have a
//! budget), since the loop it runs on also serves the clients.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::http::{MAX_REQUEST_BYTES, Pages, respond};
use crate::io_errors::{interrupted, would_block};

/// Most metrics connections at once; past it a newcomer evicts the oldest
/// idle one, or is closed at once when every one is writing its response.
pub const MAX_CONNECTIONS: usize = 8;
/// How long one exchange (request in, response out) may take.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Connections taken from the listener per call: enough to fill every slot
/// twice over in one go (a burst of scrapers, or idle ones being evicted
/// for them), few enough that a flood of connections costs the loop a
/// bounded amount of work per turn before it gets back to the clients.
const ACCEPT_BUDGET: usize = 2 * MAX_CONNECTIONS;
/// Size of one read.
const READ_BYTES: usize = 4096;
/// Reads (of [`READ_BYTES`]) given to a draining connection per call:
/// 16 KiB, twice [`MAX_REQUEST_BYTES`], room for what an honest peer may
/// still have in flight after its answer (the tail of a request answered
/// 400 for being too long, a small body). A scraper has nothing more to
/// say, so a peer that still has bytes after that is flooding and is
/// closed, rather than read without end on the server's one loop.
const DRAIN_READS: usize = 4;

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
    /// Its place in the order of acceptance: the idle connection with the
    /// lowest is the one evicted. Not `deadline`, which ties for all the
    /// connections accepted in one call.
    serial: u64,
}

impl Conn {
    /// True while evicting it loses no answer: its request is not complete
    /// yet (a scraper that has said nothing after all this time is the
    /// likeliest to be idle for good), or its response is already out and
    /// it is only draining. One whose response is being written is not.
    fn idle(&self) -> bool {
        self.output.is_none() || self.draining
    }
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
    /// Connections accepted so far: the next one's [`Conn::serial`].
    accepted: u64,
    /// Set (to when it happened) when [`ACCEPT_BUDGET`] ran out with
    /// connections perhaps still waiting: the listener is edge-triggered and
    /// will not say so again, so [`Endpoint::tick`] accepts once more, and
    /// [`Endpoint::deadline`] gives this instant, already past, so the loop
    /// polls without sleeping meanwhile.
    accept_again: Option<Instant>,
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open and
    /// all writing their responses.
    pub refused: u64,
    /// Idle connections (request not complete yet, or response already
    /// out) closed to make room for a new one.
    pub evicted: u64,
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
            accepted: 0,
            accept_again: None,
            refused: 0,
            evicted: 0,
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

    /// Cuts connections past their deadline, then accepts again if the last
    /// readiness event's accepts ran out of budget.
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
        if self.accept_again.is_some() {
            self.accept(now);
        }
    }

    /// When [`Endpoint::tick`] has work: the next connection's deadline, or
    /// at once if connections may be waiting to be accepted.
    pub fn deadline(&self) -> Option<Instant> {
        let cuts = self.conns.iter().map(|(_, conn)| conn.deadline);
        cuts.chain(self.accept_again).min()
    }

    /// Accepts pending connections, up to [`ACCEPT_BUDGET`] of them: past
    /// the cap each evicts an idle connection, or is closed at once if none
    /// is idle. With the budget spent, the rest wait for the next
    /// [`Endpoint::tick`].
    fn accept(&mut self, now: Instant) {
        self.accept_again = None;
        for _ in 0..ACCEPT_BUDGET {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if would_block(&err) => return,
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    debug!("metrics: accept failed: {err}");
                    return;
                }
            };
            if !self.make_room() {
                self.refused += 1;
                continue; // Dropped: closed.
            }
            let Some((registry, first)) = &self.registered else {
                return;
            };
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
                    serial: self.accepted,
                });
                self.accepted += 1;
            }
        }
        self.accept_again = Some(now);
    }

    /// Makes sure a slot is free for one more connection, closing the
    /// oldest idle one if all are taken; false if none is idle (every one
    /// is writing its response, which is never cut short for a newcomer).
    fn make_room(&mut self) -> bool {
        if self.conns.len() < MAX_CONNECTIONS {
            return true;
        }
        let oldest_idle = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.idle())
            .min_by_key(|(_, conn)| conn.serial)
            .map(|(key, _)| key);
        let Some(key) = oldest_idle else {
            return false;
        };
        debug!("metrics: closing the oldest idle connection to make room for a new one");
        self.evicted += 1;
        self.close(key);
        true
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
    let mut buffer = [0u8; READ_BYTES];
    if conn.draining {
        return drain(conn, &mut buffer);
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
    conn.draining && drain(conn, &mut buffer)
}

/// Reads and drops what a draining `conn` sends, at most [`DRAIN_READS`]
/// reads: true while it may yet close on its own (nothing more to read for
/// now), false once it has closed or failed, or still has bytes after the
/// budget (it is flooding; see [`DRAIN_READS`]).
fn drain(conn: &mut Conn, buffer: &mut [u8]) -> bool {
    for _ in 0..DRAIN_READS {
        match conn.stream.read(buffer) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(err) if would_block(&err) => return true,
            Err(err) if interrupted(&err) => {}
            Err(_) => return false,
        }
    }
    debug!("metrics: closing a connection that kept sending after its response");
    false
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream as StdStream;

    use mio::Poll;

    use super::*;

    /// Pages that are always there.
    struct Up;

    impl Pages for Up {
        fn healthy(&self) -> bool {
            true
        }
        fn metrics(&self, _open: bool) -> (String, &'static str) {
            (String::new(), "text/plain")
        }
    }

    /// An endpoint on a free loopback port, registered in `poll`.
    fn listening(poll: &Poll) -> Endpoint {
        let mut endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.register(poll.registry(), Token(0)).unwrap();
        endpoint
    }

    /// The serials of the open connections, in order: which ones are left.
    fn serials(endpoint: &Endpoint) -> Vec<u64> {
        let mut serials: Vec<u64> = endpoint.conns.iter().map(|(_, c)| c.serial).collect();
        serials.sort_unstable();
        serials
    }

    #[test]
    fn a_burst_of_connections_is_accepted_a_budget_at_a_time() {
        let poll = Poll::new().unwrap();
        let mut endpoint = listening(&poll);
        let burst = ACCEPT_BUDGET + 4;
        let _peers: Vec<StdStream> = (0..burst)
            .map(|_| StdStream::connect(endpoint.addr()).unwrap())
            .collect();
        // Let the kernel finish every handshake into the accept queue.
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        endpoint.ready(0, now, &Up);
        // One budget's worth: the first fill the slots, the rest each evict
        // the oldest (all are idle); the remainder waits, and the loop is
        // told not to sleep on it.
        assert_eq!(endpoint.conns.len(), MAX_CONNECTIONS);
        assert_eq!(endpoint.evicted, (ACCEPT_BUDGET - MAX_CONNECTIONS) as u64);
        assert_eq!(endpoint.refused, 0);
        assert!(endpoint.deadline().is_some_and(|at| at <= now));
        // The next tick takes the rest and finds the queue empty.
        endpoint.tick(now);
        assert_eq!(endpoint.evicted, (burst - MAX_CONNECTIONS) as u64);
        assert_eq!(endpoint.deadline(), Some(now + DEADLINE));
        // The survivors are the newest.
        let newest = (burst - MAX_CONNECTIONS) as u64..burst as u64;
        assert_eq!(serials(&endpoint), newest.collect::<Vec<_>>());
    }

    #[test]
    fn a_connection_writing_its_response_is_never_evicted() {
        let poll = Poll::new().unwrap();
        let mut endpoint = listening(&poll);
        // One more peer, once the endpoint has taken it (in or refused).
        let connect = |endpoint: &mut Endpoint| {
            let peer = StdStream::connect(endpoint.addr()).unwrap();
            let seen = endpoint.accepted + endpoint.refused;
            let started = Instant::now();
            while endpoint.accepted + endpoint.refused == seen {
                assert!(started.elapsed() < Duration::from_secs(5), "not accepted");
                endpoint.ready(0, Instant::now(), &Up);
            }
            peer
        };
        let _full: Vec<StdStream> = (0..MAX_CONNECTIONS)
            .map(|_| connect(&mut endpoint))
            .collect();
        // Every response mid-write, except the newest's, which is out.
        let newest = (MAX_CONNECTIONS - 1) as u64;
        for (_, conn) in endpoint.conns.iter_mut() {
            conn.output = Some(b"HTTP/1.1 200 OK\r\n".to_vec());
            conn.draining = conn.serial == newest;
        }
        // A newcomer evicts the draining one, the only idle one, though it
        // is the newest...
        let _next = connect(&mut endpoint);
        assert_eq!((endpoint.evicted, endpoint.refused), (1, 0));
        let mut expected: Vec<u64> = (0..newest).collect();
        expected.push(newest + 1);
        assert_eq!(serials(&endpoint), expected);
        // ...and once it too is writing, the next one is refused.
        for (_, conn) in endpoint.conns.iter_mut() {
            conn.output.get_or_insert_with(Vec::new);
        }
        let _refused = connect(&mut endpoint);
        assert_eq!((endpoint.evicted, endpoint.refused), (1, 1));
        assert_eq!(serials(&endpoint), expected);
        assert_eq!(endpoint.conns.len(), MAX_CONNECTIONS);
    }
}
