//! Given/when/then tests of the Agent aggregate: every transition and every refusal.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;

use super::*;
use crate::config::{AgentConfigPatch, StrategyKind};
use crate::error::ErrorKind;

const AGENT_ID: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

fn agent() -> TestFramework<Agent> {
    TestFramework::with(())
}

/// 2026-11-22T10:00:00Z plus `seconds`.
fn t(seconds: i64) -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(seconds)
}

fn btc() -> Symbol {
    Symbol::parse("BTC-USD").unwrap()
}

fn risk() -> RiskLimits {
    RiskLimits {
        max_position_qty: dec!(10),
        max_order_qty: dec!(5),
        max_notional: dec!(100000),
        max_daily_loss: Some(dec!(500)),
    }
}

fn strategy(value: serde_json::Value) -> StrategySpec {
    serde_json::from_value(value).unwrap()
}

fn config() -> AgentConfig {
    AgentConfig {
        name: "btc hodl".into(),
        symbol: btc(),
        strategy: strategy(json!({"kind": "hold"})),
        frequency_s: 60,
        risk: risk(),
        starting_cash: dec!(10000),
        seed: 42,
    }
}

fn created_with(config: AgentConfig) -> AgentEvent {
    let (config, _) = config.normalized().unwrap();
    AgentEvent::AgentCreated {
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        name: config.name,
        symbol: config.symbol,
        strategy: config.strategy,
        frequency_s: config.frequency_s,
        risk: config.risk,
        starting_cash: config.starting_cash,
        seed: config.seed,
        created_at: t(0),
    }
}

fn created() -> AgentEvent {
    created_with(config())
}

fn started(session: u64, at: i64) -> AgentEvent {
    AgentEvent::AgentStarted {
        session,
        started_at: t(at),
        frequency_s: 60,
    }
}

fn stopped(session: u64, at: i64) -> AgentEvent {
    AgentEvent::AgentStopped {
        session,
        stopped_at: t(at),
        reason: "user".into(),
    }
}

fn archived(at: i64) -> AgentEvent {
    AgentEvent::AgentArchived { archived_at: t(at) }
}

fn observation(price: Decimal, at: i64) -> Observation {
    Observation {
        symbol: btc(),
        price,
        observed_at: t(at),
    }
}

/// Tick `tick_no` of a session started at t(100) with frequency 60 s.
fn record_run(session: u64, tick_no: u64, price: Decimal) -> AgentCommand {
    let slot = 100 + (tick_no as i64 - 1) * 60;
    AgentCommand::RecordRun {
        session,
        tick_no,
        scheduled_at: t(slot),
        started_at: t(slot),
        completed_at: t(slot + 1),
        observation: observation(price, slot),
        fill_model: FillModel::default(),
        correlation_id: format!("tick-{tick_no}"),
    }
}

fn run_recorded(session: u64, tick_no: u64, price: Decimal, outcome: RunOutcome) -> AgentEvent {
    let slot = 100 + (tick_no as i64 - 1) * 60;
    AgentEvent::AgentRunRecorded {
        session,
        tick_no,
        scheduled_at: t(slot),
        started_at: t(slot),
        completed_at: t(slot + 1),
        observation: observation(price, slot),
        outcome,
        correlation_id: format!("tick-{tick_no}"),
    }
}

fn running() -> Vec<AgentEvent> {
    vec![created(), started(1, 100)]
}

fn invalid(field: &str) -> impl Fn(AgentError) {
    let field = field.to_owned();
    move |error| assert_eq!(error.field(), Some(field.as_str()), "{error:?}")
}

fn expect_error<F: Fn(AgentError)>(given: Vec<AgentEvent>, when: AgentCommand, check: F) {
    let result = agent().given(given).when(when).inspect_result();
    check(result.expect_err("expected the command to be refused"));
}

// ---- CreateAgent -------------------------------------------------------------------------------------

#[test]
fn creating_an_agent_records_it_with_its_strategy_defaults_written_out() {
    let mut config = config();
    config.strategy = strategy(json!({"kind": "sma_crossover", "params": {"fast": 5}}));
    let AgentEvent::AgentCreated {
        strategy: recorded, ..
    } = created_with(config.clone())
    else {
        unreachable!()
    };
    assert_eq!(
        serde_json::to_value(&recorded).unwrap(),
        json!({"kind": "sma_crossover", "params": {"fast": 5, "slow": 30, "qty": "1"}})
    );
    agent()
        .given_no_previous_events()
        .when(AgentCommand::CreateAgent {
            agent_id: AGENT_ID.into(),
            owner: "alice".into(),
            config: config.clone(),
            at: t(0),
        })
        .then_expect_events(vec![created_with(config)]);
}

