//! The sans-IO core: all state and every rule of the server, with no
//! sockets and no clock.
//!
//! [`Engine`] owns the pipeline (framing, parsing, the reorder window, the
//! follower graph and routing), the clients with their outboxes and the
//! shared broadcast log, the event source and the ones waiting to take
//! over, and the limits. Time comes in as `now`; bytes come in and go out
//! through the `Read + Write` streams a [`Transport`] hands it, so the
//! vectored write of the broadcast log stays zero-copy. The mio shell
//! ([`crate::Server`]) is one transport; the core's tests use in-memory
//! pipes and a fake clock.
//!
//! One frame's path, from read to write, never leaves the core:
//! [`Engine::tick`] → `read_source` → `Inbox::read_from` (the source's
//! `Read`) → `route_source_lines` → [`inbox::Inbox::next_event`] (framing
//! and parsing in one pass) → [`pipeline::Pipeline::on_parsed_frame`] →
//! the reorder window → the router → `Fanout::deliver` (admitted by
//! `ConsumerLimits::admit`) → [`outbox::Outbox::push`] →
//! `flush_dirty` → [`outbox::Outbox::write_to`] (the client's `Write`,
//! one `write_vectored` per batch).
//!
//! The modules, in the order data flows through them:
//! - `inbox`: a fixed-size read buffer that yields complete lines.
//! - `protocol`: bytes to frames and frames to `Event`s, in
//!   one pass for a plain valid line, else by memchr line splitting with a
//!   length cap and the strict parser.
//! - `id_filter`: "this user is certainly not connected" in one load.
//! - `window`: holds out-of-order frames until their seq comes up; skips
//!   holes that wait too long.
//! - `router`: an in-order event to the connections it concerns, with
//!   who follows whom.
//! - `pipeline`: the three above in one step, with the hole timer and new
//!   runs.
//! - `outbox`: what each client is owed: its own frames, and ranges of
//!   the broadcast log, which holds each broadcast once for every client.
//! - `consumer`: why a connection closes, and the rules that tell a slow
//!   client (left alone, or holding the source) from a stuck or crawling
//!   one (cut), as tables.
//! - `clients`, `source`, `delivery`: the engine's own parts: the client
//!   records (ids, writes, judging, closing), the event source (hand-over,
//!   reading and routing, back-pressure), and the pipeline's delivery
//!   target (admission to outboxes and the broadcast log).
//! - `records`, `batcher`, `feed`: a cluster's shared log as the core
//!   sees it: its records, an ingest's batching of in-order events into
//!   them, and an edge's reading of them line by line.
//! - `transport`: what the core needs from the network ([`Transport`],
//!   re-exported here with the types it uses).
//! - `memory` (with the `testing` feature): an in-memory transport and a
//!   fake clock, for tests and the fuzzer.

mod accept_pause;
mod clients;
pub(crate) mod consumer;
mod delivery;
mod graph;
mod id_filter;
mod source;
mod timeline;
mod transport;

// The parts below are public, but hidden from the docs and not part of the
// API: the crate's own tests, benches and fuzz targets drive them one by one
// (a window alone, the parser alone), and the engine's ingest and edge
// entries name their records. They may change with any release.
#[doc(hidden)]
pub mod batcher;
#[doc(hidden)]
pub mod feed;
#[doc(hidden)]
pub mod inbox;
#[doc(hidden)]
pub mod outbox;
#[doc(hidden)]
pub mod pipeline;
#[doc(hidden)]
pub mod protocol;
#[doc(hidden)]
pub mod records;
#[doc(hidden)]
pub mod router;
#[doc(hidden)]
pub mod window;

/// The in-memory transport and harness the tests, benches and fuzz targets
/// drive the engine with: only with the `testing` feature, so a normal
/// build does not ship it.
#[cfg(any(test, feature = "testing"))]
pub mod memory;

use std::time::{Duration, Instant};

use log::{info, warn};

use crate::config::Config;
use crate::log_limit::LogLimit;
use crate::stats::Stats;
use accept_pause::AcceptPause;
use batcher::Batcher;
use clients::Clients;
use consumer::Cut;
use delivery::Fanout;
use feed::{LogFeed, Next};
use pipeline::Pipeline;
use protocol::Seq;
use records::Record;
use source::Sources;
pub use transport::{Accepted, ConnId, Ending, Port, Readiness, Transport};

