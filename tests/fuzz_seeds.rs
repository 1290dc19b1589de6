//! The fuzz targets' checks (`fuzz/check/*.rs`) run over every committed
//! seed, so the targets cannot rot while the fuzzer is not run (it needs
//! nightly flags; see fuzz/README.md).
//!
//! The named seeds of the `engine` target are written from the op lists in
//! [`engine_seeds`]: `cargo test --test fuzz_seeds -- --ignored` rewrites
//! them after a change, and a test checks that each still takes the path it
//! is there for. Other files in `fuzz/seeds/engine/` (inputs the fuzzer
//! found) are run as they are.
//!
//! Among them are the inputs that showed the core bugs this check found
//! (named after the bug, see [`fixed_bug_seeds`]): all fixed, each now a
//! regression test.

#[path = "../fuzz/check/engine.rs"]
mod engine;
#[path = "../fuzz/check/source_stream.rs"]
mod source_stream;

use std::path::PathBuf;

use engine::{Op, Outcome, Owed, check_received, encode};

/// The seed directory of a fuzz target.
fn seed_dir(target: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "fuzz", "seeds", target]
        .iter()
        .collect()
}

/// Runs `check` over every seed of `target`, with its file name; returns
/// how many there were.
fn for_each_seed(target: &str, check: impl Fn(&str, &[u8])) -> usize {
    let dir = seed_dir(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed directory") {
        let path = entry.expect("a seed").path();
        let data = std::fs::read(&path).expect("a readable seed");
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        eprintln!("{}", path.display());
        check(name, &data);
        seeds += 1;
    }
    seeds
}

#[test]
fn every_source_stream_seed_passes_the_fuzz_check() {
    let seeds = for_each_seed("source_stream", |_, data| source_stream::check(data));
    assert!(seeds >= 3, "only {seeds} source_stream seeds");
}

#[test]
fn every_engine_seed_passes_the_fuzz_check() {
    let seeds = for_each_seed("engine", |_, data| engine::check(data));
    assert!(seeds >= 5, "only {seeds} engine seeds");
}

#[test]
fn the_named_engine_seeds_match_their_ops_and_take_their_paths() {
    for (name, ops, took_its_path) in engine_seeds() {
        assert_committed("engine", name, &ops);
        let outcome = engine::run(&ops);
        assert!(took_its_path(&outcome), "{name}: {outcome:?}");
    }
    for (name, ops) in fixed_bug_seeds() {
        assert_committed("engine", name, &ops);
    }
}

/// Checks that the seed `name` of `target` is `ops` encoded.
fn assert_committed(target: &str, name: &str, ops: &[Op]) {
    let path = seed_dir(target).join(name);
    let committed = std::fs::read(&path).expect("a committed seed");
    assert!(
        committed == encode(ops),
        "{} differs from its ops: rewrite it with `cargo test --test fuzz_seeds -- --ignored`",
        path.display()
    );
}

#[test]
#[ignore = "rewrites the named seeds from their op lists; run by hand after changing them"]
fn write_the_named_engine_seeds() {
    let named = engine_seeds()
        .into_iter()
        .map(|(name, ops, _)| ("engine", name, ops));
    let bugs = fixed_bug_seeds()
        .into_iter()
        .map(|(name, ops)| ("engine", name, ops));
    for (target, name, ops) in named.chain(bugs) {
        std::fs::write(seed_dir(target).join(name), encode(&ops)).expect("a writable seed");
    }
}

/// Kind and users as [`Op::Event`]'s `what` byte: kind 0 F, 1 U, 2 B, 3 P,
/// 4 S.
fn what(kind: u8, from: u8, to: u8) -> u8 {
    kind + 5 * from + 25 * to
}

