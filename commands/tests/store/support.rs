//! Test support: a throwaway Postgres schema per test, a counter aggregate, and the two store backends behind one
//! trait so the conformance suite runs the same code against both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::persist::{
    EventUpcaster, PersistedEventRepository, PersistedEventStore, SerializedEvent,
};
use cqrs_es::{Aggregate, CqrsFramework, DomainEvent, EventStore};
use postgres_es::PostgresEventRepository;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strom_commands::store::{
    memory_cqrs, pg_cqrs, ChainSource, CheckpointStore, EventLog, LogPosition, LoggedEvent,
    MemoryCheckpointStore, MemoryEventRepository, PgCheckpointStore, PgEventLog, MAX_LOG_PAGE,
};
pub use strom_tests::db::TestDb;

/// Connections per test pool: enough for the concurrency test to have real parallel transactions, small enough
/// that two parallel test threads stay far below the server's connection limit shared with other users.
const TEST_POOL_CONNECTIONS: u32 = 8;

/// How long a test waits for the log watermark to pass its events. Other sessions on the shared server (parallel
/// tests, other people's processes) hold it back while they have a write transaction open, usually milliseconds.
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);

/// Pause between reads while the watermark is held back by someone else's transaction.
const CATCH_UP_POLL: Duration = Duration::from_millis(10);

/// A fresh schema with the migrations applied, with a pool big enough for the concurrency test; dropped (with its
/// connections) when the guard drops, also when the test fails.
pub async fn test_db() -> TestDb {
    TestDb::builder("t")
        .connections(TEST_POOL_CONNECTIONS)
        .build()
        .await
}

/// The test aggregate: a counter that also records arbitrary JSON notes (to exercise the jsonb text form).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Counter {
    pub value: u64,
    pub notes: u64,
}

pub enum CounterCommand {
    Increment,
    Note(Value),
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CounterEvent {
    Incremented { value: u64 },
    Noted { note: Value },
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Incremented { .. } => "Incremented",
            Self::Noted { .. } => "Noted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the counter refuses")]
pub struct CounterRefused;

impl Aggregate for Counter {
    const TYPE: &'static str = "Counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = CounterRefused;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            CounterCommand::Increment => {
                // Give concurrent commands a chance to interleave between load and commit.
                tokio::task::yield_now().await;
                let value = self.value + 1;
                sink.write(CounterEvent::Incremented { value }, self).await;
            }
            CounterCommand::Note(note) => sink.write(CounterEvent::Noted { note }, self).await,
            CounterCommand::Refuse => return Err(CounterRefused),
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CounterEvent::Incremented { value } => {
                debug_assert_eq!(value, self.value + 1, "increments are contiguous");
                self.value = value;
            }
            CounterEvent::Noted { .. } => self.notes += 1,
        }
    }
}

/// Upcasts the legacy `Bumped` v0 event (`{"Bumped": {"to": n}}`) to `Incremented` v1.
pub struct BumpedUpcaster;

impl EventUpcaster for BumpedUpcaster {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "Bumped" && event_version == "0"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        let value = event.payload["Bumped"]["to"].clone();
        event.event_type = "Incremented".into();
        event.event_version = "1".into();
        event.payload = json!({"Incremented": {"value": value}});
        event
    }
}

fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(BumpedUpcaster)]
}

pub fn metadata(correlation_id: &str) -> HashMap<String, String> {
    HashMap::from([
        ("correlation_id".to_string(), correlation_id.to_string()),
        ("actor".to_string(), "system:test".to_string()),
    ])
}

/// A raw event as cqrs-es hands it to a repository.
pub fn serialized(aggregate_id: &str, sequence: usize, event: &CounterEvent) -> SerializedEvent {
    SerializedEvent::new(
        aggregate_id.to_string(),
        sequence,
        Counter::TYPE.to_string(),
        event.event_type(),
        event.event_version(),
        serde_json::to_value(event).unwrap(),
        json!({"correlation_id": "raw"}),
    )
}

/// One store implementation, as the conformance suite sees it.
pub trait Backend: Send + Sync {
    type Repo: PersistedEventRepository + 'static;

