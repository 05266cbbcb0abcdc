//! Runtime worker cases (with the scheduler feeding them where ticks should be real), written once against [`Env`]
//! and run on the memory adapters and on Postgres + NATS.

use std::collections::BTreeMap;

use strom_commands::runtime::{RuntimeCounts, RuntimeStats, TickOutcome};
use strom_commands::scheduler::{tick_msg_id, AgentTick};
use strom_domain::AgentEvent;
use strom_sim::PricePath;

use crate::support::{
    advance_to, runtime_config, t, wait_for, wait_until_scheduling, Env, Role, DEADLINE, SIM_SEED,
    TEST_ACK_WAIT,
};

fn total(workers: &[RuntimeCounts]) -> RuntimeCounts {
    workers
        .iter()
        .fold(RuntimeCounts::default(), |sum, c| RuntimeCounts {
            recorded: sum.recorded + c.recorded,
            already_run: sum.already_run + c.already_run,
            not_running: sum.not_running + c.not_running,
            retried: sum.retried + c.retried,
            dropped: sum.dropped + c.dropped,
        })
}

/// Stops the workers and reads their counts: a run shows in the log before its worker counts it, so counts read
/// while a worker still runs can miss its last run.
async fn stop_and_count(workers: Vec<Role<RuntimeStats>>) -> Vec<RuntimeCounts> {
    let mut counts = Vec::new();
    for worker in workers {
        let stats = worker.stats.clone();
        worker.stop().await;
        counts.push(stats.snapshot());
    }
    counts
}

/// Checks the log holds exactly one run per tick 1..=`last` of session 1 for each agent.
async fn assert_each_tick_recorded_once(env: &Env, agents: &[String], last: u64) {
    for agent in agents {
        let mut per_tick: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for key in env.run_ticks(agent).await {
            *per_tick.entry(key).or_default() += 1;
        }
        let expected: BTreeMap<(u64, u64), usize> = (1..=last).map(|n| ((1, n), 1)).collect();
        assert_eq!(
            per_tick, expected,
            "runs of {agent}: one AgentRunRecorded per tick"
        );
    }
}

pub async fn two_workers_and_crashes_record_every_tick_exactly_once(env: &Env) {
    let mut agents = Vec::new();
    for _ in 0..3 {
        let agent = env.create_agent("BTC-USD", 1).await;
        env.start(&agent).await;
        agents.push(agent);
    }
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 3).await;
    let (w1, w2) = (env.spawn_worker(), env.spawn_worker());
    // Ticks of one agent come a second apart; each is run before the next is due.
    for second in 0..=2 {
        advance_to(env, &scheduler, t(second)).await;
        for agent in &agents {
            env.wait_for_runs(agent, &[second as u64 + 1]).await;
        }
    }
    let mut finished = stop_and_count(vec![w1, w2]).await;
    let phase_one = total(&finished);
    assert_eq!(phase_one.recorded, 9);

    // Tick 4 while no worker runs; then a worker crashes twice: once after committing a run but before acking
    // it, once before doing anything.
    advance_to(env, &scheduler, t(3)).await;
    let crashing = env.worker();
    let mut handle = env
        .bus
        .consumer(runtime_config().consumer)
        .await
        .expect("runtime consumer");
    let committed = handle
        .next(DEADLINE)
        .await
        .unwrap()
        .expect("tick 4 of an agent");
    let tick = AgentTick::parse(&committed.payload).unwrap();
    assert_eq!(tick.tick_no, 4);
    assert_eq!(crashing.run_tick(&tick).await, TickOutcome::Recorded);
    drop(committed);
    let abandoned = handle
        .next(DEADLINE)
        .await
        .unwrap()
        .expect("tick 4 of another agent");
    drop(abandoned);
    drop(handle);

    // Restarted workers get the unacked ticks back after the ack wait (before tick 5 is due: a redelivery after a
    // later tick of its agent ran would be refused as already run), then go on with ticks 5 and 6.
    let (w3, w4) = (env.spawn_worker(), env.spawn_worker());
    for agent in &agents {
        env.wait_for_runs(agent, &[4]).await;
    }
    for second in 4..=5 {
        advance_to(env, &scheduler, t(second)).await;
        for agent in &agents {
            env.wait_for_runs(agent, &[second as u64 + 1]).await;
        }
    }
    wait_for("every tick acked", || async {
        env.ticks_stored().await == 0
    })
    .await;
    finished.extend(stop_and_count(vec![w3, w4]).await);
    scheduler.stop().await;

    assert_each_tick_recorded_once(env, &agents, 6).await;
    let sum = total(&finished);
    assert_eq!(
        sum.recorded + 1,
        18,
        "each tick recorded once, by a worker or (tick 4 of one agent) by the crashed one: {finished:?}"
    );
    assert!(
        sum.already_run >= 1,
        "the redelivered committed tick was ignored: {finished:?}"
    );
    assert_eq!((sum.not_running, sum.dropped), (0, 0), "{finished:?}");
}

