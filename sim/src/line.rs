//! Wire lines as the simulator writes and checks them: the terminator, fast
//! integer formatting, and a digest of a line's exact bytes.
//!
//! The generator and the verifier both use [`digest`], so an expectation is a
//! seq plus 8 bytes instead of a copy of the line.
//!
//! [`read_event`] reads an event line back, for tests and fixture servers:
//! the simulator's own reading, so they check it without the server's parser.

use super::mix::Kind;
use super::{Seq, UserId};

/// How the simulator ends every line it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    /// `\r\n`, what the written protocol specifies.
    #[default]
    Crlf,
    /// A bare `\n`, what the original test client sent in practice.
    Lf,
}

impl LineEnding {
    /// The terminator's bytes.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Crlf => b"\r\n",
            LineEnding::Lf => b"\n",
        }
    }
}

/// Two ASCII digits for every number below 100, so formatting emits two
/// digits per division.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `value` in decimal to `out`, with no allocation beyond `out`'s
/// own growth.
///
/// Hand-written because `write!` goes through `fmt` machinery that costs
/// more than the rest of generating an event.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while value >= 100 {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if value >= 10 {
        let pair = value as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + value as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// An order-sensitive 64-bit digest of a line's exact bytes, terminator
/// included, to tell an altered notification from the one expected.
///
/// Reads eight bytes at a time with a multiply-rotate mix; the length is
/// mixed in so a line and the same line with trailing zero bytes differ.
/// Not cryptographic: it guards against bugs, not adversaries.
#[inline]
pub fn digest(line: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hash = (line.len() as u64).wrapping_mul(K);
    let mut chunks = line.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
        hash = (hash ^ word).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        hash = (hash ^ u64::from_le_bytes(tail))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    hash ^= hash >> 32;
    hash = hash.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    hash ^ (hash >> 32)
}

/// Reads the leading decimal seq of a notification line (up to the first
/// `|`), or `None` if the line does not start with one.
///
/// The verifier needs only the seq to line a notification up with its
/// expectation; the digest checks the rest.
#[inline]
pub fn leading_seq(line: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for (at, &byte) in line.iter().enumerate() {
        if byte == b'|' {
            return (at > 0).then_some(value);
        }
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    None
}

/// An event line read back by [`read_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLine {
    /// Its sequence number (at least 1).
    pub seq: Seq,
    /// Its kind, from the letter.
    pub kind: Kind,
    /// The first user id (`from`): 0 for a broadcast.
    pub from: UserId,
    /// The second user id (`to`): 0 for a broadcast or a status update.
    pub to: UserId,
}

/// Reads one event line, terminator (`\r\n` or `\n`) included or not:
/// `seq|B`, `seq|S|from`, or `seq|F|from|to` (likewise `U` and `P`), with
/// plain decimal numbers and a seq of at least 1. Anything else is `None`.
///
/// The run never needs it (the verifier reads only the seq, and checks the
/// rest by digest). It is here so that the generator's tests and the
/// verifier's fixture servers can read the stream without the server's
/// parser: this crate does not depend on the server, so they could not use
/// it, and a check made with the code under test would prove little. The
/// server's side checks that its parser reads the generator's stream the
/// same way.
pub fn read_event(line: &[u8]) -> Option<EventLine> {
    let line = match line.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => line,
    };
    let mut fields = line.split(|&byte| byte == b'|');
    let seq = decimal(fields.next()?).filter(|&seq| seq >= 1)?;
    let kind = match fields.next()? {
        &[letter] => *Kind::ALL.iter().find(|kind| kind.letter() == letter)?,
        _ => return None,
    };
    let ids = match kind {
        Kind::Broadcast => 0,
        Kind::Status => 1,
        Kind::Follow | Kind::Unfollow | Kind::Private => 2,
    };
    let mut users: [UserId; 2] = [0; 2];
    for user in &mut users[..ids] {
        *user = decimal(fields.next()?)?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(EventLine {
        seq,
        kind,
        from: users[0],
        to: users[1],
    })
}

