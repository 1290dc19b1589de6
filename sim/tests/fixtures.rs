//! The verifier can fail: small fixture servers, each correct but for one
//! deliberate fault, must make the simulator fail with the right reason;
//! the same fixture without a fault must pass, which proves the fixture
//! itself is a correct server.
//!
//! A fixture can also be a cluster: several client ports ("edges") that
//! share one event source and one registry, so each sends a client exactly
//! what a standalone server would; that is what `--client-ports` and
//! `--twin-ids` are tested against.
//!
//! The fixtures are deliberately simple (std threads, blocking sockets, a
//! `BTreeMap` for reordering) and share no code with the real server; they
//! read events with the simulator's [`read_event`].
//!
//! The simulator's binary runs against a correct fixture too, to check what
//! it shows while it runs: the original client's plain progress lines when
//! stderr is not a terminal, a live bar, cleared at the end, when it is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use follower_maze_sim::line::{EventLine, read_event};
use follower_maze_sim::{self as sim, Failure, FailureReason, Kind, SimConfig, UserId};
use indicatif::HumanCount;

/// The one thing a fixture does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing: a correct server.
    None,
    /// Swaps one notification with the next one to the same user.
    Reorder,
    /// Never sends one notification.
    Drop,
    /// Sends one notification twice in a row.
    Duplicate,
    /// Changes one byte of one notification (not its seq).
    Alter,
    /// Sends one notification to a different user instead.
    Misroute,
    /// Stops sending anything to one user.
    Stall,
    /// Closes one user's connection.
    Hangup,
    /// Does not send one notification to the user's connections on this
    /// edge; its connections on other edges get it.
    EdgeDrop(usize),
}

/// Which single-recipient delivery (Follow or Private to a connected user)
/// the fault strikes: far enough in that the user has more to come.
const TRIGGER: u32 = 30;

/// A running fixture server.
struct Fixture {
    /// Where the event source connects.
    event_addr: SocketAddr,
    /// Where clients connect: one port per edge.
    client_addrs: Vec<SocketAddr>,
    /// Connections each edge has registered.
    accepted: Vec<Arc<AtomicUsize>>,
    /// Every registered connection, shared by the edges.
    registry: Registry,
    /// Tells the client acceptors to stop.
    stop: Arc<AtomicBool>,
    /// The acceptors and the source thread.
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One registered client connection.
struct Conn {
    /// The edge (index of the client port) that accepted it.
    edge: usize,
    /// The socket, blocking.
    stream: TcpStream,
}

/// Client connections by the id they sent.
type Registry = Arc<Mutex<BTreeMap<UserId, Vec<Conn>>>>;

impl Fixture {
    /// A standalone fixture server: one client port.
    fn start(fault: Fault) -> Fixture {
        Fixture::with_edges(fault, 1)
    }

    /// A fixture cluster: `edges` client ports over one event source.
    fn with_edges(fault: Fault, edges: usize) -> Fixture {
        let events = TcpListener::bind("127.0.0.1:0").expect("bind the event port");
        let event_addr = events.local_addr().expect("event addr");
        let stop = Arc::new(AtomicBool::new(false));
        let registry: Registry = Arc::default();
        let mut threads = Vec::new();
        let mut client_addrs = Vec::new();
        let mut accepted = Vec::new();
        for edge in 0..edges {
            let clients = TcpListener::bind("127.0.0.1:0").expect("bind a client port");
            client_addrs.push(clients.local_addr().expect("client addr"));
            let count = Arc::new(AtomicUsize::new(0));
            accepted.push(Arc::clone(&count));
            let (stop, registry) = (Arc::clone(&stop), Arc::clone(&registry));
            threads.push(thread::spawn(move || {
                accept_clients(&clients, edge, &count, &stop, &registry)
            }));
        }
        let source = {
            let (stop, registry) = (Arc::clone(&stop), Arc::clone(&registry));
            thread::spawn(move || serve_source(&events, &stop, &registry, fault))
        };
        threads.push(source);
        Fixture {
            event_addr,
            client_addrs,
            accepted,
            registry,
            stop,
            threads,
        }
    }

    /// The client ports, one per edge.
    fn client_ports(&self) -> Vec<u16> {
        self.client_addrs.iter().map(SocketAddr::port).collect()
    }

