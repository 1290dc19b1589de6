//! Broadcasts are stored once for every client (the server's broadcast
//! log): what they hold does not grow with the number of clients that owe
//! them, and a client that joins later is owed only what comes after.

#[path = "support/common.rs"]
mod common;

use std::io::Write;

use common::*;
use follower_maze::Config;

/// Limits high enough that no client here is cut for being slow.
fn patient_server() -> follower_maze::BackgroundServer {
    start(Config {
        write_deadline: std::time::Duration::from_secs(60),
        max_lag: std::time::Duration::from_secs(60),
        max_line: 2048,
        ..Config::ephemeral()
    })
}

#[test]
fn broadcasts_owed_to_many_stalled_clients_are_held_once() {
    let _heavy = heavy();
    let server = patient_server();
    let mut source = connect_source(&server);
    let stalled: Vec<_> = (1..=20)
        .map(|id| never_reading_client(&server, id))
        .collect();
    let (count, width) = (8000, 1000);
    let stream = padded_broadcasts(1, count, width);
    source.write_all(&stream).unwrap();
    let stats = wait_for(&server, "every broadcast routed", |s| {
        s.events_routed == count
    });
    // Each of the 20 clients owes nearly all of the 8 MB (its socket takes
    // little): copied per client that would be about 160 MB.
    assert!(
        stats.queued_bytes >= stream.len() / 2,
        "the stalled clients should still owe most of the stream, but only {} bytes are queued",
        stats.queued_bytes
    );
    assert!(
        stats.queued_bytes_peak <= stream.len(),
        "{} bytes held for {} bytes of broadcasts",
        stats.queued_bytes_peak,
        stream.len()
    );
    assert_eq!(stats.slow_consumers, 0);
    drop(stalled);
}

#[test]
fn a_client_that_joins_later_is_owed_only_the_broadcasts_after_it_joined() {
    let _heavy = heavy();
    let server = patient_server();
    let mut source = connect_source(&server);
    // Holds the early broadcasts in the log by never reading them.
    let _stalled = never_reading_client(&server, 1000);
    let early = padded_broadcasts(1, 8000, 1000);
    source.write_all(&early).unwrap();
    let stats = wait_for(&server, "the early broadcasts routed", |s| {
        s.events_routed == 8000
    });
    assert!(
        stats.queued_bytes > early.len() / 2,
        "the log should still hold most of the early broadcasts, but only {} bytes are queued",
        stats.queued_bytes
    );
    let mut late = connect_clients(&server, &[7]).remove(0);
    let tail = [
        padded_broadcasts(8001, 50, 10),
        b"8051|P|3|7\r\n".to_vec(),
        padded_broadcasts(8052, 50, 10),
    ]
    .concat();
    source.write_all(&tail).unwrap();
    let received = read_through(&mut late, &padded_broadcasts(8101, 1, 10));
    assert!(
        received == tail,
        "the late client got {} bytes, expected exactly the {} after it joined",
        received.len(),
        tail.len()
    );
}