/// An event: `pick` among the block's remaining seqs, kind and users,
/// formatting (bit 0 CRLF, bits 1-2 zeros on the seq, bit 3 zeros on the
/// users, bit 7 padded to the line limit).
fn event(pick: u8, kind: u8, from: u8, to: u8, style: u8) -> Op {
    Op::Event {
        pick,
        what: what(kind, from, to),
        style,
    }
}

/// A far line: `pick` how far (see `far_seq`), kind `kind` from user 0 to
/// user 1, formatting `style` (as [`event`]'s).
fn far(pick: u8, kind: u8, style: u8) -> Op {
    Op::Far {
        pick,
        what: what(kind, 0, 1),
        style,
    }
}

/// A client of `user` whose id line (`form`, see `connect_client`) is sent
/// at once.
fn client(user: u8, form: u8) -> Op {
    Op::Connect {
        id: user + 5 * (form + 8),
    }
}

/// The index into the check's clock steps of `millis`.
fn step(millis: u64) -> Op {
    let at = engine::STEPS_MS.iter().position(|&s| s == millis);
    let at = at.expect("one of the steps");
    Op::Advance { step: at as u8 }
}

/// Clients of `(user, form)` that send their id lines at once, then a
/// settle.
fn settled(clients: &[(u8, u8)]) -> Vec<Op> {
    let connect = clients.iter().map(|&(user, form)| client(user, form));
    connect.chain([Op::Settle]).collect()
}

/// `ops`, then everything composed sent and a settle.
fn sent(ops: &[Op]) -> Vec<Op> {
    let send = [Op::Send { bytes: 0 }, Op::Settle];
    ops.iter().copied().chain(send).collect()
}

/// Client `client` reads 8 bytes, `times` times, `millis` apart.
fn reading(client: u8, millis: u64, times: usize) -> Vec<Op> {
    let eight_bytes = Op::Room {
        client,
        room: 2 + 4 * 7,
    };
    [eight_bytes, step(millis)].repeat(times)
}

/// A path predicate on a seed's outcome.
type TookItsPath = fn(&Outcome) -> bool;

