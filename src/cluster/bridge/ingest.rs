//! The ingest's bridge: appends records to the stream, pipelined and in
//! order, each stored exactly once, and fenced off if another writer
//! appends.
//!
//! # Exactly once, in order
//!
//! While this ingest is the only writer, the record it stores k-th (from 1)
//! lands at stream sequence `last_stream_seq + k`, where `last_stream_seq`
//! is the stream's last sequence at start. So every record's publish can
//! carry, in advance, `Nats-Expected-Last-Sequence: its sequence - 1`, and
//! up to `max_in_flight` publishes are in flight at once. JetStream stores
//! a message only if the stream's last sequence is the expected one, so
//! records cannot land out of order or twice at two places, and a retried
//! record carries the same `Nats-Msg-Id` (this ingest's writer id and
//! [`Record::id`], see [`wire::message_id`]) so it is not stored twice at
//! all.
//!
//! When an ack does not come (timeout, connection lost, the server
//! restarting, JetStream not up yet), the bridge waits for every other
//! publish in flight to settle, then publishes again from the first
//! unacknowledged record, in order, with the same ids and expected
//! sequences, backing off from 100 ms to 2 s, until it works. A record that
//! was stored before is answered "duplicate" with its sequence, and counts
//! as stored.
//!
//! # Fencing
//!
//! JetStream answers "wrong last sequence" (API error 10071) when the
//! stream's last sequence is not the expected one. When every record before
//! the refused one is confirmed stored by us, only two things explain it:
//! another writer appended (fatal: [`IngestNews::Fenced`]), or the refused
//! record itself was stored by an earlier attempt of ours whose ack was
//! lost, and JetStream no longer recognises its id because the duplicate
//! window has passed. (Within the window JetStream checks the id first and
//! answers "duplicate", not 10071: `tests/nats_bridge.rs` checks this
//! against a real server.) The bridge tells the two apart by reading the
//! message at the expected sequence: if it carries the refused record's
//! id, the record is stored; otherwise the stream was written by someone
//! else.

use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use log::{debug, error, info, warn};
use mio::Waker;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{StreamSettings, connect, ensure_stream, spawn_bridge, wire};
use crate::engine::records::Record;

/// The first wait before an append is retried; it doubles on each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before an append is retried.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long dropping the bridge waits for the records handed over to be
/// stored.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the stream says when an ingest starts: where its log ends, so the
/// ingest continues the run (or starts the next one) and its first append
/// expects the right sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestStart {
    /// The run of the stream's last record; 0 if the stream is empty.
    pub run: u64,
    /// The last event seq of the stream's last record if that is an events
    /// record; 0 if it is a new run or the stream is empty.
    pub last_seq: u64,
    /// The stream's last sequence number (0 for a stream never written):
    /// the first append expects it, and the k-th record stored lands at
    /// `last_stream_seq + k`.
    pub last_stream_seq: u64,
}

/// What happened to the records handed over, as [`IngestBridge::news`]
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestNews {
    /// This many more records are stored, in the order they were handed
    /// over: the caller may release them (and hand over as many more).
    Stored(usize),
    /// Another writer appended to the stream: this ingest no longer owns the
    /// log and must stop. Fatal; the bridge has stopped.
    Fenced(String),
    /// Appending failed for a reason retrying cannot fix (a record larger
    /// than [`IngestBridge::max_payload`], a stream-level refusal), or the
    /// bridge was dropped before the records handed over were stored.
    /// Fatal; the bridge has stopped.
    Failed(String),
}

/// What the bridge thread has to say, kept until the mio loop asks: a
/// count and at most one fatal message, so it is bounded however long the
/// loop takes to ask.
#[derive(Default)]
struct Shared {
    /// Records stored since the loop last asked.
    stored: usize,
    /// Why the bridge stopped, if it did.
    fatal: Option<IngestNews>,
}

/// Locks `shared`, even if the bridge thread panicked holding it (the
/// counts stay meaningful).
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The mio loop's handle on the ingest's bridge thread. See the module
/// documentation for how records are stored exactly once and in order.
pub struct IngestBridge {
    /// Records handed over, to the thread; `None` once dropping.
    records: Option<mpsc::Sender<Record>>,
    /// The thread's news.
    shared: Arc<Mutex<Shared>>,
    /// Records handed over and not yet reported stored.
    unacked: usize,
    /// The most records that may be unacknowledged at once.
    max_in_flight: usize,
    /// The thread; `None` once joined.
    thread: Option<JoinHandle<()>>,
    /// The largest message the server takes, headers included.
    max_payload: usize,
    /// Whether [`news`](Self::news) reported the bridge stopped.
    stopped: bool,
    /// This ingest's writer id.
    writer: String,
}

