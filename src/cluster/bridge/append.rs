//! What the ingest's appends mean and what to do next: every rule of the
//! exactly-once, in-order, fenced appending that [`super::ingest`]
//! describes, with no NATS client, no runtime and no clock.
//!
//! [`Appending`] holds the records handed over and not yet stored, each
//! with the stream sequence it must land at. The bridge thread tells it
//! what happened (a record handed over, the input closed, the outcome of
//! the oldest publish as an [`AckOutcome`], a message read back as a
//! [`ReadBack`], time passing) and carries out what it asks
//! ([`Action`]s, a read-back, a [`deadline`](Appending::deadline)). Time
//! comes in as `now`. The rules are where the bridge can go wrong in ways
//! a real server shows only rarely (a lost ack, a restart mid-pipeline, a
//! second ingest), so keeping them out of the async code lets tests play
//! each case as a table, without a nats-server, and leaves the thread
//! only moving messages between NATS and this machine.
//!
//! The rules:
//! - Records are published in the order handed over, as many at once as
//!   are queued, each expecting the sequence before its own.
//! - An ack at the expected sequence stores the head, duplicate or not (a
//!   duplicate is an earlier attempt's). A duplicate elsewhere is another
//!   ingest's work: fenced. A store elsewhere means the stream ignores
//!   `Nats-Expected-Last-Sequence`: nothing here can be trusted, so fail.
//! - No answer, or an answer that the server cannot take it now: wait for
//!   every publish in flight to settle, back off (doubling, capped), then
//!   publish the whole queue again from its head, in order.
//! - "Wrong last sequence": read the message at the head's sequence back.
//!   It carries the head's id: an earlier attempt stored it. Anything else
//!   (another id, no message): fenced. The read failing: retry as above.
//! - Any other refusal is final.
//! - Once the input closes, what is queued has [`DRAIN_TIMEOUT`] to be
//!   stored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, RawMessageError};
use bytes::Bytes;
use log::{debug, error, info, warn};

use super::backoff::Backoff;
use super::ingest::IngestNews;
use super::wire;
use crate::engine::records::Record;

/// The first wait before the queue is published again; it doubles on each
/// failure.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before the queue is published again.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long the records queued when the input closes have to be stored.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of one publish, in the terms the rules judge: async-nats'
/// ack or error with the distinctions that do not change the verdict
/// folded away (see [`AckOutcome::from_publish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AckOutcome {
    /// JetStream has the message at stream sequence `seq`; `duplicate` if
    /// it had it already (same `Nats-Msg-Id` within its duplicate window).
    Ack {
        /// Where the message is.
        seq: u64,
        /// Whether an earlier publish had stored it.
        duplicate: bool,
    },
    /// No answer came, or none could: a timeout, the connection broke, the
    /// client refused to send more before acks came back, the ack's task
    /// failed. The message may or may not be stored.
    Lost(String),
    /// The server answered that it cannot take the message now: no stream
    /// listens on the subject yet, or JetStream is temporarily unavailable
    /// (503), as while a restarted server loads its streams.
    Unavailable(String),
    /// JetStream refused the message because the stream's last sequence is
    /// not the one it expected (API error 10071).
    WrongLastSequence(String),
    /// JetStream refused the message for a reason a retry cannot change
    /// (too large, any other API error).
    Refused(String),
}

impl AckOutcome {
    /// The case of async-nats' outcome of a publish. Kept apart from the
    /// judging so that what async-nats means by each error kind is stated
    /// once, and the rules see only the cases they tell apart.
    pub(super) fn from_publish(outcome: Result<PublishAck, PublishError>) -> AckOutcome {
        let err = match outcome {
            Ok(ack) => {
                return AckOutcome::Ack {
                    seq: ack.sequence,
                    duplicate: ack.duplicate,
                };
            }
            Err(err) => err,
        };
        let why = err.to_string();
        match err.kind() {
            PublishErrorKind::WrongLastSequence => AckOutcome::WrongLastSequence(why),
            PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::MaxAckPending => AckOutcome::Lost(why),
            PublishErrorKind::StreamNotFound => AckOutcome::Unavailable(why),
            PublishErrorKind::Other => match api_error(&err) {
                None => AckOutcome::Lost(why),
                Some(api) if is_temporary(api) => AckOutcome::Unavailable(why),
                Some(_) => AckOutcome::Refused(why),
            },
            PublishErrorKind::MaxPayloadExceeded | PublishErrorKind::WrongLastMessageId => {
                AckOutcome::Refused(why)
            }
        }
    }
}

