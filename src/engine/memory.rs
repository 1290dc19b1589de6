//! An in-memory [`Transport`]: connections are pipes a test (or the fuzzer)
//! holds the other end of, so the core's rules can be driven with no
//! sockets, no sleeps and a clock that moves only when told.
//!
//! [`MemoryNet`] reports readiness as a level, every turn, which an
//! edge-triggered engine must tolerate anyway (spurious readiness is
//! allowed): a stream with bytes or end-of-file to read is readable, one
//! with room to write is writable, a reset one is gone.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Engine;
use super::transport::{Accepted, ConnId, Ending, Port, Readiness, Transport};
use crate::config::Config;

/// One direction of bytes each way, and what became of the connection.
#[derive(Debug, Default)]
struct Pipe {
    /// Bytes the peer sent that the engine has not read.
    input: VecDeque<u8>,
    /// The peer ended its sending side: reads return end-of-file once
    /// `input` is drained.
    input_closed: bool,
    /// The peer reset the connection: reads and writes fail.
    reset: bool,
    /// Bytes the engine wrote, not yet taken by the peer.
    output: Vec<u8>,
    /// Bytes the engine may still write before a write would block;
    /// `None` for no limit.
    room: Option<usize>,
    /// How the engine ended the connection, once it did.
    ended: Option<Ending>,
    /// True once the engine was told the peer's sending side ended.
    read_closed_seen: bool,
    /// A byte the peer sends once `input` is drained, and how many more
    /// times: a flood that does not run dry within any test's turns.
    flood: Option<(u8, u64)>,
    /// Bytes the engine has read from the peer.
    taken: u64,
    /// Calls the engine made to read from the peer, whatever they returned.
    reads: u64,
}