impl IngestBridge {
    /// Connects to nats-server (blocking, giving up after
    /// `settings.timeout` with an error naming the server), ensures the
    /// stream, reads where it ends, and starts the bridge thread, which
    /// wakes `waker` whenever it has news. At most `max_in_flight` records
    /// (at least 1) may be handed over and not yet reported stored: that
    /// many publishes are pipelined, awaiting their acks at once.
    pub fn start(
        settings: StreamSettings,
        max_in_flight: usize,
        waker: Arc<Waker>,
    ) -> io::Result<(IngestBridge, IngestStart)> {
        let max_in_flight = max_in_flight.max(1);
        let (records_tx, records_rx) = mpsc::channel(max_in_flight);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let thread_shared = Arc::clone(&shared);
        let writer = writer_id();
        let thread_writer = writer.clone();
        let (thread, (start, max_payload)) =
            spawn_bridge("nats-ingest-bridge", move |ready| async move {
                let setup = async {
                    let context = connect(&settings, "ingest", max_in_flight).await?.context;
                    let stream = ensure_stream(&context, &settings, "ingest").await?;
                    let start = read_start(&stream, &settings.stream).await?;
                    Ok::<_, io::Error>((context, stream, start))
                };
                let (context, stream, start) = match setup.await {
                    Ok(setup) => setup,
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                info!(
                    "ingest bridge: stream {} ends at sequence {} (run {}, event seq {})",
                    settings.stream, start.last_stream_seq, start.run, start.last_seq
                );
                let max_payload = context.client().max_payload();
                if ready.send(Ok((start, max_payload))).is_err() {
                    return;
                }
                let _panic = PanicReport {
                    shared: Arc::clone(&thread_shared),
                    waker: Arc::clone(&waker),
                };
                let appender = Appender {
                    subject: settings.subject(),
                    stream_name: settings.stream.clone(),
                    writer: thread_writer,
                    context,
                    stream,
                    queue: VecDeque::new(),
                    inflight: VecDeque::new(),
                    next_seq: start.last_stream_seq + 1,
                    stored: 0,
                    backoff: FIRST_BACKOFF,
                    shared: thread_shared,
                    waker,
                };
                appender.run(records_rx).await;
            })?;
        let bridge = IngestBridge {
            records: Some(records_tx),
            shared,
            unacked: 0,
            max_in_flight,
            thread: Some(thread),
            max_payload,
            stopped: false,
            writer,
        };
        Ok((bridge, start))
    }

    /// This ingest's writer id: the first part of the `Nats-Msg-Id` of
    /// every record it appends (see [`wire::message_id`]).
    pub fn writer(&self) -> &str {
        &self.writer
    }

    /// Hands `record` over to be appended after every record handed over
    /// before it. Never blocks. Gives the record back if `max_in_flight`
    /// records are already unacknowledged (a caller that counts
    /// [`IngestNews::Stored`] never sees this), or once the bridge has
    /// stopped (from the moment [`news`](Self::news) said why, if not
    /// before).
    pub fn append(&mut self, record: Record) -> Result<(), Record> {
        if self.stopped || self.unacked >= self.max_in_flight {
            return Err(record);
        }
        let Some(records) = &self.records else {
            return Err(record);
        };
        match records.try_send(record) {
            Ok(()) => {
                self.unacked += 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(record))
            | Err(mpsc::error::TrySendError::Closed(record)) => Err(record),
        }
    }

    /// What happened since the last call, without blocking: at most one
    /// [`IngestNews::Stored`], then at most one fatal piece of news. The
    /// bridge wakes its waker whenever there is news to take.
    pub fn news(&mut self) -> Vec<IngestNews> {
        let mut shared = lock(&self.shared);
        let mut news = Vec::new();
        if shared.stored > 0 {
            self.unacked = self.unacked.saturating_sub(shared.stored);
            news.push(IngestNews::Stored(std::mem::take(&mut shared.stored)));
        }
        if let Some(fatal) = shared.fatal.take() {
            self.stopped = true;
            news.push(fatal);
        }
        news
    }

    /// How many records are handed over and not yet reported stored by
    /// [`news`](Self::news).
    pub fn unacked(&self) -> usize {
        self.unacked
    }

    /// The largest message the server takes (its `max_payload`, 1 MiB
    /// unless configured), headers included: a record's lines must be
    /// shorter by the headers (under 200 bytes), or appending it fails the
    /// bridge ([`IngestNews::Failed`]). The ingest sizes its batches by it.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }
}

impl Drop for IngestBridge {
    /// Stops the thread once the records handed over are stored, or have
    /// failed, or after 5 s; joins it.
    fn drop(&mut self) {
        self.records = None; // the thread sees the end of its input
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("ingest bridge: the bridge thread panicked");
        }
    }
}

