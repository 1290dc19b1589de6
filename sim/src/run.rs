//! One simulation run: the event source and every client in one mio `Poll`
//! on one thread.
//!
//! The run goes through the original client's phases: connect the source
//! (idle), connect the clients (each sends its id), settle, send the events
//! in shuffled batches and close the source, drain (every client receives
//! what it is owed), then a short grace period to catch anything extra.
//!
//! The source is written from a large generated chunk until `WouldBlock`;
//! a new chunk is generated only when the last one is fully written and the
//! expectations pending over all clients are under the cap. If the server
//! stops reading, the source simply waits: that is legal back-pressure.
//!
//! While it runs, the loop shows its progress as [`progress`](super::progress)
//! chooses: a live bar on a terminal (updated every 100 ms at most), or the
//! original client's plain line every `logInterval`.

use std::io::{self, IsTerminal, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::config::SimConfig;
use super::connect;
use super::failure::{Failure, FailureReason, show_line};
use super::generator::Generator;
use super::line::split_lines;
use super::model::ClientIndex;
use super::plan::Plan;
use super::progress::{BAR_REFRESH, Bar, Counts, ProgressDisplay, progress_display};
use super::report::{Ports, Report};
use super::verify::Verifiers;
use super::{Seq, UserId};

/// The event source's token; clients use their [`ClientIndex`].
const SOURCE: Token = Token(usize::MAX);

/// Bytes generated per chunk of the source's output: large enough that the
/// writes are big, small enough to stay in cache.
const CHUNK_BYTES: usize = 256 * 1024;

/// Bytes the source may write in one turn of the loop before the clients
/// get their turn: a server that reads as fast as we write must not starve
/// the reading of its output.
const WRITE_BUDGET: usize = 2 * CHUNK_BYTES;

/// Bytes one read takes from a client (the loopback baseline reads the
/// same way).
pub(super) const READ_BYTES: usize = 64 * 1024;

/// Readiness events taken per poll (the loopback baseline too).
pub(super) const EVENTS_CAPACITY: usize = 1024;

/// Longest notification line accepted; every event line is far shorter.
const MAX_LINE: usize = 1024;

/// How often client timeouts and the source stall are checked.
const TICK: Duration = Duration::from_millis(50);

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Clients are connected; giving the server time to register them.
    Settling(Instant),
    /// Events are being sent.
    Sending,
    /// The source is closed; waiting for clients to receive what is owed.
    Draining,
    /// Everything owed arrived; listening for extras until the deadline.
    Grace(Instant),
}

/// One verified client connection's socket state.
#[derive(Debug)]
struct ClientConn {
    /// The socket, non-blocking and registered for reading.
    stream: TcpStream,
    /// An incomplete line carried over to the next read.
    carry: Vec<u8>,
    /// False once the server closed it or reading failed.
    open: bool,
    /// When the last line arrived (or the connection was made).
    last_line: Instant,
    /// Since when it has been owed an event already sent, if it is.
    owed_since: Option<Instant>,
}

/// The event source's socket and output.
#[derive(Debug)]
struct Source {
    /// The socket, non-blocking and registered for writing.
    stream: TcpStream,
    /// The chunk being written.
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// Whether the last write left the socket writable (edge-triggered
    /// readiness: only a `WouldBlock` clears it, only an event sets it).
    writable: bool,
    /// Highest seq of the chunk being written.
    chunk_last: Seq,
    /// Events in the chunk being written.
    chunk_events: u64,
    /// Garbage lines in the chunk being written.
    chunk_malformed: u64,
    /// Every seq up to this one has been fully written.
    sent_through: Seq,
    /// Events fully written.
    events: u64,
    /// Garbage lines fully written.
    malformed: u64,
    /// When the last byte was written or a chunk began: a stall is measured
    /// from here.
    last_progress: Instant,
    /// With `--drip`, no new batch before this.
    drip_resume: Instant,
    /// The write side is shut down: every event is sent.
    finished: bool,
    /// The last turn stopped at its write budget with the socket still
    /// writable: poll without sleeping and carry on.
    more: bool,
}

