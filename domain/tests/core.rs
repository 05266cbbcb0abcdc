//! The pure core end to end: an agent's runs decide, orders are risk-checked and filled from their own
//! observation, fills settle into a position. Run twice over the same prices, it must produce the very
//! same events and numbers — the property the parity rule between paper trading and backtests rests on.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use strom_domain::fill::{Fill, FillModel};
use strom_domain::settle::{self, Position};
use strom_domain::{Agent, AgentCommand, AgentConfig, AgentEvent, Observation, RiskLimits, Symbol};

const AGENT_ID: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

fn t(seconds: i64) -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(seconds)
}

async fn handle<A: Aggregate>(
    aggregate: &mut A,
    command: A::Command,
) -> Result<Vec<A::Event>, A::Error>
where
    A::Services: Default,
{
    let sink = EventSink::default();
    aggregate
        .handle(command, &A::Services::default(), &sink)
        .await?;
    Ok(sink.collect().await)
}

fn config() -> AgentConfig {
    AgentConfig {
        name: "sma 2/4".into(),
        symbol: Symbol::parse("BTC-USD").unwrap(),
        strategy: serde_json::from_value(
            json!({"kind": "sma_crossover", "params": {"fast": 2, "slow": 4}}),
        )
        .unwrap(),
        frequency_s: 60,
        risk: RiskLimits {
            max_position_qty: dec!(1),
            max_order_qty: dec!(1),
            max_notional: dec!(1000),
            max_daily_loss: None,
        },
        starting_cash: dec!(1000),
        seed: 7,
    }
}

/// Runs the agent over `prices` one tick each, filling every placed order before the next tick (as the execution
/// role does when it keeps up). Returns every event as JSON (in order) and the agent's final position.
async fn run(prices: &[Decimal]) -> (Vec<Value>, Position) {
    let mut log = Vec::new();
    let mut agent = Agent::default();
    let create = AgentCommand::CreateAgent {
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        config: config(),
        at: t(0),
    };
    log.extend(
        handle(&mut agent, create)
            .await
            .unwrap()
            .iter()
            .map(to_json),
    );
    log.extend(
        handle(&mut agent, AgentCommand::StartAgent { at: t(60) })
            .await
            .unwrap()
            .iter()
            .map(to_json),
    );

    for (i, price) in prices.iter().enumerate() {
        let tick_no = i as u64 + 1;
        let scheduled_at = agent.tick_scheduled_at(tick_no).unwrap();
        let record = AgentCommand::RecordRun {
            session: 1,
            tick_no,
            scheduled_at,
            started_at: scheduled_at,
            completed_at: scheduled_at,
            observation: Observation {
                symbol: Symbol::parse("BTC-USD").unwrap(),
                price: *price,
                observed_at: scheduled_at,
            },
            fill_model: FillModel {
                slippage_bps: dec!(5),
                fee_bps: dec!(10),
            },
            correlation_id: format!("tick-{tick_no}"),
        };
        let events = handle(&mut agent, record).await.unwrap();
        log.extend(events.iter().map(to_json));
        let Some(AgentEvent::OrderPlaced { order_id, .. }) = events.get(1) else {
            continue;
        };
        let fill = AgentCommand::FillOrder {
            order_id: order_id.clone(),
            at: scheduled_at,
        };
        let filled = handle(&mut agent, fill).await.unwrap();
        log.extend(filled.iter().map(to_json));
    }
    (log, agent.book().position().clone())
}

/// The position settled from the `OrderFilled` events alone, as a read model folds it.
fn settle_fills(log: &[Value]) -> Position {
    let mut position = Position::opening(config().starting_cash);
    for event in log {
        let Some(filled) = event.get("OrderFilled") else {
            continue;
        };
        let fill: Fill = serde_json::from_value(filled.clone()).unwrap();
        position = settle::apply_fill(&position, &fill).unwrap();
    }
    position
}

fn to_json<E: serde::Serialize>(event: &E) -> Value {
    serde_json::to_value(event).unwrap()
}

fn prices() -> Vec<Decimal> {
    [
        100, 100, 100, 100, 90, 95, 110, 120, 115, 100, 90, 85, 95, 110, 130, 120, 100,
    ]
    .into_iter()
    .map(Decimal::from)
    .collect()
}

#[tokio::test]
async fn the_same_prices_give_the_same_events_and_pnl() {
    let (first_log, first_position) = run(&prices()).await;
    let (second_log, second_position) = run(&prices()).await;
    assert_eq!(first_log, second_log);
    assert_eq!(first_position, second_position);

    let fills = first_log
        .iter()
        .filter(|e| e.get("OrderFilled").is_some())
        .count();
    let rejections = first_log
        .iter()
        .filter(|e| e.get("OrderRejected").is_some())
        .count();
    assert!(fills >= 2, "the series crosses up and down: {first_log:#?}");
    assert!(
        rejections >= 1,
        "the first cross is down, with nothing to sell: {first_log:#?}"
    );
    let signals = first_log
        .iter()
        .filter(|e| e.pointer("/AgentRunRecorded/outcome/signalled").is_some())
        .count();
    assert_eq!(signals, fills + rejections, "every signal has its order");
    assert_eq!(first_position, settle_fills(&first_log));
    assert!(first_position.fees > Decimal::ZERO);

    let mark = *prices().last().unwrap();
    let valuation = settle::mark_to_market(&first_position, mark).unwrap();
    // Exact, to the last digit: the cost basis is kept, not an average.
    assert_eq!(
        valuation.equity,
        config().starting_cash + first_position.realized_pnl + valuation.unrealized_pnl
            - first_position.fees
    );
}
