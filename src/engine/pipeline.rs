//! Source frames in, `(connection, frame)` deliveries out: parse, reorder,
//! route. No I/O; time comes in as an argument.
//!
//! The pipeline also decides when a hole has waited long enough (the hole
//! timer, which counts the source's activity rather than the clock: see
//! [`hole_timer`]) and when a new event source is starting a new run rather
//! than carrying on.

use std::time::{Duration, Instant};

use crate::engine::protocol::{self, Event, EventKind, ParseError, Seq, UserId};
use crate::engine::router::{ConnKey, Router};
use crate::engine::window::{Push, ReorderWindow, WindowCounters};
use crate::log_limit::LogLimit;

mod backlog;
mod deliver;
pub mod hole_timer;
use backlog::Backlog;
pub use deliver::{Deliver, route_event};
use hole_timer::{Expiry, HoleTimer};

/// Counts of everything the pipeline has seen, for stats and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineCounters {
    /// Valid event lines received.
    pub events_in: u64,
    /// Events released in order and routed.
    pub events_routed: u64,
    /// Frames handed to connections (one per recipient per event).
    pub notifications: u64,
    /// Source lines that were not valid events (too long included).
    pub malformed: u64,
    /// Runs started over by a source restarting the sequence.
    pub runs: u64,
    /// Skipped, late and duplicate seqs.
    pub window: WindowCounters,
}

/// Events a new source may send before the pipeline decides it carries on
/// the current run (unless one of them starts a new run first).
const PROBATION_EVENTS: usize = 1024;
/// How long a new source's first events wait for that decision at most.
const PROBATION_TIME: Duration = Duration::from_millis(100);

/// Whether a new source's run is known yet.
///
/// A source that starts over sends seq 1 somewhere in its first batch, but
/// not necessarily first: after a short run its first line may be above the
/// old next seq. Releasing its events into the old run would misorder the
/// new one, so they wait in the backlog until the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probation {
    /// The run is known.
    Off,
    /// Undecided; the clock starts at the first event.
    Pending(Option<Instant>),
    /// Seq 1 arrived: a new run starts once the old run's in-order frames
    /// are out.
    NewRun,
}

/// Parse, reorder and route, in one place.
#[derive(Debug)]
pub struct Pipeline {
    /// Out-of-order frames waiting for their turn.
    window: ReorderWindow<EventKind>,
    /// The graph and who is connected.
    router: Router,
    /// How long the current hole has held the stream up, if one does.
    hole_timer: HoleTimer,
    /// Whether the current source's run is known yet.
    probation: Probation,
    /// Source events waiting to go into the window.
    backlog: Backlog,
    /// True once the stream has ended for good (shutdown): every hole is
    /// given up on as soon as it forms.
    ending: bool,
    /// Limits warnings about skipped seqs.
    skip_log: LogLimit,
    /// Limits debug lines about late and duplicate events.
    drop_log: LogLimit,
    /// Everything counted so far (the window's counters are read on demand).
    counters: PipelineCounters,
}

impl Pipeline {
    /// A pipeline whose window spans `window_capacity` seqs and
    /// `window_bytes` bytes, and that skips a hole after `hole_timeout` of
    /// its source's activity, or `hole_silence` of its silence.
    pub fn new(
        window_capacity: usize,
        window_bytes: usize,
        hole_timeout: Duration,
        hole_silence: Duration,
        now: Instant,
    ) -> Self {
        Pipeline {
            window: ReorderWindow::new(window_capacity, window_bytes),
            router: Router::new(),
            hole_timer: HoleTimer::new(hole_timeout, hole_silence),
            probation: Probation::Off,
            backlog: Backlog::default(),
            ending: false,
            skip_log: LogLimit::new(now),
            drop_log: LogLimit::new(now),
            counters: PipelineCounters::default(),
        }
    }

    /// Caps the follower graph at about `bytes`; call before any event.
    pub fn set_follow_budget(&mut self, bytes: usize) {
        self.router.set_follow_budget(bytes);
    }

    /// The router, to register and unregister client connections.
    pub(crate) fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// The router, read-only.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Everything counted so far.
    pub fn counters(&self) -> PipelineCounters {
        PipelineCounters {
            window: self.window.counters(),
            ..self.counters
        }
    }

