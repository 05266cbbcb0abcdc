//! The Agent's orders and book: a signal records its order in the same commit, risk reads the agent's own book,
//! the settle barrier skips ticks while an order waits, and a fill is priced from its order's event alone.

use super::*;
use crate::check::MAX_REJECT_REASON_CHARS;

fn order_id(session: u64, tick_no: u64) -> String {
    format!("{AGENT_ID}-{session}-{tick_no}")
}

/// An sma 1/2 agent that has seen 10, 10: a rise signals a buy, a fall a sell.
fn primed(config_change: impl FnOnce(&mut AgentConfig)) -> Vec<AgentEvent> {
    let mut config = config();
    config.strategy =
        strategy(json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "2"}}));
    config_change(&mut config);
    vec![
        created_with(config),
        started(1, 100),
        run_recorded(1, 1, dec!(10), RunOutcome::Observed),
        run_recorded(1, 2, dec!(10), RunOutcome::Observed),
    ]
}

fn filled(session: u64, tick_no: u64, side: Side, qty: Decimal, price: Decimal) -> AgentEvent {
    let slot = 100 + (tick_no as i64 - 1) * 60;
    AgentEvent::OrderFilled {
        order_id: order_id(session, tick_no),
        side,
        qty,
        price,
        fee: dec!(0),
        filled_at: t(slot + 2),
    }
}

fn fill(session: u64, tick_no: u64) -> AgentCommand {
    let slot = 100 + (tick_no as i64 - 1) * 60;
    AgentCommand::FillOrder {
        order_id: order_id(session, tick_no),
        at: t(slot + 2),
    }
}

fn state_after(events: &[AgentEvent]) -> Agent {
    let mut agent = Agent::default();
    for event in events {
        agent.evolve(event);
    }
    agent
}

#[test]
fn a_signal_the_risk_rules_refuse_is_recorded_with_its_code_and_numbers() {
    // Nothing held: the first signal is a sell (10, 10, 9).
    let events = state_after(&primed(|_| {}))
        .decide(record_run(1, 3, dec!(9)))
        .unwrap();
    assert_eq!(
        events[0],
        run_recorded(1, 3, dec!(9), signalled(1, 3, Side::Sell, dec!(2)))
    );
    let AgentEvent::OrderRejected {
        order_id: id,
        reason_code,
        reason,
        rejected_at,
        ..
    } = &events[1]
    else {
        panic!("{events:?}");
    };
    assert_eq!(id, &order_id(1, 3));
    assert_eq!(*reason_code, RiskCode::InsufficientPosition);
    assert_eq!(reason, "sell qty 2 exceeds position 0 (long-only)");
    assert_eq!(*rejected_at, t(221));
    assert_eq!(events.len(), 2);
    // A rejection leaves nothing open: the next signal is decided.
    let mut agent = state_after(&primed(|_| {}));
    for event in &events {
        agent.evolve(event);
    }
    assert!(agent.book().open_order().is_none());
    let next = agent.decide(record_run(1, 4, dec!(12))).unwrap();
    assert!(
        matches!(next[1], AgentEvent::OrderPlaced { .. }),
        "{next:?}"
    );
}

#[test]
fn risk_reads_the_agents_own_position_and_cash() {
    // 1000 cash buys 2 at 12 (24); a 2-unit position cap refuses the next buy; the cash never goes below 0.
    let mut given = primed(|c| {
        c.starting_cash = dec!(30);
        c.risk.max_position_qty = dec!(2);
    });
    given.push(run_recorded(
        1,
        3,
        dec!(12),
        signalled(1, 3, Side::Buy, dec!(2)),
    ));
    given.push(placed(1, 3, Side::Buy, dec!(2), dec!(12)));
    given.push(filled(1, 3, Side::Buy, dec!(2), dec!(12)));
    let agent = state_after(&given);
    assert_eq!(agent.book().position().qty, dec!(2));
    assert_eq!(agent.book().position().cash, dec!(6));
    given.push(run_recorded(
        1,
        4,
        dec!(11),
        signalled(1, 4, Side::Sell, dec!(2)),
    ));
    given.push(placed(1, 4, Side::Sell, dec!(2), dec!(11)));
    given.push(filled(1, 4, Side::Sell, dec!(2), dec!(11)));
    let agent = state_after(&given);
    // Sold at a loss of 2: 28 cash, flat, realized −2.
    assert_eq!(
        (
            agent.book().position().qty,
            agent.book().position().cash,
            agent.book().position().realized_pnl
        ),
        (dec!(0), dec!(28), dec!(-2))
    );
    // 15 × 2 = 30 > 28 cash.
    let events = agent.decide(record_run(1, 5, dec!(15))).unwrap();
    let AgentEvent::OrderRejected {
        reason_code,
        reason,
        ..
    } = &events[1]
    else {
        panic!("{events:?}");
    };
    assert_eq!(*reason_code, RiskCode::InsufficientCash);
    assert_eq!(reason, "cost 30 (incl. fee 0) exceeds cash 28");
}

