//! The mio loop: listeners, the event source, clients in a slab, readiness.
//!
//! [`Server`] is a component: it registers its sockets in a `mio::Registry`
//! under a token range the caller picks, takes the readiness events that are
//! its own, and does its per-turn work in [`Server::tick`]. The
//! [`crate::runner`] module drives it with a `Poll` of its own, for the
//! binary ([`Server::run`]) and on a thread ([`crate::BackgroundServer`]).
//!
//! Each loop turn: readiness events are handled (accepts with the id read
//! right after, client reads, writable sockets), then [`Server::tick`] does
//! the rest in the order its doc lists: the one place that order is decided.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::config::Config;
use crate::engine::consumer::{CloseReason, ConsumerLimits, ConsumerState, Cut};
use crate::engine::inbox::{Client, ClientState, Inbox, Source, interrupted, would_block};
use crate::engine::outbox::{BroadcastLog, Outbox};
use crate::engine::pipeline::{Deliver, Pipeline};
use crate::engine::protocol::{self, Line};
use crate::engine::router::ConnKey;
use crate::log_limit::LogLimit;
use crate::stats::Stats;

/// Token offsets inside the server's range.
const EVENT_LISTENER: usize = 0;
/// The client listener's offset.
const CLIENT_LISTENER: usize = 1;
/// The event source's offset.
const SOURCE: usize = 2;
/// Offset of slab key 0; client `key` uses `FIRST_CLIENT + key`.
const FIRST_CLIENT: usize = 3;

/// Size of the event source's read buffer: large reads mean few syscalls.
const SOURCE_INBOX_BYTES: usize = 1024 * 1024;
/// Most source bytes read in one loop turn, before the outboxes are flushed
/// (a fast source must not starve the clients). Larger turns mean fewer,
/// larger writes: going from 1 MiB to 8 MiB made the default simulation
/// about 10 % faster. A turn also ends early once a writable client has
/// [`TURN_OUTPUT_BYTES`] to be written.
const SOURCE_BYTES_PER_TURN: usize = 8 * 1024 * 1024;
/// Bytes a client that can be written may gain in one turn (its own frames,
/// or broadcasts): past it the turn ends, so it is written before it is
/// given more, and output leaves in steady batches instead of one burst.
const TURN_OUTPUT_BYTES: usize = 2 * 1024 * 1024;
/// An idle client outbox larger than this is freed, so one burst does not
/// pin memory for the connection's lifetime.
const OUTBOX_KEEP_BYTES: usize = 64 * 1024;
/// First pause after an accept failed for lack of descriptors; it doubles up
/// to [`ACCEPT_BACKOFF_MAX`] while failures continue.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts after failures.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Event source connections that may wait for the current one to end (test
/// suites close a source and open the next at once); more wait in the
/// kernel's accept queue.
const MAX_WAITING_SOURCES: usize = 8;
/// Keepalive probes unanswered before a client whose read side has ended is
/// taken for gone (see [`probe_while_read_closed`]).
const READ_CLOSED_PROBES: u32 = 3;
/// Bytes read and dropped per call from a registered client, which has
/// nothing more to say: a stack buffer, so a chatty client costs reads, not
/// memory.
const DISCARD_BYTES: usize = 4096;

/// Counters kept by the server itself (the pipeline keeps the rest).
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    /// See [`Stats::bytes_out`].
    bytes_out: u64,
    /// Clients cut, by [`Cut`] (indexed by `cut as usize`).
    cuts: [u64; Cut::ALL.len()],
    /// See [`Stats::bad_ids`].
    bad_ids: u64,
    /// See [`Stats::clients_refused`].
    clients_refused: u64,
    /// See [`Stats::sources_refused`].
    sources_refused: u64,
    /// See [`Stats::accept_errors`].
    accept_errors: u64,
    /// See [`Stats::source_pauses`].
    source_pauses: u64,
}

/// The pipeline's delivery target, built from the client fields of a
/// `Server` so the pipeline field can be borrowed beside it.
macro_rules! outboxes {
    ($server:ident, $now:expr) => {
        Outboxes {
            clients: &mut $server.clients,
            dirty: &mut $server.dirty,
            closing: &mut $server.closing,
            own_bytes: &mut $server.own_bytes,
            log: &mut $server.log,
            log_flushed: $server.log_flushed,
            queued_bytes_peak: &mut $server.queued_bytes_peak,
            output_limit: $server.config.client_output_limit,
            cuts: &mut $server.counters.cuts,
            now: $now,
            turn_full: &mut $server.turn_full,
            max_queued_bytes: $server.config.max_queued_bytes,
            holders: $server.holders,
        }
    };
}

