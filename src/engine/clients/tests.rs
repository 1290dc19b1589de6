//! Invariants of the client records that the public API does not show.

use std::time::Duration;

use crate::config::Config;
use crate::engine::Port;
use crate::engine::memory::Harness;

/// `seq|P|1|2\n` for each seq in `seqs`.
fn messages(seqs: std::ops::Range<u64>) -> Vec<u8> {
    seqs.flat_map(|seq| format!("{seq}|P|1|2\n").into_bytes())
        .collect()
}

#[test]
fn a_client_that_drains_and_blocks_every_turn_is_on_the_owing_list_once() {
    let mut harness = Harness::new(Config::default());
    let source = harness.connect(Port::Events);
    let client = harness.client("2");
    harness.settle();
    let mut queued = 0;
    for step in 0..300u64 {
        // Room for exactly what the last step queued: the readiness of this
        // turn drains it, and this step's frames block it again.
        client.set_room(Some(queued));
        let batch = messages(step * 5 + 1..step * 5 + 6);
        queued = batch.len();
        source.send(&batch);
        harness.advance(Duration::from_millis(1));
        harness.turn();
    }
    let owing = &harness.engine.clients.owing;
    assert!(owing.len() <= 1, "{} entries for one client", owing.len());
}