/// The named engine seeds, each with the path it is there for.
fn engine_seeds() -> Vec<(&'static str, Vec<Op>, TookItsPath)> {
    use Op::*;
    vec![
        (
            // Three clients; a block of follows, unfollows and status
            // updates out of order, in every format, sent in small pieces
            // with turns between; then in-order bursts.
            "follow_status_split",
            [
                settled(&[(1, 0), (2, 1), (3, 2)]),
                vec![
                    event(3, 0, 2, 1, 0),
                    event(0, 0, 3, 1, 1),
                    event(5, 4, 1, 0, 2),
                    event(1, 3, 1, 2, 8),
                    event(0, 2, 0, 0, 0x80),
                    event(2, 1, 2, 1, 9),
                    event(0, 4, 1, 0, 0x81),
                    event(0, 0, 1, 3, 6),
                    Send { bytes: 5 },
                    Turn,
                    Send { bytes: 7 },
                    Turn,
                    Send { bytes: 3 },
                    Settle,
                ],
                sent(&[Burst { count: 20 }]),
            ]
            .concat(),
            |o| o.complete_clients == 3 && o.stats.notifications > 10,
        ),
        (
            // A hole waits 200 ms (under the hole timeout) while a second
            // source, connected while the first is open, is refused; the
            // line that fills it is split across the first source's close;
            // the next source carries on once its probation is over.
            "handover_carry_on",
            [
                settled(&[(1, 0), (2, 0)]),
                sent(&[
                    event(0, 0, 2, 1, 0),
                    event(1, 4, 1, 0, 0),
                    event(1, 2, 0, 0, 1),
                ]),
                vec![
                    Intruder { style: 3 },
                    Settle,
                    step(200),
                    event(0, 3, 2, 1, 0),
                    Send { bytes: 4 },
                    CloseSource { restart: 0 },
                ],
                sent(&[event(0, 3, 1, 2, 0), event(0, 4, 1, 0, 0)]),
                sent(&[step(101), Burst { count: 9 }]),
            ]
            .concat(),
            |o| o.stats.sources_refused == 1 && o.complete_clients == 2 && o.window_bytes_peak > 0,
        ),
        (
            // A run, then a source that starts over with seq 1 not first:
            // the graph is emptied and the seqs start again.
            "restart",
            [
                settled(&[(1, 0), (2, 3)]),
                sent(&[
                    event(0, 0, 2, 1, 0),
                    event(0, 4, 1, 0, 0),
                    event(0, 2, 0, 0, 0),
                ]),
                vec![CloseSource { restart: 1 }],
                sent(&[event(2, 4, 1, 0, 1), event(1, 0, 1, 2, 1)]),
                sent(&[event(0, 2, 0, 0, 1)]),
                sent(&[event(0, 4, 1, 0, 0), step(99)]),
            ]
            .concat(),
            |o| o.stats.runs == 1 && o.complete_clients == 2,
        ),
        (
            // A stuck reader, a slow one and a full one: the stuck one is
            // cut for its output limit; the slow one, far behind but still
            // reading, holds the source until it catches up.
            "slow_readers",
            [
                settled(&[(1, 0), (2, 0), (3, 0)]),
                vec![Room { client: 0, room: 1 }, Room { client: 1, room: 1 }],
                sent(&[event(0, 3, 0, 1, 0x80); 9]),
                sent(&[event(0, 3, 0, 2, 0x80); 8]),
                reading(1, 50, 6),
                sent(&[event(0, 2, 0, 0, 0); 8]),
                reading(1, 200, 6),
            ]
            .concat(),
            |o| o.stats.cut_output_limit == 1 && o.holding_peak == 1 && o.complete_clients == 2,
        ),
        (
            // Ids: split across sends with events between, bad, empty,
            // one byte too long, never sent (timed out), half-closed before
            // and after, a reset, and two clients of one user.
            "ids_and_lifecycle",
            [
                vec![
                    Connect { id: 1 },
                    SendId {
                        client: 0,
                        bytes: 1,
                    },
                ],
                settled(&[(2, 4), (3, 5), (4, 6)]),
                vec![Connect { id: 2 + 5 * 7 }, Connect { id: 3 + 5 }, Settle],
                vec![event(0, 2, 0, 0, 0), Send { bytes: 0 }, Turn],
                vec![SendId {
                    client: 0,
                    bytes: 0,
                }],
                sent(&[event(0, 3, 2, 1, 0)]),
                vec![
                    SendId {
                        client: 5,
                        bytes: 2,
                    },
                    HalfClose { client: 5 },
                    client(1, 3),
                    HalfClose { client: 6 },
                    client(1, 1),
                    Reset { client: 7 },
                ],
                sent(&[event(0, 2, 0, 0, 0)]),
                sent(&[step(300), Burst { count: 5 }]),
            ]
            .concat(),
            |o| o.stats.bad_ids >= 4 && o.complete_clients == 2,
        ),
        (
            // Junk of every kind between events, overlong lines, lines of
            // exactly the limit, and a source that closes in the middle of
            // a junk line.
            "junk",
            [
                settled(&[(1, 0)]),
                vec![
                    Junk { style: 0 },
                    event(1, 3, 0, 1, 0x80),
                    Junk { style: 11 },
                    Junk { style: 64 },
                    event(0, 2, 0, 0, 0x81),
                    Junk { style: 200 },
                    Junk { style: 12 },
                    Send { bytes: 9 },
                    Turn,
                    Send { bytes: 30 },
                    Turn,
                ],
                sent(&[]),
                vec![
                    Junk { style: 160 },
                    Send { bytes: 20 },
                    CloseSource { restart: 0 },
                    Junk { style: 8 },
                    Junk { style: 9 },
                ],
                sent(&[event(0, 3, 0, 1, 6), step(101)]),
            ]
            .concat(),
            |o| o.stats.malformed >= 7 && o.complete_clients == 1,
        ),
        (
            // A block of lines of the longest length sent in reverse order:
            // it waits in the window, near its byte budget, just under the
            // hole timeout; then seq 1 fills it.
            "hole_waits",
            [
                settled(&[(1, 0)]),
                sent(
                    &(1..8)
                        .rev()
                        .map(|pick| event(pick, 3, 0, 1, 0x80))
                        .collect::<Vec<_>>(),
                ),
                sent(&[step(249), event(0, 3, 0, 1, 0x80)]),
            ]
            .concat(),
            |o| o.window_bytes_peak == 7 * 32 && o.stats.skipped == 0 && o.complete_clients == 1,
        ),
        (
            // Five connections that read nothing (users 1-4, and user 1
            // again) follow user 0; its status updates, at the longest
            // length, fan out to all five, each under half its output limit
            // (so none holds the source): queued bytes pass the shared
            // budget by the last event routed.
            "budget_overshoot",
            [
                settled(&[(1, 0), (2, 0), (3, 0), (4, 0), (1, 1)]),
                (0..5).map(|client| Room { client, room: 1 }).collect(),
                (1..5).map(|from| event(0, 0, from, 0, 0)).collect(),
                sent(&[event(0, 4, 0, 0, 0x80); 8]),
            ]
            .concat(),
            |o| {
                let budget = engine::config().max_queued_bytes;
                o.queued_bytes_peak > budget && o.stats.source_pauses > 0 && o.complete_clients == 5
            },
        ),
        (
            // A far line ends a run with a hole in it: seqs 1, 4 and 2, a
            // line of seq 2^64 - 1 (not a seq: dropped), then seq 2^20 + 9,
            // which crosses the gap in one step once its hole timeout has
            // passed; the next events start a new run.
            "far_line_then_restart",
            [
                settled(&[(1, 0), (2, 0)]),
                vec![
                    event(0, 0, 2, 1, 0),
                    event(2, 4, 1, 0, 0),
                    event(0, 2, 0, 0, 0),
                    far(7, 2, 0),
                    far(2, 3, 0),
                ],
                sent(&[Settle]),
                sent(&[Burst { count: 9 }]),
            ]
            .concat(),
            |o| {
                let gap = o.stats.skipped > 1 << 20 && o.window_steps <= 4 * o.lines_sent;
                gap && o.stats.runs == 1 && o.stats.malformed == 1 && o.complete_clients == 2
            },
        ),
        (
            // Far lines at the top of the seqs: 2^64 - 3 ends the first
            // run, 2^64 - 2 (the last seq) the second, at the end: the
            // seqs given up on pass 2^64, and the count saturates.
            "far_lines_at_the_top",
            [
                settled(&[(1, 0)]),
                sent(&[Burst { count: 5 }, far(6 + 8, 3, 0x80)]),
                sent(&[Burst { count: 3 }, far(6, 2, 1)]),
            ]
            .concat(),
            |o| o.stats.skipped == u64::MAX && o.stats.runs == 1 && o.complete_clients == 1,
        ),
        (
            // Two connections send their id line without end: one after
            // the first byte of a valid one, one from its first byte (a
            // newline is sent as a digit). Both are closed, read twice the
            // id limit at most, while a client that reads gets everything.
            "id_floods",
            [
                settled(&[(2, 0)]),
                vec![
                    Connect { id: 1 },
                    SendId {
                        client: 1,
                        bytes: 1,
                    },
                    Flood {
                        client: 1,
                        byte: b'1',
                    },
                    Connect { id: 3 },
                    Flood {
                        client: 2,
                        byte: b'\n',
                    },
                ],
                sent(&[Settle, Burst { count: 9 }]),
            ]
            .concat(),
            |o| o.stats.bad_ids == 2 && o.closed_early == 2 && o.complete_clients == 1,
        ),
        (
            // Two registered clients send without end after their id (one
            // newlines, one after its chatter line): read 16 KiB a turn,
            // they keep receiving every line.
            "chatter_floods",
            [
                settled(&[(1, 0), (2, 3)]),
                vec![
                    Flood {
                        client: 0,
                        byte: b'\n',
                    },
                    Flood {
                        client: 1,
                        byte: b'x',
                    },
                ],
                sent(&[Burst { count: 20 }, Turn, Turn]),
                sent(&[Burst { count: 30 }]),
            ]
            .concat(),
            |o| o.complete_clients == 2 && o.chatter_taken > 8 * 16 * 1024,
        ),
        (
            // Six connections that never send an id come while a client
            // has sent the first byte of its id: it waited longest, so it
            // is evicted; a client that comes next evicts a lurker and
            // registers; the rest time out.
            "lurkers_evict",
            [
                vec![
                    Connect { id: 1 },
                    SendId {
                        client: 0,
                        bytes: 1,
                    },
                    Lurkers { count: 5 },
                    Settle,
                    SendId {
                        client: 0,
                        bytes: 0,
                    },
                ],
                settled(&[(2, 0)]),
                sent(&[Burst { count: 9 }, step(300)]),
            ]
            .concat(),
            |o| o.stats.clients_evicted == 4 && o.closed_early == 1 && o.complete_clients == 1,
        ),
        (
            // A source that never sends takes the port with none being fed
            // and stays through 10 s alone; the next source waits behind
            // it until it has been silent for the idle time (its seqs 1-8
            // leave no hole). Then two come after it closes: each holds the
            // port in turn, and the next source takes over from both.
            "silent_sources",
            [
                settled(&[(1, 0), (2, 0)]),
                vec![Silent, Settle, step(5000), step(5000)],
                sent(&[Burst { count: 7 }]),
                vec![
                    CloseSource { restart: 0 },
                    Silent,
                    Silent,
                    Settle,
                    step(5000),
                ],
                sent(&[Burst { count: 7 }]),
            ]
            .concat(),
            |o| {
                let idle = o.stats.sources_idle_closed;
                idle == 3 && o.stats.skipped == 0 && o.complete_clients == 2
            },
        ),
    ]
}

