//! What the core needs from the network, and what it is told about it.
//!
//! The [`Engine`](super::Engine) owns its connections as plain
//! `Read + Write` streams and never creates, registers or closes a socket:
//! a [`Transport`] does. The mio shell ([`crate::Server`]) implements it
//! over real sockets; the core's tests implement it over in-memory pipes.

use std::fmt;
use std::io::{Read, Write};

/// Which listener a connection arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The event source's port.
    Events,
    /// The user clients' port.
    Clients,
}

/// A connection the engine has opened, as the transport names it for
/// readiness: the shell maps these to and from its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnId {
    /// The event source being read (sources waiting their turn are not
    /// opened, so never ready).
    Source,
    /// A user client that has sent its id, by its key; keys are reused
    /// once a client is closed.
    Client(usize),
    /// A user client still awaiting its id line, by its key. Its readiness
    /// is asked for, not pushed: [`Transport::ready_awaiting`] names the
    /// ones that became readable. Opening it again as
    /// [`ConnId::Client`] once its id arrives moves it to ordinary
    /// readiness.
    AwaitingId(usize),
}

/// Readiness of one client connection, as the shell saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Bytes (or end-of-file) may be waiting to be read.
    pub readable: bool,
    /// Room may have opened up to write.
    pub writable: bool,
    /// The connection was reset or hung up: nothing can be written to it
    /// any more.
    pub gone: bool,
}

/// What [`Transport::accept`] found on a listener.
#[derive(Debug)]
pub enum Accepted<S, P> {
    /// A new connection, and who is at the other end.
    Connection(S, P),
    /// None waiting now.
    Nothing,
    /// The process is out of descriptors or memory (`EMFILE`, `ENFILE`,
    /// `ENOBUFS`, `ENOMEM`): the connection stays queued, so trying again
    /// at once would spin; the engine pauses accepting.
    OutOfResources(std::io::Error),
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An orderly close: bytes already handed to the kernel still go out.
    Close,
    /// An abort: what the kernel still holds for the peer is dropped (a
    /// client cut for not keeping up would otherwise be fed it for minutes).
    Reset,
}

/// The network as the core sees it: where connections come from and go.
/// Every method is called from the core's calls only, never on the hot path
/// of an event (accepts and closes are per connection, not per event).
pub trait Transport {
    /// A connection: bytes are read from it and written to it, nothing more.
    type Stream: Read + Write + fmt::Debug;
    /// Who is at the other end, for log lines.
    type Peer: fmt::Display + fmt::Debug + Copy;

    /// Takes the next connection waiting on `port`, if any. Errors that
    /// concern one connection only (the peer gave up before it was
    /// accepted) are the transport's to skip.
    fn accept(&mut self, port: Port) -> Accepted<Self::Stream, Self::Peer>;

    /// Starts reporting readiness for `stream` as `id`, or moves a stream
    /// opened as [`ConnId::AwaitingId`] to [`ConnId::Client`]. On an error
    /// the engine drops the connection.
    fn open(&mut self, stream: &mut Self::Stream, id: ConnId) -> std::io::Result<()>;

    /// Appends to `ready` the keys of connections opened as
    /// [`ConnId::AwaitingId`] that may have become readable since the last
    /// call (spurious and stale keys are allowed; the engine checks). The
    /// engine asks after every read of the source, so that an id sent
    /// before an event is read before it, and the cost must be O(ready),
    /// not O(waiting): thousands of connections that never send an id
    /// must not make each source read cost thousands of reads.
    fn ready_awaiting(&mut self, ready: &mut Vec<usize>);

    /// Stops reporting readiness for `stream` (if it was opened) and ends it.
    fn close(&mut self, stream: Self::Stream, ending: Ending);

    /// The client's sending side has ended: it half-closed, or went away,
    /// which only a write tells apart. The transport may probe the peer so a
    /// client that is gone for good is reported `gone` even if nothing is
    /// ever written to it.
    fn read_closed(&mut self, stream: &Self::Stream);
}