/// The progress display's state: the plain line's, or the bar's.
#[derive(Debug)]
struct Progress {
    /// The bar, the plain lines, or nothing.
    display: ProgressDisplay,
    /// The bar, when that is the display.
    bar: Option<Bar>,
    /// When the next line, or the bar's next update, is due.
    next: Instant,
    /// Time of the previous line.
    at: Instant,
    /// Events sent at the previous line.
    events: u64,
    /// Notifications verified at the previous line.
    notifications: u64,
}

/// Everything one run owns.
struct Run<'a> {
    /// The knobs.
    config: &'a SimConfig,
    /// Readiness for the source and every verified client.
    poll: Poll,
    /// The event stream and the reference model.
    generator: Generator,
    /// What each verified client is owed.
    verifiers: Verifiers,
    /// Verified clients' sockets, by [`ClientIndex`].
    clients: Vec<ClientConn>,
    /// How many of `clients` are `--twin-ids` twins (the last ones).
    twins: usize,
    /// Silent clients' sockets, held open and never read.
    silent: Vec<std::net::TcpStream>,
    /// The event source.
    source: Source,
    /// Shared buffer every client read goes through.
    read_buf: Vec<u8>,
    /// Where the run is.
    phase: Phase,
    /// Reasons found so far; the run stops at the end of the turn that
    /// finds the first.
    failures: Vec<FailureReason>,
    /// When the run began (before the first connect).
    started: Instant,
    /// When the first event byte was written.
    first_write: Option<Instant>,
    /// When the last owed notification arrived.
    drained_at: Option<Instant>,
    /// Next timeout check.
    next_tick: Instant,
    /// The progress line or bar.
    progress: Progress,
}

/// Runs one simulation as `config` says and returns its report, or why it
/// failed.
pub fn run(config: &SimConfig) -> Result<Report, Failure> {
    let started = Instant::now();
    let fail = |reason: FailureReason| Failure {
        reasons: vec![reason],
        report: Box::new(Report {
            seed: config.random_seed,
            wall: started.elapsed(),
            ..Report::default()
        }),
    };
    config
        .validate()
        .map_err(|e| fail(FailureReason::Config(e)))?;
    let plan = Plan::new(config);
    let mut run = Run::connect(config, &plan, started).map_err(fail)?;
    run.drive();
    run.verdict()
}

impl<'a> Run<'a> {
    /// Connects the source, then every client, as the original did.
    fn connect(
        config: &'a SimConfig,
        plan: &Plan,
        started: Instant,
    ) -> Result<Self, FailureReason> {
        let wanted = 1 + plan.verified.len() + plan.silent.len();
        let limit = connect::raise_open_file_limit();
        if limit != 0 && (limit as usize) < wanted + 16 {
            warn!(
                "the open-file limit is {limit} but this run needs about {} descriptors; connects will fail past it (raise the hard limit: ulimit -Hn)",
                wanted + 16
            );
        }
        let event_addr = connect::resolve(&config.host, config.event_port)?;
        let ports = config.client_port_list();
        // The host is resolved once; each client connection gets its port.
        let client_ip = connect::resolve(&config.host, ports[0])?.ip();
        let poll_error = |e: io::Error| FailureReason::Poll {
            error: e.to_string(),
        };
        let poll = Poll::new().map_err(poll_error)?;

        let mut stream = connect::source(event_addr, config.timeout, config.drip)?;
        poll.registry()
            .register(&mut stream, SOURCE, Interest::WRITABLE)
            .map_err(poll_error)?;
        info!("event source connected to {event_addr}");

        let clients = connect_clients(config, plan, client_ip, &poll)?;
        let silent = connect_silent(config, plan, client_ip)?;
        info!(
            "{} clients connected to {client_ip}{} ({} verified, {} of them twins; {} silent); {} users, seed {}",
            clients.len() + silent.len(),
            Ports(ports),
            clients.len(),
            plan.twins,
            silent.len(),
            config.users(),
            config.random_seed
        );
        let users: Vec<UserId> = plan.verified.iter().map(|&u| UserId::from(u)).collect();
        let display = progress_display(
            io::stderr().is_terminal(),
            config.log_interval,
            config.plain_progress,
        );
        let now = Instant::now();
        Ok(Run {
            config,
            poll,
            generator: Generator::new(&config.generator(), &plan.verified),
            verifiers: if config.count_only {
                Verifiers::counting(&users)
            } else {
                Verifiers::new(&users)
            },
            clients,
            twins: plan.twins,
            silent,
            source: Source {
                stream,
                out: Vec::with_capacity(CHUNK_BYTES + 4096),
                written: 0,
                writable: false,
                chunk_last: 0,
                chunk_events: 0,
                chunk_malformed: 0,
                sent_through: 0,
                events: 0,
                malformed: 0,
                last_progress: now,
                drip_resume: now,
                finished: false,
                more: false,
            },
            read_buf: vec![0; READ_BYTES],
            phase: Phase::Settling(now + config.settle),
            failures: Vec::new(),
            started,
            first_write: None,
            drained_at: None,
            next_tick: now + TICK,
            progress: Progress {
                display,
                bar: (display == ProgressDisplay::Bar).then(|| Bar::new(config.total_events)),
                next: now
                    + match display {
                        ProgressDisplay::Bar => BAR_REFRESH,
                        ProgressDisplay::Lines | ProgressDisplay::Off => config.log_interval,
                    },
                at: now,
                events: 0,
                notifications: 0,
            },
        })
    }

