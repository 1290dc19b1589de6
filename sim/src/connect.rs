//! Opening the simulator's connections: the event source and the clients.
//!
//! Connects are blocking and one at a time, with the run's timeout. That is
//! simple and kind to the server: 10,000 clients never flood its accept
//! backlog (a dropped SYN costs a second's retransmit), and on loopback one
//! connect takes tens of microseconds. Each socket turns non-blocking only
//! once its id line is written.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::failure::FailureReason;
use super::line::{LineEnding, push_u64};
use super::model::User;

/// Raises the soft limit on open files as far as the hard limit allows, so
/// a run with thousands of clients needs no `ulimit -n` first; returns the
/// soft limit in force afterwards, or 0 when it cannot be read (say why in
/// the log).
///
/// The `rlimit` crate makes the system calls, so the simulator needs no
/// unsafe code of its own for it.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            log::warn!("cannot raise the open-file limit: {err}");
            0
        }
    }
}

/// The first address `host:port` resolves to.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, FailureReason> {
    let failed = |error: String| FailureReason::Connect {
        what: "(resolving the host)".into(),
        addr: format!("{host}:{port}"),
        error,
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| failed(e.to_string()))?
        .next()
        .ok_or_else(|| failed("no address".into()))
}

/// Connects to `addr` as `what`, within `timeout`.
fn open(addr: SocketAddr, timeout: Duration, what: &str) -> Result<TcpStream, FailureReason> {
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| connect_error(what, addr, &e))
}

/// A [`FailureReason::Connect`] for `what` at `addr`.
fn connect_error(what: &str, addr: SocketAddr, error: &std::io::Error) -> FailureReason {
    let mut error = error.to_string();
    if error.contains("Too many open files") || error.contains("os error 24") {
        error.push_str(" (raise the open-file limit: ulimit -n)");
    }
    FailureReason::Connect {
        what: what.into(),
        addr: addr.to_string(),
        error,
    }
}

/// Connects the event source: non-blocking, and with `nodelay` each write
/// leaves at once (for `--drip`).
pub fn source(
    addr: SocketAddr,
    timeout: Duration,
    nodelay: bool,
) -> Result<mio::net::TcpStream, FailureReason> {
    let what = "the event source";
    let stream = open(addr, timeout, what)?;
    let setup = stream
        .set_nodelay(nodelay)
        .and_then(|()| stream.set_nonblocking(true));
    setup.map_err(|e| connect_error(what, addr, &e))?;
    Ok(mio::net::TcpStream::from_std(stream))
}

/// Connects a client, sends `user`'s id line and returns the still-blocking
/// socket (silent clients keep it so; verified ones go non-blocking).
pub fn client(
    addr: SocketAddr,
    timeout: Duration,
    user: User,
    ending: LineEnding,
    what: &str,
) -> Result<TcpStream, FailureReason> {
    let mut stream = open(addr, timeout, what)?;
    let mut id_line = Vec::with_capacity(16);
    push_u64(&mut id_line, u64::from(user));
    id_line.extend_from_slice(ending.bytes());
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.write_all(&id_line))
        .map_err(|e| connect_error(what, addr, &e))?;
    Ok(stream)
}

/// Makes a connected client socket non-blocking for the poll loop.
pub fn into_mio(
    stream: TcpStream,
    addr: SocketAddr,
    what: &str,
) -> Result<mio::net::TcpStream, FailureReason> {
    stream
        .set_nonblocking(true)
        .map_err(|e| connect_error(what, addr, &e))?;
    Ok(mio::net::TcpStream::from_std(stream))
}
