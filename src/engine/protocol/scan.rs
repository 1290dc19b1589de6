//! Framing and parsing in one pass: the source's hot path.
//!
//! Splitting a buffer into lines with `memchr` and then parsing each line
//! reads every byte twice and pays a call per line for a search that, on
//! lines of about 17 bytes, finds its newline at once. [`scan_event`]
//! instead parses a line from its first byte and finds its end as the
//! last step. It only ever answers for the plain case: a complete, valid
//! line within the length limit. Anything else (a partial line at the end
//! of the buffer, a malformed or overlong line, a number of more than 19
//! digits) is left to the general path, [`LineSplitter::next_line`] and
//! [`parse_event`], which also names what is wrong. So the two paths can
//! never disagree on an event: the fast one is a subset of the strict one,
//! and the tests hold it to that.
//!
//! [`LineSplitter::next_line`]: super::LineSplitter::next_line
//! [`parse_event`]: super::parse_event

use super::{Event, EventKind, Seq, UserId};

/// Digits read on the fast path: any number of up to 19 digits fits in 64
/// bits, so none of them needs an overflow check.
const MAX_FAST_DIGITS: usize = 19;

/// One in each byte lane of a `u64`.
const LANES: u64 = 0x0101_0101_0101_0101;

/// Powers of ten up to a word's worth of digits.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// How many of the 8 bytes of `word` (little-endian: the first byte in the
/// lowest lane) are ASCII digits before the first that is not, 0 to 8.
///
/// A byte is a digit when its high nibble is 3 and stays 3 once 6 is added
/// (`0x3A..=0x3F` then carry into the next nibble). Adding 6 to a byte of
/// `0xFA` or more carries into the next lane, but such a byte is not a digit
/// itself, and lanes after the first non-digit are never counted.
#[inline(always)]
fn digit_run(word: u64) -> usize {
    let high_nibbles = 0xF0 * LANES;
    let threes = 0x30 * LANES;
    let not_digit =
        ((word & high_nibbles) ^ threes) | ((word.wrapping_add(6 * LANES) & high_nibbles) ^ threes);
    (not_digit.trailing_zeros() / 8) as usize
}

/// The value of the first `digits` (1 to 8) bytes of `word`, all ASCII
/// digits, the first the most significant: three multiply-and-add steps
/// join pairs, then quads, then the eight, all lanes at once.
#[inline(always)]
fn word_value(word: u64, digits: usize) -> u64 {
    // Digit values, moved to the top lanes: the lanes shifted in below them
    // are leading zeros, and the bytes after the number are shifted out
    // (as are the borrows their subtraction may cause).
    let values = word.wrapping_sub(0x30 * LANES) << (8 * (8 - digits));
    let pairs = values.wrapping_mul(10).wrapping_add(values >> 8) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    quads.wrapping_mul(10_000 << 32 | 1) >> 32
}

/// The unsigned decimal number at `bytes[at..]`, and the index after its
/// last digit; `None` for no digits or more than [`MAX_FAST_DIGITS`].
///
/// Reads 8 bytes at a time while 8 are there (the buffer's last few bytes
/// go one at a time).
#[inline(always)]
fn number_at(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    // Most numbers have fewer than 8 digits: one word, no loop.
    if let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let digits = digit_run(word);
        if digits < 8 {
            return (digits > 0).then(|| (word_value(word, digits), at + digits));
        }
    }
    long_number_at(bytes, at)
}

/// [`number_at`] for numbers of 8 digits or more, or near the end of
/// `bytes`.
fn long_number_at(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut end = at;
    while let Some(chunk) = bytes.get(end..end + 8) {
        let word = u64::from_le_bytes(chunk.try_into().ok()?);
        let digits = digit_run(word);
        if digits > 0 {
            value = value
                .wrapping_mul(POW10[digits])
                .wrapping_add(word_value(word, digits));
        }
        end += digits;
        if digits < 8 {
            return (end > at && end - at <= MAX_FAST_DIGITS).then_some((value, end));
        }
    }
    while let Some(&byte) = bytes.get(end) {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        end += 1;
    }
    (end > at && end - at <= MAX_FAST_DIGITS).then_some((value, end))
}

/// `|` then a number: the next field of a line, and the index after it.
#[inline(always)]
fn field_at(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    match bytes.get(at) {
        Some(b'|') => number_at(bytes, at + 1),
        _ => None,
    }
}