/// A field of ASCII digits only (no sign, no spaces) as a number that fits
/// in 64 bits.
fn decimal(field: &[u8]) -> Option<u64> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Calls `on_line` for every complete line (terminator included) in `data`,
/// carrying an incomplete tail over in `carry` to be completed by the next
/// call. Stops at the first error `on_line` returns.
///
/// A tail longer than `max_line` without a terminator is handed to
/// `too_long` instead of growing `carry` without bound.
pub fn split_lines<E>(
    carry: &mut Vec<u8>,
    data: &[u8],
    max_line: usize,
    mut on_line: impl FnMut(&[u8]) -> Result<(), E>,
    too_long: impl FnOnce(&[u8]) -> E,
) -> Result<(), E> {
    let mut rest = data;
    if !carry.is_empty() {
        match memchr::memchr(b'\n', rest) {
            Some(end) => {
                carry.extend_from_slice(&rest[..=end]);
                rest = &rest[end + 1..];
                let result = on_line(carry);
                carry.clear();
                result?;
            }
            None => {
                carry.extend_from_slice(rest);
                if carry.len() > max_line {
                    return Err(too_long(carry));
                }
                return Ok(());
            }
        }
    }
    while let Some(end) = memchr::memchr(b'\n', rest) {
        on_line(&rest[..=end])?;
        rest = &rest[end + 1..];
    }
    if rest.len() > max_line {
        return Err(too_long(rest));
    }
    carry.extend_from_slice(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_u64_matches_display() {
        let samples = [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12345,
            10_000_000,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        for value in samples {
            let mut out = b"x".to_vec();
            push_u64(&mut out, value);
            assert_eq!(out, format!("x{value}").into_bytes());
        }
    }

    #[test]
    fn digest_sees_every_byte_and_the_order() {
        let base = digest(b"123|P|45|67\r\n");
        assert_eq!(base, digest(b"123|P|45|67\r\n"));
        assert_ne!(base, digest(b"123|P|45|68\r\n"));
        assert_ne!(base, digest(b"123|P|45|67\n"));
        assert_ne!(base, digest(b"123|P|54|67\r\n"));
        assert_ne!(digest(b"ab"), digest(b"ab\0"));
        assert_ne!(digest(b""), digest(b"\0"));
    }

    #[test]
    fn leading_seq_reads_the_first_field() {
        assert_eq!(leading_seq(b"123|B\r\n"), Some(123));
        assert_eq!(leading_seq(b"7|S|3\n"), Some(7));
        assert_eq!(leading_seq(b"|B\n"), None);
        assert_eq!(leading_seq(b"12x|B\n"), None);
        assert_eq!(leading_seq(b"123\n"), None);
        assert_eq!(leading_seq(b"99999999999999999999999|B\n"), None);
    }

    /// Feeds `chunks` through `split_lines` and collects the lines.
    fn split(chunks: &[&[u8]], max_line: usize) -> Result<Vec<Vec<u8>>, Vec<u8>> {
        let mut carry = Vec::new();
        let mut lines = Vec::new();
        for chunk in chunks {
            split_lines(
                &mut carry,
                chunk,
                max_line,
                |line| {
                    lines.push(line.to_vec());
                    Ok::<(), Vec<u8>>(())
                },
                |tail| tail.to_vec(),
            )?;
        }
        Ok(lines)
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let lines = split(&[b"1|B\r", b"\n2|S|3\n3|", b"P|1|2", b"\r\n4"], 100).expect("fits");
        assert_eq!(
            lines,
            vec![
                b"1|B\r\n".to_vec(),
                b"2|S|3\n".to_vec(),
                b"3|P|1|2\r\n".to_vec()
            ]
        );
    }

    #[test]
    fn an_endless_line_is_refused() {
        assert_eq!(split(&[b"12345678"], 4), Err(b"12345678".to_vec()));
        assert_eq!(split(&[b"12", b"345"], 4), Err(b"12345".to_vec()));
        assert!(split(&[b"1234\n"], 4).is_ok(), "only a tail is limited");
    }

    #[test]
    fn read_event_reads_every_kind_with_either_ending() {
        let event = |seq, kind, from, to| {
            Some(EventLine {
                seq,
                kind,
                from,
                to,
            })
        };
        assert_eq!(read_event(b"1|B\r\n"), event(1, Kind::Broadcast, 0, 0));
        assert_eq!(read_event(b"22|S|7\n"), event(22, Kind::Status, 7, 0));
        assert_eq!(read_event(b"3|F|4|5"), event(3, Kind::Follow, 4, 5));
        assert_eq!(read_event(b"6|U|4|5\n"), event(6, Kind::Unfollow, 4, 5));
        assert_eq!(
            read_event(b"9|P|10|11\r\n"),
            event(9, Kind::Private, 10, 11)
        );
    }

    #[test]
    fn read_event_refuses_what_the_protocol_does_not_write() {
        // The generator's garbage lines are checked in its own tests.
        assert_eq!(read_event(b"+5|B"), None);
        assert_eq!(read_event(b"5|S|+3"), None);
        assert_eq!(read_event(b"5|BB"), None);
        assert_eq!(read_event(b"5|B\r\r\n"), None);
        assert_eq!(
            read_event(b"5|B\r"),
            None,
            "a CR ends a line only before LF"
        );
    }

    #[test]
    fn line_endings() {
        assert_eq!(LineEnding::Crlf.bytes(), b"\r\n");
        assert_eq!(LineEnding::Lf.bytes(), b"\n");
    }
}
