//! The `follower-maze` server binary: configuration from flags and the
//! environment, a logger, and the server loop until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use follower_maze::{Config, Server};

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(err) = simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .init()
    {
        eprintln!("follower-maze: cannot start logging: {err}");
        return ExitCode::FAILURE;
    }
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(err) => {
            log::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match server.run() {
        Ok(stats) => {
            log::info!(
                "delivered {} events as {} notifications ({} bytes); skipped {}, late {}, duplicate {}, malformed {}",
                stats.events_routed,
                stats.notifications,
                stats.bytes_out,
                stats.skipped,
                stats.late,
                stats.duplicates,
                stats.malformed
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            log::error!("the server loop failed: {err}");
            ExitCode::FAILURE
        }
    }
}