    /// Frames held in the window, and their bytes.
    pub fn window_depth(&self) -> (usize, usize) {
        (self.window.held(), self.window.held_bytes())
    }

    /// The seq the pipeline releases next.
    pub fn next_seq(&self) -> Seq {
        self.window.next_seq()
    }

    /// A new event source has connected. Unless the window is fresh, its
    /// first events wait until it is clear whether it carries on the current
    /// run or starts a new one at seq 1. From now on a hole waits for the
    /// source's activity, not the clock.
    pub fn source_connected(&mut self, now: Instant) {
        if self.window.next_seq() > 1 || self.window.held() > 0 {
            self.probation = Probation::Pending(None);
        }
        self.hole_timer.source_connected(now);
    }

    /// The event source delivered bytes at `now` (once per read, not per
    /// line): the time since its last read counts against a hole, up to
    /// [`hole_timer::ACTIVITY_QUANTUM`].
    pub fn source_heard(&mut self, now: Instant) {
        self.hole_timer.heard(now);
    }

    /// The event source has gone: an undecided run is taken as carried on,
    /// and a hole's wait runs on the clock until the next source.
    pub fn source_disconnected(&mut self, now: Instant, out: &mut impl Deliver) {
        self.hole_timer.source_disconnected(now);
        if matches!(self.probation, Probation::Pending(_)) {
            self.decide(false);
        }
        self.drain_backlog(now, out);
    }

    /// Carries on a run whose seqs below `next` are already done (an
    /// ingest resuming the run its log holds): a source that connects next
    /// is on probation, as after a reconnect. Call before any frame.
    pub fn resume_at(&mut self, next: Seq) {
        self.window.start_at(next.max(1));
    }

    /// Routes one event line that arrives already in order, as an edge
    /// takes them from the log: no window, no hole timer; seqs the ingest
    /// gave up on are simply absent. A malformed line is counted and its
    /// reason returned; nothing else is affected.
    pub fn on_ordered(&mut self, frame: &[u8], out: &mut impl Deliver) -> Result<(), ParseError> {
        let event = self.parse(frame)?;
        self.route_now(event, frame, out);
        Ok(())
    }

    /// Routes `event`, whose frame is `frame` (not held in the window).
    fn route_now(&mut self, event: Event, frame: &[u8], out: &mut impl Deliver) {
        let (router, counters) = (&mut self.router, &mut self.counters);
        route(router, counters, event.seq, event.kind, frame, out);
    }

    /// Parses one source line (terminator included) and counts it: a valid
    /// event or a malformed line.
    fn parse(&mut self, frame: &[u8]) -> Result<Event, ParseError> {
        self.count(protocol::parse_event(protocol::strip_terminator(frame)))
    }

    /// Counts one parsed source line: a valid event or a malformed line.
    fn count(&mut self, parsed: Result<Event, ParseError>) -> Result<Event, ParseError> {
        match parsed {
            Ok(_) => self.counters.events_in += 1,
            Err(_) => self.counters.malformed += 1,
        }
        parsed
    }

    /// A run boundary that arrives in order, as an edge takes it from the
    /// log: the follow graph is forgotten here. `started_over` counts it in
    /// `runs` (not the first run an edge sees).
    pub fn on_ordered_new_run(&mut self, out: &mut impl Deliver, started_over: bool) {
        out.new_run(&mut self.router);
        self.counters.runs += u64::from(started_over);
    }

    /// Counts a line that was dropped for being too long.
    pub fn overlong_line(&mut self) {
        self.counters.malformed += 1;
    }

    /// True while source events wait that cannot go into the window yet:
    /// the caller should stop handing in frames until
    /// [`Pipeline::release_ready`] has run with room to deliver.
    pub fn is_blocked(&self) -> bool {
        !self.backlog.is_empty() && !matches!(self.probation, Probation::Pending(_))
    }

    /// Handles one frame from the event source (terminator included).
    ///
    /// A malformed line is counted and its reason returned; nothing else is
    /// affected.
    pub fn on_frame(
        &mut self,
        frame: &[u8],
        now: Instant,
        out: &mut impl Deliver,
    ) -> Result<(), ParseError> {
        let parsed = protocol::parse_event(protocol::strip_terminator(frame));
        self.on_parsed_frame(parsed, frame, now, out)
    }