/// The follower-maze server as a component of a mio loop.
#[derive(Debug)]
pub struct Server {
    /// Every knob.
    config: Config,
    /// The slow-consumer rule's limits, from `config`.
    consumer_limits: ConsumerLimits,
    /// Accepts the event source.
    event_listener: TcpListener,
    /// Accepts user clients.
    client_listener: TcpListener,
    /// Where `event_listener` is bound.
    event_addr: SocketAddr,
    /// Where `client_listener` is bound.
    client_addr: SocketAddr,
    /// Our handle on the caller's registry, set by [`Server::register`].
    registry: Option<Registry>,
    /// First token of our range.
    token_base: usize,
    /// The event source, when one is connected.
    source: Option<Source>,
    /// True when event source connections were left in the kernel's accept
    /// queue because [`MAX_WAITING_SOURCES`] were waiting: accepting them
    /// resumes, unprompted (readiness is edge-triggered), once there is room.
    sources_left_in_queue: bool,
    /// Event sources that connected while another was connected, in order:
    /// each takes over once the one before it has been read to its end, and
    /// all are refused once the current one is found open (read to
    /// `WouldBlock`). Not registered, not read while they wait.
    waiting_sources: VecDeque<(TcpStream, SocketAddr)>,
    /// User clients, by slab key.
    clients: Slab<Client>,
    /// Parse, reorder, route.
    pipeline: Pipeline,
    /// Clients whose outbox gained frames this turn and may be written.
    dirty: Vec<ConnKey>,
    /// Clients to close at the end of this turn.
    closing: Vec<ConnKey>,
    /// Clients that owed bytes after their last flush, with their serials:
    /// judged by the slow-consumer rule when one can be due
    /// (`next_judgement`). A client that owes nothing is not on it, and
    /// cannot be cut.
    owing: Vec<(ConnKey, u64)>,
    /// Clients holding the source paused: each owes more than half its
    /// output limit and still reads ([`ConsumerLimits::holds_source`]).
    holders: usize,
    /// The earliest time a client on `owing` can be due for a cut (never
    /// later: progress only moves a client's time later).
    next_judgement: Option<Instant>,
    /// Clients awaiting their id, by deadline (ids arrive in accept order
    /// with one timeout, so a queue is sorted by construction).
    id_deadlines: VecDeque<(Instant, ConnKey, u64)>,
    /// Bytes in the clients' own outbox buffers (the log not included).
    own_bytes: usize,
    /// Broadcast frames, stored once for every client.
    log: BroadcastLog,
    /// The log's end when every client last took in its broadcasts.
    log_flushed: u64,
    /// The most [`Server::queued_bytes`] has been.
    queued_bytes_peak: usize,
    /// True while reading the source is paused for back-pressure.
    source_paused: bool,
    /// True once a writable client has [`TURN_OUTPUT_BYTES`] queued this
    /// turn: routing stops until the outboxes have been written.
    turn_full: bool,
    /// Accepting is paused until then after running out of descriptors.
    accept_paused_until: Option<Instant>,
    /// The next pause if accepting fails again.
    accept_backoff: Duration,
    /// True once shutdown began: no accepting, no reading the source.
    shutting_down: bool,
    /// Serial for the next client connection.
    next_serial: u64,
    /// The server's own counters.
    counters: Counters,
    /// Limits log lines about malformed source lines.
    malformed_log: LogLimit,
    /// Limits log lines about misbehaving clients.
    client_log: LogLimit,
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

impl Server {
    /// Binds both listeners as `config` says (port 0 picks a free port).
    pub fn bind(config: Config) -> io::Result<Server> {
        let bind = |port| -> io::Result<(TcpListener, SocketAddr)> {
            let addr = SocketAddr::new(config.bind, port);
            let listener = listen(addr, config.listen_backlog)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let local = listener.local_addr()?;
            Ok((listener, local))
        };
        let (event_listener, event_addr) = bind(config.event_port)?;
        let (client_listener, client_addr) = bind(config.client_port)?;
        let now = Instant::now();
        Ok(Server {
            pipeline: Pipeline::new(
                config.window_capacity,
                config.window_bytes,
                config.hole_timeout,
            ),
            consumer_limits: ConsumerLimits {
                write_deadline: config.write_deadline,
                max_lag: config.max_lag,
                output_limit: config.client_output_limit,
            },
            config,
            event_listener,
            client_listener,
            event_addr,
            client_addr,
            registry: None,
            token_base: 0,
            source: None,
            waiting_sources: VecDeque::new(),
            sources_left_in_queue: false,
            clients: Slab::new(),
            dirty: Vec::new(),
            closing: Vec::new(),
            owing: Vec::new(),
            holders: 0,
            next_judgement: None,
            id_deadlines: VecDeque::new(),
            own_bytes: 0,
            log: BroadcastLog::new(),
            log_flushed: 0,
            queued_bytes_peak: 0,
            source_paused: false,
            turn_full: false,
            accept_paused_until: None,
            accept_backoff: ACCEPT_BACKOFF_MIN,
            shutting_down: false,
            next_serial: 0,
            counters: Counters::default(),
            malformed_log: LogLimit::new(now),
            client_log: LogLimit::new(now),
        })
    }

    /// Where the event source connects.
    pub fn event_addr(&self) -> SocketAddr {
        self.event_addr
    }

    /// Where user clients connect.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// How many tokens the server uses, from the first one given to
    /// [`Server::register`].
    pub fn token_span(&self) -> usize {
        FIRST_CLIENT + self.config.max_clients
    }

    /// Registers the listeners in `registry`; the server will use tokens
    /// `first .. first + token_span()` and keeps a handle on the registry to
    /// register the connections it accepts.
    pub fn register(&mut self, registry: &Registry, first: Token) -> io::Result<()> {
        self.token_base = first.0;
        registry.register(
            &mut self.event_listener,
            Token(first.0 + EVENT_LISTENER),
            Interest::READABLE,
        )?;
        registry.register(
            &mut self.client_listener,
            Token(first.0 + CLIENT_LISTENER),
            Interest::READABLE,
        )?;
        self.registry = Some(registry.try_clone()?);
        Ok(())
    }

    /// Handles a readiness event; returns false if its token is not ours.
    pub fn handle_event(&mut self, event: &Event) -> bool {
        let Some(offset) = event.token().0.checked_sub(self.token_base) else {
            return false;
        };
        match offset {
            EVENT_LISTENER => self.accept_sources(),
            CLIENT_LISTENER => self.accept_clients(Instant::now()),
            SOURCE => {
                if let Some(source) = self.source.as_mut() {
                    source.readable = true;
                }
            }
            offset if offset < self.token_span() => {
                self.client_ready(offset - FIRST_CLIENT, event);
            }
            _ => return false,
        }
        true
    }

