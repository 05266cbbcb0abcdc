//! The backtest reference workload (specs/06 §7): SMA 10/30, qty 1, 1,000,000 one-minute bars from CSV (written by
//! `strom sim --csv`), fill at the signal bar's close, no fees. Runs the release `strom backtest --json` as a child
//! process, so its peak resident memory is the backtest's alone, and reads back `bars_per_s` (the kernel only),
//! `load_ms` (reading the CSV) and `peak_rss_mb`. The reference run is repeated ([`REFERENCE_RUNS`]) and reported as
//! the median with the slowest and fastest run: on a shared VM one run's wall clock can be a third off. A second
//! workload over ten times the bars from the simulator shows how memory grows with the input.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::report::Report;
use crate::{BenchResult, Plan};

/// Bars of the reference workload (a tenth in a quick run).
const REFERENCE_BARS: u64 = 1_000_000;

/// Runs of the reference workload (one in a quick run); each figure is their median.
const REFERENCE_RUNS: usize = 5;

const AGENT: &str = r#"{"name": "reference", "symbol": "BTC-USD", "frequency_s": 60, "starting_cash": "1000000",
 "strategy": {"kind": "sma_crossover", "params": {"fast": 10, "slow": 30, "qty": "1"}},
 "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "1000000"}}"#;

fn strom(args: &[&str]) -> BenchResult<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "strom {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

fn figure(report: &mut Report, name: &str, value: Option<f64>, unit: &'static str) {
    match value {
        Some(v) => {
            println!("  {name:<74} {v:>12.0} {unit}");
            report.record(name, v, unit, "memory");
        }
        None => {
            println!("  {name:<74} n/a");
            report.missing(name, unit, "memory", "not reported");
        }
    }
}

pub async fn backtest(plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let bars = if plan.quick {
        REFERENCE_BARS / 10
    } else {
        REFERENCE_BARS
    };
    println!("backtest (specs/06 §7): SMA 10/30 over {bars} one-minute bars, release `strom backtest`, one core");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-backtest");
    std::fs::create_dir_all(&dir)?;
    let csv = dir.join("reference.csv");
    let agent = dir.join("agent.json");
    std::fs::write(&agent, AGENT)?;
    let count = bars.to_string();
    let (csv_s, agent_s) = (csv.to_string_lossy(), agent.to_string_lossy());
    let generated = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["sim", "--csv", &csv_s, "--count", &count, "--seed", "42"])
        .args(["--from", "2026-01-01T00:00:00Z", "--symbols", "BTC-USD"])
        .output()?;
    if !generated.status.success() {
        return Err(String::from_utf8_lossy(&generated.stderr)
            .into_owned()
            .into());
    }
    let runs = if plan.quick { 1 } else { REFERENCE_RUNS };
    let mut results = Vec::with_capacity(runs);
    for _ in 0..runs {
        results.push(strom(&[
            "backtest", "--config", &agent_s, "--csv", &csv_s, "--json",
        ])?);
    }
    let label = format!("backtest {bars} bars from CSV (SMA 10/30)");
    let sorted = |key: &str| {
        let mut values: Vec<f64> = results.iter().filter_map(|r| r[key].as_f64()).collect();
        values.sort_by(f64::total_cmp);
        values
    };
    let throughput = sorted("bars_per_s");
    let median = |values: &[f64]| values.get(values.len() / 2).copied();
    let runs_label = format!("median of {runs} runs");
    for (name, value) in [
        (
            format!("throughput, kernel only, {runs_label}"),
            median(&throughput),
        ),
        (
            "throughput, slowest run".to_owned(),
            throughput.first().copied(),
        ),
        (
            "throughput, fastest run".to_owned(),
            throughput.last().copied(),
        ),
    ] {
        figure(report, &format!("{label}: {name}"), value, "bars/s");
    }
    figure(
        report,
        &format!("{label}: reading the CSV, {runs_label}"),
        median(&sorted("load_ms")),
        "ms",
    );
    figure(
        report,
        &format!("{label}: peak resident memory, largest run"),
        sorted("peak_rss_mb").last().copied(),
        "MiB",
    );

    let long = bars * 10;
    let to = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?
        + chrono::Duration::minutes(i64::try_from(long)?);
    let result = strom(&[
        "backtest",
        "--config",
        &agent_s,
        "--sim-seed",
        "42",
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        &to.to_rfc3339(),
        "--json",
    ])?;
    let label = format!("backtest {long} simulated bars (SMA 10/30)");
    for (key, what, unit) in [
        ("bars_per_s", "throughput, kernel only", "bars/s"),
        ("peak_rss_mb", "peak resident memory", "MiB"),
    ] {
        figure(
            report,
            &format!("{label}: {what}"),
            result[key].as_f64(),
            unit,
        );
    }
    let _ = std::fs::remove_file(&csv);
    Ok(())
}