/// Tells the mio loop if the bridge thread panics, which would otherwise
/// look like a bridge that never answers.
struct PanicReport {
    /// Where news goes.
    shared: Arc<Mutex<Shared>>,
    /// Wakes the mio loop.
    waker: Arc<Waker>,
}

impl Drop for PanicReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.shared).fatal = Some(IngestNews::Failed(
                "the ingest bridge thread panicked".to_string(),
            ));
            let _ = self.waker.wake();
        }
    }
}

/// Where the stream ends: its last sequence, and the run and last event seq
/// of its last record.
async fn read_start(stream: &stream::Stream, name: &str) -> io::Result<IngestStart> {
    let state = &stream.cached_info().state;
    let last_stream_seq = state.last_sequence;
    if state.messages == 0 {
        return Ok(IngestStart {
            run: 0,
            last_seq: 0,
            last_stream_seq,
        });
    }
    let message = stream.get_raw_message(last_stream_seq).await.map_err(|err| {
        io::Error::other(format!(
            "ingest bridge: cannot read the last message (sequence {last_stream_seq}) of stream {name}: {err}"
        ))
    })?;
    let record = wire::decode(Some(&message.headers), &message.payload).map_err(|why| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "ingest bridge: the last message (sequence {last_stream_seq}) of stream {name} is not a record: {why}"
            ),
        )
    })?;
    let last_seq = match record {
        Record::NewRun { .. } => 0,
        Record::Events { last_seq, .. } => last_seq,
    };
    Ok(IngestStart {
        run: record.run(),
        last_seq,
        last_stream_seq,
    })
}

/// A record handed over and not yet stored, ready to publish (again).
struct Pending {
    /// Its `Nats-Msg-Id`.
    id: String,
    /// Its headers, with the expected last sequence `seq - 1`.
    headers: HeaderMap,
    /// Its payload.
    payload: Bytes,
    /// The stream sequence it must be stored at.
    seq: u64,
}

/// The outcome of one publish.
type Acked = Result<PublishAck, PublishError>;

/// What one ack means for the appender.
enum Outcome {
    /// The record at the head of the queue is stored.
    Stored,
    /// Publish again from the head of the queue, after a back-off.
    Retry(String),
    /// Stop: fenced or failed.
    Fatal(IngestNews),
}

/// The bridge thread's state.
struct Appender {
    /// The subject records are published to.
    subject: String,
    /// The stream's name, for messages.
    stream_name: String,
    /// This ingest's writer id, unique to the process: the first part of
    /// every `Nats-Msg-Id` it publishes (see [`wire::message_id`]).
    writer: String,
    /// The JetStream context publishes go through.
    context: jetstream::Context,
    /// The stream, to read a message back when JetStream refuses one.
    stream: stream::Stream,
    /// Records handed over and not yet stored, oldest first.
    queue: VecDeque<Pending>,
    /// Acks awaited: while not retrying, `inflight[i]` is `queue[i]`'s.
    inflight: VecDeque<tokio::task::JoinHandle<Acked>>,
    /// The stream sequence the next record handed over must be stored at.
    next_seq: u64,
    /// Records stored and not yet told to the mio loop.
    stored: usize,
    /// The wait before the next retry.
    backoff: Duration,
    /// Where news goes.
    shared: Arc<Mutex<Shared>>,
    /// Wakes the mio loop.
    waker: Arc<Waker>,
}

