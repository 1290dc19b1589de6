//! The thin mio shell around the [`Engine`]: listeners, tokens and the
//! registry, accepting (the engine decides when to pause it), and
//! readiness turned into engine calls. Every rule lives in the engine.
//!
//! [`Server`] is a component: it registers its sockets in a `mio::Registry`
//! under a token range the caller picks, takes the readiness events that are
//! its own, and does its per-turn work in [`Server::tick`]. The
//! [`crate::runner`] module drives it with a `Poll` of its own, for the
//! binary ([`Server::run`]) and on a thread ([`crate::BackgroundServer`]).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::os::fd::AsRawFd;

use crate::config::Config;
use crate::engine::batcher::Batcher;
use crate::engine::protocol::Seq;
use crate::engine::records::Record;
use crate::engine::{Accepted, ConnId, Ending, Engine, Port, Readiness, Transport};
use crate::io_errors::{interrupted, would_block};
use crate::metrics::endpoint::Endpoint;
use crate::metrics::exposition::{self, Budgets};
use crate::metrics::http::Pages;
use crate::stats::Stats;

/// Token offsets inside the server's range.
const EVENT_LISTENER: usize = 0;
/// The client listener's offset.
const CLIENT_LISTENER: usize = 1;
/// The event source's offset.
const SOURCE: usize = 2;
/// The offset of the epoll instance that holds the connections awaiting
/// their id (see [`Net::awaiting`]).
const AWAITING_IDS: usize = 3;
/// Offset of client key 0; client `key` uses `FIRST_CLIENT + key`.
const FIRST_CLIENT: usize = 4;
/// Readiness events taken from [`Net::awaiting`] per `epoll_wait`; more
/// ready connections take more calls.
const AWAITING_EVENTS: usize = 1024;
/// Keepalive probes unanswered before a client whose read side has ended is
/// taken for gone (see [`Net::read_closed`]).
const READ_CLOSED_PROBES: u32 = 3;

/// The follower-maze server as a component of a mio loop.
#[derive(Debug)]
pub struct Server {
    /// Every rule and all state but the listeners.
    engine: Engine<Net>,
    /// The sockets' side.
    net: Net,
    /// The Prometheus endpoint, when `--metrics-addr` is set.
    metrics: Option<Endpoint>,
}

/// What the metrics endpoint serves, from the server as it is now.
struct Scrape<'a> {
    /// The counters.
    stats: Stats,
    /// The budgets the gauges are measured against.
    budgets: Budgets,
    /// The sockets, to tell whether the server listens yet.
    net: &'a Net,
}

impl Pages for Scrape<'_> {
    fn healthy(&self) -> bool {
        self.net.event_listener.is_some() || self.net.client_listener.is_some()
    }

    fn metrics(&self, open: bool) -> (String, &'static str) {
        if open {
            let page = exposition::encode(self.stats, self.budgets);
            (page, exposition::CONTENT_TYPE)
        } else {
            let page = exposition::encode_classic(self.stats, self.budgets);
            (page, exposition::CLASSIC_CONTENT_TYPE)
        }
    }
}

/// A bound listener and where it is bound.
#[derive(Debug)]
struct Listener {
    /// The socket.
    socket: TcpListener,
    /// Its address (with the port picked, when 0 was asked for).
    addr: SocketAddr,
}

/// Real sockets as the engine's [`Transport`].
#[derive(Debug)]
struct Net {
    /// Accepts the event source; `None` in an edge, which has none.
    event_listener: Option<Listener>,
    /// Accepts user clients; `None` in an ingest, which serves none, and in
    /// an edge until it has caught up with the log.
    client_listener: Option<Listener>,
    /// Our handle on the caller's registry, set by [`Server::register`].
    registry: Option<Registry>,
    /// First token of our range.
    token_base: usize,
    /// Keepalive interval for clients whose read side has ended.
    read_closed_probe: Duration,
    /// Connections awaiting their id, on an epoll instance of their own
    /// (its descriptor is registered in the caller's registry, so their
    /// readiness still wakes the loop). The engine asks which of them are
    /// readable after every read of the source: one `epoll_wait` with no
    /// timeout answers, where reading each would cost a syscall per
    /// waiting connection.
    awaiting: mio::Poll,
    /// Readiness taken from `awaiting`, reused between calls.
    awaiting_events: mio::Events,
}

/// Binds a non-blocking listener on `addr` whose accept queue holds
/// `backlog` connections (the kernel caps it at `net.core.somaxconn`).
fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As std and mio do on Unix: a restarted server may bind its port while
    // connections of the last one linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Binds the listener for `port` on its address (`--event-bind` or
