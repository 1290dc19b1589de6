//! The edge's bridge: reads the whole stream, in order, from its first
//! message, and hands each record to the mio loop through a bounded
//! channel.
//!
//! Reading goes through an ordered pull consumer: ephemeral, unacknowledged,
//! and recreated by the client from the next sequence whenever it notices a
//! gap, missed heartbeats, or a deleted consumer, which is what a server
//! restart looks like. Nothing is pulled unless the channel has room for
//! it; when the loop leaves the channel full for [`STALL`], the consumer is
//! dropped altogether (so no pull request keeps fetching behind its back)
//! and a new one starts from the next sequence once there is room. So the
//! backlog stays in JetStream, and the process holds at most `capacity`
//! records in the channel plus one pull batch of at most `capacity`.
//!
//! What each message means (a record, a gap, a repeat, an undecodable
//! message, the end of catch-up) is [`Following`]'s, a state machine with
//! no I/O (see [`super::follow`]); this module runs it: the handle the mio
//! loop holds, and the bridge thread, which moves messages from the
//! consumer to the machine and its answers to the channel.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::stream;
use futures_util::StreamExt;
use log::{debug, error, info, warn};
use mio::Waker;
use tokio::sync::{mpsc, oneshot, watch};

use super::backoff::Backoff;
use super::follow::Following;
use super::{StreamSettings, connect, ensure_stream, spawn_bridge};
use crate::engine::records::Record;

/// How long the channel may stay full before the consumer is dropped.
const STALL: Duration = Duration::from_secs(5);
/// The largest pull batch, whatever the capacity (the client's own
/// default for ordered consumers).
const MAX_BATCH: usize = 500;
/// The first wait before a failed consumer creation is retried; it doubles
/// on each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before a failed consumer creation is retried.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What an edge learns from the stream, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeNews {
    /// The record stored at `stream_seq`. Records come in increasing
    /// stream order; a sequence skipped was removed by the stream's limits
    /// (logged) or did not decode (logged).
    Record {
        /// Its sequence in the stream.
        stream_seq: u64,
        /// The record.
        record: Record,
    },
    /// Every record up to `stream_seq`, the stream's last sequence when the
    /// bridge started, has been handed over: the edge's graph is as
    /// current as the stream was at start, so it may start serving. Sent
    /// once, right after the record at that sequence (at once if the
    /// stream was empty).
    CaughtUp {
        /// The stream's last sequence at start.
        stream_seq: u64,
    },
    /// Reading the stream failed for good; the bridge has stopped.
    Failed(String),
}

/// The mio loop's handle on the edge's bridge thread.
pub struct EdgeBridge {
    /// News from the thread, in stream order.
    news: mpsc::Receiver<EdgeNews>,
    /// Dropped to stop the thread.
    stop: Option<oneshot::Sender<()>>,
    /// The thread; `None` once joined.
    thread: Option<JoinHandle<()>>,
    /// Whether [`EdgeNews::Failed`] was handed out.
    failed: bool,
}

