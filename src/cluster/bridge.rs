//! The one thread per process that talks to NATS JetStream for the mio
//! loop.
//!
//! The mio loop is single-threaded and owns every socket and all state; the
//! NATS client ([`async_nats`]) needs an async runtime. So each bridge is
//! one thread running a current-thread tokio runtime, and the two sides
//! meet only at bounded channels and a [`mio::Waker`]: the loop hands work
//! over without blocking, the thread wakes the loop whenever it has news,
//! and the loop takes the news without blocking.
//!
//! - [`IngestBridge`]: appends [`Record`]s to the stream, pipelined, in
//!   order, each stored exactly once however often it must be retried, and
//!   fenced off if another ingest writes to the same stream.
//! - [`EdgeBridge`]: reads the whole stream in order from its first
//!   message, through an ordered consumer that survives server restarts,
//!   and says when it has caught up with what was there at start.
//!
//! # Structure
//!
//! Each bridge's rules are a state machine with no I/O and no clock, like
//! the engine: the ingest's appending (what to publish, what each ack or
//! refusal means, when to retry, when it is fenced) and the edge's reading
//! (what each message means, where to resume, when it has caught up). The
//! async code around them only carries messages between NATS and the
//! machine, so the rules are tested as tables without a nats-server, and
//! only the NATS calls themselves need one.
//!
//! # Wire format
//!
//! One JetStream message per [`Record`] on subject `{stream}.log`:
//! `Nats-Msg-Id` is [`Record::id`], `Nats-Expected-Last-Sequence` the stream
//! sequence the ingest stored last, `Follower-Maze-Run` and
//! `Follower-Maze-Kind` (`events` or `new-run`), and for events
//! `Follower-Maze-First-Seq` and `Follower-Maze-Last-Seq`; the payload is
//! an events record's lines (empty for a new run). See [`encode`] and
//! [`decode`].
//!
//! [`Record`]: crate::engine::records::Record
//! [`Record::id`]: crate::engine::records::Record::id

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use log::{debug, error, info, warn};
use tokio::sync::watch;

mod append;
mod backoff;
mod edge;
mod follow;
mod ingest;
mod wire;

pub use edge::{EdgeBridge, EdgeNews};
pub use ingest::{IngestBridge, IngestNews, IngestStart};
pub use wire::{
    DecodeError, FIRST_SEQ_HEADER, KIND_EVENTS, KIND_HEADER, KIND_NEW_RUN, LAST_SEQ_HEADER,
    RUN_HEADER, decode, encode, message_id,
};

/// Where the cluster's log lives and what it may hold.
///
/// An edge that starts, or restarts, rebuilds the follow graph by reading
/// the stream from its first message, and a graph is only right if it saw
/// every record of the current run. So the limits here must keep at least
/// the whole current run: when they remove the run's first records, a new
/// edge serves a graph missing their follows (and logs the gap). Old runs
/// may go: a [`NewRun`](crate::engine::records::Record::NewRun) record makes
/// every reader forget the graph anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// The nats-server to connect to, e.g. `nats://127.0.0.1:4222`, or
    /// the nodes of a cluster separated by commas.
    pub url: String,
    /// The stream's name; its one subject is `{stream}.log`. Every ingest
    /// and edge of one cluster names the same stream, and no other
    /// application may write to it.
    pub stream: String,
    /// The most bytes the stream keeps (JetStream `max_bytes`); past it,
    /// the oldest messages are removed (discard old). Must hold the whole
    /// current run. Used only when the stream is created.
    pub max_bytes: i64,
    /// The longest a message is kept (JetStream `max_age`); zero keeps
    /// messages until `max_bytes` removes them. A non-zero age removes the
    /// start of a run that lasts longer than it: leave it zero unless runs
    /// are known to be short. Used only when the stream is created.
    pub max_age: Duration,
    /// How long JetStream remembers a `Nats-Msg-Id` (its duplicate
    /// window): an append retried within it is stored once. The ingest
    /// also recognises its own record past the window (see
    /// [`IngestBridge`]), so this bounds only how cheaply retries are
    /// recognised. Used only when the stream is created.
    pub duplicate_window: Duration,
    /// Copies of the stream JetStream keeps, on as many nodes of a NATS
    /// cluster (JetStream takes 1 to 5): with 3, losing one node loses
    /// nothing. Used only when the stream is created.
    pub replicas: usize,
    /// How long to wait for the server: connecting, each JetStream API
    /// request, and each publish acknowledgement. An append whose ack does
    /// not come within it is retried.
    pub timeout: Duration,
}