    /// Turns the loop until the run is over or has failed.
    fn drive(&mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.next_wakeup(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.failures.push(FailureReason::Poll {
                    error: e.to_string(),
                });
                return;
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SOURCE => self.source.writable = true,
                    Token(index) if index < self.clients.len() => {
                        self.read_client(index as ClientIndex, now)
                    }
                    // Sporadic events for unknown tokens happen; ignore them.
                    Token(_) => {}
                }
            }
            self.advance(now);
            if now >= self.next_tick {
                self.next_tick = now + TICK;
                self.check_timeouts(now);
            }
            self.log_progress(now, false);
            if !self.failures.is_empty() || self.phase_done(now) {
                self.log_progress(now, true);
                return;
            }
        }
    }

    /// How long the poll may sleep: until the next deadline of any kind.
    fn next_wakeup(&self, now: Instant) -> Duration {
        if self.source.more {
            return Duration::ZERO;
        }
        let mut wake = self.next_tick;
        match self.phase {
            Phase::Settling(at) | Phase::Grace(at) => wake = wake.min(at),
            Phase::Sending if self.source.out.is_empty() && self.config.drip => {
                wake = wake.min(self.source.drip_resume)
            }
            Phase::Sending | Phase::Draining => {}
        }
        if self.progress.display != ProgressDisplay::Off {
            wake = wake.min(self.progress.next);
        }
        wake.saturating_duration_since(now)
    }

    /// Moves the run along: phase changes and writing the source.
    fn advance(&mut self, now: Instant) {
        if let Phase::Settling(at) = self.phase
            && now >= at
        {
            self.log(|| info!("sending {} events", self.config.total_events));
            self.phase = Phase::Sending;
        }
        if self.phase == Phase::Sending {
            self.pump_source(now);
            if self.source.finished {
                self.log(|| {
                    info!(
                        "all events sent; waiting for {} notifications still owed",
                        self.verifiers.pending()
                    )
                });
                self.phase = Phase::Draining;
            }
        }
        if self.phase == Phase::Draining && self.verifiers.pending() == 0 {
            self.drained_at = Some(now);
            self.log(|| debug!("every notification owed has arrived; grace period"));
            self.phase = Phase::Grace(now + self.config.grace);
        }
    }

    /// Whether the run is over (the grace period has passed).
    fn phase_done(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::Grace(at) if now >= at)
    }

    /// Writes the source until `WouldBlock` or the turn's budget, generating
    /// chunks as they are used up, and closes it after the last event.
    fn pump_source(&mut self, now: Instant) {
        let mut budget = WRITE_BUDGET;
        self.source.more = false;
        loop {
            if self.source.out.is_empty() {
                if self.generator.is_done() {
                    self.finish_source();
                    return;
                }
                if (self.config.drip && now < self.source.drip_resume)
                    || self.verifiers.pending() > self.config.max_pending
                {
                    return;
                }
                self.refill(now);
                if self.source.out.is_empty() {
                    // A chunk of holes only: nothing to write.
                    self.complete_chunk(now);
                    continue;
                }
            }
            if !self.source.writable {
                return;
            }
            if budget == 0 {
                self.source.more = true;
                return;
            }
            let source = &mut self.source;
            match source.stream.write(&source.out[source.written..]) {
                Ok(0) => {
                    self.failures.push(FailureReason::SourceWrite {
                        error: "the server closed the event source".into(),
                    });
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    source.written += n;
                    source.last_progress = now;
                    self.first_write.get_or_insert(now);
                    if source.written == source.out.len() {
                        self.complete_chunk(now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    source.writable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let hint = match e.kind() {
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                            " (the server closed the event source; is another source connected?)"
                        }
                        _ => "",
                    };
                    self.failures.push(FailureReason::SourceWrite {
                        error: format!("{e}{hint}"),
                    });
                    return;
                }
            }
        }
    }

    /// Generates the next chunk: one batch with `--drip`, else batches
    /// until the chunk is full or the pending cap is reached.
    fn refill(&mut self, now: Instant) {
        let source = &mut self.source;
        source.last_progress = now;
        while let Some(batch) = self
            .generator
            .next_batch(&mut source.out, &mut self.verifiers)
        {
            source.chunk_last = batch.last;
            source.chunk_events += u64::from(batch.events);
            source.chunk_malformed += u64::from(batch.malformed);
            if self.config.drip
                || source.out.len() >= CHUNK_BYTES
                || self.verifiers.pending() > self.config.max_pending
            {
                break;
            }
        }
    }

    /// The chunk is fully written: count it and make room for the next.
    fn complete_chunk(&mut self, now: Instant) {
        let source = &mut self.source;
        source.sent_through = source.chunk_last;
        source.events += std::mem::take(&mut source.chunk_events);
        source.malformed += std::mem::take(&mut source.chunk_malformed);
        source.out.clear();
        source.written = 0;
        if self.config.drip {
            source.drip_resume = now + self.config.drip_pause;
        }
    }

    /// Shuts the source's write side: the server sees the end of the
    /// stream, as it did from the original client.
    fn finish_source(&mut self) {
        let source = &mut self.source;
        if let Err(e) = source.stream.shutdown(Shutdown::Write) {
            self.failures.push(FailureReason::SourceWrite {
                error: format!("closing the event source: {e}"),
            });
        }
        let _ = self.poll.registry().deregister(&mut source.stream);
        source.finished = true;
    }

    /// Reads client `index` until `WouldBlock` and checks every line.
    fn read_client(&mut self, index: ClientIndex, now: Instant) {
        let conn = &mut self.clients[index as usize];
        if !conn.open {
            return;
        }
        loop {
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.open = false;
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                    self.failures.push(self.verifiers.get(index).disconnected());
                    return;
                }
                Ok(n) if self.config.count_only => {
                    conn.last_line = now;
                    // Lines are only counted: a bulk count of line ends
                    // instead of one call per line keeps the reading about
                    // as cheap as the loopback baseline's.
                    let lines = count_line_ends(&self.read_buf[..n]);
                    if let Err(reason) = self.verifiers.on_counted(index, lines, n as u64) {
                        self.failures.push(reason);
                        return;
                    }
                }
                Ok(n) => {
                    conn.last_line = now;
                    let verifiers = &mut self.verifiers;
                    let user = verifiers.get(index).user();
                    let result = split_lines(
                        &mut conn.carry,
                        &self.read_buf[..n],
                        MAX_LINE,
                        |line| verifiers.on_line(index, line),
                        |tail| FailureReason::Garbled {
                            user,
                            client: index,
                            line: show_line(tail),
                        },
                    );
                    if let Err(reason) = result {
                        self.failures.push(reason);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    conn.open = false;
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                    self.failures.push(FailureReason::ClientRead {
                        user: self.verifiers.get(index).user(),
                        client: index,
                        error: e.to_string(),
                    });
                    return;
                }
            }
        }
    }

    /// Fails clients that have waited longer than the timeout for an event
    /// already sent, and the source if the server stopped reading it.
    fn check_timeouts(&mut self, now: Instant) {
        let timeout = self.config.timeout;
        let sent_through = self.source.sent_through;
        for (index, conn) in self.clients.iter_mut().enumerate() {
            let verifier = self.verifiers.get(index as ClientIndex);
            match verifier.front() {
                Some(front) if front <= sent_through => {
                    let since = *conn.owed_since.get_or_insert(now);
                    let waited = now.saturating_duration_since(since.max(conn.last_line));
                    if waited > timeout {
                        self.failures
                            .push(verifier.timed_out(waited.as_millis() as u64));
                    }
                }
                _ => conn.owed_since = None,
            }
        }
        let source = &self.source;
        if self.phase == Phase::Sending && source.written < source.out.len() {
            let waited = now.saturating_duration_since(source.last_progress);
            if waited > timeout {
                self.failures.push(FailureReason::SourceStalled {
                    waited_ms: waited.as_millis() as u64,
                    events_sent: source.events,
                });
            }
        }
    }

    /// Runs `log`, a log line, with the bar (if one is shown) out of its
    /// way.
    fn log(&self, log: impl FnOnce()) {
        match &self.progress.bar {
            Some(bar) => bar.suspend(log),
            None => log(),
        }
    }

    /// Shows progress as the display says: a plain line when one is due,
    /// or the bar's counts; `last` at the end of the run.
    fn log_progress(&mut self, now: Instant, last: bool) {
        match self.progress.display {
            ProgressDisplay::Off => {}
            ProgressDisplay::Lines => self.log_line(now, last),
            ProgressDisplay::Bar => self.update_bar(now, last),
        }
    }

    /// Gives the bar the current counts if its update is due ([`BAR_REFRESH`]
    /// after the last), or clears it for good (`last`) so the summary
    /// prints on a clean line.
    fn update_bar(&mut self, now: Instant, last: bool) {
        let Some(bar) = &self.progress.bar else {
            return;
        };
        if last {
            bar.finish();
            return;
        }
        if now < self.progress.next {
            return;
        }
        bar.update(Counts {
            events: self.source.events,
            verified: self.verifiers.verified(),
            pending: self.verifiers.pending() as u64,
        });
        self.progress.next = now + BAR_REFRESH;
    }

    /// Logs a progress line when one is due, or a final one (`last`) unless
    /// nothing changed since the previous line.
    fn log_line(&mut self, now: Instant, last: bool) {
        let interval = self.config.log_interval;
        if interval.is_zero() || (!last && now < self.progress.next) {
            return;
        }
        let span = now
            .saturating_duration_since(self.progress.at)
            .as_secs_f64();
        let rate = |delta: u64| if span > 0.0 { delta as f64 / span } else { 0.0 };
        let (events, notifications) = (self.source.events, self.verifiers.verified());
        if last && (events, notifications) == (self.progress.events, self.progress.notifications) {
            // The final line would repeat the previous one.
            return;
        }
        info!(
            "sent {events}/{} events ({:.0}/s), verified {notifications} notifications ({:.0}/s), {} pending",
            self.config.total_events,
            rate(events - self.progress.events),
            rate(notifications - self.progress.notifications),
            self.verifiers.pending()
        );
        self.progress.next = now + interval;
        self.progress.at = now;
        self.progress.events = events;
        self.progress.notifications = notifications;
    }

    /// The outcome: the report, or the failures with it.
    fn verdict(self) -> Result<Report, Failure> {
        let end = Instant::now();
        let active = match self.first_write {
            Some(first) => self
                .drained_at
                .unwrap_or(end)
                .saturating_duration_since(first),
            None => Duration::ZERO,
        };
        let report = Report {
            seed: self.config.random_seed,
            events: self.source.events,
            holes: self.generator.holes().len() as u64,
            malformed: self.source.malformed,
            clients: self.clients.len(),
            twin_clients: self.twins,
            silent_clients: self.silent.len(),
            client_ports: self.config.client_port_list().to_vec(),
            notifications: self.verifiers.verified(),
            notification_bytes: self.verifiers.verified_bytes(),
            wall: end.saturating_duration_since(self.started),
            active,
        };
        let mut reasons = self.failures;
        if reasons.is_empty() {
            reasons.extend(self.verifiers.iter().filter_map(|v| v.missing()));
        }
        if reasons.is_empty() {
            Ok(report)
        } else {
            Err(Failure {
                reasons,
                report: Box::new(report),
            })
        }
    }
}

