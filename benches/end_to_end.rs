//! End to end over loopback: 1,000,000 default-mix events through a real
//! server (a [`BackgroundServer`] thread) to the simulator's 100 verified
//! clients.
//!
//! Each iteration is a whole simulator run against a fresh server. The time
//! counted is the run's active span as the simulator measures it, from the
//! first event written to the last notification verified, so connecting,
//! settling and the grace period are left out. Server and simulator share
//! this process and the machine's cores, as they would share a 2-core box.

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use follower_maze::{BackgroundServer, Config};
use follower_maze_sim::{self as sim, SimConfig};

/// Events per run.
const EVENTS: u64 = 1_000_000;

/// One whole run against a fresh server; returns the active span.
fn one_run() -> Duration {
    let server = match BackgroundServer::start(Config::ephemeral()) {
        Ok(server) => server,
        Err(err) => panic!("the bench server cannot start: {err}"),
    };
    let config = SimConfig {
        host: server.event_addr().ip().to_string(),
        event_port: server.event_addr().port(),
        client_port: server.client_addr().port(),
        total_events: EVENTS,
        log_interval: Duration::ZERO,
        settle: Duration::from_millis(50),
        grace: Duration::from_millis(20),
        ..SimConfig::default()
    };
    let outcome = sim::run(&config);
    let stopped = server.stop();
    match (outcome, stopped) {
        (Ok(report), Ok(_)) => {
            assert_eq!(report.events, EVENTS);
            report.active
        }
        (Err(failure), _) => panic!("the bench run failed: {failure}"),
        (_, Err(err)) => panic!("the bench server did not stop cleanly: {err}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("end_to_end");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(EVENTS));
    group.bench_function("loopback_1M_events_100_clients", |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| one_run()).sum())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