    /// Connections each edge has registered, once `total` have been over
    /// all edges (or after five seconds: the caller's check then fails).
    /// Silent clients may still be registering when a short run ends.
    fn accepted(&self, total: usize) -> Vec<usize> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let counts: Vec<usize> = self
                .accepted
                .iter()
                .map(|count| count.load(Ordering::Acquire))
                .collect();
            if counts.iter().sum::<usize>() >= total || std::time::Instant::now() >= deadline {
                return counts;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// For each registered id, the edges its connections came through.
    fn edges_by_user(&self) -> BTreeMap<UserId, Vec<usize>> {
        let registry = self.registry.lock().expect("registry lock");
        registry
            .iter()
            .map(|(&user, conns)| (user, conns.iter().map(|conn| conn.edge).collect()))
            .collect()
    }
}

/// Accepts clients on `edge` and registers each under the id it sends,
/// counting them in `accepted`.
fn accept_clients(
    listener: &TcpListener,
    edge: usize,
    accepted: &AtomicUsize,
    stop: &AtomicBool,
    registry: &Registry,
) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).expect("blocking client");
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("read timeout");
                let mut id = Vec::new();
                let mut byte = [0u8; 1];
                while !id.ends_with(b"\n") && stream.read_exact(&mut byte).is_ok() {
                    id.push(byte[0]);
                }
                let id = String::from_utf8_lossy(&id).trim_end().parse::<UserId>();
                if let Ok(id) = id {
                    let mut registry = registry.lock().expect("registry lock");
                    registry.entry(id).or_default().push(Conn { edge, stream });
                    accepted.fetch_add(1, Ordering::AcqRel);
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Accepts one event source, reorders its events, routes them, and applies
/// `fault` once.
fn serve_source(listener: &TcpListener, stop: &AtomicBool, registry: &Registry, fault: Fault) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(_) if stop.load(Ordering::Acquire) => return,
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    };
    stream.set_nonblocking(false).expect("blocking source");
    let mut reader = BufReader::new(stream);
    let mut router = FixtureRouter {
        registry: Arc::clone(registry),
        followers: HashMap::new(),
        fault,
        single_deliveries: 0,
        held: None,
        stalled: None,
    };
    let mut waiting: BTreeMap<u64, (EventLine, Vec<u8>)> = BTreeMap::new();
    let mut next = 1;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Some(event) = read_event(&line) else {
            continue;
        };
        waiting.insert(event.seq, (event, line.clone()));
        while let Some((event, frame)) = waiting.remove(&next) {
            router.route(event, &frame);
            next += 1;
        }
    }
    router.flush_held();
}

/// The fixture's routing: a plain follower graph and the fault.
struct FixtureRouter {
    /// Connected clients.
    registry: Registry,
    /// `followers[to]`: who follows `to`.
    followers: HashMap<UserId, HashSet<UserId>>,
    /// What to get wrong.
    fault: Fault,
    /// Follow and Private deliveries to connected users so far.
    single_deliveries: u32,
    /// A reordered notification waiting for the next one to its user.
    held: Option<(UserId, Vec<u8>)>,
    /// The user nothing is sent to any more (`Fault::Stall`).
    stalled: Option<UserId>,
}

impl FixtureRouter {
    fn route(&mut self, event: EventLine, frame: &[u8]) {
        let EventLine { kind, from, to, .. } = event;
        let recipients: Vec<UserId> = match kind {
            Kind::Follow => {
                self.followers.entry(to).or_default().insert(from);
                vec![to]
            }
            Kind::Unfollow => {
                if let Some(set) = self.followers.get_mut(&to) {
                    set.remove(&from);
                }
                vec![]
            }
            Kind::Private => vec![to],
            Kind::Broadcast => {
                let registry = self.registry.lock().expect("registry lock");
                registry.keys().copied().collect()
            }
            Kind::Status => self
                .followers
                .get(&from)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default(),
        };
        let single = matches!(kind, Kind::Follow | Kind::Private);
        for user in recipients {
            self.deliver(user, frame, single);
        }
    }

