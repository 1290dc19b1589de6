//! The real `follower-maze` binary: environment variables, signals, and
//! running out of file descriptors.

#[path = "support/common.rs"]
mod common;
#[path = "support/binary.rs"]
mod support_binary;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{PATIENCE, assert_silent, connect_with_recv_buffer, read_through};
use support_binary::{Binary, forward_lines, wait_for_line};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client(addr: SocketAddr, id: u64) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    writeln!(stream, "{id}").unwrap();
    stream
}

/// A client that has sent `id` and has a tiny (4 KB) receive buffer: what it
/// does not read stays queued in the server. No read timeout.
fn small_buffer_client(addr: SocketAddr, id: u64) -> TcpStream {
    let mut stream = connect_with_recv_buffer(addr, 4096);
    stream.write_all(format!("{id}\n").as_bytes()).unwrap();
    stream
}

#[test]
fn the_original_port_variables_are_honoured() {
    let (event_port, client_port) = (free_port(), free_port());
    let binary = Binary::start(
        &[],
        &[
            ("eventListenerPort", event_port.to_string()),
            ("clientListenerPort", client_port.to_string()),
        ],
        None,
    );
    assert_eq!(binary.event_addr.port(), event_port);
    assert_eq!(binary.client_addr.port(), client_port);
}

#[test]
fn the_cluster_modes_say_where_the_log_is_and_what_it_keeps() {
    for mode in ["ingest", "edge"] {
        let output = Command::new(env!("CARGO_BIN_EXE_follower-maze"))
            .args([mode, "--help"])
            .output()
            .unwrap();
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        for needle in [
            "--nats-url",
            "FOLLOWER_MAZE_NATS_URL",
            "nats://127.0.0.1:4222",
            "--stream",
            "FOLLOWER_MAZE_STREAM",
            "file storage",
            "--stream-max-bytes",
            "--max-queued-bytes",
        ] {
            assert!(help.contains(needle), "{mode} --help lacks {needle}");
        }
    }
}

#[test]
fn a_cluster_mode_without_its_nats_server_says_so_and_exits() {
    // Port 1 on loopback: nothing listens there.
    for mode in ["ingest", "edge"] {
        let output = Command::new(env!("CARGO_BIN_EXE_follower-maze"))
            .args([mode, "--nats-url", "nats://127.0.0.1:1"])
            .args(["--event-port", "0", "--client-port", "0"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{mode} exits with failure");
        let log = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            log.contains("cannot connect to nats-server at nats://127.0.0.1:1"),
            "{mode}: {log}"
        );
    }
}

#[test]
fn help_lists_every_knob_with_its_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_follower-maze"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "eventListenerPort",
        "clientListenerPort",
        "logLevel",
        "--hole-timeout-ms",
        "--hole-silence-ms",
        "--event-bind",
        "FOLLOWER_MAZE_CLIENT_BIND",
        "FOLLOWER_MAZE_HOLE_SILENCE_MS",
        "--source-idle-ms",
        "--max-pending-clients",
        "--max-follow-bytes",
        "FOLLOWER_MAZE_MAX_PENDING_CLIENTS",
        "FOLLOWER_MAZE_SOURCE_IDLE_MS",
        "--max-clients",
        "--write-deadline-ms",
        "FOLLOWER_MAZE_WRITE_DEADLINE_MS",
        "--max-lag-ms",
        "--client-output-limit",
        "--max-queued-bytes",
        "--listen-backlog",
        "FOLLOWER_MAZE_LISTEN_BACKLOG",
        "--metrics-addr",
        "FOLLOWER_MAZE_METRICS_ADDR",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

/// Runs the binary with `args` on free ports and returns its exit status
/// and stderr, or panics if it still runs after [`PATIENCE`].
fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_follower-maze"))
        .args(args)
        .env_remove("eventListenerPort")
        .env_remove("clientListenerPort")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {PATIENCE:?}: {}",
                reading.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, reading.join().unwrap())
}

