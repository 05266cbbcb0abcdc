//! Test support: a throwaway Postgres schema per test, a scripted Agent (create, start, run 1, run 2, …) driven
//! through the command services, SQL inserts of real events (for rows the services would never write), and the two
//! store backends behind one type so the conformance suite runs the same code against both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgExecutor;
use strom_commands::log::{
    chain_hash_text, jsonb_text, ChainSource, CheckpointStore, EventEnvelope, EventLog, LogItem,
    LogPosition, LoggedEvent, GENESIS_HASH, MAX_LOG_PAGE,
};
use strom_commands::service::{CommandContext, CommandServices, Executed};
use strom_commands::store::{EventStore, MemoryEventStore, PgEventStore};
use strom_domain::codec::encode;
use strom_domain::{Agent, AgentCommand, AgentConfig, Decider, Logged as _, StromEvent};
pub use strom_tests::db::TestDb;

/// Connections per test pool: enough for the concurrency test to have real parallel transactions, small enough
/// that two parallel test threads stay far below the server's connection limit shared with other users.
const TEST_POOL_CONNECTIONS: u32 = 8;

/// Connections of a second "process" over a test schema: it runs one command at a time.
const SECOND_PROCESS_CONNECTIONS: u32 = 2;

/// How long a test waits for the log watermark to pass its events. Other sessions on the shared server (parallel
/// tests, other people's processes) hold it back while they have a write transaction open, usually milliseconds.
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);

/// Pause between reads while the watermark is held back by someone else's transaction.
const CATCH_UP_POLL: Duration = Duration::from_millis(10);

/// A typed event as the log hands it out.
pub type Logged = Arc<LoggedEvent>;

/// A fresh schema with the migrations applied, with a pool big enough for the concurrency test; dropped (with its
/// connections) when the guard drops, also when the test fails.
pub async fn test_db() -> TestDb {
    TestDb::builder("t")
        .connections(TEST_POOL_CONNECTIONS)
        .build()
        .await
}

/// 2027-01-15T08:00:00Z, a whole second: scripted agents are created and started here and tick every second.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
}

/// The agent id (a lowercase UUID, as commands require) a test calls `name`: the name's bytes, zero-padded, so
/// distinct names (up to 16 bytes) give distinct ids and a failure message can still be read back.
pub fn agent_id(name: &str) -> String {
    assert!(name.len() <= 16, "test agent names fit in a uuid: {name:?}");
    let mut bytes = [0u8; 16];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// A `hold` agent on BTC-USD ticking every second, called `display_name`.
pub fn config(display_name: &str) -> AgentConfig {
    serde_json::from_value(json!({
        "name": display_name, "symbol": "BTC-USD",
        "strategy": {"kind": "hold", "params": {}},
        "frequency_s": 1,
        "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "100000", "max_daily_loss": null},
        "starting_cash": "10000", "seed": 7
    }))
    .expect("valid agent config")
}

/// Creates agent `name` (owned by alice, called `display_name`) at [`t0`].
pub fn create_named(name: &str, display_name: &str) -> AgentCommand {
    AgentCommand::CreateAgent {
        agent_id: agent_id(name),
        owner: "alice".into(),
        config: config(display_name),
        at: t0(),
    }
}

/// Records tick `tick_no` of session 1 (started at [`t0`], every second), observed at its slot.
pub fn run(tick_no: u64) -> AgentCommand {
    let slot = t0() + TimeDelta::seconds(i64::try_from(tick_no).expect("a small tick") - 1);
    AgentCommand::RecordRun {
        session: 1,
        tick_no,
        scheduled_at: slot,
        started_at: slot + TimeDelta::milliseconds(5),
        completed_at: slot + TimeDelta::milliseconds(10),
        observation: serde_json::from_value(json!({
            "symbol": "BTC-USD", "price": "100.25", "observed_at": strom_domain::time::format_millis(&slot)
        }))
        .expect("valid observation"),
        fill_model: strom_domain::FillModel::default(),
        correlation_id: format!("tick-{tick_no}"),
    }
}

/// The `n`th command (1-based) of agent `name`'s script: create, start, then run tick 1, 2, 3, … — so the `n`th
/// command appends the agent's `n`th event.
pub fn script(name: &str, n: u64) -> AgentCommand {
    match n {
        0 => panic!("commands are numbered from 1"),
        1 => create_named(name, name),
        2 => AgentCommand::StartAgent { at: t0() },
        _ => run(n - 2),
    }
}

/// The events the first `n` commands of `name`'s script append, decided by the `Agent` itself (for SQL inserts).
pub fn script_events(name: &str, n: u64) -> Vec<StromEvent> {
    let mut agent = Agent::default();
    (1..=n)
        .flat_map(|k| {
            let events = agent.decide(script(name, k)).expect("the script is valid");
            for event in &events {
                agent.evolve(event);
            }
            events.into_iter().map(Agent::wrap)
        })
        .collect()
}

/// A command context for the tests' background actor.
pub fn ctx(correlation_id: &str) -> CommandContext {
    CommandContext::new(correlation_id, "system:test")
}

// Not postgres-es's text for the same insert: sqlx caches prepared statements by their text, and postgres-es binds
// `sequence` as an int4, so an identical text would send our int8 in a statement prepared for an int4.
const INSERT_EVENT_SQL: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// One stored row, as it goes into the `events` table.
pub struct Row<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: Value,
}

