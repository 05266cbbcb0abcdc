//! Given/when/then tests of the Backtest aggregate: requested → running → completed | failed, cancel.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::DomainEvent;
use rust_decimal_macros::dec;
use serde_json::json;

use super::*;
use crate::config::{RiskLimits, StrategySpec};
use crate::symbol::Symbol;

const BACKTEST_ID: &str = "7d0c2a4e-1f1e-4b5a-8a43-3c0a9e6f5d21";
const AGENT_ID: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

fn fill_model() -> FillModel {
    FillModel {
        slippage_bps: dec!(2.5),
        fee_bps: dec!(10),
    }
}

fn backtest() -> TestFramework<Backtest> {
    TestFramework::with(())
}

fn t(seconds: i64) -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(seconds)
}

fn config() -> AgentConfig {
    AgentConfig {
        name: "sma 10/30".into(),
        symbol: Symbol::parse("BTC-USD").unwrap(),
        strategy: serde_json::from_value(json!({"kind": "sma_crossover"})).unwrap(),
        frequency_s: 60,
        risk: RiskLimits {
            max_position_qty: dec!(1),
            max_order_qty: dec!(1),
            max_notional: dec!(1000000),
            max_daily_loss: None,
        },
        starting_cash: dec!(100000),
        seed: 1,
    }
}

const SHA256: &str = "0f343b0931126a20f133d67c2b018a3b5e8a2b1b3f0c4bcf9a7e7e1d4c2b6a10";

fn csv() -> BacktestSource {
    BacktestSource::Csv {
        bytes: 81_000_000,
        sha256: SHA256.into(),
    }
}

fn request() -> BacktestCommand {
    BacktestCommand::RequestBacktest {
        backtest_id: BACKTEST_ID.into(),
        owner: "alice".into(),
        agent_id: Some(AGENT_ID.into()),
        config: config(),
        source: csv(),
        fill_model: fill_model(),
        at: t(0),
    }
}

fn requested() -> BacktestEvent {
    let (config, _) = config().normalized().unwrap();
    BacktestEvent::BacktestRequested {
        backtest_id: BACKTEST_ID.into(),
        owner: "alice".into(),
        agent_id: Some(AGENT_ID.into()),
        config,
        source: csv(),
        fill_model: fill_model(),
        requested_at: t(0),
    }
}

fn started() -> BacktestEvent {
    BacktestEvent::BacktestStarted { started_at: t(1) }
}

fn summary() -> BacktestSummary {
    BacktestSummary {
        bars: 1_000_000,
        orders: 120,
        fills: 118,
        final_cash: dec!(100512.50),
        final_position: dec!(0),
        final_equity: dec!(100512.50),
        pnl: dec!(512.50),
        return_pct: dec!(0.5125),
    }
}

fn completed() -> BacktestEvent {
    BacktestEvent::BacktestCompleted {
        summary: summary(),
        completed_at: t(9),
    }
}

fn failed() -> BacktestEvent {
    BacktestEvent::BacktestFailed {
        error: "CSV row 17: bad price".into(),
        failed_at: t(9),
    }
}

fn cancelled(at: i64) -> BacktestEvent {
    BacktestEvent::BacktestCancelled {
        cancelled_at: t(at),
    }
}

fn invalid(given: Vec<BacktestEvent>, when: BacktestCommand, field: &str) {
    let error = backtest()
        .given(given)
        .when(when)
        .inspect_result()
        .expect_err("expected a refusal");
    assert_eq!(error.field(), Some(field), "{error:?}");
}

#[test]
fn requesting_a_backtest_records_the_config_with_strategy_defaults() {
    backtest()
        .given_no_previous_events()
        .when(request())
        .then_expect_events(vec![requested()]);
}