impl EdgeBridge {
    /// Connects to nats-server (blocking, giving up after
    /// `settings.timeout` with an error naming the server), ensures the
    /// stream (creating it if missing, so edges may start before the
    /// ingest), reads its last sequence, and starts the bridge thread. It
    /// reads the whole stream from its first message, in order, and hands
    /// each record over through a channel of `capacity` items (at least
    /// 1), waking `waker` after each; when the channel is full it stops
    /// pulling, and JetStream holds the backlog.
    pub fn start(
        settings: StreamSettings,
        capacity: usize,
        waker: Arc<Waker>,
    ) -> io::Result<EdgeBridge> {
        let capacity = capacity.max(1);
        let (news_tx, news_rx) = mpsc::channel(capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (thread, ()) = spawn_bridge("nats-edge-bridge", move |ready| async move {
            let setup = async {
                let connection = connect(&settings, "edge", 1).await?;
                let stream = ensure_stream(&connection.context, &settings, "edge").await?;
                let last = stream.cached_info().state.last_sequence;
                let messages = open(&stream, 1, capacity).await.map_err(|why| {
                    io::Error::other(format!(
                        "edge bridge: cannot read stream {}: {why}",
                        settings.stream
                    ))
                })?;
                Ok::<_, io::Error>((stream, connection.reconnects, last, messages))
            };
            let (stream, reconnects, last, messages) = match setup.await {
                Ok(setup) => setup,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            info!(
                "edge bridge: reading stream {} from its start; it ends at sequence {last}",
                settings.stream
            );
            if ready.send(Ok(())).is_err() {
                return;
            }
            let reader = Reader {
                stream_name: settings.stream.clone(),
                stream,
                reconnects,
                batch: capacity,
                news: news_tx,
                waker,
                following: Following::new(last),
            };
            reader.run(messages, stop_rx).await;
        })?;
        Ok(EdgeBridge {
            news: news_rx,
            stop: Some(stop_tx),
            thread: Some(thread),
            failed: false,
        })
    }

    /// The next piece of news, if any, without blocking. A thread that
    /// ended without saying why (it panicked) is reported as
    /// [`EdgeNews::Failed`] too, once.
    pub fn try_next(&mut self) -> Option<EdgeNews> {
        let news = match self.news.try_recv() {
            Ok(news) => news,
            Err(mpsc::error::TryRecvError::Empty) => return None,
            Err(mpsc::error::TryRecvError::Disconnected) if self.failed => return None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                EdgeNews::Failed("the edge bridge thread ended unexpectedly".to_string())
            }
        };
        if matches!(news, EdgeNews::Failed(_)) {
            self.failed = true;
        }
        Some(news)
    }

    /// How many pieces of news wait in the channel (at most the capacity).
    pub fn queued(&self) -> usize {
        self.news.len()
    }
}

impl Drop for EdgeBridge {
    /// Stops the thread, wherever it waits, and joins it.
    fn drop(&mut self) {
        self.stop = None;
        self.news.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("edge bridge: the bridge thread panicked");
        }
    }
}

/// An ordered consumer of `stream` from sequence `from` (1: the start),
/// pulling at most `batch` messages at a time.
async fn open(stream: &stream::Stream, from: u64, batch: usize) -> Result<Ordered, String> {
    let deliver_policy = if from <= 1 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: from,
        }
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy,
            max_batch: batch.min(MAX_BATCH) as i64,
            ..Default::default()
        })
        .await
        .map_err(|err| format!("cannot create a consumer: {err}"))?;
    consumer
        .messages()
        .await
        .map_err(|err| format!("cannot pull: {err}"))
}

/// Why reading stopped.
enum Stop {
    /// The handle was dropped.
    Asked,
    /// Fatal; the message is already sent, if the channel took it.
    Failed,
}

/// The bridge thread's state: the [`Following`] machine, and the consumer
/// and channel it is fed from and answers into.
struct Reader {
    /// The stream's name, for messages.
    stream_name: String,
    /// The stream, to create consumers on.
    stream: stream::Stream,
    /// Changes when the client connected again after losing the
    /// connection.
    reconnects: watch::Receiver<u64>,
    /// The largest pull batch.
    batch: usize,
    /// Where news goes.
    news: mpsc::Sender<EdgeNews>,
    /// Wakes the mio loop.
    waker: Arc<Waker>,
    /// What each message means, and where a new consumer starts.
    following: Following,
}

impl Reader {
    /// Reads until stopped or failed.
    async fn run(mut self, first: Ordered, mut stop: oneshot::Receiver<()>) {
        if let Some(news) = self.following.start()
            && self.send(news, &mut stop).await.is_err()
        {
            return;
        }
        let mut messages = Some(first);
        loop {
            let result = match messages.take() {
                Some(ordered) => self.read(ordered, &mut stop).await,
                None => self.reopen(&mut stop).await,
            };
            match result {
                Ok(Some(ordered)) => messages = Some(ordered),
                Ok(None) => {} // the consumer was dropped: open a new one
                Err(Stop::Asked) => return,
                Err(Stop::Failed) => return,
            }
        }
    }