    /// How long the caller may block in `poll` before calling
    /// [`Server::tick`] again; `None` means until a readiness event.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        let can_release = self.pipeline.has_ready() && !self.output_full();
        if self.source_has_unread_bytes() || can_release {
            return Some(Duration::ZERO); // Work is waiting.
        }
        // The pipeline's timers run only while the source is not paused.
        let pipeline_deadline = self.pipeline.deadline().filter(|_| !self.source_paused);
        let deadlines = [
            self.next_judgement,
            pipeline_deadline,
            self.id_deadlines.front().map(|&(deadline, ..)| deadline),
            self.accept_paused_until,
        ];
        deadlines
            .into_iter()
            .flatten()
            .min()
            .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// The per-turn work; call once after handling each batch of readiness
    /// events. The order of work in a turn is decided here and only here:
    ///
    /// 1. Accepting resumes if its back-off after running out of
    ///    descriptors is over.
    /// 2. The source resumes if queued output drained to half the budget
    ///    and no client far behind holds it.
    /// 3. In-order frames an earlier turn left in the window are routed.
    /// 4. A waiting event source takes over if the last one has ended.
    /// 5. The source is read and routed, a turn's worth at most. After each
    ///    read, before its bytes are routed, the client port is taken in:
    ///    pending connections accepted and pending id lines read, so an id
    ///    sent before an event is never overtaken by it. A source read to
    ///    its end hands over to the next waiting one in the same turn; one
    ///    read to `WouldBlock` is open, and the sources waiting behind it
    ///    are refused. Sources left in the accept queue (too many waited)
    ///    are accepted now that there may be room.
    /// 6. Pipeline timers: a new source's probation, a hole's wait.
    /// 7. Clients that sent no id in time are marked for closing.
    /// 8. Outboxes that gained frames are written.
    /// 9. Clients that still owe bytes are judged by the slow-consumer rule
    ///    ([`crate::engine::consumer`]) when one can be due: cut, or let go of the
    ///    source if they stopped reading.
    /// 10. Marked clients are closed (never in the middle of a fan-out),
    ///     the broadcast log lets go of what all have written, and the
    ///     source resumes if that drained enough.
    pub fn tick(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|until| until <= now) {
            self.accept_paused_until = None;
            self.accept_sources();
            self.accept_clients(now);
        }
        self.resume_source_if_drained(now);
        let mut outboxes = outboxes!(self, now);
        self.pipeline.release_ready(now, &mut outboxes);
        self.take_over_source();
        self.read_source(now);
        if self.sources_left_in_queue && self.waiting_sources.len() < MAX_WAITING_SOURCES {
            self.accept_sources();
        }
        if !self.source_has_unread_bytes() && !self.source_paused {
            // The missing seq cannot be sitting unread in our socket.
            let mut outboxes = outboxes!(self, now);
            self.pipeline.on_timer(now, &mut outboxes);
        }
        self.expire_id_deadlines(now);
        self.flush_dirty(now);
        self.judge_owing_clients(now);
        self.close_marked();
        self.release_log();
        self.resume_source_if_drained(now);
    }

    /// Starts a graceful shutdown: stop accepting, stop reading the source,
    /// and deliver everything already read, holes given up on, as fast as the
    /// clients take it. The caller keeps calling [`Server::tick`] until
    /// [`Server::is_flushed`] or its grace period ends.
    pub fn shutdown(&mut self, now: Instant) {
        if std::mem::replace(&mut self.shutting_down, true) {
            return;
        }
        info!(
            "shutting down: no new connections; flushing {} queued bytes",
            self.queued_bytes()
        );
        if let Some(registry) = &self.registry {
            let _ = registry.deregister(&mut self.event_listener);
            let _ = registry.deregister(&mut self.client_listener);
        }
        if !self.waiting_sources.is_empty() {
            info!(
                "closing {} event source(s) that were waiting to take over",
                self.waiting_sources.len()
            );
            self.waiting_sources.clear();
        }
        // Lines already read are events received: route them all (into the
        // window, when the outboxes are full) before the socket goes.
        self.route_source_lines(now, false);
        self.close_source("shutdown", now);
        self.pipeline.end_of_stream();
        let mut outboxes = outboxes!(self, now);
        self.pipeline.release_ready(now, &mut outboxes);
        for (key, client) in &mut self.clients {
            if matches!(client.state, ClientState::AwaitingId { .. }) {
                mark_closing(&mut self.closing, key, client, CloseReason::Shutdown);
            }
        }
        self.flush_dirty(now);
        self.close_marked();
        self.release_log();
    }

    /// True when nothing is queued for any client and nothing received is
    /// waiting to be routed.
    pub fn is_flushed(&self) -> bool {
        self.queued_bytes() == 0 && !self.pipeline.has_ready()
    }

    /// Bytes held for clients: their own frames, plus the broadcast log
    /// (counted once, however many clients it serves).
    fn queued_bytes(&self) -> usize {
        self.own_bytes + self.log.len()
    }

    /// True when no more may be routed for now: queued output is over the
    /// budget, or a client that still reads is too far behind.
    fn output_full(&self) -> bool {
        self.queued_bytes() > self.config.max_queued_bytes || self.holders > 0
    }

    /// A snapshot of every counter and gauge.
    pub fn stats(&self) -> Stats {
        let pipeline = self.pipeline.counters();
        let (window_depth, window_bytes) = self.pipeline.window_depth();
        let clients = self.pipeline.router().connections();
        let cuts = self.counters.cuts;
        Stats {
            events_in: pipeline.events_in,
            events_routed: pipeline.events_routed,
            notifications: pipeline.notifications,
            bytes_out: self.counters.bytes_out,
            malformed: pipeline.malformed,
            skipped: pipeline.window.skipped,
            late: pipeline.window.late,
            duplicates: pipeline.window.duplicates,
            runs: pipeline.runs,
            slow_consumers: cuts.iter().sum(),
            cut_write_deadline: cuts[Cut::WriteDeadline as usize],
            cut_output_limit: cuts[Cut::OutputLimit as usize],
            cut_lag: cuts[Cut::Lag as usize],
            bad_ids: self.counters.bad_ids,
            clients_refused: self.counters.clients_refused,
            sources_refused: self.counters.sources_refused,
            accept_errors: self.counters.accept_errors,
            source_pauses: self.counters.source_pauses,
            clients,
            clients_awaiting_id: self.clients.len() - clients,
            clients_holding_source: self.holders,
            source_connected: self.source.is_some(),
            follow_edges: self.pipeline.router().graph().edges(),
            window_depth,
            window_bytes,
            queued_bytes: self.queued_bytes(),
            queued_bytes_peak: self.queued_bytes_peak,
        }
    }

    /// Runs the server on a `Poll` of its own until SIGINT or SIGTERM, then
    /// shuts down gracefully; returns the final stats.
    pub fn run(self) -> io::Result<Stats> {
        crate::runner::run_until_signalled(self)
    }

