//! The incremental strategy evaluation (`agent::rolling`) against its definition (`decide::signal` over the
//! window plus the new price): the same signal at every bar, whatever the prices — including those whose sums
//! `Decimal` rounds or cannot hold — across strategy changes, stops and starts, and snapshots.

use proptest::prelude::{prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig};
use proptest::strategy::Strategy as _;

use super::*;

/// What the definition says for `price` after the agent's window (it looks at the latest prices only, so the whole
/// window may be given).
fn defined(agent: &Agent, price: Decimal) -> decide::Signal {
    let mut prices: Vec<Decimal> = agent.window().iter().copied().collect();
    prices.push(price);
    decide::signal(agent.strategy().unwrap(), &prices)
}

/// What the agent decides for `price`, and whether its rolling state answered alone (no fallback).
fn incremental(agent: &Agent, price: Decimal) -> (Option<Side>, bool) {
    let profile = agent.profile.as_ref().unwrap();
    let fast = agent
        .rolling
        .signal(&profile.strategy, &agent.window, price)
        .is_some();
    (
        agent
            .signal(profile, price, &mut None)
            .map(|(side, _)| side),
        fast,
    )
}

fn agent_with(strategy_json: serde_json::Value) -> Agent {
    let mut config = config();
    config.strategy = strategy(strategy_json);
    let mut agent = Agent::default();
    agent.evolve(&created_with(config));
    agent.evolve(&started(1, 100));
    agent
}

/// Records `price` as the next tick through `evolve` only (any price, whatever an order for it would cost).
fn observe(agent: &mut Agent, price: Decimal) {
    let tick_no = agent.last_tick_no() + 1;
    let slot = agent.tick_scheduled_at(tick_no).unwrap();
    agent.evolve(&AgentEvent::AgentRunRecorded {
        session: agent.session(),
        tick_no,
        scheduled_at: slot,
        started_at: slot,
        completed_at: slot,
        observation: Observation {
            symbol: btc(),
            price,
            observed_at: slot,
        },
        outcome: RunOutcome::Observed,
        correlation_id: "tick".into(),
    });
}

#[test]
fn ordinary_prices_are_decided_from_the_rolling_sums_alone() {
    for strategy_json in [
        json!({"kind": "sma_crossover", "params": {"fast": 10, "slow": 30}}),
        json!({"kind": "mean_reversion", "params": {"window": 20, "threshold_pct": "2.5"}}),
    ] {
        let mut agent = agent_with(strategy_json);
        let (mut signals, mut x) = (0, 7u64);
        for tick in 0..500i64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // A random walk in cents, with now and then a price of another scale.
            let price = if tick % 37 == 0 {
                Decimal::new(1_000_000 + (x >> 60) as i64, 4)
            } else {
                Decimal::new(10_000 + ((x >> 33) % 2001) as i64 - 1000, 2)
            };
            let (side, fast) = incremental(&agent, price);
            assert!(fast, "tick {tick}: the fallback answered for {price}");
            assert_eq!(side, defined(&agent, price).side(), "tick {tick}");
            signals += usize::from(side.is_some());
            observe(&mut agent, price);
        }
        assert!(signals > 10, "the series crosses often ({signals} signals)");
    }
}

#[test]
fn the_incremental_signal_keeps_the_definitions_rounding() {
    // fast 1 / slow 2 over (50 + 1e-27, 50): the exact sums say fast < slow, but the definition's sum
    // 100.000000000000000000000000001 needs 30 digits and rounds to 100, so it says "equal" — and from
    // "equal", a fall to 1 is a cross down. The incremental evaluation must sell too.
    let mut agent = agent_with(json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2}}));
    let tiny = Decimal::new(1, 27);
    observe(&mut agent, dec!(50) + tiny);
    observe(&mut agent, dec!(50));
    assert_eq!(defined(&agent, dec!(1)), decide::Signal::Sell);
    assert_eq!(incremental(&agent, dec!(1)).0, Some(Side::Sell));
}