    /// [`Pipeline::on_frame`] for a frame the caller has parsed already
    /// (e.g. by [`Inbox::next_event`](crate::engine::inbox::Inbox::next_event),
    /// which frames and parses in one pass): `parsed` must be what
    /// [`protocol::parse_event`] makes of `frame` without its terminator.
    pub fn on_parsed_frame(
        &mut self,
        parsed: Result<Event, ParseError>,
        frame: &[u8],
        now: Instant,
        out: &mut impl Deliver,
    ) -> Result<(), ParseError> {
        let event = self.count(parsed)?;
        if self.probation == Probation::Off && self.backlog.is_empty() {
            if !self.accept(event, frame, now, out) {
                self.backlog.push(event, frame);
            }
            return Ok(());
        }
        self.backlog.push(event, frame);
        if let Probation::Pending(since) = &mut self.probation {
            since.get_or_insert(now);
            if event.seq == 1 {
                self.decide(true);
            } else if self.backlog.len() >= PROBATION_EVENTS {
                self.decide(false);
            }
        }
        self.drain_backlog(now, out);
        Ok(())
    }

    /// Puts a valid event into the window (or straight through) and routes
    /// whatever that releases. Returns false if it could not be stored yet:
    /// it is too far ahead, and the frames that must leave first cannot
    /// while `out` is full.
    ///
    /// Inlined for the usual case of a shuffled source: the event is not
    /// the next one, there is room, and it is held behind a hole. Everything
    /// else is [`Pipeline::accept_slowly`] and [`Pipeline::settle_push`].
    #[inline(always)]
    fn accept(&mut self, event: Event, frame: &[u8], now: Instant, out: &mut impl Deliver) -> bool {
        if !self.window.can_bypass(event.seq) && self.window.has_room_for(frame.len()) {
            let pushed = self.window.push(event.seq, event.kind, frame);
            if pushed == Push::Held && !self.window.is_ready() {
                // Held behind a hole: the timer runs (what
                // `settle_hole_timer` would find, without asking the window
                // again).
                self.hole_timer.start(now);
                return true;
            }
            return self.settle_push(pushed, event, frame, now, out);
        }
        self.accept_slowly(event, frame, now, out)
    }

    /// [`Pipeline::accept`] for the next event, or one that would pass the
    /// window's byte budget.
    #[inline(never)]
    fn accept_slowly(
        &mut self,
        event: Event,
        frame: &[u8],
        now: Instant,
        out: &mut impl Deliver,
    ) -> bool {
        // The window's check first: asking `out` costs more.
        if self.window.can_bypass(event.seq) && !out.is_full() && self.window.bypass(event.seq) {
            self.route_now(event, frame, out);
            self.progress(now);
            return true;
        }
        let fits = |window: &ReorderWindow<EventKind>| {
            window.has_room_for(frame.len()) || !window.is_ready()
        };
        if event.seq >= self.window.next_seq() && !fits(&self.window) {
            // In-order frames fill the window's byte budget: they leave
            // first, and this one waits its turn outside the window (a late
            // one is dropped at once below).
            self.release(now, out);
            if !fits(&self.window) {
                return false;
            }
        }
        let pushed = self.window.push(event.seq, event.kind, frame);
        self.settle_push(pushed, event, frame, now, out)
    }

