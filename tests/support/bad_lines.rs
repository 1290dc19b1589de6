//! Lines an event source may send that are not events, for the core's test
//! of the parsing rules (`tests/engine/sources.rs`) and the real-socket
//! smoke test of the same (`tests/hostile.rs`).

/// Every kind of bad line, without terminator: bad syntax, binary bytes,
/// invalid UTF-8, and a line of 1 MiB (far past any line limit).
pub fn bad_source_lines() -> Vec<Vec<u8>> {
    let mut bad: Vec<Vec<u8>> = [
        "",
        "abc",
        "this is not an event",
        "1|X|2|3",
        "2|Q|1|3",
        "1|F|2",
        "1|B|3",
        "0|B",
        "-1|B",
        "99999999999999999999|B",
        "1|F|2|3|4",
        " 1|B",
        "1 |B",
        "1|P| 2|3",
    ]
    .iter()
    .map(|line| line.as_bytes().to_vec())
    .collect();
    bad.push(b"1|B\x00".to_vec());
    bad.push(b"\xff\xfe|B".to_vec());
    bad.push(b"1|P|\xc3\x28|2".to_vec());
    bad.push(vec![b'7'; 1 << 20]); // 1 MiB, terminated only at its end
    bad
}

/// Each of `bad` after a good line for user 1, and a last good line, all
/// with CRLF: returns what the source sends and what user 1 must receive.
pub fn between_good_lines(bad: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (i, line) in bad.iter().enumerate() {
        let good = format!("{}|P|0|1\r\n", i + 1);
        stream.extend_from_slice(good.as_bytes());
        expected.extend_from_slice(good.as_bytes());
        stream.extend_from_slice(line);
        stream.extend_from_slice(b"\r\n");
    }
    let last = format!("{}|P|0|1\r\n", bad.len() + 1);
    stream.extend_from_slice(last.as_bytes());
    expected.extend_from_slice(last.as_bytes());
    (stream, expected)
}