#[test]
fn sums_beyond_decimal_range_give_no_signal_incrementally_either() {
    let mut agent = agent_with(json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 3}}));
    for _ in 0..3 {
        observe(&mut agent, Decimal::MAX);
    }
    // Exactly, 1 vs MAX would be a cross down; the definition's sums overflow, so it holds.
    assert_eq!(defined(&agent, dec!(1)), decide::Signal::Hold);
    assert_eq!(incremental(&agent, dec!(1)), (None, false));
    // Once the huge prices left the window, the rolling sums take over again.
    for _ in 0..4 {
        observe(&mut agent, dec!(10));
    }
    assert_eq!(incremental(&agent, dec!(13)), (Some(Side::Buy), true));
}

#[test]
fn the_rolling_state_snapshots_with_its_sums_as_strings() {
    let mut agent = agent_with(json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2}}));
    observe(&mut agent, Decimal::new(1, 28));
    observe(&mut agent, Decimal::from(1_000_000_000i64));
    let snapshot = serde_json::to_value(&agent).unwrap();
    assert_eq!(
        snapshot["rolling"]["long"],
        json!("10000000000000000000000000000000000001"),
        "{snapshot}"
    );
    assert_eq!(serde_json::from_value::<Agent>(snapshot).unwrap(), agent);
}

/// One step of a random agent history.
#[derive(Debug, Clone)]
enum Step {
    /// A run observing this price.
    Run(Decimal),
    /// Stop, then start the next session.
    Restart,
    /// Stop, change the strategy to this one, start.
    Reconfigure(serde_json::Value),
    /// Replace the agent by its snapshot read back.
    Snapshot,
}

fn a_price() -> impl proptest::strategy::Strategy<Value = Decimal> {
    prop_oneof![
        // Ordinary: cents around 100, so averages cross often.
        6 => (9_000i64..11_000).prop_map(|cents| Decimal::new(cents, 2)),
        // Any scale, up to 19 digits.
        2 => (1i64..=i64::MAX, 0u32..=28).prop_map(|(m, scale)| Decimal::new(m, scale)),
        // Up to 28-29 digits: sums that round.
        1 => (1i128..(1i128 << 96), 0u32..=28)
            .prop_map(|(m, scale)| Decimal::from_i128_with_scale(m, scale)),
        // Near the top of the range: sums and products that overflow.
        1 => (0i64..1000).prop_map(|k| Decimal::MAX - Decimal::from(k)),
        1 => (1i64..8).prop_map(|k| Decimal::MAX / Decimal::from(k)),
        // The smallest prices.
        1 => (1i64..1000).prop_map(|m| Decimal::new(m, 28)),
    ]
}

fn a_strategy() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    let sma = (1u32..5, 1u32..5).prop_map(|(fast, longer)| {
        json!({"kind": "sma_crossover", "params": {"fast": fast, "slow": fast + longer}})
    });
    let thresholds = [
        "2",
        "0.5",
        "10",
        "100",
        "250",
        "33.33333333333333333333333333",
        "0.0000000000000000000000000001",
    ];
    let mean_reversion = (2u32..7, proptest::sample::select(thresholds.to_vec())).prop_map(
        |(window, threshold)| {
            json!({"kind": "mean_reversion", "params": {"window": window, "threshold_pct": threshold}})
        },
    );
    prop_oneof![4 => sma, 4 => mean_reversion, 1 => Just(json!({"kind": "hold"}))]
}

fn a_step() -> impl proptest::strategy::Strategy<Value = Step> {
    prop_oneof![
        40 => a_price().prop_map(Step::Run),
        1 => Just(Step::Restart),
        1 => a_strategy().prop_map(Step::Reconfigure),
        1 => Just(Step::Snapshot),
    ]
}

