//! The loopback baseline: how many bytes per second this machine's loopback
//! carries to the run's client connections when the sender does nothing but
//! send, read exactly the way the simulator reads the server.
//!
//! A trivial writer accepts as many connections as the run verifies, waits
//! until all are connected, then writes pre-made notification lines to each
//! as fast as the sockets take them, up to a fixed number of bytes per
//! connection. The simulator's side connects its clients as a run does
//! (each sends its id line), and reads them in one mio loop with the run's
//! read size and event capacity, counting bytes. It does not split or check
//! lines: the baseline is the transport's limit, so the ratio
//! `delivered notification bytes/s ÷ baseline bytes/s` charges the server
//! *and* the simulator's verification for the gap.
//!
//! The writer runs where the server under test runs: the binary's is a
//! child process, as the server is (`--demo` starts the server as one too);
//! a host that runs a server in its own process can use a thread. A child
//! also keeps the writer's descriptors out of the simulator's open-file
//! limit: 10,000 clients need 10,000 on each side.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{fmt, thread};

use log::{debug, info};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::config::SimConfig;
use super::connect;
use super::plan::Plan;
use super::run::{EVENTS_CAPACITY, READ_BYTES};

/// The hidden flag that makes `follower-maze-sim` the baseline's writer.
pub const WRITER_FLAG: &str = "--baseline-writer";

/// Bytes of pre-made lines the writer sends from; one write takes at most
/// this many.
const WRITE_CHUNK: usize = 256 * 1024;

/// The fewest bytes each connection receives, so a small run still gets a
/// baseline long enough to time.
pub const MIN_BYTES_PER_CONNECTION: u64 = 64 * 1024;

/// The listener's token in the writer's poll; connections use their index.
const LISTENER: Token = Token(usize::MAX);

/// Where the baseline's writer runs.
#[derive(Debug, Clone)]
pub enum Writer {
    /// On a thread of this process (the server under test is in-process).
    Thread,
    /// As this executable with [`WRITER_FLAG`], in a child process (the
    /// server under test is another process).
    Process(PathBuf),
}

/// What the baseline measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BaselineReport {
    /// Client connections written to at once.
    pub connections: usize,
    /// Bytes received over all of them.
    pub bytes: u64,
    /// From the last connection made to the last byte received.
    pub elapsed: Duration,
}

impl BaselineReport {
    /// Bytes received per second.
    pub fn bytes_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.bytes as f64 / seconds
        } else {
            0.0
        }
    }

    /// `delivered` bytes per second as a fraction of this baseline.
    pub fn ratio(&self, delivered_bytes_per_second: f64) -> f64 {
        let baseline = self.bytes_per_second();
        if baseline > 0.0 {
            delivered_bytes_per_second / baseline
        } else {
            0.0
        }
    }
}

impl fmt::Display for BaselineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loopback baseline: {:.1} MB to {} connections in {:.3} s: {:.2} MB/s",
            self.bytes as f64 / 1e6,
            self.connections,
            self.elapsed.as_secs_f64(),
            self.bytes_per_second() / 1e6,
        )
    }
}

/// Measures the baseline for `config`'s verified connections with about
/// `total_bytes` in all (at least [`MIN_BYTES_PER_CONNECTION`] each).
pub fn measure(config: &SimConfig, total_bytes: u64, writer: Writer) -> io::Result<BaselineReport> {
    config.validate().map_err(io::Error::other)?;
    let plan = Plan::new(config);
    let connections = plan.verified.len();
    if connections == 0 {
        return Err(io::Error::other("the baseline needs at least one client"));
    }
    let per_connection = total_bytes
        .div_ceil(connections as u64)
        .max(MIN_BYTES_PER_CONNECTION);
    connect::raise_open_file_limit();
    let timeout = config.timeout;
    let (addr, running) = match writer {
        Writer::Thread => {
            let listener = TcpListener::bind((config.host.as_str(), 0))?;
            let addr = listener.local_addr()?;
            let handle = thread::Builder::new()
                .name("baseline-writer".into())
                .spawn(move || serve(listener, connections, per_connection, timeout))?;
            (addr, Running::Thread(handle))
        }
        Writer::Process(exe) => spawn_writer(&exe, config, connections, per_connection)?,
    };
    info!(
        "loopback baseline: {connections} connections, {per_connection} bytes each, writer at {addr}"
    );
    let received = read_all(config, &plan, addr, per_connection);
    let finished = running.finish(timeout);
    let report = received?;
    finished?;
    Ok(report)
}

/// The writer, while the readers read.
enum Running {
    /// A thread of this process.
    Thread(thread::JoinHandle<io::Result<()>>),
    /// A child process.
    Process(Child),
}

