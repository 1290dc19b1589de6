//! A connection's read buffer, which yields complete lines.
//!
//! An [`Inbox`] is a fixed-size read buffer with a [`LineSplitter`], so a peer
//! can never make it grow.

use std::io::{self, Read};

use crate::engine::protocol::{EventLine, Line, LineSplitter, LineStart};

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

    /// The next complete line, parsed as an event, or `None` when more
    /// bytes are needed (see [`LineSplitter::next_event`]).
    #[inline]
    pub fn next_event(&mut self) -> Option<EventLine> {
        self.splitter.next_event(&self.buf[..self.filled])
    }

    /// The bytes of a frame returned by [`Inbox::next_line`] or
    /// [`Inbox::next_event`].
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

    /// True once the line begun and not ended is over the length limit:
    /// its bytes are being dropped, and it is known to be too long before
    /// its end arrives.
    pub fn is_dropping_line(&self) -> bool {
        self.splitter.is_discarding()
    }

    /// The first bytes of the last line dropped as overlong (for the log,
    /// when [`Inbox::next_line`] returned [`Line::Overlong`]).
    pub fn dropped_line(&self) -> &LineStart {
        self.splitter.dropped()
    }

    /// The first bytes of the line begun and not ended (after
    /// [`Inbox::compact`]; empty when there is none), for the log.
    pub fn unfinished_line(&self) -> LineStart {
        if self.splitter.is_discarding() {
            *self.splitter.dropped()
        } else {
            LineStart::of(&self.buf[..self.filled], true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
