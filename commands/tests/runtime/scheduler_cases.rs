//! Scheduler cases, written once against [`Env`] and run on the memory adapters and on Postgres + NATS.

use strom_commands::scheduler::{tick_msg_id, AgentTick};

use crate::support::{advance_to, t, wait_for, wait_until_scheduling, Env, Probe};

fn summary(ticks: &[AgentTick]) -> Vec<(String, u64, u64, i64)> {
    ticks
        .iter()
        .map(|tick| {
            (
                tick.agent_id.clone(),
                tick.session,
                tick.tick_no,
                (tick.scheduled_at - t(0)).num_seconds(),
            )
        })
        .collect()
}

pub async fn a_running_agent_ticks_at_its_frequency_and_stopped_or_archived_ones_never(env: &Env) {
    let every_2s = env.create_agent("BTC-USD", 2).await;
    let _never_started = env.create_agent("BTC-USD", 1).await;
    let archived = env.create_agent("ETH-USD", 1).await;
    env.start(&archived).await;
    env.stop(&archived).await;
    env.archive(&archived).await;
    env.start(&every_2s).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 1).await;
    let mut probe = Probe::open(env).await;

    let mut ticks = Vec::new();
    for second in 0..=6 {
        advance_to(env, &scheduler, t(second)).await;
        ticks.extend(probe.drain(env).await);
    }
    assert_eq!(
        summary(&ticks),
        vec![
            (every_2s.clone(), 1, 1, 0),
            (every_2s.clone(), 1, 2, 2),
            (every_2s.clone(), 1, 3, 4),
            (every_2s.clone(), 1, 4, 6),
        ],
        "only the running agent ticks, every 2 s from its start, numbered from 1"
    );
    for (msg_id, tick) in &probe.seen {
        assert_eq!(
            msg_id,
            &tick_msg_id(&tick.agent_id, tick.session, tick.tick_no)
        );
        assert_eq!(
            tick.emitted_at, tick.scheduled_at,
            "the manual clock sat on the due second"
        );
    }
    let counts = scheduler.counts();
    assert_eq!(
        (counts.emitted, counts.skipped, counts.duplicates),
        (4, 0, 0)
    );
    assert_eq!(counts.running_agents, 1);
    assert!(counts.active);
    scheduler.stop().await;
}

pub async fn a_start_begins_ticking_at_the_next_tick_and_a_stop_ends_it(env: &Env) {
    let agent = env.create_agent("BTC-USD", 3).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 0).await;
    let mut probe = Probe::open(env).await;
    advance_to(env, &scheduler, t(5)).await;
    assert!(
        probe.drain(env).await.is_empty(),
        "a stopped agent gets no ticks"
    );

    // Started at 5 s: tick 1 is due at once, tick 2 at 8 s.
    env.start(&agent).await;
    wait_for("the scheduler to see the start", || async {
        scheduler.counts().running_agents == 1
    })
    .await;
    advance_to(env, &scheduler, t(5)).await;
    wait_for("tick 1", || async { env.ticks_stored().await == 1 }).await;
    assert_eq!(
        summary(&probe.drain(env).await),
        vec![(agent.clone(), 1, 1, 5)]
    );
    advance_to(env, &scheduler, t(7)).await;
    assert!(
        probe.drain(env).await.is_empty(),
        "tick 2 is not due before 8 s"
    );
    advance_to(env, &scheduler, t(8)).await;
    assert_eq!(
        summary(&probe.drain(env).await),
        vec![(agent.clone(), 1, 2, 8)]
    );

    // Stopped at 9 s: tick 3 (due at 11 s) never comes.
    env.clock.set(t(9));
    env.stop(&agent).await;
    wait_for("the scheduler to see the stop", || async {
        scheduler.counts().running_agents == 0
    })
    .await;
    advance_to(env, &scheduler, t(20)).await;
    assert!(probe.drain(env).await.is_empty(), "no tick after the stop");

    // A new session counts from 1 again at its own start.
    env.start(&agent).await;
    wait_for("tick 1 of session 2", || async {
        env.ticks_stored().await == 1
    })
    .await;
    assert_eq!(
        summary(&probe.drain(env).await),
        vec![(agent.clone(), 2, 1, 20)]
    );
    advance_to(env, &scheduler, t(23)).await;
    assert_eq!(
        summary(&probe.drain(env).await),
        vec![(agent.clone(), 2, 2, 23)]
    );
    scheduler.stop().await;
}

pub async fn a_restarted_scheduler_does_not_double_tick(env: &Env) {
    let agent = env.create_agent("BTC-USD", 1).await;
    env.start(&agent).await;
    let first = env.spawn_scheduler();
    wait_until_scheduling(&first, 1).await;
    let mut probe = Probe::open(env).await;
    for second in 0..=2 {
        advance_to(env, &first, t(second)).await;
    }
    first.stop().await;

    // Same clock, same bus: the new instance plans tick 3 again, and JetStream drops the copy.
    let second = env.spawn_scheduler();
    wait_until_scheduling(&second, 1).await;
    advance_to(env, &second, t(2)).await;
    assert_eq!(second.counts().emitted, 0);
    assert_eq!(
        second.counts().duplicates,
        1,
        "tick 3 was published again and deduplicated"
    );
    advance_to(env, &second, t(3)).await;
    assert_eq!(second.counts().emitted, 1);
    second.stop().await;

    let ticks = probe.drain(env).await;
    assert_eq!(
        ticks.iter().map(|t| t.tick_no).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let distinct: std::collections::BTreeSet<_> = probe.seen.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), probe.seen.len(), "no msg id twice");
    assert_eq!(
        env.ticks_ever_stored().await,
        4,
        "the stream stored each tick once"
    );
}
