//! The backtests module's pure parts: the result report's thinning and drawdown, the fold of a stream.

use super::*;
use crate::queries::thinned;
use crate::walk::MAX_SERIES_POINTS;

#[test]
fn thinning_keeps_first_last_and_at_most_the_cap() {
    let kept: Vec<usize> = thinned(5_000, MAX_SERIES_POINTS).collect();
    assert_eq!(kept.len(), MAX_SERIES_POINTS);
    assert_eq!((kept[0], *kept.last().unwrap()), (0, 4_999));
}

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + s, 0).unwrap()
}

fn requested() -> BacktestEvent {
    let config: AgentConfig = serde_json::from_value(serde_json::json!({
        "name": "sma", "symbol": "BTC-USD",
        "strategy": {"kind": "sma_crossover", "params": {"fast": 3, "slow": 8, "qty": "1"}},
        "frequency_s": 60,
        "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "1000000", "max_daily_loss": null},
        "starting_cash": "1000", "seed": 1
    }))
    .unwrap();
    BacktestEvent::BacktestRequested {
        backtest_id: "b".into(),
        owner: "alice".into(),
        agent_id: None,
        config,
        source: BacktestSource::Observations {
            agent_id: "a".into(),
        },
        fill_model: FillModel::default(),
        requested_at: at(0),
    }
}

#[test]
fn a_stream_folds_to_its_latest_state_and_times() {
    let row = fold_backtest(None, "b", 1, &requested()).unwrap();
    assert_eq!((row.status, row.version), (BacktestState::Requested, 1));
    let row = fold_backtest(
        Some(row),
        "b",
        2,
        &BacktestEvent::BacktestStarted { started_at: at(5) },
    )
    .unwrap();
    let failed = BacktestEvent::BacktestFailed {
        error: "line 3, column 5 (close): not a decimal".into(),
        failed_at: at(9),
    };
    let row = fold_backtest(Some(row), "b", 3, &failed).unwrap();
    assert_eq!(row.status, BacktestState::Failed);
    assert_eq!(row.started_at, Some(at(5)));
    assert_eq!(row.failed_at, Some(at(9)));
    assert_eq!(row.updated_at, at(9));
    assert!(row.error.unwrap().starts_with("line 3"));
}

#[test]
fn an_event_before_the_request_does_not_fold() {
    let started = BacktestEvent::BacktestStarted { started_at: at(5) };
    assert!(fold_backtest(None, "b", 1, &started).is_err());
}
