//! The verifier can fail: small fixture servers, each correct but for one
//! deliberate fault, must make the simulator fail with the right reason;
//! the same fixture without a fault must pass, which proves the fixture
//! itself is a correct server.
//!
//! The fixtures are deliberately simple (std threads, blocking sockets, a
//! `BTreeMap` for reordering) and share no code with the real server; they
//! read events with the simulator's [`read_event`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use follower_maze_sim::line::{EventLine, read_event};
use follower_maze_sim::{self as sim, Failure, FailureReason, Kind, SimConfig, UserId};

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
}

/// Which single-recipient delivery (Follow or Private to a connected user)
/// the fault strikes: far enough in that the user has more to come.
const TRIGGER: u32 = 30;

/// A running fixture server.
struct Fixture {
    /// Where the event source connects.
    event_addr: SocketAddr,
    /// Where clients connect.
    client_addr: SocketAddr,
    /// Tells the client acceptor to stop.
    stop: Arc<AtomicBool>,
    /// The acceptor and the source thread.
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

/// Client connections by the id they sent.
type Registry = Arc<Mutex<BTreeMap<UserId, Vec<TcpStream>>>>;

impl Fixture {
    fn start(fault: Fault) -> Fixture {
        let events = TcpListener::bind("127.0.0.1:0").expect("bind the event port");
        let clients = TcpListener::bind("127.0.0.1:0").expect("bind the client port");
        let stop = Arc::new(AtomicBool::new(false));
        let registry: Registry = Arc::default();
        let fixture_addrs = (
            events.local_addr().expect("event addr"),
            clients.local_addr().expect("client addr"),
        );
        let accept = {
            let (stop, registry) = (Arc::clone(&stop), Arc::clone(&registry));
            thread::spawn(move || accept_clients(&clients, &stop, &registry))
        };
        let source = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || serve_source(&events, &stop, &registry, fault))
        };
        Fixture {
            event_addr: fixture_addrs.0,
            client_addr: fixture_addrs.1,
            stop,
            threads: vec![accept, source],
        }
    }
}

/// Accepts clients and registers each under the id it sends.
fn accept_clients(listener: &TcpListener, stop: &AtomicBool, registry: &Registry) {
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
                    registry.entry(id).or_default().push(stream);
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
                            let _ = conn.shutdown(std::net::Shutdown::Both);
                        }
                    }
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
        let mut registry = self.registry.lock().expect("registry lock");
        for conn in registry.get_mut(&user).into_iter().flatten() {
            let _ = conn.write_all(frame);
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
    let config = SimConfig {
        host: fixture.event_addr.ip().to_string(),
        number_of_users: Some(20),
        timeout: Duration::from_millis(1500),
        ..SimConfig::small(fixture.event_addr.port(), fixture.client_addr.port())
    };
    sim::run(&config)
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
