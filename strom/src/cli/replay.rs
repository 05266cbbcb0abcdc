//! `strom replay`: the audit tool's flags, progress bars and report printing around the audits of
//! `strom_projections::replay` (rebuild, verify, export, offline replay of an exported file).
//!
//! Every mode only reads the event log. `--rebuild` writes the read models in one transaction, so an error or
//! Ctrl-C leaves them as they were; `--export` writes to a temporary file renamed into place at the end.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::progress_bar;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use strom_commands::log::{LogPosition, PgEventLog};
use strom_commands::store::{pg_connect_options, PgEventStore};
use strom_projections::replay::{self, file, ModelCheck};
use strom_projections::{RebuildProgress, TableDump, AGENTS_PROJECTOR, AGENTS_TABLES};

/// Connections `strom replay` opens: the log reader, the rebuild transaction, and one spare.
const REPLAY_POOL_CONNECTIONS: u32 = 3;
/// How long to wait for a database connection before giving up with a clear error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Projectors `--rebuild` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProjectorName {
    /// `projector:agents`: tables `agents`, `agent_runs`, `orders`, `trades`, `positions` and `pnl_points`.
    Agents,
    /// `projector:backtests`: table `backtests` (the runner's artifacts are not read models and stay).
    Backtests,
}

/// `strom replay` flags. Exactly one of --rebuild, --verify, --export, --from.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("mode").required(true).args(["rebuild", "verify", "export", "from", "export_observations"])),
    after_help = "Exit status: 0 when everything checked is intact, 1 on any problem or error (each problem is \
        listed on stdout). Ctrl-C stops any mode without changing anything."
)]
pub struct ReplayArgs {
    /// Rebuild a projector's read models from zero, atomically: ONE transaction truncates its tables, refolds the
    /// whole log into them (COPY) and resets its checkpoint, then commits. Readers keep the old rows until the
    /// commit (reads of those tables wait while it runs); an error or Ctrl-C rolls everything back. The live
    /// projector waits on the same lock and continues from the new checkpoint.
    #[arg(long, value_name = "PROJECTOR", num_args = 0..=1, default_missing_value = "agents")]
    pub rebuild: Option<ProjectorName>,
    /// Recompute every hash chain (reporting each altered, missing or reordered event) AND rebuild the read
    /// models in memory, comparing them row by row with the live tables at their checkpoint (reporting each
    /// differing row). Read-only.
    #[arg(long)]
    pub verify: bool,
    /// Write the whole event log to FILE as JSON lines, one logged event per line, in log order.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Write the observations of paper agent AGENT_ID's runs as bar CSV on stdout (ts = observed_at, open = high =
    /// low = close = price, volume 0; specs/06 §5), in (session, tick) order, and on stderr the `strom backtest`
    /// command (with the agent's config and fill model) that reproduces its trades. `strom parity` does both in one.
    #[arg(long, value_name = "AGENT_ID")]
    pub export_observations: Option<String>,
    /// Replay a JSON-lines event FILE without any database: check its order and hash chains, fold it, and print
    /// the read models as JSON (or write them with --out, or compare them with --expect).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// With --from: compare the read models with the golden files DIR/<table>.jsonl (agents, agent_runs, orders,
    /// trades, positions, pnl_points).
    #[arg(long, value_name = "DIR", requires = "from")]
    pub expect: Option<PathBuf>,
    /// With --from: write the read models to DIR/<table>.jsonl (one file per table) instead of printing them.
    #[arg(long, value_name = "DIR", requires = "from", conflicts_with = "expect")]
    pub out: Option<PathBuf>,
    /// Postgres URL of the event store (needed by every mode but --from).
    #[arg(long, env = "STROM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema holding the tables (default: the server's search_path).
    #[arg(long, env = "STROM_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

/// Runs `strom replay` until done or until `interrupted` resolves (Ctrl-C/SIGTERM), which stops it without changing
/// anything.
///
/// # Errors
/// Any problem found (after listing them all), bad flags or files, or a database failure.
pub async fn replay(args: ReplayArgs, interrupted: impl Future<Output = ()>) -> anyhow::Result<()> {
    tokio::select! {
        result = run_mode(args) => result,
        () = interrupted => anyhow::bail!("interrupted: nothing was changed (any rebuild transaction rolled back)"),
    }
}

async fn run_mode(args: ReplayArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.from {
        return from_file(path, args.expect.as_deref(), args.out.as_deref());
    }
    let pool = connect(&args).await?;
    if let Some(projector) = args.rebuild {
        rebuild(&pool, projector).await
    } else if args.verify {
        verify(&pool).await
    } else if let Some(path) = &args.export {
        export(&pool, path).await
    } else if let Some(agent_id) = &args.export_observations {
        export_observations(&pool, agent_id).await
    } else {
        anyhow::bail!("choose one of --rebuild, --verify, --export FILE, --from FILE")
    }
}

async fn connect(args: &ReplayArgs) -> anyhow::Result<PgPool> {
    let Some(url) = &args.database_url else {
        anyhow::bail!(
            "strom replay --rebuild/--verify/--export read the event store: set STROM_DATABASE_URL (or \
             --database-url) to its Postgres URL. (--from FILE replays an exported log without a database.)"
        );
    };
    let options = pg_connect_options(url, args.database_schema.as_deref())
        .context("Invalid STROM_DATABASE_URL / STROM_DATABASE_SCHEMA")?;
    let pool = PgPoolOptions::new()
        .max_connections(REPLAY_POOL_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .context("Failed to connect to the event store (STROM_DATABASE_URL)")?;
    Ok(pool)
}

async fn export_observations(pool: &PgPool, agent_id: &str) -> anyhow::Result<()> {
    let events = super::parity::agent_events(pool, agent_id).await?;
    let observed = strom_projections::record::observations(&events);
    let bars = observed.iter().map(|&(ts, price)| strom_sim::Bar {
        ts,
        open: price,
        high: price,
        low: price,
        close: price,
        volume: rust_decimal::Decimal::ZERO,
    });
    let written = strom_sim::write_bars(std::io::stdout().lock(), bars)
        .context("Failed to write the observations to stdout")?;
    let config = events
        .iter()
        .rev()
        .find_map(strom_domain::AgentEvent::config);
    let fill_model = strom_projections::record::TradingRecord::of_stream(agent_id, &events)
        .ok()
        .and_then(|r| r.fill_models.first().cloned())
        .unwrap_or_default();
    eprintln!("wrote {written} observations of agent {agent_id}");
    if let Some(config) = config {
        eprintln!(
            "to backtest them, save its config as agent.json:\n{}\nand run: strom backtest --config agent.json --csv \
             <this output> --fill-slippage-bps {} --fill-fee-bps {}",
            serde_json::to_string(&config)?,
            fill_model.slippage_bps,
            fill_model.fee_bps
        );
    }
    Ok(())
}

async fn rebuild(pool: &PgPool, projector: ProjectorName) -> anyhow::Result<()> {
    if projector == ProjectorName::Backtests {
        let started = Instant::now();
        let log = strom_commands::log::PgEventLog::new(pool.clone());
        let (rows, position) = strom_projections::backtests::PgBacktests::new(pool.clone())
            .rebuild(&log)
            .await
            .context("Failed to rebuild projector:backtests")?;
        println!(
            "rebuilt projector:backtests: {rows} backtests in {:.2} s; checkpoint {}",
            started.elapsed().as_secs_f64(),
            position_text(position)
        );
        return Ok(());
    }
    let bar = progress_bar(replay::count_events(pool).await?, "rebuild", "events");
    let started = Instant::now();
    let done = replay::rebuild(pool, |p| bar.set_position(p.events)).await?;
    bar.finish_and_clear();
    println!(
        "rebuilt {AGENTS_PROJECTOR}: {} events folded into {} agents and {} runs in {:.2} s; checkpoint {}",
        done.events,
        done.agents,
        done.runs,
        started.elapsed().as_secs_f64(),
        position_text(done.position)
    );
    Ok(())
}

fn position_text(p: LogPosition) -> String {
    format!("(tx {}, position {})", p.tx_id, p.global_position)
}

async fn verify(pool: &PgPool) -> anyhow::Result<()> {
    let total = replay::count_events(pool).await?;
    let bar = progress_bar(total, "chains", "events");
    let chains = replay::verify_chains(pool, |r| bar.set_position(r.events)).await?;
    bar.finish_and_clear();
    let bar = progress_bar(total, "refold", "events");
    let models = replay::check_read_models(pool, |p: &RebuildProgress| {
        bar.set_position(p.events);
    })
    .await?;
    bar.finish_and_clear();

    let snapshots = PgEventStore::new(pool.clone())
        .verify_snapshots()
        .await
        .context("Failed to check the snapshots")?;
    let mut problems = replay::verify_problems(&chains, &models);
    problems.extend(snapshots.mismatches.iter().map(|m| {
        format!(
            "altered snapshot: {}/{} at sequence {} does not hold the state its events fold to",
            m.aggregate_type, m.aggregate_id, m.sequence
        )
    }));
    for line in &problems {
        println!("{line}");
    }
    println!(
        "verify: {} events in {} streams, {}; {} snapshots checked against their events; \
         {AGENTS_PROJECTOR} at {}: {} agents, {} runs, {} orders, {} trades live, {}",
        chains.events,
        chains.streams,
        if chains.is_intact() {
            "hash chains intact".to_owned()
        } else {
            format!("{} chain problems", chains.problems.len())
        },
        snapshots.checked,
        position_text(models.checkpoint),
        models.live.agents.len(),
        models.live.agent_runs.len(),
        models.live.orders.len(),
        models.live.trades.len(),
        models_verdict(&models)
    );
    anyhow::ensure!(
        problems.is_empty(),
        "verify found {} problems",
        problems.len()
    );
    Ok(())
}

fn models_verdict(models: &ModelCheck) -> String {
    if models.is_equal() {
        "equal to a rebuild from the log".to_owned()
    } else {
        format!(
            "{} rows differ from a rebuild",
            models.comparison.differences.len()
        )
    }
}

async fn export(pool: &PgPool, path: &Path) -> anyhow::Result<()> {
    let bar = progress_bar(replay::count_events(pool).await?, "export", "events");
    let log = PgEventLog::new(pool.clone());
    let result = replay::export(&log, path, |written| bar.set_position(written)).await;
    bar.finish_and_clear();
    println!("exported {} events to {}", result?, path.display());
    Ok(())
}

fn from_file(path: &Path, expect: Option<&Path>, out: Option<&Path>) -> anyhow::Result<()> {
    let replayed = replay::replay_file(path, expect)?;
    let problems = replayed.problems();
    let dump = &replayed.dump;
    match (out, expect) {
        (Some(dir), _) => file::write_expected(dir, dump)?,
        (None, None) => println!("{}", serde_json::to_string_pretty(&dump_json(dump))?),
        (None, Some(_)) => {}
    }
    for line in &problems {
        println!("{line}");
    }
    let check = &replayed.check;
    eprintln!(
        "replayed {}: {} events in {} streams, {}; {} agents, {} runs, {} orders, {} trades{}",
        path.display(),
        check.events,
        check.chains.streams,
        if check.chains.is_intact() {
            "hash chains intact"
        } else {
            "hash chains BROKEN"
        },
        dump.agents.len(),
        dump.agent_runs.len(),
        dump.orders.len(),
        dump.trades.len(),
        match &replayed.comparison {
            Some(c) if c.is_equal() => ", equal to the expected read models",
            Some(_) => ", DIFFERENT from the expected read models",
            None => "",
        }
    );
    anyhow::ensure!(
        problems.is_empty(),
        "replay of {} found {} problems",
        path.display(),
        problems.len()
    );
    Ok(())
}

/// The read models as one JSON document: `{"agents": [...], "agent_runs": [...], "orders": [...], …}` (every table
/// of the projector), rows as parsed JSON.
fn dump_json(dump: &TableDump) -> serde_json::Value {
    let rows = |lines: &[String]| -> Vec<serde_json::Value> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    AGENTS_TABLES
        .iter()
        .map(|table| {
            (
                (*table).to_owned(),
                serde_json::Value::Array(rows(dump.table(table))),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}
