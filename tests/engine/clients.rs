//! Client lifecycle: ids and their deadline, bad ids, the client limit,
//! ids before events, what a client sends after its id, half-close, going
//! away, shutdown.

use follower_maze::Config;
use follower_maze::engine::memory::{Harness, Peer};
use follower_maze::engine::{Ending, Port};

use crate::logs;
use crate::support::{config, ms, turn_seeing_only_the_event_port, with_clients, with_source};

#[test]
fn an_id_sent_before_events_is_taken_in_before_they_are_routed() {
    let (mut harness, source) = with_source(config());
    // The client connects and sends its id, then the source sends an event
    // for it, and the loop sees only the source's readiness.
    let client = harness.client("7");
    source.send(b"1|P|1|7\n");
    turn_seeing_only_the_event_port(&mut harness);
    assert_eq!(client.take_received(), b"1|P|1|7\n");
}

#[test]
fn ids_sent_just_before_a_new_source_sends_events_for_them_are_never_overtaken() {
    // As the original test client and suites like it do: each case
    // connects its clients, writes their ids and, without waiting for an
    // answer, connects a new source that sends events for them at once.
    let mut harness = Harness::new(config());
    for trial in 0..3 {
        // Users a, b, c are this trial's alone: a follows b (b told), b
        // messages c (c told), b updates its status (its follower a told).
        let (a, b, c) = (10 * trial + 1, 10 * trial + 2, 10 * trial + 3);
        let clients: Vec<Peer> = [a, b, c]
            .iter()
            .map(|id| {
                let client = harness.connect(Port::Clients);
                client.send(format!("{id}\r\n").as_bytes());
                client
            })
            .collect();
        let source = harness.connect(Port::Events);
        source.send(format!("1|F|{a}|{b}\n2|P|{b}|{c}\n3|S|{b}\n").as_bytes());
        turn_seeing_only_the_event_port(&mut harness);
        let expected = [
            format!("3|S|{b}\n"),
            format!("1|F|{a}|{b}\n"),
            format!("2|P|{b}|{c}\n"),
        ];
        for (client, want) in clients.iter().zip(&expected) {
            let received = String::from_utf8(client.take_received()).expect("ASCII");
            assert_eq!(&received, want, "trial {trial}");
        }
        // The next trial's source finds this one gone.
        source.close_sending();
        harness.settle();
        assert!(!harness.engine.stats().source_connected);
    }
}

#[test]
fn a_client_without_an_id_in_time_is_closed_and_counted() {
    let mut harness = Harness::new(config());
    let silent = harness.connect(Port::Clients);
    let slow_but_in_time = harness.connect(Port::Clients);
    harness.settle();
    harness.run_for(ms(1900), ms(100));
    slow_but_in_time.send(b"5\r\n");
    harness.settle();
    assert_eq!(silent.ended(), None, "not before the deadline");
    harness.run_for(ms(200), ms(100));
    assert_eq!(silent.ended(), Some(Ending::Close));
    assert_eq!(slow_but_in_time.ended(), None, "it sent its id in time");
    let stats = harness.engine.stats();
    assert_eq!(
        (stats.bad_ids, stats.clients, stats.clients_awaiting_id),
        (1, 1, 0)
    );
}

#[test]
fn bad_client_ids_close_only_that_client() {
    let (mut harness, source, good) = with_clients(
        Config {
            id_timeout: ms(100),
            ..config()
        },
        &[1],
    );
    let bad_lines: [&[u8]; 5] = [
        b"abc\r\n",
        b"\r\n",
        b"12 \n",
        b"-5\n",
        b"123456789012345678901234567890123\n", // longer than 32 bytes
    ];
    let bad: Vec<Peer> = bad_lines
        .iter()
        .map(|line| {
            let client = harness.connect(Port::Clients);
            client.send(line);
            client
        })
        .collect();
    let silent = harness.connect(Port::Clients); // never sends an id
    harness.settle();
    for client in &bad {
        assert_eq!(client.ended(), Some(Ending::Close), "closed at once");
    }
    harness.run_for(ms(100), ms(50));
    assert_eq!(silent.ended(), Some(Ending::Close), "at its deadline");
    let stats = harness.engine.stats();
    assert_eq!((stats.bad_ids, stats.clients), (6, 1), "{stats:?}");
    source.send(b"1|B\n");
    harness.settle();
    assert_eq!(good[0].take_received(), b"1|B\n");
}

