//! Bytes to frames to events, with no I/O.
//!
//! A *frame* is one line exactly as the peer sent it, terminator included,
//! because clients must receive notifications byte for byte as the event
//! source wrote them. Parsing looks at the line without its terminator.
//!
//! "No full line yet" is never an error: [`LineSplitter::next_line`] returns
//! `None` and the caller reads more bytes.

use std::fmt;

mod scan;
pub use scan::scan_event;

/// A user id as it appears on the wire: an unsigned decimal integer.
pub type UserId = u64;

/// An event sequence number; the stream starts at 1.
pub type Seq = u64;

/// What an event does, with the users it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `from` starts following `to`; `to` is notified.
    Follow {
        /// The new follower.
        from: UserId,
        /// The user followed, who is notified.
        to: UserId,
    },
    /// `from` stops following `to`; nobody is notified.
    Unfollow {
        /// The follower leaving.
        from: UserId,
        /// The user no longer followed.
        to: UserId,
    },
    /// Every connected client is notified.
    Broadcast,
    /// `to` is notified.
    Private {
        /// The sender, who is not notified.
        from: UserId,
        /// The recipient.
        to: UserId,
    },
    /// Every current follower of `from` is notified.
    Status {
        /// The user whose followers are notified.
        from: UserId,
    },
}

/// One parsed event line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Position in the stream; delivery follows it.
    pub seq: Seq,
    /// What the event does.
    pub kind: EventKind,
}

/// Why a line is not a valid event or user id.
///
/// `Copy + PartialEq` so tests can compare against it and the hot path never
/// allocates to report one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The line holds nothing.
    Empty,
    /// A numeric field is empty (e.g. `1||2|3`).
    EmptyNumber,
    /// A numeric field holds something other than ASCII digits.
    NotANumber,
    /// A numeric field does not fit in 64 bits.
    Overflow,
    /// The sequence number is 0; the stream starts at 1.
    ZeroSeq,
    /// The kind field is not one of `F`, `U`, `B`, `P`, `S`.
    UnknownKind,
    /// The kind is known but the line has too few or too many fields for it.
    WrongFieldCount,
    /// The line is longer than the configured limit.
    TooLong,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::Empty => "empty line",
            ParseError::EmptyNumber => "empty numeric field",
            ParseError::NotANumber => "numeric field holds a non-digit",
            ParseError::Overflow => "number does not fit in 64 bits",
            ParseError::ZeroSeq => "sequence number 0 (the stream starts at 1)",
            ParseError::UnknownKind => "unknown event kind (expected F, U, B, P or S)",
            ParseError::WrongFieldCount => "wrong number of fields for the event kind",
            ParseError::TooLong => "line longer than the limit",
        })
    }
}

impl std::error::Error for ParseError {}

/// Strips the line terminator (`\r\n` or a bare `\n`) from a frame.
///
/// A frame without a terminator is returned unchanged.
pub fn strip_terminator(frame: &[u8]) -> &[u8] {
    match frame.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => frame,
    }
}

/// Parses an unsigned decimal field strictly (digits only, no sign, no
/// spaces) from the start of `bytes` up to a `|` or the end.
///
/// Returns the number and, if a `|` ended it, the bytes after the `|`.
/// One pass, no splitting: this runs once or twice per event on the hot path.
fn number_field(bytes: &[u8]) -> Result<(u64, Option<&[u8]>), ParseError> {
    // Fast path: wrapping arithmetic, no overflow check per digit.
    let mut value: u64 = 0;
    let mut digits = 0;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        digits += 1;
    }
    if digits == 0 {
        return Err(match bytes.first() {
            None | Some(b'|') => ParseError::EmptyNumber,
            Some(_) => ParseError::NotANumber,
        });
    }
    // Up to 19 digits always fit in a u64; longer ones (leading zeros, or an
    // overflow) are redone with checks.
    if digits > 19 {
        value = bytes[..digits].iter().try_fold(0u64, |value, &byte| {
            value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                .ok_or(ParseError::Overflow)
        })?;
    }
    match bytes.get(digits) {
        None => Ok((value, None)),
        Some(b'|') => Ok((value, Some(&bytes[digits + 1..]))),
        Some(_) => Err(ParseError::NotANumber),
    }
}

