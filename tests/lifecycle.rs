//! Connection lifecycles as real peers and the kernel live them: a source
//! that closes and the next one that connects at once (the hand-over relies
//! on the old source's end being readable by the time the newcomer is
//! accepted), a client that half-closes after its id (the shell must not
//! take its end-of-file for a hang-up), a burst of connects the server has
//! not accepted yet (the listen backlog), and clients that closed for good
//! found by keepalive. The rules themselves (hand-over, ids before events,
//! half-close, what a client sends after its id) are the core's, tested in
//! memory in `tests/engine/`.

#[path = "support/common.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use follower_maze::{Config, Server};
use mio::{Events, Poll, Token};
use socket2::{Domain, SockAddr, Socket, Type};

/// How a bounded read ended.
enum ReadEnd {
    /// The bytes read end with the line that was waited for.
    Complete,
    /// The peer closed the connection first.
    Closed,
    /// The time allowed passed first.
    TimedOut,
    /// The read failed.
    Failed(std::io::ErrorKind),
}

impl std::fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadEnd::Complete => write!(f, "at the last line expected"),
            ReadEnd::Closed => write!(f, "with the server closing the connection"),
            ReadEnd::TimedOut => write!(f, "by timing out"),
            ReadEnd::Failed(kind) => write!(f, "with a read error: {kind}"),
        }
    }
}

/// Reads from `stream` until the bytes read end with `last_line`, the peer
/// closes, a read fails or `within` passes; returns what arrived and how
/// the read ended, so a failing test can say exactly what it got.
fn read_within(stream: &mut TcpStream, last_line: &[u8], within: Duration) -> (Vec<u8>, ReadEnd) {
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !received.ends_with(last_line) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (received, ReadEnd::TimedOut);
        }
        stream
            .set_read_timeout(Some(left))
            .expect("a read timeout can be set");
        match stream.read(&mut buf) {
            Ok(0) => return (received, ReadEnd::Closed),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(err) => match err.kind() {
                // The deadline check above decides.
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => {}
                kind => return (received, ReadEnd::Failed(kind)),
            },
        }
    }
    (received, ReadEnd::Complete)
}

/// The seq at the start of each line of `bytes`, for failure messages.
fn seqs_of(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let seq = line.split(|&byte| byte == b'|').next().unwrap_or(line);
            seq.escape_ascii().to_string()
        })
        .collect()
}

/// Reproduces a test suite that opens a fresh event source for every case
/// and closes it as soon as the case's events are written: the next source
/// connects before the server has read the previous one's end.
#[test]
fn a_source_that_closes_and_reconnects_at_once_loses_nothing() {
    const ROUNDS: u64 = 50;
    // The default hole timeout (1 s): a lost seq cannot pass for delivered.
    let server = start(Config::ephemeral());
    let mut clients = connect_clients(&server, &[1]);
    let mut expected = Vec::new();
    for seq in 1..=ROUNDS {
        let mut source = TcpStream::connect(server.event_addr()).expect("a source connects");
        let line = format!("{seq}|B\n");
        // One write per line, as a source that writes whole lines does.
        source
            .write_all(line.as_bytes())
            .expect("the source writes its broadcast");
        expected.extend_from_slice(line.as_bytes());
        drop(source); // closed at once, no pause before the next round
    }
    let last = format!("{ROUNDS}|B\n");
    let (received, end) = read_within(&mut clients[0], last.as_bytes(), PATIENCE);
    assert!(
        received == expected,
        "the client got {} of {ROUNDS} broadcasts (seqs {:?}), then the read ended {end}; \
         server stats: {:?}",
        seqs_of(&received).len(),
        seqs_of(&received),
        server.stats()
    );
    let stats = server.stop().expect("the server stops");
    assert_eq!(stats.sources_refused, 0, "no source was refused: {stats:?}");
}

