//! Paper trading end to end on the write side: the scheduler ticks, the runtime records runs and their orders, the
//! execution role fills them — and a crash at each step (after a run and its order commit, between placing and
//! filling, between filling and checkpointing) ends with exactly one order and one fill per signal, and the agent
//! ticking again. Written once against [`Env`], run on the memory adapters and on Postgres + NATS.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_commands::log::LoggedEvent;
use strom_commands::runtime::TickOutcome;
use strom_commands::scheduler::{AgentTick, SchedulerStats};
use strom_domain::fill::market_order;
use strom_domain::settle::{apply_fill, Position};
use strom_domain::{AgentEvent, RunOutcome};

use crate::support::{
    advance_to, fill_model, runtime_config, t, wait_for, wait_until_scheduling, Env, Role, DEADLINE,
};

/// Most ticks a case waits for the sma 1/2 agent to signal; on the seeded price path it turns within a few.
const MAX_TICKS: i64 = 40;

fn agent_event(event: &LoggedEvent) -> &AgentEvent {
    event.event.as_agent().expect("an Agent event")
}

pub fn order_id_of(event: &LoggedEvent) -> String {
    match agent_event(event) {
        AgentEvent::OrderPlaced { order_id, .. }
        | AgentEvent::OrderRejected { order_id, .. }
        | AgentEvent::OrderFilled { order_id, .. } => order_id.clone(),
        other => panic!("not an order event: {other:?}"),
    }
}

fn outcome_of(event: &LoggedEvent) -> RunOutcome {
    match agent_event(event) {
        AgentEvent::AgentRunRecorded { outcome, .. } => outcome.clone(),
        other => panic!("not a run: {other:?}"),
    }
}

/// Steps the clock a second at a time from `from`, waiting for each tick's run, until `agent` has placed an order;
/// returns the order id and the tick it was placed on.
async fn tick_until_placed(
    env: &Env,
    scheduler: &Role<SchedulerStats>,
    agent: &str,
    from: i64,
) -> (String, i64) {
    for second in from..from + MAX_TICKS {
        advance_to(env, scheduler, t(second)).await;
        env.wait_for_runs(agent, &[second as u64 + 1]).await;
        if let Some(placed) = env.events_of(agent, "OrderPlaced").await.last() {
            let id = order_id_of(placed);
            if id.ends_with(&format!("-{}", second + 1)) {
                return (id, second);
            }
        }
    }
    let decided: Vec<String> = env
        .logged()
        .await
        .iter()
        .filter(|e| e.aggregate_id == agent)
        .map(|e| format!("{:?}", e.event))
        .collect();
    panic!("{agent} placed no order within {MAX_TICKS} ticks: {decided:#?}");
}

/// Every order of `agent` checked against its own events: each signalled run has exactly one order event right after
/// it; each placed order exactly one fill, priced by the fill model over the order's own observation, by the
/// execution role; and the position the fills add up to is the one the agent's book holds.
async fn assert_orders_consistent(env: &Env, agent: &str) {
    let events: Vec<Arc<LoggedEvent>> = env
        .logged()
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == agent)
        .collect();
    let mut fills: BTreeMap<String, Vec<&LoggedEvent>> = BTreeMap::new();
    for event in &events {
        if event.event_type() == "OrderFilled" {
            fills.entry(order_id_of(event)).or_default().push(event);
        }
    }
    let mut position = Position::opening("10000".parse().unwrap());
    for (i, event) in events.iter().enumerate() {
        match agent_event(event) {
            AgentEvent::AgentRunRecorded {
                outcome: RunOutcome::Signalled { order_id, .. },
                ..
            } => {
                let next = events.get(i + 1).expect("the order follows its run");
                assert!(
                    matches!(next.event_type(), "OrderPlaced" | "OrderRejected"),
                    "{next:?}"
                );
                assert_eq!(&order_id_of(next), order_id);
                assert_eq!(next.position.tx_id, event.position.tx_id, "one commit");
            }
            AgentEvent::OrderPlaced {
                order_id,
                side,
                qty,
                observation,
                fill_model: recorded,
                ..
            } => {
                assert_eq!(recorded, &fill_model(), "the runtime's paper fill model");
                let filled = fills.get(order_id).map_or(&[][..], Vec::as_slice);
                assert_eq!(filled.len(), 1, "order {order_id} fills exactly once");
                let AgentEvent::OrderFilled {
                    price, qty: q, fee, ..
                } = agent_event(filled[0])
                else {
                    unreachable!()
                };
                let quote = market_order(recorded, *side, *qty, observation.price).unwrap();
                assert_eq!((*price, *q, *fee), (quote.price, quote.qty, quote.fee));
                assert_eq!(
                    filled[0].metadata.actor.as_deref(),
                    Some("system:execution")
                );
                assert_eq!(
                    filled[0].metadata.causation_id,
                    Some(event.event_id.to_string()),
                    "the fill names the order that caused it"
                );
                position = apply_fill(&position, &quote).unwrap();
            }
            _ => {}
        }
    }
    let (agent_state, _) = env.agents.load(agent).await.unwrap();
    assert_eq!(agent_state.book().position(), &position);
}