#[test]
fn while_an_order_waits_for_its_fill_the_next_tick_is_skipped_and_still_observed() {
    let mut given = primed(|_| {});
    given.push(run_recorded(
        1,
        3,
        dec!(12),
        signalled(1, 3, Side::Buy, dec!(2)),
    ));
    given.push(placed(1, 3, Side::Buy, dec!(2), dec!(12)));
    let agent = state_after(&given);
    assert_eq!(
        agent.book().open_order().map(|o| o.order_id.clone()),
        Some(order_id(1, 3))
    );
    // 12 → 9 would signal a sell; the open order holds the strategy back.
    let events = agent.decide(record_run(1, 4, dec!(9))).unwrap();
    assert_eq!(
        events,
        vec![run_recorded(
            1,
            4,
            dec!(9),
            RunOutcome::Skipped {
                order_id: order_id(1, 3)
            }
        )]
    );
    let mut agent = agent;
    agent.evolve(&events[0]);
    assert_eq!(agent.last_tick_no(), 4);
    assert_eq!(agent.window().back(), Some(&dec!(9)));
    // Filled, the barrier lifts: 9 → 10 rises again and buys.
    agent.evolve(&filled(1, 3, Side::Buy, dec!(2), dec!(12)));
    let next = agent.decide(record_run(1, 5, dec!(10))).unwrap();
    assert_eq!(next[1], placed(1, 5, Side::Buy, dec!(2), dec!(10)));
}

#[test]
fn a_fill_is_priced_from_its_orders_own_observation_and_fill_model() {
    let mut given = primed(|_| {});
    given.push(run_recorded(
        1,
        3,
        dec!(12),
        signalled(1, 3, Side::Buy, dec!(2)),
    ));
    let mut order = placed(1, 3, Side::Buy, dec!(2), dec!(12));
    if let AgentEvent::OrderPlaced { fill_model, .. } = &mut order {
        *fill_model = FillModel {
            slippage_bps: dec!(50),
            fee_bps: dec!(10),
        };
    }
    given.push(order);
    // Later prices do not move the fill.
    given.push(run_recorded(
        1,
        4,
        dec!(500),
        RunOutcome::Skipped {
            order_id: order_id(1, 3),
        },
    ));
    agent()
        .given(given.clone())
        .when(fill(1, 3))
        .then_expect_events(vec![AgentEvent::OrderFilled {
            order_id: order_id(1, 3),
            side: Side::Buy,
            qty: dec!(2),
            // 12 × 1.005 = 12.06; fee 24.12 × 0.001 = 0.02412.
            price: dec!(12.06),
            fee: dec!(0.02412),
            filled_at: t(222),
        }]);
    let mut agent = state_after(&given);
    for event in agent.decide(fill(1, 3)).unwrap() {
        agent.evolve(&event);
    }
    let position = agent.book().position();
    assert_eq!(
        (
            position.qty,
            position.cost_basis,
            position.cash,
            position.fees
        ),
        (dec!(2), dec!(24.12), dec!(9975.85588), dec!(0.02412))
    );
    assert!(agent.book().open_order().is_none());
}

#[test]
fn filling_twice_or_an_order_that_is_not_open_is_refused_as_order_not_open() {
    let mut given = primed(|_| {});
    given.push(run_recorded(
        1,
        3,
        dec!(12),
        signalled(1, 3, Side::Buy, dec!(2)),
    ));
    given.push(placed(1, 3, Side::Buy, dec!(2), dec!(12)));
    let not_open = |id: String| {
        move |error: AgentError| {
            assert_eq!(
                error,
                AgentError::OrderNotOpen {
                    order_id: id.clone()
                }
            );
            assert_eq!(error.code(), "order_not_open");
        }
    };
    expect_error(given.clone(), fill(1, 2), not_open(order_id(1, 2)));
    let mut redelivered = given.clone();
    redelivered.push(filled(1, 3, Side::Buy, dec!(2), dec!(12)));
    expect_error(redelivered, fill(1, 3), not_open(order_id(1, 3)));
    // A rejected order never fills.
    let mut rejected = primed(|_| {});
    let events = state_after(&rejected)
        .decide(record_run(1, 3, dec!(9)))
        .unwrap();
    rejected.extend(events);
    expect_error(rejected, fill(1, 3), not_open(order_id(1, 3)));
}

