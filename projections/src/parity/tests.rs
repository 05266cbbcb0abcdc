//! A paper agent driven through the Agent aggregate as the runtime and the execution role drive it (two sessions,
//! fills a moment after their runs), then backtested over its observations: the records are equal, and a change
//! anywhere shows as the first differing element.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use strom_domain::{
    Agent, AgentCommand, AgentConfig, AgentEvent, Decider, FillModel, Observation, RiskLimits,
    StrategySpec, Symbol,
};

use super::*;
use crate::backtest::{run, BacktestSetup};
use crate::record::{observations, TradingRecord};

const AGENT_ID: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

fn t(ms: i64) -> DateTime<Utc> {
    "2026-11-30T23:58:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::milliseconds(ms)
}

pub(crate) fn config(strategy: serde_json::Value) -> AgentConfig {
    AgentConfig {
        name: "parity".into(),
        symbol: Symbol::parse("BTC-USD").unwrap(),
        strategy: serde_json::from_value::<StrategySpec>(strategy).unwrap(),
        frequency_s: 2,
        risk: RiskLimits {
            max_position_qty: dec!(3),
            max_order_qty: dec!(1),
            max_notional: dec!(102),
            max_daily_loss: Some(dec!(5)),
        },
        starting_cash: dec!(500),
        seed: 7,
    }
}

pub(crate) fn fill_model() -> FillModel {
    FillModel {
        slippage_bps: dec!(5),
        fee_bps: dec!(10),
    }
}

/// A zig-zag with a trend, crossing its averages often.
pub(crate) fn price(i: u64) -> Decimal {
    let wave = [0, 3, 5, 4, 1, -2, -4, -3, 0, 2][(i % 10) as usize];
    dec!(100) + Decimal::from(wave) + Decimal::from(i / 10) * dec!(0.37)
}

struct Paper {
    agent: Agent,
    events: Vec<AgentEvent>,
}

impl Paper {
    fn run(&mut self, command: AgentCommand) -> Vec<AgentEvent> {
        let events = self.agent.decide(command).unwrap();
        for e in &events {
            self.agent.evolve(e);
        }
        self.events.extend(events.iter().cloned());
        events
    }
}

/// Two sessions of `ticks` each (the second starting 9.5 s after the first stops, over midnight UTC), every order
/// filled 40 ms after its run unless `unfilled_tick` says to let one wait a tick.
fn paper(
    strategy: serde_json::Value,
    ticks: u64,
    mut unfilled_tick: Option<u64>,
) -> Vec<AgentEvent> {
    let mut paper = Paper {
        agent: Agent::default(),
        events: Vec::new(),
    };
    paper.run(AgentCommand::CreateAgent {
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        config: config(strategy),
        at: t(0),
    });
    let mut i = 0;
    let mut waiting: Option<String> = None;
    for (session, start_ms) in [(1, 1_000), (2, 1_000 + ticks as i64 * 2_000 + 9_500)] {
        paper.run(AgentCommand::StartAgent { at: t(start_ms) });
        let started = paper.agent.session_started_at().unwrap();
        for tick in 1..=ticks {
            let slot = started + TimeDelta::seconds(2 * (tick as i64 - 1));
            i += 1;
            let events = paper.run(AgentCommand::RecordRun {
                session,
                tick_no: tick,
                scheduled_at: slot,
                started_at: slot + TimeDelta::milliseconds(3),
                completed_at: slot + TimeDelta::milliseconds(9),
                observation: Observation {
                    symbol: Symbol::parse("BTC-USD").unwrap(),
                    price: price(i),
                    observed_at: slot,
                },
                fill_model: fill_model(),
                correlation_id: format!("tick-{session}-{tick}"),
            });
            if let Some(order_id) = waiting.take() {
                paper.run(AgentCommand::FillOrder {
                    order_id,
                    at: slot + TimeDelta::milliseconds(700),
                });
            }
            if let Some(AgentEvent::OrderPlaced { order_id, .. }) = events.get(1) {
                if unfilled_tick.is_some_and(|u| u <= tick) {
                    unfilled_tick = None;
                    waiting = Some(order_id.clone());
                } else {
                    paper.run(AgentCommand::FillOrder {
                        order_id: order_id.clone(),
                        at: slot + TimeDelta::milliseconds(40),
                    });
                }
            }
        }
        if let Some(order_id) = waiting.take() {
            paper.run(AgentCommand::FillOrder {
                order_id,
                at: t(start_ms + ticks as i64 * 2_000),
            });
        }
        paper.run(AgentCommand::StopAgent {
            at: t(start_ms + ticks as i64 * 2_000 + 1),
            reason: "test".into(),
        });
    }
    paper.events
}