/// The JetStream API error a publish failed with, if JetStream answered
/// (as opposed to the connection failing).
fn api_error(err: &PublishError) -> Option<&jetstream::Error> {
    std::error::Error::source(err).and_then(|source| source.downcast_ref::<jetstream::Error>())
}

/// Whether a JetStream API error goes away by itself: "temporarily
/// unavailable" (503, 10008), which a server that just restarted answers
/// until JetStream is up.
fn is_temporary(api: &jetstream::Error) -> bool {
    api.code() == 503 || api.error_code() == jetstream::ErrorCode::CLUSTER_NOT_AVAILABLE
}

/// What reading the message at a stream sequence back found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadBack {
    /// A message, with its `Nats-Msg-Id` if it has one.
    Found {
        /// Its `Nats-Msg-Id`.
        id: Option<String>,
    },
    /// JetStream answered that there is no message there (or refused to
    /// say, which comes to the same: it is not ours).
    Missing(String),
    /// No answer (a timeout, the connection broke): nothing is known.
    Failed(String),
}

impl ReadBack {
    /// The case of async-nats' answer to reading a message back.
    pub(super) fn from_read(read: Result<StreamMessage, RawMessageError>) -> ReadBack {
        match read {
            Ok(message) => ReadBack::Found {
                id: message
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|id| id.as_str().to_string()),
            },
            Err(err)
                if matches!(
                    err.kind(),
                    LastRawMessageErrorKind::NoMessageFound | LastRawMessageErrorKind::JetStream(_)
                ) =>
            {
                ReadBack::Missing(err.to_string())
            }
            Err(err) => ReadBack::Failed(err.to_string()),
        }
    }
}

/// A record to publish, as the machine asks for it: its message, which
/// expects the stream sequence before the one it must land at.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    /// Its headers, `Nats-Msg-Id` and `Nats-Expected-Last-Sequence`
    /// included.
    pub(super) headers: HeaderMap,
    /// Its payload; cloning it shares the buffer.
    pub(super) payload: Bytes,
}

/// What the machine asks the bridge thread to do, in the order asked.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// Publish this record, after every one asked before it, and report
    /// its outcome to [`Appending::acked`] in that same order.
    Publish(Outgoing),
    /// Tell the mio loop that this many more records are stored.
    Tell {
        /// Records stored since the last `Tell`.
        stored: usize,
    },
    /// Tell the mio loop that this many more records are stored and that
    /// the bridge stops with `news`; then stop. The last action.
    Stop {
        /// Records stored since the last `Tell`.
        stored: usize,
        /// Why the bridge stops ([`IngestNews::Fenced`] or
        /// [`IngestNews::Failed`]).
        news: IngestNews,
    },
}

/// A record handed over and not yet stored, ready to publish (again).
#[derive(Debug)]
struct Pending {
    /// Its `Nats-Msg-Id`, to recognise it when read back.
    id: String,
    /// Its headers, with the expected last sequence `seq - 1`.
    headers: HeaderMap,
    /// Its payload.
    payload: Bytes,
    /// The stream sequence it must be stored at.
    seq: u64,
}

/// Whether the machine still appends.
#[derive(Debug)]
enum Running {
    /// Appending.
    Yes,
    /// Stopped for this reason, not yet told.
    Stopping(IngestNews),
    /// Stopped and told: the machine asks nothing more.
    Stopped,
}

