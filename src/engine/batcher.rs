//! An ingest's output: in-order event lines gathered into [`Record`]s for
//! the shared log, with the bound on records not yet stored.
//!
//! The log carries batches because a message per event would cap the
//! stream at the log's per-message rate (about 10 k events/s with an ack
//! each, 0.2 M pipelined, on the 2-core reference machine; 6–8 M with a
//! thousand lines per message). A batch closes at [`BATCH_LINES`] lines,
//! [`BATCH_BYTES`] bytes, or [`BATCH_QUIET`] without a new line, whichever
//! comes first, so a trickle is not held back either.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::engine::protocol::Seq;
use crate::engine::records::Record;

/// Most event lines in one record.
pub const BATCH_LINES: usize = 1000;
/// Most bytes in one record (a line that does not fit closes the batch
/// before it; one line alone is at most the source's line limit).
pub const BATCH_BYTES: usize = 64 * 1024;
/// How long an open batch waits for another line before it closes.
pub const BATCH_QUIET: Duration = Duration::from_millis(1);

/// Gathers in-order event lines into records and counts the records the
/// log has not confirmed yet.
#[derive(Debug)]
pub struct Batcher {
    /// The run being appended; 0 until the first one starts.
    run: u64,
    /// The lines of the batch being gathered, back to back.
    lines: Vec<u8>,
    /// Lines in `lines`.
    line_count: usize,
    /// Seqs of the first and last line in `lines`.
    first_seq: Seq,
    /// See `first_seq`.
    last_seq: Seq,
    /// When the last line was added to the open batch.
    last_line_at: Option<Instant>,
    /// Closed records the shell has not taken yet.
    closed: VecDeque<Record>,
    /// Records taken by the shell and not yet confirmed stored.
    unconfirmed: usize,
    /// The line bytes of each record taken and not yet stored, oldest
    /// first, and their sum: what a lapsed shutdown would leave unsaid.
    unconfirmed_sizes: VecDeque<usize>,
    /// See `unconfirmed_sizes`.
    unconfirmed_bytes: usize,
    /// Records closed or unconfirmed at which the ingest stops releasing
    /// events and reading its source. Only a run boundary adds records
    /// past it (it closes the open batch and adds its own record), at most
    /// two per boundary, and a boundary needs a new source.
    max_outstanding: usize,
}

impl Batcher {
    /// A batcher that carries on run `run` of the log (0 if the log holds
    /// no run yet: the first event then starts run 1) with at most
    /// `max_outstanding` records not yet stored.
    pub fn new(run: u64, max_outstanding: usize) -> Self {
        Batcher {
            run,
            lines: Vec::with_capacity(BATCH_BYTES),
            line_count: 0,
            first_seq: 0,
            last_seq: 0,
            last_line_at: None,
            closed: VecDeque::new(),
            unconfirmed: 0,
            unconfirmed_sizes: VecDeque::new(),
            unconfirmed_bytes: 0,
            max_outstanding: max_outstanding.max(1),
        }
    }

    /// The run being appended.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Adds one in-order event line, `frame` of seq `seq`.
    pub fn append(&mut self, seq: Seq, frame: &[u8], now: Instant) {
        if self.run == 0 {
            self.new_run();
        }
        if self.line_count > 0 && self.lines.len() + frame.len() > BATCH_BYTES {
            self.close();
        }
        if self.line_count == 0 {
            self.first_seq = seq;
        }
        self.lines.extend_from_slice(frame);
        self.line_count += 1;
        self.last_seq = seq;
        self.last_line_at = Some(now);
        if self.line_count >= BATCH_LINES {
            self.close();
        }
    }

    /// A new run begins: the open batch closes and a run boundary follows.
    pub fn new_run(&mut self) {
        self.close();
        self.run += 1;
        self.closed.push_back(Record::NewRun { run: self.run });
    }

    /// Closes the open batch, if it has lines.
    pub fn close(&mut self) {
        if self.line_count == 0 {
            return;
        }
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(BATCH_BYTES));
        self.closed.push_back(Record::Events {
            run: self.run,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            lines,
        });
        self.line_count = 0;
        self.last_line_at = None;
    }

    /// When the open batch closes for quiet, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.last_line_at.map(|at| at + BATCH_QUIET)
    }

    /// Closes the open batch if it has been quiet for [`BATCH_QUIET`].
    pub fn close_if_quiet(&mut self, now: Instant) {
        if self.deadline().is_some_and(|deadline| deadline <= now) {
            self.close();
        }
    }

    /// The next closed record to append to the log, unless the bound of
    /// records taken and not yet stored is reached (a run boundary can
    /// close records past it: they wait here, so whoever appends them
    /// never holds more than the bound). It counts as unconfirmed until
    /// [`Batcher::confirm`].
    pub fn take(&mut self) -> Option<Record> {
        if self.unconfirmed >= self.max_outstanding {
            return None;
        }
        let record = self.closed.pop_front()?;
        self.unconfirmed += 1;
        let size = line_bytes(&record);
        self.unconfirmed_sizes.push_back(size);
        self.unconfirmed_bytes += size;
        Some(record)
    }

    /// The log has stored `count` more of the records taken, in order.
    pub fn confirm(&mut self, count: usize) {
        debug_assert!(count <= self.unconfirmed, "more stored than taken");
        self.unconfirmed = self.unconfirmed.saturating_sub(count);
        for _ in 0..count {
            self.unconfirmed_bytes -= self.unconfirmed_sizes.pop_front().unwrap_or(0);
        }
    }

    /// Records closed or taken and not yet stored.
    pub fn outstanding(&self) -> usize {
        self.closed.len() + self.unconfirmed
    }

    /// True when the bound on records not yet stored is reached: no more
    /// events are released until the log catches up.
    pub fn is_full(&self) -> bool {
        self.outstanding() >= self.max_outstanding
    }

    /// True when the log has caught up to half the bound, so reading the
    /// source may resume.
    pub fn is_drained(&self) -> bool {
        self.outstanding() <= self.max_outstanding / 2
    }

    /// True when every line added is stored (or nothing was added).
    pub fn is_flushed(&self) -> bool {
        self.line_count == 0 && self.outstanding() == 0
    }

    /// Event bytes gathered and not yet stored, for stats: the open batch,
    /// the closed records, and the records taken and not yet stored.
    pub fn queued_bytes(&self) -> usize {
        let closed: usize = self.closed.iter().map(line_bytes).sum();
        self.lines.len() + closed + self.unconfirmed_bytes
    }
}