    /// The configuration the server was bound with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True when the source may have bytes we have not read yet and we are
    /// allowed to read them.
    fn source_has_unread_bytes(&self) -> bool {
        self.source
            .as_ref()
            .is_some_and(|source| source.readable && !self.source_paused)
    }

    /// Accepts pending event source connections while fewer than
    /// [`MAX_WAITING_SOURCES`] wait; the rest stay in the kernel's accept
    /// queue until those have taken over or been refused.
    fn accept_sources(&mut self) {
        loop {
            if self.waiting_sources.len() >= MAX_WAITING_SOURCES {
                self.sources_left_in_queue = true;
                return;
            }
            let Some((stream, peer)) = self.accept(EVENT_LISTENER) else {
                self.sources_left_in_queue = false;
                return;
            };
            self.add_source(stream, peer);
        }
    }

    /// Accepts every pending client connection, and reads each one's id
    /// right away: it is usually there already.
    fn accept_clients(&mut self, now: Instant) {
        while let Some((stream, peer)) = self.accept(CLIENT_LISTENER) {
            if let Some(key) = self.add_client(stream, peer, now) {
                self.read_client(key, now);
            }
        }
    }

    /// Takes in what has arrived on the client port: new connections, and
    /// the id lines of clients still awaiting theirs. Called after reading
    /// source bytes and before routing them, so whatever a client sent
    /// before those bytes were sent is in first.
    fn take_in_client_port(&mut self, now: Instant) {
        self.accept_clients(now);
        for index in 0..self.id_deadlines.len() {
            let (_, key, serial) = self.id_deadlines[index];
            let awaiting = self.clients.get(key).is_some_and(|client| {
                client.serial == serial
                    && client.closing.is_none()
                    && matches!(client.state, ClientState::AwaitingId { .. })
            });
            if awaiting {
                self.read_client(key, now);
            }
        }
    }

    /// One accept on a listener; `None` when there is nothing (more) to
    /// accept now, including after a failure that pauses accepting.
    fn accept(&mut self, which: usize) -> Option<(TcpStream, SocketAddr)> {
        if self.accept_paused_until.is_some() || self.shutting_down {
            return None;
        }
        let listener = if which == EVENT_LISTENER {
            &self.event_listener
        } else {
            &self.client_listener
        };
        loop {
            match listener.accept() {
                Ok(accepted) => {
                    self.accept_backoff = ACCEPT_BACKOFF_MIN;
                    return Some(accepted);
                }
                Err(err) if would_block(&err) => return None,
                Err(err) if interrupted(&err) => continue,
                Err(err) if is_resource_exhaustion(&err) => {
                    self.counters.accept_errors += 1;
                    let pause = self.accept_backoff;
                    self.accept_backoff = (pause * 2).min(ACCEPT_BACKOFF_MAX);
                    self.accept_paused_until = Some(Instant::now() + pause);
                    warn!(
                        "cannot accept connections ({err}); open connections are still served; retrying in {pause:?}"
                    );
                    return None;
                }
                // The peer gave up between SYN and accept, or similar: only
                // that connection is affected.
                Err(err) => debug!("accept failed: {err}"),
            }
        }
    }

    /// Takes a new event source, or has it wait while another is connected
    /// (or the last one's events are still being put into the window).
    fn add_source(&mut self, stream: TcpStream, peer: SocketAddr) {
        let busy =
            self.source.is_some() || !self.waiting_sources.is_empty() || self.pipeline.is_blocked();
        if !busy {
            self.install_source(stream, peer);
            return;
        }
        debug!("event source {peer} waits for the current one to end");
        self.waiting_sources.push_back((stream, peer));
        if let Some(source) = self.source.as_mut() {
            // Read it to its end or to `WouldBlock` this turn: that decides
            // whether the newcomer takes over or is refused.
            source.readable = true;
        }
    }

    /// Makes `stream` the event source; false if it cannot be registered.
    fn install_source(&mut self, mut stream: TcpStream, peer: SocketAddr) -> bool {
        let Some(registry) = &self.registry else {
            return false;
        };
        let token = Token(self.token_base + SOURCE);
        if let Err(err) = registry.register(&mut stream, token, Interest::READABLE) {
            warn!("cannot register event source {peer}: {err}");
            return false;
        }
        info!("event source connected from {peer}");
        self.pipeline.source_connected();
        self.source = Some(Source {
            stream,
            inbox: Inbox::new(SOURCE_INBOX_BYTES, self.config.max_line),
            readable: true,
        });
        true
    }

    /// Lets the first waiting event source take over, if there is no source
    /// and the last one's events are all in the window. True if one did.
    fn take_over_source(&mut self) -> bool {
        if self.source.is_some() || self.shutting_down || self.pipeline.is_blocked() {
            return false;
        }
        while let Some((stream, peer)) = self.waiting_sources.pop_front() {
            if self.install_source(stream, peer) {
                return true;
            }
        }
        false
    }

    /// Refuses the event sources waiting behind one that is still open:
    /// two sources never interleave.
    fn refuse_waiting_sources(&mut self) {
        for (_, peer) in self.waiting_sources.drain(..) {
            self.counters.sources_refused += 1;
            warn!("refusing event source {peer}: another event source is connected");
        }
    }