/// The `\n` bytes in `data`. Counted in runs of 255 into a byte-wide
/// accumulator, which the compiler turns into 16 comparisons per
/// instruction; a `usize` count widens every byte to 64 bits first and is
/// several times slower, enough to make a counting simulator the
/// bottleneck of a fan-out run.
fn count_line_ends(data: &[u8]) -> u64 {
    data.chunks(255)
        .map(|run| {
            let ends = run
                .iter()
                .fold(0u8, |ends, &byte| ends + u8::from(byte == b'\n'));
            u64::from(ends)
        })
        .sum()
}

/// Connects the verified clients, each to its port of the plan on `ip`,
/// and registers them for reading.
fn connect_clients(
    config: &SimConfig,
    plan: &Plan,
    ip: IpAddr,
    poll: &Poll,
) -> Result<Vec<ClientConn>, FailureReason> {
    let mut clients = Vec::with_capacity(plan.verified.len());
    let twins_from = plan.verified.len() - plan.twins;
    for (index, (&user, &port)) in plan.verified.iter().zip(&plan.verified_ports).enumerate() {
        let addr = SocketAddr::new(ip, port);
        let what = if index >= twins_from {
            format!(
                "client {index} (user {user}, twin of client {})",
                index - twins_from
            )
        } else {
            format!("client {index} (user {user})")
        };
        let stream = connect::client(addr, config.timeout, user, config.ending(), &what)?;
        let mut stream = connect::into_mio(stream, addr, &what)?;
        poll.registry()
            .register(&mut stream, Token(index), Interest::READABLE)
            .map_err(|e| FailureReason::Poll {
                error: format!("registering {what}: {e}"),
            })?;
        clients.push(ClientConn {
            stream,
            carry: Vec::new(),
            open: true,
            last_line: Instant::now(),
            owed_since: None,
        });
    }
    Ok(clients)
}