impl Appender {
    /// Appends what comes in on `records` until it closes and everything
    /// is stored (or [`DRAIN_TIMEOUT`] passes), or until a fatal error.
    async fn run(mut self, mut records: mpsc::Receiver<Record>) {
        let mut input_open = true;
        let mut drain_deadline: Option<Instant> = None;
        // Set while retrying: publish again from the head of the queue at
        // this instant, once every publish in flight has settled.
        let mut retry_at: Option<Instant> = None;
        loop {
            if retry_at.is_none() {
                self.publish_queued().await;
            }
            self.tell();
            if !input_open && self.queue.is_empty() {
                return;
            }
            tokio::select! {
                biased;
                record = records.recv(), if input_open => match record {
                    Some(record) => self.enqueue(record),
                    None => {
                        input_open = false;
                        drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                    }
                },
                acked = settle_front(&mut self.inflight) => {
                    self.inflight.pop_front();
                    if self.on_ack(acked, &mut retry_at).await.is_break() {
                        return;
                    }
                    // Every other ack already in too, so that the loop is
                    // woken once for them all.
                    while self.inflight.front().is_some_and(|ack| ack.is_finished()) {
                        let Some(ack) = self.inflight.pop_front() else {
                            break;
                        };
                        if self.on_ack(ack.await, &mut retry_at).await.is_break() {
                            return;
                        }
                    }
                },
                _ = sleep_until(retry_at), if self.inflight.is_empty() => {
                    retry_at = None;
                },
                _ = sleep_until(drain_deadline) => {
                    let why = format!(
                        "stopped with {} records not stored in stream {} after waiting {:?}",
                        self.queue.len(),
                        self.stream_name,
                        DRAIN_TIMEOUT
                    );
                    error!("ingest bridge: {why}");
                    self.stop(IngestNews::Failed(why));
                    return;
                },
            }
        }
    }

