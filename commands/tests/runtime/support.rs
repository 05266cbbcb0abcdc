//! Test support: one environment type over either the memory adapters or real Postgres + NATS (a fresh schema and a
//! fresh prefix per test, removed afterwards), a manual clock, agent commands, running roles, and bounded waits.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use strom_commands::bus::memory::MemoryBus;
use strom_commands::bus::{Bus, Consumer, ConsumerSpec, Headers, StreamKind, Subjects};
use strom_commands::execution::{Execution, EXECUTION_ROLE};
use strom_commands::lease::Singleton;
use strom_commands::log::{EventLog, LogPosition, LoggedEvent, MAX_LOG_PAGE};
use strom_commands::market::SimMarket;
use strom_commands::role::{RoleConfig, RoleState};
use strom_commands::runtime::{RuntimeConfig, RuntimeStats, RuntimeWorker, RUNTIME_CONSUMER};
use strom_commands::scheduler::{
    AgentTick, Scheduler, SchedulerConfig, SchedulerCounts, SchedulerStats, SCHEDULER_ROLE,
};
use strom_commands::service::{AggregateService, CommandContext};
use strom_commands::store::{Clock, EventStore};
use strom_domain::{Agent, AgentCommand, AgentConfig, AgentEvent, FillModel};
use strom_tests::nats::TestNats;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::store_support::TestDb;

/// The longest any condition is waited for: generous for a loaded machine and for other sessions holding the log
/// watermark back; a wait returns as soon as its condition holds. (Memory tests run on paused time, where it is
/// virtual.)
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two looks at a condition.
const POLL: Duration = Duration::from_millis(5);
/// Ack wait of the runtime consumer in these tests: a crashed worker's ticks come back after it, so it is short for
/// the NATS tests (memory tests run on paused time).
pub const TEST_ACK_WAIT: Duration = Duration::from_secs(2);
/// Seed of the simulated market.
pub const SIM_SEED: u64 = 42;
/// 2027-01-15T08:00:00Z: the tests' time zero, a whole second.
pub const T0: i64 = 1_800_000_000;

pub fn t(offset_s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + offset_s, 0).unwrap()
}

/// Scheduler timings for tests: quick polls, quick failover.
pub fn scheduler_config() -> SchedulerConfig {
    SchedulerConfig {
        log_poll: Duration::from_millis(10),
        leader_retry: Duration::from_millis(100),
        lock_check: Duration::from_millis(100),
        publish_retry: Duration::from_millis(100),
    }
}

/// The paper fill model the tests' runtime records on its orders: fills differ from the observed price, and cost.
pub fn fill_model() -> FillModel {
    serde_json::from_value(serde_json::json!({"slippage_bps": "2.5", "fee_bps": "10"}))
        .expect("a valid fill model")
}

pub fn runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        consumer: ConsumerSpec::new(StreamKind::Ticks, RUNTIME_CONSUMER)
            .with_ack_wait(TEST_ACK_WAIT),
        fill_model: fill_model(),
        ..RuntimeConfig::default()
    }
}

/// Execution timings for tests: quick polls, quick failover.
pub fn execution_config() -> RoleConfig {
    RoleConfig {
        page_size: 100,
        poll_interval: Duration::from_millis(5),
        leader_retry: Duration::from_millis(100),
        error_backoff_max: Duration::from_millis(200),
    }
}

/// A clock the test sets; every role of a test shares it.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }

    pub fn clock(&self) -> Clock {
        let inner = Arc::clone(&self.0);
        Arc::new(move || *inner.lock().unwrap())
    }
}

/// Waits until `condition` holds, at most [`DEADLINE`].
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A role running in the background until stopped.
pub struct Role<S> {
    pub stats: Arc<S>,
    stop: oneshot::Sender<()>,
    join: JoinHandle<()>,
}

impl<S> Role<S> {
    /// Asks the role to shut down and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.join.await.expect("role task ended cleanly");
    }
}

impl Role<SchedulerStats> {
    pub fn counts(&self) -> SchedulerCounts {
        self.stats.snapshot()
    }
}

