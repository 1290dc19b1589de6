//! The event source: taking one in, handing over between sources, reading
//! and routing its lines, and pausing it for back-pressure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::Engine;
use super::delivery::Fanout;
use super::inbox::Inbox;
use super::protocol::{self, EventLine};
use super::transport::{ConnId, Ending, Port, Transport};
use crate::io_errors::{interrupted, would_block};
use crate::log_limit::LogLimit;

/// Size of the event source's read buffer: large reads mean few syscalls.
const SOURCE_INBOX_BYTES: usize = 1024 * 1024;
/// Most source bytes read in one turn, before the outboxes are written (a
/// fast source must not starve the clients). Larger turns mean fewer,
/// larger writes. A turn also ends early once a writable client has a
/// turn's output to be written.
const SOURCE_BYTES_PER_TURN: usize = 8 * 1024 * 1024;
/// Event source connections that may wait for the current one to end (test
/// suites close a source and open the next at once); more wait in the
/// transport's accept queue.
const MAX_WAITING_SOURCES: usize = 8;

/// The event source being read.
#[derive(Debug)]
pub(super) struct Source<S> {
    /// The connection.
    stream: S,
    /// Event lines being assembled.
    inbox: Inbox,
    /// True when the stream may hold unread bytes: readiness is
    /// edge-triggered, so after stopping early we come back unprompted.
    readable: bool,
    /// When it connected or last delivered bytes (or reading it resumed
    /// after a pause: paused, it is not idle, only unread).
    last_heard: Instant,
    /// When it last delivered bytes, if ever.
    last_bytes: Option<Instant>,
}

/// What happened to event sources, for [`crate::Stats`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SourceCounters {
    /// Sources refused because another was connected.
    pub(super) refused: u64,
    /// Sources closed for idling while another waited.
    pub(super) idle_closed: u64,
    /// Times reading was paused for back-pressure.
    pub(super) pauses: u64,
}

/// The source being read and the ones waiting to take over.
#[derive(Debug)]
pub(super) struct Sources<S, P> {
    /// The event source, when one is connected.
    current: Option<Source<S>>,
    /// Sources that connected while another was connected, in order: each
    /// takes over once the one before it has been read to its end, and all
    /// are refused once the current one is found open (read to
    /// `WouldBlock`) and has spoken since they came, or take over once it
    /// has been silent for `idle_after`. Not opened, not read while they
    /// wait; each with the time it came.
    waiting: VecDeque<(S, P, Instant)>,
    /// How long the current source may send nothing while another waits.
    idle_after: Duration,
    /// Limits warnings about refused sources (a flood of connections must
    /// not flood the log).
    refuse_log: LogLimit,
    /// True when sources were left in the accept queue because
    /// [`MAX_WAITING_SOURCES`] were waiting: accepting them resumes once
    /// there is room.
    left_in_queue: bool,
    /// True while reading the source is paused for back-pressure.
    paused: bool,
    /// What happened to sources so far.
    counters: SourceCounters,
}

impl<S, P> Sources<S, P> {
    /// No source yet; a source that sends nothing for `idle_after` yields
    /// to one that waits.
    pub(super) fn new(idle_after: Duration, now: Instant) -> Self {
        Sources {
            current: None,
            waiting: VecDeque::new(),
            idle_after,
            refuse_log: LogLimit::new(now),
            left_in_queue: false,
            paused: false,
            counters: SourceCounters::default(),
        }
    }

    /// The source may have bytes to read (readiness was reported).
    pub(super) fn mark_readable(&mut self) {
        self.revisit();
    }

    /// True while reading the source is paused for back-pressure.
    pub(super) fn is_paused(&self) -> bool {
        self.paused
    }

    /// True when a source is connected.
    pub(super) fn is_connected(&self) -> bool {
        self.current.is_some()
    }

    /// True when sources were left in the accept queue and there is room
    /// for them to wait now.
    pub(super) fn has_room_for_queued(&self) -> bool {
        self.left_in_queue && self.waiting.len() < MAX_WAITING_SOURCES
    }