/// The ingest's appending, as a state machine. See the module
/// documentation for the rules.
#[derive(Debug)]
pub(super) struct Appending {
    /// The stream's name, for messages.
    stream_name: String,
    /// This ingest's writer id: the first part of every `Nats-Msg-Id`.
    writer: String,
    /// Records handed over and not yet stored, oldest first.
    queue: VecDeque<Pending>,
    /// Publishes whose outcome is awaited. While not retrying, they are
    /// the first `in_flight` of `queue`, in order.
    in_flight: usize,
    /// The stream sequence the next record handed over must land at.
    next_seq: u64,
    /// Records stored and not yet told.
    stored: usize,
    /// The waits before publishing the queue again.
    backoff: Backoff,
    /// Set while retrying: publish the queue again from its head at this
    /// instant, once every publish in flight has settled (their outcomes
    /// no longer say anything about the queue's head).
    retry_at: Option<Instant>,
    /// Set while the message at the head's sequence is being read back:
    /// the "wrong last sequence" refusal that asked for it.
    reading_back: Option<String>,
    /// When the records still queued count as lost, once the input closed.
    drain_deadline: Option<Instant>,
    /// Whether the input closed: once the queue is empty, the work is done.
    input_closed: bool,
    /// Whether it still appends.
    running: Running,
}

impl Appending {
    /// An ingest's appending as `writer`, to stream `stream_name` whose
    /// last sequence is `last_stream_seq`: the first record handed over
    /// must land right after it.
    pub(super) fn new(stream_name: String, writer: String, last_stream_seq: u64) -> Appending {
        Appending {
            stream_name,
            writer,
            queue: VecDeque::new(),
            in_flight: 0,
            next_seq: last_stream_seq + 1,
            stored: 0,
            backoff: Backoff::new(FIRST_BACKOFF, MAX_BACKOFF),
            retry_at: None,
            reading_back: None,
            drain_deadline: None,
            input_closed: false,
            running: Running::Yes,
        }
    }