#[test]
fn requesting_a_simulated_backtest_records_its_seed_and_range() {
    let source = BacktestSource::Sim {
        seed: 42,
        from: t(0),
        to: t(3600),
        step_s: 60,
    };
    let BacktestEvent::BacktestRequested { config, .. } = requested() else {
        unreachable!()
    };
    backtest()
        .given_no_previous_events()
        .when(BacktestCommand::RequestBacktest {
            backtest_id: BACKTEST_ID.into(),
            owner: "alice".into(),
            agent_id: Some(AGENT_ID.into()),
            config: self::config(),
            source: source.clone(),
            fill_model: fill_model(),
            at: t(0),
        })
        .then_expect_events(vec![BacktestEvent::BacktestRequested {
            backtest_id: BACKTEST_ID.into(),
            owner: "alice".into(),
            agent_id: Some(AGENT_ID.into()),
            config,
            source,
            fill_model: fill_model(),
            requested_at: t(0),
        }]);
}

#[test]
fn a_backtest_of_a_config_of_its_own_names_no_agent() {
    let (config, _) = config().normalized().unwrap();
    backtest()
        .given_no_previous_events()
        .when(BacktestCommand::RequestBacktest {
            backtest_id: BACKTEST_ID.into(),
            owner: "alice".into(),
            agent_id: None,
            config: self::config(),
            source: csv(),
            fill_model: FillModel::default(),
            at: t(0),
        })
        .then_expect_events(vec![BacktestEvent::BacktestRequested {
            backtest_id: BACKTEST_ID.into(),
            owner: "alice".into(),
            agent_id: None,
            config,
            source: csv(),
            fill_model: FillModel::default(),
            requested_at: t(0),
        }]);
}

#[test]
fn requesting_a_backtest_with_malformed_ids_is_rejected_naming_the_field() {
    let mut command = request();
    if let BacktestCommand::RequestBacktest { backtest_id, .. } = &mut command {
        *backtest_id = "bt-1".into();
    }
    invalid(vec![], command, "backtest_id");
    let mut command = request();
    if let BacktestCommand::RequestBacktest { agent_id, .. } = &mut command {
        *agent_id = Some("agent-1".into());
    }
    invalid(vec![], command, "agent_id");
}

#[test]
fn requesting_a_backtest_with_an_invalid_fill_model_is_rejected() {
    let mut command = request();
    if let BacktestCommand::RequestBacktest { fill_model, .. } = &mut command {
        fill_model.fee_bps = dec!(-1);
    }
    invalid(vec![], command, "fill_model.fee_bps");
}

#[test]
fn requesting_a_backtest_that_exists_is_rejected() {
    backtest()
        .given(vec![requested(), started()])
        .when(request())
        .then_expect_error(BacktestError::BacktestAlreadyExists {
            state: BacktestState::Running,
        });
}

#[test]
fn requesting_a_backtest_with_an_invalid_config_is_rejected_naming_the_field() {
    let mut bad = config();
    bad.strategy = StrategySpec {
        kind: crate::config::StrategyKind::SmaCrossover,
        params: serde_json::from_value(json!({"fast": 0})).unwrap(),
    };
    let command = BacktestCommand::RequestBacktest {
        backtest_id: BACKTEST_ID.into(),
        owner: "alice".into(),
        agent_id: Some(AGENT_ID.into()),
        config: bad,
        source: csv(),
        fill_model: fill_model(),
        at: t(0),
    };
    invalid(vec![], command, "config.strategy.params.fast");
}

#[test]
fn requesting_a_simulated_backtest_over_an_empty_range_is_rejected() {
    let command = BacktestCommand::RequestBacktest {
        backtest_id: BACKTEST_ID.into(),
        owner: "alice".into(),
        agent_id: Some(AGENT_ID.into()),
        config: config(),
        source: BacktestSource::Sim {
            seed: 1,
            from: t(10),
            to: t(10),
            step_s: 60,
        },
        fill_model: fill_model(),
        at: t(0),
    };
    invalid(vec![], command, "source.to");
}

