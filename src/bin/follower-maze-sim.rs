//! `follower-maze-sim`: plays the event source and every user client against
//! a follower-maze server, verifies every notification, and prints the
//! original client's banner on success.
//!
//! Knobs keep the original client's environment variables (`totalEvents`,
//! `concurrencyLevel`, ...); `--help` lists them all. `--demo` starts the
//! server in-process on free ports, so one command shows the whole thing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use follower_maze::sim::{self, Failure, FailureReason, Report, SimConfig};
use follower_maze::{BackgroundServer, Config, Stats};

/// What the original client printed when every notification arrived.
const BANNER: &str = r"\o/ ALL NOTIFICATIONS RECEIVED \o/";

/// Hole timeout of the demo server when `--holes` is used, so each hole
/// costs a tenth of a second instead of the default second.
const DEMO_HOLE_TIMEOUT: Duration = Duration::from_millis(100);

/// Prints one line of the simulator's output. Unlike `println!` it does
/// not panic when stdout is closed (say, piped into `head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// The simulator's command line: the run's knobs plus what to do with them.
#[derive(Debug, Parser)]
#[command(
    name = "follower-maze-sim",
    version,
    about = "Load generator and verifier for follower-maze: the event source and all user clients at once."
)]
struct Args {
    /// The run's knobs.
    #[command(flatten)]
    sim: SimConfig,

    /// Also write the report, with the verdict, as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Start the server in-process on free ports and run against it.
    #[arg(long)]
    demo: bool,

    /// Only generate every event through the model and discard the bytes;
    /// print the generator's events per second.
    #[arg(long)]
    generate_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(err) = simple_logger::SimpleLogger::new()
        .with_level(args.sim.log_level)
        .init()
    {
        eprintln!("follower-maze-sim: cannot start logging: {err}");
        return ExitCode::FAILURE;
    }
    if args.generate_only {
        return match sim::generate_only(&args.sim) {
            Ok(report) => {
                say!("{report}");
                ExitCode::SUCCESS
            }
            Err(reason) => {
                say!("FAILED: {reason}");
                ExitCode::from(2)
            }
        };
    }
    if args.demo {
        demo(&args)
    } else {
        let outcome = sim::run(&args.sim);
        finish(&args, outcome)
    }
}

/// Runs against a server started in-process, then stops it and reports
/// what it counted too.
fn demo(args: &Args) -> ExitCode {
    let mut config = Config {
        log_level: args.sim.log_level,
        ..Config::ephemeral()
    };
    if args.sim.holes > 0 {
        config.hole_timeout = DEMO_HOLE_TIMEOUT;
    }
    let server = match BackgroundServer::start(config) {
        Ok(server) => server,
        Err(err) => {
            say!("FAILED: cannot start the demo server: {err}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "demo server listening: events on {}, clients on {}",
        server.event_addr(),
        server.client_addr()
    );
    let sim = SimConfig {
        host: server.event_addr().ip().to_string(),
        event_port: server.event_addr().port(),
        client_port: server.client_addr().port(),
        ..args.sim.clone()
    };
    let outcome = sim::run(&sim);
    match server.stop() {
        Ok(stats) => print_server_stats(&stats),
        Err(err) => say!("server: stopping failed: {err}"),
    }
    finish(args, outcome)
}

/// Prints the demo server's own counts, to compare with the simulator's.
fn print_server_stats(stats: &Stats) {
    say!(
        "server: {} events in, {} routed, {} notifications ({:.1} MB out); {} skipped, {} late, {} duplicate, {} malformed, {} slow consumers cut",
        stats.events_in,
        stats.events_routed,
        stats.notifications,
        stats.bytes_out as f64 / 1e6,
        stats.skipped,
        stats.late,
        stats.duplicates,
        stats.malformed,
        stats.slow_consumers
    );
}

/// Prints the summary and the verdict, writes the JSON, picks the exit
/// code: 0 on success, 1 on a failed run, 2 for a configuration error.
fn finish(args: &Args, outcome: Result<Report, Failure>) -> ExitCode {
    let (report, reasons): (&Report, &[FailureReason]) = match &outcome {
        Ok(report) => (report, &[]),
        Err(failure) => (&failure.report, &failure.reasons),
    };
    say!("{report}");
    let mut code = match &outcome {
        Ok(_) => {
            say!("{BANNER}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            say!("{failure}");
            if matches!(failure.first(), FailureReason::Config(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    };
    if let Some(path) = &args.json
        && let Err(err) = std::fs::write(path, report.to_json(reasons) + "\n")
    {
        say!("FAILED: cannot write {}: {err}", path.display());
        code = ExitCode::FAILURE;
    }
    code
}