/// The whole server without its I/O: fed readiness and time by a shell,
/// doing its work through a [`Transport`].
#[derive(Debug)]
pub struct Engine<T: Transport> {
    /// Every knob.
    config: Config,
    /// Parse, reorder, route.
    pipeline: Pipeline,
    /// The user clients and the output held for them.
    clients: Clients<T>,
    /// The event source and the ones waiting to take over.
    sources: Sources<T::Stream, T::Peer>,
    /// True once shutdown began: no accepting, no reading the source.
    shutting_down: bool,
    /// When a shutdown's grace period ends, flushed or not.
    shutdown_deadline: Option<Instant>,
    /// Limits log lines about malformed source lines.
    malformed_log: LogLimit,
    /// A cluster ingest's output: the source's in-order events go here,
    /// batched for the shared log, instead of to clients.
    batcher: Option<Batcher>,
    /// A cluster edge's input: records of the shared log, routed to the
    /// clients in place of a source's events.
    feed: LogFeed,
    /// Accepting paused after running out of descriptors.
    accept_pause: AcceptPause,
}

impl<T: Transport> Engine<T> {
    /// An engine with no connections, configured by `config`.
    pub fn new(config: Config, now: Instant) -> Self {
        let mut engine = Engine {
            pipeline: Pipeline::new(
                config.window_capacity,
                config.window_bytes,
                config.hole_timeout,
                config.hole_silence,
                now,
            ),
            clients: Clients::new(&config, now),
            sources: Sources::new(config.source_idle, now),
            shutting_down: false,
            shutdown_deadline: None,
            malformed_log: LogLimit::new(now),
            batcher: None,
            feed: LogFeed::new(),
            accept_pause: AcceptPause::new(),
            config,
        };
        engine
            .pipeline
            .set_follow_budget(engine.config.max_follow_bytes);
        engine
    }

    /// A cluster's ingest: the event source is read as by a standalone
    /// server, but its in-order events are batched into `batcher`'s records
    /// for the shared log instead of routed. The log's run carries on from
    /// seq `next_seq`; a source that starts over at seq 1 begins a new run.
    pub fn new_ingest(config: Config, now: Instant, batcher: Batcher, next_seq: Seq) -> Self {
        let mut engine = Engine::new(config, now);
        engine.pipeline.resume_at(next_seq);
        engine.batcher = Some(batcher);
        engine
    }

    /// An ingest's next record for the log, closed and not yet handed over;
    /// it counts against the bound on records not yet stored until
    /// [`Engine::records_stored`].
    pub fn take_record(&mut self) -> Option<Record> {
        self.batcher.as_mut()?.take()
    }

    /// The log has stored `count` more of the records taken, in order:
    /// reading the source may resume.
    pub fn records_stored(&mut self, count: usize, now: Instant) {
        if let Some(batcher) = self.batcher.as_mut() {
            batcher.confirm(count);
        }
        self.resume_source_if_drained(now);
    }

    /// An edge's next record from the log, routed to its clients in the
    /// next turns as their outboxes have room.
    pub fn push_record(&mut self, record: Record) {
        self.feed.push(record);
    }

    /// Records pushed and not yet fully routed: an edge takes more from the
    /// log only while this is small, so the backlog of slow clients stays
    /// in the log.
    pub fn records_waiting(&self) -> usize {
        self.feed.len()
    }

    /// The pipeline, read-only: its counters, its window's depth and the
    /// router (for tests and embedders that look inside).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True once [`Engine::shutdown`] has begun: an edge takes no more
    /// records from the log then.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Connections may be waiting on `port`: takes them all in (a client's
    /// id is read right away; it is usually there already).
    pub fn accept(&mut self, port: Port, now: Instant, net: &mut T) {
        match port {
            Port::Events => self.accept_sources(now, net),
            Port::Clients => self.accept_clients(now, net),
        }
    }

