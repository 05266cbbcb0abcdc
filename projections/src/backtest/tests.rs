//! The kernel's own rules: the clock rule, order ids, the summary, and an export that verifies as a log.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal_macros::dec;
use strom_commands::log::EventEnvelope;

use super::*;
use crate::parity::tests::{config, fill_model, price};

fn t(ms: i64) -> DateTime<Utc> {
    "2026-01-01T00:01:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::milliseconds(ms)
}

fn setup() -> BacktestSetup {
    BacktestSetup {
        backtest_id: "7d7e2b1c-3a4b-4c5d-8e9f-0a1b2c3d4e5f".into(),
        owner: "alice".into(),
        config: config(
            serde_json::json!({"kind": "sma_crossover", "params": {"fast": 2, "slow": 5, "qty": "1"}}),
        ),
        fill_model: fill_model(),
    }
}

/// Bars with a gap and fractional close times: the kernel takes any strictly increasing series.
fn bars(n: u64) -> Vec<(DateTime<Utc>, Decimal)> {
    (1..=n)
        .map(|i| {
            let gap = if i > n / 2 { 3_600_000 } else { 0 };
            (t(i as i64 * 60_000 + 250 + gap), price(i))
        })
        .collect()
}

#[test]
fn every_command_takes_the_bar_time_and_orders_are_named_after_the_backtest_and_bar() {
    let mut export = Vec::new();
    let mut backtester = Backtester::start(
        setup(),
        bars(60)[0].0,
        ExportSink::new(&mut export, &setup().backtest_id),
    )
    .unwrap();
    for (at, price) in bars(60) {
        backtester.bar(at, price).unwrap();
    }
    let (result, _) = backtester.finish();
    assert_eq!(result.summary.bars, 60);
    assert!(result.summary.fills >= 2, "{:?}", result.summary);
    let first = &result.record.orders[0];
    let bar_no: i64 = first.order_id.rsplit('-').next().unwrap().parse().unwrap();
    assert_eq!(
        first.order_id,
        format!("{}-1-{bar_no}", setup().backtest_id)
    );
    assert_eq!(first.observed_at, bars(60)[bar_no as usize - 1].0);
    assert_eq!(result.record.trades[0].filled_at, first.observed_at);
    assert_eq!(result.record.pnl.len(), 60);
    assert!(result
        .record
        .pnl
        .iter()
        .zip(bars(60))
        .all(|(p, (at, close))| p.at == at && p.mark_price == close));

    let text = String::from_utf8(export).unwrap();
    let envelopes: Vec<EventEnvelope> = text
        .lines()
        .map(|l| EventEnvelope::from_json(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(envelopes[0].event_type, "AgentCreated");
    assert_eq!(envelopes[1].event_type, "AgentStarted");
    let runs = envelopes
        .iter()
        .filter(|e| e.event_type == "AgentRunRecorded")
        .count();
    assert_eq!(runs, 60);
    // The export is a log: its chains verify and it folds to the same positions.
    let check = crate::replay::file::check_events(&envelopes);
    assert!(check.problems().is_empty(), "{:?}", check.problems());
    let folded = &check.model.positions[&setup().backtest_id];
    assert_eq!(
        (folded.cash, folded.qty),
        (result.summary.final_cash, result.summary.final_position)
    );
}

#[test]
fn the_summary_values_the_position_at_the_last_close() {
    let result = run(setup(), bars(60)).unwrap();
    let s = &result.summary;
    let position = result.record.position.as_ref().unwrap();
    assert_eq!(s.final_cash, position.cash);
    assert_eq!(s.final_position, position.qty);
    assert_eq!(s.final_equity, position.cash + position.qty * price(60));
    assert_eq!(s.pnl, s.final_equity - dec!(500));
    assert_eq!(s.return_pct, (s.pnl / dec!(5)).round_dp(4));
    assert_eq!(s.orders, result.record.orders.len() as u64);
    assert_eq!(
        result.rejected_orders,
        result
            .record
            .orders
            .iter()
            .filter(|o| o.status == "rejected")
            .count() as u64
    );
}

#[test]
fn a_bar_not_after_the_previous_one_fails_with_its_number() {
    let mut series = bars(10);
    series[6].0 = series[5].0;
    let error = run(setup(), series).unwrap_err();
    assert_eq!(error.bar_no, 7);
    assert!(
        error.reason.contains("not after the previous run"),
        "{error}"
    );
}

#[test]
fn an_empty_series_is_an_error() {
    assert_eq!(
        run(setup(), Vec::new()).unwrap_err().reason,
        "no bars to run"
    );
}

#[test]
fn the_metrics_are_those_of_the_record() {
    let result = run(setup(), bars(60)).unwrap();
    let m = result.metrics.as_ref().unwrap();
    assert_eq!(m.fills, result.summary.fills);
    assert_eq!(
        m.trades,
        result
            .record
            .trades
            .iter()
            .filter(|t| t.side == "sell")
            .count() as u64
    );
    assert_eq!(m.total_return_pct, Some(result.summary.return_pct));
    assert_eq!(m.max_drawdown_pct, Some(result.max_drawdown_pct));
    // One hour of bars: too short for a meaningful annual growth rate.
    assert_eq!(m.cagr_pct, None);
}

#[test]
fn the_metrics_and_the_report_do_not_depend_on_what_the_record_keeps() {
    let (mut ends_on_a_fill, mut rejected) = (0, 0);
    for n in 40..=80 {
        let series = bars(n);
        let run_keeping = |keep: Option<Keep>| {
            let mut backtester = Backtester::start(setup(), series[0].0, ()).unwrap();
            if let Some(keep) = keep {
                backtester.keep(keep, series.len());
            }
            for &(at, price) in &series {
                backtester.bar(at, price).unwrap();
            }
            backtester.finish().0
        };
        let everything = run_keeping(None);
        let metrics = everything.metrics.clone().unwrap();
        assert!(metrics.sharpe.is_some() && metrics.max_drawdown.is_some());
        assert_eq!(everything.record.pnl.len(), series.len());
        let start = everything.record.position.as_ref().unwrap().starting_cash;
        let shown = crate::backtests::report(&everything, start, None);
        for keep in [Keep::Everything, Keep::Report, Keep::Metrics] {
            let kept = run_keeping(Some(keep));
            assert_eq!(kept.summary, everything.summary, "{n} bars, {keep:?}");
            assert_eq!(kept.metrics, everything.metrics, "{n} bars, {keep:?}");
            assert_eq!(kept.rejected_orders, everything.rejected_orders);
            let all = &everything.record;
            match keep {
                Keep::Everything => assert_eq!(kept.record, everything.record),
                Keep::Report => {
                    assert_eq!(crate::backtests::report(&kept, start, None), shown);
                    assert_eq!(
                        (kept.record.orders.len(), kept.record.trades.len()),
                        (all.orders.len(), all.trades.len())
                    );
                    assert!(kept.record.pnl.is_empty() && kept.record.equity.is_empty());
                }
                Keep::Metrics => {
                    let record = &kept.record;
                    assert!(record.orders.is_empty() && record.trades.is_empty());
                    assert!(record.positions.is_empty() && record.equity.is_empty());
                }
            }
        }
        // The last point is valued before its bar's order fills: the metrics revalue it, whichever way they ran.
        if everything.record.trades.last().map(|t| t.filled_at) == series.last().map(|b| b.0) {
            ends_on_a_fill += 1;
        }
        rejected += everything.rejected_orders;
    }
    assert!(ends_on_a_fill > 0, "no series ended on a fill");
    assert!(rejected > 0, "no order was rejected");
}

#[test]
fn a_report_kept_as_the_bars_go_shows_the_first_rows_and_counts_them_all() {
    let mut long = setup();
    long.config.risk.max_notional = dec!(1000);
    long.config.risk.max_daily_loss = None;
    let series: Vec<(DateTime<Utc>, Decimal)> = (1..=60_000u64)
        .map(|i| {
            let wave = [0, 3, 5, 4, 1, -2, -4, -3, 0, 2][(i % 10) as usize];
            (t(i as i64 * 60_000), dec!(100) + Decimal::from(wave))
        })
        .collect();
    let run_keeping = |keep: Keep| {
        let mut backtester = Backtester::start(long.clone(), series[0].0, ()).unwrap();
        backtester.keep(keep, series.len());
        for &(at, price) in &series {
            backtester.bar(at, price).unwrap();
        }
        backtester.finish().0
    };
    let (everything, report) = (run_keeping(Keep::Everything), run_keeping(Keep::Report));
    let start = long.config.starting_cash;
    let shown = crate::backtests::report(&everything, start, None);
    assert!(
        shown.orders_truncated && shown.trades_truncated,
        "{:?}",
        everything.summary
    );
    assert_eq!(shown.equity.len(), crate::walk::MAX_SERIES_POINTS);
    assert_eq!(crate::backtests::report(&report, start, None), shown);
    let rows = crate::walk::MAX_RESULT_ROWS;
    assert_eq!(
        (report.record.orders.len(), report.record.trades.len()),
        (rows, rows)
    );
}

proptest::proptest! {
    /// The fold divides a fall only when it can beat the largest drawdown % so far (`drawdown_bar`): over any
    /// series, its largest % is the one dividing every run's fall gives.
    #[test]
    fn the_largest_drawdown_pct_is_that_of_every_run_divided(
        steps in proptest::collection::vec(-300i64..=300, 1..200),
        scale in 0u32..=4,
    ) {
        let mut cents = 10_000i64;
        let series: Vec<(DateTime<Utc>, Decimal)> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                cents = (cents + step).max(1);
                (t(i as i64 * 60_000), Decimal::new(cents, 2).round_dp(scale))
            })
            .filter(|(_, price)| !price.is_zero())
            .collect();
        proptest::prop_assume!(!series.is_empty());
        let result = run(setup(), series).unwrap();
        let start = result.record.position.as_ref().unwrap().starting_cash;
        let (mut peak, mut largest) = (start, Decimal::ZERO);
        for point in &result.record.pnl {
            peak = peak.max(point.equity);
            largest = largest.max(crate::ledger::percent(peak - point.equity, peak, 4));
        }
        proptest::prop_assert_eq!(result.max_drawdown_pct, largest);
    }
}
