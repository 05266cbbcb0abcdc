//! `strom backtest`: an agent config over CSV bars or a simulated range, in memory only (specs/06 §6). The run goes
//! through `strom_projections::backtest` (the typed Agent decide/evolve and the trading fold paper trading uses);
//! this module reads the inputs, shows progress, handles Ctrl-C and prints the result.

use std::fs::File;
use std::future::Future;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use rust_decimal::Decimal;
use serde::Serialize;
use strom_domain::config::NewAgent;
use strom_domain::{AgentConfig, FillModel};
use strom_projections::backtest::{
    BacktestResult, BacktestSetup, Backtester, EventSink, ExportSink,
};
use strom_projections::record::Keep;
use strom_sim::PricePath;

use super::{progress_bar, Interrupted};

pub use strom_domain::backtest::MAX_SIM_BARS;
/// Bars between two looks at Ctrl-C and the progress bar: rare enough to cost nothing per bar.
const CHECK_EVERY: u64 = 1 << 14;
/// The owner recorded in a command-line backtest's events.
const CLI_OWNER: &str = "cli";

#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["csv", "sim_seed"])),
    after_help = "The config is the body of POST /api/v1/agents, e.g.\n  \
        {\"name\": \"sma\", \"symbol\": \"BTC-USD\", \"frequency_s\": 60, \"starting_cash\": \"10000\",\n   \
        \"strategy\": {\"kind\": \"sma_crossover\", \"params\": {\"fast\": 10, \"slow\": 30, \"qty\": \"1\"}}}\n\
        (risk and seed may be left out and get their defaults; the seed defaults to 0 here).\n\n\
        Every bar is one run: RecordRun at the bar's close time with price = close, then the fill of any order it \
        placed, at the same time. Exit status: 0 done, 1 bad input or a failed run (nothing written), 130 \
        interrupted (nothing written)."
)]
pub struct BacktestArgs {
    /// Agent config as JSON (the POST /api/v1/agents body).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Bars as CSV (header ts|timestamp|date|open_time,open,high,low,close,volume, or a headerless exchange kline
    /// dump; ts is the bar's close time; see specs/06 §5).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Simulated bars instead of a CSV: the seed of the price path (`strom sim`'s).
    #[arg(long, requires_all = ["from", "to"], conflicts_with = "csv")]
    sim_seed: Option<u64>,
    /// With --sim-seed: close time of the first bar is --from + --step-s (RFC 3339).
    #[arg(long, value_parser = parse_rfc3339)]
    from: Option<DateTime<Utc>>,
    /// With --sim-seed: bars end at or before this instant (RFC 3339).
    #[arg(long, value_parser = parse_rfc3339)]
    to: Option<DateTime<Utc>>,
    /// With --sim-seed: bar length in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    step_s: u32,
    /// Slippage every order fills with, in basis points (0 ≤ bps < 10000).
    #[arg(long, default_value = "0")]
    fill_slippage_bps: Decimal,
    /// Fee on every fill's notional, in basis points (0 ≤ bps < 10000).
    #[arg(long, default_value = "0")]
    fill_fee_bps: Decimal,
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write every event as JSON lines (the `strom replay --export` format, hash-chained, so
    /// `strom replay --from FILE` verifies and folds it). Written to FILE.partial and renamed at the end.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-01-01T00:00:00Z ({e})"))
}

/// One bar as the backtest sees it: close time and close.
type Observed = (DateTime<Utc>, Decimal);

/// What `--json` prints (the text output shows the same).
#[derive(Debug, Serialize)]
struct Report<'a> {
    backtest_id: &'a str,
    source: String,
    fill_model: &'a FillModel,
    #[serde(flatten)]
    result: &'a BacktestResult,
    load_ms: u128,
    run_ms: u128,
    bars_per_s: u128,
    /// Peak resident memory of this process so far (Linux `VmHWM`), `null` where the OS does not say.
    peak_rss_mb: Option<u64>,
}

