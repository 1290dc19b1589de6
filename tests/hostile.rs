//! Hostile input over real sockets, as a smoke test of the whole path:
//! garbage, binary bytes and a 1 MiB line from the source are skipped and
//! counted, and the lines around them delivered. The rules for hostile
//! peers (malformed and overlong lines, holes, late and duplicate events,
//! bad client ids, the client limit, a second source, new runs, stuck and
//! slow clients, back-pressure) are the core's, tested in memory in
//! `tests/engine/`.

#[path = "support/bad_lines.rs"]
mod bad_lines;
mod common;

use std::io::Write;

use bad_lines::{bad_source_lines, between_good_lines};
use common::*;
use follower_maze::Config;

#[test]
fn malformed_source_lines_are_skipped_and_counted() {
    let bad = bad_source_lines();
    let (stream, expected) = between_good_lines(&bad);
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1]);
    source.write_all(&stream).unwrap();
    assert_receives(&mut clients[0], &expected);
    let stats = wait_for(&server, "every bad line counted", |s| {
        s.malformed == bad.len() as u64
    });
    assert_eq!(stats.events_routed, bad.len() as u64 + 1);
}