fn backtest(
    strategy: serde_json::Value,
    paper: &[AgentEvent],
    fill_model: FillModel,
) -> TradingRecord {
    let setup = BacktestSetup {
        backtest_id: "5f0c7a8e-1d2b-4c3a-9e8f-7a6b5c4d3e2f".into(),
        owner: "alice".into(),
        config: config(strategy),
        fill_model,
    };
    run(setup, observations(paper)).unwrap().record
}

fn sma() -> serde_json::Value {
    serde_json::json!({"kind": "sma_crossover", "params": {"fast": 2, "slow": 5, "qty": "1"}})
}

fn mean_reversion() -> serde_json::Value {
    serde_json::json!({"kind": "mean_reversion", "params": {"window": 4, "threshold_pct": "1.5", "qty": "1"}})
}

#[test]
fn a_backtest_over_a_paper_agents_observations_reproduces_its_trading_record() {
    for strategy in [sma(), mean_reversion()] {
        let events = paper(strategy.clone(), 40, None);
        let paper = TradingRecord::of_stream(AGENT_ID, &events).unwrap();
        assert!(paper.trades.len() >= 4, "the series trades: {paper:?}");
        assert!(
            paper.orders.iter().any(|o| o.status == "rejected"),
            "a risk refusal is part of the record"
        );
        let backtest = backtest(strategy, &events, fill_model());
        assert_eq!(
            compare(&paper, &backtest),
            Parity::Equal {
                orders: paper.orders.len(),
                fills: paper.trades.len(),
                pnl_points: 80,
            }
        );
    }
}

#[test]
fn the_first_differing_element_is_reported() {
    let events = paper(sma(), 40, None);
    let paper = TradingRecord::of_stream(AGENT_ID, &events).unwrap();
    let other_fees = FillModel {
        fee_bps: dec!(11),
        ..fill_model()
    };
    let Parity::Differs { difference } = compare(&paper, &backtest(sma(), &events, other_fees))
    else {
        panic!("a different fee model must differ");
    };
    assert_eq!(
        (difference.sequence, difference.index, difference.field),
        ("orders", 0, "fill_model.fee_bps")
    );
    assert_eq!(
        (difference.paper.as_str(), difference.backtest.as_str()),
        ("10", "11")
    );

    let mut shorter = backtest(sma(), &events, fill_model());
    shorter.pnl.pop();
    let Parity::Differs { difference } = compare(&paper, &shorter) else {
        panic!("a missing point must differ");
    };
    assert_eq!(
        difference.to_string(),
        "pnl_points: the paper agent has 80 and the backtest 79"
    );

    let mut moved = backtest(sma(), &events, fill_model());
    moved.pnl[17].cash += dec!(0.0001);
    let Parity::Differs { difference } = compare(&paper, &moved) else {
        panic!("a changed cash must differ");
    };
    assert_eq!(
        (difference.sequence, difference.index, difference.field),
        ("pnl_points", 17, "cash")
    );
}

#[test]
fn decimals_compare_by_value_not_by_scale() {
    let events = paper(sma(), 20, None);
    let paper = TradingRecord::of_stream(AGENT_ID, &events).unwrap();
    let mut rescaled = backtest(sma(), &events, fill_model());
    for point in &mut rescaled.pnl {
        point.cash.rescale(point.cash.scale() + 2);
    }
    assert!(matches!(compare(&paper, &rescaled), Parity::Equal { .. }));
}

#[test]
fn a_paper_agent_that_skipped_runs_behind_an_unfilled_order_voids_parity() {
    let events = paper(sma(), 40, Some(1));
    let paper = TradingRecord::of_stream(AGENT_ID, &events).unwrap();
    assert_eq!(paper.skipped_runs, 1);
    let verdict = compare(&paper, &backtest(sma(), &events, fill_model()));
    assert!(
        matches!(&verdict, Parity::Void { reason } if reason.starts_with("1 run(s) were skipped")),
        "{verdict:?}"
    );
}

#[test]
fn observations_are_the_runs_in_stream_order() {
    let events = paper(sma(), 3, None);
    let observed = observations(&events);
    assert_eq!(observed.len(), 6);
    assert_eq!(observed[0], (t(1_000), price(1)));
    assert!(observed.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn an_agent_is_checked_from_its_own_events() {
    let events = paper(mean_reversion(), 30, None);
    let report = check_agent(AGENT_ID, &events).unwrap();
    assert_eq!(report.observations, 60);
    assert_eq!(report.fill_model, fill_model());
    assert_eq!(report.config, config(mean_reversion()));
    assert!(
        matches!(report.parity, Parity::Equal { pnl_points: 60, .. }),
        "{report:?}"
    );
    assert_eq!(
        check_agent(AGENT_ID, &[]).unwrap_err(),
        ParityError::NotFound(AGENT_ID.into())
    );
    assert_eq!(
        check_agent(AGENT_ID, &events[..2]).unwrap_err(),
        ParityError::NoRuns(AGENT_ID.into())
    );
}
