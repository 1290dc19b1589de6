use super::*;

/// Pops every frame available now, as (seq, text) pairs.
type Window = ReorderWindow<()>;

fn drain(window: &mut Window) -> Vec<(Seq, String)> {
    let mut out = Vec::new();
    while let Some((seq, (), frame)) = window.pop() {
        out.push((seq, String::from_utf8(frame.to_vec()).unwrap()));
    }
    out
}

/// Pushes like a server does: on `NeedsRoom`, drain and push again.
fn push_and_drain(window: &mut Window, seq: Seq, frame: &str) -> Vec<(Seq, String)> {
    let mut released = Vec::new();
    loop {
        match window.push(seq, (), frame.as_bytes()) {
            Push::NeedsRoom => released.extend(drain(window)),
            _ => {
                released.extend(drain(window));
                return released;
            }
        }
    }
}

fn line(seq: Seq) -> String {
    format!("{seq}|B\n")
}

#[test]
fn releases_in_order_whatever_the_arrival_order() {
    let mut window = Window::new(16, 1 << 20);
    let mut released = Vec::new();
    for seq in [3, 1, 2, 6, 5, 4] {
        released.extend(push_and_drain(&mut window, seq, &line(seq)));
    }
    let seqs: Vec<Seq> = released.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(released[3].1, "4|B\n");
    assert_eq!(window.held(), 0);
    assert_eq!(window.held_bytes(), 0);
}

#[test]
fn bypass_takes_only_the_next_seq_with_nothing_held() {
    let mut window = Window::new(16, 1 << 20);
    assert!(window.bypass(1));
    assert!(!window.bypass(3));
    assert_eq!(window.push(3, (), b"3|B\n"), Push::Held);
    assert!(
        !window.bypass(2),
        "3 is held, so 2 must go through the window"
    );
    assert_eq!(window.push(2, (), b"2|B\n"), Push::Held);
    let seqs: Vec<Seq> = drain(&mut window).iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(window.push(1, (), b"1|B\n"), Push::Late);
}

#[test]
fn late_and_duplicate_frames_are_dropped_and_counted() {
    let mut window = Window::new(16, 1 << 20);
    assert_eq!(window.push(1, (), b"1|B\n"), Push::Held);
    assert_eq!(drain(&mut window).len(), 1);
    assert_eq!(window.push(1, (), b"1|B\n"), Push::Late);
    assert_eq!(window.push(3, (), b"3|B\n"), Push::Held);
    assert_eq!(window.push(3, (), b"3|B\n"), Push::Duplicate);
    let counters = window.counters();
    assert_eq!(
        (counters.skipped, counters.late, counters.duplicates),
        (0, 1, 1)
    );
}

#[test]
fn a_hole_waits_until_skipped_then_the_run_after_it_flows() {
    let mut window = Window::new(16, 1 << 20);
    assert!(push_and_drain(&mut window, 1, "1|B\n").len() == 1);
    for seq in [4, 5, 7] {
        assert!(push_and_drain(&mut window, seq, &line(seq)).is_empty());
    }
    assert!(window.is_waiting());
    window.skip_hole();
    let seqs: Vec<Seq> = drain(&mut window).iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![4, 5], "only the first hole (2, 3) is skipped");
    assert_eq!(window.counters().skipped, 2);
    window.skip_hole();
    assert_eq!(drain(&mut window)[0].0, 7);
    assert_eq!(window.counters().skipped, 3);
    assert!(!window.is_waiting());
    // The skipped seq, arriving now, is late.
    assert_eq!(window.push(2, (), b"2|B\n"), Push::Late);
}

#[test]
fn skipping_with_nothing_held_does_nothing() {
    let mut window = Window::new(16, 1 << 20);
    window.skip_hole();
    assert_eq!(window.next_seq(), 1);
    assert_eq!(window.counters().skipped, 0);
}