    /// Takes a new client connection, or refuses it past the limit; returns
    /// its key.
    fn add_client(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
    ) -> Option<ConnKey> {
        if self.clients.len() >= self.config.max_clients {
            self.counters.clients_refused += 1;
            if self.client_log.allow(now) {
                warn!(
                    "refusing client {peer}: {} clients connected (limit {})",
                    self.clients.len(),
                    self.config.max_clients
                );
            }
            return None;
        }
        let registry = self.registry.as_ref()?;
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        let token = Token(self.token_base + FIRST_CLIENT + key);
        // Both interests once, for good: readiness is edge-triggered, so this
        // costs nothing while idle and saves a reregister per full socket.
        if let Err(err) =
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            warn!("cannot register client {peer}: {err}");
            return None;
        }
        // Frames are batched per turn already; Nagle would only add delay.
        let _ = stream.set_nodelay(true);
        let serial = self.next_serial;
        self.next_serial += 1;
        let deadline = now + self.config.id_timeout;
        self.id_deadlines.push_back((deadline, key, serial));
        debug!("client connected from {peer}");
        entry.insert(Client {
            stream,
            state: ClientState::AwaitingId {
                inbox: Inbox::new(0, self.config.max_id_line),
            },
            outbox: Outbox::new(&self.log),
            write_blocked: false,
            read_closed: false,
            closing: None,
            serial,
            owes: false,
            last_progress: now,
            holding: false,
        });
        Some(key)
    }

    /// Handles readiness on a client socket.
    fn client_ready(&mut self, key: ConnKey, event: &Event) {
        let Some(client) = self.clients.get_mut(key) else {
            return; // Sporadic events for closed connections happen.
        };
        if client.closing.is_some() {
            return;
        }
        if event.is_error() || event.is_write_closed() {
            // Reset or hung up: nothing can be written to it any more. A
            // client that closed after reading everything is told from one
            // that half-closed only this way, after a write to it.
            let error = client.stream.take_error().ok().flatten();
            debug!("client {key} is gone ({error:?})");
            mark_closing(&mut self.closing, key, client, CloseReason::Gone);
            return;
        }
        let now = Instant::now();
        if event.is_writable() {
            client.write_blocked = false;
            // A client awaiting its id is owed nothing: its outbox is made
            // anew, at the log's end, when it registers.
            let registered = matches!(client.state, ClientState::Registered { .. });
            if registered && client.outbox.pending(&self.log) > 0 {
                self.flush_client(key, now);
            }
        }
        if event.is_readable() || event.is_read_closed() {
            self.read_client(key, now);
        }
    }

    /// Reads what a client sent: its id line, or (once registered) anything
    /// else, which is dropped, until the socket would block. End-of-file
    /// after the id is a half-close: the client stays and keeps receiving,
    /// and is not read again.
    fn read_client(&mut self, key: ConnKey, now: Instant) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        if client.closing.is_some() || client.read_closed {
            return;
        }
        if let ClientState::AwaitingId { inbox, .. } = &mut client.state {
            let outcome = read_id(inbox, &mut client.stream);
            match outcome {
                IdRead::Pending => return,
                IdRead::Id(user) => {
                    debug!("client registered as user {user}");
                    client.state = ClientState::Registered { user };
                    // Owed the broadcasts from now on, not earlier ones.
                    client.outbox = Outbox::new(&self.log);
                    client.last_progress = now;
                    self.pipeline.register(user, key);
                }
                IdRead::Closed => {
                    debug!("client closed before sending its id");
                    mark_closing(&mut self.closing, key, client, CloseReason::ClosedBeforeId);
                    return;
                }
                IdRead::Bad(reason) => {
                    self.counters.bad_ids += 1;
                    if self.client_log.allow(now) {
                        warn!("closing client: bad id line: {reason}");
                    }
                    mark_closing(&mut self.closing, key, client, CloseReason::BadId);
                    return;
                }
            }
        }
        // Registered: nothing more is expected; what comes is dropped.
        let mut discard = [0u8; DISCARD_BYTES];
        loop {
            match io::Read::read(&mut client.stream, &mut discard) {
                Ok(0) => {
                    if !client.read_closed {
                        debug!(
                            "{} ended its sending side; it keeps receiving",
                            describe(client)
                        );
                        client.read_closed = true;
                        probe_while_read_closed(&client.stream, self.config.read_closed_probe);
                    }
                    return;
                }
                Ok(_) => continue,
                Err(err) if would_block(&err) => return,
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    debug!("client {key} read error: {err}");
                    mark_closing(&mut self.closing, key, client, CloseReason::ReadError);
                    return;
                }
            }
        }
    }

    /// Closes clients that did not send their id in time.
    fn expire_id_deadlines(&mut self, now: Instant) {
        while let Some(&(deadline, key, serial)) = self.id_deadlines.front() {
            if deadline > now {
                break;
            }
            self.id_deadlines.pop_front();
            let Some(client) = self.clients.get_mut(key) else {
                continue;
            };
            if client.serial == serial && matches!(client.state, ClientState::AwaitingId { .. }) {
                self.counters.bad_ids += 1;
                if self.client_log.allow(now) {
                    warn!("closing client: no id within {:?}", self.config.id_timeout);
                }
                mark_closing(&mut self.closing, key, client, CloseReason::NoIdInTime);
            }
        }
    }

    /// Resumes reading the source once queued output fell to half the budget
    /// and no client holds it.
    fn resume_source_if_drained(&mut self, now: Instant) {
        let drained = self.queued_bytes() <= self.config.max_queued_bytes / 2;
        if self.source_paused && drained && self.holders == 0 {
            self.source_paused = false;
            // The missing seq of a hole may have waited in our socket.
            self.pipeline.restart_hole_timer(now);
            debug!(
                "resuming the event source: {} bytes queued",
                self.queued_bytes()
            );
        }
    }

    /// Reads and routes up to [`SOURCE_BYTES_PER_TURN`] bytes from the
    /// source (step 5 of [`Server::tick`]), ending the turn early when a
    /// client needs writing first, and pausing the source when queued output
    /// passes its budget.
    fn read_source(&mut self, now: Instant) {
        if self.shutting_down || !self.source_has_unread_bytes() {
            return;
        }
        let mut budget = SOURCE_BYTES_PER_TURN;
        loop {
            // Lines left from a previous read or turn go first.
            match self.route_source_lines(now, true) {
                Routed::All => {}
                Routed::TurnFull => return self.end_turn_early(),
                Routed::OverBudget => return self.pause_source(),
            }
            if budget == 0 {
                return;
            }
            let Some(source) = self.source.as_mut() else {
                return;
            };
            match source.inbox.read_from(&mut source.stream, budget) {
                Ok(0) => {
                    if source.inbox.has_unfinished_line() {
                        self.pipeline.overlong_line();
                        warn!(
                            "event source ended in the middle of a line; the partial line is dropped"
                        );
                    }
                    self.close_source("closed by the source", now);
                    if !self.take_over_source() {
                        return;
                    }
                }
                Ok(n) => {
                    budget -= n;
                    self.take_in_client_port(now);
                }
                Err(err) if would_block(&err) => {
                    source.readable = false;
                    // Open, so whoever connected since waits in vain.
                    self.refuse_waiting_sources();
                    // The bytes read before this call still need routing.
                    budget = 0;
                }
                Err(err) if interrupted(&err) => {}
                Err(err) => {
                    warn!("event source read error: {err}");
                    self.close_source("read error", now);
                    if !self.take_over_source() {
                        return;
                    }
                }
            }
        }
    }

    /// Ends the turn with lines left in the inbox, to come back for them
    /// right after the outboxes are written.
    fn end_turn_early(&mut self) {
        if let Some(source) = self.source.as_mut() {
            source.readable = true;
        }
    }

    /// Stops reading the source until queued output drains to half the
    /// budget and no client holds it.
    fn pause_source(&mut self) {
        self.source_paused = true;
        self.counters.source_pauses += 1;
        if let Some(source) = self.source.as_mut() {
            // Lines may be left in the inbox: come back for them unprompted.
            source.readable = true;
        }
        debug!(
            "pausing the event source: {} bytes queued for clients, {} client(s) far behind",
            self.queued_bytes(),
            self.holders
        );
    }

    /// Hands the complete lines in the source's inbox to the pipeline until
    /// none are left or, when `stop_when_full`, queued output passes its
    /// budget or a client needs writing first or the pipeline cannot take
    /// more; the rest stay in the inbox.
    fn route_source_lines(&mut self, now: Instant, stop_when_full: bool) -> Routed {
        let Some(source) = self.source.as_mut() else {
            return Routed::All;
        };
        let mut outboxes = outboxes!(self, now);
        let mut routed = Routed::All;
        loop {
            if stop_when_full {
                if outboxes.over_budget() {
                    routed = Routed::OverBudget;
                    break;
                }
                if outboxes.is_full() || self.pipeline.is_blocked() {
                    routed = Routed::TurnFull;
                    break;
                }
            }
            let Some(line) = source.inbox.next_line() else {
                break;
            };
            let (frame, result) = match line {
                Line::Frame { start, end } => {
                    let frame = source.inbox.frame(start, end);
                    (frame, self.pipeline.on_frame(frame, now, &mut outboxes))
                }
                Line::Overlong => {
                    self.pipeline.overlong_line();
                    (&[][..], Err(protocol::ParseError::TooLong))
                }
            };
            if let Err(reason) = result
                && self.malformed_log.allow(now)
            {
                warn!(
                    "skipping malformed event line \"{}\": {reason}",
                    frame.escape_ascii()
                );
            }
        }
        source.inbox.compact();
        routed
    }

    /// Drops the event source connection.
    fn close_source(&mut self, why: &str, now: Instant) {
        let Some(mut source) = self.source.take() else {
            return;
        };
        let mut outboxes = outboxes!(self, now);
        self.pipeline.source_disconnected(now, &mut outboxes);
        if let Some(registry) = &self.registry {
            let _ = registry.deregister(&mut source.stream);
        }
        self.source_paused = false;
        info!(
            "event source disconnected ({why}); next seq {}",
            self.pipeline.next_seq()
        );
    }

    /// Writes the outboxes that gained frames this turn: every registered
    /// client's when broadcasts were routed (each takes them in from the
    /// log), else only those that got frames of their own.
    fn flush_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        if self.log.end() != self.log_flushed {
            dirty.clear();
            dirty.extend(
                self.clients
                    .iter()
                    .filter(|(_, c)| matches!(c.state, ClientState::Registered { .. }))
                    .map(|(key, _)| key),
            );
            self.log_flushed = self.log.end();
        }
        for &key in &dirty {
            if self.clients.get(key).is_some_and(|c| c.closing.is_none()) {
                self.flush_client(key, now);
            }
        }
        dirty.clear();
        self.dirty = dirty;
        self.turn_full = false;
    }

    /// Writes one client's outbox until it is empty or the socket is full
    /// (unless the socket is known to be full), and records its progress:
    /// a client that owes bytes afterwards goes on the list the
    /// slow-consumer rule judges.
    fn flush_client(&mut self, key: ConnKey, now: Instant) {
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        let own_before = client.outbox.own_bytes();
        let mut written = 0;
        // A blocked client takes nothing in: the broadcasts it owes stay in
        // the log, held once for everyone, until it can be written.
        if !client.write_blocked {
            match client.outbox.write_to(&mut client.stream, &self.log) {
                Ok(n) => written = n,
                Err(err) => {
                    debug!("client {key} write error: {err}");
                    mark_closing(&mut self.closing, key, client, CloseReason::WriteError);
                }
            }
        }
        self.own_bytes = self.own_bytes + client.outbox.own_bytes() - own_before;
        self.queued_bytes_peak = self.queued_bytes_peak.max(self.own_bytes + self.log.len());
        self.counters.bytes_out += written as u64;
        if client.closing.is_some() {
            return;
        }
        let pending = client.outbox.pending(&self.log);
        if written > 0 || pending == 0 {
            client.last_progress = now;
        }
        if pending > 0 {
            // `write_to` stops early only when the socket would block.
            client.write_blocked = true;
            if !client.owes {
                // It owed nothing until now: its clock starts now.
                client.owes = true;
                client.last_progress = now;
                self.owing.push((key, client.serial));
            }
        } else {
            client.outbox.shrink_if_idle(OUTBOX_KEEP_BYTES, written);
        }
        let state = consumer_state(client, &self.log);
        let limits = &self.consumer_limits;
        set_hold(client, limits.holds_source(&state, now), &mut self.holders);
        if let Some(due) = limits.next_check(&state, now) {
            self.next_judgement = Some(self.next_judgement.map_or(due, |next| next.min(due)));
        }
    }

    /// Judges every client that owes bytes by the slow-consumer rule, cuts
    /// the ones it condemns, takes the ones that owe nothing any more off
    /// the list, and notes when the next verdict can be due. Only when one
    /// can be due (or the list holds many stale entries): with 10,000
    /// clients owing, a pass every turn would cost more than the turn.
    fn judge_owing_clients(&mut self, now: Instant) {
        let due = self.next_judgement.is_some_and(|due| due <= now);
        if !due && self.owing.len() <= 2 * self.clients.len() + 64 {
            return;
        }
        let mut next: Option<Instant> = None;
        let mut index = 0;
        while index < self.owing.len() {
            let (key, serial) = self.owing[index];
            match self.judge(key, serial, now) {
                Some(due) => {
                    next = Some(next.map_or(due, |next| next.min(due)));
                    index += 1;
                }
                None => {
                    self.owing.swap_remove(index);
                }
            }
        }
        self.next_judgement = next;
    }

    /// Judges one client on the owing list: `None` takes it off (gone, cut,
    /// or owing nothing), else when its verdict can next change.
    fn judge(&mut self, key: ConnKey, serial: u64, now: Instant) -> Option<Instant> {
        let client = self
            .clients
            .get_mut(key)
            .filter(|client| client.serial == serial && client.closing.is_none())?;
        let pending = client.outbox.pending(&self.log);
        let state = consumer_state(client, &self.log);
        let limits = &self.consumer_limits;
        let Some(cut) = limits.verdict(&state, now) else {
            set_hold(client, limits.holds_source(&state, now), &mut self.holders);
            if !state.owes() {
                client.owes = false;
            }
            return limits.next_check(&state, now);
        };
        let detail: &dyn fmt::Display = match cut {
            Cut::WriteDeadline => &format_args!(
                "no byte written for {:?} while owing {pending} (write deadline {:?})",
                now.saturating_duration_since(state.last_progress),
                limits.write_deadline
            ),
            Cut::OutputLimit => &format_args!(
                "{} bytes queued for it alone (limit {})",
                state.own_bytes, limits.output_limit
            ),
            Cut::Lag => &format_args!(
                "the oldest of the {pending} bytes it owes was routed {:?} ago (lag bound {:?})",
                state
                    .oldest_owed_at
                    .map(|at| now.saturating_duration_since(at))
                    .unwrap_or_default(),
                limits.max_lag
            ),
        };
        cut_client(
            &mut self.closing,
            &mut self.counters.cuts,
            key,
            client,
            cut,
            detail,
        );
        None
    }

    /// Lets the log go of the broadcasts every client has written (or
    /// copied), and frees its buffer once it is empty.
    fn release_log(&mut self) {
        if self.log.is_empty() {
            return;
        }
        let needed = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.closing.is_none() && matches!(c.state, ClientState::Registered { .. })
            })
            .map(|(_, c)| c.outbox.log_needed())
            .min()
            .unwrap_or(self.log.end());
        self.log.release_before(needed);
        self.log.shrink_if_empty(OUTBOX_KEEP_BYTES);
    }

    /// Closes every client marked for closing this turn; one cut for not
    /// keeping up is reset, so what its socket still holds is dropped.
    fn close_marked(&mut self) {
        for key in std::mem::take(&mut self.closing) {
            let Some(mut client) = self.clients.try_remove(key) else {
                continue;
            };
            if let Some(registry) = &self.registry {
                let _ = registry.deregister(&mut client.stream);
            }
            if let ClientState::Registered { user } = client.state {
                self.pipeline.router_mut().unregister(user, key);
            }
            self.own_bytes -= client.outbox.own_bytes();
            set_hold(&mut client, false, &mut self.holders);
            if let Some(CloseReason::Cut(_)) = client.closing {
                // Abort (a reset) rather than close: the kernel would
                // otherwise keep feeding it the megabytes already in its
                // send buffer, at its slow pace, long after the cut.
                let _ = socket2::SockRef::from(&client.stream).set_linger(Some(Duration::ZERO));
            }
            debug!(
                "closed client {key} ({})",
                client.closing.unwrap_or(CloseReason::Shutdown)
            );
        }
    }
}