/// Runs `command` through `Decider::execute` (which hands a run's strategy sums from deciding to applying) and, on a
/// copy, through `decide` then `evolve` of each event (which computes them again): both give the same events and the
/// same state, a refusal changing nothing. `Decider::execute_into` (the backtest's, with one buffer for every
/// command) appends the same events after those already in its buffer and leaves the buffer as it was on a refusal.
/// `Err` if it was refused.
fn handle(agent: &mut Agent, command: AgentCommand) -> Result<Vec<AgentEvent>, AgentError> {
    let mut stepwise = agent.clone();
    let decided = Decider::decide(&stepwise, command.clone());
    for event in decided.iter().flatten() {
        stepwise.evolve(event);
    }
    let mut buffered = agent.clone();
    let earlier = AgentEvent::AgentArchived {
        archived_at: DateTime::<Utc>::UNIX_EPOCH,
    };
    let mut buffer = vec![earlier.clone()];
    let into = buffered.execute_into(command.clone(), &mut buffer);
    let executed = agent.execute(command);
    assert_eq!(executed, decided);
    assert_eq!(*agent, stepwise);
    assert_eq!(buffered, stepwise);
    assert_eq!(buffer[0], earlier);
    match (&into, &executed) {
        (Ok(()), Ok(events)) => assert_eq!(&buffer[1..], &events[..]),
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert_eq!(buffer.len(), 1, "a refusal appends nothing");
        }
        _ => panic!("execute_into and execute disagree: {into:?} vs {executed:?}"),
    }
    executed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// At every bar, the run decides exactly what the definition says over the window plus the new price, through
    /// `RecordRun` (the command a backtest and paper trading send), then records it through `evolve`.
    #[test]
    fn incremental_signals_equal_the_definition_at_every_bar(
        first in a_strategy(),
        steps in proptest::collection::vec(a_step(), 1..300),
    ) {
        let mut agent = agent_with(first);
        let mut now = 100i64;
        for step in steps {
            match step {
                Step::Run(price) => {
                    let expected = defined(&agent, price).side();
                    prop_assert_eq!(incremental(&agent, price).0, expected);
                    let tick_no = agent.last_tick_no() + 1;
                    let slot = agent.tick_scheduled_at(tick_no).unwrap();
                    now = (slot - t(0)).num_seconds() + 1;
                    let run = AgentCommand::RecordRun {
                        session: agent.session(),
                        tick_no,
                        scheduled_at: slot,
                        started_at: slot,
                        completed_at: slot,
                        observation: Observation { symbol: btc(), price, observed_at: slot },
                        fill_model: FillModel::default(),
                        correlation_id: format!("tick-{tick_no}"),
                    };
                    match handle(&mut agent, run) {
                        Ok(events) => {
                            let AgentEvent::AgentRunRecorded { outcome, .. } = &events[0] else {
                                unreachable!("a run records itself first")
                            };
                            let side = match outcome {
                                RunOutcome::Signalled { side, .. } => Some(*side),
                                _ => None,
                            };
                            prop_assert_eq!(side, expected);
                            if let Some(AgentEvent::OrderPlaced { order_id, .. }) = events.get(1) {
                                let order_id = order_id.clone();
                                handle(&mut agent, AgentCommand::FillOrder { order_id, at: slot }).unwrap();
                            }
                        }
                        // Only an order too large for Decimal refuses a run here; the price is recorded anyway.
                        Err(error) => {
                            prop_assert!(expected.is_some(), "{error:?}");
                            observe(&mut agent, price);
                        }
                    }
                }
                Step::Restart => {
                    handle(&mut agent, AgentCommand::StopAgent { at: t(now), reason: "pause".into() }).unwrap();
                    now += 60;
                    handle(&mut agent, AgentCommand::StartAgent { at: t(now) }).unwrap();
                }
                Step::Reconfigure(strategy_json) => {
                    handle(&mut agent, AgentCommand::StopAgent { at: t(now), reason: "change".into() }).unwrap();
                    let (config, _) = AgentConfig {
                        strategy: strategy(strategy_json),
                        ..agent.config().unwrap().clone()
                    }
                    .normalized()
                    .unwrap();
                    agent.evolve(&updated(config));
                    now += 60;
                    handle(&mut agent, AgentCommand::StartAgent { at: t(now) }).unwrap();
                }
                Step::Snapshot => {
                    let restored: Agent =
                        serde_json::from_value(serde_json::to_value(&agent).unwrap()).unwrap();
                    prop_assert_eq!(&restored, &agent);
                    agent = restored;
                }
            }
        }
    }
}