/// The engine's end of an in-memory connection.
#[derive(Debug, Clone)]
pub struct MemoryStream(Rc<RefCell<Pipe>>);

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        pipe.reads += 1;
        if pipe.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if pipe.input.is_empty() {
            if let Some((byte, left)) = pipe.flood.as_mut().filter(|(_, left)| *left > 0) {
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                buf[..n].fill(*byte);
                *left -= n as u64;
                pipe.taken += n as u64;
                return Ok(n);
            }
            return match pipe.input_closed {
                true => Ok(0),
                false => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        let n = pipe.input.read(buf)?;
        pipe.taken += n as u64;
        Ok(n)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        if pipe.reset {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(pipe.room.unwrap_or(usize::MAX));
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        pipe.output.extend_from_slice(&buf[..n]);
        if let Some(room) = pipe.room.as_mut() {
            *room -= n;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The peer's end of an in-memory connection: what a test holds.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The shared pipe.
    pipe: Rc<RefCell<Pipe>>,
    /// Its number, in connection order.
    pub number: u32,
}

impl Peer {
    /// Sends bytes to the engine.
    pub fn send(&self, bytes: &[u8]) {
        self.pipe.borrow_mut().input.extend(bytes);
    }

    /// Once what was sent is read, sends `count` bytes `byte` (held as a
    /// count, not in memory): every read fills the engine's buffer, and
    /// none would block until they are all read. A count far above what a
    /// test's turns may read is a flood that never runs dry, yet a loop
    /// that reads until `WouldBlock` ends (and fails the test) instead of
    /// hanging it.
    pub fn flood(&self, byte: u8, count: u64) {
        self.pipe.borrow_mut().flood = Some((byte, count));
    }

    /// Bytes the engine has read from this peer so far.
    pub fn taken(&self) -> u64 {
        self.pipe.borrow().taken
    }

    /// Calls the engine made to read from this peer so far (a real socket's
    /// read syscalls), including those that would have blocked.
    pub fn reads(&self) -> u64 {
        self.pipe.borrow().reads
    }

    /// Ends the peer's sending side (a half-close: it may still read).
    pub fn close_sending(&self) {
        self.pipe.borrow_mut().input_closed = true;
    }

    /// Resets the connection: the peer is gone.
    pub fn reset(&self) {
        self.pipe.borrow_mut().reset = true;
    }

    /// Takes every byte the engine wrote so far.
    pub fn take_received(&self) -> Vec<u8> {
        std::mem::take(&mut self.pipe.borrow_mut().output)
    }

    /// Lets the engine write `room` more bytes before it would block
    /// (`None`: no limit), as a reader that takes that much would.
    pub fn set_room(&self, room: Option<usize>) {
        self.pipe.borrow_mut().room = room;
    }

    /// How the engine ended the connection, if it did.
    pub fn ended(&self) -> Option<Ending> {
        self.pipe.borrow().ended
    }

    /// True once the engine told the transport the peer stopped sending.
    pub fn read_closed_seen(&self) -> bool {
        self.pipe.borrow().read_closed_seen
    }

    /// The readiness the engine should see for this connection now.
    fn readiness(&self) -> Readiness {
        let pipe = self.pipe.borrow();
        Readiness {
            readable: !pipe.input.is_empty()
                || pipe.input_closed
                || pipe.flood.is_some_and(|(_, left)| left > 0),
            writable: pipe.room != Some(0),
            gone: pipe.reset,
        }
    }

    /// True when this is the peer of `stream`.
    fn is(&self, stream: &MemoryStream) -> bool {
        Rc::ptr_eq(&self.pipe, &stream.0)
    }
}

/// A peer's number, as the engine sees it in log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerNumber(pub u32);

impl fmt::Display for PeerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer #{}", self.0)
    }
}

/// Connections waiting to be accepted, and the ones the engine opened.
#[derive(Debug, Default)]
pub struct MemoryNet {
    /// Waiting on the event port.
    pending_sources: VecDeque<Peer>,
    /// Waiting on the client port.
    pending_clients: VecDeque<Peer>,
    /// Opened connections, with the ids readiness is reported under.
    opened: Vec<(ConnId, Peer)>,
    /// Every peer that ever connected, to find one from its stream.
    peers: Vec<Peer>,
    /// The next this many accepts fail as if out of descriptors.
    accept_failures: u32,
    /// Accepts the engine has tried, whatever they found.
    accept_calls: u64,
}

impl MemoryNet {
    /// A new connection waiting on `port`; returns the peer's end.
    pub fn connect(&mut self, port: Port) -> Peer {
        let peer = Peer {
            pipe: Rc::default(),
            number: self.peers.len() as u32,
        };
        self.peers.push(peer.clone());
        match port {
            Port::Events => self.pending_sources.push_back(peer.clone()),
            Port::Clients => self.pending_clients.push_back(peer.clone()),
        }
        peer
    }

    /// Makes the next `count` accepts fail as if the process were out of
    /// file descriptors (`EMFILE`), with connections left queued.
    pub fn fail_accepts(&mut self, count: u32) {
        self.accept_failures = count;
    }

    /// Accepts the engine has tried so far, on either port.
    pub fn accept_calls(&self) -> u64 {
        self.accept_calls
    }

    /// The peer whose engine end is `stream`.
    fn peer_of(&self, stream: &MemoryStream) -> Option<&Peer> {
        self.peers.iter().find(|peer| peer.is(stream))
    }
}

impl Transport for MemoryNet {
    type Stream = MemoryStream;
    type Peer = PeerNumber;

    fn accept(&mut self, port: Port) -> Accepted<MemoryStream, PeerNumber> {
        self.accept_calls += 1;
        if self.accept_failures > 0 {
            self.accept_failures -= 1;
            return Accepted::OutOfResources(io::Error::from_raw_os_error(libc::EMFILE));
        }
        let queue = match port {
            Port::Events => &mut self.pending_sources,
            Port::Clients => &mut self.pending_clients,
        };
        match queue.pop_front() {
            Some(peer) => {
                let stream = MemoryStream(Rc::clone(&peer.pipe));
                Accepted::Connection(stream, PeerNumber(peer.number))
            }
            None => Accepted::Nothing,
        }
    }

    fn open(&mut self, stream: &mut MemoryStream, id: ConnId) -> io::Result<()> {
        let peer = self.peer_of(stream).cloned().expect("accepted here");
        // Opening again (a client whose id arrived) moves the stream.
        self.opened
            .retain(|(opened, known)| *opened != id && !known.is(stream));
        self.opened.push((id, peer));
        Ok(())
    }

    fn close(&mut self, stream: MemoryStream, ending: Ending) {
        self.opened.retain(|(_, peer)| !peer.is(&stream));
        stream.0.borrow_mut().ended = Some(ending);
    }

    fn read_closed(&mut self, stream: &MemoryStream) {
        stream.0.borrow_mut().read_closed_seen = true;
    }

    fn ready_awaiting(&mut self, ready: &mut Vec<usize>) {
        for (id, peer) in &self.opened {
            if let ConnId::AwaitingId(key) = *id
                && peer.readiness().readable
            {
                ready.push(key);
            }
        }
    }
}

/// An engine on a [`MemoryNet`] with a clock of its own: what the core's
/// tests and the fuzzer drive.
#[derive(Debug)]
pub struct Harness {
    /// The engine under test.
    pub engine: Engine<MemoryNet>,
    /// Its network.
    pub net: MemoryNet,
    /// The time the next turn runs at.
    pub now: Instant,
}

impl Harness {
    /// An engine configured by `config`, at an arbitrary start time.
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        Harness {
            engine: Engine::new(config, now),
            net: MemoryNet::default(),
            now,
        }
    }

    /// A new connection on `port`, accepted in the next turn.
    pub fn connect(&mut self, port: Port) -> Peer {
        self.net.connect(port)
    }

    /// A client that connects and sends `id` (a line without terminator).
    pub fn client(&mut self, id: &str) -> Peer {
        let peer = self.connect(Port::Clients);
        peer.send(format!("{id}\n").as_bytes());
        peer
    }

    /// Moves the clock on.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// One loop turn: readiness as a level for every connection, then
    /// [`Engine::tick`].
    pub fn turn(&mut self) {
        let now = self.now;
        for port in [Port::Events, Port::Clients] {
            self.engine.accept(port, now, &mut self.net);
        }
        let ready: Vec<(ConnId, Readiness)> = self
            .net
            .opened
            .iter()
            .map(|(id, peer)| (*id, peer.readiness()))
            .collect();
        for (id, readiness) in ready {
            self.engine.ready(id, readiness, now, &mut self.net);
        }
        self.engine.tick(now, &mut self.net);
    }

    /// Turns until the engine has no work waiting right now (at most
    /// `1000`, so a livelock fails the caller's checks instead of hanging).
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            self.turn();
            if self.engine.timeout(self.now) != Some(Duration::ZERO) {
                return;
            }
        }
    }

    /// Moves the clock on by `by` in steps of `step`, settling after each.
    pub fn run_for(&mut self, by: Duration, step: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.advance(step.min(end - self.now));
            self.settle();
        }
    }
}
