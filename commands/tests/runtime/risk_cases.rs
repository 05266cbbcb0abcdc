//! The six risk rules of specs/06 §3, each reached through the running system (scheduler, runtime worker and
//! execution role on the simulated market), not only in the domain: agents whose limits make their signals break one
//! rule each, ticking every second until each expected refusal is recorded with its code and a sentence naming the
//! numbers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use strom_domain::{AgentEvent, RiskCode};

use crate::support::{advance_to, t, wait_until_scheduling, Env};

/// Ticks the agents get to show every refusal: signals come at most turns of the simulated price, so a few dozen
/// seconds hold several of each side.
const MAX_TICKS: i64 = 120;

fn sma(qty: &str) -> serde_json::Value {
    json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": qty}})
}

fn risk(
    max_position_qty: &str,
    max_order_qty: &str,
    max_notional: &str,
    max_daily_loss: Option<&str>,
) -> serde_json::Value {
    json!({"max_position_qty": max_position_qty, "max_order_qty": max_order_qty, "max_notional": max_notional,
           "max_daily_loss": max_daily_loss})
}

pub async fn every_risk_rule_refuses_an_order_through_the_running_system(env: &Env) {
    // Each agent, with the codes its refusals must include (BTC-USD is priced about 2,400 by the simulator).
    let cases = [
        // Every order is larger than max_order_qty.
        (
            sma("2"),
            risk("10", "1", "100000", None),
            "10000",
            vec![RiskCode::MaxOrderQtyExceeded],
        ),
        // A buy would hold more than max_position_qty.
        (
            sma("0.5"),
            risk("0.25", "1", "100000", None),
            "10000",
            vec![RiskCode::MaxPositionQtyExceeded],
        ),
        // A buy's value is above max_notional.
        (
            sma("0.5"),
            risk("1", "1", "100", None),
            "10000",
            vec![RiskCode::MaxNotionalExceeded],
        ),
        // No buy is affordable, so nothing is ever held: buys lack cash, sells lack a position.
        (
            sma("0.5"),
            risk("1", "1", "100000", None),
            "100",
            vec![RiskCode::InsufficientCash, RiskCode::InsufficientPosition],
        ),
        // A round trip pays slippage and fees (the test fill model), a loss above 0.01: the next buy is refused.
        (
            sma("0.01"),
            risk("1", "1", "100000", Some("0.01")),
            "10000",
            vec![RiskCode::MaxDailyLossExceeded],
        ),
    ];
    let mut expected: BTreeMap<String, BTreeSet<RiskCode>> = BTreeMap::new();
    for (strategy, limits, cash, codes) in cases {
        let agent = env
            .create_agent_configured("BTC-USD", 1, strategy, limits, cash)
            .await;
        env.start(&agent).await;
        expected.insert(agent, codes.into_iter().collect());
    }
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, expected.len() as u64).await;
    let worker = env.spawn_worker();
    let execution = env.spawn_execution();
    let mut refused: BTreeMap<String, BTreeSet<RiskCode>> = BTreeMap::new();
    for second in 0..MAX_TICKS {
        advance_to(env, &scheduler, t(second)).await;
        for agent in expected.keys() {
            env.wait_for_runs(agent, &[second as u64 + 1]).await;
        }
        for agent in expected.keys() {
            for event in env.events_of(agent, "OrderRejected").await {
                let Some(AgentEvent::OrderRejected {
                    reason_code,
                    reason,
                    ..
                }) = event.event.as_agent()
                else {
                    continue;
                };
                assert!(
                    reason.chars().any(|c| c.is_ascii_digit()) && reason.chars().count() <= 200,
                    "a refusal names its numbers in at most 200 characters: {reason}"
                );
                refused
                    .entry(agent.clone())
                    .or_default()
                    .insert(*reason_code);
            }
        }
        let done = expected
            .iter()
            .all(|(agent, codes)| refused.get(agent).is_some_and(|r| codes.is_subset(r)));
        if done {
            break;
        }
    }
    worker.stop().await;
    execution.stop().await;
    scheduler.stop().await;
    for (agent, codes) in &expected {
        let got = refused.get(agent).cloned().unwrap_or_default();
        assert!(
            codes.is_subset(&got),
            "{agent} should have been refused with {codes:?} within {MAX_TICKS} ticks, got {got:?}"
        );
    }
    let all: BTreeSet<RiskCode> = refused.values().flatten().copied().collect();
    assert_eq!(
        all,
        RiskCode::ALL.into_iter().collect(),
        "every rule reached"
    );
}