/// `--client-bind`, else `--bind`) and its configured port
/// number (0 picks a free port). A failure names the listener and the flag
/// at fault.
fn bind_listener(config: &Config, port: Port) -> io::Result<Listener> {
    let (number, what, port_flag) = match port {
        Port::Events => (
            config.event_port,
            "the event source",
            "--event-port / eventListenerPort",
        ),
        Port::Clients => (
            config.client_port,
            "clients",
            "--client-port / clientListenerPort",
        ),
    };
    let (ip, bind_flag) = config.bind_for(port);
    let addr = SocketAddr::new(ip, number);
    let socket = listen(addr, config.listen_backlog).map_err(|e| {
        // Not an address of this machine: the port is not at fault.
        let flag = if e.kind() == io::ErrorKind::AddrNotAvailable {
            bind_flag
        } else {
            port_flag
        };
        io::Error::new(
            e.kind(),
            format!("cannot listen for {what} on {addr} ({flag}): {e}"),
        )
    })?;
    let addr = socket.local_addr()?;
    Ok(Listener { socket, addr })
}

impl Server {
    /// Binds both listeners as `config` says (port 0 picks a free port): the
    /// standalone server. A `config` that fails [`Config::validate`] is an
    /// `InvalidInput` error.
    pub fn bind(config: Config) -> io::Result<Server> {
        config
            .validate()
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let event_listener = bind_listener(&config, Port::Events)?;
        let client_listener = bind_listener(&config, Port::Clients)?;
        let engine = Engine::new(config, Instant::now());
        Server::with(engine, Some(event_listener), Some(client_listener))
    }

    /// Binds the event port only, for a cluster's ingest: `engine` (see
    /// [`Engine::new_ingest`]) batches the source's events into records for
    /// the shared log, which the caller takes with [`Server::take_record`].
    pub fn bind_ingest(config: Config, batcher: Batcher, next_seq: Seq) -> io::Result<Server> {
        let event_listener = bind_listener(&config, Port::Events)?;
        let engine = Engine::new_ingest(config, Instant::now(), batcher, next_seq);
        Server::with(engine, Some(event_listener), None)
    }

    /// A server with no listener yet, for a cluster's edge: it routes the
    /// shared log's records it is handed and opens its client port with
    /// [`Server::open_client_port`] once it has caught up with the log.
    pub fn edge(config: Config) -> io::Result<Server> {
        Server::with(Engine::new(config, Instant::now()), None, None)
    }

    /// A server around `engine` with these listeners (and the metrics
    /// endpoint, if configured).
    fn with(
        engine: Engine<Net>,
        events: Option<Listener>,
        clients: Option<Listener>,
    ) -> io::Result<Server> {
        let metrics = engine
            .config()
            .metrics_addr
            .map(Endpoint::bind)
            .transpose()?;
        let net = Net {
            read_closed_probe: engine.config().read_closed_probe,
            event_listener: events,
            client_listener: clients,
            registry: None,
            token_base: 0,
            awaiting: mio::Poll::new()?,
            awaiting_events: mio::Events::with_capacity(AWAITING_EVENTS),
        };
        Ok(Server {
            engine,
            net,
            metrics,
        })
    }

