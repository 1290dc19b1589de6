//! One connection's buffers and the I/O on them.
//!
//! An [`Inbox`] is a fixed-size read buffer with a [`LineSplitter`], so a peer
//! can never make it grow. An [`Outbox`] queues whole frames for one client
//! and drains them with as few `write` calls as the socket allows: frames
//! appended during one loop turn leave in one call.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;

use crate::protocol::{Line, LineSplitter, UserId};

/// True for the error that means "no more right now".
pub fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// True for the error that means "a signal interrupted the call; retry".
pub fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

/// A fixed-size read buffer that yields complete lines.
#[derive(Debug)]
pub struct Inbox {
    /// The bytes read and not yet consumed, at `buf[..filled]`.
    buf: Box<[u8]>,
    /// How much of `buf` holds data.
    filled: usize,
    /// Finds lines in `buf[..filled]` and enforces the length limit.
    splitter: LineSplitter,
}

impl Inbox {
    /// An inbox of `capacity` bytes accepting lines of up to `max_line` bytes.
    ///
    /// The capacity is raised to twice `max_line` if needed, so a partial line
    /// kept after compaction always leaves room to read more.
    pub fn new(capacity: usize, max_line: usize) -> Self {
        let capacity = capacity.max(max_line.saturating_mul(2)).max(16);
        Inbox {
            buf: vec![0; capacity].into_boxed_slice(),
            filled: 0,
            splitter: LineSplitter::new(max_line),
        }
    }

    /// Reads once from `reader` into the free space, at most `limit` bytes:
    /// `Ok(0)` means the peer closed its side.
    ///
    /// The caller must leave room: `limit > 0`, and lines routed and
    /// [`Inbox::compact`]ed first (a partial line then fills at most half the
    /// buffer), or `Ok(0)` would be mistaken for the end of the stream.
    pub fn read_from(&mut self, reader: &mut impl Read, limit: usize) -> io::Result<usize> {
        let end = self.buf.len().min(self.filled.saturating_add(limit));
        debug_assert!(end > self.filled, "no room to read into");
        let n = reader.read(&mut self.buf[self.filled..end])?;
        self.filled += n;
        Ok(n)
    }

    /// The next complete line, or `None` when more bytes are needed.
    pub fn next_line(&mut self) -> Option<Line> {
        self.splitter.next_line(&self.buf[..self.filled])
    }

    /// The bytes of a frame returned by [`Inbox::next_line`].
    pub fn frame(&self, start: usize, end: usize) -> &[u8] {
        &self.buf[start..end]
    }

    /// Drops the lines already returned, keeping a partial line at the front.
    pub fn compact(&mut self) {
        let consumed = self.splitter.consume();
        self.buf.copy_within(consumed..self.filled, 0);
        self.filled -= consumed;
    }

    /// True when a line has begun and not ended (after [`Inbox::compact`]),
    /// including an overlong line being dropped.
    pub fn has_unfinished_line(&self) -> bool {
        self.filled > 0 || self.splitter.is_discarding()
    }
}

/// Frames queued for one client, drained by `write`.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Queued bytes are `buf[head..]`.
    buf: Vec<u8>,
    /// Bytes at the front already written.
    head: usize,
}

impl Outbox {
    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Queues `frame` after everything already queued.
    pub fn push(&mut self, frame: &[u8]) {
        if self.head > 0 && self.head >= self.buf.len() / 2 {
            // Reclaim the written front before growing the buffer.
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(frame);
    }

    /// Writes queued bytes until none are left or `writer` would block;
    /// returns how many bytes were written.
    pub fn write_to(&mut self, writer: &mut impl Write) -> io::Result<usize> {
        let mut written = 0;
        while self.head < self.buf.len() {
            match writer.write(&self.buf[self.head..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.head += n;
                    written += n;
                }
                Err(err) if would_block(&err) => break,
                Err(err) if interrupted(&err) => continue,
                Err(err) => return Err(err),
            }
        }
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        }
        Ok(written)
    }

    /// Frees the buffer's memory if it is empty and far larger than both
    /// `keep` and the batch just written (`recent` bytes), so a burst does
    /// not pin memory for the connection's lifetime, while a client that
    /// regularly gets large batches keeps its buffer instead of reallocating
    /// it every turn.
    pub fn shrink_if_idle(&mut self, keep: usize, recent: usize) {
        if self.pending() == 0 && self.buf.capacity() > keep.max(recent.saturating_mul(4)) {
            self.buf = Vec::with_capacity(keep);
            self.head = 0;
        }
    }
}

/// What a user-client connection is doing.
#[derive(Debug)]
pub enum ClientState {
    /// Connected, id not yet received.
    AwaitingId {
        /// Collects the id line.
        inbox: Inbox,
    },
    /// Registered under a user id; only receives from now on.
    Registered {
        /// The id it claimed.
        user: UserId,
    },
}