#[test]
fn a_created_agent_is_stopped_and_has_not_run() {
    let mut agent = Agent::default();
    agent.apply(created());
    assert_eq!(agent.state(), AgentState::Stopped);
    assert_eq!(agent.session(), 0);
    assert_eq!(agent.agent_id(), Some(AGENT_ID));
    assert_eq!(agent.owner(), Some("alice"));
    assert_eq!(agent.tick_scheduled_at(1), None);
}

#[test]
fn creating_an_existing_agent_is_rejected() {
    agent()
        .given(vec![created()])
        .when(AgentCommand::CreateAgent {
            agent_id: AGENT_ID.into(),
            owner: "alice".into(),
            config: config(),
            at: t(1),
        })
        .then_expect_error(AgentError::AgentAlreadyExists {
            state: AgentState::Stopped,
        });
}

#[test]
fn creating_an_agent_with_an_invalid_config_is_rejected_naming_the_field() {
    let mut bad = config();
    bad.risk.max_order_qty = dec!(0);
    expect_error(
        vec![],
        AgentCommand::CreateAgent {
            agent_id: AGENT_ID.into(),
            owner: "alice".into(),
            config: bad,
            at: t(0),
        },
        invalid("risk.max_order_qty"),
    );
}

#[test]
fn creating_an_agent_with_an_id_unsafe_for_subjects_is_rejected() {
    expect_error(
        vec![],
        AgentCommand::CreateAgent {
            agent_id: "a.b".into(),
            owner: "alice".into(),
            config: config(),
            at: t(0),
        },
        invalid("agent_id"),
    );
}

#[test]
fn creating_an_agent_without_an_owner_is_rejected() {
    expect_error(
        vec![],
        AgentCommand::CreateAgent {
            agent_id: AGENT_ID.into(),
            owner: "".into(),
            config: config(),
            at: t(0),
        },
        invalid("owner"),
    );
}

// ---- UpdateAgentConfig -------------------------------------------------------------------------------

#[test]
fn updating_a_stopped_agent_records_the_full_new_config() {
    let patch = AgentConfigPatch {
        frequency_s: Some(5),
        strategy: Some(strategy(json!({"kind": "mean_reversion"}))),
        ..Default::default()
    };
    agent()
        .given(vec![created()])
        .when(AgentCommand::UpdateAgentConfig { patch, at: t(10) })
        .then_expect_events(vec![AgentEvent::AgentConfigUpdated {
            name: "btc hodl".into(),
            symbol: btc(),
            strategy: strategy(json!({"kind": "mean_reversion", "params": {"window": 20, "threshold_pct": "2", "qty": "1"}})),
            frequency_s: 5,
            risk: risk(),
            starting_cash: dec!(10000),
            seed: 42,
            updated_at: t(10),
        }]);
}

#[test]
fn updating_a_running_agent_is_rejected() {
    agent()
        .given(running())
        .when(AgentCommand::UpdateAgentConfig {
            patch: AgentConfigPatch::default(),
            at: t(200),
        })
        .then_expect_error(AgentError::AgentRunning {
            state: AgentState::Running,
        });
}

#[test]
fn updating_an_archived_agent_is_rejected() {
    agent()
        .given(vec![created(), archived(5)])
        .when(AgentCommand::UpdateAgentConfig {
            patch: AgentConfigPatch::default(),
            at: t(200),
        })
        .then_expect_error(AgentError::AgentArchived {
            state: AgentState::Archived,
        });
}

#[test]
fn updating_with_an_invalid_patch_is_rejected_naming_the_field() {
    let patch = AgentConfigPatch {
        strategy: Some(strategy(
            json!({"kind": "sma_crossover", "params": {"fast": 40, "slow": 30}}),
        )),
        ..Default::default()
    };
    expect_error(
        vec![created()],
        AgentCommand::UpdateAgentConfig { patch, at: t(10) },
        invalid("strategy.params.slow"),
    );
}