#[test]
fn requesting_a_csv_backtest_without_data_is_rejected() {
    let command = BacktestCommand::RequestBacktest {
        backtest_id: BACKTEST_ID.into(),
        owner: "alice".into(),
        agent_id: Some(AGENT_ID.into()),
        config: config(),
        source: BacktestSource::Csv {
            bytes: 0,
            sha256: SHA256.into(),
        },
        fill_model: fill_model(),
        at: t(0),
    };
    invalid(vec![], command, "source.data");
}

#[test]
fn starting_a_requested_backtest_runs_it() {
    backtest()
        .given(vec![requested()])
        .when(BacktestCommand::StartBacktest { at: t(1) })
        .then_expect_events(vec![started()]);
}

#[test]
fn starting_a_backtest_that_is_not_waiting_is_rejected() {
    for (given, state) in [
        (vec![requested(), started()], BacktestState::Running),
        (
            vec![requested(), started(), completed()],
            BacktestState::Completed,
        ),
        (
            vec![requested(), started(), failed()],
            BacktestState::Failed,
        ),
        (vec![requested(), cancelled(1)], BacktestState::Cancelled),
    ] {
        backtest()
            .given(given)
            .when(BacktestCommand::StartBacktest { at: t(5) })
            .then_expect_error(BacktestError::BacktestNotRequested { state });
    }
}

#[test]
fn completing_a_running_backtest_records_its_summary() {
    backtest()
        .given(vec![requested(), started()])
        .when(BacktestCommand::CompleteBacktest {
            summary: summary(),
            at: t(9),
        })
        .then_expect_events(vec![completed()]);
}

#[test]
fn completing_with_more_fills_than_orders_is_rejected() {
    let mut summary = summary();
    summary.fills = summary.orders + 1;
    invalid(
        vec![requested(), started()],
        BacktestCommand::CompleteBacktest { summary, at: t(9) },
        "summary.fills",
    );
}

#[test]
fn completing_a_backtest_that_is_not_running_is_rejected() {
    for (given, state) in [
        (vec![requested()], BacktestState::Requested),
        (
            vec![requested(), started(), completed()],
            BacktestState::Completed,
        ),
        (vec![requested(), cancelled(1)], BacktestState::Cancelled),
    ] {
        backtest()
            .given(given)
            .when(BacktestCommand::CompleteBacktest {
                summary: summary(),
                at: t(9),
            })
            .then_expect_error(BacktestError::BacktestNotRunning { state });
    }
}

#[test]
fn failing_a_running_backtest_records_the_error() {
    backtest()
        .given(vec![requested(), started()])
        .when(BacktestCommand::FailBacktest {
            error: "CSV row 17: bad price".into(),
            at: t(9),
        })
        .then_expect_events(vec![failed()]);
}

#[test]
fn failing_a_backtest_that_is_not_running_is_rejected() {
    for (given, state) in [
        (vec![requested()], BacktestState::Requested),
        (
            vec![requested(), started(), failed()],
            BacktestState::Failed,
        ),
    ] {
        backtest()
            .given(given)
            .when(BacktestCommand::FailBacktest {
                error: "x".into(),
                at: t(9),
            })
            .then_expect_error(BacktestError::BacktestNotRunning { state });
    }
}

#[test]
fn failing_without_an_error_message_is_rejected() {
    invalid(
        vec![requested(), started()],
        BacktestCommand::FailBacktest {
            error: "".into(),
            at: t(9),
        },
        "error",
    );
}

#[test]
fn cancelling_a_requested_or_running_backtest_records_it() {
    for given in [vec![requested()], vec![requested(), started()]] {
        backtest()
            .given(given)
            .when(BacktestCommand::CancelBacktest { at: t(5) })
            .then_expect_events(vec![cancelled(5)]);
    }
}