    /// Acts on what pushing `event` into the window did: releases what it
    /// made ready, makes room for it and pushes it again, or logs it as
    /// dropped; then settles the hole timer. Returns what
    /// [`Pipeline::accept`] returns.
    #[inline(never)]
    fn settle_push(
        &mut self,
        mut pushed: Push,
        event: Event,
        frame: &[u8],
        now: Instant,
        out: &mut impl Deliver,
    ) -> bool {
        loop {
            match pushed {
                Push::NeedsRoom => {
                    let skipped_before = self.window.counters().skipped;
                    let next = self.window.next_seq();
                    self.release(now, out);
                    let skipped = self.window.counters().skipped - skipped_before;
                    if skipped > 0 && self.skip_log.allow(now) {
                        log::warn!(
                            "seq {} is beyond the reorder window: skipped {skipped} missing seq(s) from {next}",
                            event.seq
                        );
                    }
                    if self.window.is_ready() {
                        return false; // `out` is full; try again later.
                    }
                    pushed = self.window.push(event.seq, event.kind, frame);
                }
                Push::Held => {
                    // Only a frame that filled the next seq, or a floor
                    // raised for the byte budget, releases anything.
                    if self.window.is_ready() {
                        self.release(now, out);
                    }
                    break;
                }
                Push::Late => {
                    if self.drop_log.allow(now) {
                        log::debug!(
                            "dropped late event {} (already delivered or skipped)",
                            event.seq
                        );
                    }
                    break;
                }
                Push::Duplicate => {
                    if self.drop_log.allow(now) {
                        log::debug!("dropped duplicate event {}", event.seq);
                    }
                    break;
                }
            }
        }
        self.settle_hole_timer(now);
        true
    }

    /// Records the probation's outcome.
    fn decide(&mut self, new_run: bool) {
        self.probation = if new_run {
            Probation::NewRun
        } else {
            log::info!(
                "the new event source carries on the run from seq {}",
                self.window.next_seq()
            );
            Probation::Off
        };
    }

    /// Moves backlog events into the window while it can: not during an
    /// undecided probation, and a new run only once the old run's in-order
    /// frames are out.
    fn drain_backlog(&mut self, now: Instant, out: &mut impl Deliver) {
        match self.probation {
            Probation::Pending(_) => return,
            Probation::NewRun => {
                self.release(now, out);
                if self.window.is_ready() {
                    return;
                }
                self.start_new_run(out);
            }
            Probation::Off => {}
        }
        let mut backlog = std::mem::take(&mut self.backlog);
        while let Some((event, range)) = backlog.events.get(backlog.taken).cloned() {
            if !self.accept(event, &backlog.bytes[range], now, out) {
                break;
            }
            backlog.taken += 1;
        }
        if backlog.is_empty() {
            backlog.events.clear();
            backlog.bytes.clear();
            backlog.taken = 0;
        }
        self.backlog = backlog;
        if self.ending && self.backlog.is_empty() {
            // Every event received is in the window: no hole can fill now.
            self.window.release_all();
        }
    }