#[test]
fn symbol_and_starting_cash_may_change_until_the_first_start() {
    let patch = AgentConfigPatch {
        symbol: Some(Symbol::parse("ETH-USD").unwrap()),
        starting_cash: Some(dec!(500)),
        ..Default::default()
    };
    let events = agent()
        .given(vec![created()])
        .when(AgentCommand::UpdateAgentConfig { patch, at: t(10) })
        .inspect_result()
        .unwrap();
    assert!(matches!(
        &events[..],
        [AgentEvent::AgentConfigUpdated { symbol, starting_cash, .. }]
            if symbol.as_str() == "ETH-USD" && *starting_cash == dec!(500)
    ));
}

#[test]
fn changing_the_symbol_or_starting_cash_of_an_agent_that_has_run_is_rejected() {
    let has_run = vec![created(), started(1, 100), stopped(1, 200)];
    let symbol = AgentConfigPatch {
        symbol: Some(Symbol::parse("ETH-USD").unwrap()),
        ..Default::default()
    };
    expect_error(
        has_run.clone(),
        AgentCommand::UpdateAgentConfig {
            patch: symbol,
            at: t(300),
        },
        invalid("symbol"),
    );
    let cash = AgentConfigPatch {
        starting_cash: Some(dec!(20000)),
        ..Default::default()
    };
    expect_error(
        has_run.clone(),
        AgentCommand::UpdateAgentConfig {
            patch: cash,
            at: t(300),
        },
        invalid("starting_cash"),
    );
    let same_values = AgentConfigPatch {
        symbol: Some(btc()),
        starting_cash: Some(dec!(10000.00)),
        name: Some("renamed".into()),
        ..Default::default()
    };
    agent()
        .given(has_run)
        .when(AgentCommand::UpdateAgentConfig {
            patch: same_values,
            at: t(300),
        })
        .inspect_result()
        .expect("restating the same symbol and cash is not a change");
}

#[test]
fn updating_an_agent_that_does_not_exist_is_rejected() {
    agent()
        .given_no_previous_events()
        .when(AgentCommand::UpdateAgentConfig {
            patch: AgentConfigPatch::default(),
            at: t(0),
        })
        .then_expect_error(AgentError::AgentNotFound);
}

// ---- StartAgent --------------------------------------------------------------------------------------

#[test]
fn starting_a_stopped_agent_opens_session_one_on_a_whole_second() {
    agent()
        .given(vec![created()])
        .when(AgentCommand::StartAgent {
            at: t(100) + TimeDelta::milliseconds(750),
        })
        .then_expect_events(vec![started(1, 100)]);
}

#[test]
fn restarting_an_agent_opens_the_next_session() {
    agent()
        .given(vec![created(), started(1, 100), stopped(1, 150)])
        .when(AgentCommand::StartAgent { at: t(300) })
        .then_expect_events(vec![started(2, 300)]);
}

#[test]
fn a_session_ticks_at_the_frequency_it_started_with() {
    let mut agent = Agent::default();
    for event in [created(), started(1, 100)] {
        agent.apply(event);
    }
    assert_eq!(agent.tick_scheduled_at(1), Some(t(100)));
    assert_eq!(agent.tick_scheduled_at(3), Some(t(220)));
    assert_eq!(agent.tick_scheduled_at(0), None);
    assert_eq!(agent.tick_scheduled_at(u64::MAX), None);
}

#[test]
fn starting_a_running_agent_is_rejected() {
    agent()
        .given(running())
        .when(AgentCommand::StartAgent { at: t(200) })
        .then_expect_error(AgentError::AgentAlreadyRunning {
            state: AgentState::Running,
        });
}

#[test]
fn starting_an_archived_agent_is_rejected() {
    agent()
        .given(vec![created(), archived(5)])
        .when(AgentCommand::StartAgent { at: t(200) })
        .then_expect_error(AgentError::AgentArchived {
            state: AgentState::Archived,
        });
}

#[test]
fn starting_an_agent_that_does_not_exist_is_rejected() {
    agent()
        .given_no_previous_events()
        .when(AgentCommand::StartAgent { at: t(0) })
        .then_expect_error(AgentError::AgentNotFound);
}

// ---- StopAgent ---------------------------------------------------------------------------------------

#[test]
fn stopping_a_running_agent_closes_its_session() {
    agent()
        .given(running())
        .when(AgentCommand::StopAgent {
            at: t(150),
            reason: "user".into(),
        })
        .then_expect_events(vec![stopped(1, 150)]);
}

#[test]
fn stopping_a_stopped_agent_is_rejected() {
    agent()
        .given(vec![created(), started(1, 100), stopped(1, 150)])
        .when(AgentCommand::StopAgent {
            at: t(160),
            reason: "user".into(),
        })
        .then_expect_error(AgentError::AgentNotRunning {
            state: AgentState::Stopped,
            session: 1,
        });
}

