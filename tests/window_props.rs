//! Property tests: the reorder window against what any correct reorderer
//! must do, over random arrival orders, holes, duplicates and late events.

use std::collections::HashMap;

use follower_maze::engine::window::{Push, ReorderWindow};
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