pub struct Env {
    pub store: EventStore,
    pub log: Arc<dyn EventLog>,
    pub bus: Arc<dyn Bus>,
    pub agents: Arc<AggregateService<Agent>>,
    pub clock: ManualClock,
    pub db: Option<TestDb>,
    nats: Option<TestNats>,
}

fn unique_subjects() -> Subjects {
    Subjects::new(format!("t{}", uuid::Uuid::new_v4().simple())).unwrap()
}

impl Env {
    pub async fn memory() -> Self {
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(unique_subjects()));
        Self::build(EventStore::memory(), bus, None, None).await
    }

    pub async fn real() -> Self {
        let nats = TestNats::new("t");
        let db = crate::store_support::test_db().await;
        let bus = nats.connect().await;
        let store = EventStore::postgres(db.pool.clone());
        Self::build(store, Arc::new(bus), Some(db), Some(nats)).await
    }

    async fn build(
        store: EventStore,
        bus: Arc<dyn Bus>,
        db: Option<TestDb>,
        nats: Option<TestNats>,
    ) -> Self {
        bus.ensure_topology().await.expect("bus topology");
        Self {
            log: store.log(),
            bus,
            agents: Arc::new(AggregateService::new(store.clone())),
            store,
            clock: ManualClock::new(t(0)),
            db,
            nats,
        }
    }

    /// The scheduler's lease: the advisory lock of this test's prefix on Postgres, none on memory.
    pub fn singleton(&self) -> Singleton {
        self.singleton_of(SCHEDULER_ROLE)
    }

    /// The lease of `role`: the advisory lock of this test's prefix on Postgres, none on memory.
    pub fn singleton_of(&self, role: &str) -> Singleton {
        match &self.db {
            None => Singleton::Single,
            Some(db) => Singleton::postgres(
                (*db.pool.connect_options()).clone(),
                role,
                self.bus.subjects().prefix(),
            ),
        }
    }

    /// An execution instance (not running).
    pub fn execution(&self) -> Execution {
        Execution::over(
            &self.store,
            Arc::clone(&self.agents),
            self.clock.clock(),
            self.singleton_of(EXECUTION_ROLE),
            execution_config(),
        )
    }

    pub fn spawn_execution(&self) -> RunningExecution {
        let execution = Arc::new(self.execution());
        let (stop, stopped) = oneshot::channel::<()>();
        let running = Arc::clone(&execution);
        let join = tokio::spawn(async move {
            running
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        RunningExecution {
            execution,
            stop,
            join,
        }
    }

    pub fn spawn_scheduler(&self) -> Role<SchedulerStats> {
        self.spawn_scheduler_over(Arc::clone(&self.log))
    }

    /// A scheduler reading `log` (e.g. a wrapper that counts reads).
    pub fn spawn_scheduler_over(&self, log: Arc<dyn EventLog>) -> Role<SchedulerStats> {
        let scheduler = Scheduler::new(
            log,
            Arc::clone(&self.bus),
            self.singleton(),
            self.clock.clock(),
            scheduler_config(),
        );
        let stats = scheduler.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(scheduler.run(async move {
            let _ = stopped.await;
        }));
        Role { stats, stop, join }
    }

    pub fn worker(&self) -> RuntimeWorker {
        RuntimeWorker::new(
            Arc::clone(&self.bus),
            Arc::clone(&self.agents),
            Arc::new(SimMarket::new(SIM_SEED)),
            self.clock.clock(),
            runtime_config(),
        )
    }

    pub fn spawn_worker(&self) -> Role<RuntimeStats> {
        let worker = self.worker();
        let stats = worker.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("runtime worker runs");
        });
        Role { stats, stop, join }
    }

    /// Sends an Agent command as user `alice`.
    pub async fn agent_command(&self, agent_id: &str, command: AgentCommand) {
        self.agents
            .execute(
                agent_id,
                || command.clone(),
                &CommandContext::new(format!("test-{}", uuid::Uuid::new_v4()), "alice"),
            )
            .await
            .unwrap_or_else(|e| panic!("{command:?} on {agent_id}: {e}"));
    }

    /// Creates a stopped `hold` agent trading `symbol` every `frequency_s`; returns its id.
    pub async fn create_agent(&self, symbol: &str, frequency_s: u32) -> String {
        self.create_agent_with(
            symbol,
            frequency_s,
            serde_json::json!({"kind": "hold", "params": {}}),
        )
        .await
    }

    /// Creates a stopped agent trading `symbol` every second on an sma 1/2 crossover (a signal at every turn of the
    /// price) with 0.01 units per order; returns its id.
    pub async fn create_trading_agent(&self, symbol: &str) -> String {
        let strategy = serde_json::json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.01"}});
        self.create_agent_with(symbol, 1, strategy).await
    }

    async fn create_agent_with(
        &self,
        symbol: &str,
        frequency_s: u32,
        strategy: serde_json::Value,
    ) -> String {
        let risk = serde_json::json!({"max_position_qty": "1", "max_order_qty": "1", "max_notional": "100000",
                                      "max_daily_loss": null});
        self.create_agent_configured(symbol, frequency_s, strategy, risk, "10000")
            .await
    }

    /// Creates a stopped agent with the given strategy, risk limits and starting cash; returns its id.
    pub async fn create_agent_configured(
        &self,
        symbol: &str,
        frequency_s: u32,
        strategy: serde_json::Value,
        risk: serde_json::Value,
        starting_cash: &str,
    ) -> String {
        let agent_id = uuid::Uuid::new_v4().to_string();
        let config: AgentConfig = serde_json::from_value(serde_json::json!({
            "name": "test agent", "symbol": symbol,
            "strategy": strategy,
            "frequency_s": frequency_s,
            "risk": risk,
            "starting_cash": starting_cash, "seed": 7
        }))
        .expect("valid agent config");
        let command = AgentCommand::CreateAgent {
            agent_id: agent_id.clone(),
            owner: "alice".into(),
            config,
            at: self.clock.now(),
        };
        self.agent_command(&agent_id, command).await;
        agent_id
    }

    pub async fn start(&self, agent_id: &str) {
        let at = self.clock.now();
        self.agent_command(agent_id, AgentCommand::StartAgent { at })
            .await;
    }

    pub async fn stop(&self, agent_id: &str) {
        let at = self.clock.now();
        let reason = "test stop".to_owned();
        self.agent_command(agent_id, AgentCommand::StopAgent { at, reason })
            .await;
    }

    pub async fn archive(&self, agent_id: &str) {
        let at = self.clock.now();
        self.agent_command(agent_id, AgentCommand::ArchiveAgent { at })
            .await;
    }

    /// Every event in the log (as far as the watermark lets us see now).
    pub async fn logged(&self) -> Vec<Arc<LoggedEvent>> {
        let mut events = Vec::new();
        let mut position = LogPosition::START;
        loop {
            let page = self
                .log
                .read_after(position, MAX_LOG_PAGE)
                .await
                .expect("read the log");
            let Some(last) = page.last() else {
                return events;
            };
            position = last.position;
            events.extend(page);
        }
    }

    /// The runs recorded for `agent_id`, in log order, with the event's metadata.
    pub async fn runs(&self, agent_id: &str) -> Vec<(AgentEvent, Arc<LoggedEvent>)> {
        self.logged()
            .await
            .into_iter()
            .filter(|e| e.aggregate_id == agent_id && e.event_type() == "AgentRunRecorded")
            .map(|e| (e.event.as_agent().expect("an Agent event").clone(), e))
            .collect()
    }

    /// The events of `agent_id` named `event_type`, in log order.
    pub async fn events_of(&self, agent_id: &str, event_type: &str) -> Vec<Arc<LoggedEvent>> {
        self.logged()
            .await
            .into_iter()
            .filter(|e| e.aggregate_id == agent_id && e.event_type() == event_type)
            .collect()
    }

    /// (session, tick_no) of each recorded run of `agent_id`, in log order.
    pub async fn run_ticks(&self, agent_id: &str) -> Vec<(u64, u64)> {
        self.runs(agent_id)
            .await
            .into_iter()
            .map(|(event, _)| match event {
                AgentEvent::AgentRunRecorded {
                    session, tick_no, ..
                } => (session, tick_no),
                other => panic!("not a run: {other:?}"),
            })
            .collect()
    }

    /// Waits until `agent_id` has a recorded run for every tick in `ticks` (session 1).
    pub async fn wait_for_runs(&self, agent_id: &str, ticks: &[u64]) {
        wait_for(&format!("runs {ticks:?} of {agent_id}"), || async {
            let recorded = self.run_ticks(agent_id).await;
            ticks.iter().all(|n| recorded.contains(&(1, *n)))
        })
        .await;
    }

    /// Publishes a raw message on the tick subject of `agent_id`.
    pub async fn publish_raw_tick(&self, agent_id: &str, msg_id: &str, payload: Vec<u8>) {
        let subject = self.bus.subjects().tick(agent_id).unwrap();
        self.bus
            .publish(&subject, msg_id, &Headers::new(), payload)
            .await
            .expect("publish a tick");
    }

    pub async fn ticks_stored(&self) -> u64 {
        self.bus
            .stream_stats(StreamKind::Ticks)
            .await
            .unwrap()
            .messages
    }

    pub async fn ticks_ever_stored(&self) -> u64 {
        self.bus
            .stream_stats(StreamKind::Ticks)
            .await
            .unwrap()
            .last_sequence
    }

    pub async fn finish(mut self) {
        if let Some(nats) = self.nats.take() {
            nats.delete().await;
        }
    }
}