#[test]
fn stopping_an_archived_agent_is_rejected() {
    agent()
        .given(vec![created(), archived(5)])
        .when(AgentCommand::StopAgent {
            at: t(160),
            reason: "user".into(),
        })
        .then_expect_error(AgentError::AgentArchived {
            state: AgentState::Archived,
        });
}

#[test]
fn stopping_without_a_reason_is_rejected() {
    expect_error(
        running(),
        AgentCommand::StopAgent {
            at: t(160),
            reason: " ".into(),
        },
        invalid("reason"),
    );
}

#[test]
fn stopping_an_agent_that_does_not_exist_is_rejected() {
    agent()
        .given_no_previous_events()
        .when(AgentCommand::StopAgent {
            at: t(0),
            reason: "user".into(),
        })
        .then_expect_error(AgentError::AgentNotFound);
}

// ---- ArchiveAgent ------------------------------------------------------------------------------------

#[test]
fn archiving_a_stopped_agent_records_it() {
    agent()
        .given(vec![created(), started(1, 100), stopped(1, 150)])
        .when(AgentCommand::ArchiveAgent { at: t(500) })
        .then_expect_events(vec![archived(500)]);
}

#[test]
fn archiving_a_running_agent_is_rejected() {
    agent()
        .given(running())
        .when(AgentCommand::ArchiveAgent { at: t(500) })
        .then_expect_error(AgentError::AgentRunning {
            state: AgentState::Running,
        });
}

#[test]
fn archiving_an_archived_agent_is_rejected() {
    agent()
        .given(vec![created(), archived(5)])
        .when(AgentCommand::ArchiveAgent { at: t(500) })
        .then_expect_error(AgentError::AgentArchived {
            state: AgentState::Archived,
        });
}

#[test]
fn archiving_an_agent_that_does_not_exist_is_rejected() {
    agent()
        .given_no_previous_events()
        .when(AgentCommand::ArchiveAgent { at: t(0) })
        .then_expect_error(AgentError::AgentNotFound);
}

// ---- RecordRun ---------------------------------------------------------------------------------------

#[test]
fn recording_a_run_of_a_running_agent_records_the_observation() {
    agent()
        .given(running())
        .when(record_run(1, 1, dec!(101.25)))
        .then_expect_events(vec![run_recorded(1, 1, dec!(101.25), RunOutcome::Observed)]);
}

#[test]
fn ticks_may_be_skipped_but_never_repeated() {
    let mut given = running();
    given.push(run_recorded(1, 1, dec!(100), RunOutcome::Observed));
    agent()
        .given(given)
        .when(record_run(1, 4, dec!(102)))
        .then_expect_events(vec![run_recorded(1, 4, dec!(102), RunOutcome::Observed)]);
}

#[test]
fn recording_a_tick_already_run_is_rejected() {
    let mut given = running();
    given.push(run_recorded(1, 1, dec!(100), RunOutcome::Observed));
    given.push(run_recorded(1, 3, dec!(100), RunOutcome::Observed));
    for tick_no in [3, 2] {
        agent()
            .given(given.clone())
            .when(record_run(1, tick_no, dec!(100)))
            .then_expect_error(AgentError::TickAlreadyRun {
                session: 1,
                tick_no,
                last_tick_no: 3,
            });
    }
}

#[test]
fn recording_tick_zero_is_rejected() {
    let mut command = record_run(1, 1, dec!(100));
    if let AgentCommand::RecordRun { tick_no, .. } = &mut command {
        *tick_no = 0;
    }
    expect_error(running(), command, invalid("tick_no"));
}

#[test]
fn recording_a_run_of_a_stopped_agent_is_rejected() {
    agent()
        .given(vec![created(), started(1, 100), stopped(1, 150)])
        .when(record_run(1, 1, dec!(100)))
        .then_expect_error(AgentError::AgentNotRunning {
            state: AgentState::Stopped,
            session: 1,
        });
}

#[test]
fn recording_a_run_of_a_previous_session_is_rejected() {
    agent()
        .given(vec![
            created(),
            started(1, 100),
            stopped(1, 150),
            started(2, 100),
        ])
        .when(record_run(1, 1, dec!(100)))
        .then_expect_error(AgentError::AgentNotRunning {
            state: AgentState::Running,
            session: 2,
        });
}