/// Names a client for log lines: its user id once it has one.
fn describe(client: &Client) -> String {
    match client.state {
        ClientState::Registered { user } => format!("user {user}"),
        ClientState::AwaitingId { .. } => "a client without id".to_string(),
    }
}

/// What the slow-consumer rule needs to know about `client`.
fn consumer_state(client: &Client, log: &BroadcastLog) -> ConsumerState {
    ConsumerState {
        own_bytes: client.outbox.own_bytes(),
        pending: client.outbox.pending(log),
        last_progress: client.last_progress,
        oldest_owed_at: client.outbox.oldest_owed_at(log),
    }
}

/// Turns on TCP keepalive for a client whose read side has ended. It may
/// have half-closed and still read (its peer answers the probes), or closed
/// for good, which shows only when something is written to it. If nothing
/// ever is, the probes end the connection with an error: reset once the
/// closed peer's lingering socket expires (`tcp_fin_timeout`, 60 s by
/// default; it answers probes until then), or after
/// [`READ_CLOSED_PROBES`] unanswered ones if the peer vanished, instead of
/// holding a client slot for good.
fn probe_while_read_closed(stream: &TcpStream, every: Duration) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(every)
        .with_interval(every)
        .with_retries(READ_CLOSED_PROBES);
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        debug!("cannot turn on keepalive for a read-closed client: {err}");
    }
}

