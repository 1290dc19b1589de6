//! The server as a component of a loop the caller owns: two servers in one
//! `Poll`, and the embedding example run end to end.

#[path = "support/common.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{PATIENCE, assert_silent, read_through};
use follower_maze::{Config, Server};
use mio::{Events, Poll, Token};

/// Polls `poll` for both servers until `done` holds or [`PATIENCE`] ends.
fn drive(poll: &mut Poll, servers: &mut [&mut Server], done: impl Fn(&[&mut Server]) -> bool) {
    let mut events = Events::with_capacity(256);
    let start = Instant::now();
    while !done(servers) {
        assert!(start.elapsed() < PATIENCE, "timed out");
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for event in events.iter() {
            let mut owners = 0;
            for server in servers.iter_mut() {
                owners += usize::from(server.handle_event(event, Instant::now()));
            }
            assert_eq!(owners, 1, "exactly one server owns {:?}", event.token());
        }
        for server in servers.iter_mut() {
            server.tick(Instant::now());
        }
    }
}

#[test]
fn two_servers_share_one_loop_without_interfering() {
    let mut poll = Poll::new().unwrap();
    let mut first = Server::bind(Config::ephemeral()).unwrap();
    let mut second = Server::bind(Config::ephemeral()).unwrap();
    first.register(poll.registry(), Token(10)).unwrap();
    let second_base = 10 + first.token_span();
    second
        .register(poll.registry(), Token(second_base))
        .unwrap();

    // User 1 on both servers, each with its own source and graph.
    let mut clients: Vec<TcpStream> = [&first, &second]
        .iter()
        .map(|server| {
            let mut client = TcpStream::connect(server.client_addr().unwrap()).unwrap();
            client.set_read_timeout(Some(PATIENCE)).unwrap();
            client.write_all(b"1\n").unwrap();
            client
        })
        .collect();
    let mut sources: Vec<TcpStream> = [&first, &second]
        .iter()
        .map(|server| TcpStream::connect(server.event_addr().unwrap()).unwrap())
        .collect();
    drive(&mut poll, &mut [&mut first, &mut second], |s| {
        s.iter()
            .all(|s| s.stats().clients == 1 && s.stats().source_connected)
    });
    // 1 follows 2 on the first server only; 2's status reaches 1 there only.
    sources[0].write_all(b"1|F|1|2\n2|S|2\n").unwrap();
    sources[1].write_all(b"2|S|2\n1|P|2|1\n").unwrap();
    drive(&mut poll, &mut [&mut first, &mut second], |s| {
        s.iter().all(|s| s.stats().events_routed == 2)
    });
    assert_eq!(read_through(&mut clients[0], b"2|S|2\n"), b"2|S|2\n");
    assert_eq!(read_through(&mut clients[1], b"1|P|2|1\n"), b"1|P|2|1\n");
    assert_silent(&mut clients[1], Duration::from_millis(50));
    assert_eq!(
        (first.stats().notifications, second.stats().notifications),
        (1, 1)
    );
}

#[test]
fn the_embedding_example_passes_a_simulation_while_its_admin_port_answers() {
    // `cargo test` builds the examples next to the test binaries.
    let example = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("embedded"))
        .unwrap();
    assert!(example.exists(), "{} not built", example.display());
    let output = std::process::Command::new(&example)
        .args(["--simulate", "20000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the example failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("simulation passed: 20000 events"),
        "{stdout}"
    );
}