pub async fn a_tick_for_a_stopped_or_unknown_agent_is_acked_and_ignored(env: &Env) {
    let agent = env.create_agent("BTC-USD", 1).await;
    env.start(&agent).await;
    env.clock.set(t(1));
    env.stop(&agent).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for agent_id in [&agent, &unknown] {
        let tick = AgentTick {
            agent_id: agent_id.clone(),
            session: 1,
            tick_no: 1,
            scheduled_at: t(0),
            emitted_at: t(0),
            correlation_id: "corr-1".into(),
        };
        env.publish_raw_tick(agent_id, &tick.msg_id(), tick.to_json())
            .await;
    }
    let worker = env.spawn_worker();
    wait_for("both ticks ignored", || async {
        worker.stats.snapshot().not_running == 2
    })
    .await;
    wait_for("both ticks acked", || async {
        env.ticks_stored().await == 0
    })
    .await;
    worker.stop().await;
    assert!(env.run_ticks(&agent).await.is_empty());
}

pub async fn a_malformed_tick_is_terminated_not_retried(env: &Env) {
    let agent = uuid::Uuid::new_v4().to_string();
    env.publish_raw_tick(&agent, "bad/1/1", b"{not json".to_vec())
        .await;
    let elsewhere = AgentTick {
        agent_id: uuid::Uuid::new_v4().to_string(),
        session: 1,
        tick_no: 1,
        scheduled_at: t(0),
        emitted_at: t(0),
        correlation_id: "corr-1".into(),
    };
    env.publish_raw_tick(&agent, "bad/1/2", elsewhere.to_json())
        .await;
    let worker = env.spawn_worker();
    wait_for("both ticks terminated", || async {
        worker.stats.snapshot().dropped == 2
    })
    .await;
    // Terminated messages leave the work queue, so nothing can bring them back.
    wait_for("the ticks gone from the stream", || async {
        env.ticks_stored().await == 0
    })
    .await;
    // Absence needs a window: twice the ack wait, after which any redelivery would have happened.
    tokio::time::sleep(TEST_ACK_WAIT * 2).await;
    let counts = worker.stats.snapshot();
    worker.stop().await;
    assert_eq!(
        counts,
        RuntimeCounts {
            dropped: 2,
            ..Default::default()
        },
        "nothing was redelivered"
    );
}

pub async fn the_run_observes_the_simulated_price_at_the_scheduled_time(env: &Env) {
    let agent = env.create_agent("ETH-USD", 5).await;
    env.start(&agent).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 1).await;
    let worker = env.spawn_worker();
    advance_to(env, &scheduler, t(0)).await;
    env.wait_for_runs(&agent, &[1]).await;
    advance_to(env, &scheduler, t(7)).await;
    env.wait_for_runs(&agent, &[2]).await;
    worker.stop().await;
    scheduler.stop().await;

    let path = PricePath::new(SIM_SEED);
    let runs = env.runs(&agent).await;
    assert_eq!(runs.len(), 2);
    for (event, logged) in runs {
        let AgentEvent::AgentRunRecorded {
            tick_no,
            scheduled_at,
            observation,
            correlation_id,
            ..
        } = event
        else {
            unreachable!("runs() returns runs")
        };
        assert_eq!(scheduled_at, t(5 * (tick_no as i64 - 1)));
        assert_eq!(observation.symbol.as_str(), "ETH-USD");
        assert_eq!(
            observation.observed_at, scheduled_at,
            "observed at the due time, not when the worker ran"
        );
        assert_eq!(
            observation.price,
            path.price_at("ETH-USD", scheduled_at.timestamp())
        );
        assert_eq!(logged.metadata.actor.as_deref(), Some("system:runtime"));
        assert_eq!(logged.correlation_id(), Some(correlation_id.as_str()));
        assert_eq!(
            logged.metadata.causation_id,
            Some(tick_msg_id(&agent, 1, tick_no)),
            "the run names the tick that caused it"
        );
    }
}

pub async fn after_downtime_only_the_latest_due_tick_runs(env: &Env) {
    let agent = env.create_agent("BTC-USD", 1).await;
    env.start(&agent).await;
    let worker = env.spawn_worker();
    let first = env.spawn_scheduler();
    wait_until_scheduling(&first, 1).await;
    for second in 0..=1 {
        advance_to(env, &first, t(second)).await;
    }
    env.wait_for_runs(&agent, &[1, 2]).await;
    first.stop().await;

    // Down from 1 s to 6 s: ticks 3..=6 are lost to the downtime, tick 7 is the one due now.
    let second = env.spawn_scheduler();
    wait_until_scheduling(&second, 1).await;
    advance_to(env, &second, t(6)).await;
    env.wait_for_runs(&agent, &[7]).await;
    let counts = second.counts();
    second.stop().await;
    worker.stop().await;
    assert_eq!(counts.skipped, 4);
    assert_eq!(counts.emitted, 1);
    assert_eq!(env.run_ticks(&agent).await, vec![(1, 1), (1, 2), (1, 7)]);
    assert_eq!(tick_msg_id(&agent, 1, 7), format!("{agent}/1/7"));
}
