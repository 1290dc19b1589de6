//! An edge's input: the log's records, in order, taken line by line as the
//! clients' outboxes have room, so a record can be left half-routed when a
//! turn ends and picked up where it stopped.

use std::collections::VecDeque;

use crate::engine::records::Record;

/// Records from the log not yet fully routed.
#[derive(Debug, Default)]
pub struct LogFeed {
    /// In log order; the front one may be partly routed.
    records: VecDeque<Record>,
    /// Bytes of the front record's lines already routed.
    offset: usize,
    /// The run the lines being routed belong to; 0 before the first.
    run: u64,
}

/// The next thing to route from the feed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<'a> {
    /// A run begins: forget the follow graph.
    NewRun,
    /// Lines of run `run` follow without its boundary: the log no longer
    /// holds the run's start (its retention dropped it), so the follows
    /// made before are unknown. Forget the graph, and say so.
    RunWithoutStart {
        /// The run whose lines follow.
        run: u64,
    },
    /// One event line, terminator included, of a record of `run`.
    Line {
        /// The run of the record it came from.
        run: u64,
        /// The line.
        frame: &'a [u8],
    },
}

impl LogFeed {
    /// An empty feed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next record of the log.
    pub fn push(&mut self, record: Record) {
        self.records.push_back(record);
    }

    /// Records held, the partly routed one included: the shell takes more
    /// from the log only while this is small, so a slow edge leaves the
    /// backlog in the log.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when every record pushed has been routed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The run of the lines routed last.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Takes the next run boundary or line, in log order.
    pub(crate) fn next(&mut self) -> Option<Next<'_>> {
        loop {
            match self.records.front()? {
                Record::NewRun { run } => {
                    self.run = *run;
                    self.records.pop_front();
                    return Some(Next::NewRun);
                }
                Record::Events { lines, .. } if self.offset >= lines.len() => {
                    self.records.pop_front();
                    self.offset = 0;
                }
                Record::Events { run, .. } if *run != self.run => {
                    self.run = *run;
                    return Some(Next::RunWithoutStart { run: *run });
                }
                Record::Events { .. } => break,
            }
        }
        let Some(Record::Events { run, lines, .. }) = self.records.front() else {
            unreachable!("the loop above stops only at an event record");
        };
        let rest = &lines[self.offset..];
        // A record holds whole lines; one without a final terminator (not
        // ours) still ends its last line.
        let len = memchr::memchr(b'\n', rest).map_or(rest.len(), |at| at + 1);
        self.offset += len;
        Some(Next::Line {
            run: *run,
            frame: &rest[..len],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_one_by_one_with_run_boundaries_in_place() {
        let mut feed = LogFeed::new();
        feed.push(Record::NewRun { run: 4 });
        feed.push(Record::Events {
            run: 4,
            first_seq: 1,
            last_seq: 3,
            lines: b"1|B\r\n3|S|7\n".to_vec(),
        });
        feed.push(Record::NewRun { run: 5 });
        assert_eq!(feed.next(), Some(Next::NewRun));
        assert_eq!(feed.run(), 4);
        assert_eq!(
            feed.next(),
            Some(Next::Line {
                run: 4,
                frame: b"1|B\r\n"
            })
        );
        assert_eq!(feed.len(), 2);
        assert_eq!(
            feed.next(),
            Some(Next::Line {
                run: 4,
                frame: b"3|S|7\n"
            })
        );
        assert_eq!(feed.next(), Some(Next::NewRun));
        assert_eq!(feed.run(), 5);
        assert_eq!(feed.next(), None);
        assert!(feed.is_empty());
    }

    #[test]
    fn a_record_without_a_final_terminator_still_ends_its_last_line() {
        let mut feed = LogFeed::new();
        feed.push(Record::NewRun { run: 1 });
        assert_eq!(feed.next(), Some(Next::NewRun));
        feed.push(Record::Events {
            run: 1,
            first_seq: 1,
            last_seq: 1,
            lines: b"1|B".to_vec(),
        });
        feed.push(Record::Events {
            run: 1,
            first_seq: 2,
            last_seq: 2,
            lines: Vec::new(),
        });
        assert_eq!(
            feed.next(),
            Some(Next::Line {
                run: 1,
                frame: b"1|B"
            })
        );
        assert_eq!(feed.next(), None, "an empty record yields nothing");
        assert!(feed.is_empty());
    }

    #[test]
    fn lines_of_a_run_whose_start_is_gone_are_announced_first() {
        let mut feed = LogFeed::new();
        feed.push(Record::Events {
            run: 7,
            first_seq: 900,
            last_seq: 900,
            lines: b"900|B\n".to_vec(),
        });
        assert_eq!(feed.next(), Some(Next::RunWithoutStart { run: 7 }));
        assert_eq!(
            feed.next(),
            Some(Next::Line {
                run: 7,
                frame: b"900|B\n"
            })
        );
    }
}
