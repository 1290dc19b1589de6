//! The simulator's event stream is what the server's parser reads.
//!
//! The simulator does not depend on the server, so its own tests read the
//! generator's stream with its own reader (`line::read_event`). Here the
//! server's parser reads the same stream, with holes, garbage and both line
//! endings, and must agree with that reader on every line: the same seq,
//! kind and ids for every event, and a refusal for every garbage line.

use follower_maze::engine::protocol::{EventKind, parse_event, strip_terminator};
use follower_maze_sim::generator::GARBAGE;
use follower_maze_sim::line::{EventLine, read_event};
use follower_maze_sim::{CountingSink, Generator, GeneratorConfig, Kind, LineEnding};

/// Events in each stream, holes included.
const EVENTS: u64 = 20_000;

/// A whole stream with holes and garbage lines ending in `ending`, and its
/// holes.
fn stream(ending: LineEnding) -> (Vec<u8>, Vec<u64>) {
    let config = GeneratorConfig {
        total_events: EVENTS,
        users: 50,
        ending,
        holes: 7,
        malformed: 40,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(&config, &[1, 2, 3]);
    let holes = generator.holes().to_vec();
    let mut out = Vec::new();
    while generator
        .next_batch(&mut out, &mut CountingSink::default())
        .is_some()
    {}
    (out, holes)
}

/// The server's reading of an event in the simulator's terms.
fn as_event_line(seq: u64, kind: EventKind) -> EventLine {
    let (kind, from, to) = match kind {
        EventKind::Broadcast => (Kind::Broadcast, 0, 0),
        EventKind::Follow { from, to } => (Kind::Follow, from, to),
        EventKind::Unfollow { from, to } => (Kind::Unfollow, from, to),
        EventKind::Private { from, to } => (Kind::Private, from, to),
        EventKind::Status { from } => (Kind::Status, from, 0),
    };
    EventLine {
        seq,
        kind,
        from,
        to,
    }
}

#[test]
fn the_server_reads_every_line_as_the_simulator_does() {
    for ending in [LineEnding::Crlf, LineEnding::Lf] {
        let (out, holes) = stream(ending);
        let mut seqs = Vec::new();
        let mut garbage = 0;
        for line in out.split_inclusive(|&byte| byte == b'\n') {
            assert!(line.ends_with(ending.bytes()), "{}", line.escape_ascii());
            let ours = read_event(line);
            match parse_event(strip_terminator(line)) {
                Ok(event) => {
                    let theirs = as_event_line(event.seq, event.kind);
                    assert_eq!(ours, Some(theirs), "{}", line.escape_ascii());
                    seqs.push(event.seq);
                }
                Err(_) => {
                    assert_eq!(ours, None, "{}", line.escape_ascii());
                    garbage += 1;
                }
            }
        }
        assert_eq!(garbage, 40, "exactly the garbage lines are refused");
        seqs.sort_unstable();
        let wanted: Vec<u64> = (1..=EVENTS).filter(|seq| !holes.contains(seq)).collect();
        assert_eq!(seqs, wanted, "every seq but the holes, once");
    }
}

#[test]
fn the_server_refuses_every_garbage_line() {
    for line in GARBAGE {
        assert!(parse_event(line).is_err(), "{}", line.escape_ascii());
    }
}
