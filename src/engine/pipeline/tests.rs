use super::*;

/// Connection keys used in these tests: user N is on connection N.
fn pipeline_with_users(users: &[UserId]) -> Pipeline {
    let mut pipeline = Pipeline::new(
        64,
        1 << 20,
        Duration::from_secs(1),
        Duration::from_secs(10),
        Instant::now(),
    );
    for &user in users {
        pipeline.register(user, user as ConnKey);
    }
    pipeline
}

/// Feeds `frames` and returns the deliveries as (conn, text).
fn feed(pipeline: &mut Pipeline, frames: &[&str], now: Instant) -> Vec<(ConnKey, String)> {
    let mut out = Vec::new();
    for frame in frames {
        let _ = pipeline.on_frame(frame.as_bytes(), now, &mut |conn, f: &[u8]| {
            out.push((conn, String::from_utf8(f.to_vec()).unwrap()))
        });
    }
    out
}

#[test]
fn shuffled_events_are_delivered_in_order_with_exact_bytes() {
    let mut pipeline = pipeline_with_users(&[1, 2]);
    let now = Instant::now();
    let out = feed(
        &mut pipeline,
        &["3|S|2\n", "1|F|1|2\r\n", "4|B\r\n", "2|P|2|1\n"],
        now,
    );
    assert_eq!(
        out[..3],
        [
            (2, "1|F|1|2\r\n".to_string()),
            (1, "2|P|2|1\n".to_string()),
            (1, "3|S|2\n".to_string()),
        ]
    );
    assert!(out[3..].iter().all(|(_, frame)| frame == "4|B\r\n"));
    let mut broadcast: Vec<ConnKey> = out[3..].iter().map(|(c, _)| *c).collect();
    broadcast.sort_unstable();
    assert_eq!(broadcast, vec![1, 2]);
    assert_eq!(pipeline.counters().events_routed, 4);
    assert_eq!(pipeline.counters().notifications, 5);
}

#[test]
fn a_malformed_line_is_counted_and_skipped() {
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    let mut out = Vec::new();
    let mut sink = |conn, _: &[u8]| out.push(conn);
    assert_eq!(
        pipeline.on_frame(b"1|X|1\n", now, &mut sink),
        Err(ParseError::UnknownKind)
    );
    assert_eq!(pipeline.on_frame(b"1|P|2|1\n", now, &mut sink), Ok(()));
    assert_eq!(out, vec![1]);
    assert_eq!(pipeline.counters().malformed, 1);
}

#[test]
fn a_hole_is_skipped_only_after_the_timeout() {
    let mut pipeline = pipeline_with_users(&[1]);
    let start = Instant::now();
    assert!(feed(&mut pipeline, &["2|P|0|1\n", "3|P|0|1\n"], start).is_empty());
    assert_eq!(pipeline.deadline(), Some(start + Duration::from_secs(1)));
    let mut out = Vec::new();
    let mut sink = |conn, _: &[u8]| out.push(conn);
    pipeline.on_timer(start + Duration::from_millis(999), &mut sink);
    assert!(out.is_empty());
    pipeline.on_timer(start + Duration::from_secs(1), &mut |conn, _: &[u8]| {
        out.push(conn)
    });
    assert_eq!(out, vec![1, 1]);
    assert_eq!(pipeline.counters().window.skipped, 1);
    assert_eq!(pipeline.deadline(), None);
}

#[test]
fn progress_restarts_the_hole_timer() {
    let mut pipeline = pipeline_with_users(&[1]);
    let start = Instant::now();
    feed(&mut pipeline, &["2|B\n", "4|B\n"], start);
    let later = start + Duration::from_millis(500);
    assert_eq!(feed(&mut pipeline, &["1|B\n"], later).len(), 2);
    assert_eq!(pipeline.deadline(), Some(later + Duration::from_secs(1)));
}

/// A sink that takes `room` deliveries, then says it is full.
struct Limited {
    room: usize,
    got: Vec<String>,
}

impl Deliver for Limited {
    fn deliver(&mut self, _: ConnKey, frame: &[u8]) {
        self.room -= 1;
        self.got.push(String::from_utf8(frame.to_vec()).unwrap());
    }
    fn is_full(&self) -> bool {
        self.room == 0
    }
}