    /// What happened to sources so far.
    pub(super) fn counters(&self) -> SourceCounters {
        self.counters
    }

    /// True when the source may have bytes not read yet and may be read.
    pub(super) fn has_unread_bytes(&self) -> bool {
        !self.paused && self.current.as_ref().is_some_and(|source| source.readable)
    }

    /// When the current source will have been silent for `idle_after`
    /// while another waits (counted from the later of its last bytes and
    /// the first waiting one's arrival): then it yields. `None` with nobody
    /// waiting, while it is paused, while it may have bytes not read yet
    /// (they are read first: closing it then would lose them), or never
    /// (an idle time too long for the clock).
    pub(super) fn idle_deadline(&self) -> Option<Instant> {
        let source = self.current.as_ref()?;
        let &(_, _, first_came) = self.waiting.front()?;
        if self.paused || source.readable {
            return None;
        }
        source
            .last_heard
            .max(first_came)
            .checked_add(self.idle_after)
    }

    /// Comes back for the source in the next turn unprompted (lines were
    /// left in its inbox, or a newcomer waits on its end).
    fn revisit(&mut self) {
        if let Some(source) = self.current.as_mut() {
            source.readable = true;
        }
    }
}

/// How far [`Engine::route_source_lines`] got.
pub(super) enum Routed {
    /// Every complete line in the inbox.
    All,
    /// It stopped because queued output passed the budget.
    OverBudget,
    /// It stopped because a client should be written first.
    TurnFull,
}

impl<T: Transport> Engine<T> {
    /// Closes the sources waiting to take over (shutdown).
    pub(super) fn close_waiting_sources(&mut self, net: &mut T) {
        if self.sources.waiting.is_empty() {
            return;
        }
        info!(
            "closing {} event source(s) that were waiting to take over",
            self.sources.waiting.len()
        );
        for (stream, _, _) in self.sources.waiting.drain(..) {
            net.close(stream, Ending::Close);
        }
    }

    /// Accepts pending event sources while fewer than
    /// [`MAX_WAITING_SOURCES`] wait; the rest stay in the accept queue.
    pub(super) fn accept_sources(&mut self, now: Instant, net: &mut T) {
        // Reading the current one to its end or to `WouldBlock` decides
        // whether a newcomer takes over, waits or is refused.
        while !self.shutting_down {
            if self.sources.waiting.len() >= MAX_WAITING_SOURCES {
                self.sources.left_in_queue = true;
                return;
            }
            let Some((stream, peer)) = self.accept_one(Port::Events, now, net) else {
                self.sources.left_in_queue = false;
                return;
            };
            let busy = self.sources.current.is_some()
                || !self.sources.waiting.is_empty()
                || self.pipeline.is_blocked();
            if busy {
                // Read the current one to its end or to `WouldBlock` this
                // turn: that decides whether the newcomer takes over.
                debug!("event source {peer} waits for the current one to end");
                self.sources.waiting.push_back((stream, peer, now));
                self.sources.revisit();
            } else {
                self.install_source(stream, peer, now, net);
            }
        }
    }

    /// Makes `stream` the event source; false if the transport refused it.
    fn install_source(
        &mut self,
        mut stream: T::Stream,
        peer: T::Peer,
        now: Instant,
        net: &mut T,
    ) -> bool {
        if let Err(err) = net.open(&mut stream, ConnId::Source) {
            warn!("cannot take event source {peer}: {err}");
            net.close(stream, Ending::Close);
            return false;
        }
        info!("event source connected from {peer}");
        self.pipeline.source_connected(now);
        self.sources.current = Some(Source {
            stream,
            inbox: Inbox::new(SOURCE_INBOX_BYTES, self.config.max_line),
            readable: true,
            last_heard: now,
            last_bytes: None,
        });
        true
    }

    /// Lets the first waiting source take over, if there is no source and
    /// the last one's events are all in the window. True if one did.
    pub(super) fn take_over_source(&mut self, now: Instant, net: &mut T) -> bool {
        if self.sources.current.is_some() || self.shutting_down || self.pipeline.is_blocked() {
            return false;
        }
        while let Some((stream, peer, _)) = self.sources.waiting.pop_front() {
            if self.install_source(stream, peer, now, net) {
                return true;
            }
        }
        false
    }

