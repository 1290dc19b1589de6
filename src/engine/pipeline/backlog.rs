//! Source events waiting outside the reorder window, with their exact
//! frames: the pipeline's one queue that is not the window.

use std::ops::Range;

use crate::engine::protocol::Event;

/// Source events not yet put into the window, in arrival order: a new
/// source's first events while its run is undecided, or an event that could
/// not be stored while the outboxes were full.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    /// The frames' bytes, back to back.
    pub(super) bytes: Vec<u8>,
    /// Each event and where its frame lies in `bytes`.
    pub(super) events: Vec<(Event, Range<usize>)>,
    /// Events before this index have been taken out.
    pub(super) taken: usize,
}

impl Backlog {
    /// Appends an event and its exact frame.
    pub(super) fn push(&mut self, event: Event, frame: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.events.push((event, start..self.bytes.len()));
    }

    /// Events not taken out yet.
    pub(super) fn len(&self) -> usize {
        self.events.len() - self.taken
    }

    /// True when every event was taken out.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