#[test]
fn filling_a_hole_releases_only_as_much_as_the_receiver_takes() {
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    let held: Vec<String> = (2..=50).map(|seq| format!("{seq}|P|0|1\n")).collect();
    let held: Vec<&str> = held.iter().map(String::as_str).collect();
    assert!(feed(&mut pipeline, &held, now).is_empty());
    let mut sink = Limited {
        room: 10,
        got: Vec::new(),
    };
    pipeline.on_frame(b"1|P|0|1\n", now, &mut sink).unwrap();
    assert_eq!(sink.got.len(), 10, "stops when the receiver is full");
    assert!(pipeline.has_ready());
    assert_eq!(pipeline.deadline(), None, "ready frames are not a hole");
    sink.room = 100;
    pipeline.release_ready(now, &mut sink);
    let expected: Vec<String> = (1..=50).map(|seq| format!("{seq}|P|0|1\n")).collect();
    assert_eq!(sink.got, expected);
    assert!(!pipeline.has_ready());
}

#[test]
fn a_source_that_starts_over_starts_a_new_run() {
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    feed(&mut pipeline, &["1|F|1|9\n", "2|B\n"], now);
    pipeline.source_connected(now);
    // A second run: seq 1 again, and the old follow of 9 is gone.
    let out = feed(&mut pipeline, &["1|S|9\n", "2|P|0|1\n"], now);
    assert_eq!(out, vec![(1, "2|P|0|1\n".to_string())]);
    assert_eq!(pipeline.counters().runs, 1);
    assert_eq!(pipeline.counters().window.late, 0);
}

#[test]
fn a_reconnecting_source_that_resends_recent_events_carries_on() {
    // Resent 3 is late, not a sign of a new run; the graph survives.
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    feed(&mut pipeline, &["1|F|1|2\n", "2|B\n", "3|B\n"], now);
    pipeline.source_connected(now);
    assert!(feed(&mut pipeline, &["3|B\n", "4|S|2\n", "5|B\n"], now).is_empty());
    let mut out = Vec::new();
    pipeline.on_timer(now + PROBATION_TIME, &mut |conn, f: &[u8]| {
        out.push((conn, String::from_utf8(f.to_vec()).unwrap()))
    });
    assert_eq!(
        out,
        vec![(1, "4|S|2\n".to_string()), (1, "5|B\n".to_string())]
    );
    assert_eq!(pipeline.counters().runs, 0);
    assert_eq!(pipeline.counters().window.late, 1);
}

/// An old run whose 1 is in order but waits for room in a full receiver,
/// and whose 3 is stuck behind 2; then a new source starts over with
/// `1|P|0|1`.
fn new_run_behind_a_full_receiver(now: Instant) -> (Pipeline, Limited) {
    let mut pipeline = pipeline_with_users(&[1]);
    let mut sink = Limited {
        room: 0,
        got: Vec::new(),
    };
    for frame in [&b"1|B\n"[..], b"3|B\n"] {
        pipeline.on_frame(frame, now, &mut sink).unwrap();
    }
    pipeline.source_connected(now);
    pipeline.on_frame(b"1|P|0|1\n", now, &mut sink).unwrap();
    (pipeline, sink)
}

#[test]
fn a_new_run_waits_for_the_old_runs_ready_frames_then_drops_only_stuck_ones() {
    let now = Instant::now();
    let (mut pipeline, mut sink) = new_run_behind_a_full_receiver(now);
    assert!(pipeline.is_blocked(), "the new run waits for the old 1");
    assert_eq!(pipeline.counters().runs, 0);
    sink.room = 100;
    pipeline.release_ready(now, &mut sink);
    assert_eq!(sink.got, ["1|B\n", "1|P|0|1\n"]);
    assert_eq!(pipeline.counters().runs, 1);
    assert_eq!(pipeline.counters().window.skipped, 1, "the stuck 3");
    assert!(!pipeline.is_blocked());
}