/// Parses a number that must be the last field of the line.
fn last_number(bytes: &[u8]) -> Result<u64, ParseError> {
    match number_field(bytes)? {
        (value, None) => Ok(value),
        (_, Some(_)) => Err(ParseError::WrongFieldCount),
    }
}

/// Parses `from|to`, the last two fields of F, U and P.
fn two_numbers(bytes: &[u8]) -> Result<(u64, u64), ParseError> {
    match number_field(bytes)? {
        (from, Some(rest)) => Ok((from, last_number(rest)?)),
        (_, None) => Err(ParseError::WrongFieldCount),
    }
}

/// Parses an event line (terminator already stripped).
///
/// Accepts exactly `seq|F|from|to`, `seq|U|from|to`, `seq|B`, `seq|P|from|to`
/// and `seq|S|from`.
pub fn parse_event(line: &[u8]) -> Result<Event, ParseError> {
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let (seq, rest) = number_field(line)?;
    if seq == 0 {
        return Err(ParseError::ZeroSeq);
    }
    if seq == Seq::MAX {
        // The seq after it could not be counted: 2^64 - 2 is the last.
        return Err(ParseError::Overflow);
    }
    let rest = rest.ok_or(ParseError::WrongFieldCount)?;
    let (&kind, after_kind) = rest.split_first().ok_or(ParseError::UnknownKind)?;
    // The kind is one byte, then either the end or a `|` and the arguments.
    let arguments = match after_kind {
        [] => None,
        [b'|', arguments @ ..] => Some(arguments),
        _ => return Err(ParseError::UnknownKind),
    };
    let kind = match (kind, arguments) {
        (b'B', None) => EventKind::Broadcast,
        (b'S', Some(arguments)) => EventKind::Status {
            from: last_number(arguments)?,
        },
        (b'F' | b'U' | b'P', Some(arguments)) => {
            let (from, to) = two_numbers(arguments)?;
            match kind {
                b'F' => EventKind::Follow { from, to },
                b'U' => EventKind::Unfollow { from, to },
                _ => EventKind::Private { from, to },
            }
        }
        (b'B' | b'S' | b'F' | b'U' | b'P', _) => return Err(ParseError::WrongFieldCount),
        _ => return Err(ParseError::UnknownKind),
    };
    Ok(Event { seq, kind })
}

/// Parses a client's id line (terminator already stripped): digits only.
pub fn parse_user_id(line: &[u8]) -> Result<UserId, ParseError> {
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    last_number(line).map_err(|reason| match reason {
        // A `|` in an id line is simply not a digit.
        ParseError::WrongFieldCount | ParseError::EmptyNumber => ParseError::NotANumber,
        other => other,
    })
}

/// What [`LineSplitter::next_line`] found in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A complete frame: `start..end` of the buffer, terminator included.
    Frame {
        /// First byte of the frame.
        start: usize,
        /// One past its terminator.
        end: usize,
    },
    /// A line over the limit was dropped up to and including its terminator.
    Overlong,
}

/// What [`LineSplitter::next_event`] found in the buffer: a line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLine {
    /// A complete frame, `start..end` of the buffer with its terminator,
    /// and the event it holds or why it holds none.
    Frame {
        /// First byte of the frame.
        start: usize,
        /// One past its terminator.
        end: usize,
        /// What [`parse_event`] makes of it.
        parsed: Result<Event, ParseError>,
    },
    /// A line over the limit was dropped up to and including its terminator.
    Overlong,
}

/// The first bytes of a line, kept to name it in a log line (an overlong
/// line dropped, a bad id): at most [`LineStart::MAX`] bytes, held inline,
/// so keeping one never allocates. Displays as the escaped bytes in quotes,
/// then `...` if the line went on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineStart {
    /// The bytes, at `bytes[..len]`.
    bytes: [u8; LineStart::MAX],
    /// How many there are.
    len: u8,
    /// True when the line went on past them.
    cut: bool,
}

impl LineStart {
    /// Most bytes kept.
    pub const MAX: usize = 64;

    /// No bytes.
    pub const EMPTY: LineStart = LineStart {
        bytes: [0; LineStart::MAX],
        len: 0,
        cut: false,
    };