    /// Sends `frame` to every connection of `user`, unless this is the
    /// delivery the fault strikes.
    fn deliver(&mut self, user: UserId, frame: &[u8], single: bool) {
        let connected = self
            .registry
            .lock()
            .expect("registry lock")
            .contains_key(&user);
        if !connected || self.stalled == Some(user) {
            return;
        }
        let strike = if single {
            self.single_deliveries += 1;
            self.single_deliveries == TRIGGER
        } else {
            false
        };
        if strike {
            match self.fault {
                Fault::None => {}
                Fault::Reorder => {
                    self.held = Some((user, frame.to_vec()));
                    return;
                }
                Fault::Drop => return,
                Fault::Duplicate => self.write(user, frame),
                Fault::Alter => {
                    // The last byte before the terminator is the last digit
                    // of `to`; the seq stays intact.
                    let mut altered = frame.to_vec();
                    let at = frame.trim_ascii_end().len() - 1;
                    altered[at] = b'x';
                    self.write(user, &altered);
                    return;
                }
                Fault::Misroute => {
                    let other = {
                        let registry = self.registry.lock().expect("registry lock");
                        *registry.keys().find(|&&u| u != user).expect("two users")
                    };
                    self.write(other, frame);
                    return;
                }
                Fault::Stall => {
                    self.stalled = Some(user);
                    return;
                }
                Fault::Hangup => {
                    let mut registry = self.registry.lock().expect("registry lock");
                    if let Some(conns) = registry.remove(&user) {
                        for conn in conns {
                            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
                        }
                    }
                    return;
                }
                Fault::EdgeDrop(edge) => {
                    self.write_except(user, frame, Some(edge));
                    return;
                }
            }
        }
        self.write(user, frame);
        if let Some((held_user, held)) = self.held.take() {
            if held_user == user {
                self.write(user, &held);
            } else {
                self.held = Some((held_user, held));
            }
        }
    }

    /// Writes `frame` to every connection of `user`.
    fn write(&self, user: UserId, frame: &[u8]) {
        self.write_except(user, frame, None);
    }

    /// Writes `frame` to every connection of `user` but those on `skip`.
    fn write_except(&self, user: UserId, frame: &[u8], skip: Option<usize>) {
        let mut registry = self.registry.lock().expect("registry lock");
        for conn in registry.get_mut(&user).into_iter().flatten() {
            if Some(conn.edge) != skip {
                let _ = conn.stream.write_all(frame);
            }
        }
    }

    /// Sends a held notification that never found a successor.
    fn flush_held(&mut self) {
        if let Some((user, held)) = self.held.take() {
            self.write(user, &held);
        }
    }
}

/// A small run against `fixture`: 2,000 events, 10 clients among 20 users,
/// so every client is owed plenty.
fn run_against(fixture: &Fixture) -> Result<sim::Report, Failure> {
    run_changed(fixture, |config| config)
}

/// [`run_against`] with the configuration changed by `change`.
fn run_changed(
    fixture: &Fixture,
    change: impl FnOnce(SimConfig) -> SimConfig,
) -> Result<sim::Report, Failure> {
    let config = SimConfig {
        host: fixture.event_addr.ip().to_string(),
        number_of_users: Some(20),
        timeout: Duration::from_millis(1500),
        ..SimConfig::small(fixture.event_addr.port(), fixture.client_addrs[0].port())
    };
    sim::run(&change(config))
}

/// A run spread over every edge of `fixture` (`--client-ports`), with
/// `--twin-ids` if `twins`.
fn run_on_edges(fixture: &Fixture, twins: bool) -> Result<sim::Report, Failure> {
    run_changed(fixture, |config| SimConfig {
        client_ports: Some(fixture.client_ports()),
        twin_ids: twins,
        ..config
    })
}

/// Runs against a fixture with `fault` and returns the first reason.
fn first_reason(fault: Fault) -> FailureReason {
    let fixture = Fixture::start(fault);
    let failure = run_against(&fixture).expect_err("a faulty server must fail the run");
    failure.first().clone()
}

/// Asserts that a fixture with `$fault` fails the run, and that the first
/// reason matches `$reason` (a pattern, with an optional `if` guard).
macro_rules! assert_caught_as {
    ($fault:expr, $($reason:tt)+) => {{
        let reason = first_reason($fault);
        assert!(matches!(reason, $($reason)+), "{reason}");
    }};
}

#[test]
fn a_correct_fixture_passes() {
    let fixture = Fixture::start(Fault::None);
    let report = run_against(&fixture).expect("the fixture is a correct server");
    assert_eq!(report.events, 2000);
    assert!(report.notifications > 200, "{report}");
}

#[test]
fn a_reorder_is_caught() {
    assert_caught_as!(
        Fault::Reorder,
        FailureReason::Reordered { seq, after, .. } if seq < after
    );
}

#[test]
fn a_drop_is_caught() {
    assert_caught_as!(
        Fault::Drop,
        FailureReason::Missing { seq, received_instead, expected, received, .. }
            if seq < received_instead && received == expected - 1
    );
}

#[test]
fn a_duplicate_is_caught() {
    assert_caught_as!(Fault::Duplicate, FailureReason::Duplicate { .. });
}

#[test]
fn an_altered_byte_is_caught() {
    assert_caught_as!(Fault::Alter, FailureReason::Altered { .. });
}

