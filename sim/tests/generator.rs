//! The generator through the public API, as benches use it: the same seed
//! makes the same bytes, and the batch size changes only the order.

use follower_maze_sim::line::{digest, read_event};
use follower_maze_sim::{CountingSink, Generator, GeneratorConfig, SimConfig};

/// The whole stream of `config` with the claims of a default-shaped run.
fn stream(config: &GeneratorConfig) -> (Vec<u8>, u64) {
    let claims: Vec<u32> = (1..=20).map(|i| i * 7).collect();
    let mut generator = Generator::new(config, &claims);
    let mut out = Vec::new();
    let mut sink = CountingSink::default();
    while generator.next_batch(&mut out, &mut sink).is_some() {}
    (out, sink.expectations)
}

fn config(seed: u64, max_batch: u32) -> GeneratorConfig {
    GeneratorConfig {
        total_events: 50_000,
        users: 200,
        max_batch,
        seed,
        ..SimConfig::default().generator()
    }
}

#[test]
fn the_same_seed_makes_the_same_bytes() {
    let (a, expect_a) = stream(&config(666, 100));
    let (b, expect_b) = stream(&config(666, 100));
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(a, b);
    assert_eq!(expect_a, expect_b);
    let (c, _) = stream(&config(667, 100));
    assert_ne!(digest(&a), digest(&c));
}

#[test]
fn the_batch_size_changes_the_order_only() {
    let sorted = |bytes: &[u8]| {
        let mut lines: Vec<(u64, Vec<u8>)> = bytes
            .split_inclusive(|&b| b == b'\n')
            .map(|l| {
                let seq = read_event(l).expect("valid").seq;
                (seq, l.to_vec())
            })
            .collect();
        lines.sort();
        lines
    };
    let (in_order, expect_in_order) = stream(&config(5, 1));
    let (shuffled, expect_shuffled) = stream(&config(5, 1000));
    assert_ne!(in_order, shuffled);
    assert_eq!(sorted(&in_order), sorted(&shuffled));
    assert_eq!(expect_in_order, expect_shuffled);
}
