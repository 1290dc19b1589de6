//! One JetStream message per [`Record`]: the headers and payload an ingest
//! writes and an edge reads back. Pure functions, no I/O, so the format is
//! tested without a server.

use std::fmt;

use async_nats::HeaderMap;
use async_nats::header::{NATS_EXPECTED_LAST_SEQUENCE, NATS_MESSAGE_ID};
use bytes::Bytes;

use crate::engine::records::Record;

/// The run a record belongs to (decimal).
pub const RUN_HEADER: &str = "Follower-Maze-Run";
/// What a record is: [`KIND_EVENTS`] or [`KIND_NEW_RUN`].
pub const KIND_HEADER: &str = "Follower-Maze-Kind";
/// The seq of an events record's first line (decimal).
pub const FIRST_SEQ_HEADER: &str = "Follower-Maze-First-Seq";
/// The seq of an events record's last line (decimal).
pub const LAST_SEQ_HEADER: &str = "Follower-Maze-Last-Seq";
/// [`KIND_HEADER`] of a [`Record::Events`].
pub const KIND_EVENTS: &str = "events";
/// [`KIND_HEADER`] of a [`Record::NewRun`].
pub const KIND_NEW_RUN: &str = "new-run";

/// The `Nats-Msg-Id` of `record` appended by the ingest `writer`:
/// `{writer}/{record id}`. A retry by the same ingest carries the same id,
/// so JetStream stores it once; two ingests never share an id, so a second
/// ingest's record is never taken for a duplicate of the first's (same run,
/// same first seq, other lines) and dropped: it meets the fence instead.
pub fn message_id(writer: &str, record: &Record) -> String {
    format!("{writer}/{}", record.id())
}

/// The headers and payload of the message that stores `record`, appended by
/// the ingest `writer`, right after stream sequence `expected_last_seq` (0:
/// first in an empty stream). The `Nats-Msg-Id` is [`message_id`], so
/// JetStream stores a retried append once; `Nats-Expected-Last-Sequence`
/// makes JetStream refuse the append if anyone else wrote since, which is
/// how a second ingest is fenced off.
pub fn encode(record: Record, expected_last_seq: u64, writer: &str) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, message_id(writer, &record));
    headers.insert(NATS_EXPECTED_LAST_SEQUENCE, expected_last_seq.to_string());
    headers.insert(RUN_HEADER, record.run().to_string());
    match record {
        Record::NewRun { .. } => {
            headers.insert(KIND_HEADER, KIND_NEW_RUN);
            (headers, Bytes::new())
        }
        Record::Events {
            first_seq,
            last_seq,
            lines,
            ..
        } => {
            headers.insert(KIND_HEADER, KIND_EVENTS);
            headers.insert(FIRST_SEQ_HEADER, first_seq.to_string());
            headers.insert(LAST_SEQ_HEADER, last_seq.to_string());
            (headers, Bytes::from(lines))
        }
    }
}

/// Why a stored message carries no record. A value, not a message, so that
/// the bridge (and tests) can tell the cases apart; [`fmt::Display`] gives
/// the text logged. It names the header at fault but not its value: the
/// stream's sequence, logged beside it, finds the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The message has no headers at all.
    NoHeaders,
    /// A header the format requires is missing.
    MissingHeader(&'static str),
    /// A header the format has once appears more than once.
    RepeatedHeader(&'static str),
    /// A numeric header is not a plain decimal number.
    NotANumber(&'static str),
    /// A numeric header does not fit 64 bits.
    OutOfRange(&'static str),
    /// [`KIND_HEADER`] names no kind of record.
    UnknownKind,
    /// A [`KIND_NEW_RUN`] record has a payload (it carries none).
    NewRunWithPayload {
        /// The payload's length.
        bytes: usize,
    },
    /// An events record's first seq is past its last.
    SeqsReversed {
        /// Its [`FIRST_SEQ_HEADER`].
        first: u64,
        /// Its [`LAST_SEQ_HEADER`].
        last: u64,
    },
    /// An events record has no lines.
    NoLines,
    /// The `Nats-Msg-Id` does not end in the record's own id, so no ingest
    /// wrote it (see [`message_id`]).
    ForeignId,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::NoHeaders => f.write_str("no headers"),
            DecodeError::MissingHeader(name) => write!(f, "no {name} header"),
            DecodeError::RepeatedHeader(name) => write!(f, "more than one {name} header"),
            DecodeError::NotANumber(name) => write!(f, "{name} is not a decimal number"),
            DecodeError::OutOfRange(name) => write!(f, "{name} is out of range"),
            DecodeError::UnknownKind => write!(f, "unknown {KIND_HEADER}"),
            DecodeError::NewRunWithPayload { bytes } => {
                write!(f, "a {KIND_NEW_RUN} record with a payload of {bytes} bytes")
            }
            DecodeError::SeqsReversed { first, last } => write!(
                f,
                "{FIRST_SEQ_HEADER} {first} is past {LAST_SEQ_HEADER} {last}"
            ),
            DecodeError::NoLines => write!(f, "an {KIND_EVENTS} record without lines"),
            DecodeError::ForeignId => {
                f.write_str("Nats-Msg-Id is not the record's id after a writer id")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// The record a stored message carries, or why it carries none. An edge
/// skips (and logs) a message this refuses rather than stopping: the
/// stream is shared, and one bad message must not take every edge down.
///
/// The `Nats-Msg-Id` must end in the record's own [`Record::id`] (see
/// [`message_id`]): a message whose id and content disagree was not
/// written by an ingest.
pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Record, DecodeError> {
    let headers = headers.ok_or(DecodeError::NoHeaders)?;
    let kind = header(headers, KIND_HEADER)?;
    let run = number(headers, RUN_HEADER)?;
    let record = match kind {
        KIND_NEW_RUN => {
            if !payload.is_empty() {
                return Err(DecodeError::NewRunWithPayload {
                    bytes: payload.len(),
                });
            }
            Record::NewRun { run }
        }
        KIND_EVENTS => {
            let first_seq = number(headers, FIRST_SEQ_HEADER)?;
            let last_seq = number(headers, LAST_SEQ_HEADER)?;
            if first_seq > last_seq {
                return Err(DecodeError::SeqsReversed {
                    first: first_seq,
                    last: last_seq,
                });
            }
            if payload.is_empty() {
                return Err(DecodeError::NoLines);
            }
            Record::Events {
                run,
                first_seq,
                last_seq,
                lines: payload.to_vec(),
            }
        }
        _ => return Err(DecodeError::UnknownKind),
    };
    let id = header(headers, "Nats-Msg-Id")?;
    if id.rsplit_once('/').map(|(_, own)| own) != Some(record.id().as_str()) {
        return Err(DecodeError::ForeignId);
    }
    Ok(record)
}

/// The one value of header `name`.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, DecodeError> {
    let mut values = headers.get_all(name);
    let value = values.next().ok_or(DecodeError::MissingHeader(name))?;
    if values.next().is_some() {
        return Err(DecodeError::RepeatedHeader(name));
    }
    Ok(value.as_str())
}

/// The one value of header `name`, a decimal `u64`.
fn number(headers: &HeaderMap, name: &'static str) -> Result<u64, DecodeError> {
    let value = header(headers, name)?;
    // `u64::from_str` takes a leading '+'; the format has none.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::NotANumber(name));
    }
    value.parse().map_err(|_| DecodeError::OutOfRange(name))
}