#[test]
fn recording_a_run_of_an_archived_agent_is_rejected() {
    agent()
        .given(vec![created(), archived(5)])
        .when(record_run(1, 1, dec!(100)))
        .then_expect_error(AgentError::AgentNotRunning {
            state: AgentState::Archived,
            session: 0,
        });
}

#[test]
fn recording_a_run_of_an_agent_that_does_not_exist_is_rejected() {
    agent()
        .given_no_previous_events()
        .when(record_run(1, 1, dec!(100)))
        .then_expect_error(AgentError::AgentNotFound);
}

#[test]
fn recording_a_run_before_its_session_started_is_rejected() {
    let mut command = record_run(1, 1, dec!(100));
    if let AgentCommand::RecordRun { scheduled_at, .. } = &mut command {
        *scheduled_at = t(99);
    }
    expect_error(running(), command, invalid("scheduled_at"));
}

#[test]
fn recording_a_run_not_after_the_previous_one_is_rejected() {
    let mut command = record_run(1, 2, dec!(100));
    if let AgentCommand::RecordRun { scheduled_at, .. } = &mut command {
        *scheduled_at = t(100);
    }
    let mut given = running();
    given.push(run_recorded(1, 1, dec!(100), RunOutcome::Observed));
    expect_error(given, command, invalid("scheduled_at"));
}

#[test]
fn runs_may_come_at_any_later_instant_as_a_backtest_s_bars_do() {
    // A CSV with a gap and fractional close times: tick 2 three and a half minutes after tick 1, off the 60 s grid.
    let mut command = record_run(1, 2, dec!(101));
    let at = t(100) + chrono::Duration::milliseconds(210_500);
    if let AgentCommand::RecordRun {
        scheduled_at,
        started_at,
        completed_at,
        observation,
        ..
    } = &mut command
    {
        (*scheduled_at, *started_at, *completed_at) = (at, at, at);
        observation.observed_at = at;
    }
    let mut given = running();
    given.push(run_recorded(1, 1, dec!(100), RunOutcome::Observed));
    let events = agent().given(given).when(command).inspect_result().unwrap();
    assert!(
        matches!(&events[..], [AgentEvent::AgentRunRecorded { scheduled_at, .. }] if *scheduled_at == at),
        "{events:?}"
    );
}

#[test]
fn recording_a_run_for_another_symbol_is_rejected() {
    let mut command = record_run(1, 1, dec!(100));
    if let AgentCommand::RecordRun { observation, .. } = &mut command {
        observation.symbol = Symbol::parse("ETH-USD").unwrap();
    }
    expect_error(running(), command, invalid("observation.symbol"));
}

#[test]
fn recording_a_run_with_a_non_positive_price_is_rejected() {
    expect_error(
        running(),
        record_run(1, 1, dec!(0)),
        invalid("observation.price"),
    );
}

#[test]
fn recording_a_run_that_completes_before_it_starts_is_rejected() {
    let mut command = record_run(1, 1, dec!(100));
    if let AgentCommand::RecordRun { completed_at, .. } = &mut command {
        *completed_at = t(99);
    }
    expect_error(running(), command, invalid("completed_at"));
}

#[test]
fn recording_a_run_without_a_correlation_id_is_rejected() {
    let mut command = record_run(1, 1, dec!(100));
    if let AgentCommand::RecordRun { correlation_id, .. } = &mut command {
        correlation_id.clear();
    }
    expect_error(running(), command, invalid("correlation_id"));
}

#[test]
fn run_times_are_recorded_to_the_millisecond() {
    let mut command = record_run(1, 1, dec!(100));
    if let AgentCommand::RecordRun { completed_at, .. } = &mut command {
        *completed_at = t(101) + TimeDelta::nanoseconds(1_234_567);
    }
    let events = agent()
        .given(running())
        .when(command)
        .inspect_result()
        .unwrap();
    let AgentEvent::AgentRunRecorded { completed_at, .. } = &events[0] else {
        unreachable!()
    };
    assert_eq!(*completed_at, t(101) + TimeDelta::milliseconds(1));
}

// ---- Strategy decisions in runs ----------------------------------------------------------------------

/// The order tick `tick_no` of session `session` (of the session started at t(100), every 60 s) places.
fn placed(session: u64, tick_no: u64, side: Side, qty: Decimal, price: Decimal) -> AgentEvent {
    let slot = 100 + (tick_no as i64 - 1) * 60;
    AgentEvent::OrderPlaced {
        order_id: format!("{AGENT_ID}-{session}-{tick_no}"),
        symbol: btc(),
        side,
        qty,
        observation: ObservedPrice {
            price,
            observed_at: t(slot),
        },
        fill_model: FillModel::default(),
        placed_at: t(slot + 1),
    }
}

