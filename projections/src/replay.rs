//! `strom replay`: rebuild, verify, export and offline replay of the event log (the audit tool).
//!
//! Every mode only reads the event log. `--rebuild` writes the read models in one transaction, so an error or
//! Ctrl-C leaves them as they were; `--export` writes to a temporary file renamed into place at the end.

pub mod file;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use strom_commands::log::{
    verify_chains_with_progress, ChainProblem, ChainReport, EventLog, LogPosition, PgEventLog,
    MAX_LOG_PAGE,
};
use strom_commands::store::pg_connect_options;

use crate::fold::AGENTS_PROJECTOR;
use crate::postgres::{dump_tables_at_checkpoint, PgReadModel};
use crate::rebuild::{diff_dumps, fold_log, rebuild_from, DumpComparison, RebuildProgress};

/// Connections `strom replay` opens: the log reader, the rebuild transaction, and one spare.
const REPLAY_POOL_CONNECTIONS: u32 = 3;
/// How long to wait for a database connection before giving up with a clear error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Projectors `--rebuild` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProjectorName {
    /// `projector:agents`: tables `agents` and `agent_runs`.
    Agents,
}

/// `strom replay` flags. Exactly one of --rebuild, --verify, --export, --from.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("mode").required(true).args(["rebuild", "verify", "export", "from"])),
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
    /// Replay a JSON-lines event FILE without any database: check its order and hash chains, fold it, and print
    /// the read models as JSON (or write them with --out, or compare them with --expect).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// With --from: compare the read models with the golden files DIR/agents.jsonl and DIR/agent_runs.jsonl.
    #[arg(long, value_name = "DIR", requires = "from")]
    pub expect: Option<PathBuf>,
    /// With --from: write the read models to DIR/agents.jsonl and DIR/agent_runs.jsonl instead of printing them.
    #[arg(long, value_name = "DIR", requires = "from", conflicts_with = "expect")]
    pub out: Option<PathBuf>,
    /// Postgres URL of the event store (needed by every mode but --from).
    #[arg(long, env = "STROM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema holding the tables (default: the server's search_path).
    #[arg(long, env = "STROM_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