#[test]
fn an_order_placed_before_a_stop_still_fills_and_its_fill_is_never_before_it() {
    let mut given = primed(|_| {});
    given.push(run_recorded(
        1,
        3,
        dec!(12),
        signalled(1, 3, Side::Buy, dec!(2)),
    ));
    given.push(placed(1, 3, Side::Buy, dec!(2), dec!(12)));
    given.push(stopped(1, 230));
    let events = state_after(&given)
        .decide(AgentCommand::FillOrder {
            order_id: order_id(1, 3),
            at: t(0),
        })
        .unwrap();
    let AgentEvent::OrderFilled { filled_at, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(*filled_at, t(161 + 60), "clamped to placed_at");
}

#[test]
fn buys_stop_once_the_days_loss_exceeds_max_daily_loss_and_resume_the_next_utc_day() {
    // Bought 2 at 12 with a 1-unit daily loss limit; at 11 the day is down 2.
    let mut given = primed(|c| c.risk.max_daily_loss = Some(dec!(1)));
    given.push(run_recorded(
        1,
        3,
        dec!(12),
        signalled(1, 3, Side::Buy, dec!(2)),
    ));
    given.push(placed(1, 3, Side::Buy, dec!(2), dec!(12)));
    given.push(filled(1, 3, Side::Buy, dec!(2), dec!(12)));
    given.push(run_recorded(
        1,
        4,
        dec!(11),
        signalled(1, 4, Side::Sell, dec!(2)),
    ));
    given.push(placed(1, 4, Side::Sell, dec!(2), dec!(11)));
    given.push(filled(1, 4, Side::Sell, dec!(2), dec!(11)));
    let agent = state_after(&given);
    let events = agent.decide(record_run(1, 5, dec!(12))).unwrap();
    let AgentEvent::OrderRejected {
        reason_code,
        reason,
        ..
    } = &events[1]
    else {
        panic!("{events:?}");
    };
    assert_eq!(*reason_code, RiskCode::MaxDailyLossExceeded);
    assert_eq!(
        reason,
        "loss 2 since the UTC day's first run exceeds max_daily_loss 1"
    );
    // The first run of the next UTC day opens the day at its own equity: buys are allowed again.
    let mut agent = agent;
    for event in &events {
        agent.evolve(event);
    }
    let next_day = 24 * 60 + 1; // tick whose slot is past midnight after t(100)
    let tick_no = next_day as u64;
    let slot = 100 + (next_day - 1) * 60;
    let command = AgentCommand::RecordRun {
        session: 1,
        tick_no,
        scheduled_at: t(slot),
        started_at: t(slot),
        completed_at: t(slot + 1),
        observation: observation(dec!(11), slot),
        fill_model: FillModel::default(),
        correlation_id: "next-day".into(),
    };
    assert_ne!(t(slot).date_naive(), t(100).date_naive());
    let mut falling = agent.clone();
    falling.evolve(&run_recorded(1, 6, dec!(10), RunOutcome::Observed));
    let events = falling.decide(command).unwrap();
    assert!(
        matches!(events[1], AgentEvent::OrderPlaced { .. }),
        "{events:?}"
    );
}

#[test]
fn the_book_opens_with_the_starting_cash_chosen_before_the_first_start() {
    let mut given = vec![created()];
    let agent = state_after(&given);
    assert_eq!(agent.book().position().cash, dec!(10000));
    let patch: AgentConfigPatch = serde_json::from_value(json!({"starting_cash": "250"})).unwrap();
    let events = agent
        .decide(AgentCommand::UpdateAgentConfig { patch, at: t(5) })
        .unwrap();
    given.extend(events);
    assert_eq!(state_after(&given).book().position().cash, dec!(250));
}

#[test]
fn a_run_with_an_invalid_fill_model_is_refused() {
    let AgentCommand::RecordRun {
        session,
        tick_no,
        scheduled_at,
        started_at,
        completed_at,
        observation,
        correlation_id,
        ..
    } = record_run(1, 3, dec!(12))
    else {
        unreachable!()
    };
    let command = AgentCommand::RecordRun {
        session,
        tick_no,
        scheduled_at,
        started_at,
        completed_at,
        observation,
        fill_model: FillModel {
            slippage_bps: dec!(0),
            fee_bps: dec!(10000),
        },
        correlation_id,
    };
    expect_error(primed(|_| {}), command, invalid("fill_model.fee_bps"));
}

#[test]
fn a_rejection_reason_stays_within_its_bound() {
    let mut given = primed(|c| {
        c.starting_cash = Decimal::new(1, 28);
        c.risk.max_position_qty = dec!(1000000000000000);
        c.risk.max_order_qty = dec!(1000000000000000);
        c.risk.max_notional = Decimal::MAX;
    });
    given.truncate(2);
    for tick in 1..=2 {
        given.push(run_recorded(
            1,
            tick,
            dec!(1.1111111111111111111111111),
            RunOutcome::Observed,
        ));
    }
    let events = state_after(&given)
        .decide(record_run(1, 3, dec!(7922816251426.4337593543950335)))
        .unwrap();
    let AgentEvent::OrderRejected { reason, .. } = &events[1] else {
        panic!("{events:?}");
    };
    assert!(
        reason.chars().count() <= MAX_REJECT_REASON_CHARS,
        "{reason}"
    );
}
