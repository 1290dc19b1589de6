//! `follower-maze-sim --demo` end to end: it starts the `follower-maze`
//! binary it finds next to itself, runs against it, and stops it.
//!
//! Cargo puts both binaries in one directory when the workspace's tests are
//! built (`cargo test` at the root builds the server for its own tests), and
//! that is where the demo looks first.

use std::path::Path;
use std::process::{Command, Output};

/// The simulator binary under test.
const SIM: &str = env!("CARGO_BIN_EXE_follower-maze-sim");

/// What the simulator prints when every notification arrived.
const BANNER: &str = r"\o/ ALL NOTIFICATIONS RECEIVED \o/";

/// Runs the simulator with `args` and `FOLLOWER_MAZE_BIN` set to
/// `server_env` (unset when `None`); returns its output, and its stdout and
/// stderr as one text.
fn sim(args: &[&str], server_env: Option<&Path>) -> (Output, String) {
    let mut command = Command::new(SIM);
    command.args(args).env_remove("FOLLOWER_MAZE_BIN");
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

#[test]
fn the_demo_runs_against_the_server_binary_next_to_it() {
    let server = Path::new(SIM).with_file_name("follower-maze");
    assert!(
        server.is_file(),
        "no server binary at {}: run `cargo test` at the workspace root, which builds it",
        server.display()
    );
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