/// Runs `strom replay` until done or until `interrupted` resolves (the binary passes Ctrl-C/SIGTERM), which stops it
/// without changing anything.
///
/// # Errors
/// Any problem found (after listing them all), bad flags or files, or a database failure.
pub async fn run(
    args: ReplayArgs,
    interrupted: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
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

/// A progress bar on stderr when it is a terminal; hidden otherwise (logs, CI, pipes).
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {human_pos}/{human_len} events ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

async fn count_events(pool: &PgPool) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .context("Failed to count events (is this a migrated STROM database?)")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn rebuild(pool: &PgPool, projector: ProjectorName) -> anyhow::Result<()> {
    let ProjectorName::Agents = projector;
    let bar = progress_bar(count_events(pool).await?, "rebuild");
    let started = Instant::now();
    let log = PgEventLog::new(pool.clone());
    let mut sink = PgReadModel::new(pool.clone()).rebuild_sink();
    let done = rebuild_from(&log, &mut sink, |p| bar.set_position(p.events))
        .await
        .context("Rebuild failed; the read models were left as they were")?;
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

/// One line per chain problem, naming the stream and sequence.
pub fn chain_problem_lines(report: &ChainReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .problems
        .iter()
        .map(|p| match p {
            ChainProblem::AlteredEvent {
                aggregate,
                sequence,
            } => format!(
                "altered event: {aggregate} sequence {sequence} does not match its hash (edited or forged)"
            ),
            ChainProblem::MissingEvent {
                aggregate,
                expected_sequence,
            } => format!(
                "missing event: {aggregate} sequence {expected_sequence} is absent (deleted; the chain has a gap)"
            ),
            ChainProblem::ReorderedOrInserted {
                aggregate,
                sequence,
                original_sequence,
            } => format!(
                "reordered event: {aggregate} sequence {sequence} was written as sequence {original_sequence}"
            ),
        })
        .collect();
    if report.problems_truncated {
        lines.push("… more chain problems (list truncated)".to_owned());
    }
    lines
}

fn difference_lines(comparison: &DumpComparison) -> Vec<String> {
    let mut lines: Vec<String> = comparison
        .differences
        .iter()
        .map(|d| format!("read model: {d}"))
        .collect();
    if comparison.truncated {
        lines.push("… more differing rows (list truncated)".to_owned());
    }
    lines
}

async fn verify(pool: &PgPool) -> anyhow::Result<()> {
    let total = count_events(pool).await?;
    let log = PgEventLog::new(pool.clone());
    let bar = progress_bar(total, "chains");
    let chains = verify_chains_with_progress(&log, |r| bar.set_position(r.events))
        .await
        .context("Failed to read the event chains")?;
    bar.finish_and_clear();

    let mut conn = pool.acquire().await?;
    let (checkpoint, live) = dump_tables_at_checkpoint(&mut conn)
        .await
        .context("Failed to read the live read models")?;
    drop(conn);
    let bar = progress_bar(total, "refold");
    let (model, fold_errors) = fold_log(&log, Some(checkpoint), |p: &RebuildProgress| {
        bar.set_position(p.events);
    })
    .await
    .context("Failed to read the event log")?;
    bar.finish_and_clear();
    let comparison = diff_dumps(&live, &model.dump());

    let mut problems = chain_problem_lines(&chains);
    problems.extend(fold_errors.iter().map(|e| format!("cannot fold: {e}")));
    problems.extend(difference_lines(&comparison));
    for line in &problems {
        println!("{line}");
    }
    println!(
        "verify: {} events in {} streams, {}; {AGENTS_PROJECTOR} at {}: {} agents, {} runs live, {}",
        chains.events,
        chains.streams,
        if chains.is_intact() {
            "hash chains intact".to_owned()
        } else {
            format!("{} chain problems", chains.problems.len())
        },
        position_text(checkpoint),
        live.agents.len(),
        live.agent_runs.len(),
        if comparison.is_equal() && fold_errors.is_empty() {
            "equal to a rebuild from the log".to_owned()
        } else {
            format!("{} rows differ from a rebuild", comparison.differences.len())
        }
    );
    anyhow::ensure!(
        problems.is_empty(),
        "verify found {} problems",
        problems.len()
    );
    Ok(())
}

async fn export(pool: &PgPool, path: &Path) -> anyhow::Result<()> {
    let bar = progress_bar(count_events(pool).await?, "export");
    let log = PgEventLog::new(pool.clone());
    let partial = path.with_extension("partial");
    let result = export_to(&log, &partial, &bar).await;
    bar.finish_and_clear();
    let written = match result {
        Ok(n) => n,
        Err(e) => {
            std::fs::remove_file(&partial).ok();
            return Err(e);
        }
    };
    std::fs::rename(&partial, path)
        .with_context(|| format!("Failed to move the export into {}", path.display()))?;
    println!("exported {written} events to {}", path.display());
    Ok(())
}

async fn export_to(log: &dyn EventLog, path: &Path, bar: &ProgressBar) -> anyhow::Result<u64> {
    let out = std::fs::File::create(path)
        .with_context(|| format!("Failed to create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let mut position = LogPosition::START;
    let mut written = 0;
    loop {
        let page = log.read_envelopes_after(position, MAX_LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        written += file::write_events(&mut out, &page)
            .with_context(|| format!("Failed to write {}", path.display()))?;
        bar.set_position(written);
    }
    std::io::Write::flush(&mut out)
        .with_context(|| format!("Failed to write {}", path.display()))?;
    Ok(written)
}

fn from_file(path: &Path, expect: Option<&Path>, out: Option<&Path>) -> anyhow::Result<()> {
    let check = file::check_file(path)?;
    let mut problems = check.problems();
    let comparison = match expect {
        Some(dir) => Some(file::compare_expected(dir, &check.model)?),
        None => None,
    };
    if let Some(comparison) = &comparison {
        problems.extend(difference_lines(comparison).into_iter().map(|l| {
            l.replacen("read model:", "expected read model:", 1)
                .replace("    live:    ", "    expected: ")
                .replace("    rebuilt: ", "    replayed: ")
        }));
    }
    let dump = check.model.dump();
    match (out, expect) {
        (Some(dir), _) => file::write_expected(dir, &dump)?,
        (None, None) => {
            let rows = |lines: &[String]| -> Vec<serde_json::Value> {
                lines
                    .iter()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            };
            let doc = serde_json::json!({
                "agents": rows(&dump.agents),
                "agent_runs": rows(&dump.agent_runs),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        (None, Some(_)) => {}
    }
    for line in &problems {
        println!("{line}");
    }
    eprintln!(
        "replayed {}: {} events in {} streams, {}; {} agents, {} runs{}",
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
        match &comparison {
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