    /// Takes a record handed over, to be stored after every one before it:
    /// at the sequence after theirs.
    pub(super) fn enqueue(&mut self, record: Record) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = wire::message_id(&self.writer, &record);
        let (headers, payload) = wire::encode(record, seq - 1, &self.writer);
        self.queue.push_back(Pending {
            id,
            headers,
            payload,
            seq,
        });
    }

    /// No more records will be handed over: what is queued has until
    /// [`DRAIN_TIMEOUT`] after `now` to be stored.
    pub(super) fn close_input(&mut self, now: Instant) {
        if !self.input_closed {
            self.input_closed = true;
            self.drain_deadline = Some(now + DRAIN_TIMEOUT);
        }
    }

    /// The outcome of the oldest publish in flight. Returns a sequence when
    /// its message must be read back: the answer goes to
    /// [`read_back`](Self::read_back) before any other outcome comes in.
    /// While retrying, or once stopped, outcomes only settle: the whole
    /// queue is published again anyway.
    #[must_use = "a sequence returned must be read back"]
    pub(super) fn acked(&mut self, outcome: AckOutcome, now: Instant) -> Option<u64> {
        debug_assert!(self.in_flight > 0, "an outcome with no publish in flight");
        debug_assert!(self.reading_back.is_none(), "an outcome while reading back");
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.retry_at.is_some() || !matches!(self.running, Running::Yes) {
            return None;
        }
        let head = self.queue.front()?;
        match outcome {
            AckOutcome::Ack { seq, duplicate } if seq == head.seq => {
                if duplicate {
                    debug!(
                        "ingest bridge: record {} was already stored at sequence {seq}",
                        head.id
                    );
                }
                self.store_head();
            }
            AckOutcome::Ack {
                seq,
                duplicate: true,
            } => {
                let why = format!(
                    "stream {} already holds record {} at sequence {seq}, not at {} where this ingest appends it: another ingest writes to this stream",
                    self.stream_name, head.id, head.seq
                );
                self.stop(IngestNews::Fenced(why));
            }
            AckOutcome::Ack { seq, .. } => {
                let why = format!(
                    "stream {} stored record {} at sequence {seq}, not at the expected {}: the stream ignores Nats-Expected-Last-Sequence",
                    self.stream_name, head.id, head.seq
                );
                self.stop(IngestNews::Failed(why));
            }
            AckOutcome::Lost(why) | AckOutcome::Unavailable(why) => self.retry(&why, now),
            AckOutcome::WrongLastSequence(why) => {
                // Every record before the head is confirmed ours, so only
                // the message at the head's own sequence can tell an
                // earlier attempt of ours (past the duplicate window) from
                // another writer.
                let seq = head.seq;
                self.reading_back = Some(why);
                return Some(seq);
            }
            AckOutcome::Refused(why) => {
                let why = format!(
                    "stream {} refused record {} (sequence {}): {why}",
                    self.stream_name, head.id, head.seq
                );
                self.stop(IngestNews::Failed(why));
            }
        }
        None
    }

    /// What the message at the head's sequence, asked for by
    /// [`acked`](Self::acked), turned out to be.
    pub(super) fn read_back(&mut self, answer: ReadBack, now: Instant) {
        let Some(refusal) = self.reading_back.take() else {
            debug_assert!(false, "a read-back nobody asked for");
            return;
        };
        let Some(head) = self.queue.front() else {
            return;
        };
        let found = match answer {
            ReadBack::Found { id } if id.as_deref() == Some(head.id.as_str()) => {
                info!(
                    "ingest bridge: record {} was stored at sequence {} by an earlier attempt",
                    head.id, head.seq
                );
                self.store_head();
                return;
            }
            ReadBack::Found { id } => format!("{id:?}"),
            ReadBack::Missing(why) => format!("no message ({why})"),
            ReadBack::Failed(why) => {
                let why = format!(
                    "{refusal}, and reading sequence {} back failed: {why}",
                    head.seq
                );
                self.retry(&why, now);
                return;
            }
        };
        let why = format!(
            "stream {} refused record {} after sequence {}, which this ingest stored or started from ({refusal}), and sequence {} holds {found}: another ingest writes to this stream",
            self.stream_name,
            head.id,
            head.seq - 1,
            head.seq
        );
        self.stop(IngestNews::Fenced(why));
    }

    /// Time passed to `now`: the drain deadline may have passed (the
    /// bridge stops), or the back-off before a retry (the queue is
    /// published again).
    pub(super) fn tick(&mut self, now: Instant) {
        if !matches!(self.running, Running::Yes) {
            return;
        }
        if self.drain_deadline.is_some_and(|deadline| now >= deadline) {
            let why = format!(
                "stopped with {} records not stored in stream {} after waiting {DRAIN_TIMEOUT:?}",
                self.queue.len(),
                self.stream_name,
            );
            self.stop(IngestNews::Failed(why));
            return;
        }
        if self.in_flight == 0 && self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
        }
    }

    /// When [`tick`](Self::tick) has something to do, if ever: the end of
    /// the back-off once nothing is in flight, or the drain deadline.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if !matches!(self.running, Running::Yes) {
            return None;
        }
        let retry = self.retry_at.filter(|_| self.in_flight == 0);
        match (retry, self.drain_deadline) {
            (Some(retry), Some(drain)) => Some(retry.min(drain)),
            (retry, drain) => retry.or(drain),
        }
    }

    /// The next thing to do, if any: stop (first, and last); publish the
    /// records queued and not in flight, in order, unless retrying or
    /// reading back; tell how many more are stored.
    pub(super) fn poll(&mut self) -> Option<Action> {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Stopping(news) => {
                return Some(Action::Stop {
                    stored: std::mem::take(&mut self.stored),
                    news,
                });
            }
            Running::Stopped => return None,
            Running::Yes => self.running = Running::Yes,
        }
        if self.retry_at.is_none()
            && self.reading_back.is_none()
            && let Some(next) = self.queue.get(self.in_flight)
        {
            self.in_flight += 1;
            return Some(Action::Publish(Outgoing {
                headers: next.headers.clone(),
                payload: next.payload.clone(),
            }));
        }
        if self.stored > 0 {
            return Some(Action::Tell {
                stored: std::mem::take(&mut self.stored),
            });
        }
        None
    }

    /// Whether the bridge has stopped ([`Action::Stop`] asked for or about
    /// to be): outcomes still in flight no longer matter.
    pub(super) fn has_stopped(&self) -> bool {
        !matches!(self.running, Running::Yes)
    }

    /// Whether there is nothing left to do: stopped and told, or the input
    /// closed and every record stored and told.
    pub(super) fn is_finished(&self) -> bool {
        match self.running {
            Running::Stopped => true,
            Running::Stopping(_) => false,
            Running::Yes => self.input_closed && self.queue.is_empty() && self.stored == 0,
        }
    }

    /// The head of the queue is stored: the next one is the head now, and
    /// the next failure is a new one.
    fn store_head(&mut self) {
        self.queue.pop_front();
        self.stored += 1;
        self.backoff.succeeded();
    }

    /// The head's fate is unknown (`why`): publish the whole queue again,
    /// in order, after the back-off from `now`.
    fn retry(&mut self, why: &str, now: Instant) {
        let wait = self.backoff.failed();
        if let Some(head) = self.queue.front() {
            warn!(
                "ingest bridge: appending record {} (stream sequence {}) to stream {} failed: {why}; publishing the {} unacknowledged records again in {wait:?}",
                head.id,
                head.seq,
                self.stream_name,
                self.queue.len(),
            );
        }
        self.retry_at = Some(now + wait);
    }

    /// Stops with `news`, to be told by the next [`poll`](Self::poll).
    fn stop(&mut self, news: IngestNews) {
        if let IngestNews::Fenced(why) | IngestNews::Failed(why) = &news {
            error!("ingest bridge: {why}");
        }
        self.running = Running::Stopping(news);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{WRITER, record};
    use super::*;

    /// The `Nats-Msg-Id` of [`record`]`(n)`.
    fn id(n: u64) -> String {
        wire::message_id(WRITER, &record(n))
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A machine on a stream that ends at `last`, with records 1..=`count`
    /// handed over and published, all awaiting their acks.
    fn publishing(last: u64, count: u64) -> Appending {
        let mut machine = Appending::new("log".to_string(), WRITER.to_string(), last);
        for n in 1..=count {
            machine.enqueue(record(n));
        }
        let published = actions(&mut machine);
        let expected: Vec<_> = (1..=count).map(|n| Did::Publish(last + n)).collect();
        assert_eq!(published, expected);
        machine
    }

    /// An [`Action`], as tests compare them.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Did {
        /// Published the record that must land at this sequence.
        Publish(u64),
        /// Told this many more stored.
        Tell(usize),
        /// Stopped, fenced off, after telling this many more stored.
        Fenced(usize),
        /// Stopped, failed, after telling this many more stored.
        Failed(usize),
    }

    /// Everything the machine asks for now, in order.
    fn actions(machine: &mut Appending) -> Vec<Did> {
        std::iter::from_fn(|| machine.poll()).map(did).collect()
    }

    /// The action as a test states it: a publish by the sequence it must
    /// land at (one past the one it expects), checking its id agrees.
    fn did(action: Action) -> Did {
        match action {
            Action::Publish(outgoing) => {
                let header = |name: &str| outgoing.headers.get(name).map(|v| v.to_string());
                let expected = header("Nats-Expected-Last-Sequence").expect("an expected sequence");
                let seq = expected.parse::<u64>().expect("a number") + 1;
                let record =
                    wire::decode(Some(&outgoing.headers), &outgoing.payload).expect("a record");
                assert_eq!(
                    header("Nats-Msg-Id"),
                    Some(wire::message_id(WRITER, &record))
                );
                Did::Publish(seq)
            }
            Action::Tell { stored } => Did::Tell(stored),
            Action::Stop {
                stored,
                news: IngestNews::Fenced(_),
            } => Did::Fenced(stored),
            Action::Stop {
                stored,
                news: IngestNews::Failed(_),
            } => Did::Failed(stored),
            Action::Stop { news, .. } => panic!("stopped with {news:?}"),
        }
    }

    /// The text of the news the machine stops with.
    fn stop_text(machine: &mut Appending) -> String {
        match machine.poll() {
            Some(Action::Stop {
                news: IngestNews::Fenced(why) | IngestNews::Failed(why),
                ..
            }) => why,
            other => panic!("not a stop: {other:?}"),
        }
    }

    #[test]
    fn records_are_published_in_order_as_they_come_each_once() {
        let mut machine = publishing(10, 3);
        assert_eq!(actions(&mut machine), []);
        machine.enqueue(record(4));
        assert_eq!(actions(&mut machine), [Did::Publish(14)]);
        assert_eq!(machine.deadline(), None);
        assert!(!machine.is_finished());
    }

    #[test]
    fn what_the_outcome_for_the_head_means() {
        // The head must land at 11.
        let lost = || AckOutcome::Lost("timed out".to_string());
        #[rustfmt::skip]
        let table = [
            // outcome → (sequence to read back, actions, back-off)
            (AckOutcome::Ack { seq: 11, duplicate: false }, (None, vec![Did::Tell(1)], None)), // stored
            (AckOutcome::Ack { seq: 11, duplicate: true }, (None, vec![Did::Tell(1)], None)),  // stored by an earlier attempt
            (AckOutcome::Ack { seq: 12, duplicate: true }, (None, vec![Did::Fenced(0)], None)), // ours is elsewhere: another ingest
            (AckOutcome::Ack { seq: 9, duplicate: true }, (None, vec![Did::Fenced(0)], None)),
            (AckOutcome::Ack { seq: 12, duplicate: false }, (None, vec![Did::Failed(0)], None)), // the stream ignores the expected sequence
            (lost(), (None, vec![], Some(ms(100)))),
            (AckOutcome::Unavailable("503".to_string()), (None, vec![], Some(ms(100)))),
            (AckOutcome::WrongLastSequence("10071".to_string()), (Some(11), vec![], None)),
            (AckOutcome::Refused("max payload size exceeded".to_string()), (None, vec![Did::Failed(0)], None)),
        ];
        let now = Instant::now();
        for (outcome, (read_back, did, backoff)) in table {
            let mut machine = publishing(10, 1);
            let asked = machine.acked(outcome.clone(), now);
            assert_eq!(
                (asked, actions(&mut machine), machine.deadline()),
                (read_back, did, backoff.map(|wait| now + wait)),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn a_refusal_says_which_record_and_why() {
        let mut machine = publishing(10, 1);
        let refusal = AckOutcome::Refused("max payload size exceeded".to_string());
        assert_eq!(machine.acked(refusal, Instant::now()), None);
        let why = stop_text(&mut machine);
        assert!(why.contains(&id(1)) && why.contains("max payload"), "{why}");
        assert_eq!(machine.poll().map(did), None, "a stop is the last action");
        assert!(machine.is_finished());
    }

    #[test]
    fn a_stop_carries_what_was_stored_before_it_and_ends_everything() {
        let now = Instant::now();
        let mut machine = publishing(0, 3);
        let stored = AckOutcome::Ack {
            seq: 1,
            duplicate: false,
        };
        assert_eq!(machine.acked(stored, now), None);
        let elsewhere = AckOutcome::Ack {
            seq: 7,
            duplicate: true,
        };
        assert_eq!(machine.acked(elsewhere, now), None);
        assert!(machine.has_stopped());
        assert_eq!(machine.deadline(), None);
        let why = stop_text(&mut machine);
        assert!(why.contains("another ingest"), "{why}");
        assert!(machine.is_finished());
        machine.enqueue(record(4));
        assert_eq!(actions(&mut machine), []);
    }

    #[test]
    fn a_retry_waits_for_every_publish_in_flight_then_publishes_the_whole_queue_in_order() {
        let t0 = Instant::now();
        let mut machine = publishing(20, 3);
        assert_eq!(
            machine.acked(AckOutcome::Lost("timed out".into()), t0),
            None
        );
        // The rest settle, whatever they say: the head's fate is unknown.
        assert_eq!(machine.deadline(), None, "two publishes still in flight");
        machine.tick(t0 + ms(500));
        assert_eq!(actions(&mut machine), [], "not even past the back-off");
        let later = AckOutcome::Ack {
            seq: 22,
            duplicate: false,
        };
        assert_eq!(machine.acked(later, t0), None);
        assert_eq!(
            machine.acked(AckOutcome::Lost("timed out".into()), t0),
            None
        );
        assert_eq!(machine.deadline(), Some(t0 + ms(100)));
        // A record handed over meanwhile waits for the retry too.
        machine.enqueue(record(4));
        assert_eq!(actions(&mut machine), []);
        machine.tick(t0 + ms(99));
        assert_eq!(actions(&mut machine), []);
        machine.tick(t0 + ms(100));
        assert_eq!(
            actions(&mut machine),
            [21, 22, 23, 24].map(Did::Publish),
            "the whole queue again, from its head, in order"
        );
        for (seq, duplicate) in [(21, true), (22, true), (23, false), (24, false)] {
            let ack = AckOutcome::Ack { seq, duplicate };
            assert_eq!(machine.acked(ack, t0 + ms(150)), None);
        }
        assert_eq!(actions(&mut machine), [Did::Tell(4)]);
        assert_eq!(machine.deadline(), None);
    }

    #[test]
    fn the_back_off_doubles_up_to_its_cap_and_starts_over_once_a_record_is_stored() {
        let mut now = Instant::now();
        let mut machine = publishing(0, 1);
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert_eq!(
                machine.acked(AckOutcome::Lost("broken pipe".into()), now),
                None
            );
            let at = machine.deadline().expect("a retry");
            waits.push(at - now);
            now = at;
            machine.tick(now);
            assert_eq!(actions(&mut machine), [Did::Publish(1)]);
        }
        assert_eq!(
            waits,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(2000),
                ms(2000)
            ]
        );
        let stored = AckOutcome::Ack {
            seq: 1,
            duplicate: true,
        };
        assert_eq!(machine.acked(stored, now), None);
        machine.enqueue(record(2));
        assert_eq!(actions(&mut machine), [Did::Publish(2), Did::Tell(1)]);
        assert_eq!(
            machine.acked(AckOutcome::Lost("timed out".into()), now),
            None
        );
        assert_eq!(machine.deadline(), Some(now + ms(100)));
    }

    #[test]
    fn a_wrong_last_sequence_is_ours_when_the_message_there_carries_our_id() {
        let now = Instant::now();
        let mut machine = publishing(4, 2);
        let refusal = AckOutcome::WrongLastSequence("wrong last sequence".into());
        assert_eq!(machine.acked(refusal, now), Some(5));
        // Nothing goes out while the answer is awaited.
        machine.enqueue(record(3));
        assert_eq!(actions(&mut machine), []);
        machine.read_back(ReadBack::Found { id: Some(id(1)) }, now);
        assert_eq!(actions(&mut machine), [Did::Publish(7), Did::Tell(1)]);
        let next = AckOutcome::Ack {
            seq: 6,
            duplicate: false,
        };
        assert_eq!(machine.acked(next, now), None);
        assert_eq!(actions(&mut machine), [Did::Tell(1)]);
    }

    #[test]
    fn a_wrong_last_sequence_is_another_ingests_unless_the_message_there_is_ours() {
        let now = Instant::now();
        #[rustfmt::skip]
        let table = [
            // what sequence 5 holds → actions, back-off
            (ReadBack::Found { id: Some(id(1)) }, (vec![Did::Tell(1)], None)),              // ours, stored before
            (ReadBack::Found { id: Some(format!("fedcba9876543210/{}", record(1).id())) }, // the same record, another ingest's
                (vec![Did::Fenced(0)], None)),
            (ReadBack::Found { id: Some(id(2)) }, (vec![Did::Fenced(0)], None)),            // not this record
            (ReadBack::Found { id: None }, (vec![Did::Fenced(0)], None)),                   // no id at all
            (ReadBack::Missing("no message found".into()), (vec![Did::Fenced(0)], None)),    // deleted, or never written
            (ReadBack::Failed("timed out".into()), (vec![], Some(ms(100)))),                 // unknown: retry
        ];
        for (answer, (did, backoff)) in table {
            let mut machine = publishing(4, 1);
            let refusal = AckOutcome::WrongLastSequence("wrong last sequence".into());
            assert_eq!(machine.acked(refusal, now), Some(5));
            machine.read_back(answer.clone(), now);
            assert_eq!(
                (actions(&mut machine), machine.deadline()),
                (did, backoff.map(|wait| now + wait)),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn a_fence_after_a_read_back_says_what_the_sequence_holds() {
        let now = Instant::now();
        let mut machine = publishing(4, 1);
        let refusal = AckOutcome::WrongLastSequence("wrong last sequence".into());
        assert_eq!(machine.acked(refusal, now), Some(5));
        machine.read_back(ReadBack::Found { id: Some(id(9)) }, now);
        let why = stop_text(&mut machine);
        assert!(
            why.contains("sequence 5 holds")
                && why.contains(&id(9))
                && why.contains("another ingest"),
            "{why}"
        );
    }

    #[test]
    fn once_the_input_closes_the_queue_has_the_drain_timeout_to_be_stored() {
        let t0 = Instant::now();
        let mut machine = publishing(0, 2);
        machine.close_input(t0);
        assert_eq!(machine.deadline(), Some(t0 + DRAIN_TIMEOUT));
        let first = AckOutcome::Ack {
            seq: 1,
            duplicate: false,
        };
        assert_eq!(machine.acked(first, t0), None);
        assert_eq!(actions(&mut machine), [Did::Tell(1)]);
        assert!(!machine.is_finished());
        // A retry due after the deadline does not postpone it.
        assert_eq!(
            machine.acked(AckOutcome::Lost("timed out".into()), t0 + ms(4950)),
            None
        );
        assert_eq!(machine.deadline(), Some(t0 + DRAIN_TIMEOUT));
        machine.tick(t0 + DRAIN_TIMEOUT - ms(1));
        assert_eq!(actions(&mut machine), []);
        machine.tick(t0 + DRAIN_TIMEOUT);
        let why = stop_text(&mut machine);
        assert!(why.contains("1 records not stored"), "{why}");
        assert!(machine.is_finished());
    }

    #[test]
    fn once_the_input_closes_the_work_is_done_when_every_record_is_stored_and_told() {
        let now = Instant::now();
        let mut idle = Appending::new("log".to_string(), WRITER.to_string(), 0);
        idle.close_input(now);
        assert!(idle.is_finished(), "nothing to store");
        let mut machine = publishing(0, 1);
        machine.close_input(now);
        let stored = AckOutcome::Ack {
            seq: 1,
            duplicate: false,
        };
        assert_eq!(machine.acked(stored, now), None);
        assert!(!machine.is_finished(), "not told yet");
        assert_eq!(actions(&mut machine), [Did::Tell(1)]);
        assert!(machine.is_finished());
    }

    #[test]
    fn what_async_nats_outcomes_mean() {
        let ack = |sequence, duplicate| {
            Ok(PublishAck {
                sequence,
                duplicate,
                ..PublishAck::default()
            })
        };
        let error = |kind| Err(PublishError::new(kind));
        let stored = |seq, duplicate| AckOutcome::Ack { seq, duplicate };
        let case = |outcome: &AckOutcome| std::mem::discriminant(outcome);
        let lost = case(&AckOutcome::Lost(String::new()));
        let unavailable = case(&AckOutcome::Unavailable(String::new()));
        let wrong_last = case(&AckOutcome::WrongLastSequence(String::new()));
        let refused = case(&AckOutcome::Refused(String::new()));
        assert_eq!(AckOutcome::from_publish(ack(7, false)), stored(7, false));
        assert_eq!(AckOutcome::from_publish(ack(7, true)), stored(7, true));
        #[rustfmt::skip]
        let table = [
            (PublishErrorKind::TimedOut, lost),
            (PublishErrorKind::BrokenPipe, lost),
            (PublishErrorKind::MaxAckPending, lost),
            (PublishErrorKind::Other, lost), // no answer from JetStream
            (PublishErrorKind::StreamNotFound, unavailable),
            (PublishErrorKind::WrongLastSequence, wrong_last),
            (PublishErrorKind::MaxPayloadExceeded, refused),
            (PublishErrorKind::WrongLastMessageId, refused),
        ];
        for (kind, expected) in table {
            let outcome = AckOutcome::from_publish(error(kind));
            assert_eq!(case(&outcome), expected, "{kind:?}: {outcome:?}");
        }
    }
}
