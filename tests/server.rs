//! The server over real loopback sockets, as an end-to-end smoke test:
//! every event kind reaches its recipients, a client that leaves is found
//! gone by the reset its closed socket answers a write with, and the bound
//! addresses are reported. Ordering, line endings, shared ids, offline
//! users and malformed lines are the core's rules, tested in memory in
//! `tests/engine/routing.rs` and `tests/engine/sources.rs`.

#[path = "support/common.rs"]
mod common;

use std::io::Write;

use common::*;
use follower_maze::Config;

#[test]
fn each_kind_reaches_exactly_its_recipients() {
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1, 2, 3, 4]);
    // 1 follows 2 (2 told), 3 follows 2 (2 told), 2 updates (1, 3 told),
    // 1 unfollows 2 (nobody told), 2 updates (3 told), private 4 -> 1,
    // broadcast (everyone).
    source
        .write_all(b"1|F|1|2\r\n2|F|3|2\r\n3|S|2\r\n4|U|1|2\r\n5|S|2\r\n6|P|4|1\r\n7|B\r\n")
        .unwrap();
    let expected: [&[u8]; 4] = [
        b"3|S|2\r\n6|P|4|1\r\n7|B\r\n",
        b"1|F|1|2\r\n2|F|3|2\r\n7|B\r\n",
        b"3|S|2\r\n5|S|2\r\n7|B\r\n",
        b"7|B\r\n",
    ];
    for (client, want) in clients.iter_mut().zip(expected) {
        assert_receives(client, want);
    }
    let stats = server.stop().unwrap();
    assert_eq!(stats.events_routed, 7);
    assert_eq!(stats.notifications, 10);
}

#[test]
fn a_client_leaving_mid_stream_disturbs_nobody() {
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1, 2]);
    source.write_all(b"1|B\r\n").unwrap();
    for client in &mut clients {
        read_through(client, b"1|B\r\n");
    }
    let leaving = clients.remove(0);
    drop(leaving);
    // Follows made while 1 is away still count when 1 is back.
    source.write_all(b"2|B\r\n3|F|1|2\r\n4|P|1|2\r\n").unwrap();
    assert_receives(&mut clients[0], b"2|B\r\n3|F|1|2\r\n4|P|1|2\r\n");
    // Its end-of-file alone could be a half-close; the broadcast written to
    // the closed socket is answered with a reset, and that removes it.
    wait_for(&server, "the client to be gone", |s| s.clients == 1);
    let mut back = connect_clients(&server, &[1]);
    source.write_all(b"5|S|2\r\n6|B\r\n").unwrap();
    assert_receives(&mut back[0], b"5|S|2\r\n6|B\r\n");
    assert_receives(&mut clients[0], b"6|B\r\n");
}

#[test]
fn the_bound_addresses_are_reported() {
    let server = start(Config::ephemeral());
    assert_ne!(server.event_addr().port(), 0);
    assert_ne!(server.client_addr().port(), 0);
    assert_ne!(server.event_addr(), server.client_addr());
    assert!(server.event_addr().ip().is_loopback());
}

#[test]
fn a_configuration_that_makes_the_server_useless_is_refused_at_bind() {
    let config = Config {
        max_clients: 0,
        ..Config::ephemeral()
    };
    let err = follower_maze::Server::bind(config).expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("--max-clients"), "{err}");
}