/// `from|to` after the kind: two fields.
#[inline(always)]
fn two_fields_at(bytes: &[u8], at: usize) -> Option<(UserId, UserId, usize)> {
    let (from, at) = field_at(bytes, at)?;
    let (to, at) = field_at(bytes, at)?;
    Some((from, to, at))
}

/// The event line at the start of `bytes` and its frame's length
/// (terminator included), when the line is complete, valid, and at most
/// `max_line` bytes long; `None` otherwise, for the general path to decide.
///
/// Whenever it returns `Some((event, len))`, `bytes[..len]` is one frame
/// exactly as [`LineSplitter`](super::LineSplitter) with limit `max_line`
/// would cut it, and [`parse_event`](super::parse_event) of it, terminator
/// stripped, is `Ok(event)`.
#[inline]
pub fn scan_event(bytes: &[u8], max_line: usize) -> Option<(Event, usize)> {
    let (seq, at) = number_at(bytes, 0)?;
    // Seq 0 and `Seq::MAX` are errors the general path names (`Seq::MAX`
    // has 20 digits, so the digit limit already leaves it there).
    if seq == 0 {
        return None;
    }
    if bytes.get(at) != Some(&b'|') {
        return None;
    }
    let (kind, at) = match *bytes.get(at + 1)? {
        b'B' => (EventKind::Broadcast, at + 2),
        b'S' => {
            let (from, at) = field_at(bytes, at + 2)?;
            (EventKind::Status { from }, at)
        }
        b'F' => {
            let (from, to, at) = two_fields_at(bytes, at + 2)?;
            (EventKind::Follow { from, to }, at)
        }
        b'U' => {
            let (from, to, at) = two_fields_at(bytes, at + 2)?;
            (EventKind::Unfollow { from, to }, at)
        }
        b'P' => {
            let (from, to, at) = two_fields_at(bytes, at + 2)?;
            (EventKind::Private { from, to }, at)
        }
        _ => return None,
    };
    let len = match (bytes.get(at), bytes.get(at + 1)) {
        (Some(b'\n'), _) => at + 1,
        (Some(b'\r'), Some(b'\n')) => at + 2,
        _ => return None,
    };
    (len <= max_line).then_some((
        Event {
            seq: seq as Seq,
            kind,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{EventLine, Line, LineSplitter, ParseError, parse_event, strip_terminator};
    use super::*;

    /// What the general path makes of the first line of `bytes`: the frame
    /// length and the parse, when a complete frame is there.
    fn general(bytes: &[u8], max_line: usize) -> Option<(Option<Event>, usize)> {
        match LineSplitter::new(max_line).next_line(bytes)? {
            Line::Frame { start, end } => {
                let parsed = parse_event(strip_terminator(&bytes[start..end]));
                Some((parsed.ok(), end))
            }
            Line::Overlong => None,
        }
    }

    #[test]
    fn plain_lines_take_the_fast_path() {
        let table: &[(&[u8], EventKind, usize)] = &[
            (
                b"666|F|60|50\r\nrest",
                EventKind::Follow { from: 60, to: 50 },
                13,
            ),
            (b"666|U|12|9\n", EventKind::Unfollow { from: 12, to: 9 }, 11),
            (b"666|B\n1|B\n", EventKind::Broadcast, 6),
            (
                b"666|P|32|56\r\n",
                EventKind::Private { from: 32, to: 56 },
                13,
            ),
            (b"666|S|32\n", EventKind::Status { from: 32 }, 9),
        ];
        for &(bytes, kind, len) in table {
            let expected = Event { seq: 666, kind };
            assert_eq!(scan_event(bytes, 1024), Some((expected, len)), "{bytes:?}");
            assert_eq!(general(bytes, 1024), Some((Some(expected), len)));
        }
        let longest = b"9999999999999999999|P|9999999999999999999|18446744073709551615\n";
        assert_eq!(scan_event(longest, 1024), None, "20 digits: general path");
        let nineteen = b"9999999999999999999|S|1000000000000000000\n";
        assert!(scan_event(nineteen, 1024).is_some());
    }

    #[test]
    fn anything_unusual_is_left_to_the_general_path() {
        for bytes in [
            &b"1|B"[..],                 // no terminator yet
            b"1|B\r",                    // CR, no LF yet
            b"1|B\r\r\n",                // CR inside the line
            b"0|B\n",                    // seq 0
            b"1|X|1\n",                  // unknown kind
            b"1|B|2\n",                  // too many fields
            b"1|S\n",                    // too few
            b"1|F|2\n",                  // too few
            b"1|P|2|3|4\n",              // too many
            b"1|S|\n",                   // empty number
            b"1|S|+2\n",                 // sign
            b" 1|B\n",                   // space
            b"|B\n",                     // no seq
            b"1||B\n",                   // empty kind
            b"00000000000000000001|B\n", // 20 digits, valid for the strict path
            b"",
        ] {
            assert_eq!(scan_event(bytes, 1024), None, "{:?}", bytes.escape_ascii());
        }
    }

    #[test]
    fn a_word_of_digits_is_read_at_once() {
        let word = |bytes: &[u8; 8]| u64::from_le_bytes(*bytes);
        assert_eq!(digit_run(word(b"12345678")), 8);
        assert_eq!(digit_run(word(b"1234|F|1")), 4);
        assert_eq!(digit_run(word(b"|1234567")), 0);
        assert_eq!(digit_run(word(b"9:/09\xff00")), 1);
        assert_eq!(digit_run(word(b"0\xfa9\xff\xfe\xfd\xfc\xfb")), 1);
        assert_eq!(word_value(word(b"12345678"), 8), 12_345_678);
        assert_eq!(word_value(word(b"1234|F|1"), 4), 1234);
        assert_eq!(word_value(word(b"7\r\n00000"), 1), 7);
        assert_eq!(word_value(word(b"00000009"), 8), 9);
    }

    #[test]
    fn a_line_over_the_limit_is_left_to_the_general_path() {
        assert_eq!(scan_event(b"1|S|22\n", 6), None);
        assert!(scan_event(b"1|S|22\n", 7).is_some());
        assert_eq!(scan_event(b"1|S|22\r\n", 7), None);
        assert_eq!(
            scan_event(b"1|S|22\r\n", 8).map(|(_, len)| len),
            Some(8),
            "a CRLF line of exactly the limit"
        );
    }

    /// Lines shaped like events, valid or nearly: numbers of every length
    /// (leading zeros, 19 and 20 digits, the largest ones, none), any kind
    /// byte, any number of fields, every terminator and none.
    fn event_like_line() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let number = prop_oneof![
            (0u64..2000).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (0usize..22).prop_map(|zeros| format!("{}7", "0".repeat(zeros))),
            Just("18446744073709551615".to_string()),
            Just("18446744073709551614".to_string()),
            Just("9999999999999999999".to_string()),
            Just(String::new()),
        ];
        let kind = proptest::sample::select(vec!["F", "U", "B", "P", "S", "X", ""]);
        let terminator = proptest::sample::select(vec!["\n", "\r\n", "\r\r\n", "\r", ""]);
        (
            proptest::collection::vec(number, 3),
            kind,
            0usize..3,
            terminator,
        )
            .prop_map(|(numbers, kind, arguments, terminator)| {
                let mut line = format!("{}|{kind}", numbers[0]);
                for number in &numbers[1..=arguments] {
                    line = format!("{line}|{number}");
                }
                format!("{line}{terminator}").into_bytes()
            })
    }

    /// What the splitter yields for `bytes` fed in pieces cut at `cuts`,
    /// by the one pass (`fast`) or by memchr framing and the strict parser:
    /// each frame's bytes and parse (`None` for an overlong line), then
    /// whether a line is being dropped and the bytes kept at the end.
    type Yielded = (
        Vec<Option<(Vec<u8>, Result<Event, ParseError>)>>,
        bool,
        Vec<u8>,
    );

    fn split(bytes: &[u8], cuts: &[usize], max_line: usize, fast: bool) -> Yielded {
        let mut splitter = LineSplitter::new(max_line);
        let (mut yielded, mut buf, mut fed) = (Vec::new(), Vec::new(), 0);
        for &cut in cuts.iter().chain([&bytes.len()]) {
            let cut = cut.clamp(fed, bytes.len());
            buf.extend_from_slice(&bytes[fed..cut]);
            fed = cut;
            loop {
                let line = if fast {
                    match splitter.next_event(&buf) {
                        None => break,
                        Some(EventLine::Frame { start, end, parsed }) => {
                            Some((buf[start..end].to_vec(), parsed))
                        }
                        Some(EventLine::Overlong) => None,
                    }
                } else {
                    match splitter.next_line(&buf) {
                        None => break,
                        Some(Line::Frame { start, end }) => {
                            let frame = &buf[start..end];
                            Some((frame.to_vec(), parse_event(strip_terminator(frame))))
                        }
                        Some(Line::Overlong) => None,
                    }
                };
                yielded.push(line);
            }
            let consumed = splitter.consume();
            buf.drain(..consumed);
        }
        (yielded, splitter.is_discarding(), buf)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Over event-like lines, the fast path answers what the general
        /// one answers, and answers for every valid line whose numbers have
        /// at most 19 digits.
        #[test]
        fn the_fast_path_answers_as_the_general_one(
            line in event_like_line(),
            rest in proptest::collection::vec(proptest::sample::select(b"1|\r\n".to_vec()), 0..8),
            max_line in 2usize..50,
        ) {
            let bytes = [line, rest].concat();
            let general = general(&bytes, max_line);
            let fast = scan_event(&bytes, max_line);
            if let Some((event, len)) = fast {
                proptest::prop_assert_eq!(general, Some((Some(event), len)));
            }
            if let Some((Some(_), len)) = general {
                let short_numbers = strip_terminator(&bytes[..len])
                    .split(|&byte| byte == b'|')
                    .all(|field| field.len() <= MAX_FAST_DIGITS);
                proptest::prop_assert_eq!(fast.is_some(), short_numbers);
            }
        }

        /// A stream of event-like lines read in arbitrary pieces: the one
        /// pass yields the same frames, events, errors and dropped lines as
        /// framing then parsing, and leaves the splitter in the same state
        /// (an overlong line's tail is never taken for an event).
        #[test]
        fn one_pass_and_two_passes_split_a_stream_alike(
            lines in proptest::collection::vec(event_like_line(), 0..12),
            cuts in proptest::collection::vec(0usize..300, 0..12),
            max_line in 2usize..30,
        ) {
            let bytes = lines.concat();
            let mut cuts = cuts;
            cuts.sort_unstable();
            proptest::prop_assert_eq!(
                split(&bytes, &cuts, max_line, true),
                split(&bytes, &cuts, max_line, false)
            );
        }

        /// Over lines made of the protocol's own bytes (and a few others),
        /// the fast path only ever answers what the general path answers.
        #[test]
        fn the_fast_path_agrees_with_the_general_one(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"012345678901234567890123456789||||FUBPSX\r\n\n\xff".to_vec()),
                0..60,
            ),
            max_line in 2usize..60,
        ) {
            if let Some((event, len)) = scan_event(&bytes, max_line) {
                proptest::prop_assert_eq!(general(&bytes, max_line), Some((Some(event), len)));
            }
        }

        /// Numbers read 8 bytes at a time are the numbers read one byte at
        /// a time, wherever they stop and whatever follows them.
        #[test]
        fn numbers_read_by_words_are_numbers_read_by_bytes(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"0123456789012345678901234567890123456789|\r\n/:\x00\xff\xfa".to_vec()),
                0..48,
            ),
            at in 0usize..8,
        ) {
            let by_bytes = || {
                let digits = bytes.iter().skip(at).take_while(|b| b.is_ascii_digit()).count();
                let text = std::str::from_utf8(bytes.get(at..at + digits)?).ok()?;
                (digits > 0 && digits <= MAX_FAST_DIGITS)
                    .then(|| (text.parse::<u64>().expect("19 digits fit"), at + digits))
            };
            proptest::prop_assert_eq!(number_at(&bytes, at), by_bytes());
        }

        /// Every valid line of the usual shape takes the fast path.
        #[test]
        fn valid_lines_take_the_fast_path(
            seq in 1u64..10_000_000_000_000_000_000,
            from in 0u64..10_000_000_000_000_000_000,
            to in 0u64..10_000_000_000_000_000_000,
            kind in 0usize..5,
            crlf: bool,
        ) {
            let fields = match kind {
                0 => format!("{seq}|F|{from}|{to}"),
                1 => format!("{seq}|U|{from}|{to}"),
                2 => format!("{seq}|B"),
                3 => format!("{seq}|P|{from}|{to}"),
                _ => format!("{seq}|S|{from}"),
            };
            let line = format!("{fields}{}", if crlf { "\r\n" } else { "\n" });
            let expected = parse_event(fields.as_bytes()).expect("a valid line");
            proptest::prop_assert_eq!(scan_event(line.as_bytes(), 1024), Some((expected, line.len())));
        }
    }
}