    /// Acts on the outcome of the oldest publish in flight (already taken
    /// off `inflight`): the head of the queue is stored, or everything is
    /// published again after a back-off (`retry_at`), or the bridge stops
    /// (`Break`, with the news told). While retrying, outcomes are only
    /// settled: the whole queue is published again anyway.
    async fn on_ack(
        &mut self,
        acked: Result<Acked, tokio::task::JoinError>,
        retry_at: &mut Option<Instant>,
    ) -> ControlFlow<()> {
        if retry_at.is_some() {
            return ControlFlow::Continue(());
        }
        match self.judge(acked).await {
            Outcome::Stored => {
                self.queue.pop_front();
                self.stored += 1;
                self.backoff = FIRST_BACKOFF;
            }
            Outcome::Retry(why) => {
                let head = &self.queue[0];
                warn!(
                    "ingest bridge: appending record {} (stream sequence {}) to stream {} failed: {why}; publishing the {} unacknowledged records again in {:?}",
                    head.id,
                    head.seq,
                    self.stream_name,
                    self.queue.len(),
                    self.backoff
                );
                *retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
            Outcome::Fatal(news) => {
                if let IngestNews::Fenced(why) | IngestNews::Failed(why) = &news {
                    error!("ingest bridge: {why}");
                }
                self.stop(news);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Takes a record handed over into the queue, with the sequence it
    /// must be stored at.
    fn enqueue(&mut self, record: Record) {
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

    /// Publishes, in order, every queued record not yet in flight.
    async fn publish_queued(&mut self) {
        while self.inflight.len() < self.queue.len() {
            let pending = &self.queue[self.inflight.len()];
            let publish = self
                .context
                .publish_with_headers(
                    self.subject.clone(),
                    pending.headers.clone(),
                    pending.payload.clone(),
                )
                .await;
            // The ack is awaited on a task of its own so that its timeout
            // runs from now, alongside the others'.
            let ack = match publish {
                Ok(ack) => tokio::spawn(ack.into_future()),
                Err(err) => tokio::spawn(async move { Err(err) }),
            };
            self.inflight.push_back(ack);
        }
    }

    /// What the ack (or error) for the head of the queue means.
    async fn judge(&self, acked: Result<Acked, tokio::task::JoinError>) -> Outcome {
        let head = &self.queue[0];
        let acked = match acked {
            Ok(acked) => acked,
            Err(err) => return Outcome::Retry(format!("the ack task failed: {err}")),
        };
        let err = match acked {
            Ok(ack) if ack.sequence == head.seq => {
                if ack.duplicate {
                    debug!(
                        "ingest bridge: record {} was already stored at sequence {}",
                        head.id, ack.sequence
                    );
                }
                return Outcome::Stored;
            }
            Ok(ack) if ack.duplicate => {
                return Outcome::Fatal(IngestNews::Fenced(format!(
                    "stream {} already holds record {} at sequence {}, not at {} where this ingest appends it: another ingest writes to this stream",
                    self.stream_name, head.id, ack.sequence, head.seq
                )));
            }
            Ok(ack) => {
                return Outcome::Fatal(IngestNews::Failed(format!(
                    "stream {} stored record {} at sequence {}, not at the expected {}: the stream ignores Nats-Expected-Last-Sequence",
                    self.stream_name, head.id, ack.sequence, head.seq
                )));
            }
            Err(err) => err,
        };
        match err.kind() {
            PublishErrorKind::WrongLastSequence => self.wrong_last_sequence(&err).await,
            PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::MaxAckPending => Outcome::Retry(err.to_string()),
            PublishErrorKind::Other if !is_refusal(&err) => Outcome::Retry(err.to_string()),
            PublishErrorKind::Other
            | PublishErrorKind::MaxPayloadExceeded
            | PublishErrorKind::WrongLastMessageId => Outcome::Fatal(IngestNews::Failed(format!(
                "stream {} refused record {} (sequence {}): {err}",
                self.stream_name, head.id, head.seq
            ))),
        }
    }

    /// JetStream refused the head of the queue because the stream's last
    /// sequence is not the one before it, which this ingest stored (or
    /// found at start). Either the head itself was stored by an earlier
    /// attempt that JetStream no longer recognises as a duplicate, or
    /// another writer appended: the message at the head's sequence says
    /// which.
    async fn wrong_last_sequence(&self, err: &PublishError) -> Outcome {
        let head = &self.queue[0];
        let fenced = |found: String| {
            Outcome::Fatal(IngestNews::Fenced(format!(
                "stream {} refused record {} after sequence {}, which this ingest stored or started from ({err}), and sequence {} holds {found}: another ingest writes to this stream",
                self.stream_name,
                head.id,
                head.seq - 1,
                head.seq
            )))
        };
        match self.stream.get_raw_message(head.seq).await {
            Ok(message) => {
                let id = message
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|id| id.as_str().to_string());
                if id.as_deref() == Some(head.id.as_str()) {
                    info!(
                        "ingest bridge: record {} was stored at sequence {} by an earlier attempt",
                        head.id, head.seq
                    );
                    Outcome::Stored
                } else {
                    fenced(format!("{id:?}"))
                }
            }
            Err(read)
                if matches!(
                    read.kind(),
                    stream::LastRawMessageErrorKind::NoMessageFound
                        | stream::LastRawMessageErrorKind::JetStream(_)
                ) =>
            {
                fenced(format!("no message ({read})"))
            }
            Err(read) => Outcome::Retry(format!(
                "{err}, and reading sequence {} back failed: {read}",
                head.seq
            )),
        }
    }

    /// Tells the mio loop how many more records are stored, if any.
    fn tell(&mut self) {
        if self.stored > 0 {
            lock(&self.shared).stored += std::mem::take(&mut self.stored);
            self.wake();
        }
    }

    /// Tells the mio loop the bridge stopped, and why.
    fn stop(&mut self, news: IngestNews) {
        {
            let mut shared = lock(&self.shared);
            shared.stored += std::mem::take(&mut self.stored);
            shared.fatal = Some(news);
        }
        self.wake();
    }

    /// Wakes the mio loop.
    fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            error!("ingest bridge: cannot wake the loop: {err}");
        }
    }
}

/// Whether a publish failed because JetStream answered with an error (as
/// opposed to the connection failing): such a refusal is final, except
/// "temporarily unavailable" (503, 10008), which a server that just
/// restarted answers until JetStream is up.
fn is_refusal(err: &PublishError) -> bool {
    let api =
        std::error::Error::source(err).and_then(|source| source.downcast_ref::<jetstream::Error>());
    match api {
        Some(api) => {
            api.code() != 503 && api.error_code() != jetstream::ErrorCode::CLUSTER_NOT_AVAILABLE
        }
        None => false,
    }
}

/// The result of the oldest ack awaited; never ready when none is.
async fn settle_front(
    inflight: &mut VecDeque<tokio::task::JoinHandle<Acked>>,
) -> Result<Acked, tokio::task::JoinError> {
    match inflight.front_mut() {
        Some(ack) => ack.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; never wakes when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A writer id for this ingest: random, so two ingests (or one restarted)
/// never share one. Std's hasher keys are random per process; the time and
/// pid make two in one process differ too.
fn writer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}
