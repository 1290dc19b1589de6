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
//!
//! # Structure
//!
//! Those rules are [`Appending`]'s, a state machine with no I/O and no
//! clock (see [`super::append`]). This module is what runs it: the handle
//! the mio loop holds, and the bridge thread, which hands the machine each
//! record, publish outcome, read-back and deadline, and carries out the
//! publishes, read-backs and news the machine asks for.

use std::collections::VecDeque;
use std::io;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, stream};
use log::{error, info};
use mio::Waker;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::append::{AckOutcome, Action, Appending, Outgoing, ReadBack};
use super::{StreamSettings, connect, ensure_stream, spawn_bridge, wire};
use crate::engine::records::Record;

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
                    context,
                    stream,
                    machine: Appending::new(
                        settings.stream.clone(),
                        thread_writer,
                        start.last_stream_seq,
                    ),
                    inflight: VecDeque::new(),
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

/// The outcome of one publish, as async-nats gives it.
type Acked = Result<PublishAck, PublishError>;

/// The bridge thread's state: the [`Appending`] machine, and the NATS
/// calls and channels that carry out what it asks. Every decision is the
/// machine's; this only moves messages between it and NATS.
struct Appender {
    /// The subject records are published to.
    subject: String,
    /// The JetStream context publishes go through.
    context: jetstream::Context,
    /// The stream, to read a message back when the machine asks.
    stream: stream::Stream,
    /// What to publish, what each outcome means, when to stop.
    machine: Appending,
    /// Acks awaited, oldest first: one per publish the machine counts in
    /// flight, so that outcomes reach it in the order it asked.
    inflight: VecDeque<tokio::task::JoinHandle<Acked>>,
    /// Where news goes.
    shared: Arc<Mutex<Shared>>,
    /// Wakes the mio loop.
    waker: Arc<Waker>,
}

impl Appender {
    /// Appends what comes in on `records` until it closes and everything
    /// is stored (or the drain deadline passes), or until a fatal error.
    async fn run(mut self, mut records: mpsc::Receiver<Record>) {
        let mut input_open = true;
        loop {
            if self.carry_out().await.is_break() || self.machine.is_finished() {
                return;
            }
            tokio::select! {
                biased;
                record = records.recv(), if input_open => match record {
                    Some(record) => self.machine.enqueue(record),
                    None => {
                        input_open = false;
                        self.machine.close_input(now());
                    }
                },
                acked = settle_front(&mut self.inflight) => {
                    self.inflight.pop_front();
                    self.settle(acked).await;
                    // Every other ack already in too, so that the loop is
                    // woken once for them all.
                    while !self.machine.has_stopped()
                        && self.inflight.front().is_some_and(|ack| ack.is_finished())
                    {
                        let Some(ack) = self.inflight.pop_front() else {
                            break;
                        };
                        self.settle(ack.await).await;
                    }
                },
                () = sleep_until(self.machine.deadline()) => self.machine.tick(now()),
            }
        }
    }

    /// Does what the machine asks until it asks nothing more: publishes,
    /// tells the loop. `Break` once it stopped the bridge.
    async fn carry_out(&mut self) -> ControlFlow<()> {
        while let Some(action) = self.machine.poll() {
            match action {
                Action::Publish(outgoing) => self.publish(outgoing).await,
                Action::Tell { stored } => {
                    lock(&self.shared).stored += stored;
                    self.wake();
                }
                Action::Stop { stored, news } => {
                    {
                        let mut shared = lock(&self.shared);
                        shared.stored += stored;
                        shared.fatal = Some(news);
                    }
                    self.wake();
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Publishes one record; its ack is awaited with the others'.
    async fn publish(&mut self, outgoing: Outgoing) {
        let publish = self
            .context
            .publish_with_headers(self.subject.clone(), outgoing.headers, outgoing.payload)
            .await;
        // The ack is awaited on a task of its own so that its timeout runs
        // from now, alongside the others'.
        let ack = match publish {
            Ok(ack) => tokio::spawn(ack.into_future()),
            Err(err) => tokio::spawn(async move { Err(err) }),
        };
        self.inflight.push_back(ack);
    }

    /// Hands the outcome of the oldest publish (already taken off
    /// `inflight`) to the machine, and reads a message back if it asks:
    /// nothing else happens meanwhile, as the machine expects.
    async fn settle(&mut self, acked: Result<Acked, tokio::task::JoinError>) {
        let outcome = match acked {
            Ok(acked) => AckOutcome::from_publish(acked),
            Err(err) => AckOutcome::Lost(format!("the ack task failed: {err}")),
        };
        if let Some(seq) = self.machine.acked(outcome, now()) {
            let answer = ReadBack::from_read(self.stream.get_raw_message(seq).await);
            self.machine.read_back(answer, now());
        }
    }

    /// Wakes the mio loop.
    fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            error!("ingest bridge: cannot wake the loop: {err}");
        }
    }
}

/// The runtime's clock as the machine takes it. Tokio's, not the system's,
/// so that the machine and the sleeps agree.
fn now() -> std::time::Instant {
    Instant::now().into_std()
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
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
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
