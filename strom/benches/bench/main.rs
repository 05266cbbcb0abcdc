//! `make bench` (`cargo bench -p strom --bench bench`): the event store's, the command path's and the read model's
//! figures beside the machine's own baseline, as the brief's bar asks (append ≥ half of pgbench's single-row
//! inserts; projection rebuild ≥ 1M events/s from Postgres and from memory; command latency the same with 10 or
//! 100,000 events behind the aggregate).
//!
//! In order: the machine; commands/s through the real command path (`AggregateService<Agent>` → Postgres event store
//! → our hash-chain trigger; `RecordRun`, one event per command, one running agent per writer) at 1, 8 and 32
//! writers beside pgbench's tps for one-row INSERTs at the same client counts ([`append`]); `RecordRun` latency p50
//! and p99 on an agent with 10 and with 100,000 prior events, on Postgres and in memory, with a warm service and as
//! the first command of a fresh one ([`latency`]); then, over a log of 1,000,000 valid Agent events ([`history`]),
//! a plain sequential scan, the typed global log reader, the projection rebuild from Postgres (into the Postgres
//! read model and into the memory one), the rebuild from memory (the same agents' events in a `MemoryEventStore`,
//! typed, into a `MemoryReadModel`) and the relay to JetStream ([`reads`]). Every rebuild is checked: as many
//! agents, runs and events as were written. Last, paper trading on Postgres + NATS: tick-to-fill latency with 1,000
//! agents ticking every second and the fills/s the execution role sustains ([`trading`]).
//!
//! Figures go to stdout and, at the end, to `target/bench/results.json` ([`report`]); progress of the long steps to
//! stderr. Everything happens in scratch schemas (and a scratch NATS prefix) that guards drop at the end, on an error
//! and on Ctrl-C.
//!
//! Not a libtest bench (`harness = false`): `cargo test --all-targets` runs this binary without `--bench`, and it
//! then returns at once. `--quick` (`cargo bench ... -- --quick`) or `STROM_BENCH_QUICK=1` shortens every phase,
//! builds a log of 100,000 events and a latency history of 10,000 instead (a smoke run; its figures are not the
//! published ones, and results.json says `"quick": true`).

mod append;
mod backtest;
mod history;
mod latency;
mod reads;
mod report;
mod trading;

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use strom_tests::db::TestDb;

use report::Report;

/// Concurrent writers per append level: one (latency-bound), a few per core, and well past the cores (where
/// group commit should pay off).
const WRITER_LEVELS: [usize; 3] = [1, 8, 32];
/// Length of each append level and of each pgbench run (the same, so both see the same conditions).
const LEVEL_SECONDS: u64 = 10;
/// Agents in the read workload. With [`history::EVENTS_PER_AGENT`] this gives the brief's rebuild size, 1,000,000
/// events.
const LOG_AGENTS: u64 = 2_000;
/// Events the relay figure publishes to JetStream: enough for a steady rate, few enough that the stream and its
/// dedup index stay small (the whole run must stay short on a shared machine).
const RELAY_EVENTS: usize = 100_000;
/// Prior events of the two latency agents: a young agent, and the brief's long history (about a day of runs at
/// one per second). Its cost must not show in the figure.
const LATENCY_HISTORIES: [u64; 2] = [10, 100_000];
/// Timed commands per warm latency case: enough for a stable p99 (ten samples above it), few enough that the
/// Postgres cases (a WAL flush each, 1–3 ms) take seconds.
const LATENCY_COMMANDS: usize = 1_000;
/// Fresh services per cold latency case, one timed command each: the p99 of 100 samples is their second largest.
const LATENCY_COLD_SAMPLES: usize = 100;
/// A smoke run divides the phase sizes above by this.
const QUICK_DIVISOR: u64 = 10;
/// How long a scratch-schema connection waits for the server before the bench gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The phase sizes: the constants above, or a smoke-run fraction of them.
pub struct Plan {
    quick: bool,
    level: Duration,
    agents: u64,
    relay_events: usize,
    latency_histories: [u64; 2],
    latency_commands: usize,
    cold_samples: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let divisor = if quick { QUICK_DIVISOR } else { 1 };
        let level_s = if quick { 2 } else { LEVEL_SECONDS };
        Self {
            quick,
            level: Duration::from_secs(level_s),
            agents: LOG_AGENTS / divisor,
            relay_events: RELAY_EVENTS / divisor as usize,
            // The short history stays 10: it is the point of comparison, not a size to shrink.
            latency_histories: [LATENCY_HISTORIES[0], LATENCY_HISTORIES[1] / divisor],
            latency_commands: LATENCY_COMMANDS / divisor as usize,
            cold_samples: LATENCY_COLD_SAMPLES / divisor as usize,
        }
    }

    fn log_events(&self) -> u64 {
        self.agents * history::EVENTS_PER_AGENT
    }

    fn runs_per_agent(&self) -> u64 {
        history::EVENTS_PER_AGENT - history::EVENTS_BEFORE_RUNS
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("bench: run it with `make bench` (cargo bench); skipped under cargo test");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("STROM_BENCH_QUICK").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // On Ctrl-C the bench future is dropped, and with it every scratch guard (schemas, NATS prefix) still alive.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(Plan::new(quick)) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    if let Err(error) = outcome {
        eprintln!("bench failed: {error}");
        std::process::exit(1);
    }
}

fn database_url() -> String {
    std::env::var("STROM_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("STROM_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn nats_url() -> String {
    std::env::var("STROM_BENCH_NATS_URL")
        .or_else(|_| std::env::var("STROM_TEST_NATS_URL"))
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn run(plan: Plan) -> BenchResult<()> {
    let started = Instant::now();
    let url = database_url();
    let mut admin = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&url))
        .await
        .map_err(|_| format!("no answer from Postgres at {url}"))??;
    let mut report = Report::new(&mut admin, &nats_url(), plan.quick).await?;
    admin.close().await.ok();
    report.print_machine();
    println!();
    append::append(&url, &plan, &mut report).await?;
    println!();
    latency::latency(&url, &plan, &mut report).await?;
    println!();
    reads::reads(&url, &plan, &mut report).await?;
    println!();
    trading::trading(&url, &plan, &mut report).await?;
    println!();
    backtest::backtest(&plan, &mut report).await?;
    println!();
    let total_s = started.elapsed().as_secs_f64();
    report.record("total bench time", total_s, "s", "all");
    let path = report.finish()?;
    println!(
        "total bench time: {total_s:.0} s; load at the end: {}; figures also in {}",
        report::load_average(),
        path.display()
    );
    Ok(())
}

/// A schema that exists for one phase and is dropped with everything in it when the guard goes (also when the
/// bench fails or is interrupted: the future holding it is dropped then).
type Scratch = TestDb;

async fn scratch(url: &str, what: &str, connections: u32, migrated: bool) -> BenchResult<Scratch> {
    let builder = TestDb::builder(&format!("bench_{what}"))
        .url(url)
        .connections(connections)
        .acquire_timeout(CONNECT_TIMEOUT);
    let builder = if migrated {
        builder
    } else {
        builder.without_migrations()
    };
    Ok(builder.try_build().await?)
}