    fn repo(&self) -> Self::Repo;
    fn cqrs(&self) -> CqrsFramework<Counter, PersistedEventStore<Self::Repo, Counter>>;
    fn log(&self) -> Arc<dyn EventLog>;
    fn chains(&self) -> Arc<dyn ChainSource>;
    fn checkpoints(&self) -> Arc<dyn CheckpointStore>;

    fn store(&self) -> PersistedEventStore<Self::Repo, Counter> {
        PersistedEventStore::new_event_store(self.repo()).with_upcasters(upcasters())
    }
}

/// The counter's state as the store rebuilds it.
pub async fn load<B: Backend>(backend: &B, aggregate_id: &str) -> (Counter, usize) {
    let context = backend
        .store()
        .load_aggregate(aggregate_id)
        .await
        .expect("load aggregate");
    (context.aggregate, context.current_sequence)
}

pub struct MemoryBackend {
    repo: MemoryEventRepository,
    checkpoints: MemoryCheckpointStore,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self {
            repo: MemoryEventRepository::new(),
            checkpoints: MemoryCheckpointStore::new(),
        }
    }
}

impl Backend for MemoryBackend {
    type Repo = MemoryEventRepository;

    fn repo(&self) -> Self::Repo {
        self.repo.clone()
    }

    fn cqrs(&self) -> CqrsFramework<Counter, PersistedEventStore<Self::Repo, Counter>> {
        memory_cqrs(self.repo.clone(), upcasters(), vec![], ())
    }

    fn log(&self) -> Arc<dyn EventLog> {
        Arc::new(self.repo.clone())
    }

    fn chains(&self) -> Arc<dyn ChainSource> {
        Arc::new(self.repo.clone())
    }

    fn checkpoints(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(self.checkpoints.clone())
    }
}

pub struct PgBackend {
    pub db: TestDb,
}

impl PgBackend {
    pub async fn new() -> Self {
        Self {
            db: test_db().await,
        }
    }
}

impl Backend for PgBackend {
    type Repo = PostgresEventRepository;

    fn repo(&self) -> Self::Repo {
        PostgresEventRepository::new(self.db.pool.clone())
    }

    fn cqrs(&self) -> CqrsFramework<Counter, PersistedEventStore<Self::Repo, Counter>> {
        pg_cqrs(self.db.pool.clone(), upcasters(), vec![], ())
    }

    fn log(&self) -> Arc<dyn EventLog> {
        Arc::new(PgEventLog::new(self.db.pool.clone()))
    }

    fn chains(&self) -> Arc<dyn ChainSource> {
        Arc::new(PgEventLog::new(self.db.pool.clone()))
    }

    fn checkpoints(&self) -> Arc<dyn CheckpointStore> {
        Arc::new(PgCheckpointStore::new(self.db.pool.clone()))
    }
}

/// Reads from `after` until `expected` events have arrived (waiting out other sessions' open transactions, at
/// most [`CATCH_UP_DEADLINE`]), then checks the log has nothing more.
pub async fn read_exactly(
    log: &dyn EventLog,
    after: LogPosition,
    expected: usize,
) -> Vec<LoggedEvent> {
    let started = Instant::now();
    let mut events: Vec<LoggedEvent> = Vec::new();
    let mut position = after;
    while events.len() < expected {
        let page = log
            .read_after(position, MAX_LOG_PAGE)
            .await
            .expect("read log");
        let mut previous = position;
        for event in &page {
            assert!(
                event.position > previous,
                "log went backwards: {:?} after {previous:?} (read from {position:?}); page {:?}; before {:?}",
                event.position,
                page.iter().map(|e| e.position).collect::<Vec<_>>(),
                events.iter().map(|e| e.position).collect::<Vec<_>>()
            );
            previous = event.position;
        }
        match page.last() {
            Some(last) => position = last.position,
            None => {
                assert!(
                    started.elapsed() < CATCH_UP_DEADLINE,
                    "log stuck at {} of {expected} events",
                    events.len()
                );
                tokio::time::sleep(CATCH_UP_POLL).await;
            }
        }
        events.extend(page);
    }
    let rest = log
        .read_after(position, MAX_LOG_PAGE)
        .await
        .expect("read log");
    assert!(
        rest.is_empty(),
        "unexpected extra events after {position:?}: {:?}; read before: {:?}",
        rest.iter().map(|e| e.position).collect::<Vec<_>>(),
        events.iter().map(|e| e.position).collect::<Vec<_>>()
    );
    events
}
