//! Helpers for black-box tests: a real server on loopback, raw sockets.
#![allow(dead_code)] // Each test file uses its own subset.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use follower_maze::{BackgroundServer, Config, Stats};

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// [`Config::ephemeral`], but a missing seq is given up on after 50 ms, so
/// tests with holes need not wait long.
pub fn short_hole_timeout() -> Config {
    Config {
        hole_timeout: Duration::from_millis(50),
        ..Config::ephemeral()
    }
}

/// A server on free loopback ports with `config` (ports forced to 0).
pub fn start(config: Config) -> BackgroundServer {
    let config = Config {
        event_port: 0,
        client_port: 0,
        ..config
    };
    BackgroundServer::start(config).expect("the server starts")
}

/// Waits until `check` holds for the server's stats; panics after
/// [`PATIENCE`] with the last stats seen.
pub fn wait_for(server: &BackgroundServer, what: &str, check: impl Fn(&Stats) -> bool) -> Stats {
    let start = Instant::now();
    loop {
        let stats = server.stats();
        if check(&stats) {
            return stats;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Connects the event source.
pub fn connect_source(server: &BackgroundServer) -> TcpStream {
    let stream = TcpStream::connect(server.event_addr()).expect("source connects");
    stream.set_nodelay(true).unwrap();
    stream
}

/// Connects one client per id (in order), sends each id line with CRLF, and
/// waits until the server has registered them all.
pub fn connect_clients(server: &BackgroundServer, ids: &[u64]) -> Vec<TcpStream> {
    let before = server.stats().clients;
    let clients: Vec<TcpStream> = ids
        .iter()
        .map(|id| {
            let mut stream = TcpStream::connect(server.client_addr()).expect("client connects");
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            write!(stream, "{id}\r\n").unwrap();
            stream
        })
        .collect();
    wait_for(server, "clients to register", |s| {
        s.clients == before + ids.len()
    });
    clients
}

/// A server on free loopback ports with `config`, its event source connected
/// and then one registered client per id in `ids` (see [`connect_clients`]).
pub fn start_with_clients(
    config: Config,
    ids: &[u64],
) -> (BackgroundServer, TcpStream, Vec<TcpStream>) {
    let server = start(config);
    let source = connect_source(&server);
    let clients = connect_clients(&server, ids);
    (server, source, clients)
}

/// Reads from `stream` until the bytes read end with `last_line`; returns
/// everything read. Panics on timeout or close.
pub fn read_through(stream: &mut TcpStream, last_line: &[u8]) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !received.ends_with(last_line) {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read failed after {}: {e}", tail(&received)));
        assert!(n > 0, "closed after {}", tail(&received));
        received.extend_from_slice(&buf[..n]);
    }
    received
}

/// Reads from `stream` through the last line of `expected` and asserts that
/// exactly `expected` arrived by then: nothing missing, extra, reordered or
/// altered. Panics on timeout or close, like [`read_through`].
#[track_caller]
pub fn assert_receives(stream: &mut TcpStream, expected: &[u8]) {
    let received = read_through(stream, last_line(expected));
    assert_eq!(
        received.escape_ascii().to_string(),
        expected.escape_ascii().to_string()
    );
}

/// The last line of `text`, terminator included; `text` must end with `\n`.
fn last_line(text: &[u8]) -> &[u8] {
    let before_end = text.strip_suffix(b"\n").expect("ends with a whole line");
    let start = before_end
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    &text[start..]
}

/// The length of `bytes` and its last 80 bytes, for failure messages.
fn tail(bytes: &[u8]) -> String {
    let from = bytes.len().saturating_sub(80);
    format!(
        "{} bytes ending {:?}",
        bytes.len(),
        bytes[from..].escape_ascii().to_string()
    )
}

/// Asserts that nothing arrives on `stream` within `wait`.
pub fn assert_silent(stream: &mut TcpStream, wait: Duration) {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => panic!("the connection was closed"),
        Ok(n) => panic!(
            "unexpected bytes: {:?}",
            buf[..n].escape_ascii().to_string()
        ),
        Err(err) => assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err}"
        ),
    }
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
}

/// Asserts the peer closed `stream` (EOF or reset) within [`PATIENCE`];
/// whatever it sent before is read and dropped. Sets that read timeout.
pub fn assert_closed(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(err) => panic!("expected the server to close the connection: {err}"),
        }
    }
}

/// A connection to `addr` whose receive buffer is `size` bytes (as the
/// kernel rounds it): what its owner does not read soon backs up into the
/// server.
pub fn connect_with_recv_buffer(addr: SocketAddr, size: usize) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(size).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// A client whose receive buffer is tiny and that never reads: the server's
/// outbox for it fills quickly. Waits until it is registered.
pub fn never_reading_client(server: &BackgroundServer, id: u64) -> TcpStream {
    let before = server.stats().clients;
    let mut stream = connect_with_recv_buffer(server.client_addr(), 1024);
    write!(stream, "{id}\r\n").unwrap();
    wait_for(server, "the silent client to register", |s| {
        s.clients == before + 1
    });
    stream
}

/// `count` event lines `first..first+count` of the form `{seq}|B\r\n`, each
/// padded with leading zeros to `width` bytes of seq, so a few events make
/// many bytes.
pub fn padded_broadcasts(first: u64, count: u64, width: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in first..first + count {
        write!(out, "{seq:0width$}|B\r\n").unwrap();
    }
    out
}

/// Serialises the tests that push megabytes through reader threads: run side
/// by side on a small machine, their debug-build readers fall behind and get
/// cut as slow consumers, which is the server being right, not the test.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