/// Records whether `client` holds the source, keeping `holders` the count.
fn set_hold(client: &mut Client, hold: bool, holders: &mut usize) {
    if hold != client.holding {
        client.holding = hold;
        if hold {
            *holders += 1;
        } else {
            *holders -= 1;
        }
    }
}

/// Marks `client` for closing at the end of the turn (once).
fn mark_closing(
    closing: &mut Vec<ConnKey>,
    key: ConnKey,
    client: &mut Client,
    reason: CloseReason,
) {
    if client.closing.is_none() {
        client.closing = Some(reason);
        closing.push(key);
    }
}

/// Cuts a client that does not keep up: logs why, counts it by reason, and
/// marks it for closing.
fn cut_client(
    closing: &mut Vec<ConnKey>,
    cuts: &mut [u64; Cut::ALL.len()],
    key: ConnKey,
    client: &mut Client,
    cut: Cut,
    detail: &dyn fmt::Display,
) {
    if client.closing.is_some() {
        return;
    }
    cuts[cut as usize] += 1;
    warn!(
        "disconnecting {}: slow consumer ({}): {detail}",
        describe(client),
        cut.name()
    );
    mark_closing(closing, key, client, CloseReason::Cut(cut));
}

/// How far [`Server::route_source_lines`] got.
enum Routed {
    /// Every complete line in the inbox.
    All,
    /// It stopped because queued output passed the budget.
    OverBudget,
    /// It stopped because a client should be written first.
    TurnFull,
}

