use proptest::prelude::*;

use super::*;

/// A fixed time for tests that do not look at lag.
fn t0() -> Instant {
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *T0.get_or_init(Instant::now)
}

/// A socket stand-in: takes at most `per_call` bytes per call, gathered
/// across slices as `writev` does, and at most `room` in all before it
/// would block.
struct Socket {
    written: Vec<u8>,
    room: usize,
    per_call: usize,
}

impl Socket {
    fn new(room: usize, per_call: usize) -> Self {
        Socket {
            written: Vec::new(),
            room,
            per_call,
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut budget = self.room.min(self.per_call);
        let mut taken = 0;
        for slice in slices {
            let n = slice.len().min(budget);
            self.written.extend_from_slice(&slice[..n]);
            budget -= n;
            taken += n;
        }
        self.room -= taken;
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A broadcast frame of `len` bytes (at least 4) for seq `seq`.
fn broadcast(seq: u64, len: usize) -> Vec<u8> {
    let mut frame = format!("{seq}|B").into_bytes();
    frame.resize(len.max(4) - 1, b'x');
    frame.push(b'\n');
    frame
}

#[test]
fn partial_writes_resume_where_they_stopped() {
    let log = BroadcastLog::new();
    let mut outbox = Outbox::new(&log);
    outbox.push(b"1|P|2|3\r\n", &log, t0());
    outbox.push(b"2|P|2|3\r\n", &log, t0());
    let mut socket = Socket::new(7, 3);
    assert_eq!(outbox.write_to(&mut socket, &log).unwrap(), 7);
    assert_eq!(outbox.pending(&log), 11);
    outbox.push(b"3|P|2|3\n", &log, t0());
    socket.room = 100;
    assert_eq!(outbox.write_to(&mut socket, &log).unwrap(), 19);
    assert_eq!(socket.written, b"1|P|2|3\r\n2|P|2|3\r\n3|P|2|3\n");
    assert_eq!(outbox.pending(&log), 0);
}

#[test]
fn broadcasts_and_own_frames_leave_in_the_order_they_came() {
    let mut log = BroadcastLog::new();
    let mut outbox = Outbox::new(&log);
    let long = broadcast(3, 1000);
    log.push(b"1|B\n", t0());
    outbox.push(b"2|P|1|2\n", &log, t0());
    log.push(&long, t0());
    outbox.push(b"4|P|1|2\n", &log, t0());
    log.push(b"5|B\n", t0());
    let mut socket = Socket::new(usize::MAX, 100);
    let expected = [&b"1|B\n2|P|1|2\n"[..], &long, b"4|P|1|2\n5|B\n"].concat();
    assert_eq!(outbox.pending(&log), expected.len());
    assert_eq!(outbox.write_to(&mut socket, &log).unwrap(), expected.len());
    assert_eq!(socket.written, expected);
}

#[test]
fn a_new_outbox_is_owed_only_later_broadcasts() {
    let mut log = BroadcastLog::new();
    log.push(b"1|B\n", t0());
    let mut outbox = Outbox::new(&log);
    assert_eq!(outbox.pending(&log), 0);
    log.push(b"2|B\n", t0());
    let mut socket = Socket::new(usize::MAX, usize::MAX);
    outbox.write_to(&mut socket, &log).unwrap();
    assert_eq!(socket.written, b"2|B\n");
}

#[test]
fn short_log_ranges_are_copied_and_long_ones_shared() {
    let mut log = BroadcastLog::new();
    let mut outbox = Outbox::new(&log);
    log.push(b"1|B\n", t0());
    outbox.take_in(&log);
    assert_eq!(outbox.log_needed(), log.end(), "copied: the log is free");
    assert_eq!(outbox.own_bytes(), 4);
    let start = log.end();
    log.push(&broadcast(2, COPY_BELOW), t0());
    outbox.take_in(&log);
    assert_eq!(outbox.log_needed(), start, "shared: the log must keep it");
    assert_eq!(outbox.own_bytes(), 4, "nothing more copied");
    assert_eq!(outbox.pending(&log), 4 + COPY_BELOW);
}

#[test]
fn the_log_keeps_what_an_outbox_still_needs_and_no_more() {
    let mut log = BroadcastLog::new();
    let mut slow = Outbox::new(&log);
    let mut fast = Outbox::new(&log);
    let frames: Vec<Vec<u8>> = (1..=4).map(|seq| broadcast(seq, 1000)).collect();
    for frame in &frames {
        log.push(frame, t0());
    }
    let mut socket = Socket::new(usize::MAX, usize::MAX);
    fast.write_to(&mut socket, &log).unwrap();
    let mut blocked = Socket::new(2500, usize::MAX);
    slow.write_to(&mut blocked, &log).unwrap();
    let needed = slow.log_needed().min(fast.log_needed());
    assert_eq!(needed, 2500);
    log.release_before(needed);
    assert_eq!(log.len(), 1500, "half or more was dead: released");
    blocked.room = usize::MAX;
    slow.write_to(&mut blocked, &log).unwrap();
    assert_eq!(blocked.written, frames.concat());
    log.release_before(slow.log_needed().min(fast.log_needed()));
    assert!(log.is_empty());
}

#[test]
fn an_idle_outbox_gives_back_a_burst_but_keeps_a_steady_batch() {
    let log = BroadcastLog::new();
    let mut outbox = Outbox::new(&log);
    let mut socket = Socket::new(usize::MAX, usize::MAX);
    outbox.push(&[b'x'; 100_000], &log, t0());
    let written = outbox.write_to(&mut socket, &log).unwrap();
    outbox.shrink_if_idle(1024, written);
    assert!(
        outbox.own.capacity() >= 100_000,
        "a steady batch keeps its buffer"
    );
    outbox.push(b"1|P|2|3\n", &log, t0());
    let written = outbox.write_to(&mut socket, &log).unwrap();
    outbox.shrink_if_idle(1024, written);
    assert!(
        outbox.own.capacity() <= 1024,
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
    let log = BroadcastLog::new();
    let mut outbox = Outbox::new(&log);
    outbox.push(b"1|P|2|3\n", &log, t0());
    assert!(outbox.write_to(&mut Reset, &log).is_err());
}

/// One step of a client's life.
#[derive(Debug, Clone)]
enum Step {
    /// A broadcast of this many bytes.
    Broadcast(usize),
    /// A frame of its own of this many bytes.
    Own(usize),
    /// The socket takes up to `.0` bytes, at most `.1` per call.
    Write(usize, usize),
    /// The log lets go of what nobody needs.
    Release,
    /// Time passes: this many milliseconds.
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (4usize..600).prop_map(Step::Broadcast),
        (4usize..40).prop_map(Step::Own),
        (0usize..3000, 1usize..2000).prop_map(|(room, per_call)| Step::Write(room, per_call)),
        Just(Step::Release),
        (0u64..250).prop_map(Step::Advance),
    ]
}

proptest! {
    /// Whatever the mix of broadcasts, own frames, partial writes,
    /// releases and time passing, the client receives exactly the frames
    /// it is owed, in order; `pending` is what it has yet to receive;
    /// and the oldest byte it owes reads as routed no later than it was,
    /// and less than two resolutions earlier.
    #[test]
    fn a_client_receives_exactly_its_frames_in_order(
        steps in proptest::collection::vec(step(), 1..200)
    ) {
        let mut now = t0();
        let mut log = BroadcastLog::new();
        let mut outbox = Outbox::new(&log);
        let mut expected = Vec::new();
        // Where each expected frame starts, and when it was routed.
        let mut routed: Vec<(usize, Instant)> = Vec::new();
        let mut socket = Socket::new(0, 1);
        for (seq, step) in steps.into_iter().enumerate() {
            match step {
                Step::Broadcast(len) => {
                    let frame = broadcast(seq as u64, len);
                    log.push(&frame, now);
                    routed.push((expected.len(), now));
                    expected.extend_from_slice(&frame);
                }
                Step::Own(len) => {
                    let mut frame = format!("{seq}|P|1|2").into_bytes();
                    frame.resize(len.max(frame.len() + 1) - 1, b'y');
                    frame.push(b'\n');
                    outbox.push(&frame, &log, now);
                    routed.push((expected.len(), now));
                    expected.extend_from_slice(&frame);
                }
                Step::Write(room, per_call) => {
                    socket.room = room;
                    socket.per_call = per_call;
                    outbox.write_to(&mut socket, &log).unwrap();
                }
                Step::Release => log.release_before(outbox.log_needed()),
                Step::Advance(millis) => now += std::time::Duration::from_millis(millis),
            }
            prop_assert_eq!(
                outbox.pending(&log),
                expected.len() - socket.written.len()
            );
            prop_assert_eq!(&socket.written[..], &expected[..socket.written.len()]);
            let oldest = socket.written.len();
            let truth = routed
                .iter()
                .take_while(|&&(start, _)| start <= oldest)
                .last()
                .filter(|_| oldest < expected.len())
                .map(|&(_, at)| at);
            let read = outbox.oldest_owed_at(&log);
            prop_assert_eq!(read.is_some(), truth.is_some());
            if let (Some(read), Some(truth)) = (read, truth) {
                prop_assert!(read <= truth, "read {:?} after the truth", read - t0());
                prop_assert!(
                    truth - read < 2 * crate::engine::timeline::RESOLUTION,
                    "read {:?}, truth {:?}", read - t0(), truth - t0()
                );
            }
        }
        socket.room = usize::MAX;
        outbox.write_to(&mut socket, &log).unwrap();
        prop_assert_eq!(socket.written, expected);
        log.release_before(outbox.log_needed());
        prop_assert!(log.is_empty(), "nothing needed is left");
    }
}
