//! The `strom` command line: one subcommand per product role (see `strom --help`). Kept thin: each subcommand module
//! holds its flags and a short function that calls into the library crates.

pub mod auth;
pub mod backtest;
pub mod database;
pub mod migrate;
pub mod nats;
pub mod parity;
pub mod relay;
pub mod replay;
pub mod serve;
pub mod sim;
pub mod telegram;
pub mod token;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::shutdown::shutdown_signal;
use crate::telemetry::LogFormat;

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "STROM: an event-sourced trading ledger for automated strategies",
    long_about = "STROM: an event-sourced trading ledger for automated strategies.\n\n\
        Every setting can come from a flag or from the STROM_* environment variable shown beside it.\n\
        With no STROM_DATABASE_URL / STROM_NATS_URL, STROM runs embedded on in-memory adapters (state is lost on exit)."
)]
pub struct Cli {
    /// A file of `STROM_*=value` lines (dotenv syntax) read before anything else; variables already set in the
    /// environment win over it, and flags win over both.
    #[arg(long, env = "STROM_CONFIG", global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `strom_api=debug,info`).
    #[arg(long, env = "STROM_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log line format.
    #[arg(
        long,
        env = "STROM_LOG_FORMAT",
        value_enum,
        default_value = "json",
        global = true
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the product: the API, the projector and the background roles (scheduler, runtime, relay, sim).
    // Boxed: its many settings would make every other command as large.
    Serve(Box<serve::ServeArgs>),
    /// Mint a dev-mode JWT (HS256 with the local dev key) and print it, alone, on stdout.
    Token(token::TokenArgs),
    /// Run the deterministic market simulator alone: publish prices on NATS until stopped, or (--print, --csv)
    /// write them out without any bus.
    Sim(sim::SimArgs),
    /// Audit and repair from the event log: rebuild read models (--rebuild), verify hash chains and read models
    /// (--verify), export the log (--export FILE), or replay an exported file without a database (--from FILE).
    Replay(replay::ReplayArgs),
    /// Apply the database migrations that STROM_DATABASE_URL (schema STROM_DATABASE_SCHEMA) lacks, and print them.
    /// Safe to run any number of times.
    Migrate(database::DatabaseArgs),
    /// Backtest an agent config over CSV bars or a simulated price range, in memory (nothing is stored): the same
    /// aggregate, strategy, risk, fill and PnL code as paper trading, so a backtest over a paper agent's observations
    /// reproduces its trades exactly.
    Backtest(backtest::BacktestArgs),
    /// Check the parity rule for a paper agent: backtest its observations with its config and fill model and compare
    /// the orders, fills, positions and PnL points element by element ("equal" or the first difference).
    Parity(parity::ParityArgs),
    /// Run the outbox relay alone: publish committed events from Postgres to JetStream until stopped (one active
    /// relay per NATS prefix; start more as standbys).
    Relay(relay::RelayArgs),
    /// Run the Telegram bot (long polling) until stopped: it answers linked chats by calling the REST API at
    /// STROM_API_URL with the linked user's session, and never touches the database or the bus.
    Telegram(telegram::TelegramArgs),
}

/// Runs `command` until it is done or, for the long-running ones, until Ctrl-C or SIGTERM.
///
/// # Errors
/// Whatever the subcommand reports; `main` prints it and exits non-zero.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::serve(*args, shutdown_signal()).await,
        Command::Token(args) => token::token(&args),
        Command::Sim(args) => sim::sim(args, shutdown_signal()).await,
        Command::Replay(args) => replay::replay(args, shutdown_signal()).await,
        Command::Migrate(args) => migrate::migrate(args).await,
        Command::Relay(args) => relay::relay(args, shutdown_signal()).await,
        Command::Parity(args) => parity::parity(args).await,
        Command::Backtest(args) => backtest::backtest(args, shutdown_signal()).await,
        Command::Telegram(args) => telegram::telegram(args, shutdown_signal()).await,
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise (logs, CI, pipes). `unit` names what is counted.
pub(crate) fn progress_bar(total: u64, what: &str, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{msg:>10}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A long command stopped by Ctrl-C or SIGTERM, having left nothing half-written: `main` exits with 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {0}")]
pub struct Interrupted(pub String);
