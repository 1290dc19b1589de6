//! What the messages an edge reads mean: which become records for the mio
//! loop, which are skipped, what a jump in stream sequences says, and when
//! the edge has caught up with the stream as it was at start. No NATS
//! client, no runtime, no logging.
//!
//! [`Following`] takes each message the consumer delivers, with its stream
//! sequence, and says what it means ([`Handed`]: what to hand over, what to
//! log); it also says where a
//! new consumer must start, so that one dropped and recreated (after a
//! stall, a reconnection, an error) neither skips nor repeats a record.
//! The rules are where a reader goes wrong quietly (a record handed twice,
//! or a graph served before it is complete), so they are kept out of the
//! async code and tested as tables without a nats-server; the bridge
//! thread only moves messages from the consumer to this machine and its
//! answers to the channel.
//!
//! The rules:
//! - Sequences handed over only grow. A message at or before the last
//!   sequence handed over (a consumer recreated, a redelivery) is skipped.
//! - A message past the next sequence means the ones between are gone:
//!   removed by the stream's limits, or deleted. The graph misses their
//!   follows, which is logged; the record is handed over.
//! - A message that does not decode is skipped (logged): the stream is
//!   shared, and one bad message must not stop every edge. Its sequence
//!   still counts as read.
//! - Once the sequence the stream ended at when the edge started has been
//!   read (handed over or skipped), the edge has caught up, said once,
//!   after that record; at once if the stream was empty.

use std::fmt;
use std::ops::RangeInclusive;

use async_nats::HeaderMap;

use super::edge::EdgeNews;
use super::wire::{self, DecodeError};

/// Why a message was not handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skipped {
    /// Its sequence is not past the last one read, `after`: it was handed
    /// over (or skipped) already.
    Again {
        /// The last sequence read.
        after: u64,
    },
    /// It carries no record.
    Undecodable(DecodeError),
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::Again { after } => write!(f, "came again after {after}"),
            Skipped::Undecodable(why) => write!(f, "is not a record ({why})"),
        }
    }
}

/// What one message means: what to log, then what to hand over to the
/// mio loop, in this order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Handed {
    /// The sequences between the last one read and this message's, which
    /// the stream no longer has (removed by its limits, or deleted): the
    /// graph misses their follows, which is worth a warning.
    pub(super) gone: Option<RangeInclusive<u64>>,
    /// Why the message is not handed over, if it is not.
    pub(super) skipped: Option<Skipped>,
    /// The message's record ([`EdgeNews::Record`]), unless it is skipped.
    pub(super) record: Option<EdgeNews>,
    /// [`EdgeNews::CaughtUp`], if this message completes the stream as it
    /// was at start.
    pub(super) caught_up: Option<EdgeNews>,
}

/// An edge's reading of the stream, as a state machine. See the module
/// documentation for the rules.
#[derive(Debug)]
pub(super) struct Following {
    /// The stream's last sequence when the edge started.
    last_at_start: u64,
    /// The last sequence handed over or skipped (0: none yet).
    read: u64,
    /// Whether [`EdgeNews::CaughtUp`] was said.
    caught_up: bool,
}

impl Following {
    /// The reading of a stream whose last sequence was `last_at_start`
    /// when the edge started, from its first message.
    pub(super) fn new(last_at_start: u64) -> Following {
        Following {
            last_at_start,
            read: 0,
            caught_up: false,
        }
    }

    /// What to hand over before any message: [`EdgeNews::CaughtUp`] if the
    /// stream was empty at start, as no message will complete it.
    pub(super) fn start(&mut self) -> Option<EdgeNews> {
        if self.last_at_start != 0 || self.caught_up {
            return None;
        }
        self.caught_up = true;
        Some(EdgeNews::CaughtUp { stream_seq: 0 })
    }

    /// The sequence a new consumer must start at: the one after the last
    /// read, so that nothing is skipped nor handed over twice.
    pub(super) fn resume_from(&self) -> u64 {
        self.read + 1
    }