/// Outcome of reading a client's id line.
enum IdRead {
    /// No complete line yet.
    Pending,
    /// A valid id.
    Id(protocol::UserId),
    /// The peer closed first.
    Closed,
    /// Not a valid id line.
    Bad(protocol::ParseError),
}

/// Reads from `stream` until a complete id line, the peer closing, an error
/// or `WouldBlock`.
fn read_id(inbox: &mut Inbox, stream: &mut TcpStream) -> IdRead {
    loop {
        match inbox.next_line() {
            Some(Line::Frame { start, end }) => {
                let line = protocol::strip_terminator(inbox.frame(start, end));
                return match protocol::parse_user_id(line) {
                    Ok(user) => IdRead::Id(user),
                    Err(reason) => IdRead::Bad(reason),
                };
            }
            Some(Line::Overlong) => return IdRead::Bad(protocol::ParseError::TooLong),
            None => inbox.compact(),
        }
        match inbox.read_from(stream, usize::MAX) {
            Ok(0) => return IdRead::Closed,
            Ok(_) => {}
            Err(err) if would_block(&err) => return IdRead::Pending,
            Err(err) if interrupted(&err) => {}
            Err(_) => return IdRead::Closed,
        }
    }
}

/// Where the pipeline's deliveries go: the clients' outboxes.
struct Outboxes<'a> {
    /// Every client.
    clients: &'a mut Slab<Client>,
    /// Clients to write at the end of the turn.
    dirty: &'a mut Vec<ConnKey>,
    /// Clients to close at the end of the turn.
    closing: &'a mut Vec<ConnKey>,
    /// See [`Server`]'s field of that name.
    own_bytes: &'a mut usize,
    /// Broadcasts for every client.
    log: &'a mut BroadcastLog,
    /// See [`Server`]'s field of that name.
    log_flushed: u64,
    /// The most queued bytes have been.
    queued_bytes_peak: &'a mut usize,
    /// Most bytes queued for one client alone.
    output_limit: usize,
    /// Counts clients cut, by reason.
    cuts: &'a mut [u64; Cut::ALL.len()],
    /// The time of this delivery.
    now: Instant,
    /// Set when a client that is not write-blocked has
    /// [`TURN_OUTPUT_BYTES`] queued: the turn should end so it gets
    /// written before it grows more.
    turn_full: &'a mut bool,
    /// Queued bytes past which no more deliveries are wanted.
    max_queued_bytes: usize,
    /// See [`Server`]'s field of that name (holds start and end only when
    /// outboxes are written, never while routing).
    holders: usize,
}

impl Outboxes<'_> {
    /// See [`Server::queued_bytes`].
    fn queued_bytes(&self) -> usize {
        *self.own_bytes + self.log.len()
    }

    /// Bytes a client may gain in one turn: [`TURN_OUTPUT_BYTES`], or half
    /// the output limit if that is less, so a client is flushed (and
    /// found to hold the source) before it could pass its limit.
    fn turn_output_bytes(&self) -> usize {
        TURN_OUTPUT_BYTES.min(self.output_limit / 2)
    }

    /// See [`Server::output_full`].
    fn over_budget(&self) -> bool {
        self.queued_bytes() > self.max_queued_bytes || self.holders > 0
    }

    /// Records a new high of queued bytes.
    fn note_peak(&mut self) {
        *self.queued_bytes_peak = (*self.queued_bytes_peak).max(self.queued_bytes());
    }
}

impl Deliver for Outboxes<'_> {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        let Some(client) = self.clients.get_mut(conn) else {
            return;
        };
        if client.closing.is_some() {
            return;
        }
        let own = client.outbox.own_bytes() + frame.len();
        if own > self.output_limit {
            let detail = format_args!(
                "{own} bytes queued for it alone (limit {})",
                self.output_limit
            );
            cut_client(
                self.closing,
                self.cuts,
                conn,
                client,
                Cut::OutputLimit,
                &detail,
            );
            return;
        }
        let pending = client.outbox.pending(self.log);
        let hold_level = self.output_limit / 2;
        let now_far_behind = pending <= hold_level && pending + frame.len() > hold_level;
        if pending == 0 || now_far_behind {
            // New output, or far enough behind to hold the source: it is
            // flushed (or, if blocked, looked at) at the end of the turn.
            self.dirty.push(conn);
        }
        if now_far_behind {
            // Whether it holds the source is decided when it is flushed:
            // nothing more is routed before that.
            *self.turn_full = true;
        }
        let own_before = client.outbox.own_bytes();
        client.outbox.push(frame, self.log, self.now);
        *self.own_bytes = *self.own_bytes + client.outbox.own_bytes() - own_before;
        if !client.write_blocked && pending + frame.len() > self.turn_output_bytes() {
            // It gets a write attempt before it grows any more.
            *self.turn_full = true;
        }
        self.note_peak();
    }

    /// Stored once in the log; each client takes it in when it is flushed
    /// (or gets a frame of its own first), which keeps a broadcast O(1)
    /// however many clients there are.
    fn broadcast(&mut self, frame: &[u8], _conns: impl Iterator<Item = ConnKey>) {
        self.log.push(frame, self.now);
        // Every client is owed all of the log since the last flush: once
        // that is a turn's worth, the outboxes are written first.
        if (self.log.end() - self.log_flushed) as usize > self.turn_output_bytes() {
            *self.turn_full = true;
        }
        self.note_peak();
    }

    fn is_full(&self) -> bool {
        *self.turn_full || self.over_budget()
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
