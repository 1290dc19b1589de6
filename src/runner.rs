//! Loops that own a `Poll` and drive a [`Server`]: the binary's (stopped by
//! SIGINT, SIGTERM or SIGHUP) and a background thread's (stopped by a handle), both
//! with the same graceful shutdown and periodic stats line.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use log::{info, warn};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::Config;
use crate::io_errors::interrupted;
use crate::server::Server;
use crate::stats::{Stats, StatsLog};

/// The token for the loop's own control source (signals or a waker).
const CONTROL_TOKEN: Token = Token(0);
/// The token of a [`Companion`]'s waker: a cluster's bridge thread wakes
/// the loop with it when it has news.
pub(crate) const COMPANION_TOKEN: Token = Token(1);
/// The first token of the server's range inside [`drive`]'s `Poll`.
const SERVER_TOKEN_BASE: Token = Token(2);

/// What a cluster mode adds to the loop: a bridge to the shared log, which
/// wakes the loop through a waker on [`COMPANION_TOKEN`].
pub(crate) trait Companion {
    /// Moves records between the bridge and `server`; called before and
    /// after every turn's [`Server::tick`]. An error is fatal (the log
    /// refused us, say): the loop stops and returns it.
    fn exchange(&mut self, server: &mut Server, now: Instant) -> io::Result<()>;
}

/// The standalone server has no companion.
impl Companion for () {
    fn exchange(&mut self, _: &mut Server, _: Instant) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `server` on a `Poll` of its own until SIGINT, SIGTERM or SIGHUP, then shuts
/// down gracefully; returns the final stats. The process's open-file limit
/// is raised to its hard limit first: this loop owns the process.
pub fn run_until_signalled(server: Server) -> io::Result<Stats> {
    run_with_companion(server, Poll::new()?, ())
}

/// True when the process was started with `signal` ignored (as `nohup`
/// starts it with SIGHUP ignored). Read from `/proc/self/status`'s
/// `SigIgn` mask rather than `sigaction(2)`, which would be the crate's
/// only `unsafe`; without `/proc`, it is taken as not ignored.
fn inherited_as_ignored(signal: i32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    ignored_in_status(&status, signal)
}

/// True when the `SigIgn` line of a `/proc/PID/status` text (a hex mask,
/// bit `signal - 1` per signal) has `signal` set.
fn ignored_in_status(status: &str, signal: i32) -> bool {
    let Some(bit) = u32::try_from(signal).ok().and_then(|s| s.checked_sub(1)) else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| bit < 64 && mask & (1 << bit) != 0)
}

/// [`run_until_signalled`] on `poll` with `companion` exchanging records
/// with the server every turn (its waker must be registered on `poll` with
/// [`COMPANION_TOKEN`]).
pub(crate) fn run_with_companion(
    server: Server,
    poll: Poll,
    mut companion: impl Companion,
) -> io::Result<Stats> {
    crate::limits::raise_fd_limit();
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook_mio::v1_0::Signals;

    // SIGHUP's default would kill the process without flushing: a closed
    // terminal or a supervisor's hang-up stops it as SIGTERM does. Unless
    // it was started with SIGHUP ignored (`nohup`): then it stays ignored.
    let mut signals = if inherited_as_ignored(SIGHUP) {
        Signals::new([SIGINT, SIGTERM])?
    } else {
        Signals::new([SIGINT, SIGTERM, SIGHUP])?
    };
    poll.registry()
        .register(&mut signals, CONTROL_TOKEN, Interest::READABLE)?;
    let on_control = move || {
        let mut stop = false;
        for signal in signals.pending() {
            match signal {
                SIGTERM => info!("received SIGTERM"),
                SIGINT => info!("received SIGINT"),
                SIGHUP => info!("received SIGHUP"),
                other => info!("received signal {other}"),
            }
            stop = true;
        }
        stop
    };
    drive(server, poll, on_control, &mut companion, |_| {})
}