    /// Where the metrics endpoint listens, if it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(Endpoint::addr)
    }

    /// Where the event source connects, if this server takes one.
    pub fn event_addr(&self) -> Option<SocketAddr> {
        self.net.event_listener.as_ref().map(|l| l.addr)
    }

    /// Where user clients connect, if this server listens for them (yet).
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.net.client_listener.as_ref().map(|l| l.addr)
    }

    /// Binds the client port and starts accepting clients on it: an edge
    /// does so once it has caught up with the log, so a client never gets
    /// history. Call after [`Server::register`].
    pub fn open_client_port(&mut self) -> io::Result<SocketAddr> {
        let config = self.engine.config();
        let mut listener = bind_listener(config, Port::Clients)?;
        let registry = self
            .net
            .registry
            .as_ref()
            .ok_or_else(|| io::Error::other("the server is not registered in a loop"))?;
        let token = Token(self.net.token_base + CLIENT_LISTENER);
        registry.register(&mut listener.socket, token, Interest::READABLE)?;
        let addr = listener.addr;
        self.net.client_listener = Some(listener);
        Ok(addr)
    }

    /// An ingest's next record for the log (see [`Engine::take_record`]).
    pub fn take_record(&mut self) -> Option<Record> {
        self.engine.take_record()
    }

    /// The log has stored `count` more of the records taken, in order (see
    /// [`Engine::records_stored`]).
    pub fn records_stored(&mut self, count: usize, now: Instant) {
        self.engine.records_stored(count, now);
    }

    /// An edge's next record from the log (see [`Engine::push_record`]).
    pub fn push_record(&mut self, record: Record) {
        self.engine.push_record(record);
    }

    /// True once [`Server::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.engine.is_shutting_down()
    }

    /// Records pushed and not yet routed (see [`Engine::records_waiting`]).
    pub fn records_waiting(&self) -> usize {
        self.engine.records_waiting()
    }

    /// How many tokens the server uses, from the first one given to
    /// [`Server::register`].
    pub fn token_span(&self) -> usize {
        self.metrics_token() + self.metrics.as_ref().map_or(0, |_| Endpoint::token_span())
    }

    /// The offset of the metrics endpoint's first token: after the clients'.
    fn metrics_token(&self) -> usize {
        let config = self.engine.config();
        FIRST_CLIENT + config.max_clients + config.max_pending_clients
    }

    /// Registers the listeners in `registry`; the server will use tokens
    /// `first .. first + token_span()` and keeps a handle on the registry to
    /// register the connections it accepts.
    pub fn register(&mut self, registry: &Registry, first: Token) -> io::Result<()> {
        let net = &mut self.net;
        net.token_base = first.0;
        for (listener, offset) in [
            (&mut net.event_listener, EVENT_LISTENER),
            (&mut net.client_listener, CLIENT_LISTENER),
        ] {
            if let Some(listener) = listener {
                let token = Token(first.0 + offset);
                registry.register(&mut listener.socket, token, Interest::READABLE)?;
            }
        }
        let awaiting_fd = net.awaiting.as_raw_fd();
        let token = Token(first.0 + AWAITING_IDS);
        registry.register(&mut SourceFd(&awaiting_fd), token, Interest::READABLE)?;
        net.registry = Some(registry.try_clone()?);
        let metrics_token = Token(first.0 + self.metrics_token());
        if let Some(metrics) = self.metrics.as_mut() {
            metrics.register(registry, metrics_token)?;
            log::info!("serving metrics on http://{}/metrics", metrics.addr());
        }
        Ok(())
    }

    /// Handles a readiness event; returns false if its token is not ours.
    pub fn handle_event(&mut self, event: &Event, now: Instant) -> bool {
        let Some(offset) = event.token().0.checked_sub(self.net.token_base) else {
            return false;
        };
        let span = self.token_span();
        let metrics_token = self.metrics_token();
        if offset >= metrics_token
            && offset < span
            && let Some(metrics) = self.metrics.as_mut()
        {
            let scrape = Scrape {
                stats: self.engine.stats(),
                budgets: Budgets {
                    max_queued_bytes: self.engine.config().max_queued_bytes,
                    max_clients: self.engine.config().max_clients,
                },
                net: &self.net,
            };
            metrics.ready(offset - metrics_token, now, &scrape);
            return true;
        }
        let (engine, net) = (&mut self.engine, &mut self.net);
        match offset {
            EVENT_LISTENER => engine.accept(Port::Events, now, net),
            CLIENT_LISTENER => engine.accept(Port::Clients, now, net),
            SOURCE => engine.ready(ConnId::Source, Readiness::default(), now, net),
            AWAITING_IDS => engine.ready_ids(now, net),
            offset if offset < metrics_token => {
                let readiness = Readiness {
                    readable: event.is_readable() || event.is_read_closed(),
                    writable: event.is_writable(),
                    gone: event.is_error() || event.is_write_closed(),
                };
                let client = ConnId::Client(offset - FIRST_CLIENT);
                engine.ready(client, readiness, now, net);
            }
            _ => return false,
        }
        true
    }

    /// How long the caller may block in `poll` before calling
    /// [`Server::tick`] again; `None` means until a readiness event.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        let metrics = self
            .metrics
            .as_ref()
            .and_then(Endpoint::deadline)
            .map(|deadline| deadline.saturating_duration_since(now));
        let engine = self.engine.timeout(now);
        [engine, metrics].into_iter().flatten().min()
    }

    /// The per-turn work; call once after handling each batch of readiness
    /// events: [`Engine::tick`], whose doc lists the order of work in a
    /// turn, then the metrics endpoint's.
    pub fn tick(&mut self, now: Instant) {
        self.engine.tick(now, &mut self.net);
        if let Some(metrics) = self.metrics.as_mut() {
            metrics.tick(now);
        }
    }

    /// Starts a graceful shutdown (see [`Engine::shutdown`]): the listeners
    /// stop; the caller keeps calling [`Server::tick`] until
    /// [`Server::is_done`].
    pub fn shutdown(&mut self, now: Instant) {
        if let Some(registry) = &self.net.registry {
            let listeners = [&mut self.net.event_listener, &mut self.net.client_listener];
            for listener in listeners.into_iter().flatten() {
                let _ = registry.deregister(&mut listener.socket);
            }
        }
        self.engine.shutdown(now, &mut self.net);
    }

    /// True when nothing is queued for any client and nothing received is
    /// waiting to be routed.
    pub fn is_flushed(&self) -> bool {
        self.engine.is_flushed()
    }

    /// True once a shutdown is over at `now`: flushed, or its grace period
    /// (`--shutdown-grace-ms`) ran out (see [`Engine::is_done`]).
    pub fn is_done(&self, now: Instant) -> bool {
        self.engine.is_done(now)
    }

    /// A snapshot of every counter and gauge.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Runs the server on a `Poll` of its own until SIGINT, SIGTERM or SIGHUP (after
    /// raising the open-file limit to its hard limit), then shuts down
    /// gracefully; returns the final stats.
    pub fn run(self) -> io::Result<Stats> {
        crate::runner::run_until_signalled(self)
    }

    /// The configuration the server was bound with.
    pub fn config(&self) -> &Config {
        self.engine.config()
    }
}