/// One user-client connection.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    /// Awaiting its id, or registered.
    pub state: ClientState,
    /// Notifications not yet written.
    pub outbox: Outbox,
    /// True after a write hit `WouldBlock`: wait for a writable event
    /// instead of trying again (readiness is edge-triggered).
    pub write_blocked: bool,
    /// Set when the client must go, with the reason; it is closed after the
    /// current loop turn, never in the middle of a fan-out.
    pub closing: Option<&'static str>,
    /// Serial number of the connection: slab keys are reused, serials not.
    pub serial: u64,
    /// Since when its outbox has been over the soft limit, if it is.
    pub over_soft_limit_since: Option<Instant>,
    /// Since when its outbox has been over half the hard limit, if it is:
    /// the start of the stall it may impose on routing.
    pub over_half_limit_since: Option<Instant>,
}

/// The event source connection.
#[derive(Debug)]
pub struct Source {
    /// The socket.
    pub stream: TcpStream,
    /// Event lines being assembled.
    pub inbox: Inbox,
    /// True when the socket may hold unread bytes: readiness is
    /// edge-triggered, so after stopping early we must come back unprompted.
    pub readable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `room` bytes, then would block.
    struct Throttled {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for Throttled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room).min(3);
            self.written.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut outbox = Outbox::default();
        outbox.push(b"1|B\r\n");
        outbox.push(b"2|B\r\n");
        let mut sink = Throttled {
            written: Vec::new(),
            room: 7,
        };
        assert_eq!(outbox.write_to(&mut sink).unwrap(), 7);
        assert_eq!(outbox.pending(), 3);
        outbox.push(b"3|B\n");
        sink.room = 100;
        assert_eq!(outbox.write_to(&mut sink).unwrap(), 7);
        assert_eq!(sink.written, b"1|B\r\n2|B\r\n3|B\n");
        assert_eq!(outbox.pending(), 0);
    }

    #[test]
    fn an_idle_outbox_gives_back_a_burst_but_keeps_a_steady_batch() {
        let mut outbox = Outbox::default();
        let mut sink = Throttled {
            written: Vec::new(),
            room: usize::MAX,
        };
        outbox.push(&[b'x'; 100_000]);
        let written = outbox.write_to(&mut sink).unwrap();
        outbox.shrink_if_idle(1024, written);
        assert!(
            outbox.buf.capacity() >= 100_000,
            "a steady batch keeps its buffer"
        );
        outbox.push(b"1|B\n");
        let written = outbox.write_to(&mut sink).unwrap();
        outbox.shrink_if_idle(1024, written);
        assert!(
            outbox.buf.capacity() <= 1024,
            "an idle burst buffer is freed"
        );
    }

    #[test]
    fn a_reset_peer_is_an_error() {
        struct Reset;
        impl Write for Reset {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut outbox = Outbox::default();
        outbox.push(b"1|B\n");
        assert!(outbox.write_to(&mut Reset).is_err());
    }

    #[test]
    fn an_inbox_yields_lines_across_reads_and_keeps_the_partial_one() {
        let mut inbox = Inbox::new(16, 8);
        let mut input: &[u8] = b"1|B\n2|";
        inbox.read_from(&mut input, usize::MAX).unwrap();
        let Some(Line::Frame { start, end }) = inbox.next_line() else {
            panic!("one line expected");
        };
        assert_eq!(inbox.frame(start, end), b"1|B\n");
        assert_eq!(inbox.next_line(), None);
        inbox.compact();
        assert!(inbox.has_unfinished_line());
        let mut input: &[u8] = b"B\r\n";
        inbox.read_from(&mut input, usize::MAX).unwrap();
        let Some(Line::Frame { start, end }) = inbox.next_line() else {
            panic!("one line expected");
        };
        assert_eq!(inbox.frame(start, end), b"2|B\r\n");
    }

    #[test]
    fn an_inbox_never_fills_up_on_an_endless_line() {
        let mut inbox = Inbox::new(16, 8);
        let junk = [b'x'; 1000];
        for chunk in junk.chunks(5) {
            let mut input = chunk;
            assert_eq!(
                inbox.read_from(&mut input, usize::MAX).unwrap(),
                chunk.len()
            );
            while inbox.next_line().is_some() {}
            inbox.compact();
        }
        assert!(inbox.has_unfinished_line(), "the dropped line is not over");
        let mut input: &[u8] = b"\n1|B\n";
        inbox.read_from(&mut input, usize::MAX).unwrap();
        assert_eq!(inbox.next_line(), Some(Line::Overlong));
        assert!(matches!(inbox.next_line(), Some(Line::Frame { .. })));
    }
}