#[test]
fn a_frame_too_far_ahead_pushes_the_window_forward() {
    let mut window = Window::new(8, 1 << 20);
    assert!(push_and_drain(&mut window, 3, "3|B\n").is_empty());
    // 20 needs seqs 13..=20 in the ring: 3 is released, 1, 2 and 4..=12
    // are skipped.
    let released = push_and_drain(&mut window, 20, "20|B\n");
    assert_eq!(released, vec![(3, "3|B\n".to_string())]);
    assert_eq!(window.next_seq(), 13);
    assert_eq!(window.counters().skipped, 11);
    assert_eq!(window.held(), 1);
}

#[test]
fn a_seq_near_u64_max_does_not_overflow_or_scan_forever() {
    let mut window = Window::new(8, 1 << 20);
    push_and_drain(&mut window, 2, "2|B\n");
    // The largest seq the parser accepts is u64::MAX - 1.
    let last = u64::MAX - 1;
    let released = push_and_drain(&mut window, last, "x\n");
    assert_eq!(released, vec![(2, "2|B\n".to_string())]);
    assert_eq!(window.next_seq(), last - 7);
    window.release_all();
    assert_eq!(drain(&mut window), vec![(last, "x\n".to_string())]);
    assert_eq!(window.next_seq(), u64::MAX);
}

#[test]
fn the_byte_budget_skips_the_oldest_hole() {
    // Room for two 4-byte frames.
    let mut window = Window::new(64, 8);
    for seq in [3, 4] {
        assert!(push_and_drain(&mut window, seq, &line(seq)).is_empty());
    }
    let released = push_and_drain(&mut window, 6, &line(6));
    let seqs: Vec<Seq> = released.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![3, 4]);
    assert_eq!(window.counters().skipped, 2);
    assert_eq!(window.held(), 1);
    assert!(window.held_bytes() <= 8);
}

#[test]
fn at_the_byte_budget_the_frame_filling_the_hole_is_kept() {
    let mut window = Window::new(64, 8);
    for seq in [3, 4] {
        push_and_drain(&mut window, seq, &line(seq));
    }
    // 2 lies in the hole (1, 2): only 1 is given up on.
    let released = push_and_drain(&mut window, 2, &line(2));
    let seqs: Vec<Seq> = released.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    assert_eq!(window.counters().skipped, 1);
    assert_eq!(window.counters().late, 0);
}

/// A frame too long for a near cell.
fn long_line(seq: Seq) -> String {
    format!("{seq}|B|{}\n", "-".repeat(INLINE_BYTES))
}

#[test]
fn a_buffer_that_held_a_huge_frame_gives_its_memory_back() {
    let mut window = Window::new(64, 1 << 20);
    push_and_drain(&mut window, 2, &"x".repeat(100_000));
    push_and_drain(&mut window, 1, &long_line(1));
    push_and_drain(&mut window, 4, &long_line(4));
    assert!(
        window
            .pool
            .iter()
            .all(|(_, buffer)| buffer.capacity() < 1000)
    );
}

#[test]
fn release_all_delivers_what_is_held_and_counts_only_the_holes() {
    let mut window = Window::new(16, 1 << 20);
    for seq in [2, 5, 4] {
        push_and_drain(&mut window, seq, &line(seq));
    }
    window.release_all();
    let seqs: Vec<Seq> = drain(&mut window).iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![2, 4, 5]);
    assert_eq!(window.counters().skipped, 2, "1 and 3");
    assert_eq!(window.next_seq(), 6);
}

#[test]
fn reset_starts_over_at_one() {
    let mut window = Window::new(16, 1 << 20);
    push_and_drain(&mut window, 1, "1|B\n");
    push_and_drain(&mut window, 5, "5|B\n");
    window.reset();
    assert_eq!(window.counters().skipped, 1, "the dropped frame 5");
    assert_eq!(window.next_seq(), 1);
    assert_eq!(window.held(), 0);
    assert_eq!(push_and_drain(&mut window, 1, "1|B\n").len(), 1);
}

#[test]
fn buffers_are_reused_once_the_pool_has_grown() {
    let mut window = Window::new(1024, 1 << 20);
    for batch in 0..50u64 {
        let base = batch * 10 + 1;
        for seq in (base..base + 10).rev() {
            push_and_drain(&mut window, seq, &long_line(seq));
        }
    }
    assert_eq!(window.next_seq(), 501);
    assert_eq!(window.pool.len(), 10, "pool grows only to the most held");
}