#[test]
fn a_client_closed_for_its_id_is_logged_with_its_peer_and_what_it_sent() {
    let long_id = "1234567890".repeat(4); // over the 32-byte limit
    let endless = "x".repeat(100); // over it too, with no newline
    let (peers, lines) = logs::capture(|| {
        let mut harness = Harness::new(config());
        let long_id_line = format!("{long_id}\n");
        let sent: [&[u8]; 7] = [
            b"abc\r\n",
            b"12 \n",
            b"\x01\xff\"\n",
            long_id_line.as_bytes(),
            b"7",
            b"",
            endless.as_bytes(),
        ];
        let peers: Vec<Peer> = sent
            .iter()
            .map(|bytes| {
                let peer = harness.connect(Port::Clients);
                peer.send(bytes);
                peer
            })
            .collect();
        harness.settle();
        harness.run_for(ms(2100), ms(100));
        for peer in &peers {
            assert_eq!(peer.ended(), Some(Ending::Close), "peer #{}", peer.number);
        }
        peers
    });
    let not_a_number = "bad id line: numeric field holds a non-digit; it sent ";
    let late = "no id in time: none within 2s";
    let expected = [
        format!(r#"{not_a_number}"abc""#),
        format!(r#"{not_a_number}"12 ""#),
        format!(r#"{not_a_number}"\x01\xff\"""#),
        format!(r#"bad id line: line longer than the limit; it sent "{long_id}""#),
        format!(r#"{late}; it sent "7""#),
        late.to_string(),
        // Refused at the byte that makes it too long, not at its deadline.
        format!(
            r#"bad id line: line longer than the limit; it sent "{}"#,
            &endless[..32]
        ),
    ];
    for (peer, expected) in peers.iter().zip(&expected) {
        let who = format!("closing a client without id (peer #{}): ", peer.number);
        let line = logs::the_line(&lines, &[&who]);
        assert!(
            line.contains(expected.as_str()),
            "{line:?} lacks {expected:?}"
        );
    }
    assert!(
        lines.iter().any(|line| line.ends_with(r#"xxxx"..."#)),
        "{lines:?}"
    );
}

#[test]
fn bytes_sent_after_the_id_are_ignored() {
    // A client that does not stop sending after its id (a script piping a
    // file, a confused client): megabytes of lines that look like ids,
    // events and junk follow the id, before and while events are routed.
    let (mut harness, source, others) = with_clients(config(), &[9]);
    let client = harness.connect(Port::Clients);
    let pattern: &[u8] = b"9\r\n1|P|3|8\n2|B\nnot an id at all\r\n\
        xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
    let junk = pattern.repeat((2 << 20) / pattern.len());
    client.send(b"8\n");
    client.send(&junk);
    harness.settle();
    assert_eq!(harness.engine.stats().clients, 2, "user 8 registered");
    source.send(b"1|P|3|8\n2|P|3|9\n3|B\n");
    client.send(&junk);
    harness.settle();
    assert_eq!(client.take_received(), b"1|P|3|8\n3|B\n");
    assert_eq!(others[0].take_received(), b"2|P|3|9\n3|B\n");
    let stats = harness.engine.stats();
    assert_eq!(
        (stats.clients, stats.bad_ids),
        (2, 0),
        "both clients stay, neither is taken for a bad id: {stats:?}"
    );
    assert!(
        stats.queued_bytes_peak < 64 * 1024,
        "what a client sends after its id is not queued: {stats:?}"
    );
}

#[test]
fn a_client_whose_id_arrives_past_the_client_limit_is_closed_at_once() {
    let (mut harness, source, clients) = with_clients(
        Config {
            max_clients: 3,
            ..config()
        },
        &[1, 2, 3],
    );
    let extra = harness.connect(Port::Clients);
    harness.turn();
    assert_eq!(extra.ended(), None, "awaiting its id, it does not count");
    extra.send(b"4\n");
    harness.turn();
    assert_eq!(extra.ended(), Some(Ending::Close));
    assert_eq!(harness.engine.stats().clients_refused, 1);
    source.send(b"1|B\n");
    harness.settle();
    for client in &clients {
        assert_eq!(client.take_received(), b"1|B\n");
    }
}

#[test]
fn a_client_that_half_closes_after_its_id_keeps_receiving() {
    let (mut harness, source) = with_source(config());
    let client = harness.client("3");
    client.send(b"ignored chatter\n");
    client.close_sending();
    harness.settle();
    assert!(
        client.read_closed_seen(),
        "the transport is told, to probe it"
    );
    source.send(b"1|B\n2|P|9|3\n");
    harness.settle();
    assert_eq!(client.take_received(), b"1|B\n2|P|9|3\n");
    assert_eq!(client.ended(), None);
}

#[test]
fn a_client_that_resets_is_closed_and_unregistered() {
    let (mut harness, source) = with_source(config());
    let gone = harness.client("3");
    let stays = harness.client("3");
    harness.settle();
    gone.reset();
    harness.settle();
    assert_eq!(gone.ended(), Some(Ending::Close));
    assert_eq!(harness.engine.stats().clients, 1);
    source.send(b"1|P|1|3\n");
    harness.settle();
    assert_eq!(stays.take_received(), b"1|P|1|3\n");
}

#[test]
fn shutdown_delivers_what_was_received_behind_a_hole_and_closes_the_rest() {
    let (mut harness, source) = with_source(config());
    let client = harness.client("2");
    let no_id = harness.connect(Port::Clients);
    harness.settle();
    source.send(b"2|P|1|2\n3|P|1|2\n");
    harness.settle();
    assert!(client.take_received().is_empty(), "waiting for seq 1");
    let now = harness.now;
    harness.engine.shutdown(now, &mut harness.net);
    harness.settle();
    assert_eq!(client.take_received(), b"2|P|1|2\n3|P|1|2\n");
    assert!(harness.engine.is_flushed());
    assert_eq!(no_id.ended(), Some(Ending::Close));
    assert_eq!(source.ended(), Some(Ending::Close));
}

#[test]
fn connections_that_never_send_an_id_do_not_lock_clients_out() {
    // More id-less connections than the pending cap: the oldest go first,
    // and a real client that connects after them all still registers.
    let (mut harness, source, clients) = with_clients(
        Config {
            max_clients: 2,
            max_pending_clients: 100,
            ..config()
        },
        &[1],
    );
    let silent: Vec<Peer> = (0..300)
        .map(|_| {
            let peer = harness.connect(Port::Clients);
            harness.turn();
            peer
        })
        .collect();
    let real = harness.client("2");
    harness.settle();
    let evicted = silent.iter().filter(|peer| peer.ended().is_some()).count();
    assert_eq!(
        evicted, 201,
        "the oldest 201 made room for the last 99 and the real one"
    );
    assert!(
        silent[..201]
            .iter()
            .all(|peer| peer.ended() == Some(Ending::Close))
    );
    let stats = harness.engine.stats();
    assert_eq!((stats.clients, stats.clients_awaiting_id), (2, 99));
    assert_eq!((stats.clients_evicted, stats.clients_refused), (201, 0));
    source.send(b"1|B\n");
    harness.settle();
    assert_eq!(real.take_received(), b"1|B\n");
    assert_eq!(clients[0].take_received(), b"1|B\n");
}

#[test]
fn connections_that_never_send_an_id_are_not_read_on_every_source_read() {
    // An id sent before an event goes in before it, so after each read of
    // the source the engine takes in the ids that arrived; it asks the
    // transport which waiting connections are readable instead of reading
    // every one, so idle ones cost nothing per source read.
    let (mut harness, source, clients) = with_clients(config(), &[1]);
    let idle: Vec<Peer> = (0..200).map(|_| harness.connect(Port::Clients)).collect();
    harness.settle();
    for seq in 1..=50 {
        source.send(format!("{seq}|B\n").as_bytes());
        harness.turn();
    }
    let late = harness.client("2");
    source.send(b"51|B\n");
    harness.settle();
    let most = idle.iter().map(Peer::reads).max();
    assert_eq!(most, Some(1), "each idle one read once, when accepted");
    let all: String = (1..=51).map(|seq| format!("{seq}|B\n")).collect();
    assert_eq!(clients[0].take_received(), all.as_bytes());
    assert_eq!(late.take_received(), b"51|B\n", "its id went in before 51");
}

#[test]
fn a_burst_past_every_key_is_refused_until_the_marked_ones_leave() {
    // Evicted connections leave at the end of the turn, so in one turn at
    // most `--max-clients` + `--max-pending-clients` connections are open
    // or closing (the shell has a token for each, no more); the rest of a
    // burst is refused, and the next turn has room again.
    let (mut harness, _source, _clients) = with_clients(
        Config {
            max_clients: 2,
            max_pending_clients: 10,
            ..config()
        },
        &[1],
    );
    let burst: Vec<Peer> = (0..30).map(|_| harness.connect(Port::Clients)).collect();
    harness.turn();
    let stats = harness.engine.stats();
    // Keys 1..=11 went to the first eleven (the eleventh evicted the
    // first); the other nineteen were refused.
    assert_eq!((stats.clients_evicted, stats.clients_refused), (1, 19));
    assert_eq!(stats.clients_awaiting_id, 10);
    assert!(
        burst[11..]
            .iter()
            .all(|peer| peer.ended() == Some(Ending::Close))
    );
    let real = harness.client("2");
    harness.settle();
    assert_eq!(real.ended(), None);
    assert_eq!(harness.engine.stats().clients, 2);
}

#[test]
fn running_out_of_descriptors_pauses_accepting_with_a_doubling_backoff() {
    let (mut harness, source, clients) = with_clients(config(), &[1]);
    harness.net.fail_accepts(2);
    let late = harness.client("2");
    harness.turn();
    assert_eq!(harness.engine.stats().accept_errors, 1);
    let wait = harness.engine.timeout(harness.now);
    assert_eq!(wait, Some(ms(10)), "the first pause");
    // Paused: no accept is tried (it would fail again at once), and the
    // clients already open are served.
    let tried = harness.net.accept_calls();
    source.send(b"1|B\n");
    harness.turn();
    assert_eq!(harness.net.accept_calls(), tried);
    assert_eq!(clients[0].take_received(), b"1|B\n");
    // The pause over, accepting fails again: the next pause is twice as long.
    harness.advance(ms(10));
    harness.turn();
    assert_eq!(harness.engine.stats().accept_errors, 2);
    harness.advance(ms(19));
    harness.settle();
    assert_eq!(harness.engine.stats().clients, 1, "still paused");
    harness.advance(ms(1));
    harness.settle();
    assert_eq!(
        harness.engine.stats().clients,
        2,
        "taken in when it resumed"
    );
    source.send(b"2|B\n");
    harness.settle();
    assert_eq!(late.take_received(), b"2|B\n");
}

#[test]
fn shutdown_is_done_when_flushed_or_when_the_grace_period_ends() {
    let grace = Config {
        shutdown_grace: ms(5000),
        ..config()
    };
    let (mut harness, source, clients) = with_clients(grace, &[1, 2]);
    clients[1].set_room(Some(0)); // Reads nothing.
    source.send(b"1|B\n");
    harness.settle();
    assert!(!harness.engine.is_done(harness.now), "not shutting down");
    let now = harness.now;
    harness.engine.shutdown(now, &mut harness.net);
    assert!(!harness.engine.is_done(now), "user 2 still owes its bytes");
    harness.advance(ms(4999));
    harness.turn();
    assert!(!harness.engine.is_done(harness.now));
    let wait = harness.engine.timeout(harness.now);
    assert_eq!(wait, Some(ms(1)), "the loop wakes when the grace ends");
    harness.advance(ms(1));
    assert!(
        harness.engine.is_done(harness.now),
        "the grace period is over"
    );
    assert_eq!(clients[0].take_received(), b"1|B\n");

    // Everything written: done at once.
    let (mut harness, source, _clients) = with_clients(config(), &[1]);
    source.send(b"1|B\n");
    harness.settle();
    let now = harness.now;
    harness.engine.shutdown(now, &mut harness.net);
    assert!(harness.engine.is_done(now));
}
