//! Feeding the reorder window as the pipeline does, shared by
//! `benches/window.rs` (wall time) and `benches/instructions.rs`
//! (instruction counts), so both measure the same work.

use follower_maze::engine::protocol::{EventKind, Seq};
use follower_maze::engine::window::{Push, ReorderWindow};

/// One event ready to push: seq, parsed kind, and where its frame lies.
pub type Item = (Seq, EventKind, usize, usize);

/// Feeds every item to `window` as the pipeline does (the in-order bypass,
/// else `push` and then `pop` all that is ready), its seqs moved up to carry
/// on from where the window is, and calls `on_release` on every event that
/// comes out; returns how many did.
pub fn feed(
    window: &mut ReorderWindow<EventKind>,
    bytes: &[u8],
    items: &[Item],
    mut on_release: impl FnMut(EventKind, &[u8]),
) -> u64 {
    let offset = window.next_seq() - 1;
    let mut released = 0u64;
    for &(seq, kind, start, end) in items {
        let seq = seq + offset;
        if window.bypass(seq) {
            on_release(kind, &bytes[start..end]);
            released += 1;
            continue;
        }
        match window.push(seq, kind, &bytes[start..end]) {
            Push::Held => {
                while let Some((_, kind, frame)) = window.pop() {
                    on_release(kind, frame);
                    released += 1;
                }
            }
            other => panic!("seq {seq}: {other:?} in a window that fits every batch"),
        }
    }
    released
}