#[test]
fn a_server_without_room_for_clients_refuses_to_start() {
    let (status, stderr) = run_to_exit(&[
        "--event-port",
        "0",
        "--client-port",
        "0",
        "--max-clients",
        "0",
    ]);
    assert!(!status.success(), "exits with failure; {stderr}");
    assert!(
        stderr.contains("--max-clients") && stderr.contains("no client could ever connect"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_named_with_its_listener_and_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, stderr) = run_to_exit(&["--event-port", &port, "--client-port", "0"]);
    assert!(!status.success(), "exits with failure; {stderr}");
    let expected = format!(
        "cannot listen for the event source on 127.0.0.1:{port} (--event-port / eventListenerPort): "
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    let (status, stderr) = run_to_exit(&["--event-port", "0", "--client-port", &port]);
    assert!(!status.success(), "exits with failure; {stderr}");
    let expected = format!(
        "cannot listen for clients on 127.0.0.1:{port} (--client-port / clientListenerPort): "
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn help_shows_sizes_in_binary_units() {
    let output = Command::new(env!("CARGO_BIN_EXE_follower-maze"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for default in [
        "[default: 64MiB]",
        "[default: 1KiB]",
        "[default: 32B]",
        "[default: 32MiB]",
        "[default: 256MiB]",
    ] {
        assert!(help.contains(default), "--help lacks {default}:\n{help}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_follower-maze"))
        .args(["edge", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("[default: 8GiB]"), "edge --help:\n{help}");
}

#[test]
fn sigterm_flushes_everything_routed_in_order_and_exits_zero() {
    let args = ["--event-port", "0", "--client-port", "0"];
    let mut binary = Binary::start(&args, &[], None);
    // A client with a tiny receive buffer that reads nothing until after the
    // signal: most of its notifications are still queued in the server.
    let reader = small_buffer_client(binary.client_addr, 1);
    std::thread::sleep(Duration::from_millis(100));
    let mut source = TcpStream::connect(binary.event_addr).unwrap();
    let mut events = Vec::new();
    for seq in 1..=20_000u64 {
        writeln!(events, "{seq}|P|0|1").unwrap();
    }
    source.write_all(&events).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    binary.signal(libc::SIGTERM);
    let reading = std::thread::spawn(move || {
        let mut reader = reader;
        let mut received = Vec::new();
        reader.read_to_end(&mut received).unwrap();
        received
    });
    assert!(binary.wait().success(), "exit status not zero");
    let summary = wait_for_line(&binary.log, "delivered");
    let received = reading.join().unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&received).unwrap().lines().collect();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("{}|P|0|1", i + 1), "line {i} out of order");
    }
    let notified = format!(" as {} notifications", lines.len());
    assert!(
        summary.contains(&notified),
        "received {} lines; {summary}",
        lines.len()
    );
    assert!(
        lines.len() > 1000,
        "too little was routed to test a flush: {summary}"
    );
    assert!(
        TcpStream::connect(binary.client_addr).is_err(),
        "still accepting"
    );
}

#[test]
fn logs_go_to_stderr_and_stdout_stays_empty() {
    // `Binary::start` reads the listening lines from stderr.
    let mut binary = Binary::start(&["--event-port", "0", "--client-port", "0"], &[], None);
    binary.signal(libc::SIGTERM);
    assert!(binary.wait().success());
    wait_for_line(&binary.log, "delivered");
    let stdout = binary.stdout();
    assert!(
        stdout.is_empty(),
        "stdout is not empty: {:?}",
        String::from_utf8_lossy(&stdout)
    );
}

#[test]
fn the_shutdown_line_names_the_signal() {
    // SIGHUP too: a terminal closing, or a supervisor's hang-up, is a
    // request to stop, not a reason to die without flushing.
    let signals = [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ];
    for (signal, name) in signals {
        let mut binary = Binary::start(&["--event-port", "0", "--client-port", "0"], &[], None);
        binary.signal(signal);
        assert!(binary.wait().success());
        let line = wait_for_line(&binary.log, "received");
        assert!(line.ends_with(&format!("received {name}")), "{line}");
    }
}

#[test]
fn sigint_with_nothing_queued_exits_zero_at_once() {
    let mut binary = Binary::start(&["--event-port", "0", "--client-port", "0"], &[], None);
    binary.signal(libc::SIGINT);
    assert!(binary.wait().success());
    wait_for_line(&binary.log, "stopped");
}

#[test]
fn running_out_of_descriptors_pauses_accepting_and_keeps_serving() {
    let args = ["--event-port", "0", "--client-port", "0"];
    let mut binary = Binary::start(&args, &[], Some(32));
    let mut early = client(binary.client_addr, 1);
    let mut source = TcpStream::connect(binary.event_addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // More connections than descriptors left: the kernel completes them,
    // the server cannot accept them all.
    let flood: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(binary.client_addr).unwrap())
        .collect();
    wait_for_line(&binary.log, "cannot accept connections");
    source.write_all(b"1|B\n").unwrap();
    assert_eq!(read_through(&mut early, b"1|B\n"), b"1|B\n");
    // No busy loop while descriptors are short: under 0.2 s of CPU in 1 s.
    let before = binary.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let used = binary.cpu_ticks() - before;
    assert!(
        used * 5 < ticks_per_second,
        "{used} ticks of CPU in 1 s while out of descriptors"
    );
    // Once descriptors are free again, new clients get in.
    drop(flood);
    std::thread::sleep(Duration::from_millis(1200));
    let mut late = client(binary.client_addr, 2);
    std::thread::sleep(Duration::from_millis(200));
    source.write_all(b"2|P|1|2\n").unwrap();
    assert_eq!(read_through(&mut late, b"2|P|1|2\n"), b"2|P|1|2\n");
    assert_silent(&mut early, Duration::from_millis(50));
    binary.signal(libc::SIGTERM);
    assert!(binary.wait().success());
}

#[test]
fn ten_thousand_clients_each_get_their_notifications() {
    const CLIENTS: u64 = 10_000;
    // The server is a child process, so each side needs only its own end of
    // every connection.
    let wanted = CLIENTS + 500;
    if rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0) < wanted {
        eprintln!("SKIPPED: cannot raise RLIMIT_NOFILE to {wanted} for 10,000 clients");
        return;
    }
    let args = [
        "--event-port",
        "0",
        "--client-port",
        "0",
        "--max-clients",
        "10000",
        "--stats-interval-ms",
        "50",
    ];
    let mut binary = Binary::start(&args, &[], None);
    let mut source = TcpStream::connect(binary.event_addr).unwrap();
    let mut clients: Vec<TcpStream> = (1..=CLIENTS)
        .map(|id| client(binary.client_addr, id))
        .collect();
    // The periodic stats line says when every id has been registered.
    wait_for_line(&binary.log, "clients 10000 (+0 awaiting id)");
    // A private message to each client, and a closing broadcast.
    let mut events = Vec::new();
    for id in 1..=CLIENTS {
        writeln!(events, "{id}|P|0|{id}").unwrap();
    }
    writeln!(events, "{}|B", CLIENTS + 1).unwrap();
    source.write_all(&events).unwrap();
    let last = format!("{}|B\n", CLIENTS + 1);
    for (i, client) in clients.iter_mut().enumerate() {
        let id = i as u64 + 1;
        let expected = format!("{id}|P|0|{id}\n{last}");
        assert_eq!(
            read_through(client, last.as_bytes()),
            expected.as_bytes(),
            "user {id}"
        );
    }
    binary.signal(libc::SIGTERM);
    assert!(binary.wait().success());
    let summary = wait_for_line(&binary.log, "delivered");
    assert!(
        summary.contains(&format!("as {} notifications", 2 * CLIENTS)),
        "{summary}"
    );
}

#[test]
fn a_paused_source_with_expired_hole_timers_does_not_spin() {
    // Holes that the next few lines fill (1, 3, 5, then 2k with 2k+5), big
    // lines, and a reader too slow for the queued-output budget: the source
    // pauses while a hole's filler sits unread in its socket, and the hole's
    // deadline passes. The loop must sleep, not spin on that deadline.
    let args = [
        "--event-port",
        "0",
        "--client-port",
        "0",
        "--max-queued-bytes",
        "200000",
        "--hole-timeout-ms",
        "100",
        "--max-lag-ms",
        "60000",
    ];
    let mut binary = Binary::start(&args, &[], None);
    let reader = small_buffer_client(binary.client_addr, 7);
    std::thread::sleep(Duration::from_millis(200));
    let mut source = TcpStream::connect(binary.event_addr).unwrap();
    let mut order = vec![1u64, 3, 5];
    for k in 1..20_000u64 {
        order.extend([2 * k, 2 * k + 5]);
    }
    let mut events = Vec::new();
    for seq in order {
        if seq % 2 == 1 {
            writeln!(events, "{seq}|P|{:0900}|7", 1).unwrap();
        } else {
            writeln!(events, "{seq}|P|1|7").unwrap();
        }
    }
    let writer = std::thread::spawn(move || {
        let _ = source.write_all(&events);
    });
    // A slow reader: 4 KB every 50 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reading = std::sync::Arc::clone(&stop);
    let slow = std::thread::spawn(move || {
        let mut reader = reader;
        let mut buf = [0u8; 4096];
        while !stop_reading.load(std::sync::atomic::Ordering::Relaxed) {
            if reader.read(&mut buf).unwrap_or(0) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let before = binary.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = binary.cpu_ticks() - before;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    binary.signal(libc::SIGKILL);
    let _ = binary.wait();
    let _ = slow.join();
    let _ = writer.join();
    assert!(
        used * 5 < ticks_per_second,
        "{used} ticks of CPU in 1 s while paused"
    );
}

#[test]
fn each_listener_binds_its_own_address() {
    // The event port on loopback only, the clients on another address (a
    // network interface, in production): the event port is not reachable
    // there.
    let args = [
        "--event-port",
        "0",
        "--client-port",
        "0",
        "--bind",
        "127.0.0.1",
        "--client-bind",
        "127.0.0.2",
        "--stats-interval-ms",
        "50",
    ];
    let binary = Binary::start(&args, &[], None);
    assert_eq!(binary.event_addr.ip().to_string(), "127.0.0.1");
    assert_eq!(binary.client_addr.ip().to_string(), "127.0.0.2");
    let event_port_on_the_client_address =
        std::net::SocketAddr::new(binary.client_addr.ip(), binary.event_addr.port());
    assert!(
        TcpStream::connect(event_port_on_the_client_address).is_err(),
        "the event port is not open on the clients' address"
    );
    let mut source = TcpStream::connect(binary.event_addr).unwrap();
    let mut client = TcpStream::connect(binary.client_addr).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    client.write_all(b"7\n").unwrap();
    wait_for_line(&binary.log, "clients 1 (+0 awaiting id)");
    source.write_all(b"1|P|1|7\n").unwrap();
    let mut received = [0u8; 8];
    client.read_exact(&mut received).unwrap();
    assert_eq!(&received, b"1|P|1|7\n");
}

#[test]
fn started_with_sighup_ignored_it_stays_ignored() {
    // As `nohup` starts it: a hang-up must not stop it then.
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_follower-maze"));
    command
        .args(["--event-port", "0", "--client-port", "0"])
        .env_remove("eventListenerPort")
        .env_remove("clientListenerPort")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: signal(2) is async-signal-safe and touches no memory.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let log = forward_lines(child.stderr.take().unwrap());
    wait_for_line(&log, "listening for clients on");
    let pid = child.id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let line = wait_for_line(&log, "received");
    assert!(line.ends_with("received SIGTERM"), "{line}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn fresh_follows_without_end_keep_memory_within_the_graph_budget() {
    // A million follows between fresh ids, which take an unbounded graph
    // to about 120 MB, against a 16 MiB budget.
    let args = [
        "--event-port",
        "0",
        "--client-port",
        "0",
        "--max-follow-bytes",
        "16MiB",
        "--stats-interval-ms",
        "50",
    ];
    let binary = Binary::start(&args, &[], None);
    let idle_kb = binary.status_kb("VmRSS");
    let mut source = TcpStream::connect(binary.event_addr).unwrap();
    let mut client = TcpStream::connect(binary.client_addr).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    client.write_all(b"7\n").unwrap();
    wait_for_line(&binary.log, "clients 1 (+0 awaiting id)");
    let follows = 1_000_000u64;
    let mut stream = String::new();
    for seq in 1..=follows {
        writeln!(stream, "{seq}|F|{}|{}", seq + 10_000_000, seq + 20_000_000).unwrap();
    }
    writeln!(stream, "{}|B", follows + 1).unwrap();
    source.write_all(stream.as_bytes()).unwrap();
    // In order: the broadcast comes once every follow has been applied.
    let last = format!("{}|B\n", follows + 1);
    assert_eq!(read_through(&mut client, last.as_bytes()), last.as_bytes());
    let grown_kb = binary.status_kb("VmHWM").saturating_sub(idle_kb);
    assert!(
        grown_kb <= 48 * 1024,
        "peak RSS grew {grown_kb} kB for a 16 MiB graph budget"
    );
    let stats = wait_for_line(&binary.log, "follows ");
    assert!(!stats.contains("follows 0,"), "{stats}");
}
