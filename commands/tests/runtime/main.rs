//! Scheduler and runtime worker tests. Every case in `scheduler_cases` and `worker_cases` runs twice: on the memory
//! adapters (tokio's clock paused, so ack waits pass instantly) and on real Postgres (`STROM_TEST_DATABASE_URL`, a
//! schema per test) + NATS JetStream (`STROM_TEST_NATS_URL`, a prefix per test). Time is a manual clock the test
//! moves; conditions are awaited with bounded polling. Leadership is Postgres-only and tested here directly.

mod execution_cases;
mod risk_cases;
mod scheduler_cases;
mod support;
mod worker_cases;

#[path = "../store/support.rs"]
#[allow(dead_code)]
mod store_support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use strom_commands::log::{EventEnvelope, EventLog, LogPosition, LoggedEvent, StoreError};
use support::{advance_to, t, wait_for, wait_until_scheduling, Env, Probe};

/// Declares each case once per environment: `memory::<case>` and `real::<case>`.
macro_rules! both {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $case() {
                    let env = crate::support::Env::memory().await;
                    crate::$module::$case(&env).await;
                    env.finish().await;
                }
            )*
        }
        mod real {
            $(
                #[tokio::test]
                async fn $case() {
                    let env = crate::support::Env::real().await;
                    crate::$module::$case(&env).await;
                    env.finish().await;
                }
            )*
        }
    };
}

both!(
    scheduler_cases::a_running_agent_ticks_at_its_frequency_and_stopped_or_archived_ones_never,
    scheduler_cases::a_start_begins_ticking_at_the_next_tick_and_a_stop_ends_it,
    scheduler_cases::a_restarted_scheduler_does_not_double_tick,
    worker_cases::two_workers_and_crashes_record_every_tick_exactly_once,
    worker_cases::a_tick_for_a_stopped_or_unknown_agent_is_acked_and_ignored,
    worker_cases::a_malformed_tick_is_terminated_not_retried,
    worker_cases::the_run_observes_the_simulated_price_at_the_scheduled_time,
    worker_cases::after_downtime_only_the_latest_due_tick_runs,
    execution_cases::placed_orders_fill_once_from_their_own_event_and_the_agent_trades_on,
    execution_cases::a_crash_after_a_run_and_its_order_commit_leaves_exactly_one_order_that_fills,
    execution_cases::an_execution_outage_skips_ticks_and_fills_every_order_when_it_returns,
    execution_cases::a_fill_committed_but_not_checkpointed_is_not_filled_again,
    risk_cases::every_risk_rule_refuses_an_order_through_the_running_system,
);

/// The backend pid holding the scheduler's advisory lock for this test's prefix, if any.
async fn lock_holder(env: &Env) -> Option<i32> {
    lock_holder_of(env, strom_commands::scheduler::SCHEDULER_ROLE).await
}

/// The backend pid holding `role`'s advisory lock for this test's prefix, if any.
async fn lock_holder_of(env: &Env, role: &str) -> Option<i32> {
    let db = env.db.as_ref().expect("a Postgres env");
    let name = strom_commands::lease::lock_name(role, env.bus.subjects().prefix());
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
           AND classid = hashtext($1)::oid AND objid = hashtext($2)::oid AND objsubid = 2",
    )
    .bind(strom_commands::lease::LOCK_NAMESPACE)
    .bind(name)
    .fetch_optional(&db.pool)
    .await
    .expect("query pg_locks")
}

#[tokio::test]
async fn only_one_execution_fills_and_a_standby_takes_over_when_its_lock_session_dies() {
    use strom_commands::role::RoleState;
    let env = Env::real().await;
    let agent = env.create_trading_agent("SOL-USD").await;
    env.start(&agent).await;
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, 1).await;
    let worker = env.spawn_worker();
    let first = env.spawn_execution();
    first.wait_for_state(RoleState::Active).await;
    let second = env.spawn_execution();
    // Tick until two orders have filled; only the active instance fills.
    let mut second_tick = 0;
    while env.events_of(&agent, "OrderFilled").await.len() < 2 {
        assert!(second_tick < 120, "two fills within 120 ticks");
        advance_to(&env, &scheduler, t(second_tick)).await;
        env.wait_for_runs(&agent, &[second_tick as u64 + 1]).await;
        let placed = env.events_of(&agent, "OrderPlaced").await.len();
        wait_for("every placed order filled", || async {
            env.events_of(&agent, "OrderFilled").await.len() == placed
        })
        .await;
        second_tick += 1;
    }
    assert_eq!(*second.execution.state().borrow(), RoleState::Standby);
    assert_eq!(second.execution.stats().filled, 0);

    // Kill the active instance's lock session: it steps down, the standby takes over and fills what comes next.
    let pid = lock_holder_of(&env, strom_commands::execution::EXECUTION_ROLE)
        .await
        .expect("the active execution holds its lock");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&env.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    second.wait_for_state(RoleState::Active).await;
    let filled_before = env.events_of(&agent, "OrderFilled").await.len();
    while env.events_of(&agent, "OrderFilled").await.len() == filled_before {
        assert!(second_tick < 240, "another fill within 120 more ticks");
        advance_to(&env, &scheduler, t(second_tick)).await;
        env.wait_for_runs(&agent, &[second_tick as u64 + 1]).await;
        second_tick += 1;
    }
    wait_for("every placed order filled", || async {
        env.events_of(&agent, "OrderFilled").await.len()
            == env.events_of(&agent, "OrderPlaced").await.len()
    })
    .await;
    assert!(second.execution.stats().filled >= 1);
    worker.stop().await;
    scheduler.stop().await;
    first.stop().await;
    second.stop().await;
    let mut fills: Vec<String> = env
        .events_of(&agent, "OrderFilled")
        .await
        .iter()
        .map(|e| execution_cases::order_id_of(e))
        .collect();
    let all = fills.len();
    fills.sort();
    fills.dedup();
    assert_eq!(fills.len(), all, "no order filled twice");
    env.finish().await;
}

