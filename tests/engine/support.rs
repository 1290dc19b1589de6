//! Shared helpers for the core's tests.

use std::time::Duration;

use follower_maze::Config;
use follower_maze::engine::Port;
use follower_maze::engine::memory::{Harness, Peer};

/// Milliseconds.
pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The defaults, with the limits tests lean on stated.
pub fn config() -> Config {
    Config {
        hole_timeout: ms(1000),
        id_timeout: ms(2000),
        write_deadline: ms(10_000),
        max_lag: ms(15_000),
        ..Config::default()
    }
}

/// A harness with `config` and an event source connected (and opened).
pub fn with_source(config: Config) -> (Harness, Peer) {
    let mut harness = Harness::new(config);
    let source = harness.connect(Port::Events);
    harness.settle();
    (harness, source)
}

/// `count` private messages from user 1 to `to`, seqs `first..`, each
/// line as the source sends it.
pub fn private_messages(first: u64, count: u64, to: u64) -> Vec<u8> {
    (first..first + count)
        .flat_map(|seq| format!("{seq}|P|1|{to}\n").into_bytes())
        .collect()
}