impl Transport for Net {
    type Stream = TcpStream;
    type Peer = SocketAddr;

    fn accept(&mut self, port: Port) -> Accepted<TcpStream, SocketAddr> {
        let listener = match port {
            Port::Events => &self.event_listener,
            Port::Clients => &self.client_listener,
        };
        let Some(listener) = listener else {
            return Accepted::Nothing;
        };
        loop {
            match listener.socket.accept() {
                Ok((stream, peer)) => return Accepted::Connection(stream, peer),
                Err(err) if would_block(&err) => return Accepted::Nothing,
                Err(err) if interrupted(&err) => continue,
                Err(err) if is_resource_exhaustion(&err) => return Accepted::OutOfResources(err),
                // The peer gave up between SYN and accept, or similar: only
                // that connection is affected.
                Err(err) => debug!("accept failed: {err}"),
            }
        }
    }

    fn open(&mut self, stream: &mut TcpStream, id: ConnId) -> io::Result<()> {
        let registry = self
            .registry
            .as_ref()
            .ok_or_else(|| io::Error::other("the server is not registered in a loop"))?;
        let (offset, interest) = match id {
            ConnId::Source => (SOURCE, Interest::READABLE),
            ConnId::AwaitingId(key) => {
                // Frames are batched per turn already; Nagle would only
                // delay.
                let _ = stream.set_nodelay(true);
                return self
                    .awaiting
                    .registry()
                    .register(stream, Token(key), Interest::READABLE);
            }
            // Both interests once, for good: readiness is edge-triggered, so
            // this costs nothing while idle and saves a reregister per full
            // socket.
            ConnId::Client(key) => {
                // Its id arrived: from the waiting ones' epoll to the loop's.
                self.awaiting.registry().deregister(stream)?;
                (FIRST_CLIENT + key, Interest::READABLE | Interest::WRITABLE)
            }
        };
        registry.register(stream, Token(self.token_base + offset), interest)
    }

    fn close(&mut self, mut stream: TcpStream, ending: Ending) {
        if let Some(registry) = &self.registry {
            // One of these fails harmlessly: a connection is in one epoll
            // instance, or none if it was never opened.
            let _ = registry.deregister(&mut stream);
            let _ = self.awaiting.registry().deregister(&mut stream);
        }
        if ending == Ending::Reset {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
    }

    /// Turns on TCP keepalive. The client may have half-closed and still
    /// read (its peer answers the probes), or closed for good, which shows
    /// only when something is written to it. If nothing ever is, the probes
    /// end the connection with an error: reset once the closed peer's
    /// lingering socket expires (`tcp_fin_timeout`, 60 s by default; it
    /// answers probes until then), or after [`READ_CLOSED_PROBES`]
    /// unanswered ones if the peer vanished, instead of holding a client
    /// slot for good.
    fn read_closed(&mut self, stream: &TcpStream) {
        let every = self.read_closed_probe;
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(every)
            .with_interval(every)
            .with_retries(READ_CLOSED_PROBES);
        if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            debug!("cannot turn on keepalive for a read-closed client: {err}");
        }
    }

    fn ready_awaiting(&mut self, ready: &mut Vec<usize>) {
        loop {
            let timeout = Some(Duration::ZERO);
            match self.awaiting.poll(&mut self.awaiting_events, timeout) {
                Ok(()) => {}
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    warn!("cannot poll the connections awaiting their id: {err}");
                    return;
                }
            }
            let before = ready.len();
            ready.extend(self.awaiting_events.iter().map(|event| event.token().0));
            if ready.len() - before < AWAITING_EVENTS {
                return; // Every ready one is taken.
            }
        }
    }
}

/// True for accept errors that mean "out of descriptors or memory": retrying
/// at once would spin, so accepting pauses instead.
fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