/// Hand-written inputs that showed a core bug (since fixed) more plainly
/// than the fuzzer's, each named after the bug; the comments say what went
/// wrong before the fix.
fn fixed_bug_seeds() -> Vec<(&'static str, Vec<Op>)> {
    use Op::*;
    vec![
        (
            // Seqs 1 and 3 are sent; 200 ms later the source closes and the
            // next one sends seq 2, well within the 250 ms hole timeout. At
            // 250 ms seq 2 is still held aside (the new source's probation
            // lasts 100 ms from its first event), the hole is given up on,
            // and seq 2 is then dropped as late: client 1 never gets it.
            "hole_filled_during_probation-in_time",
            [
                settled(&[(1, 0)]),
                sent(&[event(0, 3, 0, 1, 0), event(1, 3, 0, 1, 0)]),
                vec![step(200), CloseSource { restart: 0 }],
                sent(&[event(0, 3, 0, 1, 0)]),
                vec![step(50)],
            ]
            .concat(),
        ),
        (
            // One client that reads everything. The first source sends seqs
            // 1-8; the next one sends 9-32 (the last block as 29, 30, 25,
            // ...) and no time passes, so they are all held aside
            // (probation) when shutdown comes. Shutdown lets them into the
            // window: 9-13 fill a turn's output for the client (128 bytes),
            // 14-29 wait in the window, 30 is too far ahead and waits with
            // 25-28 behind it; then every seq below 30 is given up on, and
            // 25-28 are dropped as late.
            "shutdown_during_probation-outboxes_full",
            held_aside_then(0, &[]),
        ),
        (
            // The same stream with 14-32 at the longest length, and the
            // probation over after 100 ms: 14-29 wait in the window while
            // the outboxes are full: 448 bytes in a 256-byte window after
            // that turn.
            "window_over_budget_after_probation-outboxes_full",
            held_aside_then(0x80, &[step(100)]),
        ),
        (
            // Seqs 1-8 from a first source; the next one (on probation) sends
            // five broadcasts of the longest length, then seq 33, a window's
            // capacity beyond the next seq. When the probation ends the
            // broadcasts go straight through until the client owes a turn's
            // output (the outboxes are full) with the window empty; seq 33
            // then needed room: the floor was raised, but nothing was released
            // (the outboxes were full) and an empty window is never ready, so
            // it was pushed again, needed room again, and the engine spun for
            // ever.
            "far_line_with_outboxes_full",
            [
                settled(&[(1, 0)]),
                sent(&[Burst { count: 7 }]),
                vec![CloseSource { restart: 0 }],
                [event(0, 2, 0, 0, 0x80); 5].to_vec(),
                vec![far(0, 2, 0)],
                sent(&[step(101)]),
            ]
            .concat(),
        ),
    ]
}