impl Running {
    /// Waits for the writer to end (the readers have closed by now), at
    /// most `timeout` for a child; a child still running then is killed.
    fn finish(self, timeout: Duration) -> io::Result<()> {
        match self {
            Running::Thread(handle) => handle
                .join()
                .map_err(|_| io::Error::other("the baseline writer thread panicked"))?,
            Running::Process(mut child) => {
                let deadline = Instant::now() + timeout;
                loop {
                    if let Some(status) = child.try_wait()? {
                        return if status.success() {
                            Ok(())
                        } else {
                            Err(io::Error::other(format!(
                                "the baseline writer exited with {status}"
                            )))
                        };
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(io::Error::other("the baseline writer did not exit"));
                    }
                    thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// Starts `exe` as the writer and reads the address it listens on from its
/// first line of output.
fn spawn_writer(
    exe: &PathBuf,
    config: &SimConfig,
    connections: usize,
    per_connection: u64,
) -> io::Result<(SocketAddr, Running)> {
    let mut child = Command::new(exe)
        .args([
            WRITER_FLAG,
            "--host",
            &config.host,
            "--timeout",
            &config.timeout.as_millis().to_string(),
            "--baseline-connections",
            &connections.to_string(),
            "--baseline-bytes-per-connection",
            &per_connection.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let addr = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no pipe from the baseline writer"))
        .and_then(|out| {
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line)?;
            line.trim()
                .parse::<SocketAddr>()
                .map_err(|e| io::Error::other(format!("baseline writer said {line:?}: {e}")))
        });
    match addr {
        Ok(addr) => Ok((addr, Running::Process(child))),
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(err)
        }
    }
}

/// The writer's side of a child process: binds `host`, prints the address
/// on stdout, then [`serve`]s.
pub fn writer_main(
    host: &str,
    connections: usize,
    per_connection: u64,
    timeout: Duration,
) -> io::Result<()> {
    connect::raise_open_file_limit();
    let listener = TcpListener::bind((host, 0))?;
    let mut out = io::stdout().lock();
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);
    serve(listener, connections, per_connection, timeout)
}

/// One connection of the writer.
struct Outgoing {
    /// The socket, registered for reading and writing.
    stream: TcpStream,
    /// Bytes still to write.
    remaining: u64,
    /// Whether the socket may take more (edge-triggered: only `WouldBlock`
    /// clears it, only an event sets it).
    writable: bool,
    /// False once the reader closed its side.
    open: bool,
}

/// The trivial writer: accepts `connections` connections on `listener`, then
/// writes `per_connection` bytes of pre-made lines to each as fast as the
/// sockets take them, and returns once every reader has closed. Fails if
/// nothing happens for `timeout`.
pub fn serve(
    listener: TcpListener,
    connections: usize,
    per_connection: u64,
    timeout: Duration,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = mio::net::TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let chunk = premade_lines();
    let mut out: Vec<Outgoing> = Vec::with_capacity(connections);
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut discard = vec![0u8; 4096];
    let mut last_progress = Instant::now();
    loop {
        let all_connected = out.len() == connections;
        let busy = all_connected && out.iter().any(|c| c.writable && c.remaining > 0);
        let wait = if busy {
            Duration::ZERO
        } else {
            timeout.saturating_sub(last_progress.elapsed())
        };
        if let Err(err) = poll.poll(&mut events, Some(wait)) {
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_all(&mut listener, &poll, &mut out, per_connection)?,
                Token(index) => {
                    let Some(conn) = out.get_mut(index) else {
                        continue;
                    };
                    if event.is_writable() {
                        conn.writable = true;
                    }
                    if event.is_readable() || event.is_read_closed() {
                        drain_reads(conn, &mut discard);
                    }
                    last_progress = Instant::now();
                }
            }
        }
        if out.len() == connections {
            for conn in out.iter_mut() {
                if write_some(conn, &chunk)? {
                    last_progress = Instant::now();
                }
            }
            if out.iter().all(|c| !c.open) {
                debug!("baseline writer: every reader has closed");
                return Ok(());
            }
        }
        if last_progress.elapsed() >= timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "baseline writer: nothing happened for {timeout:?} ({} of {connections} connected)",
                    out.len()
                ),
            ));
        }
    }
}

/// Accepts every pending connection.
fn accept_all(
    listener: &mut mio::net::TcpListener,
    poll: &Poll,
    out: &mut Vec<Outgoing>,
    per_connection: u64,
) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let token = Token(out.len());
                poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                out.push(Outgoing {
                    stream,
                    remaining: per_connection,
                    writable: true,
                    open: true,
                });
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// Reads and drops what the reader sent (its id line), noting when it
/// closes: unread input would make our close a reset.
fn drain_reads(conn: &mut Outgoing, discard: &mut [u8]) {
    loop {
        match conn.stream.read(discard) {
            Ok(0) => {
                conn.open = false;
                return;
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                conn.open = false;
                return;
            }
        }
    }
}

