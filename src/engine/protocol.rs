//! Bytes to frames to events, with no I/O.
//!
//! A *frame* is one line exactly as the peer sent it, terminator included,
//! because clients must receive notifications byte for byte as the event
//! source wrote them. Parsing looks at the line without its terminator.
//!
//! "No full line yet" is never an error: [`LineSplitter::next_line`] returns
//! `None` and the caller reads more bytes.

use std::fmt;

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

/// Splits a byte buffer into lines, enforcing a length limit *before* the
/// terminator arrives so a peer cannot make the inbox grow without bound.
///
/// The splitter keeps only a cursor into the caller's buffer and a flag for a
/// line being discarded; the caller owns the bytes, reads more into the same
/// buffer, and calls [`LineSplitter::consume`] to compact it.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    /// Longest accepted frame in bytes, terminator included.
    max_line: usize,
    /// Offset of the first byte not yet returned as part of a line.
    cursor: usize,
    /// True while skipping the rest of an overlong line: its head was already
    /// dropped, so the bytes up to the next `\n` belong to nothing.
    discarding: bool,
}

impl LineSplitter {
    /// A splitter that accepts frames of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line: max_line.max(2),
            cursor: 0,
            discarding: false,
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
                Some(_) => {
                    // Terminated, but too long: drop it whole.
                    self.discarding = true;
                }
                None if rest.len() >= self.max_line => {
                    // No terminator within the limit: drop what we have and
                    // keep dropping until the next one.
                    self.discarding = true;
                }
                None => return None,
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    #[test]
    fn parses_each_kind() {
        let table: &[(&[u8], Event)] = &[
            (
                b"666|F|60|50",
                Event {
                    seq: 666,
                    kind: Follow { from: 60, to: 50 },
                },
            ),
            (
                b"1|U|12|9",
                Event {
                    seq: 1,
                    kind: Unfollow { from: 12, to: 9 },
                },
            ),
            (
                b"542532|B",
                Event {
                    seq: 542532,
                    kind: Broadcast,
                },
            ),
            (
                b"43|P|32|56",
                Event {
                    seq: 43,
                    kind: Private { from: 32, to: 56 },
                },
            ),
            (
                b"634|S|32",
                Event {
                    seq: 634,
                    kind: Status { from: 32 },
                },
            ),
            (
                b"18446744073709551614|B",
                Event {
                    seq: u64::MAX - 1,
                    kind: Broadcast,
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(parse_event(line), Ok(*want), "{}", line.escape_ascii());
        }
    }

    #[test]
    fn rejects_malformed_events_with_a_reason() {
        use ParseError::*;
        let table: &[(&[u8], ParseError)] = &[
            (b"", Empty),
            (b"abc", NotANumber),
            (b"1|X|2|3", UnknownKind),
            (b"1|F|2", WrongFieldCount),
            (b"1|B|3", WrongFieldCount),
            (b"1|S", WrongFieldCount),
            (b"1|S|2|3", WrongFieldCount),
            (b"1|F|2|3|4", WrongFieldCount),
            (b"1", WrongFieldCount),
            (b"1|", UnknownKind),
            (b"0|B", ZeroSeq),
            (b"-1|B", NotANumber),
            (b"+1|B", NotANumber),
            (b"99999999999999999999|B", Overflow),
            (b"18446744073709551616|B", Overflow),
            (b"18446744073709551615|B", Overflow),
            (b"000000000000000000001|B|", WrongFieldCount),
            (b" 1|B", NotANumber),
            (b"1 |B", NotANumber),
            (b"1|B ", UnknownKind),
            (b"1|b", UnknownKind),
            (b"1|F||3", EmptyNumber),
            (b"|B", EmptyNumber),
            (b"1|P|2|x", NotANumber),
            (b"1|S|\x00", NotANumber),
            (b"\xff\xfe|B", NotANumber),
            (b"1|F|2|3\r", NotANumber),
            (b"1|S|", EmptyNumber),
            (b"1|F|2|", EmptyNumber),
            (b"1|BB", UnknownKind),
            (b"1|PP|2|3", UnknownKind),
        ];
        for (line, want) in table {
            assert_eq!(parse_event(line), Err(*want), "{}", line.escape_ascii());
        }
    }

    #[test]
    fn long_numbers_are_exact_and_overflow_is_caught() {
        let seq_one = b"0000000000000000000000000001|B";
        assert_eq!(parse_event(seq_one).map(|e| e.seq), Ok(1));
        let last = b"00018446744073709551614|S|7";
        assert_eq!(parse_event(last).map(|e| e.seq), Ok(u64::MAX - 1));
        let over = b"1|P|2|000184467440737095516160";
        assert_eq!(parse_event(over), Err(ParseError::Overflow));
    }

    #[test]
    fn parses_user_ids_strictly() {
        assert_eq!(parse_user_id(b"2932"), Ok(2932));
        assert_eq!(parse_user_id(b"0"), Ok(0));
        assert_eq!(parse_user_id(b""), Err(ParseError::Empty));
        assert_eq!(parse_user_id(b"12a"), Err(ParseError::NotANumber));
        assert_eq!(parse_user_id(b"-3"), Err(ParseError::NotANumber));
        assert_eq!(parse_user_id(b" 3"), Err(ParseError::NotANumber));
        assert_eq!(parse_user_id(b"3|4"), Err(ParseError::NotANumber));
        assert_eq!(parse_user_id(b"|"), Err(ParseError::NotANumber));
        assert_eq!(
            parse_user_id(b"99999999999999999999"),
            Err(ParseError::Overflow)
        );
    }

    #[test]
    fn strips_crlf_and_lf_only() {
        assert_eq!(strip_terminator(b"1|B\r\n"), b"1|B");
        assert_eq!(strip_terminator(b"1|B\n"), b"1|B");
        assert_eq!(strip_terminator(b"1|B"), b"1|B");
        assert_eq!(strip_terminator(b"1|B\r"), b"1|B\r");
        assert_eq!(strip_terminator(b"1|B\n\r"), b"1|B\n\r");
    }

    /// The obvious parser, written for clarity: split on `|`, check the
    /// field count for the kind, parse each number with the standard library.
    fn reference_parse(line: &[u8]) -> Option<Event> {
        let fields: Vec<&[u8]> = line.split(|&b| b == b'|').collect();
        let number = |field: &[u8]| -> Option<u64> {
            if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(field).ok()?.parse().ok()
        };
        let seq = number(fields[0]).filter(|&seq| seq > 0 && seq < u64::MAX)?;
        let kind = match (fields.get(1).copied()?, fields.len()) {
            (b"B", 2) => Broadcast,
            (b"S", 3) => Status {
                from: number(fields[2])?,
            },
            (b"F", 4) => Follow {
                from: number(fields[2])?,
                to: number(fields[3])?,
            },
            (b"U", 4) => Unfollow {
                from: number(fields[2])?,
                to: number(fields[3])?,
            },
            (b"P", 4) => Private {
                from: number(fields[2])?,
                to: number(fields[3])?,
            },
            _ => return None,
        };
        Some(Event { seq, kind })
    }

    proptest::proptest! {
        #[test]
        fn parse_event_agrees_with_the_obvious_parser(
            line in proptest::collection::vec(
                proptest::sample::select(b"0123456789|FUBPSX \r\xff".to_vec()),
                0..24,
            )
        ) {
            proptest::prop_assert_eq!(parse_event(&line).ok(), reference_parse(&line));
        }

        #[test]
        fn well_formed_lines_always_parse(
            seq in 1u64..u64::MAX, from in proptest::num::u64::ANY, to in proptest::num::u64::ANY,
            kind in 0usize..5,
        ) {
            let (line, want) = match kind {
                0 => (format!("{seq}|F|{from}|{to}"), Follow { from, to }),
                1 => (format!("{seq}|U|{from}|{to}"), Unfollow { from, to }),
                2 => (format!("{seq}|B"), Broadcast),
                3 => (format!("{seq}|P|{from}|{to}"), Private { from, to }),
                _ => (format!("{seq}|S|{from}"), Status { from }),
            };
            proptest::prop_assert_eq!(parse_event(line.as_bytes()), Ok(Event { seq, kind: want }));
        }
    }

    /// Collects every line `buf` yields as owned frames (`None` = overlong).
    fn split_all(splitter: &mut LineSplitter, buf: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        while let Some(line) = splitter.next_line(buf) {
            out.push(match line {
                Line::Frame { start, end } => Some(buf[start..end].to_vec()),
                Line::Overlong => None,
            });
        }
        out
    }

    #[test]
    fn splits_crlf_and_lf_keeping_the_exact_bytes() {
        let mut splitter = LineSplitter::new(64);
        let buf = b"1|B\r\n2|S|3\n3|P|1|2\r\npartial";
        let lines = split_all(&mut splitter, buf);
        assert_eq!(
            lines,
            vec![
                Some(b"1|B\r\n".to_vec()),
                Some(b"2|S|3\n".to_vec()),
                Some(b"3|P|1|2\r\n".to_vec()),
            ]
        );
        assert_eq!(splitter.consume(), buf.len() - b"partial".len());
    }

    #[test]
    fn a_partial_line_is_completed_by_a_later_read() {
        let mut splitter = LineSplitter::new(64);
        let mut buf = b"12|".to_vec();
        assert_eq!(splitter.next_line(&buf), None);
        buf.extend_from_slice(b"B\r");
        assert_eq!(splitter.next_line(&buf), None);
        buf.extend_from_slice(b"\n");
        assert_eq!(
            splitter.next_line(&buf),
            Some(Line::Frame { start: 0, end: 6 })
        );
    }

    #[test]
    fn an_overlong_terminated_line_is_dropped_whole() {
        let mut splitter = LineSplitter::new(8);
        let buf = b"1|B\n123456789|B\n2|B\n";
        let lines = split_all(&mut splitter, buf);
        assert_eq!(
            lines,
            vec![Some(b"1|B\n".to_vec()), None, Some(b"2|B\n".to_vec())]
        );
    }

    #[test]
    fn an_unterminated_line_is_dropped_before_its_newline_arrives() {
        let mut splitter = LineSplitter::new(8);
        let mut buf = b"0123456789".to_vec();
        assert_eq!(splitter.next_line(&buf), None);
        assert!(splitter.is_discarding());
        // The caller may throw away everything seen so far.
        let consumed = splitter.consume();
        assert_eq!(consumed, buf.len());
        buf.drain(..consumed);
        buf.extend_from_slice(b"more junk\n5|B\n");
        let lines = split_all(&mut splitter, &buf);
        assert_eq!(lines, vec![None, Some(b"5|B\n".to_vec())]);
    }

    #[test]
    fn a_line_exactly_at_the_limit_is_kept() {
        let mut splitter = LineSplitter::new(5);
        let buf = b"12|B\n123|B\n";
        let lines = split_all(&mut splitter, buf);
        assert_eq!(lines, vec![Some(b"12|B\n".to_vec()), None]);
    }
}