/// An execution instance running in the background until stopped.
pub struct RunningExecution {
    pub execution: Arc<Execution>,
    stop: oneshot::Sender<()>,
    join: JoinHandle<()>,
}

impl RunningExecution {
    /// Asks the instance to shut down and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.join.await.expect("execution task ended cleanly");
    }

    pub async fn wait_for_state(&self, state: RoleState) {
        let mut states = self.execution.state();
        tokio::time::timeout(DEADLINE, states.wait_for(|s| *s == state))
            .await
            .unwrap_or_else(|_| panic!("execution never reached {state:?}"))
            .expect("execution state channel open");
    }
}

/// Reads ticks off the TICKS stream through a durable consumer of its own (only in tests without runtime workers:
/// the stream is a work queue, so the probe takes what it reads).
pub struct Probe {
    consumer: Box<dyn Consumer>,
    pub seen: Vec<(String, AgentTick)>,
}

impl Probe {
    pub async fn open(env: &Env) -> Self {
        let consumer = env
            .bus
            .consumer(ConsumerSpec::new(StreamKind::Ticks, "probe"))
            .await
            .expect("probe consumer");
        Self {
            consumer,
            seen: Vec::new(),
        }
    }

    /// Takes every tick stored so far (the caller first waits until the scheduler's round is done, so "so far" is
    /// everything it emitted), acking each; returns the new ones.
    pub async fn drain(&mut self, env: &Env) -> Vec<AgentTick> {
        let mut new = Vec::new();
        while env.ticks_stored().await > 0 {
            let delivery = self
                .consumer
                .next(DEADLINE)
                .await
                .unwrap()
                .expect("a stored tick is delivered");
            let tick = AgentTick::parse(&delivery.payload).expect("ticks parse");
            let msg_id = delivery.msg_id.clone().expect("ticks carry a msg id");
            delivery.ack().await.unwrap();
            self.seen.push((msg_id, tick.clone()));
            new.push(tick);
        }
        new
    }
}

/// Sets the clock to `at` and waits until `scheduler` has finished a round at or after it.
pub async fn advance_to(env: &Env, scheduler: &Role<SchedulerStats>, at: DateTime<Utc>) {
    env.clock.set(at);
    wait_for(&format!("a scheduler round at {at}"), || async {
        scheduler.counts().last_round_at.is_some_and(|r| r >= at)
    })
    .await;
}

/// Waits until `scheduler` leads, has read `running` running agents from the log and finished a round: from then on
/// it emits exactly what the clock makes due (no skips from a log read still lagging behind the watermark).
pub async fn wait_until_scheduling(scheduler: &Role<SchedulerStats>, running: u64) {
    wait_for(
        &format!("the scheduler to run {running} agents"),
        || async {
            let counts = scheduler.counts();
            counts.active && counts.running_agents == running && counts.last_round_at.is_some()
        },
    )
    .await;
}