    /// Handles readiness of an opened connection.
    pub fn ready(&mut self, conn: ConnId, readiness: Readiness, now: Instant, net: &mut T) {
        let key = match conn {
            ConnId::Source => return self.sources.mark_readable(),
            ConnId::Client(key) | ConnId::AwaitingId(key) => key,
        };
        if !self.clients.is_open(key) {
            return; // Sporadic readiness for closed connections happens.
        }
        if readiness.gone {
            // A client that closed after reading everything is told from
            // one that half-closed only this way, after a write to it.
            return self.clients.gone(key, now);
        }
        if readiness.writable {
            self.clients.writable(key, now);
        }
        if readiness.readable {
            self.clients.read(key, now, &mut self.pipeline, net);
        }
    }

    /// Connections awaiting their id may have become readable: reads the
    /// ones [`Transport::ready_awaiting`] names. The shell calls it when
    /// its transport signals them; the engine also asks after every read
    /// of the source.
    pub fn ready_ids(&mut self, now: Instant, net: &mut T) {
        self.clients.read_ready_ids(now, &mut self.pipeline, net);
    }

    /// How long the shell may wait for readiness before calling
    /// [`Engine::tick`] again; `None` means until readiness.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        let can_release =
            (self.pipeline.has_ready() || !self.feed.is_empty()) && !self.output_full();
        let more_to_accept = self.clients.has_left_in_queue() && !self.shutting_down;
        if self.sources.has_unread_bytes()
            || self.clients.has_unread()
            || more_to_accept
            || can_release
        {
            return Some(Duration::ZERO); // Work is waiting.
        }
        // The pipeline's timers run only while the source is not paused.
        let pipeline = self
            .pipeline
            .deadline()
            .filter(|_| !self.sources.is_paused());
        let batch = self.batcher.as_ref().and_then(Batcher::deadline);
        let source_idle = self.sources.idle_deadline();
        let resume_accepting = self.accept_pause.deadline();
        [
            self.clients.deadline(),
            pipeline,
            batch,
            source_idle,
            resume_accepting,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// The per-turn work; call once after handling each batch of readiness.
    /// The order of work in a turn is decided here and only here:
    ///
    /// 0. Accepting resumes if a pause for lack of descriptors is over.
    ///    Clients left in the accept queue by the last turn's accept
    ///    budget are accepted, and clients whose reads stopped at the last
    ///    turn's budget are read again (readiness will not be reported
    ///    for connections or bytes already there).
    /// 1. The source resumes if queued output drained to half the budget
    ///    and no client far behind holds it.
    /// 2. In-order frames an earlier turn left in the window are routed.
    /// 3. A waiting event source takes over if the last one has ended, or
    ///    after the current one has sent nothing for `--source-idle-ms`
    ///    (it is closed).
    /// 4. The source is read and routed, a turn's worth at most. After each
    ///    read, before its bytes are routed, the client port is taken in:
    ///    pending connections accepted and the id lines of the waiting
    ///    connections the transport reports readable read (O(ready), not
    ///    O(waiting)), so an id sent before an event is never overtaken by
    ///    it (unless more clients connect in one turn than it accepts). A source read to
    ///    its end hands over to the next waiting one in the same turn; one
    ///    read to `WouldBlock` is open, and the sources waiting behind it
    ///    are refused. Sources left in the accept queue (too many waited)
    ///    are accepted now that there may be room. An edge routes the
    ///    records of the shared log it was handed instead, while the
    ///    clients' output has room.
    /// 5. Pipeline timers: a new source's probation, a hole's wait.
    /// 6. Clients that sent no id in time are marked for closing.
    /// 7. Outboxes that gained frames are written.
    /// 8. Clients that still owe bytes are judged by the slow-consumer rule
    ///    (`consumer`) when one can be due: cut, or let go of the source
    ///    if they stopped reading.
    /// 9. Marked clients are closed (never in the middle of a fan-out),
    ///    the broadcast log lets go of what all have written, and the
    ///    source resumes if that drained enough.
    /// 10. An ingest's open batch closes if it has been quiet long enough.
    pub fn tick(&mut self, now: Instant, net: &mut T) {
        if self.accept_pause.resume_if_due(now) && !self.shutting_down {
            self.accept_sources(now, net);
            self.clients.revisit_accept_queue();
        }
        if self.clients.has_left_in_queue() {
            self.accept_clients(now, net);
        }
        self.clients.read_unread(now, &mut self.pipeline, net);
        self.resume_source_if_drained(now);
        self.pipeline.release_ready(
            now,
            &mut Fanout::new(&mut self.clients, self.batcher.as_mut(), now),
        );
        self.close_source_if_idle(now, net);
        self.take_over_source(now, net);
        self.read_source(now, net);
        self.route_feed(now);
        if self.sources.has_room_for_queued() {
            self.accept_sources(now, net);
        }
        if !self.sources.has_unread_bytes() && !self.sources.is_paused() {
            // The missing seq cannot be sitting unread in the source.
            self.pipeline.on_timer(
                now,
                &mut Fanout::new(&mut self.clients, self.batcher.as_mut(), now),
            );
        }
        self.clients.expire_id_deadlines(now);
        self.clients.flush_dirty(now);
        self.clients.judge_owing(now);
        self.end_turn(net);
        self.resume_source_if_drained(now);
        if let Some(batcher) = self.batcher.as_mut() {
            batcher.close_if_quiet(now);
        }
    }

    /// Starts a graceful shutdown: no accepting, no more reading the
    /// source, and everything already read delivered, holes given up on,
    /// as fast as the clients take it. The shell keeps calling
    /// [`Engine::tick`] until [`Engine::is_done`]: flushed, or the grace
    /// period over.
    pub fn shutdown(&mut self, now: Instant, net: &mut T) {
        if std::mem::replace(&mut self.shutting_down, true) {
            return;
        }
        self.shutdown_deadline = now.checked_add(self.config.shutdown_grace);
        info!(
            "shutting down: no new connections; flushing {} queued bytes",
            self.clients.queued_bytes()
        );
        self.close_waiting_sources(net);
        // Lines already read are events received: route them all (into the
        // window, when the outboxes are full) before the source goes.
        self.route_source_lines(now, false);
        self.close_source("shutdown", now, net);
        self.pipeline.end_of_stream();
        self.pipeline.release_ready(
            now,
            &mut Fanout::new(&mut self.clients, self.batcher.as_mut(), now),
        );
        self.clients.close_awaiting_id(now);
        self.clients.flush_dirty(now);
        self.end_turn(net);
        if let Some(batcher) = self.batcher.as_mut() {
            batcher.close();
        }
    }

    /// True once a shutdown is over: everything is flushed, or the grace
    /// period (`--shutdown-grace-ms`) has run out at `now`. The shell stops
    /// then.
    pub fn is_done(&self, now: Instant) -> bool {
        self.shutting_down
            && (self.is_flushed() || self.shutdown_deadline.is_some_and(|end| now >= end))
    }

    /// True when nothing is queued for any client, nothing received (an
    /// edge: no record pushed) is waiting to be routed, and (an ingest)
    /// every event is stored in the log.
    pub fn is_flushed(&self) -> bool {
        self.clients.queued_bytes() == 0
            && !self.pipeline.has_ready()
            && self.feed.is_empty()
            && self.batcher.as_ref().is_none_or(Batcher::is_flushed)
    }

    /// A snapshot of every counter and gauge (the transport's own, such as
    /// accept errors, are left at zero for the shell to fill in).
    pub fn stats(&self) -> Stats {
        let pipeline = self.pipeline.counters();
        let (window_depth, window_bytes) = self.pipeline.window_depth();
        let clients = self.pipeline.router().connections();
        let counters = self.clients.counters();
        let cuts = counters.cuts;
        Stats {
            events_in: pipeline.events_in,
            events_routed: pipeline.events_routed,
            notifications: pipeline.notifications,
            bytes_out: counters.bytes_out,
            malformed: pipeline.malformed,
            skipped: pipeline.window.skipped,
            late: pipeline.window.late,
            duplicates: pipeline.window.duplicates,
            runs: pipeline.runs,
            slow_consumers: cuts.iter().sum(),
            cut_write_deadline: cuts[Cut::WriteDeadline as usize],
            cut_output_limit: cuts[Cut::OutputLimit as usize],
            cut_lag: cuts[Cut::Lag as usize],
            bad_ids: counters.bad_ids,
            clients_refused: counters.refused,
            clients_evicted: counters.evicted,
            sources_refused: self.sources.counters().refused,
            sources_idle_closed: self.sources.counters().idle_closed,
            accept_errors: self.accept_pause.failures,
            source_pauses: self.sources.counters().pauses,
            clients,
            clients_awaiting_id: self.clients.open() - clients,
            clients_holding_source: self.clients.holders(),
            source_connected: self.sources.is_connected(),
            follow_edges: self.pipeline.router().graph().edges(),
            follows_refused: self.pipeline.router().graph().refused(),
            window_depth,
            window_bytes,
            queued_bytes: self.clients.queued_bytes()
                + self.batcher.as_ref().map_or(0, Batcher::queued_bytes),
            queued_bytes_peak: self.clients.queued_bytes_peak(),
        }
    }

    /// True when no more events should be released for now: the clients'
    /// output is over its budget or a client far behind holds the source,
    /// or (an ingest) the log has too many records not yet stored.
    fn output_full(&self) -> bool {
        self.clients.output_full() || self.batcher.as_ref().is_some_and(Batcher::is_full)
    }

    /// True when the output has drained enough for the source to resume:
    /// the clients' to half their budget with none holding it, and an
    /// ingest's records not yet stored to half their bound.
    fn output_drained(&self) -> bool {
        self.clients.output_drained() && self.batcher.as_ref().is_none_or(Batcher::is_drained)
    }

    /// Routes records from the log (an edge's input, step 4 of
    /// [`Engine::tick`]) until none are left or the clients' output is
    /// full; the rest wait in the feed for the next turn.
    fn route_feed(&mut self, now: Instant) {
        let mut fanout = Fanout::new(&mut self.clients, self.batcher.as_mut(), now);
        while !pipeline::Deliver::is_full(&fanout) {
            let Some(next) = self.feed.next() else {
                return;
            };
            // Like a standalone server's, `runs` counts runs started over:
            // the first boundary an edge meets starts its first run.
            let first = self.pipeline.counters().events_in == 0;
            match next {
                Next::NewRun => self.pipeline.on_ordered_new_run(&mut fanout, !first),
                Next::RunWithoutStart { run } => {
                    warn!(
                        "the log holds run {run} without its start (retention dropped it): \
                         follows made before are unknown, so some status updates will miss followers"
                    );
                    self.pipeline.on_ordered_new_run(&mut fanout, !first);
                }
                Next::Line { frame, .. } => {
                    if let Err(reason) = self.pipeline.on_ordered(frame, &mut fanout)
                        && self.malformed_log.allow(now)
                    {
                        warn!(
                            "skipping malformed event line from the log \"{}\": {reason}",
                            frame.escape_ascii()
                        );
                    }
                }
            }
        }
    }

    /// The next connection waiting on `port`, unless accepting is paused;
    /// running out of descriptors pauses it (see [`AcceptPause`]).
    fn accept_one(
        &mut self,
        port: Port,
        now: Instant,
        net: &mut T,
    ) -> Option<(T::Stream, T::Peer)> {
        if self.accept_pause.is_paused() {
            return None;
        }
        match net.accept(port) {
            Accepted::Connection(stream, peer) => {
                self.accept_pause.succeeded();
                Some((stream, peer))
            }
            Accepted::Nothing => None,
            Accepted::OutOfResources(err) => {
                let pause = self.accept_pause.failed(now);
                warn!(
                    "cannot accept connections ({err}); open connections are still served; retrying in {pause:?}"
                );
                None
            }
        }
    }

    /// Accepts pending clients, a turn's budget at most, and reads each
    /// one's id right away.
    fn accept_clients(&mut self, now: Instant, net: &mut T) {
        while !self.shutting_down {
            if !self.clients.may_accept() {
                return;
            }
            let Some((stream, peer)) = self.accept_one(Port::Clients, now, net) else {
                self.clients.accept_queue_drained();
                return;
            };
            if let Some(key) = self.clients.add(stream, peer, now, net) {
                self.clients.read(key, now, &mut self.pipeline, net);
            }
        }
    }

    /// Takes in what has arrived on the client port: new connections, and
    /// the id lines of clients still awaiting theirs. Called after reading
    /// source bytes and before routing them.
    fn take_in_client_port(&mut self, now: Instant, net: &mut T) {
        self.accept_clients(now, net);
        self.clients.read_ready_ids(now, &mut self.pipeline, net);
    }

    /// The end of a turn: marked clients are closed and the broadcast log
    /// lets go of what every client has written.
    fn end_turn(&mut self, net: &mut T) {
        self.clients.close_marked(&mut self.pipeline, net);
        self.clients.release_log();
        self.clients.end_turn_budgets();
    }
}
