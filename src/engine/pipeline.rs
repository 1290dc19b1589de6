//! Source frames in, `(connection, frame)` deliveries out: parse, reorder,
//! route. No I/O; time comes in as an argument.
//!
//! The pipeline also decides when a hole has waited long enough (the hole
//! timer) and when a new event source is starting a new run rather than
//! carrying on.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::engine::protocol::{self, Event, EventKind, ParseError, Seq, UserId};
use crate::engine::router::{ConnKey, Router};
use crate::engine::window::{Push, ReorderWindow, WindowCounters};
use crate::log_limit::LogLimit;

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

/// Receives each delivery: the recipient connection and the exact frame.
pub trait Deliver {
    /// Queue `frame` for `conn`.
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]);

    /// Queue `frame` for every registered connection, `conns`: a Broadcast.
    /// By default each gets it through [`Deliver::deliver`]; a receiver
    /// that can store the frame once for all of them (the server's
    /// broadcast log) overrides this and never walks `conns`.
    fn broadcast(&mut self, frame: &[u8], conns: impl Iterator<Item = ConnKey>) {
        for conn in conns {
            self.deliver(conn, frame);
        }
    }

    /// True when the receiver wants no more deliveries for now (queued output
    /// over budget, or a client due for a write). In-order frames then stay
    /// in the window until [`Pipeline::release_ready`], so filling a long
    /// hole cannot dump the whole window into the outboxes at once.
    fn is_full(&self) -> bool {
        false
    }
}

impl<F: FnMut(ConnKey, &[u8])> Deliver for F {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        self(conn, frame)
    }
}

/// Events a new source may send before the pipeline decides it carries on
/// the current run (unless one of them starts a new run first).
const PROBATION_EVENTS: usize = 1024;
/// How long a new source's first events wait for that decision at most.
const PROBATION_TIME: Duration = Duration::from_millis(100);

/// Source events not yet put into the window, in arrival order: a new
/// source's first events while its run is undecided, or an event that could
/// not be stored while the outboxes were full.
#[derive(Debug, Default)]
struct Backlog {
    /// The frames' bytes, back to back.
    bytes: Vec<u8>,
    /// Each event and where its frame lies in `bytes`.
    events: Vec<(Event, Range<usize>)>,
    /// Events before this index have been taken out.
    taken: usize,
}

impl Backlog {
    fn push(&mut self, event: Event, frame: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.events.push((event, start..self.bytes.len()));
    }