pub async fn placed_orders_fill_once_from_their_own_event_and_the_agent_trades_on(env: &Env) {
    let agent = env.create_trading_agent("BTC-USD").await;
    env.start(&agent).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 1).await;
    let worker = env.spawn_worker();
    let execution = env.spawn_execution();
    let mut from = 0;
    let mut filled = 0;
    while filled < 2 {
        let (order_id, at) = tick_until_placed(env, &scheduler, &agent, from).await;
        wait_for(&format!("{order_id} filled"), || async {
            env.events_of(&agent, "OrderFilled")
                .await
                .iter()
                .any(|e| order_id_of(e) == order_id)
        })
        .await;
        filled += 1;
        from = at + 1;
    }
    worker.stop().await;
    scheduler.stop().await;
    // A fill shows in the log before the instance counts it: read the counts once it has stopped.
    let counted = Arc::clone(&execution.execution);
    execution.stop().await;
    assert_eq!(counted.stats().filled, 2);
    assert_orders_consistent(env, &agent).await;
    let runs = env.events_of(&agent, "AgentRunRecorded").await;
    assert!(
        runs.iter()
            .all(|r| !matches!(outcome_of(r), RunOutcome::Skipped { .. })),
        "each fill came before the next tick, so no tick was skipped"
    );
}

pub async fn a_crash_after_a_run_and_its_order_commit_leaves_exactly_one_order_that_fills(
    env: &Env,
) {
    let agent = env.create_trading_agent("BTC-USD").await;
    env.start(&agent).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 1).await;
    // A worker that runs ticks by hand: it acks every tick until one places an order, then dies before acking that.
    let crashing = env.worker();
    let mut consumer = env
        .bus
        .consumer(runtime_config().consumer)
        .await
        .expect("runtime consumer");
    let mut crashed_on = None;
    for second in 0..MAX_TICKS {
        advance_to(env, &scheduler, t(second)).await;
        let delivery = consumer
            .next(DEADLINE)
            .await
            .unwrap()
            .expect("the tick just due");
        let tick = AgentTick::parse(&delivery.payload).unwrap();
        assert_eq!(crashing.run_tick(&tick).await, TickOutcome::Recorded);
        if env.events_of(&agent, "OrderPlaced").await.is_empty() {
            delivery.ack().await.unwrap();
        } else {
            drop(delivery);
            crashed_on = Some(second);
            break;
        }
    }
    drop(consumer);
    let crashed_on = crashed_on.expect("an order within the ticks");
    let placed = env.events_of(&agent, "OrderPlaced").await;
    assert_eq!(placed.len(), 1);
    let order_id = order_id_of(&placed[0]);

    // The restarted worker gets the unacked tick back, finds its run (and order) recorded, and acks it.
    let worker = env.spawn_worker();
    wait_for("the redelivered tick acked as already run", || async {
        worker.stats.snapshot().already_run == 1
    })
    .await;
    let execution = env.spawn_execution();
    wait_for(&format!("{order_id} filled"), || async {
        !env.events_of(&agent, "OrderFilled").await.is_empty()
    })
    .await;
    // And the agent ticks on: the next run is decided, not skipped.
    advance_to(env, &scheduler, t(crashed_on + 1)).await;
    env.wait_for_runs(&agent, &[crashed_on as u64 + 2]).await;
    worker.stop().await;
    execution.stop().await;
    scheduler.stop().await;
    let runs = env.events_of(&agent, "AgentRunRecorded").await;
    assert!(!matches!(
        outcome_of(runs.last().unwrap()),
        RunOutcome::Skipped { .. }
    ));
    assert_eq!(env.events_of(&agent, "OrderPlaced").await.len(), 1);
    assert_orders_consistent(env, &agent).await;
}

