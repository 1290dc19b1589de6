//! The shared event log of a cluster, as the core sees it: records, with no
//! I/O. An ingest appends the in-order events it releases as batches of
//! exact event lines; every edge reads the same records in the same order.
//! Which engine stores them (NATS JetStream) is the shell's business.

use crate::engine::protocol::Seq;

/// One record of the log: what one stored message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Run `run` begins here: every reader forgets the follow graph, as a
    /// standalone server does when a source starts over at seq 1.
    NewRun {
        /// The run that begins; runs are numbered from 1 over the log's life.
        run: u64,
    },
    /// Contiguous in-order event lines of run `run`, byte for byte as the
    /// event source sent them, each with its own terminator. Seqs the
    /// ingest gave up on are missing, so `last_seq - first_seq + 1` may
    /// exceed the line count.
    Events {
        /// The run the lines belong to.
        run: u64,
        /// The seq of the first line.
        first_seq: Seq,
        /// The seq of the last line.
        last_seq: Seq,
        /// The lines.
        lines: Vec<u8>,
    },
}

impl Record {
    /// The run this record belongs to.
    pub fn run(&self) -> u64 {
        match self {
            Record::NewRun { run } | Record::Events { run, .. } => *run,
        }
    }

    /// An id unique to this record over the log's life, from (run, first
    /// seq): a retried append of the same record carries the same id, so
    /// the log can store it once.
    pub fn id(&self) -> String {
        match self {
            Record::NewRun { run } => format!("{run}:run"),
            Record::Events { run, first_seq, .. } => format!("{run}:{first_seq}"),
        }
    }
}
