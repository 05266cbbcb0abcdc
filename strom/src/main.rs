//! `strom`: parse the command line (after the config file), set up logging, run the subcommand on a tokio runtime.
//! Everything else lives in the library (`strom::cli` and below).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use strom::cli::{self, Cli};
use strom::{config, telemetry};

/// Exit status when the config file cannot be read (clap uses 2 for usage errors too).
const CONFIG_ERROR: u8 = 2;
/// Exit status after Ctrl-C/SIGTERM stopped a long command (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    if let Err(err) = config::load_config_file() {
        eprintln!("error: {err:#}");
        return ExitCode::from(CONFIG_ERROR);
    }
    let cli = Cli::parse();
    telemetry::init_logging(&cli.log, cli.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")
        .and_then(|rt| rt.block_on(cli::run(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<cli::Interrupted>().is_some() {
                ExitCode::from(INTERRUPTED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