impl StreamSettings {
    /// The settings a cluster uses unless told otherwise: 8 GiB, no age
    /// limit, a two-minute duplicate window, one replica, a five-second
    /// timeout. The stream is created with file storage, discard old and
    /// the server's largest message size.
    pub fn new(url: impl Into<String>, stream: impl Into<String>) -> StreamSettings {
        StreamSettings {
            url: url.into(),
            stream: stream.into(),
            max_bytes: 8 << 30,
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            timeout: Duration::from_secs(5),
        }
    }

    /// The one subject of the stream, which every record is published to.
    pub fn subject(&self) -> String {
        format!("{}.log", self.stream)
    }

    /// The JetStream configuration the stream is created with.
    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subject()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            discard: stream::DiscardPolicy::Old,
            max_bytes: self.max_bytes,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }
}

/// A connection to nats-server and what a bridge needs of it.
struct Connection {
    /// JetStream on the connection.
    context: jetstream::Context,
    /// Counts the times the client connected again after losing the
    /// connection: a server that restarted has lost what is not stored,
    /// such as an edge's ephemeral consumer.
    reconnects: watch::Receiver<u64>,
}

/// The servers of a `--nats-url`: one URL, or several separated by commas
/// (the nodes of a NATS cluster, as the `nats` CLI takes them). The client
/// tries them in turn to connect, and again to reconnect.
fn server_list(urls: &str) -> Result<Vec<&str>, &'static str> {
    let servers: Vec<&str> = urls.split(',').map(str::trim).collect();
    if servers.iter().any(|server| server.is_empty()) {
        return Err("an empty server in the list");
    }
    Ok(servers)
}

/// Connects to the server in `settings` as `role` (for the server's
/// connection list and the log), giving up after `settings.timeout`; its
/// JetStream context allows `max_acks` publishes awaiting their acks at
/// once (the client's default is 5,000). The client reconnects by itself
/// for as long as the bridge lives.
async fn connect(
    settings: &StreamSettings,
    role: &'static str,
    max_acks: usize,
) -> io::Result<Connection> {
    let url = settings.url.clone();
    let (reconnected, reconnects) = watch::channel(0u64);
    let reconnected = Arc::new(reconnected);
    let disconnected = Arc::new(AtomicBool::new(false));
    let options = async_nats::ConnectOptions::new()
        .name(format!("follower-maze {role}"))
        .connection_timeout(settings.timeout)
        .request_timeout(Some(settings.timeout))
        .event_callback(move |event| {
            let reconnected = Arc::clone(&reconnected);
            let disconnected = Arc::clone(&disconnected);
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if disconnected.swap(false, Ordering::Relaxed) {
                            info!("{role} bridge: connected to nats-server again");
                            reconnected.send_modify(|count| *count += 1);
                        }
                    }
                    async_nats::Event::Disconnected => {
                        disconnected.store(true, Ordering::Relaxed);
                        warn!("{role} bridge: disconnected from nats-server, reconnecting");
                    }
                    // Each failed reconnection attempt; `Disconnected` said it.
                    async_nats::Event::ClientError(err) => {
                        debug!("{role} bridge: nats-server connection: {err}")
                    }
                    other => warn!("{role} bridge: nats-server connection: {other}"),
                }
            }
        });
    let unreachable = |why: String| {
        io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("{role} bridge: cannot connect to nats-server at {url}: {why}"),
        )
    };
    let servers = server_list(&settings.url).map_err(|why| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{role} bridge: --nats-url {url:?}: {why}"),
        )
    })?;
    let client = tokio::time::timeout(settings.timeout, options.connect(servers))
        .await
        .map_err(|_| unreachable(format!("no answer within {:?}", settings.timeout)))?
        .map_err(|err| unreachable(err.to_string()))?;
    info!(
        "{role} bridge: connected to nats-server at {}",
        settings.url
    );
    let context = jetstream::ContextBuilder::new()
        .timeout(settings.timeout)
        .max_ack_inflight(max_acks.max(1))
        .build(client);
    Ok(Connection {
        context,
        reconnects,
    })
}