#[test]
fn a_misroute_is_caught() {
    assert_caught_as!(Fault::Misroute, FailureReason::Unexpected { .. });
}

#[test]
fn a_stalled_client_times_out() {
    assert_caught_as!(Fault::Stall, FailureReason::Timeout { .. });
}

#[test]
fn a_closed_client_is_caught() {
    assert_caught_as!(Fault::Hangup, FailureReason::Disconnected { .. });
}

#[test]
fn no_server_is_a_connect_failure() {
    // Bind and drop to find a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let failure = sim::run(&SimConfig::small(port, port)).expect_err("nobody listens");
    assert!(
        matches!(failure.first(), FailureReason::Connect { .. }),
        "{}",
        failure
    );
}

#[test]
fn clients_spread_round_robin_over_two_edges() {
    let fixture = Fixture::with_edges(Fault::None, 2);
    let report = run_changed(&fixture, |config| SimConfig {
        client_ports: Some(fixture.client_ports()),
        silent_clients: 3,
        ..config
    })
    .expect("a correct cluster passes");
    assert_eq!(report.clients, 10);
    assert_eq!(report.client_ports, fixture.client_ports());
    // Ten verified clients alternate 5 and 5, three silent ones 2 and 1.
    assert_eq!(fixture.accepted(13), [7, 6]);
}

#[test]
fn twins_put_every_id_on_both_edges() {
    let fixture = Fixture::with_edges(Fault::None, 2);
    let report = run_on_edges(&fixture, true).expect("a correct cluster passes twins");
    assert_eq!((report.clients, report.twin_clients), (20, 10));
    assert_eq!(fixture.accepted(20), [10, 10]);
    let edges = fixture.edges_by_user();
    assert_eq!(edges.len(), 10, "ten distinct ids");
    for (user, mut on) in edges {
        on.sort_unstable();
        assert_eq!(on, [0, 1], "user {user}: one connection per edge");
    }
}

#[test]
fn with_twins_a_drop_on_either_edge_is_caught() {
    // Whichever edge drops the notification, the struck user has a
    // connection there: without twins, one of the two would pass.
    for edge in [0, 1] {
        let fixture = Fixture::with_edges(Fault::EdgeDrop(edge), 2);
        let failure = run_on_edges(&fixture, true).expect_err("an edge dropped a notification");
        assert!(
            matches!(failure.first(), FailureReason::Missing { .. }),
            "edge {edge}: {failure}"
        );
    }
}

/// The simulator's binary.
const SIM: &str = env!("CARGO_BIN_EXE_follower-maze-sim");

/// What the simulator prints when every notification arrived.
const BANNER: &str = r"\o/ ALL NOTIFICATIONS RECEIVED \o/";

/// The simulator's binary set up for a run of `events` events against
/// `fixture`, shaped as [`run_against`]'s, with progress every second
/// (`--log-interval 1000`, the default, given explicitly) and `extra` flags.
fn sim_command(fixture: &Fixture, events: u64, extra: &[&str]) -> Command {
    let mut command = Command::new(SIM);
    command
        .args(["--host", &fixture.event_addr.ip().to_string()])
        .args(["--event-port", &fixture.event_addr.port().to_string()])
        .args(["--client-port", &fixture.client_addrs[0].port().to_string()])
        .args(["--total-events", &events.to_string()])
        .args(["--concurrency-level", "10", "--number-of-users", "20"])
        .args([
            "--timeout",
            "5000",
            "--settle-ms",
            "50",
            "--grace-ms",
            "100",
        ])
        .args(["--log-interval", "1000", "--log-level", "info"])
        .args(extra)
        .env_remove("clientListenerPorts")
        .stdin(Stdio::null());
    command
}

/// The notifications the summary line of a successful run of `events`
/// events reports: `E events, N notifications (...`.
fn summary_notifications(text: &str, events: u64) -> u64 {
    let prefix = format!("{events} events, ");
    let line = text
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no summary line for {events} events in:\n{text}"));
    let (count, _) = line[prefix.len()..]
        .split_once(" notifications (")
        .unwrap_or_else(|| panic!("a summary line without notifications: {line}"));
    count.parse().expect("a count of notifications")
}