/// Reproduces `printf '7\n' | nc -N host port` (and ncat): the client ends
/// its sending side once its id is written, and only reads from then on.
#[test]
fn a_client_that_half_closes_after_its_id_keeps_receiving() {
    let server = start(Config::ephemeral());
    let mut source = connect_source(&server);
    let mut client = TcpStream::connect(server.client_addr()).expect("the client connects");
    client.write_all(b"7\n").expect("the client writes its id");
    client
        .shutdown(Shutdown::Write)
        .expect("the client ends its sending side");
    // No waiting for registration: the id was sent before the events.
    source
        .write_all(b"1|P|3|7\n2|B\n")
        .expect("the source writes its events");
    let expected = b"1|P|3|7\n2|B\n";
    let (received, end) = read_within(&mut client, b"2|B\n", PATIENCE);
    assert!(
        received == expected,
        "user 7 ended its sending side after its id and got {:?}, then the read ended {end} \
         (Closed: the server took the half-close for a disconnect); server stats: {:?}",
        received.escape_ascii().to_string(),
        server.stats()
    );
    wait_for(&server, "user 7 to stay registered", |s| s.clients == 1);
}

/// Connections in the burst of [`the_accept_queue_holds_a_burst_of_connects`].
const BURST: usize = 2_000;
/// How long the burst's connects may take to complete with nothing
/// accepting them: far less than the 1 s after which a dropped SYN is sent
/// again, so only connections the accept queue held can complete.
const BURST_WINDOW: Duration = Duration::from_millis(300);

/// The kernel's cap on any listen backlog (`net.core.somaxconn`), if known.
fn kernel_backlog_cap() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts `count` non-blocking connects to `addr` and waits up to `window`
/// for them to complete, without anyone accepting. Returns every socket (in
/// connect order) and whether each completed: writable with no error.
fn connect_burst(addr: SocketAddr, count: usize, window: Duration) -> (Vec<Socket>, Vec<bool>) {
    let addr = SockAddr::from(addr);
    let sockets: Vec<Socket> = (0..count)
        .map(|_| {
            let socket =
                Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket is created");
            socket
                .set_nonblocking(true)
                .expect("the socket is made non-blocking");
            match socket.connect(&addr) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(err) => panic!("a non-blocking connect failed at once: {err}"),
            }
            socket
        })
        .collect();
    let mut completed = vec![false; count];
    let mut settled = vec![false; count];
    let deadline = Instant::now() + window;
    loop {
        let pending: Vec<usize> = (0..count).filter(|&i| !settled[i]).collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if pending.is_empty() || left.is_zero() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .map(|&i| libc::pollfd {
                fd: sockets[i].as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
        let ready = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                left.as_millis().max(1) as libc::c_int,
            )
        };
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "poll: {err}");
            continue;
        }
        for (fd, &i) in fds.iter().zip(&pending) {
            if fd.revents != 0 {
                settled[i] = true;
                completed[i] =
                    fd.revents & libc::POLLOUT != 0 && matches!(sockets[i].take_error(), Ok(None));
            }
        }
    }
    (sockets, completed)
}