impl<'a> Row<'a> {
    /// `event` of `aggregate_id` at `sequence`, stored as current code stores it.
    pub fn of(aggregate_id: &'a str, sequence: i64, event: &StromEvent) -> Self {
        Self {
            aggregate_type: event.aggregate_type(),
            aggregate_id,
            sequence,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: encode(event),
        }
    }

    /// Inserts the row behind the services' back (the triggers still check the sequence and fill the hash).
    pub async fn insert<'e>(self, executor: impl PgExecutor<'e>) {
        sqlx::query(INSERT_EVENT_SQL)
            .bind(self.aggregate_type)
            .bind(self.aggregate_id)
            .bind(self.sequence)
            .bind(self.event_type)
            .bind(self.event_version)
            .bind(self.payload)
            .bind(json!({"correlation_id": "raw", "actor": "system:test"}))
            .execute(executor)
            .await
            .expect("insert an event row");
    }
}

/// Stores agent `name`'s `AgentCreated` at sequence 1 with a `starting_cash` that is not a number: what a row written
/// outside STROM (or by a buggy version) can hold. It does not decode.
pub async fn insert_undecodable_created<'e>(executor: impl PgExecutor<'e>, name: &str) {
    let id = agent_id(name);
    let created = &script_events(name, 1)[0];
    let mut payload = encode(created);
    payload["AgentCreated"]["starting_cash"] = "lots".into();
    Row {
        payload,
        ..Row::of(&id, 1, created)
    }
    .insert(executor)
    .await;
}

/// One store implementation and the command services over it, as the conformance suite sees them.
pub struct Backend {
    pub store: EventStore,
    pub services: CommandServices,
    db: Option<TestDb>,
}

impl Backend {
    pub fn memory() -> Self {
        Self::over(EventStore::memory(), None)
    }

    pub async fn postgres() -> Self {
        let db = test_db().await;
        Self::over(EventStore::postgres(db.pool.clone()), Some(db))
    }

    fn over(store: EventStore, db: Option<TestDb>) -> Self {
        Self {
            services: CommandServices::new(&store),
            store,
            db,
        }
    }