fn signalled(session: u64, tick_no: u64, side: Side, qty: Decimal) -> RunOutcome {
    RunOutcome::Signalled {
        side,
        qty,
        order_id: format!("{AGENT_ID}-{session}-{tick_no}"),
    }
}

fn sma_agent() -> Vec<AgentEvent> {
    let mut config = config();
    config.strategy =
        strategy(json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.5"}}));
    vec![created_with(config), started(1, 100)]
}

#[test]
fn a_run_whose_strategy_signals_requests_an_order_with_a_derived_id() {
    let mut given = sma_agent();
    given.push(run_recorded(1, 1, dec!(10), RunOutcome::Observed));
    given.push(run_recorded(1, 2, dec!(10), RunOutcome::Observed));
    agent()
        .given(given)
        .when(record_run(1, 3, dec!(12)))
        .then_expect_events(vec![
            run_recorded(
                1,
                3,
                dec!(12),
                RunOutcome::Signalled {
                    side: Side::Buy,
                    qty: dec!(0.5),
                    order_id: format!("{AGENT_ID}-1-3"),
                },
            ),
            placed(1, 3, Side::Buy, dec!(0.5), dec!(12)),
        ]);
}

#[test]
fn a_run_before_the_window_fills_only_observes() {
    let mut given = sma_agent();
    given.push(run_recorded(1, 1, dec!(10), RunOutcome::Observed));
    agent()
        .given(given)
        .when(record_run(1, 2, dec!(50)))
        .then_expect_events(vec![run_recorded(1, 2, dec!(50), RunOutcome::Observed)]);
}

#[test]
fn the_price_window_keeps_only_what_the_strategy_needs() {
    let mut agent = Agent::default();
    for event in sma_agent() {
        agent.apply(event);
    }
    for tick in 1..=5 {
        agent.apply(run_recorded(
            1,
            tick,
            Decimal::from(tick),
            RunOutcome::Observed,
        ));
    }
    assert_eq!(agent.last_tick_no(), 5);
    assert_eq!(
        agent.window().iter().copied().collect::<Vec<_>>(),
        vec![dec!(3), dec!(4), dec!(5)]
    );
}

#[test]
fn a_hold_agent_keeps_no_prices() {
    let mut agent = Agent::default();
    for event in running() {
        agent.apply(event);
    }
    agent.apply(run_recorded(1, 1, dec!(1), RunOutcome::Observed));
    assert!(agent.window().is_empty());
}

#[test]
fn the_window_of_the_slowest_strategy_is_bounded() {
    let mut config = config();
    config.strategy =
        strategy(json!({"kind": "sma_crossover", "params": {"fast": 500, "slow": 2000}}));
    let mut agent = Agent::default();
    agent.apply(created_with(config));
    agent.apply(started(1, 100));
    for tick in 1..=(MAX_PRICE_WINDOW as u64 + 50) {
        agent.apply(run_recorded(1, tick, dec!(1), RunOutcome::Observed));
    }
    assert_eq!(agent.window().len(), MAX_PRICE_WINDOW);
}

#[test]
fn a_new_session_restarts_tick_numbers_but_keeps_the_price_window() {
    let mut agent = Agent::default();
    for event in sma_agent() {
        agent.apply(event);
    }
    agent.apply(run_recorded(1, 1, dec!(10), RunOutcome::Observed));
    agent.apply(stopped(1, 200));
    agent.apply(started(2, 300));
    assert_eq!(
        agent.window().iter().copied().collect::<Vec<_>>(),
        vec![dec!(10)]
    );
    assert_eq!(agent.last_tick_no(), 0);
    assert_eq!(agent.session(), 2);
}

#[test]
fn the_first_run_of_a_new_session_decides_on_the_prices_of_the_last_one() {
    // What a backtest over the same observations does: one unbroken series (specs/06 §1).
    let mut given = sma_agent();
    given.push(run_recorded(1, 1, dec!(10), RunOutcome::Observed));
    given.push(run_recorded(1, 2, dec!(10), RunOutcome::Observed));
    given.push(stopped(1, 200));
    given.push(started(2, 300));
    agent()
        .given(given)
        .when(AgentCommand::RecordRun {
            session: 2,
            tick_no: 1,
            scheduled_at: t(300),
            started_at: t(300),
            completed_at: t(301),
            observation: observation(dec!(12), 300),
            fill_model: FillModel::default(),
            correlation_id: "tick-1".into(),
        })
        .then_expect_events(vec![
            AgentEvent::AgentRunRecorded {
                session: 2,
                tick_no: 1,
                scheduled_at: t(300),
                started_at: t(300),
                completed_at: t(301),
                observation: observation(dec!(12), 300),
                outcome: RunOutcome::Signalled {
                    side: Side::Buy,
                    qty: dec!(0.5),
                    order_id: format!("{AGENT_ID}-2-1"),
                },
                correlation_id: "tick-1".into(),
            },
            AgentEvent::OrderPlaced {
                order_id: format!("{AGENT_ID}-2-1"),
                symbol: btc(),
                side: Side::Buy,
                qty: dec!(0.5),
                observation: ObservedPrice {
                    price: dec!(12),
                    observed_at: t(300),
                },
                fill_model: FillModel::default(),
                placed_at: t(301),
            },
        ]);
}

#[test]
fn changing_the_strategy_clears_the_price_window() {
    let mut agent = Agent::default();
    for event in sma_agent() {
        agent.apply(event);
    }
    agent.apply(run_recorded(1, 1, dec!(10), RunOutcome::Observed));
    agent.apply(stopped(1, 200));
    let mut new_config = config();
    new_config.frequency_s = 30;
    let (same_strategy, _) = AgentConfig {
        strategy: agent.config().unwrap().strategy.clone(),
        ..new_config.clone()
    }
    .normalized()
    .unwrap();
    agent.apply(updated(same_strategy));
    assert_eq!(agent.window().len(), 1, "same strategy: the window stays");
    let (other_strategy, _) = AgentConfig {
        strategy: strategy(json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 3}})),
        ..new_config
    }
    .normalized()
    .unwrap();
    agent.apply(updated(other_strategy));
    assert!(agent.window().is_empty());
}