/// Reproduces a load test that opens thousands of client connections at
/// once, before the server's loop has accepted any of them: the kernel's
/// accept queue (the listen backlog) must hold them all, or their SYNs are
/// dropped and those clients stall for a second or more.
#[test]
fn the_accept_queue_holds_a_burst_of_connects() {
    // Both ends of every connection live in this process.
    let wanted = 2 * BURST as u64 + 200;
    if rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0) < wanted {
        eprintln!("SKIPPED: cannot raise RLIMIT_NOFILE to {wanted} for {BURST} connections");
        return;
    }
    match kernel_backlog_cap() {
        Some(cap) if cap >= BURST => {}
        cap => {
            eprintln!(
                "SKIPPED: the kernel caps listen backlogs at {cap:?} (net.core.somaxconn), below {BURST}"
            );
            return;
        }
    }

    // A small backlog: most of the burst is dropped while nothing accepts.
    let small = Server::bind(Config {
        listen_backlog: 128,
        ..Config::ephemeral()
    })
    .expect("the small-backlog server binds");
    let (sockets, completed) = connect_burst(small.client_addr().unwrap(), BURST, BURST_WINDOW);
    let held = completed.iter().filter(|&&done| done).count();
    eprintln!("backlog 128: {held} of {BURST} connects completed unaccepted");
    assert!(
        held < BURST / 2,
        "with a backlog of 128, {held} of {BURST} connects completed unaccepted: \
         the test cannot tell a large backlog from a small one"
    );
    drop(sockets);
    drop(small);

    // The default backlog holds the whole burst.
    let mut server = Server::bind(Config::ephemeral()).expect("the server binds");
    let (sockets, completed) = connect_burst(server.client_addr().unwrap(), BURST, BURST_WINDOW);
    let held = completed.iter().filter(|&&done| done).count();
    eprintln!("default backlog: {held} of {BURST} connects completed unaccepted");
    assert_eq!(
        held, BURST,
        "with the default backlog, only {held} of {BURST} connects completed within \
         {BURST_WINDOW:?} while nothing accepted"
    );
    for (id, socket) in sockets.iter().enumerate() {
        let line = format!("{id}\r\n");
        let sent = socket
            .send(line.as_bytes())
            .expect("a client writes its id");
        assert_eq!(sent, line.len(), "a fresh socket takes a whole id line");
    }

    // Now the loop runs, and registers every one of them.
    let mut poll = Poll::new().expect("a poll is created");
    server
        .register(poll.registry(), Token(0))
        .expect("the server registers");
    let mut events = Events::with_capacity(1024);
    let started = Instant::now();
    while server.stats().clients < BURST {
        assert!(
            started.elapsed() < PATIENCE,
            "only {} of {BURST} clients registered: {:?}",
            server.stats().clients,
            server.stats()
        );
        let cap = Duration::from_millis(10);
        let timeout = server
            .timeout(Instant::now())
            .map_or(cap, |timeout| timeout.min(cap));
        poll.poll(&mut events, Some(timeout)).expect("poll works");
        for event in events.iter() {
            assert!(
                server.handle_event(event, Instant::now()),
                "every event is the server's"
            );
        }
        server.tick(Instant::now());
    }
    assert_eq!(server.stats().clients, BURST);
    drop(sockets);
}

/// Reproduces clients that send their id and close for good without ever
/// being sent anything (a probe script, a test case that expects nothing).
/// Their end-of-file could be a half-close, so they stay registered; the
/// keepalive probes that start then find them gone once the closed peer's
/// lingering socket has expired (`net.ipv4.tcp_fin_timeout`, 60 s by
/// default; these set it to 1 s for themselves), while a client that only
/// half-closed answers the probes, stays, and keeps receiving.
#[test]
fn clients_that_closed_for_good_are_found_gone_and_half_closed_ones_stay() {
    let probe = Duration::from_secs(1);
    let linger = Duration::from_secs(1);
    let server = start(Config {
        read_closed_probe: probe,
        ..Config::ephemeral()
    });
    let mut source = connect_source(&server);
    let mut half_closed = TcpStream::connect(server.client_addr()).expect("a client connects");
    half_closed.write_all(b"1\n").expect("the id is sent");
    half_closed
        .shutdown(Shutdown::Write)
        .expect("the client ends its sending side");
    for id in 2..=4 {
        let mut gone = TcpStream::connect(server.client_addr()).expect("a client connects");
        writeln!(gone, "{id}").expect("the id is sent");
        linger_after_close(&gone, linger);
        drop(gone);
    }
    wait_for(&server, "all four registered", |s| s.clients == 4);
    let patience = linger + 4 * probe + PATIENCE;
    let started = Instant::now();
    while server.stats().clients > 1 {
        assert!(
            started.elapsed() < patience,
            "the closed clients were not found gone in {patience:?}: {:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("closed clients found gone after {:?}", started.elapsed());
    source.write_all(b"1|P|2|1\n").expect("the source writes");
    assert_receives(&mut half_closed, b"1|P|2|1\n");
}

/// Makes the kernel forget `stream`'s socket `linger` after it is closed,
/// where it would otherwise linger for `net.ipv4.tcp_fin_timeout` (60 s by
/// default), answering keepalive probes as if its peer were still there:
/// `TCP_LINGER2` overrides that setting for one socket.
fn linger_after_close(stream: &TcpStream, linger: Duration) {
    use std::os::fd::AsRawFd;
    let seconds = libc::c_int::try_from(linger.as_secs()).expect("a few seconds");
    let size = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap();
    // SAFETY: setsockopt(2) reads `size` bytes from a live `c_int` of ours,
    // on a descriptor `stream` owns.
    let set = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_LINGER2,
            std::ptr::from_ref(&seconds).cast(),
            size,
        )
    };
    assert_eq!(set, 0, "TCP_LINGER2: {}", std::io::Error::last_os_error());
}