    /// The test schema (Postgres-only tests).
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("a Postgres backend")
    }

    pub fn memory_store(&self) -> &MemoryEventStore {
        match &self.store {
            EventStore::Memory(store) => store,
            EventStore::Postgres(_) => panic!("a memory-only step ran on Postgres"),
        }
    }

    fn pg_store(&self) -> &PgEventStore {
        match &self.store {
            EventStore::Postgres(store) => store,
            EventStore::Memory(_) => panic!("a Postgres-only step ran on memory"),
        }
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        self.store.log()
    }

    pub fn chains(&self) -> Arc<dyn ChainSource> {
        match &self.store {
            EventStore::Memory(store) => Arc::new(store.clone()),
            EventStore::Postgres(store) => Arc::new(store.log()),
        }
    }

    pub fn checkpoints(&self) -> Arc<dyn CheckpointStore> {
        match &self.store {
            EventStore::Memory(store) => Arc::new(store.clone()),
            EventStore::Postgres(store) => Arc::new(strom_commands::log::PgCheckpointStore::new(
                store.pool().clone(),
            )),
        }
    }

    /// The command services of another process over the same events: caches of their own and, for Postgres, a
    /// pool of their own.
    pub fn another_process(&self) -> CommandServices {
        match &self.store {
            EventStore::Memory(_) => CommandServices::new(&self.store),
            EventStore::Postgres(_) => {
                let pool = PgPoolOptions::new()
                    .max_connections(SECOND_PROCESS_CONNECTIONS)
                    .connect_lazy_with(self.db().connect_options());
                CommandServices::new(&EventStore::postgres(pool))
            }
        }
    }

    /// The pool of the Postgres store.
    pub fn pool(&self) -> &sqlx::PgPool {
        self.pg_store().pool()
    }

    /// Runs the next command of agent `name`'s [`script`] (correlation id `corr-<name>`).
    pub async fn step(&self, name: &str) -> Executed<Agent> {
        step_on(&self.services, name).await
    }

    /// [`Backend::step`] `n` times.
    pub async fn steps(&self, name: &str, n: u64) {
        for _ in 0..n {
            self.step(name).await;
        }
    }
}

/// Runs the next command of agent `name`'s [`script`] through `services`.
pub async fn step_on(services: &CommandServices, name: &str) -> Executed<Agent> {
    let id = agent_id(name);
    let (_, version) = services.agents.load(&id).await.expect("load the agent");
    services
        .agents
        .execute(
            &id,
            || script(name, version + 1),
            &ctx(&format!("corr-{name}")),
        )
        .await
        .unwrap_or_else(|e| panic!("command {} of {name}: {e}", version + 1))
}

/// Reads from `after` until `expected` items have arrived (waiting out other sessions' open transactions, at most
/// [`CATCH_UP_DEADLINE`]), then checks the log has nothing more. Typed events (`Logged`) or stored envelopes.
pub async fn read_exactly<T: LogItem + std::fmt::Debug>(
    log: &dyn EventLog,
    after: LogPosition,
    expected: usize,
) -> Vec<T> {
    let started = Instant::now();
    let mut items: Vec<T> = Vec::new();
    let mut position = after;
    let positions = |items: &[T]| items.iter().map(LogItem::position).collect::<Vec<_>>();
    while items.len() < expected {
        let page = T::read(log, position, MAX_LOG_PAGE)
            .await
            .expect("read log");
        let mut previous = position;
        for item in &page {
            assert!(
                item.position() > previous,
                "log went backwards: {:?} after {previous:?} (read from {position:?}); page {:?}; before {:?}",
                item.position(),
                positions(&page),
                positions(&items)
            );
            previous = item.position();
        }
        match page.last() {
            Some(last) => position = last.position(),
            None => {
                assert!(
                    started.elapsed() < CATCH_UP_DEADLINE,
                    "log stuck at {} of {expected} events",
                    items.len()
                );
                tokio::time::sleep(CATCH_UP_POLL).await;
            }
        }
        items.extend(page);
    }
    let rest = T::read(log, position, MAX_LOG_PAGE)
        .await
        .expect("read log");
    assert!(
        rest.is_empty(),
        "unexpected extra events after {position:?}: {:?}; read before: {:?}",
        positions(&rest),
        positions(&items)
    );
    items
}

/// Recomputes every stored event's hash in Rust from its stored fields (for Postgres: the trigger's hash).
pub fn assert_chained(stored: &[EventEnvelope]) {
    let mut by_stream: std::collections::BTreeMap<(&str, &str), Vec<&EventEnvelope>> =
        Default::default();
    for event in stored {
        by_stream
            .entry((&event.aggregate_type, &event.aggregate_id))
            .or_default()
            .push(event);
    }
    for events in by_stream.values() {
        let mut prev = GENESIS_HASH.to_string();
        for event in events {
            let expected = chain_hash_text(
                &prev,
                &event.aggregate_type,
                &event.aggregate_id,
                event.sequence,
                &event.event_type,
                &event.event_version,
                &jsonb_text(&event.payload),
            );
            assert_eq!(
                event.hash,
                expected,
                "hash of {}/{} #{} (payload text {})",
                event.aggregate_type,
                event.aggregate_id,
                event.sequence,
                jsonb_text(&event.payload)
            );
            prev = expected;
        }
    }
}