/// Writes to `conn` until its bytes are all sent or it would block; returns
/// whether anything was written.
fn write_some(conn: &mut Outgoing, chunk: &[u8]) -> io::Result<bool> {
    let mut wrote = false;
    while conn.open && conn.writable && conn.remaining > 0 {
        let len = chunk.len().min(conn.remaining as usize);
        match conn.stream.write(&chunk[..len]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.remaining -= n as u64;
                wrote = true;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(wrote)
}

/// [`WRITE_CHUNK`] bytes of broadcast-like lines, as the fan-out sends.
fn premade_lines() -> Vec<u8> {
    let mut chunk = Vec::with_capacity(WRITE_CHUNK + 32);
    let mut seq = 1_000_000u64;
    while chunk.len() < WRITE_CHUNK {
        chunk.extend_from_slice(seq.to_string().as_bytes());
        chunk.extend_from_slice(b"|B\r\n");
        seq += 1;
    }
    chunk.truncate(WRITE_CHUNK);
    chunk
}

/// One client connection of the reading side.
struct Incoming {
    /// The socket, non-blocking, registered for reading.
    stream: TcpStream,
    /// Bytes received so far.
    received: u64,
}

/// Connects one client per verified connection of `plan` to `addr`, as a
/// run does, and reads until each has `per_connection` bytes.
fn read_all(
    config: &SimConfig,
    plan: &Plan,
    addr: SocketAddr,
    per_connection: u64,
) -> io::Result<BaselineReport> {
    let mut poll = Poll::new()?;
    let mut clients = Vec::with_capacity(plan.verified.len());
    for (index, &user) in plan.verified.iter().enumerate() {
        let what = format!("baseline client {index}");
        let stream = connect::client(addr, config.timeout, user, config.ending(), &what)
            .and_then(|stream| connect::into_mio(stream, addr, &what))
            .map_err(|reason| io::Error::other(reason.to_string()))?;
        let mut client = Incoming {
            stream,
            received: 0,
        };
        poll.registry()
            .register(&mut client.stream, Token(index), Interest::READABLE)?;
        clients.push(client);
    }
    let started = Instant::now();
    let total = per_connection * clients.len() as u64;
    let mut received = 0u64;
    let mut read_buf = vec![0u8; READ_BYTES];
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut last_progress = started;
    while received < total {
        let wait = config.timeout.saturating_sub(last_progress.elapsed());
        if let Err(err) = poll.poll(&mut events, Some(wait)) {
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        for event in events.iter() {
            let Some(client) = clients.get_mut(event.token().0) else {
                continue;
            };
            let got = read_until_blocked(client, &mut read_buf, per_connection)?;
            if got > 0 {
                received += got;
                last_progress = Instant::now();
            }
        }
        if last_progress.elapsed() >= config.timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("baseline: {received} of {total} bytes arrived, then nothing"),
            ));
        }
    }
    let elapsed = started.elapsed();
    Ok(BaselineReport {
        connections: clients.len(),
        bytes: received,
        elapsed,
    })
}

/// Reads `client` until `WouldBlock`, as the run reads a client; returns
/// the bytes read.
fn read_until_blocked(
    client: &mut Incoming,
    read_buf: &mut [u8],
    per_connection: u64,
) -> io::Result<u64> {
    let mut got = 0;
    loop {
        match client.stream.read(read_buf) {
            Ok(0) if client.received < per_connection => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the baseline writer closed a connection after {} of {per_connection} bytes",
                        client.received
                    ),
                ));
            }
            Ok(0) => return Ok(got),
            Ok(n) => {
                client.received += n as u64;
                got += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(got),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_premade_lines_are_notifications() {
        let chunk = premade_lines();
        assert_eq!(chunk.len(), WRITE_CHUNK);
        let first = chunk.split(|&b| b == b'\n').next().expect("a line");
        assert_eq!(first, b"1000000|B\r");
    }

    #[test]
    fn a_thread_writer_baseline_counts_every_byte() {
        let config = SimConfig {
            concurrency_level: 3,
            timeout: Duration::from_secs(10),
            ..SimConfig::default()
        };
        let report = measure(&config, 1_000_000, Writer::Thread).expect("the baseline runs");
        assert_eq!(report.connections, 3);
        assert_eq!(report.bytes, 3 * 333_334);
        assert!(report.bytes_per_second() > 0.0);
        assert!((report.ratio(report.bytes_per_second()) - 1.0).abs() < 1e-9);
    }
}