/// The bytes of event lines `record` carries.
fn line_bytes(record: &Record) -> usize {
    match record {
        Record::Events { lines, .. } => lines.len(),
        Record::NewRun { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: Seq) -> Vec<u8> {
        format!("{seq}|B\n").into_bytes()
    }

    #[test]
    fn the_first_event_of_an_empty_log_starts_run_one() {
        let now = Instant::now();
        let mut batcher = Batcher::new(0, 8);
        batcher.append(1, &line(1), now);
        batcher.close();
        assert_eq!(batcher.take(), Some(Record::NewRun { run: 1 }));
        assert_eq!(
            batcher.take(),
            Some(Record::Events {
                run: 1,
                first_seq: 1,
                last_seq: 1,
                lines: line(1)
            })
        );
    }

    #[test]
    fn a_batch_closes_at_its_line_count_and_again_at_its_byte_size() {
        let now = Instant::now();
        let mut batcher = Batcher::new(3, 64);
        for seq in 1..=BATCH_LINES as Seq {
            batcher.append(seq, &line(seq), now);
        }
        let Some(Record::Events {
            first_seq,
            last_seq,
            run,
            ..
        }) = batcher.take()
        else {
            panic!("a full batch closes by itself");
        };
        assert_eq!((run, first_seq, last_seq), (3, 1, BATCH_LINES as Seq));
        let big = vec![b'x'; BATCH_BYTES / 2 + 1];
        batcher.append(2000, &big, now);
        assert_eq!(batcher.take(), None, "half a batch stays open");
        batcher.append(2001, &big, now);
        let Some(Record::Events { lines, .. }) = batcher.take() else {
            panic!("a line that does not fit closes the batch before it");
        };
        assert_eq!(lines, big);
    }

    #[test]
    fn a_quiet_batch_closes_after_the_quiet_time() {
        let start = Instant::now();
        let mut batcher = Batcher::new(1, 8);
        batcher.append(5, &line(5), start);
        assert_eq!(batcher.deadline(), Some(start + BATCH_QUIET));
        batcher.close_if_quiet(start + BATCH_QUIET / 2);
        assert_eq!(batcher.take(), None);
        batcher.close_if_quiet(start + BATCH_QUIET);
        assert!(matches!(batcher.take(), Some(Record::Events { .. })));
        assert_eq!(batcher.deadline(), None);
    }

    #[test]
    fn records_not_yet_stored_are_bounded() {
        let now = Instant::now();
        let mut batcher = Batcher::new(1, 4);
        for seq in 1..=4 {
            batcher.append(seq, &line(seq), now);
            batcher.close();
        }
        assert!(batcher.is_full());
        while batcher.take().is_some() {}
        assert!(batcher.is_full(), "taken is not stored");
        assert_eq!(batcher.queued_bytes(), 4 * line(1).len());
        // A run boundary closes a record past the bound: it waits.
        batcher.new_run();
        assert_eq!(batcher.outstanding(), 5);
        assert_eq!(batcher.take(), None, "no more than the bound is taken");
        batcher.confirm(2);
        assert!(!batcher.is_full() && !batcher.is_drained());
        assert_eq!(batcher.take(), Some(Record::NewRun { run: 2 }));
        batcher.confirm(1);
        assert!(batcher.is_drained());
        batcher.confirm(2);
        assert!(batcher.is_flushed());
        assert_eq!(batcher.queued_bytes(), 0);
    }

    #[test]
    fn a_new_run_closes_the_open_batch_first() {
        let now = Instant::now();
        let mut batcher = Batcher::new(1, 8);
        batcher.append(9, &line(9), now);
        batcher.new_run();
        batcher.append(1, &line(1), now);
        batcher.close();
        let records: Vec<_> = std::iter::from_fn(|| batcher.take()).collect();
        assert_eq!(
            records,
            vec![
                Record::Events {
                    run: 1,
                    first_seq: 9,
                    last_seq: 9,
                    lines: line(9)
                },
                Record::NewRun { run: 2 },
                Record::Events {
                    run: 2,
                    first_seq: 1,
                    last_seq: 1,
                    lines: line(1)
                },
            ]
        );
    }
}
