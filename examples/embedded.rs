//! A host program that owns its mio loop and runs the follower-maze server in
//! it, beside a source of its own: a tiny admin port that answers every
//! connection with one line of the server's current stats, then closes.
//!
//! ```sh
//! cargo run --example embedded                     # serve until Ctrl-C... or 10 s
//! cargo run --example embedded -- --seconds 60     # serve for a minute
//! cargo run --example embedded -- --simulate 100000
//! ```
//!
//! With `--simulate N`, a simulator run of N events plays against the
//! embedded server on another thread while a third thread keeps asking the
//! admin port for stats; the example exits 0 only if the run passed *and*
//! the admin port answered while it ran.
//!
//! The admin port stays, although the server has a Prometheus endpoint of
//! its own (`--metrics-addr`, see docs/operations.md): it
//! stands for any source of the host's, and shows how the host tells its
//! readiness events from the server's. For metrics, set `metrics_addr`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use follower_maze::{Config, Server};
use follower_maze_sim::{self as sim, SimConfig};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

/// The host's own admin listener.
const ADMIN: Token = Token(0);
/// Wakes the loop when a helper thread is done.
const WAKE: Token = Token(1);
/// Where the server's token range starts; anything below is the host's.
const SERVER_TOKENS: Token = Token(100);

/// What the host was asked to do.
enum Mode {
    /// Serve for this long.
    Serve(Duration),
    /// Run a simulation of this many events, then stop.
    Simulate(u64),
}

fn parse_args() -> Result<Mode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(Mode::Serve(Duration::from_secs(10))),
        [flag, value] if flag == "--seconds" => value
            .parse()
            .map(|s| Mode::Serve(Duration::from_secs(s)))
            .map_err(|e| format!("--seconds: {e}")),
        [flag, value] if flag == "--simulate" => value
            .parse()
            .map(Mode::Simulate)
            .map_err(|e| format!("--simulate: {e}")),
        _ => Err("usage: embedded [--seconds N | --simulate EVENTS]".to_string()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = parse_args()?;
    let mut poll = Poll::new()?;

    // The server: bound on free loopback ports, registered in our registry
    // under tokens from SERVER_TOKENS on.
    let mut server = Server::bind(Config {
        stats_interval: Duration::ZERO,
        ..Config::ephemeral()
    })?;
    server.register(poll.registry(), SERVER_TOKENS)?;

    // The host's own source: the admin port.
    let mut admin = TcpListener::bind("127.0.0.1:0".parse()?)?;
    poll.registry()
        .register(&mut admin, ADMIN, Interest::READABLE)?;
    let admin_addr = admin.local_addr()?;
    let (events, clients) = listening_ports(&server);
    println!(
        "follower-maze: events on port {events}, clients on port {clients}; admin port on {admin_addr}"
    );

    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let done = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let (deadline, simulation) = match mode {
        Mode::Serve(duration) => (Some(Instant::now() + duration), None),
        Mode::Simulate(events) => {
            let sim = spawn_simulation(&server, events, Arc::clone(&waker), Arc::clone(&done));
            let asking = spawn_admin_asker(admin_addr, Arc::clone(&done), Arc::clone(&answers));
            (None, Some((sim, asking)))
        }
    };

    let mut events = Events::with_capacity(1024);
    let mut admin_answers = 0u64;
    loop {
        let now = Instant::now();
        // Sleep no longer than the server or our own deadline allows.
        let timeout = [
            server.timeout(now),
            deadline.map(|d| d.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min();
        poll.poll(&mut events, timeout)?;
        for event in events.iter() {
            if server.handle_event(event, Instant::now()) {
                continue; // The server's own.
            }
            match event.token() {
                ADMIN => admin_answers += answer_admin(&admin, &server)?,
                WAKE => {}
                _ => {}
            }
        }
        server.tick(Instant::now());
        let finished =
            done.load(Ordering::Acquire) || deadline.is_some_and(|d| Instant::now() >= d);
        if finished {
            break;
        }
    }
    server.shutdown(Instant::now());
    let stats = server.stats();
    println!(
        "host loop done: the server routed {} events as {} notifications; the admin port answered {admin_answers} times",
        stats.events_routed, stats.notifications
    );

    let Some((sim, asking)) = simulation else {
        return Ok(());
    };
    let verdict = sim.join().map_err(|_| "the simulator thread panicked")?;
    asking.join().map_err(|_| "the admin thread panicked")?;
    let answered_during_run = answers.load(Ordering::Acquire);
    match verdict {
        Ok(report) => println!(
            "simulation passed: {} events, {} notifications; admin answered {answered_during_run} times during the run",
            report.events, report.notifications
        ),
        Err(failure) => return Err(format!("simulation failed: {failure}").into()),
    }
    if answered_during_run == 0 {
        return Err("the admin port never answered during the run".into());
    }
    Ok(())
}

/// Accepts every pending admin connection and answers it with one stats
/// line; returns how many were answered.
fn answer_admin(admin: &TcpListener, server: &Server) -> io::Result<u64> {
    let mut answered = 0;
    loop {
        match admin.accept() {
            Ok((mut stream, _)) => {
                let stats = server.stats();
                let line = format!(
                    "events_routed={} notifications={} clients={} window_depth={} queued_bytes={}\n",
                    stats.events_routed,
                    stats.notifications,
                    stats.clients,
                    stats.window_depth,
                    stats.queued_bytes
                );
                // One short line fits any fresh socket buffer; a peer that
                // cannot take it is not worth more.
                let _ = stream.write(line.as_bytes());
                answered += 1;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(answered),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Runs a simulation against `server` on a thread; sets `done` and wakes
/// the loop when it ends.
fn spawn_simulation(
    server: &Server,
    events: u64,
    waker: Arc<Waker>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<sim::Report, sim::Failure>> {
    let config = SimConfig {
        total_events: events,
        ..SimConfig::small(listening_ports(server).0, listening_ports(server).1)
    };
    std::thread::spawn(move || {
        let verdict = sim::run(&config);
        done.store(true, Ordering::Release);
        let _ = waker.wake();
        verdict
    })
}

/// Asks the admin port for stats every 20 ms until `done`, counting answers.
fn spawn_admin_asker(
    admin: SocketAddr,
    done: Arc<AtomicBool>,
    answers: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !done.load(Ordering::Acquire) {
            if let Ok(mut stream) = TcpStream::connect(admin) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut reply = String::new();
                if stream.read_to_string(&mut reply).is_ok() && reply.starts_with("events_routed=")
                {
                    answers.fetch_add(1, Ordering::AcqRel);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// The event and client ports of a standalone server, which has both.
fn listening_ports(server: &Server) -> (u16, u16) {
    let port = |addr: Option<SocketAddr>| addr.map_or(0, |addr| addr.port());
    (port(server.event_addr()), port(server.client_addr()))
}
