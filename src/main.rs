//! The `follower-maze` server binary: configuration from flags and the
//! environment, a logger, and the server loop until SIGINT, SIGTERM or SIGHUP, in
//! one of three modes: standalone (no subcommand), or a cluster's `ingest`
//! or `edge` around a NATS JetStream log.

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use follower_maze::cluster::args::ClusterArgs;
use follower_maze::cluster::{edge, ingest};
use follower_maze::{Config, Server, Stats};

/// The command line: the standalone server's flags, or a cluster mode with
/// the same flags plus where the log is.
#[derive(Debug, Parser)]
#[command(
    name = "follower-maze",
    version,
    about = "Fans an out-of-order event stream out, in sequence order, to the TCP clients it concerns.",
    long_about = "Fans an out-of-order event stream out, in sequence order, to the TCP clients it concerns.\n\n\
        With no subcommand it is one standalone server and needs nothing else. Past one machine, \
        `ingest` takes the event source and appends it to a NATS JetStream stream, and any number \
        of `edge`s serve clients from that stream.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// A cluster mode; none runs the standalone server.
    #[command(subcommand)]
    mode: Option<Mode>,
    /// The standalone server's flags.
    #[command(flatten)]
    config: Config,
}

/// The cluster modes.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Takes the event source on the event port (as the standalone server
    /// does: window, holes, new runs, back-pressure) and appends its
    /// in-order events to the log in batches. One ingest per stream: a
    /// second is refused by the log.
    Ingest {
        /// Where the log is.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The server's flags (the client port is not used).
        #[command(flatten)]
        config: Config,
    },
    /// Serves clients on the client port from the whole log, in order,
    /// with the standalone server's limits; opens the port once it has
    /// caught up with the log. Run as many as the clients need.
    Edge {
        /// Where the log is.
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The server's flags (the event port is not used).
        #[command(flatten)]
        config: Config,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.mode {
        None => &cli.config,
        Some(Mode::Ingest { config, .. } | Mode::Edge { config, .. }) => config,
    };
    if let Err(err) = simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .init()
    {
        eprintln!("follower-maze: cannot start logging: {err}");
        return ExitCode::FAILURE;
    }
    // Values that would make the server useless are refused before
    // anything is bound (a cluster mode listens on one port only).
    let valid = match &cli.mode {
        None => config.validate(),
        Some(_) => config.validate_limits(),
    };
    if let Err(why) = valid {
        log::error!("{why}");
        return ExitCode::FAILURE;
    }
    let is_ingest = matches!(cli.mode, Some(Mode::Ingest { .. }));
    let outcome = match cli.mode {
        None => Server::bind(cli.config).and_then(Server::run),
        Some(Mode::Ingest { cluster, config }) => ingest::run(config, &cluster),
        Some(Mode::Edge { cluster, config }) => edge::run(config, &cluster),
    };
    report(outcome, is_ingest)
}

/// Logs how the run ended (an ingest appends events rather than delivering
/// them) and turns it into the exit code.
fn report(outcome: io::Result<Stats>, is_ingest: bool) -> ExitCode {
    match outcome {
        Ok(stats) => {
            let done = if is_ingest {
                format!("appended {} events to the log", stats.events_routed)
            } else {
                format!(
                    "delivered {} events as {} notifications ({} bytes)",
                    stats.events_routed, stats.notifications, stats.bytes_out
                )
            };
            log::info!(
                "{done}; skipped {}, late {}, duplicate {}, malformed {}",
                stats.skipped,
                stats.late,
                stats.duplicates,
                stats.malformed
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            log::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