/// The process's peak resident set in MiB, from `/proc/self/status` (Linux).
fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Runs the backtest until done, or until `interrupted` resolves (Ctrl-C/SIGTERM): then nothing is written and the
/// error is [`Interrupted`].
///
/// # Errors
/// A bad config, flag or input row (nothing written), an unwritable export, or the interruption.
pub async fn backtest(
    args: BacktestArgs,
    interrupted: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = read_config(&args.config)?;
    let fill_model = FillModel {
        slippage_bps: args.fill_slippage_bps,
        fee_bps: args.fill_fee_bps,
    };
    fill_model.validate().map_err(|e| {
        let flag = e.field.trim_start_matches("fill_model.").replace('_', "-");
        anyhow::anyhow!("--fill-{flag}: {}", e.reason)
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || run(&args, config, fill_model, &stop)
    });
    tokio::pin!(task);
    tokio::select! {
        joined = &mut task => joined.context("the backtest thread failed")?,
        () = interrupted => {
            stop.store(true, Ordering::Relaxed);
            // The loop sees the flag within CHECK_EVERY bars and removes any partial export.
            let _ = task.await;
            Err(Interrupted("the backtest stopped; no file was written".to_owned()).into())
        }
    }
}

fn read_config(path: &Path) -> anyhow::Result<AgentConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Failed to read --config {}", path.display()))?;
    let new: NewAgent = serde_json::from_str(&text)
        .with_context(|| format!("--config {} is not an agent config", path.display()))?;
    new.into_config(0)
        .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))
}