#[test]
fn cancelling_a_finished_backtest_is_rejected() {
    for (given, state) in [
        (
            vec![requested(), started(), completed()],
            BacktestState::Completed,
        ),
        (
            vec![requested(), started(), failed()],
            BacktestState::Failed,
        ),
        (vec![requested(), cancelled(1)], BacktestState::Cancelled),
    ] {
        backtest()
            .given(given)
            .when(BacktestCommand::CancelBacktest { at: t(5) })
            .then_expect_error(BacktestError::BacktestFinished { state });
    }
}

#[test]
fn commands_for_a_backtest_that_does_not_exist_are_rejected() {
    for command in [
        BacktestCommand::StartBacktest { at: t(0) },
        BacktestCommand::CompleteBacktest {
            summary: summary(),
            at: t(0),
        },
        BacktestCommand::FailBacktest {
            error: "x".into(),
            at: t(0),
        },
        BacktestCommand::CancelBacktest { at: t(0) },
    ] {
        backtest()
            .given_no_previous_events()
            .when(command)
            .then_expect_error(BacktestError::BacktestNotFound);
    }
}

#[test]
fn events_serialize_externally_tagged_and_round_trip() {
    let sim = BacktestEvent::BacktestRequested {
        backtest_id: BACKTEST_ID.into(),
        owner: "alice".into(),
        agent_id: Some(AGENT_ID.into()),
        config: config(),
        source: BacktestSource::Sim {
            seed: 7,
            from: t(0),
            to: t(60),
            step_s: 60,
        },
        fill_model: fill_model(),
        requested_at: t(0),
    };
    assert_eq!(
        serde_json::to_value(&sim).unwrap()["BacktestRequested"]["source"],
        json!({"kind": "sim", "seed": 7, "from": "2026-11-22T10:00:00.000Z", "to": "2026-11-22T10:01:00.000Z", "step_s": 60})
    );
    assert_eq!(
        serde_json::to_value(requested()).unwrap()["BacktestRequested"]["source"],
        json!({"kind": "csv", "bytes": 81_000_000, "sha256": SHA256})
    );
    for event in [
        requested(),
        sim,
        started(),
        completed(),
        failed(),
        cancelled(3),
    ] {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().next().unwrap(),
            &event.event_type()
        );
        assert_eq!(event.event_version(), "1");
        assert_eq!(
            serde_json::from_value::<BacktestEvent>(json).unwrap(),
            event
        );
    }
}

#[test]
fn stored_events_with_unknown_fields_do_not_deserialize() {
    let mut event = serde_json::to_value(requested()).unwrap();
    event["BacktestRequested"]["source"]["delimiter"] = json!(";");
    assert!(serde_json::from_value::<BacktestEvent>(event).is_err());
    let mut event = serde_json::to_value(completed()).unwrap();
    event["BacktestCompleted"]["summary"]["sharpe"] = json!("1.2");
    assert!(serde_json::from_value::<BacktestEvent>(event).is_err());
    let mut event = serde_json::to_value(started()).unwrap();
    event["BacktestStarted"]["by"] = json!("bob");
    assert!(serde_json::from_value::<BacktestEvent>(event).is_err());
}

#[test]
fn errors_serialize_with_their_code_and_state() {
    let errors = [
        BacktestError::BacktestAlreadyExists {
            state: BacktestState::Requested,
        },
        BacktestError::BacktestNotFound,
        BacktestError::BacktestNotRequested {
            state: BacktestState::Running,
        },
        BacktestError::BacktestNotRunning {
            state: BacktestState::Completed,
        },
        BacktestError::BacktestFinished {
            state: BacktestState::Failed,
        },
        BacktestError::ValidationFailed(ValidationError::new("source.to", "x")),
    ];
    let codes: Vec<&str> = errors.iter().map(BacktestError::code).collect();
    assert_eq!(
        codes,
        BacktestError::all_codes(),
        "one error per variant, in order"
    );
    for error in errors {
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["code"], json!(error.code()));
        if let Some(state) = error.current_state() {
            assert_eq!(json["state"], json!(state));
        }
    }
}