    /// The start of `line`, which is `whole` (false: more of it was never
    /// seen, or was dropped).
    pub fn of(line: &[u8], whole: bool) -> LineStart {
        let len = line.len().min(Self::MAX);
        let mut bytes = [0; Self::MAX];
        bytes[..len].copy_from_slice(&line[..len]);
        LineStart {
            bytes,
            len: len as u8,
            cut: !whole || line.len() > len,
        }
    }

    /// The bytes kept.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// True when nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for LineStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.as_bytes().escape_ascii())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Splits a byte buffer into lines, enforcing a length limit *before* the
/// terminator arrives so a peer cannot make the inbox grow without bound.
///
/// The splitter keeps only a cursor into the caller's buffer, a flag for a
/// line being discarded, and that line's first bytes (for the log); the
/// caller owns the bytes, reads more into the same buffer, and calls
/// [`LineSplitter::consume`] to compact it.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    /// Longest accepted frame in bytes, terminator included.
    max_line: usize,
    /// Offset of the first byte not yet returned as part of a line.
    cursor: usize,
    /// True while skipping the rest of an overlong line: its head was already
    /// dropped, so the bytes up to the next `\n` belong to nothing.
    discarding: bool,
    /// The first bytes of the last overlong line, kept when it began to be
    /// dropped (off the hot path: only overlong lines pay for it).
    dropped: LineStart,
}

impl LineSplitter {
    /// A splitter that accepts frames of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line: max_line.max(2),
            cursor: 0,
            discarding: false,
            dropped: LineStart::EMPTY,
        }
    }

    /// The next complete line in `buf`, or `None` when more bytes are needed.
    ///
    /// `buf` must be the same buffer (grown only at the end) between calls
    /// until [`LineSplitter::consume`] is called.
    pub fn next_line(&mut self, buf: &[u8]) -> Option<Line> {
        loop {
            let rest = &buf[self.cursor..];
            let newline = memchr::memchr(b'\n', rest);
            if self.discarding {
                match newline {
                    Some(at) => {
                        self.cursor += at + 1;
                        self.discarding = false;
                        return Some(Line::Overlong);
                    }
                    None => {
                        self.cursor = buf.len();
                        return None;
                    }
                }
            }
            match newline {
                Some(at) if at < self.max_line => {
                    let start = self.cursor;
                    self.cursor += at + 1;
                    return Some(Line::Frame {
                        start,
                        end: self.cursor,
                    });
                }
                Some(at) => {
                    // Terminated, but too long: drop it whole.
                    self.dropped = LineStart::of(strip_terminator(&rest[..=at]), true);
                    self.discarding = true;
                }
                None if rest.len() >= self.max_line => {
                    // No terminator within the limit: drop what we have and
                    // keep dropping until the next one.
                    self.dropped = LineStart::of(rest, false);
                    self.discarding = true;
                }
                None => return None,
            }
        }
    }

    /// The next complete line in `buf`, parsed as an event, or `None` when
    /// more bytes are needed: [`LineSplitter::next_line`] and
    /// [`parse_event`] in one pass over the bytes when the line is a plain
    /// valid one ([`scan_event`]), the two in turn otherwise. Same contract
    /// on `buf` as `next_line`; the two may be mixed.
    #[inline]
    pub fn next_event(&mut self, buf: &[u8]) -> Option<EventLine> {
        if !self.discarding
            && let Some((event, len)) = scan_event(&buf[self.cursor..], self.max_line)
        {
            let start = self.cursor;
            self.cursor += len;
            return Some(EventLine::Frame {
                start,
                end: self.cursor,
                parsed: Ok(event),
            });
        }
        Some(match self.next_line(buf)? {
            Line::Frame { start, end } => EventLine::Frame {
                start,
                end,
                parsed: parse_event(strip_terminator(&buf[start..end])),
            },
            Line::Overlong => EventLine::Overlong,
        })
    }

    /// Bytes at the front of the buffer that no future line needs; the caller
    /// removes them and the cursor moves back to the start.
    pub fn consume(&mut self) -> usize {
        std::mem::take(&mut self.cursor)
    }

    /// True while the rest of an overlong line is being dropped.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// The first bytes of the last line dropped as overlong (the one being
    /// dropped, while [`LineSplitter::is_discarding`]).
    pub fn dropped(&self) -> &LineStart {
        &self.dropped
    }
}

#[cfg(test)]
mod tests;
