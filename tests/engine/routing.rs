//! Who receives what, in which order and in which bytes: reordering across
//! reads, line endings kept, shared ids, users with no connection, clients
//! that connect while the source waits idle.

use crate::support::{
    after_sending, config, ms, private_messages, shuffled, with_clients, with_source,
};

#[test]
fn shuffled_events_arrive_in_sequence_order_whatever_the_reads() {
    let (mut harness, source, clients) = with_clients(config(), &[7]);
    // 200 private messages to 7, in a scrambled but complete order, in
    // reads of 37 bytes so lines straddle reads too.
    let stream: Vec<u8> = shuffled(1..=200)
        .into_iter()
        .flat_map(|seq| format!("{seq}|P|1|7\n").into_bytes())
        .collect();
    for chunk in stream.chunks(37) {
        source.send(chunk);
        harness.settle();
    }
    assert_eq!(clients[0].take_received(), private_messages(1, 200, 7));
}

#[test]
fn crlf_and_lf_lines_are_forwarded_byte_for_byte() {
    let (_, clients) = after_sending(&[5], b"2|P|1|5\n1|P|1|5\r\n3|B\r\n");
    assert_eq!(clients[0].take_received(), b"1|P|1|5\r\n2|P|1|5\n3|B\r\n");
}

#[test]
fn every_connection_claiming_an_id_is_notified() {
    let (_, clients) = after_sending(&[9, 9, 8], b"1|P|8|9\r\n2|P|9|8\r\n");
    assert_eq!(clients[0].take_received(), b"1|P|8|9\r\n");
    assert_eq!(clients[1].take_received(), b"1|P|8|9\r\n");
    assert_eq!(clients[2].take_received(), b"2|P|9|8\r\n");
}

#[test]
fn notifications_for_offline_users_are_dropped_and_their_follows_kept() {
    // 42 has no connection: what it is owed is dropped, but 1 now follows
    // it, so 42's status update reaches 1.
    let (harness, clients) = after_sending(&[1], b"1|P|1|42\r\n2|F|1|42\r\n3|P|42|1\r\n4|S|42\r\n");
    assert_eq!(clients[0].take_received(), b"3|P|42|1\r\n4|S|42\r\n");
    assert_eq!(harness.engine.stats().notifications, 2);
}

#[test]
fn clients_may_connect_while_the_source_waits_idle() {
    // The original test client connects its source first and stays silent.
    let (mut harness, source) = with_source(config());
    harness.run_for(ms(5000), ms(100));
    assert!(harness.engine.stats().source_connected);
    let clients = [harness.client("1"), harness.client("2")];
    harness.settle();
    source.send(b"1|B\n");
    harness.settle();
    for client in &clients {
        assert_eq!(client.take_received(), b"1|B\n");
    }
}