fn updated(config: AgentConfig) -> AgentEvent {
    AgentEvent::AgentConfigUpdated {
        name: config.name,
        symbol: config.symbol,
        strategy: config.strategy,
        frequency_s: config.frequency_s,
        risk: config.risk,
        starting_cash: config.starting_cash,
        seed: config.seed,
        updated_at: t(250),
    }
}

// ---- Events and errors on the wire -------------------------------------------------------------------

#[test]
fn events_serialize_externally_tagged_with_string_decimals_and_millisecond_times() {
    assert_eq!(
        serde_json::to_value(created()).unwrap(),
        json!({"AgentCreated": {
            "agent_id": AGENT_ID,
            "owner": "alice",
            "name": "btc hodl",
            "symbol": "BTC-USD",
            "strategy": {"kind": "hold", "params": {}},
            "frequency_s": 60,
            "risk": {"max_position_qty": "10", "max_order_qty": "5", "max_notional": "100000", "max_daily_loss": "500"},
            "starting_cash": "10000",
            "seed": 42,
            "created_at": "2026-11-22T10:00:00.000Z"
        }})
    );
    let run = run_recorded(
        1,
        3,
        dec!(12.50),
        RunOutcome::Signalled {
            side: Side::Sell,
            qty: dec!(1),
            order_id: "x-1-3".into(),
        },
    );
    assert_eq!(
        serde_json::to_value(&run).unwrap()["AgentRunRecorded"]["outcome"],
        json!({"signalled": {"side": "sell", "qty": "1", "order_id": "x-1-3"}})
    );
    assert_eq!(
        serde_json::to_value(run_recorded(1, 1, dec!(1), RunOutcome::Observed)).unwrap()
            ["AgentRunRecorded"]["outcome"],
        json!("observed")
    );
}

#[test]
fn every_event_round_trips_and_names_its_type_and_version() {
    let events = vec![
        created(),
        AgentEvent::AgentConfigUpdated {
            name: "n".into(),
            symbol: btc(),
            strategy: StrategySpec::default(),
            frequency_s: 1,
            risk: risk(),
            starting_cash: dec!(1),
            seed: 0,
            updated_at: t(1),
        },
        started(1, 2),
        stopped(1, 3),
        archived(4),
        run_recorded(1, 1, dec!(1), RunOutcome::Observed),
    ];
    for event in events {
        let json = serde_json::to_value(&event).unwrap();
        let tag = json.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(tag, event.event_type());
        let expected_version = if tag == "AgentCreated" { "2" } else { "1" };
        assert_eq!(event.event_version(), expected_version);
        assert_eq!(serde_json::from_value::<AgentEvent>(json).unwrap(), event);
    }
}