/// The notifications verified, from the original client's plain progress
/// line of a finished run of `events` events, if `line` is one:
/// `... sent E/E events (R/s), verified N notifications (R/s), 0 pending`.
fn final_progress_line(line: &str, events: u64) -> Option<u64> {
    let start = format!("sent {events}/{events} events (");
    let rest = &line[line.find(&start)? + start.len()..];
    let (rate, rest) = rest.split_once("/s), verified ")?;
    rate.parse::<u64>().ok()?;
    let (verified, rest) = rest.split_once(" notifications (")?;
    let (rate, rest) = rest.split_once("/s), ")?;
    rate.parse::<u64>().ok()?;
    (rest == "0 pending").then_some(())?;
    verified.parse().ok()
}

#[test]
fn the_plain_progress_line_format_is_recognised() {
    let line = "2026-11-30T11:18:30.344Z INFO  [follower_maze_sim::run] sent 2000/2000 events (29997/s), verified 3924 notifications (1085/s), 0 pending";
    assert_eq!(final_progress_line(line, 2000), Some(3924));
    assert_eq!(final_progress_line(line, 3000), None);
    let pending = line.replace("0 pending", "2 pending");
    assert_eq!(final_progress_line(&pending, 2000), None);
    let bar = "[00:00:01] ===> 2,000/2,000 events sent";
    assert_eq!(final_progress_line(bar, 2000), None);
}

#[test]
fn without_a_terminal_the_binary_logs_the_plain_progress_lines() {
    let fixture = Fixture::start(Fault::None);
    // Both streams are pipes here: no terminal, as in a script or CI.
    let output = sim_command(&fixture, 2000, &[])
        .output()
        .expect("the simulator runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains(BANNER), "{text}");
    // A run shorter than the interval logs one line, the final one, with
    // the summary's count.
    let lines: Vec<u64> = text
        .lines()
        .filter_map(|line| final_progress_line(line, 2000))
        .collect();
    assert_eq!(lines, [summary_notifications(&text, 2000)], "{text}");
    // Nothing of the bar: neither its text nor terminal control codes.
    assert!(!text.contains("notifications verified"), "{text}");
    assert!(!text.contains("events/s, ETA"), "{text}");
    assert!(!text.contains(['\x1b', '\r']), "{text:?}");
}

/// A pseudo-terminal of 100 columns: its controlling side, to read what is
/// drawn on it, and the terminal side, for a child's stream.
fn pseudo_terminal() -> (File, OwnedFd) {
    let (mut controller, mut terminal) = (-1, -1);
    let size = libc::winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into the two integers and
    // reads the size; no name buffer or termios is passed.
    let done = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(done, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe {
        (
            File::from_raw_fd(controller),
            OwnedFd::from_raw_fd(terminal),
        )
    }
}

#[test]
fn on_a_terminal_the_binary_draws_a_bar_and_clears_it_at_the_end() {
    let fixture = Fixture::start(Fault::None);
    let (mut controller, terminal) = pseudo_terminal();
    // Dripped, so the run lasts long enough for several of the bar's
    // updates (every 100 ms).
    let events = 20_000;
    let child = sim_command(&fixture, events, &["--drip", "--drip-pause-ms", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(terminal))
        .spawn()
        .expect("the simulator starts");
    // Read the terminal while the simulator writes to it; the read fails
    // (EIO) once the simulator has exited and closed its side.
    let drawn = thread::spawn(move || {
        let mut drawn = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = controller.read(&mut buf) {
            drawn.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&drawn).into_owned()
    });
    let output = child.wait_with_output().expect("the simulator runs");
    let drawn = drawn.join().expect("the terminal reader");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = format!("{stdout}\n--- the terminal:\n{drawn:?}");
    assert!(output.status.success(), "{text}");
    assert!(stdout.contains(BANNER), "{text}");
    let notifications = summary_notifications(&stdout, events);
    // The bar was drawn on the terminal, and last (an update comes at
    // most 100 ms apart, the grace period after the last notification
    // lasts 100 ms) with the final counts...
    let last = drawn.rfind("notifications verified").expect(&text);
    let sent = format!("{}/{} events sent", HumanCount(events), HumanCount(events));
    let verified = format!(
        "{}/{} notifications verified, 0 pending",
        HumanCount(notifications),
        HumanCount(notifications)
    );
    assert!(drawn.contains(&sent), "{sent}: {text}");
    assert!(drawn.contains(&verified), "{verified}: {text}");
    assert!(drawn.contains(" events/s, ETA "), "{text}");
    // ...and erased after its last drawing, leaving a clean line.
    assert!(drawn[last..].contains("\x1b[2K"), "{text}");
    // No plain progress line anywhere.
    let lines = stdout
        .lines()
        .chain(drawn.lines())
        .filter(|line| final_progress_line(line, events).is_some())
        .count();
    assert_eq!(lines, 0, "{text}");
}