pub async fn an_execution_outage_skips_ticks_and_fills_every_order_when_it_returns(env: &Env) {
    let agent = env.create_trading_agent("BTC-USD").await;
    env.start(&agent).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 1).await;
    let worker = env.spawn_worker();
    // No execution role: the order waits, and every tick of the next minute is recorded as skipped.
    let (order_id, placed_on) = tick_until_placed(env, &scheduler, &agent, 0).await;
    let outage = 60;
    for second in placed_on + 1..=placed_on + outage {
        advance_to(env, &scheduler, t(second)).await;
        env.wait_for_runs(&agent, &[second as u64 + 1]).await;
    }
    let runs = env.events_of(&agent, "AgentRunRecorded").await;
    let skipped: Vec<RunOutcome> = runs[runs.len() - outage as usize..]
        .iter()
        .map(|r| outcome_of(r))
        .collect();
    assert_eq!(
        skipped,
        vec![
            RunOutcome::Skipped {
                order_id: order_id.clone()
            };
            outage as usize
        ]
    );
    assert!(env.events_of(&agent, "OrderFilled").await.is_empty());

    // Execution returns: the order fills and the agent decides again.
    let execution = env.spawn_execution();
    wait_for(&format!("{order_id} filled"), || async {
        !env.events_of(&agent, "OrderFilled").await.is_empty()
    })
    .await;
    let next = placed_on + outage + 1;
    advance_to(env, &scheduler, t(next)).await;
    env.wait_for_runs(&agent, &[next as u64 + 1]).await;
    let runs = env.events_of(&agent, "AgentRunRecorded").await;
    assert!(!matches!(
        outcome_of(runs.last().unwrap()),
        RunOutcome::Skipped { .. }
    ));
    worker.stop().await;
    execution.stop().await;
    scheduler.stop().await;
    assert_orders_consistent(env, &agent).await;
}

pub async fn a_fill_committed_but_not_checkpointed_is_not_filled_again(env: &Env) {
    let agent = env.create_trading_agent("BTC-USD").await;
    env.start(&agent).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 1).await;
    let worker = env.spawn_worker();
    let (order_id, placed_on) = tick_until_placed(env, &scheduler, &agent, 0).await;

    // An execution instance fills the page, then dies before saving its checkpoint.
    let doomed = env.execution();
    let mut active = doomed
        .try_activate()
        .await
        .unwrap()
        .expect("no other instance");
    loop {
        let page = active.handle_next_page().await.unwrap();
        if page.is_none() || !env.events_of(&agent, "OrderFilled").await.is_empty() {
            break;
        }
    }
    assert_eq!(doomed.stats().filled, 1);
    drop(active);
    drop(doomed);

    // Its successor handles the same events again: the fill is refused as already settled, not repeated.
    let successor = env.spawn_execution();
    wait_for("the order found already filled", || async {
        successor.execution.stats().already_settled >= 1
    })
    .await;
    assert_eq!(successor.execution.stats().filled, 0);
    // The agent trades on, and its next order fills once too.
    let (next_order, _) = tick_until_placed(env, &scheduler, &agent, placed_on + 1).await;
    assert_ne!(next_order, order_id);
    wait_for(&format!("{next_order} filled"), || async {
        env.events_of(&agent, "OrderFilled").await.len() == 2
    })
    .await;
    worker.stop().await;
    successor.stop().await;
    scheduler.stop().await;
    assert_orders_consistent(env, &agent).await;
}