fn run(
    args: &BacktestArgs,
    config: AgentConfig,
    fill_model: FillModel,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let load_started = Instant::now();
    let (bars, source) = load_bars(args, &config, stop)?;
    let load_ms = load_started.elapsed().as_millis();
    let Some(&(first_at, _)) = bars.first() else {
        anyhow::bail!("{source} has no bars");
    };
    let backtest_id = uuid::Uuid::new_v4().to_string();
    let setup = BacktestSetup {
        backtest_id: backtest_id.clone(),
        owner: CLI_OWNER.to_owned(),
        config,
        fill_model: fill_model.clone(),
    };
    let started = Instant::now();
    let result = match &args.export {
        None => drive(Backtester::start(setup, first_at, ())?, &bars, stop)?.0,
        Some(path) => {
            let partial = partial_path(path);
            let file = File::create(&partial)
                .with_context(|| format!("Failed to create {}", partial.display()))?;
            let sink = ExportSink::new(BufWriter::new(file), &backtest_id);
            let outcome = Backtester::start(setup, first_at, sink)
                .map_err(anyhow::Error::from)
                .and_then(|b| drive(b, &bars, stop))
                .and_then(|(result, sink)| {
                    sink.into_inner()
                        .into_inner()
                        .map_err(|e| anyhow::anyhow!("Failed to write {}: {e}", partial.display()))?
                        .sync_all()
                        .with_context(|| format!("Failed to write {}", partial.display()))?;
                    std::fs::rename(&partial, path).with_context(|| {
                        format!("Failed to rename {} into place", partial.display())
                    })?;
                    Ok(result)
                });
            if outcome.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            outcome?
        }
    };
    let run_us = started.elapsed().as_micros().max(1);
    let bars_run = u128::from(result.summary.bars);
    let report = Report {
        backtest_id: &backtest_id,
        source,
        fill_model: &fill_model,
        result: &result,
        load_ms,
        run_ms: run_us / 1000,
        bars_per_s: bars_run * 1_000_000 / run_us,
        peak_rss_mb: peak_rss_mb(),
    };
    print_report(&report, args.json)
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Runs every bar, watching `stop` and showing progress; the result and the sink.
fn drive<S: EventSink>(
    mut backtester: Backtester<S>,
    bars: &[(DateTime<Utc>, Decimal)],
    stop: &AtomicBool,
) -> anyhow::Result<(BacktestResult, S)> {
    // The CLI compares nothing and shows no series: the metrics take each bar's point as it comes.
    backtester.keep(Keep::Metrics, bars.len());
    let progress = progress_bar(bars.len() as u64, "backtest", "bars");
    for (i, &(at, price)) in bars.iter().enumerate() {
        if (i as u64).is_multiple_of(CHECK_EVERY) {
            if stop.load(Ordering::Relaxed) {
                progress.abandon();
                return Err(Interrupted("the backtest stopped".to_owned()).into());
            }
            progress.set_position(i as u64);
        }
        backtester.bar(at, price)?;
    }
    progress.finish_and_clear();
    Ok(backtester.finish())
}

/// The bars of the chosen source as (close time, close), and a description of the source.
fn load_bars(
    args: &BacktestArgs,
    config: &AgentConfig,
    stop: &AtomicBool,
) -> anyhow::Result<(Vec<Observed>, String)> {
    if let Some(path) = &args.csv {
        return Ok((read_csv(path, stop)?, format!("CSV {}", path.display())));
    }
    let (Some(seed), Some(from), Some(to)) = (args.sim_seed, args.from, args.to) else {
        anyhow::bail!("give --csv FILE, or --sim-seed N with --from and --to");
    };
    anyhow::ensure!(from < to, "--to must be after --from");
    let step = i64::from(args.step_s);
    let count = (to.timestamp() - from.timestamp()) / step;
    anyhow::ensure!(
        count >= 1,
        "--from .. --to holds no whole bar of {} s",
        args.step_s
    );
    anyhow::ensure!(
        u64::try_from(count).is_ok_and(|c| c <= MAX_SIM_BARS),
        "--from .. --to at --step-s {} makes {count} bars; at most {MAX_SIM_BARS} are allowed",
        args.step_s
    );
    let symbol = config.symbol.as_str();
    let mut bars = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let path = PricePath::new(seed);
    let end = from.timestamp() + count * step;
    for (i, close) in path
        .bars(symbol, from.timestamp(), end, args.step_s)?
        .closes()
        .enumerate()
    {
        if (i as u64).is_multiple_of(CHECK_EVERY) {
            anyhow::ensure!(
                !stop.load(Ordering::Relaxed),
                Interrupted("stopped while simulating the bars".to_owned())
            );
        }
        bars.push(close);
    }
    Ok((
        bars,
        format!(
            "simulated {symbol} (seed {seed}, {} s bars from {})",
            args.step_s,
            from.to_rfc3339()
        ),
    ))
}

fn read_csv(path: &Path, stop: &AtomicBool) -> anyhow::Result<Vec<Observed>> {
    let file =
        File::open(path).with_context(|| format!("Failed to open --csv {}", path.display()))?;
    // The reader refuses a file beyond MAX_CSV_BYTES as it reads.
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    // Rows of a bar file are about 45–70 bytes: reserve for most files' rows, grow for the rest, trim at the end.
    let mut bars = Vec::with_capacity(usize::try_from(size / 64).unwrap_or(0));
    let progress = progress_bar(size, "load", "bytes");
    for (i, bar) in strom_sim::read_bars(BufReader::with_capacity(1 << 20, file)).enumerate() {
        let bar = bar.map_err(|e| anyhow::anyhow!("--csv {}: {e}", path.display()))?;
        if (i as u64).is_multiple_of(CHECK_EVERY) {
            anyhow::ensure!(
                !stop.load(Ordering::Relaxed),
                Interrupted("stopped while reading the CSV".to_owned())
            );
            progress.set_position(i as u64 * 40);
        }
        bars.push((bar.ts, bar.close));
    }
    progress.finish_and_clear();
    bars.shrink_to_fit();
    Ok(bars)
}

fn print_report(report: &Report<'_>, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    let s = &report.result.summary;
    let m = report.result.metrics.clone().unwrap_or_default();
    let opt = |v: Option<Decimal>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
    writeln!(
        out,
        "backtest {} over {}",
        report.backtest_id, report.source
    )?;
    writeln!(
        out,
        "fill model: slippage {} bps, fee {} bps",
        report.fill_model.slippage_bps, report.fill_model.fee_bps
    )?;
    writeln!(out, "bars              {}", s.bars)?;
    writeln!(
        out,
        "orders            {} ({} rejected by risk)",
        s.orders, report.result.rejected_orders
    )?;
    writeln!(out, "fills             {}", s.fills)?;
    writeln!(out, "final cash        {}", s.final_cash)?;
    writeln!(out, "final position    {}", s.final_position)?;
    writeln!(out, "final equity      {}", s.final_equity)?;
    writeln!(out, "pnl               {} ({} %)", s.pnl, s.return_pct)?;
    writeln!(
        out,
        "max drawdown      {} %",
        report.result.max_drawdown_pct
    )?;
    writeln!(
        out,
        "buy and hold      {} %",
        opt(m.buy_and_hold_return_pct)
    )?;
    writeln!(out, "CAGR              {} %", opt(m.cagr_pct))?;
    writeln!(
        out,
        "sharpe / sortino  {} / {}",
        opt(m.sharpe),
        opt(m.sortino)
    )?;
    writeln!(out, "win rate          {} %", opt(m.win_rate_pct))?;
    writeln!(out, "profit factor     {}", opt(m.profit_factor))?;
    writeln!(out, "fees              {}", m.fees)?;
    writeln!(
        out,
        "load {} ms, run {} ms, {} bars/s, peak memory {} MiB",
        report.load_ms,
        report.run_ms,
        report.bars_per_s,
        report
            .peak_rss_mb
            .map_or_else(|| "n/a".to_owned(), |m| m.to_string())
    )?;
    Ok(())
}