#[tokio::test]
async fn only_one_scheduler_is_active_and_a_standby_takes_over_when_the_lock_is_lost() {
    let env = Env::real().await;
    let agent = env.create_agent("BTC-USD", 1).await;
    env.start(&agent).await;
    let first = env.spawn_scheduler();
    wait_until_scheduling(&first, 1).await;
    let second = env.spawn_scheduler();
    let mut probe = Probe::open(&env).await;
    for second in 0..=2 {
        advance_to(&env, &first, t(second)).await;
    }
    assert_eq!(first.counts().emitted, 3);
    let standby = second.counts();
    assert!(!standby.active, "the second instance stands by");
    assert_eq!((standby.emitted, standby.duplicates), (0, 0));

    // Kill the leader's lock session: the lock is released, the standby takes it, the old leader steps down.
    let pid = lock_holder(&env).await.expect("the leader holds the lock");
    let db = env.db.as_ref().unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&db.pool)
        .await
        .unwrap();
    wait_for("the old leader to step down", || async {
        !first.counts().active
    })
    .await;
    wait_until_scheduling(&second, 1).await;
    advance_to(&env, &second, t(3)).await;
    assert_eq!(
        (second.counts().emitted, second.counts().duplicates),
        (1, 1),
        "the new leader republishes tick 3 (deduplicated) and emits tick 4: {:?}",
        second.counts()
    );
    assert_eq!(
        first.counts().emitted,
        3,
        "the old leader emits nothing more"
    );
    assert!(!first.counts().active);
    assert_ne!(lock_holder(&env).await, Some(pid));

    first.stop().await;
    second.stop().await;
    let ticks = probe.drain(&env).await;
    assert_eq!(
        ticks.iter().map(|t| t.tick_no).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(env.ticks_ever_stored().await, 4, "each tick stored once");
    env.finish().await;
}

/// The design target is 10,000 agents ticking every second. Not a benchmark (memory adapters, debug build): it checks
/// that one scheduler loop hands out every agent's every tick, none lost, none doubled, none skipped.
#[tokio::test(start_paused = true)]
async fn ten_thousand_agents_each_get_every_tick() {
    const AGENTS: u64 = 10_000;
    let env = Env::memory().await;
    for _ in 0..AGENTS {
        let agent = env.create_agent("BTC-USD", 1).await;
        env.start(&agent).await;
    }
    let scheduler = env.spawn_scheduler();
    wait_until_scheduling(&scheduler, AGENTS).await;
    for second in 0..=2 {
        advance_to(&env, &scheduler, t(second)).await;
    }
    let counts = scheduler.counts();
    scheduler.stop().await;
    assert_eq!(
        (counts.emitted, counts.duplicates, counts.skipped),
        (3 * AGENTS, 0, 0)
    );
    assert_eq!(env.ticks_ever_stored().await, 3 * AGENTS);
    env.finish().await;
}

/// A log that remembers every read that failed, and why.
struct WatchedLog {
    inner: Arc<dyn EventLog>,
    failures: Mutex<Vec<String>>,
}

impl WatchedLog {
    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventLog for WatchedLog {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<Arc<LoggedEvent>>, StoreError> {
        let read = self.inner.read_after(after, limit).await;
        if let Err(e) = &read {
            self.failures.lock().unwrap().push(e.to_string());
        }
        read
    }

    async fn read_envelopes_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.read_envelopes_after(after, limit).await
    }

    async fn head(&self) -> Result<LogPosition, StoreError> {
        self.inner.head().await
    }

    async fn backlog(&self, after: LogPosition, cap: u64) -> Result<u64, StoreError> {
        self.inner.backlog(after, cap).await
    }
}

#[tokio::test]
async fn a_scheduler_does_not_schedule_past_an_undecodable_event() {
    let env = Env::real().await;
    let before = env.create_agent("BTC-USD", 1).await;
    env.start(&before).await;
    let db = env.db.as_ref().expect("a Postgres env");
    store_support::insert_undecodable_created(&db.pool, "bad").await;
    let after = env.create_agent("BTC-USD", 1).await;
    env.start(&after).await;
    // Other tests' open transactions can hold the watermark back: start the scheduler only once all five events
    // (two agents created and started, the bad one between them) are readable, so its first read meets the bad one.
    wait_for("the five events to be visible", || async {
        env.log
            .read_envelopes_after(LogPosition::START, 10)
            .await
            .is_ok_and(|page| page.len() == 5)
    })
    .await;
    let log = Arc::new(WatchedLog {
        inner: Arc::clone(&env.log),
        failures: Mutex::default(),
    });
    let scheduler = env.spawn_scheduler_over(log.clone());
    let mut probe = Probe::open(&env).await;

    wait_for("the scheduler to fail on the event three times", || async {
        log.failures().len() >= 3
    })
    .await;
    let bad = store_support::agent_id("bad");
    for failure in log.failures() {
        assert!(
            failure.contains(&format!("Agent/{bad} sequence 1")),
            "{failure}"
        );
    }
    let counts = scheduler.counts();
    assert!(counts.active, "{counts:?}");
    assert_eq!(
        counts.last_round_at, None,
        "it never schedules from a log it could not read to the end"
    );
    assert_eq!((counts.running_agents, counts.emitted), (0, 0));
    scheduler.stop().await;
    assert!(probe.drain(&env).await.is_empty(), "no tick was published");
    env.finish().await;
}