#[test]
fn short_frames_near_the_next_seq_need_no_buffer() {
    let mut window = Window::new(1024, 1 << 20);
    let mut released = Vec::new();
    for batch in 0..50u64 {
        let base = batch * 10 + 1;
        for seq in (base..base + 10).rev() {
            released.extend(push_and_drain(&mut window, seq, &line(seq)));
        }
    }
    let expected: Vec<(Seq, String)> = (1..=500).map(|seq| (seq, line(seq))).collect();
    assert_eq!(released, expected);
    assert!(window.pool.is_empty(), "held in near cells");
}

#[test]
fn a_short_frame_far_ahead_is_held_in_a_buffer_and_kept_apart_from_near_ones() {
    // Near cells cover seqs 1..=512 at first; 700 shares a cell index with
    // 188 (700 - 512) but not a cell: it is in the pool.
    let mut window = Window::new(1024, 1 << 20);
    assert!(push_and_drain(&mut window, 700, &line(700)).is_empty());
    assert_eq!(window.pool.len(), 1);
    let mut released = Vec::new();
    for seq in (1..=699).rev() {
        released.extend(push_and_drain(&mut window, seq, &line(seq)));
    }
    let expected: Vec<(Seq, String)> = (1..=700).map(|seq| (seq, line(seq))).collect();
    assert_eq!(released, expected);
    assert_eq!(window.held_bytes(), 0);
}

#[test]
fn a_seq_below_the_next_is_late_even_after_the_last_seq() {
    // The next seq is then u64::MAX: a small seq must not look "near".
    let mut window = Window::new(8, 1 << 20);
    let last = u64::MAX - 1;
    push_and_drain(&mut window, last, "x\n");
    window.release_all();
    assert_eq!(drain(&mut window), vec![(last, "x\n".to_string())]);
    assert_eq!(window.next_seq(), u64::MAX);
    assert_eq!(window.push(1, (), b"1|B\n"), Push::Late);
    assert_eq!(window.held(), 0);
}

#[test]
fn a_reset_with_near_frames_held_returns_no_cell_to_the_pool() {
    let mut window = Window::new(16, 1 << 20);
    push_and_drain(&mut window, 3, &line(3));
    window.reset();
    assert!(push_and_drain(&mut window, 2, &long_line(2)).is_empty());
    let released = push_and_drain(&mut window, 1, &line(1));
    assert_eq!(released, vec![(1, line(1)), (2, long_line(2))]);
}

mod props {
    //! Property tests: the reorder window against what any correct reorderer
    //! must do, over random arrival orders, holes, duplicates and late events.

    use std::collections::HashMap;

    use crate::engine::window::{Push, ReorderWindow};
    use proptest::prelude::*;

    /// What a driver saw: frames released in order, and pushes by outcome.
    #[derive(Default)]
    struct Run {
        released: Vec<(u64, Vec<u8>)>,
        held: u64,
        late: u64,
        duplicates: u64,
    }

    /// Pushes like the server does: on `NeedsRoom`, release and push again.
    fn push(window: &mut ReorderWindow<()>, run: &mut Run, seq: u64, frame: &[u8]) {
        loop {
            let outcome = window.push(seq, (), frame);
            drain(window, run);
            match outcome {
                Push::NeedsRoom => continue,
                Push::Held => run.held += 1,
                Push::Late => run.late += 1,
                Push::Duplicate => run.duplicates += 1,
            }
            return;
        }
    }

    fn drain(window: &mut ReorderWindow<()>, run: &mut Run) {
        while let Some((seq, (), frame)) = window.pop() {
            run.released.push((seq, frame.to_vec()));
        }
    }

    /// A frame naming its seq and tag; some tags make it long, so both the
    /// window's inline cells and its pool of buffers are used.
    fn frame(seq: u64, tag: u8) -> Vec<u8> {
        let padding = "-".repeat(usize::from(tag % 64));
        format!("{seq}|B|{tag}{padding}\n").into_bytes()
    }