#[test]
fn stored_events_with_unknown_fields_do_not_deserialize() {
    let mut started = serde_json::to_value(started(1, 2)).unwrap();
    started["AgentStarted"]["colour"] = json!("red");
    assert!(serde_json::from_value::<AgentEvent>(started).is_err());
    let mut run = serde_json::to_value(run_recorded(1, 1, dec!(1), RunOutcome::Observed)).unwrap();
    run["AgentRunRecorded"]["observation"]["volume"] = json!("3");
    assert!(serde_json::from_value::<AgentEvent>(run).is_err());
    let signalled =
        json!({"signalled": {"side": "buy", "qty": "1", "order_id": "x-1-1", "extra": 1}});
    assert!(serde_json::from_value::<RunOutcome>(signalled).is_err());
}

#[test]
fn errors_serialize_with_their_code_and_state() {
    let errors = vec![
        AgentError::AgentAlreadyExists {
            state: AgentState::Stopped,
        },
        AgentError::AgentNotFound,
        AgentError::AgentRunning {
            state: AgentState::Running,
        },
        AgentError::AgentAlreadyRunning {
            state: AgentState::Running,
        },
        AgentError::AgentArchived {
            state: AgentState::Archived,
        },
        AgentError::AgentNotRunning {
            state: AgentState::Stopped,
            session: 2,
        },
        AgentError::TickAlreadyRun {
            session: 1,
            tick_no: 2,
            last_tick_no: 3,
        },
        AgentError::OrderNotOpen {
            order_id: format!("{AGENT_ID}-1-3"),
        },
        AgentError::ValidationFailed(ValidationError::new("name", "must not be blank")),
    ];
    let codes: Vec<&str> = errors.iter().map(AgentError::code).collect();
    assert_eq!(
        codes,
        AgentError::all_codes(),
        "one error per variant, in order"
    );
    for error in errors {
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["code"], json!(error.code()), "{error:?}");
        if let Some(state) = error.current_state() {
            assert_eq!(json["state"], json!(state));
        }
    }
    assert_eq!(
        serde_json::to_value(AgentError::ValidationFailed(ValidationError::new(
            "name", "blank"
        )))
        .unwrap(),
        json!({"code": "validation_failed", "field": "name", "reason": "blank"})
    );
    assert_eq!(AgentError::AgentNotFound.kind(), ErrorKind::NotFound);
    assert_eq!(
        AgentError::AgentRunning {
            state: AgentState::Running
        }
        .kind(),
        ErrorKind::Conflict
    );
}

#[test]
fn strategy_kind_names_match_their_wire_form() {
    for kind in [
        StrategyKind::Hold,
        StrategyKind::SmaCrossover,
        StrategyKind::MeanReversion,
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
    }
}

#[test]
fn the_aggregate_state_snapshots_and_restores() {
    let mut agent = Agent::default();
    for event in sma_agent() {
        agent.apply(event);
    }
    agent.apply(run_recorded(1, 1, dec!(10), RunOutcome::Observed));
    let snapshot = serde_json::to_value(&agent).unwrap();
    assert_eq!(serde_json::from_value::<Agent>(snapshot).unwrap(), agent);
}

mod trading;

mod incremental;

#[test]
fn a_signal_whose_order_is_beyond_decimal_range_refuses_the_run_and_leaves_no_event() {
    let mut agent = Agent::default();
    let mut given = sma_agent();
    given.push(run_recorded(1, 1, dec!(1e25), RunOutcome::Observed));
    given.push(run_recorded(1, 2, dec!(1e25), RunOutcome::Observed));
    for event in given {
        agent.apply(event);
    }
    let before = agent.clone();
    // A buy of 0.5 at 2e25 with a 99.99 % fee: the fee's product is beyond Decimal range.
    let mut run = record_run(1, 3, dec!(2e25));
    if let AgentCommand::RecordRun { fill_model, .. } = &mut run {
        fill_model.fee_bps = dec!(9999);
    }
    let mut events = vec![created()];
    let error = agent
        .execute_into(run, &mut events)
        .expect_err("the order cannot be priced");
    assert_eq!(error.field(), Some("observation.price"), "{error:?}");
    assert_eq!(events, vec![created()], "the run event is taken back out");
    assert_eq!(agent, before, "nothing applied");
}