    /// Hands over what `messages` delivers, while the channel has room.
    /// Returns `None` to drop the consumer and start a new one from the
    /// next sequence (when there is room): once the channel stayed full
    /// for [`STALL`], when the client connected again (a restarted server
    /// has lost the consumer, and the client would take many seconds to
    /// notice), and when the consumer fails.
    async fn read(
        &mut self,
        mut messages: Ordered,
        stop: &mut oneshot::Receiver<()>,
    ) -> Result<Option<Ordered>, Stop> {
        loop {
            // Room first: nothing is pulled that the channel cannot take.
            let permit = tokio::select! {
                _ = &mut *stop => return Err(Stop::Asked),
                permit = tokio::time::timeout(STALL, self.news.reserve()) => match permit {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(Stop::Asked), // the handle is gone
                    Err(_) => {
                        debug!(
                            "edge bridge: the loop left the channel full for {STALL:?}; dropping the consumer of stream {} until it has room",
                            self.stream_name
                        );
                        return Ok(None);
                    }
                },
            };
            let message = tokio::select! {
                _ = &mut *stop => return Err(Stop::Asked),
                () = changed(&mut self.reconnects) => {
                    info!(
                        "edge bridge: reading stream {} again from sequence {} after reconnecting",
                        self.stream_name,
                        self.following.resume_from()
                    );
                    return Ok(None);
                }
                message = messages.next() => message,
            };
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    warn!(
                        "edge bridge: reading stream {}: {err}; reading again from sequence {}",
                        self.stream_name,
                        self.following.resume_from()
                    );
                    return Ok(None);
                }
                None => {
                    // An ordered consumer recreates itself rather than end:
                    // one that ended cannot go on.
                    let why = format!("the consumer of stream {} ended", self.stream_name);
                    error!("edge bridge: {why}");
                    permit.send(EdgeNews::Failed(why));
                    self.wake();
                    return Err(Stop::Failed);
                }
            };
            let seq = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(err) => {
                    // It cannot be placed in the stream's order.
                    warn!(
                        "edge bridge: stream {}: a message without a stream sequence ({err}); skipped",
                        self.stream_name
                    );
                    continue;
                }
            };
            let handed = self
                .following
                .message(seq, message.headers.as_ref(), &message.payload);
            if let Some(gone) = handed.gone {
                warn!(
                    "edge bridge: stream {}: sequences {} to {} are gone (removed by the stream's limits): the records read from here miss them",
                    self.stream_name,
                    gone.start(),
                    gone.end()
                );
            }
            if let Some(skipped) = handed.skipped {
                warn!(
                    "edge bridge: stream {} sequence {seq} {skipped}; skipped",
                    self.stream_name
                );
            }
            match handed.record {
                Some(record) => {
                    permit.send(record);
                    self.wake();
                }
                None => drop(permit),
            }
            if let Some(news) = handed.caught_up {
                info!(
                    "edge bridge: caught up with stream {} at sequence {seq}",
                    self.stream_name
                );
                self.send(news, stop).await?;
            }
        }
    }

    /// Waits for room in the channel, then starts a new consumer from the
    /// sequence after the last one handed over, retrying with back-off
    /// while the server is unreachable.
    async fn reopen(&mut self, stop: &mut oneshot::Receiver<()>) -> Result<Option<Ordered>, Stop> {
        tokio::select! {
            _ = &mut *stop => return Err(Stop::Asked),
            permit = self.news.reserve() => match permit {
                Ok(permit) => drop(permit),
                Err(_) => return Err(Stop::Asked),
            },
        }
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        loop {
            let from = self.following.resume_from();
            let opened = tokio::select! {
                _ = &mut *stop => return Err(Stop::Asked),
                opened = open(&self.stream, from, self.batch) => opened,
            };
            match opened {
                Ok(ordered) => {
                    debug!(
                        "edge bridge: reading stream {} again from sequence {from}",
                        self.stream_name
                    );
                    return Ok(Some(ordered));
                }
                Err(why) => {
                    let wait = backoff.failed();
                    warn!(
                        "edge bridge: stream {}: {why}; retrying in {wait:?}",
                        self.stream_name
                    );
                    tokio::select! {
                        _ = &mut *stop => return Err(Stop::Asked),
                        _ = tokio::time::sleep(wait) => {},
                    }
                }
            }
        }
    }

    /// Sends `news`, waiting for room, and wakes the loop.
    async fn send(&self, news: EdgeNews, stop: &mut oneshot::Receiver<()>) -> Result<(), Stop> {
        tokio::select! {
            _ = &mut *stop => return Err(Stop::Asked),
            sent = self.news.send(news) => if sent.is_err() {
                return Err(Stop::Asked);
            },
        }
        self.wake();
        Ok(())
    }

    /// Wakes the mio loop.
    fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            error!("edge bridge: cannot wake the loop: {err}");
        }
    }
}

/// Resolves when `reconnects` changes; never if the client is gone.
async fn changed(reconnects: &mut watch::Receiver<u64>) {
    if reconnects.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
