//! Tests of `strom backtest` as a process: the result equals the kernel's over the same bars, CSV as users have it
//! (headerless klines, millisecond times), a bad row fails with its line and column and writes nothing, `--export`
//! writes a log `strom replay --from` verifies, a simulated source, bad flags, and Ctrl-C (exit 130, no file left).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::Value;
use strom_domain::config::NewAgent;
use strom_domain::FillModel;
use strom_projections::backtest::{run, BacktestSetup};
use strom_sim::PricePath;

const AGENT: &str = r#"{"name": "cli", "symbol": "BTC-USD", "frequency_s": 60, "starting_cash": "10000",
 "strategy": {"kind": "sma_crossover", "params": {"fast": 2, "slow": 5, "qty": "1"}}}"#;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;
/// A simulated source of five hours of one-minute bars (seed 7), as `bars(300)` makes them.
const SIM: [&str; 6] = [
    "--sim-seed",
    "7",
    "--from",
    "2026-01-01T00:00:00Z",
    "--to",
    "2026-01-01T05:00:00Z",
];

fn strom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strom"))
}

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("strom-backtest-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("agent.json"), AGENT).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn backtest(dir: &Dir, args: &[&str]) -> Output {
    strom()
        .arg("backtest")
        .arg("--config")
        .arg(dir.path("agent.json"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A decimal from a JSON string or number (the read-model dumps write numbers).
fn dec(v: &Value) -> Decimal {
    v.to_string().trim_matches('"').parse().unwrap()
}

/// `n` simulated one-minute bars (close time, close).
fn bars(n: i64) -> Vec<(chrono::DateTime<chrono::Utc>, Decimal)> {
    PricePath::new(7)
        .bars("BTC-USD", T0, T0 + n * 60, 60)
        .unwrap()
        .map(|b| (b.ts, b.close))
        .collect()
}

fn expected(fee_bps: Decimal, n: i64) -> strom_projections::backtest::BacktestResult {
    let config = serde_json::from_str::<NewAgent>(AGENT)
        .unwrap()
        .into_config(0)
        .unwrap();
    let setup = BacktestSetup {
        backtest_id: uuid::Uuid::new_v4().to_string(),
        owner: "cli".into(),
        config,
        fill_model: FillModel {
            slippage_bps: Decimal::ZERO,
            fee_bps,
        },
    };
    run(setup, bars(n)).unwrap()
}

#[test]
fn a_headerless_kline_dump_backtests_as_the_kernel_runs_its_bars() {
    let dir = Dir::new();
    // Binance-style: open time ms, OHLCV, close time ms (open + 60 s − 1 ms), and more columns.
    let mut csv = String::new();
    for (i, (_, close)) in bars(300).iter().enumerate() {
        let open_ms = (T0 + i as i64 * 60) * 1000;
        csv.push_str(&format!(
            "{open_ms},{close},{close},{close},{close},1.5,{},0,12,0,0,0\n",
            open_ms + 59_999
        ));
    }
    std::fs::write(dir.path("klines.csv"), csv).unwrap();
    let out = backtest(
        &dir,
        &[
            "--csv",
            dir.path("klines.csv").to_str().unwrap(),
            "--fill-fee-bps",
            "10",
            "--json",
        ],
    );
    let report = json(&out);
    let kernel = expected(Decimal::from(10), 300);
    assert_eq!(
        report["summary"],
        serde_json::to_value(&kernel.summary).unwrap(),
        "{report}"
    );
    assert!(
        kernel.summary.fills >= 4,
        "the series trades: {:?}",
        kernel.summary
    );
    assert_eq!(
        report["metrics"],
        serde_json::to_value(&kernel.metrics).unwrap()
    );
    assert_eq!(dec(&report["fill_model"]["fee_bps"]), Decimal::from(10));
    for key in ["load_ms", "run_ms", "bars_per_s"] {
        assert!(report[key].is_u64(), "{key}: {report}");
    }
}

#[test]
fn a_simulated_source_runs_the_same_bars_as_the_simulator_writes() {
    let dir = Dir::new();
    let out = backtest(&dir, &[&SIM[..], &["--json"]].concat());
    let report = json(&out);
    let kernel = expected(Decimal::ZERO, 300);
    assert_eq!(
        report["summary"],
        serde_json::to_value(&kernel.summary).unwrap(),
        "{report}"
    );
}

#[test]
fn a_bad_row_fails_with_its_line_and_column_and_writes_nothing() {
    let dir = Dir::new();
    let csv = "timestamp,open,high,low,close,volume\n\
               1767225660,100,101,99,100.5,3\n\
               1767225720,100.5,101,99,abc,3\n";
    std::fs::write(dir.path("bad.csv"), csv).unwrap();
    let export = dir.path("events.jsonl");
    let out = backtest(
        &dir,
        &[
            "--csv",
            dir.path("bad.csv").to_str().unwrap(),
            "--export",
            export.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3, column 5 (close)"), "{stderr}");
    assert!(!export.exists() && !dir.path("events.jsonl.partial").exists());
}

#[test]
fn bad_flags_and_configs_are_refused_with_the_reason() {
    let dir = Dir::new();
    std::fs::write(
        dir.path("ok.csv"),
        "ts,open,high,low,close,volume\n60,1,1,1,1,1\n",
    )
    .unwrap();
    let csv = dir.path("ok.csv");
    let out = backtest(
        &dir,
        &["--csv", csv.to_str().unwrap(), "--fill-fee-bps", "10000"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--fill-fee-bps: must be"), "{stderr}");
    std::fs::write(
        dir.path("agent.json"),
        r#"{"name": "x", "symbol": "btc", "frequency_s": 60, "starting_cash": "1"}"#,
    )
    .unwrap();
    let out = backtest(&dir, &["--csv", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an agent config"));
    // No source at all: clap's usage error.
    let out = backtest(&dir, &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_export_is_a_log_that_replay_verifies() {
    let dir = Dir::new();
    let export = dir.path("events.jsonl");
    let out = backtest(&dir, &[&SIM[..], &["--json", "--export"]].concat());
    // --export needs its file: a usage error.
    assert_eq!(out.status.code(), Some(2));
    let out = backtest(
        &dir,
        &[&SIM[..], &["--json", "--export", export.to_str().unwrap()]].concat(),
    );
    let report = json(&out);
    let replayed = strom()
        .args(["replay", "--from"])
        .arg(&export)
        .arg("--out")
        .arg(dir.path("models"))
        .output()
        .unwrap();
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let positions = std::fs::read_to_string(dir.path("models/positions.jsonl")).unwrap();
    let position: Value = serde_json::from_str(positions.lines().next().unwrap()).unwrap();
    assert_eq!(
        dec(&position["cash"]),
        dec(&report["summary"]["final_cash"]),
        "{position}"
    );
    let runs = std::fs::read_to_string(dir.path("models/agent_runs.jsonl")).unwrap();
    assert_eq!(runs.lines().count(), 300);
}

fn wait_for(path: &Path, deadline: Duration) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_stops_a_backtest_with_exit_130_and_leaves_no_file() {
    let dir = Dir::new();
    let export = dir.path("events.jsonl");
    // A year of minutes with every event exported: far longer than the signal takes to arrive.
    let child = strom()
        .arg("backtest")
        .arg("--config")
        .arg(dir.path("agent.json"))
        .args([
            "--sim-seed",
            "7",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2027-01-01T00:00:00Z",
        ])
        .arg("--export")
        .arg(&export)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&dir.path("events.jsonl.partial"), Duration::from_secs(120));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(!export.exists(), "no export under its name");
    assert!(
        !dir.path("events.jsonl.partial").exists(),
        "no partial file left"
    );
}