    /// Decides for the sources waiting behind one that is open (read to
    /// `WouldBlock`): refused if it has spoken since the first of them
    /// came (two sources never interleave), left waiting while it is
    /// silent, and let in once it has been silent for `--source-idle-ms`.
    fn settle_waiting_sources(&mut self, now: Instant, net: &mut T) {
        let (Some(source), Some(&(_, _, first_came))) =
            (self.sources.current.as_ref(), self.sources.waiting.front())
        else {
            return;
        };
        if source.last_bytes.is_some_and(|at| at >= first_came) {
            self.refuse_waiting_sources(now, net);
        } else {
            self.close_source_if_idle(now, net);
        }
    }

    /// Refuses the sources waiting behind one that is still open and
    /// sending: two sources never interleave.
    fn refuse_waiting_sources(&mut self, now: Instant, net: &mut T) {
        while let Some((stream, peer, _)) = self.sources.waiting.pop_front() {
            self.sources.counters.refused = self.sources.counters.refused.saturating_add(1);
            if self.sources.refuse_log.allow(now) {
                warn!(
                    "refusing event source {peer}: another event source is connected and sending"
                );
            }
            net.close(stream, Ending::Close);
        }
    }

    /// Closes the current source if it has sent nothing for
    /// `--source-idle-ms` while another waits (not while it is paused: then
    /// it is unread, not idle); the waiting one takes over.
    pub(super) fn close_source_if_idle(&mut self, now: Instant, net: &mut T) {
        if self
            .sources
            .idle_deadline()
            .is_none_or(|deadline| deadline > now)
        {
            return;
        }
        self.sources.counters.idle_closed = self.sources.counters.idle_closed.saturating_add(1);
        let idle = self.sources.idle_after;
        warn!("the event source sent nothing for {idle:?} while another waited: closing it");
        if let Some(source) = self.sources.current.as_ref()
            && source.inbox.has_unfinished_line()
        {
            // As at an end of file: the partial line is counted, not lost
            // silently.
            self.pipeline.overlong_line();
            warn!(
                "the idle event source left a partial line {}; it is dropped",
                source.inbox.unfinished_line()
            );
        }
        self.close_source("idle while another source waited", now, net);
        self.take_over_source(now, net);
    }

    /// Reads and routes up to [`SOURCE_BYTES_PER_TURN`] bytes from the
    /// source (step 4 of [`Engine::tick`]), taking in the client port after
    /// each read, ending the turn early when a client needs writing first,
    /// and pausing the source when queued output passes its budget.
    pub(super) fn read_source(&mut self, now: Instant, net: &mut T) {
        if self.shutting_down || !self.sources.has_unread_bytes() {
            return;
        }
        let mut budget = SOURCE_BYTES_PER_TURN;
        loop {
            // Lines left from a previous read or turn go first.
            match self.route_source_lines(now, true) {
                Routed::All => {}
                Routed::TurnFull => return self.sources.revisit(),
                Routed::OverBudget => return self.pause_source(),
            }
            if budget == 0 {
                return;
            }
            let Some(source) = self.sources.current.as_mut() else {
                return;
            };
            match source.inbox.read_from(&mut source.stream, budget) {
                Ok(0) => {
                    if source.inbox.has_unfinished_line() {
                        self.pipeline.overlong_line();
                        warn!(
                            "event source ended in the middle of a line; the partial line {} is dropped",
                            source.inbox.unfinished_line()
                        );
                    }
                    self.close_source("closed by the source", now, net);
                    if !self.take_over_source(now, net) {
                        return;
                    }
                }
                Ok(n) => {
                    budget -= n;
                    // A source that sends is alive: time counts against a
                    // hole while it does (the hole timer), and it is not
                    // idle.
                    source.last_heard = now;
                    source.last_bytes = Some(now);
                    self.pipeline.source_heard(now);
                    // Whatever a client sent before these bytes were sent
                    // goes in before they are routed.
                    self.take_in_client_port(now, net);
                }
                Err(err) if would_block(&err) => {
                    source.readable = false;
                    // Open: whoever connected since is refused, or waits
                    // for it to idle.
                    self.settle_waiting_sources(now, net);
                    // The bytes read before this call still need routing.
                    budget = 0;
                }
                Err(err) if interrupted(&err) => {}
                Err(err) => {
                    warn!("event source read error: {err}");
                    self.close_source("read error", now, net);
                    if !self.take_over_source(now, net) {
                        return;
                    }
                }
            }
        }
    }

