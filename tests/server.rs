//! The server over real loopback sockets: every event kind, ordering, line
//! endings, shared ids, disconnects and malformed lines.

mod common;

use std::io::Write;
use std::time::Duration;

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
fn shuffled_events_arrive_in_sequence_order() {
    let (_server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[7]);
    // 200 private messages to 7, sent in a scrambled but complete order.
    let mut seqs: Vec<u64> = (1..=200).collect();
    for i in 0..seqs.len() {
        let j = (i * 7919 + 13) % seqs.len();
        seqs.swap(i, j);
    }
    let mut stream = Vec::new();
    for seq in &seqs {
        writeln!(stream, "{seq}|P|1|7").unwrap();
    }
    // Split across writes so lines straddle reads too.
    for chunk in stream.chunks(37) {
        source.write_all(chunk).unwrap();
    }
    let mut expected = Vec::new();
    for seq in 1..=200 {
        writeln!(expected, "{seq}|P|1|7").unwrap();
    }
    assert_receives(&mut clients[0], &expected);
}

#[test]
fn crlf_and_lf_lines_are_forwarded_byte_for_byte() {
    let (_server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[5]);
    source.write_all(b"2|P|1|5\n1|P|1|5\r\n3|B\r\n").unwrap();
    assert_receives(&mut clients[0], b"1|P|1|5\r\n2|P|1|5\n3|B\r\n");
}

#[test]
fn every_connection_claiming_an_id_is_notified() {
    let (_server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[9, 9, 8]);
    source.write_all(b"1|P|8|9\r\n2|P|9|8\r\n").unwrap();
    assert_receives(&mut clients[0], b"1|P|8|9\r\n");
    assert_receives(&mut clients[1], b"1|P|8|9\r\n");
    assert_receives(&mut clients[2], b"2|P|9|8\r\n");
    assert_silent(&mut clients[0], Duration::from_millis(50));
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
fn a_malformed_line_is_skipped_and_the_rest_delivered() {
    let (server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[3]);
    source
        .write_all(b"1|P|1|3\r\nthis is not an event\r\n2|Q|1|3\r\n2|P|1|3\r\n")
        .unwrap();
    assert_receives(&mut clients[0], b"1|P|1|3\r\n2|P|1|3\r\n");
    let stats = wait_for(&server, "malformed lines counted", |s| s.malformed == 2);
    assert_eq!(stats.events_routed, 2);
}

#[test]
fn notifications_for_offline_users_are_dropped_silently() {
    let (_server, mut source, mut clients) = start_with_clients(Config::ephemeral(), &[1]);
    source
        .write_all(b"1|P|1|42\r\n2|F|1|42\r\n3|P|42|1\r\n")
        .unwrap();
    assert_receives(&mut clients[0], b"3|P|42|1\r\n");
}

#[test]
fn clients_may_connect_while_the_source_waits_idle() {
    // The original test client connects its source first and stays silent.
    let server = start(Config::ephemeral());
    let mut source = connect_source(&server);
    wait_for(&server, "the source", |s| s.source_connected);
    std::thread::sleep(Duration::from_millis(50));
    let mut clients = connect_clients(&server, &[1, 2]);
    source.write_all(b"1|B\n").unwrap();
    for client in &mut clients {
        assert_receives(client, b"1|B\n");
    }
}

#[test]
fn the_bound_addresses_are_reported() {
    let server = start(Config::ephemeral());
    assert_ne!(server.event_addr().port(), 0);
    assert_ne!(server.client_addr().port(), 0);
    assert_ne!(server.event_addr(), server.client_addr());
    assert!(server.event_addr().ip().is_loopback());
}