#[test]
fn shutdown_during_a_new_run_delivers_the_old_runs_stuck_frames() {
    let now = Instant::now();
    let (mut pipeline, mut sink) = new_run_behind_a_full_receiver(now);
    // The server shuts down before the receiver has room: the old run ends
    // for good, so its hole is given up and 3 delivered.
    pipeline.source_disconnected(now, &mut sink);
    pipeline.end_of_stream();
    sink.room = 100;
    pipeline.release_ready(now, &mut sink);
    assert_eq!(sink.got, ["1|B\n", "3|B\n", "1|P|0|1\n"]);
    assert_eq!(pipeline.counters().runs, 1);
    assert_eq!(pipeline.counters().window.skipped, 1, "the missing 2");
    assert!(!pipeline.has_ready());
}

#[test]
fn nothing_is_routed_past_a_full_receiver_even_in_order() {
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    let mut sink = Limited {
        room: 0,
        got: Vec::new(),
    };
    pipeline.on_frame(b"1|P|0|1\n", now, &mut sink).unwrap();
    assert!(sink.got.is_empty());
    assert!(pipeline.has_ready());
    sink.room = 1;
    pipeline.release_ready(now, &mut sink);
    assert_eq!(sink.got, ["1|P|0|1\n"]);
}

#[test]
fn a_source_that_carries_on_keeps_the_run_after_a_short_wait() {
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    feed(&mut pipeline, &["1|F|1|9\n"], now);
    pipeline.source_connected(now);
    assert!(feed(&mut pipeline, &["3|P|0|1\n", "2|S|9\n"], now).is_empty());
    assert_eq!(pipeline.deadline(), Some(now + PROBATION_TIME));
    let mut out = Vec::new();
    pipeline.on_timer(now + PROBATION_TIME, &mut |conn, f: &[u8]| {
        out.push((conn, String::from_utf8(f.to_vec()).unwrap()))
    });
    assert_eq!(
        out,
        vec![(1, "2|S|9\n".to_string()), (1, "3|P|0|1\n".to_string())]
    );
    assert_eq!(pipeline.counters().runs, 0);
}

#[test]
fn a_new_run_whose_first_line_is_above_the_old_next_seq_is_still_caught() {
    // After a run of 2, the new run's first (shuffled) lines are 5 and 3.
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    feed(&mut pipeline, &["1|B\n", "2|B\n"], now);
    pipeline.source_connected(now);
    let out = feed(
        &mut pipeline,
        &[
            "5|P|0|1\n",
            "3|P|0|1\n",
            "1|P|0|1\n",
            "2|P|0|1\n",
            "4|P|0|1\n",
        ],
        now,
    );
    let seqs: Vec<String> = out.into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        seqs,
        [
            "1|P|0|1\n",
            "2|P|0|1\n",
            "3|P|0|1\n",
            "4|P|0|1\n",
            "5|P|0|1\n"
        ]
    );
    assert_eq!(pipeline.counters().runs, 1);
    assert_eq!(pipeline.counters().window.late, 0);
}

#[test]
fn a_source_leaving_during_probation_has_its_events_delivered() {
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    feed(&mut pipeline, &["1|B\n"], now);
    pipeline.source_connected(now);
    assert!(feed(&mut pipeline, &["2|P|0|1\n"], now).is_empty());
    let mut out = Vec::new();
    pipeline.source_disconnected(now, &mut |conn, _: &[u8]| out.push(conn));
    assert_eq!(out, vec![1]);
}

#[test]
fn the_first_source_ever_needs_no_probation() {
    let mut pipeline = pipeline_with_users(&[1]);
    let now = Instant::now();
    pipeline.source_connected(now);
    assert_eq!(feed(&mut pipeline, &["1|P|0|1\n"], now).len(), 1);
}

#[test]
fn after_the_last_seq_a_small_one_is_late_and_holds_nothing_up() {
    let mut pipeline = pipeline_with_users(&[1]);
    let start = Instant::now();
    let mut sink = |_conn, _: &[u8]| {};
    feed(&mut pipeline, &["18446744073709551614|P|0|1\n"], start);
    // Every seq before it is given up on after the hole timeout.
    let later = start + Duration::from_secs(2);
    pipeline.on_timer(later, &mut sink);
    assert_eq!(pipeline.next_seq(), u64::MAX);
    assert!(feed(&mut pipeline, &["5|P|0|1\n"], later).is_empty());
    assert_eq!(pipeline.counters().window.late, 1);
    assert_eq!(pipeline.window_depth(), (0, 0));
    assert_eq!(pipeline.deadline(), None, "no hole to wait for");
}