    fn len(&self) -> usize {
        self.events.len() - self.taken
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
    /// How long a hole may hold up the stream without progress.
    hole_timeout: Duration,
    /// When the current hole started holding frames up, if one does.
    waiting_since: Option<Instant>,
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
    /// `window_bytes` bytes, and that skips a hole after `hole_timeout`.
    pub fn new(window_capacity: usize, window_bytes: usize, hole_timeout: Duration) -> Self {
        Pipeline {
            window: ReorderWindow::new(window_capacity, window_bytes),
            router: Router::new(),
            hole_timeout,
            waiting_since: None,
            probation: Probation::Off,
            backlog: Backlog::default(),
            ending: false,
            skip_log: LogLimit::new(Instant::now()),
            drop_log: LogLimit::new(Instant::now()),
            counters: PipelineCounters::default(),
        }
    }

    /// The router, to register and unregister client connections.
    pub fn router_mut(&mut self) -> &mut Router {
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
    /// run or starts a new one at seq 1.
    pub fn source_connected(&mut self) {
        if self.window.next_seq() > 1 || self.window.held() > 0 {
            self.probation = Probation::Pending(None);
        }
    }

    /// The event source has gone: an undecided run is taken as carried on.
    pub fn source_disconnected(&mut self, now: Instant, out: &mut impl Deliver) {
        if matches!(self.probation, Probation::Pending(_)) {
            self.decide(false);
        }
        self.drain_backlog(now, out);
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
        let event = match protocol::parse_event(protocol::strip_terminator(frame)) {
            Ok(event) => event,
            Err(reason) => {
                self.counters.malformed += 1;
                return Err(reason);
            }
        };
        self.counters.events_in += 1;
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
    fn accept(&mut self, event: Event, frame: &[u8], now: Instant, out: &mut impl Deliver) -> bool {
        if !out.is_full() && self.window.bypass(event.seq) {
            route(&mut self.router, &mut self.counters, event.kind, frame, out);
            self.progress(now);
            return true;
        }
        loop {
            match self.window.push(event.seq, event.kind, frame) {
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
                }
                Push::Held => {
                    self.release(now, out);
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
                self.start_new_run();
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
        if self.ending {
            self.window.release_all();
        }
    }

    /// When the pipeline next needs [`Pipeline::on_timer`], if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let hole = self.waiting_since.map(|since| since + self.hole_timeout);
        let probation = match self.probation {
            Probation::Pending(Some(since)) => Some(since + PROBATION_TIME),
            _ => None,
        };
        hole.into_iter().chain(probation).min()
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
        let hole_deadline = self.waiting_since.map(|since| since + self.hole_timeout);
        if hole_deadline.is_some_and(|deadline| deadline <= now) {
            let skipped_before = self.window.counters().skipped;
            let next = self.window.next_seq();
            self.window.skip_hole();
            self.release(now, out);
            self.settle_hole_timer(now);
            let skipped = self.window.counters().skipped - skipped_before;
            if skipped > 0 && self.skip_log.allow(now) {
                log::warn!(
                    "skipped {skipped} missing seq(s) from {next} after waiting {:?}",
                    self.hole_timeout
                );
            }
        }
    }

    /// Restarts the hole timer, e.g. after the server stopped reading the
    /// source for back-pressure: a hole may then sit unread in a socket
    /// buffer, so that time must not count against it.
    pub fn restart_hole_timer(&mut self, now: Instant) {
        if self.waiting_since.is_some() {
            self.waiting_since = Some(now);
        }
    }

    /// The stream has ended for good (shutdown): every hole is given up on,
    /// so [`Pipeline::release_ready`] delivers everything received, as fast
    /// as the outboxes take it.
    pub fn end_of_stream(&mut self) {
        if matches!(self.probation, Probation::Pending(_)) {
            self.decide(false);
        }
        self.ending = true;
        self.window.release_all();
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
    fn start_new_run(&mut self) {
        let (old_next, dropped) = (self.window.next_seq(), self.window.held());
        self.window.reset();
        self.router.clear_graph();
        self.waiting_since = None;
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
            let Some((_, kind, frame)) = self.window.pop() else {
                break;
            };
            released = true;
            route(&mut self.router, &mut self.counters, kind, frame, out);
        }
        if released {
            self.progress(now);
        }
    }

    /// The stream moved: a remaining hole starts its wait now.
    fn progress(&mut self, now: Instant) {
        self.waiting_since = self.window.is_waiting().then_some(now);
    }

    /// The hole timer runs exactly while there is a hole: started when one
    /// appears, kept while it lasts, stopped when it is gone (frames that are
    /// merely waiting for room are not a hole).
    fn settle_hole_timer(&mut self, now: Instant) {
        if !self.window.is_waiting() {
            self.waiting_since = None;
        } else if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
    }
}

/// Routes one in-order event and counts it. A free function so the frame
/// may borrow from the window while the router is borrowed mutably.
fn route(
    router: &mut Router,
    counters: &mut PipelineCounters,
    kind: EventKind,
    frame: &[u8],
    out: &mut impl Deliver,
) {
    let notified = match kind {
        EventKind::Broadcast => {
            out.broadcast(frame, router.connection_keys());
            router.connections() as u64
        }
        kind => router.route(kind, |conn| out.deliver(conn, frame)),
    };
    counters.events_routed += 1;
    counters.notifications += notified;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connection keys used in these tests: user N is on connection N.
    fn pipeline_with_users(users: &[UserId]) -> Pipeline {
        let mut pipeline = Pipeline::new(64, 1 << 20, Duration::from_secs(1));
        for &user in users {
            pipeline.register(user, user as ConnKey);
        }
        pipeline
    }

    /// Feeds `frames` and returns the deliveries as (conn, text).
    fn feed(pipeline: &mut Pipeline, frames: &[&str], now: Instant) -> Vec<(ConnKey, String)> {
        let mut out = Vec::new();
        for frame in frames {
            let _ = pipeline.on_frame(frame.as_bytes(), now, &mut |conn, f: &[u8]| {
                out.push((conn, String::from_utf8(f.to_vec()).unwrap()))
            });
        }
        out
    }

    #[test]
    fn shuffled_events_are_delivered_in_order_with_exact_bytes() {
        let mut pipeline = pipeline_with_users(&[1, 2]);
        let now = Instant::now();
        let out = feed(
            &mut pipeline,
            &["3|S|2\n", "1|F|1|2\r\n", "4|B\r\n", "2|P|2|1\n"],
            now,
        );
        assert_eq!(
            out[..3],
            [
                (2, "1|F|1|2\r\n".to_string()),
                (1, "2|P|2|1\n".to_string()),
                (1, "3|S|2\n".to_string()),
            ]
        );
        assert!(out[3..].iter().all(|(_, frame)| frame == "4|B\r\n"));
        let mut broadcast: Vec<ConnKey> = out[3..].iter().map(|(c, _)| *c).collect();
        broadcast.sort_unstable();
        assert_eq!(broadcast, vec![1, 2]);
        assert_eq!(pipeline.counters().events_routed, 4);
        assert_eq!(pipeline.counters().notifications, 5);
    }

    #[test]
    fn a_malformed_line_is_counted_and_skipped() {
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        let mut out = Vec::new();
        let mut sink = |conn, _: &[u8]| out.push(conn);
        assert_eq!(
            pipeline.on_frame(b"1|X|1\n", now, &mut sink),
            Err(ParseError::UnknownKind)
        );
        assert_eq!(pipeline.on_frame(b"1|P|2|1\n", now, &mut sink), Ok(()));
        assert_eq!(out, vec![1]);
        assert_eq!(pipeline.counters().malformed, 1);
    }

    #[test]
    fn a_hole_is_skipped_only_after_the_timeout() {
        let mut pipeline = pipeline_with_users(&[1]);
        let start = Instant::now();
        assert!(feed(&mut pipeline, &["2|P|0|1\n", "3|P|0|1\n"], start).is_empty());
        assert_eq!(pipeline.deadline(), Some(start + Duration::from_secs(1)));
        let mut out = Vec::new();
        let mut sink = |conn, _: &[u8]| out.push(conn);
        pipeline.on_timer(start + Duration::from_millis(999), &mut sink);
        assert!(out.is_empty());
        pipeline.on_timer(start + Duration::from_secs(1), &mut |conn, _: &[u8]| {
            out.push(conn)
        });
        assert_eq!(out, vec![1, 1]);
        assert_eq!(pipeline.counters().window.skipped, 1);
        assert_eq!(pipeline.deadline(), None);
    }

    #[test]
    fn progress_restarts_the_hole_timer() {
        let mut pipeline = pipeline_with_users(&[1]);
        let start = Instant::now();
        feed(&mut pipeline, &["2|B\n", "4|B\n"], start);
        let later = start + Duration::from_millis(500);
        assert_eq!(feed(&mut pipeline, &["1|B\n"], later).len(), 2);
        assert_eq!(pipeline.deadline(), Some(later + Duration::from_secs(1)));
    }

    /// A sink that takes `room` deliveries, then says it is full.
    struct Limited {
        room: usize,
        got: Vec<String>,
    }

    impl Deliver for Limited {
        fn deliver(&mut self, _: ConnKey, frame: &[u8]) {
            self.room -= 1;
            self.got.push(String::from_utf8(frame.to_vec()).unwrap());
        }
        fn is_full(&self) -> bool {
            self.room == 0
        }
    }

    #[test]
    fn filling_a_hole_releases_only_as_much_as_the_receiver_takes() {
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        let held: Vec<String> = (2..=50).map(|seq| format!("{seq}|P|0|1\n")).collect();
        let held: Vec<&str> = held.iter().map(String::as_str).collect();
        assert!(feed(&mut pipeline, &held, now).is_empty());
        let mut sink = Limited {
            room: 10,
            got: Vec::new(),
        };
        pipeline.on_frame(b"1|P|0|1\n", now, &mut sink).unwrap();
        assert_eq!(sink.got.len(), 10, "stops when the receiver is full");
        assert!(pipeline.has_ready());
        assert_eq!(pipeline.deadline(), None, "ready frames are not a hole");
        sink.room = 100;
        pipeline.release_ready(now, &mut sink);
        let expected: Vec<String> = (1..=50).map(|seq| format!("{seq}|P|0|1\n")).collect();
        assert_eq!(sink.got, expected);
        assert!(!pipeline.has_ready());
    }

    #[test]
    fn a_source_that_starts_over_starts_a_new_run() {
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        feed(&mut pipeline, &["1|F|1|9\n", "2|B\n"], now);
        pipeline.source_connected();
        // A second run: seq 1 again, and the old follow of 9 is gone.
        let out = feed(&mut pipeline, &["1|S|9\n", "2|P|0|1\n"], now);
        assert_eq!(out, vec![(1, "2|P|0|1\n".to_string())]);
        assert_eq!(pipeline.counters().runs, 1);
        assert_eq!(pipeline.counters().window.late, 0);
    }

    #[test]
    fn a_reconnecting_source_that_resends_recent_events_carries_on() {
        // Resent 3 is late, not a sign of a new run; the graph survives.
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        feed(&mut pipeline, &["1|F|1|2\n", "2|B\n", "3|B\n"], now);
        pipeline.source_connected();
        assert!(feed(&mut pipeline, &["3|B\n", "4|S|2\n", "5|B\n"], now).is_empty());
        let mut out = Vec::new();
        pipeline.on_timer(now + PROBATION_TIME, &mut |conn, f: &[u8]| {
            out.push((conn, String::from_utf8(f.to_vec()).unwrap()))
        });
        assert_eq!(
            out,
            vec![(1, "4|S|2\n".to_string()), (1, "5|B\n".to_string())]
        );
        assert_eq!(pipeline.counters().runs, 0);
        assert_eq!(pipeline.counters().window.late, 1);
    }

    #[test]
    fn a_new_run_waits_for_the_old_runs_ready_frames_then_drops_only_stuck_ones() {
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        let mut sink = Limited {
            room: 0,
            got: Vec::new(),
        };
        // Old run: 1 is in order but waits for room; 3 is stuck behind 2.
        for frame in [&b"1|B\n"[..], b"3|B\n"] {
            pipeline.on_frame(frame, now, &mut sink).unwrap();
        }
        pipeline.source_connected();
        pipeline.on_frame(b"1|P|0|1\n", now, &mut sink).unwrap();
        assert!(pipeline.is_blocked(), "the new run waits for the old 1");
        assert_eq!(pipeline.counters().runs, 0);
        sink.room = 100;
        pipeline.release_ready(now, &mut sink);
        assert_eq!(sink.got, ["1|B\n", "1|P|0|1\n"]);
        assert_eq!(pipeline.counters().runs, 1);
        assert_eq!(pipeline.counters().window.skipped, 1, "the stuck 3");
        assert!(!pipeline.is_blocked());
    }

    #[test]
    fn nothing_is_routed_past_a_full_receiver_even_in_order() {
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        let mut sink = Limited {
            room: 0,
            got: Vec::new(),
        };
        pipeline.on_frame(b"1|P|0|1\n", now, &mut sink).unwrap();
        assert!(sink.got.is_empty());
        assert!(pipeline.has_ready());
        sink.room = 1;
        pipeline.release_ready(now, &mut sink);
        assert_eq!(sink.got, ["1|P|0|1\n"]);
    }

    #[test]
    fn a_source_that_carries_on_keeps_the_run_after_a_short_wait() {
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        feed(&mut pipeline, &["1|F|1|9\n"], now);
        pipeline.source_connected();
        assert!(feed(&mut pipeline, &["3|P|0|1\n", "2|S|9\n"], now).is_empty());
        assert_eq!(pipeline.deadline(), Some(now + PROBATION_TIME));
        let mut out = Vec::new();
        pipeline.on_timer(now + PROBATION_TIME, &mut |conn, f: &[u8]| {
            out.push((conn, String::from_utf8(f.to_vec()).unwrap()))
        });
        assert_eq!(
            out,
            vec![(1, "2|S|9\n".to_string()), (1, "3|P|0|1\n".to_string())]
        );
        assert_eq!(pipeline.counters().runs, 0);
    }

    #[test]
    fn a_new_run_whose_first_line_is_above_the_old_next_seq_is_still_caught() {
        // After a run of 2, the new run's first (shuffled) lines are 5 and 3.
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        feed(&mut pipeline, &["1|B\n", "2|B\n"], now);
        pipeline.source_connected();
        let out = feed(
            &mut pipeline,
            &[
                "5|P|0|1\n",
                "3|P|0|1\n",
                "1|P|0|1\n",
                "2|P|0|1\n",
                "4|P|0|1\n",
            ],
            now,
        );
        let seqs: Vec<String> = out.into_iter().map(|(_, f)| f).collect();
        assert_eq!(
            seqs,
            [
                "1|P|0|1\n",
                "2|P|0|1\n",
                "3|P|0|1\n",
                "4|P|0|1\n",
                "5|P|0|1\n"
            ]
        );
        assert_eq!(pipeline.counters().runs, 1);
        assert_eq!(pipeline.counters().window.late, 0);
    }

    #[test]
    fn a_source_leaving_during_probation_has_its_events_delivered() {
        let mut pipeline = pipeline_with_users(&[1]);
        let now = Instant::now();
        feed(&mut pipeline, &["1|B\n"], now);
        pipeline.source_connected();
        assert!(feed(&mut pipeline, &["2|P|0|1\n"], now).is_empty());
        let mut out = Vec::new();
        pipeline.source_disconnected(now, &mut |conn, _: &[u8]| out.push(conn));
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn the_first_source_ever_needs_no_probation() {
        let mut pipeline = pipeline_with_users(&[1]);
        pipeline.source_connected();
        assert_eq!(feed(&mut pipeline, &["1|P|0|1\n"], Instant::now()).len(), 1);
    }
}