    /// The message stored at stream sequence `seq`, with `headers` and
    /// `payload`.
    pub(super) fn message(
        &mut self,
        seq: u64,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Handed {
        if seq <= self.read {
            return Handed {
                skipped: Some(Skipped::Again { after: self.read }),
                ..Handed::default()
            };
        }
        let gone = (seq != self.read + 1).then(|| self.read + 1..=seq - 1);
        self.read = seq;
        let (record, skipped) = match wire::decode(headers, payload) {
            Ok(record) => {
                let record = EdgeNews::Record {
                    stream_seq: seq,
                    record,
                };
                (Some(record), None)
            }
            Err(why) => (None, Some(Skipped::Undecodable(why))),
        };
        // An undecodable message at the last sequence completes the
        // stream as much as a record would: nothing more is coming for it.
        let caught_up = (!self.caught_up && seq >= self.last_at_start).then(|| {
            self.caught_up = true;
            EdgeNews::CaughtUp {
                stream_seq: self.last_at_start,
            }
        });
        Handed {
            gone,
            skipped,
            record,
            caught_up,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{WRITER, record};
    use super::*;

    /// What a message meant, as tests state it, in [`Handed`]'s order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Said {
        /// Sequences from the first to the second are gone (logged).
        Gone(u64, u64),
        /// Skipped: it came again after this sequence (logged).
        Again(u64),
        /// Skipped: it does not decode (logged).
        Undecodable,
        /// The record at this sequence, handed over.
        Record(u64),
        /// Caught up with the stream that ended at this sequence.
        CaughtUp(u64),
    }

    /// A message delivered at a sequence: what an ingest would store
    /// there, or one without headers, which does not decode.
    #[derive(Debug, Clone, Copy)]
    enum Message {
        /// The record an ingest stores at this sequence.
        Ok(u64),
        /// A message without headers at this sequence.
        Bad(u64),
    }

    /// Plays `messages` into a reading of a stream that ended at
    /// `last_at_start`, from its start: what each meant, in order, and
    /// where a new consumer would start.
    fn play(last_at_start: u64, messages: &[Message]) -> (Vec<Said>, u64) {
        let mut following = Following::new(last_at_start);
        let mut said = Vec::new();
        let tell = |news: Option<EdgeNews>, said: &mut Vec<Said>| match news {
            Some(EdgeNews::Record { stream_seq, record }) => {
                assert_eq!(record, self::record(stream_seq));
                said.push(Said::Record(stream_seq));
            }
            Some(EdgeNews::CaughtUp { stream_seq }) => said.push(Said::CaughtUp(stream_seq)),
            Some(EdgeNews::Failed(why)) => panic!("failed: {why}"),
            None => {}
        };
        tell(following.start(), &mut said);
        for &message in messages {
            let handed = match message {
                Message::Ok(seq) => {
                    let (headers, payload) = wire::encode(record(seq), seq - 1, WRITER);
                    following.message(seq, Some(&headers), &payload)
                }
                Message::Bad(seq) => following.message(seq, None, b"1|B\n"),
            };
            if let Some(gone) = handed.gone {
                said.push(Said::Gone(*gone.start(), *gone.end()));
            }
            match handed.skipped {
                Some(Skipped::Again { after }) => said.push(Said::Again(after)),
                Some(Skipped::Undecodable(why)) => {
                    assert_eq!(why, DecodeError::NoHeaders);
                    said.push(Said::Undecodable);
                }
                None => {}
            }
            tell(handed.record, &mut said);
            tell(handed.caught_up, &mut said);
        }
        (said, following.resume_from())
    }

    /// One row of a table: (the stream's last sequence at start, the
    /// messages delivered) → (what they meant, where a new consumer would
    /// start).
    type Case<'a> = (u64, &'a [Message], (&'a [Said], u64));

    #[test]
    fn what_the_messages_read_mean() {
        use Message::{Bad, Ok};
        use Said::{Again, CaughtUp, Gone, Record, Undecodable};
        #[rustfmt::skip]
        let table: &[Case] = &[
            // (last at start, messages) → (meant, resume from)
            (0, &[], (&[CaughtUp(0)], 1)),                                       // empty: caught up at once
            (0, &[Ok(1), Ok(2)], (&[CaughtUp(0), Record(1), Record(2)], 3)),     // and only once
            (3, &[], (&[], 1)),                                                  // not before reading
            (3, &[Ok(1), Ok(2)], (&[Record(1), Record(2)], 3)),                  // nor before the end
            (3, &[Ok(1), Ok(2), Ok(3), Ok(4)],
                (&[Record(1), Record(2), Record(3), CaughtUp(3), Record(4)], 5)), // right after the last at start
            (5, &[Ok(1), Ok(4), Ok(5)],
                (&[Record(1), Gone(2, 3), Record(4), Record(5), CaughtUp(5)], 6)), // a gap: logged, read on
            (3, &[Ok(6)], (&[Gone(1, 5), Record(6), CaughtUp(3)], 7)),           // the start gone, and the end
            (3, &[Ok(1), Ok(2), Ok(2), Ok(1), Ok(3)],
                (&[Record(1), Record(2), Again(2), Again(2), Record(3), CaughtUp(3)], 4)), // again or older: skipped
            (3, &[Ok(1), Bad(2), Ok(3)],
                (&[Record(1), Undecodable, Record(3), CaughtUp(3)], 4)),          // undecodable: skipped
            (2, &[Ok(1), Bad(2), Ok(3)],
                (&[Record(1), Undecodable, CaughtUp(2), Record(3)], 4)),          // but read: it may end catch-up
            (2, &[Ok(1), Bad(2), Ok(2)],
                (&[Record(1), Undecodable, CaughtUp(2), Again(2)], 3)),           // and is not read again
            (4, &[Bad(3), Ok(4)],
                (&[Gone(1, 2), Undecodable, Record(4), CaughtUp(4)], 5)),         // a gap before it still shows
        ];
        for &(last_at_start, messages, (said, resume)) in table {
            assert_eq!(
                play(last_at_start, messages),
                (said.to_vec(), resume),
                "last at start {last_at_start}, {messages:?}"
            );
        }
    }

    #[test]
    fn why_a_message_was_skipped_reads_as_a_log_line() {
        assert_eq!(
            Skipped::Again { after: 7 }.to_string(),
            "came again after 7"
        );
        assert_eq!(
            Skipped::Undecodable(DecodeError::NoHeaders).to_string(),
            "is not a record (no headers)"
        );
    }
}