/// A client of user 1; seqs 1-8 from a first source, then 9-32 from the
/// next (the last block as 29, 30, 25, ...): 9-13 at the longest length,
/// 14-32 in `style`; then `ops`, and a settle.
fn held_aside_then(style: u8, ops: &[Op]) -> Vec<Op> {
    let last_block = [4, 4, 0, 0, 0, 0, 0, 0].map(|pick| event(pick, 3, 0, 1, style));
    [
        settled(&[(1, 0)]),
        sent(&[event(0, 3, 0, 1, 0); 8]),
        vec![Op::CloseSource { restart: 0 }],
        [event(0, 3, 0, 1, 0x80); 5].to_vec(),
        [event(0, 3, 0, 1, style); 11].to_vec(),
        last_block.to_vec(),
        sent(ops),
    ]
    .concat()
}

/// Lines as the model lists them, each completed at send `i + 1`.
fn owed<'a>(lines: &[&'a [u8]]) -> Vec<Owed<'a>> {
    (1..)
        .zip(lines)
        .map(|(sent_at, &line)| Owed { sent_at, line })
        .collect()
}

#[test]
fn the_check_accepts_what_a_client_is_owed() {
    let lines = owed(&[b"1|B\n", b"2|P|1|2\r\n", b"3|B\n"]);
    check_received(b"1|B\n2|P|1|2\r\n3|B\n", &lines, Some(0));
    check_received(b"2|P|1|2\r\n3|B\n", &lines, Some(1)); // registered after 1
    // A cut client: a stretch, its last line cut short.
    check_received(b"2|P|1|2\r\n3|", &lines, None);
}

#[test]
fn the_check_refuses_what_a_client_is_not_owed() {
    let lines = owed(&[b"1|B\n", b"2|P|1|2\r\n", b"3|B\n"]);
    #[rustfmt::skip]
    let table: [(&[u8], Option<u64>, &str); 5] = [
        // (received, registered at send, still connected) → why it fails
        (b"3|B\n", Some(1), "missing owed lines"),                        // 2 was sent after its id
        (b"2|P|1|2\r\n1|B\n3|B\n", Some(0), "not the stream's last lines"), // out of order
        (b"1|B\n2|P|1|2\n3|B\n", Some(0), "not the stream's last lines"),   // not byte for byte
        (b"1|B\n2|", Some(0), "a partial line"),                           // connected: whole lines
        (b"1|B\n3|", None, "not a stretch of the stream"),                 // a gap, even when cut
    ];
    for (received, live_since, why) in table {
        let failure = std::panic::catch_unwind(|| check_received(received, &lines, live_since))
            .expect_err("the check fails");
        let message = failure
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(message.contains(why), "{message}");
    }
}