    /// Stops reading the source until queued output drains to half the
    /// budget and no client holds it.
    fn pause_source(&mut self) {
        self.sources.paused = true;
        self.sources.counters.pauses = self.sources.counters.pauses.saturating_add(1);
        // Lines may be left in the inbox: come back for them unprompted.
        self.sources.revisit();
        debug!(
            "pausing the event source: {} bytes queued for clients, {} client(s) far behind",
            self.clients.queued_bytes(),
            self.clients.holders()
        );
    }

    /// Resumes reading the source once queued output fell to half the
    /// budget and no client holds it.
    pub(super) fn resume_source_if_drained(&mut self, now: Instant) {
        if self.sources.paused && self.output_drained() {
            self.sources.paused = false;
            if let Some(source) = self.sources.current.as_mut() {
                // Paused, it was unread, not idle.
                source.last_heard = now;
            }
            // The missing seq of a hole may have waited in our socket.
            self.pipeline.restart_hole_timer(now);
            debug!(
                "resuming the event source: {} bytes queued",
                self.clients.queued_bytes()
            );
        }
    }

    /// Hands the complete lines in the source's inbox to the pipeline until
    /// none are left or, when `stop_when_full`, queued output passes its
    /// budget or a client needs writing first or the pipeline cannot take
    /// more; the rest stay in the inbox.
    pub(super) fn route_source_lines(&mut self, now: Instant, stop_when_full: bool) -> Routed {
        let Some(source) = self.sources.current.as_mut() else {
            return Routed::All;
        };
        let mut fanout = Fanout::new(&mut self.clients, self.batcher.as_mut(), now);
        let mut routed = Routed::All;
        loop {
            if stop_when_full {
                if fanout.over_budget() {
                    routed = Routed::OverBudget;
                    break;
                }
                if super::pipeline::Deliver::is_full(&fanout) || self.pipeline.is_blocked() {
                    routed = Routed::TurnFull;
                    break;
                }
            }
            let Some(line) = source.inbox.next_event() else {
                break;
            };
            let (frame, result) = match line {
                EventLine::Frame { start, end, parsed } => {
                    let frame = source.inbox.frame(start, end);
                    let routed = self
                        .pipeline
                        .on_parsed_frame(parsed, frame, now, &mut fanout);
                    (Some(frame), routed)
                }
                EventLine::Overlong => {
                    self.pipeline.overlong_line();
                    (None, Err(protocol::ParseError::TooLong))
                }
            };
            if let Err(reason) = result
                && self.malformed_log.allow(now)
            {
                match frame {
                    Some(frame) => warn!(
                        "skipping malformed event line \"{}\": {reason}",
                        frame.escape_ascii()
                    ),
                    // Dropped as it came: its first bytes were kept.
                    None => warn!(
                        "skipping malformed event line {}: {reason} (--max-line {})",
                        source.inbox.dropped_line(),
                        self.config.max_line
                    ),
                }
            }
        }
        source.inbox.compact();
        routed
    }

    /// Drops the event source connection.
    pub(super) fn close_source(&mut self, why: &str, now: Instant, net: &mut T) {
        let Some(source) = self.sources.current.take() else {
            return;
        };
        self.pipeline.source_disconnected(
            now,
            &mut Fanout::new(&mut self.clients, self.batcher.as_mut(), now),
        );
        net.close(source.stream, Ending::Close);
        self.sources.paused = false;
        info!(
            "event source disconnected ({why}); next seq {}",
            self.pipeline.next_seq()
        );
    }
}