    /// When the pipeline next needs [`Pipeline::on_timer`], if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let hole = self.hole_deadline();
        let probation = match self.probation {
            Probation::Pending(Some(since)) => Some(since + PROBATION_TIME),
            _ => None,
        };
        hole.into_iter().chain(probation).min()
    }

    /// When the current hole is given up on. Never while a new source's
    /// first events are held aside (at most [`PROBATION_TIME`]): the seq it
    /// waits for may be among them.
    fn hole_deadline(&self) -> Option<Instant> {
        if matches!(self.probation, Probation::Pending(Some(_))) {
            return None;
        }
        self.hole_timer.deadline()
    }

    /// Ends a probation that has waited long enough, and skips the hole
    /// holding up the stream if it has waited too long.
    pub fn on_timer(&mut self, now: Instant, out: &mut impl Deliver) {
        if let Probation::Pending(Some(since)) = self.probation
            && since + PROBATION_TIME <= now
        {
            self.decide(false);
            self.drain_backlog(now, out);
        }
        if self.hole_deadline().is_none_or(|deadline| deadline > now) {
            return;
        }
        let Some(why) = self.hole_timer.expired(now) else {
            return;
        };
        let skipped_before = self.window.counters().skipped;
        let next = self.window.next_seq();
        self.window.skip_hole();
        self.release(now, out);
        self.settle_hole_timer(now);
        let skipped = self.window.counters().skipped - skipped_before;
        if skipped > 0 && self.skip_log.allow(now) {
            let after = match why {
                Expiry::Active => format!(
                    "the source sent other lines for {:?} without them",
                    self.hole_timer.timeout()
                ),
                Expiry::Silent => format!(
                    "the source was silent for {:?} with them missing",
                    self.hole_timer.silence()
                ),
                Expiry::NoSource => format!(
                    "waiting {:?} in all, the last part with no source connected",
                    self.hole_timer.timeout()
                ),
            };
            log::warn!("skipped {skipped} missing seq(s) from {next}: {after}");
        }
    }

    /// Restarts the hole timer, e.g. after the server stopped reading the
    /// source for back-pressure: a hole may then sit unread in a socket
    /// buffer, so that time must not count against it.
    pub fn restart_hole_timer(&mut self, now: Instant) {
        self.hole_timer.restart(now);
    }

    /// The stream has ended for good (shutdown): every hole is given up on,
    /// so [`Pipeline::release_ready`] delivers everything received, as fast
    /// as the outboxes take it.
    pub fn end_of_stream(&mut self) {
        if matches!(self.probation, Probation::Pending(_)) {
            self.decide(false);
        }
        self.ending = true;
        if self.backlog.is_empty() || self.probation == Probation::NewRun {
            // Otherwise once the events held aside are in the window. A new
            // run's never fill the old run's holes: the old run's frames are
            // all delivered, then the new run starts.
            self.window.release_all();
        }
    }

    /// Routes the in-order frames the window holds, and the backlog behind
    /// them, until `out` is full.
    pub fn release_ready(&mut self, now: Instant, out: &mut impl Deliver) {
        self.release(now, out);
        self.settle_hole_timer(now);
        self.drain_backlog(now, out);
    }

    /// True when in-order frames or backlog events are waiting for
    /// [`Pipeline::release_ready`].
    pub fn has_ready(&self) -> bool {
        self.window.is_ready() || self.is_blocked()
    }

    /// The user on connection `conn` receives notifications from now on.
    pub fn register(&mut self, user: UserId, conn: ConnKey) {
        self.router.register(user, conn);
    }

    /// Starts a new run: sequence and graph start over. Frames of the old run
    /// still held (behind a hole that never filled) are dropped and counted
    /// as skipped.
    fn start_new_run(&mut self, out: &mut impl Deliver) {
        let (old_next, dropped) = (self.window.next_seq(), self.window.held());
        self.window.reset();
        out.new_run(&mut self.router);
        self.hole_timer.stop();
        self.probation = Probation::Off;
        self.counters.runs += 1;
        log::info!(
            "the new event source started over at seq 1 (the old run was at seq {old_next}): a new run begins"
        );
        if dropped > 0 {
            log::warn!(
                "dropped {dropped} events of the old run held behind a hole that never filled"
            );
        }
    }

    /// Pops and routes the frames the window releases now, until `out` is
    /// full.
    fn release(&mut self, now: Instant, out: &mut impl Deliver) {
        let mut released = false;
        while !out.is_full() {
            let Some((seq, kind, frame)) = self.window.pop() else {
                break;
            };
            released = true;
            route(&mut self.router, &mut self.counters, seq, kind, frame, out);
        }
        // Frames leave only while `out` has room, but crossing the gap
        // below a raised floor with none held releases nothing and needs
        // none: a full `out` must not hold it up, or a frame too far ahead
        // of an empty window would need room for ever.
        self.window.cross_gap_if_empty();
        if released {
            self.progress(now);
        }
    }

    /// The stream moved: a remaining hole starts its wait now.
    fn progress(&mut self, now: Instant) {
        self.hole_timer.stop();
        if self.window.is_waiting() {
            self.hole_timer.start(now);
        }
    }

    /// The hole timer runs exactly while there is a hole: started when one
    /// appears, kept while it lasts, stopped when it is gone (frames that are
    /// merely waiting for room are not a hole).
    fn settle_hole_timer(&mut self, now: Instant) {
        if self.window.is_waiting() {
            self.hole_timer.start(now);
        } else {
            self.hole_timer.stop();
        }
    }
}

/// Hands one in-order event to `out` and counts it. A free function so
/// the frame may borrow from the window while the router is borrowed
/// mutably.
fn route(
    router: &mut Router,
    counters: &mut PipelineCounters,
    seq: Seq,
    kind: EventKind,
    frame: &[u8],
    out: &mut impl Deliver,
) {
    counters.notifications += out.event(router, seq, kind, frame);
    counters.events_routed += 1;
}

#[cfg(test)]
mod tests;