/// Connects the silent clients, each to its port of the plan on `ip`: they
/// send an id and are never read.
fn connect_silent(
    config: &SimConfig,
    plan: &Plan,
    ip: IpAddr,
) -> Result<Vec<std::net::TcpStream>, FailureReason> {
    plan.silent
        .iter()
        .zip(&plan.silent_ports)
        .enumerate()
        .map(|(index, (&user, &port))| {
            let what = format!("silent client {index} (user {user})");
            let addr = SocketAddr::new(ip, port);
            connect::client(addr, config.timeout, user, config.ending(), &what)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::count_line_ends;

    #[test]
    fn line_ends_are_counted_exactly_even_when_every_byte_is_one() {
        let naive = |data: &[u8]| data.iter().filter(|&&byte| byte == b'\n').count() as u64;
        let samples: [&[u8]; 4] = [b"", b"1|B\r\n22|B\n333|P|1|2", &[b'\n'; 1000], &[b'x'; 700]];
        for data in samples {
            assert_eq!(count_line_ends(data), naive(data));
        }
        let mixed: Vec<u8> = (0..10_000u32)
            .map(|i| if i % 3 == 0 { b'\n' } else { b'7' })
            .collect();
        assert_eq!(count_line_ends(&mixed), naive(&mixed));
    }
}