    /// 1..=n cut into contiguous batches of at most `max_batch`, each shuffled
    /// (by the given swap picks): the original test client's arrival pattern.
    fn batch_shuffled(n: u64, max_batch: usize, picks: &[(usize, usize)]) -> Vec<u64> {
        let mut order: Vec<u64> = (1..=n).collect();
        let mut picks = picks.iter().cycle();
        let mut start = 0;
        while start < order.len() {
            let &(size_pick, _) = picks.next().unwrap();
            let end = (start + 1 + size_pick % max_batch).min(order.len());
            for i in start..end {
                let &(_, swap_pick) = picks.next().unwrap();
                let j = start + swap_pick % (end - start);
                order.swap(i, j);
            }
            start = end;
        }
        order
    }

    /// One step of an adversarial stream.
    #[derive(Debug, Clone)]
    enum Op {
        Push(u64, u8),
        SkipHole,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (1u64..120, any::<u8>()).prop_map(|(seq, tag)| Op::Push(seq, tag)),
            1 => (500u64..5000, any::<u8>()).prop_map(|(seq, tag)| Op::Push(seq, tag)),
            1 => Just(Op::SkipHole),
        ]
    }

    proptest! {
        /// Batches no larger than the window, shuffled, with nothing missing:
        /// every event comes out, in order, with nothing skipped or dropped.
        #[test]
        fn shuffled_batches_come_out_complete_and_in_order(
            n in 1u64..2000,
            capacity_log in 3u32..8,
            picks in prop::collection::vec((any::<usize>(), any::<usize>()), 1..64),
        ) {
            let capacity = 1usize << capacity_log;
            let mut window = ReorderWindow::new(capacity, 1 << 20);
            let mut run = Run::default();
            for seq in batch_shuffled(n, capacity, &picks) {
                push(&mut window, &mut run, seq, &frame(seq, 0));
            }
            let seqs: Vec<u64> = run.released.iter().map(|(s, _)| *s).collect();
            prop_assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
            prop_assert!(run.released.iter().all(|(s, f)| *f == frame(*s, 0)));
            prop_assert_eq!(window.counters().skipped, 0);
            prop_assert_eq!(window.held(), 0);
        }

        /// Any stream at all (duplicates, holes, late and far-ahead seqs, forced
        /// skips): output strictly increasing, each released frame is the first
        /// copy accepted for its seq, and every seq below the next one is either
        /// released or counted as skipped; nothing is lost uncounted.
        #[test]
        fn any_stream_keeps_order_and_accounts_for_everything(
            ops in prop::collection::vec(op(), 0..400),
            capacity_log in 2u32..7,
            budget in 16usize..400,
        ) {
            let mut window = ReorderWindow::new(1 << capacity_log, budget);
            let mut run = Run::default();
            let mut first_accepted: HashMap<u64, Vec<u8>> = HashMap::new();
            for op in ops {
                match op {
                    Op::Push(seq, tag) => {
                        let bytes = frame(seq, tag);
                        let held_before = run.held;
                        push(&mut window, &mut run, seq, &bytes);
                        if run.held > held_before {
                            // A seq is held at most once; later copies are
                            // duplicates or late.
                            prop_assert!(first_accepted.insert(seq, bytes).is_none());
                        }
                    }
                    Op::SkipHole => {
                        window.skip_hole();
                        drain(&mut window, &mut run);
                    }
                }
            }
            window.release_all();
            drain(&mut window, &mut run);
            prop_assert_eq!(window.held(), 0);
            prop_assert!(run.released.windows(2).all(|w| w[0].0 < w[1].0), "not strictly increasing");
            for (seq, bytes) in &run.released {
                prop_assert_eq!(Some(bytes), first_accepted.get(seq), "seq {} altered", seq);
            }
            let below_next = window.next_seq() - 1;
            prop_assert_eq!(run.released.len() as u64 + window.counters().skipped, below_next);
            prop_assert_eq!(run.held, run.released.len() as u64);
            prop_assert_eq!(run.late, window.counters().late);
            prop_assert_eq!(run.duplicates, window.counters().duplicates);
            prop_assert_eq!(window.held_bytes(), 0);
        }
    }
}