/// The stream in `settings`, created if missing. An existing stream must
/// have exactly the one subject `{stream}.log`: anything else is another
/// application's stream, and writing to it or reading it as a log would be
/// wrong.
async fn ensure_stream(
    context: &jetstream::Context,
    settings: &StreamSettings,
    role: &str,
) -> io::Result<stream::Stream> {
    let name = &settings.stream;
    let failed = |what: &str, why: String| {
        io::Error::other(format!("{role} bridge: {what} stream {name}: {why}"))
    };
    let stream = match context.get_stream(name).await {
        Ok(stream) => stream,
        Err(err) if is_not_found(&err) => {
            match context.create_stream(settings.stream_config()).await {
                Ok(stream) => {
                    info!(
                        "{role} bridge: created stream {name} (subject {}, max {} bytes, max age {:?}, duplicate window {:?}, {} replica(s))",
                        settings.subject(),
                        settings.max_bytes,
                        settings.max_age,
                        settings.duplicate_window,
                        settings.replicas
                    );
                    stream
                }
                // Another process may have created it meanwhile.
                Err(create) => context
                    .get_stream(name)
                    .await
                    .map_err(|_| failed("cannot create", create.to_string()))?,
            }
        }
        Err(err) => return Err(failed("cannot look up", err.to_string())),
    };
    let config = &stream.cached_info().config;
    if config.subjects != [settings.subject()] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{role} bridge: stream {name} exists with subjects {:?}, not [{:?}]: it is not a follower-maze log (choose another stream name, or delete it)",
                config.subjects,
                settings.subject()
            ),
        ));
    }
    let wanted = settings.stream_config();
    if (config.max_bytes, config.max_age, config.duplicate_window)
        != (wanted.max_bytes, wanted.max_age, wanted.duplicate_window)
    {
        warn!(
            "{role} bridge: stream {name} exists with max {} bytes, max age {:?}, duplicate window {:?}, not the {} bytes, {:?}, {:?} configured: keeping the stream's",
            config.max_bytes,
            config.max_age,
            config.duplicate_window,
            wanted.max_bytes,
            wanted.max_age,
            wanted.duplicate_window
        );
    }
    Ok(stream)
}

/// Whether looking a stream up failed because there is none.
fn is_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(ref js) if js.code() == 404
    )
}

/// Starts a bridge thread named `name`: it builds a current-thread runtime
/// and runs `body`, which does its blocking-for-the-caller setup first and
/// hands the outcome to the `ready` sender before running on. Returns once
/// setup is done (its own timeouts bound it) with what setup handed over.
fn spawn_bridge<T, F, Fut>(name: &str, body: F) -> io::Result<(JoinHandle<()>, T)>
where
    T: Send + 'static,
    F: FnOnce(std_mpsc::SyncSender<io::Result<T>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
    let thread_name = name.to_string();
    let handle = thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            runtime.block_on(body(ready_tx));
            debug!("{thread_name}: stopped");
        })?;
    match ready_rx.recv() {
        Ok(Ok(ready)) => Ok((handle, ready)),
        Ok(Err(err)) => {
            let _ = handle.join();
            Err(err)
        }
        Err(_) => {
            let _ = handle.join();
            let err = io::Error::other(format!("{name}: the thread ended during setup"));
            error!("{err}");
            Err(err)
        }
    }
}

/// What the tests of the bridge's machines share: a writer id and a record
/// of one line.
#[cfg(test)]
mod fixtures {
    use crate::engine::records::Record;

    /// The writer id of the records under test.
    pub(super) const WRITER: &str = "0123456789abcdef";

    /// The record of run 1 that holds the one event line of seq `seq`.
    pub(super) fn record(seq: u64) -> Record {
        Record::Events {
            run: 1,
            first_seq: seq,
            last_seq: seq,
            lines: format!("{seq}|B\n").into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_list;

    #[test]
    fn a_nats_url_names_one_server_or_a_list() {
        assert_eq!(server_list("nats://a:4222"), Ok(vec!["nats://a:4222"]));
        assert_eq!(
            server_list("nats://a:4222, nats://b:4222,nats://c:4222"),
            Ok(vec!["nats://a:4222", "nats://b:4222", "nats://c:4222"])
        );
        assert!(server_list("nats://a:4222,,nats://b:4222").is_err());
        assert!(server_list("").is_err());
    }
}
