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

#[test]
fn a_dropped_line_keeps_its_first_bytes_for_the_log() {
    let mut splitter = LineSplitter::new(8);
    // Terminated: the whole line without its terminator, if it fits.
    let buf = b"123456789|B\r\n";
    assert_eq!(split_all(&mut splitter, buf), vec![None]);
    assert_eq!(splitter.dropped().as_bytes(), b"123456789|B");
    assert_eq!(splitter.dropped().to_string(), r#""123456789|B""#);
    // Unterminated: what had arrived, marked as going on.
    let mut splitter = LineSplitter::new(8);
    assert_eq!(splitter.next_line(b"\x00\"23456789"), None);
    assert_eq!(splitter.dropped().to_string(), r#""\x00\"23456789"..."#);
    // Long: the first LineStart::MAX bytes.
    let mut splitter = LineSplitter::new(8);
    let long = [b'7'; 100];
    assert_eq!(splitter.next_line(&long), None);
    assert_eq!(splitter.dropped().as_bytes(), &long[..LineStart::MAX]);
}
