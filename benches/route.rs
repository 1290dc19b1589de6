//! The pure hot path end to end, without sockets: source bytes → inbox
//! framing → parse → reorder window → router → one outbox per connection
//! and the shared broadcast log, for 100, 1,000 and 10,000 registered
//! connections.
//!
//! The stream is the simulator's default run in miniature: 1,000,000
//! default-mix events in shuffled batches of up to 100, with ten users per
//! connection, connections claiming the ids the simulator's clients claim.
//! Every iteration routes it through a fresh [`Pipeline`] (built outside the
//! timed part: the sequence starts at 1 with an empty graph, as the stream
//! expects) into outboxes that stay warm across iterations. Like a server
//! turn, every 8 MiB of source the outboxes are drained (to `io::sink`, so
//! no copy) and shrunk by the server's rule, and the log released (see
//! `tests/support/sink_path.rs`). Throughput is notifications: frames
//! owed to a connection, whether copied into its outbox or shared.

use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use follower_maze::engine::inbox::Inbox;
use follower_maze::engine::pipeline::Pipeline;
use follower_maze_sim::plan::Plan;
use follower_maze_sim::{CountingSink, Generator, SimConfig};

/// Events per iteration.
const EVENTS: u64 = 1_000_000;
#[path = "../tests/support/sink_path.rs"]
mod sink_path;

use sink_path::{INBOX_BYTES, SinkOutboxes, route_in_turns};

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
        let mut pipeline = Pipeline::new(
            1 << 20,
            64 * 1024 * 1024,
            Duration::from_secs(1),
            Duration::from_secs(10),
            Instant::now(),
        );
        for (key, &user) in self.users.iter().enumerate() {
            pipeline.register(user, key);
        }
        pipeline
    }

    /// Routes the whole stream through `pipeline` into `out` in server-sized
    /// reads and turns.
    fn route(&self, pipeline: &mut Pipeline, inbox: &mut Inbox, out: &mut SinkOutboxes) {
        route_in_turns(pipeline, inbox, out, &self.bytes);
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
        let mut out = SinkOutboxes::new(connections as usize, 0);
        // One untimed pass: counts the notifications per iteration, checks
        // the pipeline routed every event, and warms the outboxes.
        let mut pipeline = case.pipeline();
        case.route(&mut pipeline, &mut inbox, &mut out);
        let counters = pipeline.counters();
        assert_eq!(counters.events_routed, EVENTS);
        group.throughput(Throughput::Elements(counters.notifications));
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
