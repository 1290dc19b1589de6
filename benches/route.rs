//! The pure hot path end to end, without sockets: source bytes → inbox
//! framing → parse → reorder window → router → one [`Outbox`] per
//! connection, for 100, 1,000 and 10,000 registered connections.
//!
//! The stream is the simulator's default run in miniature: 1,000,000
//! default-mix events in shuffled batches of up to 100, with ten users per
//! connection, connections claiming the ids the simulator's clients claim.
//! Every iteration routes it through a fresh [`Pipeline`] (built outside the
//! timed part: the sequence starts at 1 with an empty graph, as the stream
//! expects) into outboxes that stay warm across iterations. Like a server
//! turn, every 8 MiB of source the outboxes that gained frames are drained
//! (to `io::sink`, so no copy) and shrunk by the server's rule (idle, and
//! far above both 64 KiB and the batch just written). Throughput is notifications (frames appended to an outbox).

use std::hint::black_box;
use std::io;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use follower_maze::conn::{Inbox, Outbox};
use follower_maze::pipeline::{Deliver, Pipeline};
use follower_maze::protocol::Line;
use follower_maze::router::ConnKey;
use follower_maze::sim::plan::Plan;
use follower_maze::sim::{CountingSink, Generator, SimConfig};

/// Events per iteration.
const EVENTS: u64 = 1_000_000;
/// The server's source inbox and read size.
const INBOX_BYTES: usize = 1024 * 1024;
/// The server's largest turn: source bytes routed before outboxes are written.
const TURN_BYTES: usize = 8 * 1024 * 1024;
/// The server's idle outbox size past which the buffer is freed.
const OUTBOX_KEEP_BYTES: usize = 64 * 1024;

/// The outboxes, one per connection key, and which gained frames this turn.
#[derive(Default)]
struct Outboxes {
    /// Indexed by connection key.
    outboxes: Vec<Outbox>,
    /// Keys to drain at the end of the turn.
    dirty: Vec<ConnKey>,
    /// Frames appended so far.
    notifications: u64,
}

impl Deliver for Outboxes {
    fn deliver(&mut self, conn: ConnKey, frame: &[u8]) {
        let outbox = &mut self.outboxes[conn];
        if outbox.pending() == 0 {
            self.dirty.push(conn);
        }
        outbox.push(frame);
        self.notifications += 1;
    }
}

impl Outboxes {
    /// The end of a turn: every dirty outbox written out.
    fn drain(&mut self) {
        for &key in &self.dirty {
            let outbox = &mut self.outboxes[key];
            // `io::sink` takes everything, so the outbox ends empty.
            let written = black_box(outbox.write_to(&mut io::sink()).unwrap_or(0));
            outbox.shrink_if_idle(OUTBOX_KEEP_BYTES, written);
        }
        self.dirty.clear();
    }
}

/// One case: the stream and the connections for `connections` clients.
struct Case {
    /// The source's bytes.
    bytes: Vec<u8>,
    /// Connection key `i` claims `users[i]`.
    users: Vec<u64>,
}

impl Case {
    fn new(connections: u32) -> Case {
        let config = SimConfig {
            total_events: EVENTS,
            concurrency_level: connections,
            ..SimConfig::default()
        };
        let plan = Plan::new(&config);
        let mut generator = Generator::new(&config.generator(), &plan.verified);
        let mut bytes = Vec::with_capacity(EVENTS as usize * 20);
        while generator
            .next_batch(&mut bytes, &mut CountingSink::default())
            .is_some()
        {}
        let users = plan.verified.iter().map(|&u| u64::from(u)).collect();
        Case { bytes, users }
    }

    /// A pipeline of the server's default size with every connection
    /// registered.
    fn pipeline(&self) -> Pipeline {
        let mut pipeline = Pipeline::new(1 << 20, 64 * 1024 * 1024, Duration::from_secs(1));
        for (key, &user) in self.users.iter().enumerate() {
            pipeline.register(user, key);
        }
        pipeline
    }

    /// Routes the whole stream through `pipeline` into `out` in server-sized
    /// reads and turns.
    fn route(&self, pipeline: &mut Pipeline, inbox: &mut Inbox, out: &mut Outboxes) {
        let now = Instant::now();
        let mut bytes = &self.bytes[..];
        let mut turn = 0;
        loop {
            while let Some(line) = inbox.next_line() {
                if let Line::Frame { start, end } = line {
                    let routed = pipeline.on_frame(inbox.frame(start, end), now, out);
                    debug_assert!(routed.is_ok());
                }
            }
            inbox.compact();
            if turn >= TURN_BYTES || bytes.is_empty() {
                out.drain();
                turn = 0;
            }
            if bytes.is_empty() {
                return;
            }
            // Reading from a slice cannot fail; it advances `bytes`.
            turn += inbox.read_from(&mut bytes, INBOX_BYTES).unwrap_or(0);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for connections in [100u32, 1000, 10_000] {
        let case = Case::new(connections);
        let mut inbox = Inbox::new(INBOX_BYTES, 1024);
        let mut out = Outboxes {
            outboxes: (0..connections).map(|_| Outbox::default()).collect(),
            ..Outboxes::default()
        };
        // One untimed pass: counts the notifications per iteration, checks
        // the pipeline routed every event, and warms the outboxes.
        let mut pipeline = case.pipeline();
        case.route(&mut pipeline, &mut inbox, &mut out);
        let counters = pipeline.counters();
        assert_eq!(counters.events_routed, EVENTS);
        assert_eq!(counters.notifications, out.notifications);
        group.throughput(Throughput::Elements(out.notifications));
        group.bench_function(BenchmarkId::new("connections", connections), |b| {
            b.iter_batched_ref(
                || case.pipeline(),
                |pipeline| case.route(pipeline, &mut inbox, &mut out),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
