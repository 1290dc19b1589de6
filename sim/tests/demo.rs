//! `follower-maze-sim --demo` end to end: it starts the `follower-maze`
//! binary it finds next to itself, runs against it, and stops it. Also the
//! simulator's binary against that server started here, with its one client
//! port listed twice (`--client-ports P,P`) and `--twin-ids`: two
//! connections of one id on one server receive the same bytes.
//!
//! Cargo puts both binaries in one directory when the workspace's tests are
//! built (`cargo test` at the root builds the server for its own tests), and
//! that is where the demo looks first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use follower_maze_sim::demo_server::{DemoServer, DemoSettings};

/// The simulator binary under test.
const SIM: &str = env!("CARGO_BIN_EXE_follower-maze-sim");

/// What the simulator prints when every notification arrived.
const BANNER: &str = r"\o/ ALL NOTIFICATIONS RECEIVED \o/";

/// Runs the simulator with `args` and `FOLLOWER_MAZE_BIN` set to
/// `server_env` (unset when `None`); returns its output, and its stdout and
/// stderr as one text.
fn sim(args: &[&str], server_env: Option<&Path>) -> (Output, String) {
    sim_with(args, server_env, &[])
}

/// [`sim`] with the variables `vars` set as well.
fn sim_with(args: &[&str], server_env: Option<&Path>, vars: &[(&str, &str)]) -> (Output, String) {
    let mut command = Command::new(SIM);
    command
        .args(args)
        .env_remove("FOLLOWER_MAZE_BIN")
        .env_remove("clientListenerPorts")
        .envs(vars.iter().copied());
    if let Some(server) = server_env {
        command.env("FOLLOWER_MAZE_BIN", server);
    }
    let output = command.output().expect("the simulator runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// The server binary cargo built next to the simulator.
fn server_binary() -> PathBuf {
    let server = Path::new(SIM).with_file_name("follower-maze");
    assert!(
        server.is_file(),
        "no server binary at {}: run `cargo test` at the workspace root, which builds it",
        server.display()
    );
    server
}

/// The real server on loopback ports it picks, quiet but for warnings.
fn start_server() -> DemoServer {
    let settings = DemoSettings {
        log_level: log::LevelFilter::Warn,
        hole_timeout: None,
    };
    DemoServer::start(&server_binary(), &settings).expect("the server starts")
}

/// A small run's flags: 2,000 events, 10 verified clients, no progress.
const SMALL: [&str; 6] = [
    "--total-events",
    "2000",
    "--concurrency-level",
    "10",
    "--log-interval",
    "0",
];

#[test]
fn the_demo_runs_against_the_server_binary_next_to_it() {
    server_binary();
    let (output, text) = sim(
        &[
            "--demo",
            "--total-events",
            "2000",
            "--concurrency-level",
            "10",
            "--holes",
            "2",
            "--log-interval",
            "0",
        ],
        None,
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains(BANNER), "{text}");
    // The server's own last log line, written after SIGTERM: it ran, was
    // stopped gracefully, and skipped the two holes.
    assert!(
        text.contains("delivered 1998 events as") && text.contains("skipped 2,"),
        "{text}"
    );
}

#[test]
fn without_a_server_binary_the_demo_says_how_to_build_one() {
    let missing = std::env::temp_dir().join("follower-maze-sim-test-no-such-server");
    let (output, text) = sim(&["--demo", "--log-interval", "0"], Some(&missing));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("cargo build --release"), "{text}");
    assert!(!text.contains(BANNER), "{text}");
}

#[test]
fn twins_over_the_real_servers_client_port_listed_twice_pass() {
    let server = start_server();
    let event_port = server.event_addr().port().to_string();
    let client_port = server.client_addr().port();
    let ports = format!("{client_port},{client_port}");
    let mut args = vec![
        "--event-port",
        &event_port,
        "--client-ports",
        &ports,
        "--twin-ids",
    ];
    args.extend(SMALL);
    let (output, text) = sim(&args, None);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(BANNER), "{text}");
    assert!(
        text.contains(&format!(
            "20 clients connected to 127.0.0.1 on ports {ports} (20 verified, 10 of them twins; 0 silent)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(" to 20 clients on ports {ports} in ")),
        "{text}"
    );
    let status = server.stop().expect("the server stops");
    assert!(status.success(), "{status}");
}

#[test]
fn client_listener_ports_replaces_client_listener_port() {
    let server = start_server();
    let event_port = server.event_addr().port().to_string();
    let client_port = server.client_addr().port();
    let ports = format!("{client_port},{client_port}");
    let mut args = vec!["--event-port", event_port.as_str()];
    args.extend(SMALL);
    // Port 1 would refuse every client: only the list is used.
    let vars = [
        ("clientListenerPort", "1"),
        ("clientListenerPorts", ports.as_str()),
    ];
    let (output, text) = sim_with(&args, None, &vars);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(" to 10 clients on ports {ports} in ")),
        "{text}"
    );
    let status = server.stop().expect("the server stops");
    assert!(status.success(), "{status}");
}

#[test]
fn the_demo_points_every_listed_port_at_its_server() {
    server_binary();
    // Ports 1 and 2 refuse connections: the demo must replace both.
    let mut args = vec!["--demo", "--client-ports", "1,2", "--twin-ids"];
    args.extend(SMALL);
    let (output, text) = sim(&args, None);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(BANNER), "{text}");
    let client_port = text
        .split("clients on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .expect("the demo logs its client port");
    assert!(
        text.contains(&format!(
            " to 20 clients on ports {client_port},{client_port} in "
        )),
        "{text}"
    );
}
