//! One JetStream message per [`Record`]: the headers and payload an ingest
//! writes and an edge reads back. Pure functions, no I/O, so the format is
//! tested without a server.

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

/// The record a stored message carries, or why it carries none. An edge
/// skips (and logs) a message this refuses rather than stopping: the
/// stream is shared, and one bad message must not take every edge down.
///
/// The `Nats-Msg-Id` must end in the record's own [`Record::id`] (see
/// [`message_id`]): a message whose id and content disagree was not
/// written by an ingest.
pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Record, String> {
    let headers = headers.ok_or("no headers")?;
    let kind = header(headers, KIND_HEADER)?;
    let run = number(headers, RUN_HEADER)?;
    let record = match kind {
        KIND_NEW_RUN => {
            if !payload.is_empty() {
                return Err(format!(
                    "a {KIND_NEW_RUN} record with a payload of {} bytes",
                    payload.len()
                ));
            }
            Record::NewRun { run }
        }
        KIND_EVENTS => {
            let first_seq = number(headers, FIRST_SEQ_HEADER)?;
            let last_seq = number(headers, LAST_SEQ_HEADER)?;
            if first_seq > last_seq {
                return Err(format!(
                    "{FIRST_SEQ_HEADER} {first_seq} is past {LAST_SEQ_HEADER} {last_seq}"
                ));
            }
            if payload.is_empty() {
                return Err(format!("an {KIND_EVENTS} record without lines"));
            }
            Record::Events {
                run,
                first_seq,
                last_seq,
                lines: payload.to_vec(),
            }
        }
        other => return Err(format!("unknown {KIND_HEADER} {other:?}")),
    };
    let id = header(headers, "Nats-Msg-Id")?;
    if id.rsplit_once('/').map(|(_, own)| own) != Some(record.id().as_str()) {
        return Err(format!(
            "Nats-Msg-Id {id:?} is not the record's id {:?} after a writer id",
            record.id()
        ));
    }
    Ok(record)
}

/// The one value of header `name`.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    let mut values = headers.get_all(name);
    let value = values.next().ok_or_else(|| format!("no {name} header"))?;
    if values.next().is_some() {
        return Err(format!("more than one {name} header"));
    }
    Ok(value.as_str())
}

/// The one value of header `name`, a decimal `u64`.
fn number(headers: &HeaderMap, name: &str) -> Result<u64, String> {
    let value = header(headers, name)?;
    // `u64::from_str` takes a leading '+'; the format has none.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name} {value:?} is not a decimal number"));
    }
    value
        .parse()
        .map_err(|_| format!("{name} {value:?} is out of range"))
}
