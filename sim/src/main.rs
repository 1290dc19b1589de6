//! `follower-maze-sim`: plays the event source and every user client against
//! a follower-maze server, verifies every notification, and prints the
//! original client's banner on success.
//!
//! Knobs keep the original client's environment variables (`totalEvents`,
//! `concurrencyLevel`, ...); `--help` lists them all. `--demo` starts the
//! `follower-maze` binary on free ports and stops it after the run, so one
//! command shows the whole thing.
//! `--loopback-baseline` and `--ratio` measure the loopback bandwidth the
//! same way, to say what fraction of it the server delivers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use follower_maze_sim::baseline::{self, Writer};
use follower_maze_sim::demo_server::{self, DemoServer, DemoSettings};
use follower_maze_sim::{self as sim, BaselineReport, Failure, FailureReason, Report, SimConfig};

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

    /// Start the follower-maze server binary on free loopback ports, run
    /// against it, then stop it (SIGTERM); it logs its own final counts.
    #[arg(long)]
    demo: bool,

    /// The server binary --demo starts [default: follower-maze next to this
    /// executable, else on PATH].
    #[arg(long, env = "FOLLOWER_MAZE_BIN", value_name = "PATH")]
    server_bin: Option<PathBuf>,

    /// Only generate every event through the model and discard the bytes;
    /// print the generator's events per second.
    #[arg(long)]
    generate_only: bool,

    /// Only measure the loopback baseline: a trivial writer sends
    /// --baseline-bytes of pre-made lines over as many connections as a run
    /// verifies (concurrencyLevel + --duplicate-ids, doubled by --twin-ids),
    /// read by this simulator's client loop (same read size, same mio loop,
    /// bytes counted, not checked); prints bytes/s. The writer is a child
    /// process, as the server is.
    #[arg(long)]
    loopback_baseline: bool,

    /// Measure the loopback baseline with the run's connections first (the
    /// server is idle then), then run, and print delivered notification
    /// bytes/s ÷ baseline bytes/s: the fraction of the loopback's capacity
    /// the run reached. Use with --count-only to measure the server rather
    /// than the verifier.
    #[arg(long)]
    ratio: bool,

    /// Bytes the loopback baseline sends in all (at least 64 KiB per
    /// connection).
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000_000)]
    baseline_bytes: u64,

    /// Internal: be the baseline's writer process (see --loopback-baseline).
    #[arg(long = "baseline-writer", hide = true)]
    baseline_writer: bool,

    /// Internal: connections the writer process accepts.
    #[arg(long, hide = true, default_value_t = 0)]
    baseline_connections: usize,

    /// Internal: bytes the writer process sends on each connection.
    #[arg(long, hide = true, default_value_t = 0)]
    baseline_bytes_per_connection: u64,
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
    if args.baseline_writer {
        return match baseline::writer_main(
            &args.sim.host,
            args.baseline_connections,
            args.baseline_bytes_per_connection,
            args.sim.timeout,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("follower-maze-sim: baseline writer: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.loopback_baseline {
        return match measure_baseline(&args) {
            Some(report) => {
                say!("{report}");
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        };
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
    let baseline = if args.ratio {
        match measure_baseline(&args) {
            Some(measured) => {
                say!("{measured}");
                Some(measured)
            }
            None => return ExitCode::FAILURE,
        }
    } else {
        None
    };
    if args.demo {
        demo(&args, baseline)
    } else {
        let outcome = sim::run(&args.sim);
        finish(&args, outcome, baseline)
    }
}

/// Runs against the server binary started as a child process, then stops
/// it; the server logs its own final counts as it exits.
fn demo(args: &Args, baseline: Option<BaselineReport>) -> ExitCode {
    let settings = DemoSettings {
        log_level: args.sim.log_level,
        hole_timeout: (args.sim.holes > 0).then_some(DEMO_HOLE_TIMEOUT),
    };
    let started = demo_server::find_server(args.server_bin.as_deref())
        .and_then(|binary| DemoServer::start(&binary, &settings));
    let server = match started {
        Ok(server) => server,
        Err(why) => {
            say!("FAILED: cannot start the demo server: {why}");
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "demo server listening: events on {}, clients on {}",
        server.event_addr(),
        server.client_addr()
    );
    let client_port = server.client_addr().port();
    let sim = SimConfig {
        host: server.event_addr().ip().to_string(),
        event_port: server.event_addr().port(),
        client_port,
        // One server, one client port: each listed port stands for it, and
        // keeping their number keeps the round robin (and the twins) as
        // listed, every connection on the demo server.
        client_ports: args
            .sim
            .client_ports
            .as_ref()
            .map(|ports| vec![client_port; ports.len()]),
        ..args.sim.clone()
    };
    let outcome = sim::run(&sim);
    let stopped = match server.stop() {
        Ok(status) if status.success() => true,
        Ok(status) => {
            say!("FAILED: the demo server exited with {status}");
            false
        }
        Err(err) => {
            say!("FAILED: stopping the demo server: {err}");
            false
        }
    };
    let code = finish(args, outcome, baseline);
    if stopped { code } else { ExitCode::FAILURE }
}

/// Measures the loopback baseline for `args`' connections, with the writer
/// in a child process as the server is; says why on failure.
fn measure_baseline(args: &Args) -> Option<BaselineReport> {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            say!("FAILED: loopback baseline: cannot find this executable: {err}");
            return None;
        }
    };
    match baseline::measure(&args.sim, args.baseline_bytes, Writer::Process(exe)) {
        Ok(report) => Some(report),
        Err(err) => {
            say!("FAILED: loopback baseline: {err}");
            None
        }
    }
}

/// Prints the summary, the ratio to the `baseline` if one was measured, and
/// the verdict, writes the JSON, picks the exit code: 0 on success, 1 on a
/// failed run, 2 for a configuration error.
fn finish(
    args: &Args,
    outcome: Result<Report, Failure>,
    baseline: Option<BaselineReport>,
) -> ExitCode {
    let (report, reasons): (&Report, &[FailureReason]) = match &outcome {
        Ok(report) => (report, &[]),
        Err(failure) => (&failure.report, &failure.reasons),
    };
    say!("{report}");
    if args.sim.count_only {
        say!("(--count-only: each client's lines were counted, not checked)");
    }
    if let (Some(measured), Ok(_)) = (&baseline, &outcome) {
        let delivered = report.megabytes_per_second() * 1e6;
        say!(
            "delivered/baseline: {:.2} MB/s / {:.2} MB/s = {:.3}",
            delivered / 1e6,
            measured.bytes_per_second() / 1e6,
            measured.ratio(delivered)
        );
    }
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
        && let Err(err) = std::fs::write(path, report.to_json(reasons, baseline.as_ref()) + "\n")
    {
        say!("FAILED: cannot write {}: {err}", path.display());
        code = ExitCode::FAILURE;
    }
    code
}