/// Runs `server` on `poll` until `on_control` (called for each readiness
/// event on [`CONTROL_TOKEN`]) says stop, then shuts down gracefully.
/// `after_turn` sees the server after every loop turn.
fn drive(
    mut server: Server,
    mut poll: Poll,
    mut on_control: impl FnMut() -> bool,
    companion: &mut impl Companion,
    mut after_turn: impl FnMut(&Server),
) -> io::Result<Stats> {
    server.register(poll.registry(), SERVER_TOKEN_BASE)?;
    if let Some(addr) = server.event_addr() {
        info!("listening for the event source on {addr}");
    }
    if let Some(addr) = server.client_addr() {
        info!("listening for clients on {addr}");
    }
    let mut events = Events::with_capacity(1024);
    let mut stats_log = StatsLog::new(server.config().stats_interval, Instant::now());
    loop {
        let now = Instant::now();
        let timeout = [
            server.timeout(now),
            stats_log
                .deadline()
                .map(|d| d.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Err(err) = poll.poll(&mut events, timeout) {
            if interrupted(&err) {
                continue;
            }
            return Err(err);
        }
        let mut stop = false;
        let now = Instant::now();
        for event in events.iter() {
            if !server.handle_event(event, now) && event.token() == CONTROL_TOKEN {
                stop |= on_control();
            }
        }
        if stop {
            server.shutdown(now);
        }
        companion.exchange(&mut server, now)?;
        server.tick(now);
        companion.exchange(&mut server, now)?;
        stats_log.tick(now, server.stats());
        after_turn(&server);
        if server.is_done(now) {
            let stats = server.stats();
            if stats.queued_bytes > 0 {
                warn!(
                    "grace period over: {} queued bytes not delivered",
                    stats.queued_bytes
                );
            }
            info!("stopped");
            return Ok(stats);
        }
    }
}

/// A server running on a thread of its own, for tests, benches and the
/// simulator's demo mode. Dropping it stops the server.
#[derive(Debug)]
pub struct BackgroundServer {
    /// Where the event source connects.
    event_addr: SocketAddr,
    /// Where clients connect.
    client_addr: SocketAddr,
    /// Where the metrics endpoint listens, if it is on.
    metrics_addr: Option<SocketAddr>,
    /// Set to ask the loop to stop.
    stop: Arc<AtomicBool>,
    /// Wakes the loop so it sees `stop`.
    waker: Arc<Waker>,
    /// The stats as of the end of the loop's latest turn.
    stats: Arc<Mutex<Stats>>,
    /// The loop's thread, until joined.
    thread: Option<JoinHandle<io::Result<Stats>>>,
}

impl BackgroundServer {
    /// Binds a server with `config` and runs it on a new thread.
    pub fn start(config: Config) -> io::Result<BackgroundServer> {
        let server = Server::bind(config)?;
        let (Some(event_addr), Some(client_addr)) = (server.event_addr(), server.client_addr())
        else {
            return Err(io::Error::other(
                "a standalone server listens on both ports",
            ));
        };
        let metrics_addr = server.metrics_addr();
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), CONTROL_TOKEN)?);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(server.stats()));
        let (stop_seen, stats_out) = (Arc::clone(&stop), Arc::clone(&stats));
        let thread = std::thread::Builder::new()
            .name("follower-maze".into())
            .spawn(move || {
                let on_control = move || stop_seen.load(Ordering::Acquire);
                let publish = move |server: &Server| {
                    let stats = server.stats();
                    if let Ok(mut shared) = stats_out.lock() {
                        *shared = stats;
                    }
                };
                drive(server, poll, on_control, &mut (), publish)
            })?;
        Ok(BackgroundServer {
            event_addr,
            client_addr,
            metrics_addr,
            stop,
            waker,
            stats,
            thread: Some(thread),
        })
    }

    /// Where the event source connects.
    pub fn event_addr(&self) -> SocketAddr {
        self.event_addr
    }

    /// Where clients connect.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Where the metrics endpoint listens, if `--metrics-addr` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The server's stats as of the end of its latest loop turn.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Shuts the server down gracefully and returns its final stats.
    pub fn stop(mut self) -> io::Result<Stats> {
        self.stop_and_join()
    }

    /// Asks the loop to stop, waits for it, returns what it returned.
    fn stop_and_join(&mut self) -> io::Result<Stats> {
        let Some(thread) = self.thread.take() else {
            return Err(io::Error::other("already stopped"));
        };
        self.stop.store(true, Ordering::Release);
        self.waker.wake()?;
        thread
            .join()
            .map_err(|_| io::Error::other("the server thread panicked"))?
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop_and_join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ignored_in_status;

    #[test]
    fn the_ignored_mask_is_read_bit_by_signal() {
        // SIGHUP (1) and SIGPIPE (13) ignored, as under `nohup`.
        let status = "Name:\tfollower-maze\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\n";
        assert!(ignored_in_status(status, libc::SIGHUP));
        assert!(ignored_in_status(status, libc::SIGPIPE));
        assert!(!ignored_in_status(status, libc::SIGTERM));
        assert!(!ignored_in_status("SigIgn:\tnot hex\n", libc::SIGHUP));
        assert!(!ignored_in_status("", libc::SIGHUP));
        assert!(!ignored_in_status(status, 0));
    }
}
