//! The simulator against the real server, in process: it must pass for
//! several seeds, batch sizes and both line endings, and with every
//! adversarial flag.

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::short_hole_timeout;
use follower_maze::{BackgroundServer, Config, Stats};
use follower_maze_sim::{self as sim, Mix, Report, SimConfig};

/// Runs `tweak(small config)` against a fresh server started with
/// `server`, and returns the simulator's report and the server's stats.
fn run_with(server: Config, tweak: impl FnOnce(SimConfig) -> SimConfig) -> (Report, Stats) {
    let background = BackgroundServer::start(server).expect("the server starts");
    let config = tweak(SimConfig {
        host: background.event_addr().ip().to_string(),
        ..SimConfig::small(
            background.event_addr().port(),
            background.client_addr().port(),
        )
    });
    let outcome = sim::run(&config);
    let stats = background.stop().expect("the server stops cleanly");
    match outcome {
        Ok(report) => (report, stats),
        Err(failure) => panic!("{config:?}\n{failure}\n{stats:?}"),
    }
}

/// Like [`run_with`] against a default server.
fn run(tweak: impl FnOnce(SimConfig) -> SimConfig) -> (Report, Stats) {
    run_with(Config::ephemeral(), tweak)
}

#[test]
fn passes_for_several_seeds_batch_sizes_and_line_endings() {
    let cases = [
        (1, 100, false),
        (2, 100, true),
        (3, 1, false),
        (4, 1, true),
        (5, 1000, false),
        (6, 1000, true),
    ];
    for (seed, batch, lf) in cases {
        let (report, stats) = run(|c| SimConfig {
            random_seed: seed,
            max_event_source_batch_size: batch,
            lf,
            ..c
        });
        assert_eq!(report.events, 2000);
        assert_eq!(
            report.notifications, stats.notifications,
            "every notification the server sent was verified (seed {seed})"
        );
    }
}

#[test]
fn passes_with_the_fanout_mix() {
    let (report, _) = run(|c| SimConfig {
        mix: Mix::fanout(),
        ..c
    });
    assert!(report.notifications > 2000, "{report}");
}

#[test]
fn passes_with_clients_that_never_read() {
    // A short write deadline and enough traffic (about 6 MB to each user)
    // to fill the silent clients' socket buffers, so the server cuts them
    // during the run; the others must not notice.
    let server = Config {
        write_deadline: std::time::Duration::from_millis(300),
        ..Config::ephemeral()
    };
    let (report, stats) = run_with(server, |c| SimConfig {
        silent_clients: 3,
        total_events: 1_000_000,
        mix: Mix::fanout(),
        number_of_users: Some(30),
        ..c
    });
    assert_eq!(report.silent_clients, 3);
    assert_eq!(stats.slow_consumers, 3, "the silent clients were cut");
    assert_eq!(stats.cut_write_deadline, 3, "as stuck: {stats:?}");
}

#[test]
fn passes_with_malformed_lines() {
    let (report, stats) = run(|c| SimConfig { malformed: 50, ..c });
    assert_eq!(report.malformed, 50);
    assert_eq!(stats.malformed, 50);
}

#[test]
fn passes_with_duplicate_ids() {
    let (report, _) = run(|c| SimConfig {
        duplicate_ids: 4,
        ..c
    });
    assert_eq!(report.clients, 14);
}

#[test]
fn passes_with_a_drip() {
    let (report, _) = run(|c| SimConfig {
        drip: true,
        total_events: 500,
        ..c
    });
    assert_eq!(report.events, 500);
}

#[test]
fn passes_with_holes() {
    let (report, stats) = run_with(short_hole_timeout(), |c| SimConfig { holes: 5, ..c });
    assert_eq!(report.holes, 5);
    assert_eq!(report.events, 1995);
    assert_eq!(stats.skipped, 5);
}

#[test]
fn passes_with_every_adversarial_flag_at_once() {
    run_with(short_hole_timeout(), |c| SimConfig {
        lf: true,
        holes: 3,
        silent_clients: 2,
        malformed: 20,
        duplicate_ids: 3,
        drip: true,
        drip_pause: Duration::ZERO,
        ..c
    });
}

#[test]
fn consecutive_runs_against_one_server_pass() {
    let background = BackgroundServer::start(Config::ephemeral()).expect("the server starts");
    for seed in [7, 8] {
        let config = SimConfig {
            random_seed: seed,
            ..SimConfig::small(
                background.event_addr().port(),
                background.client_addr().port(),
            )
        };
        if let Err(failure) = sim::run(&config) {
            panic!("run with seed {seed}: {failure}");
        }
    }
    let stats = background.stop().expect("the server stops cleanly");
    assert_eq!(stats.runs, 1, "the second source started a new run");
}

#[test]
fn passes_with_a_thousand_clients() {
    let (report, _) = run(|c| SimConfig {
        concurrency_level: 1000,
        total_events: 5000,
        ..c
    });
    assert_eq!(report.clients, 1000);
}
