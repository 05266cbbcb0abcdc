//! In-memory event store: the same port as Postgres for embedded mode, backtests and tests, with the same
//! semantics (per-aggregate optimistic concurrency, a global log with positions, event ids, the hash chain).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::persist::{
    EventUpcaster, PersistedEventRepository, PersistedEventStore, PersistenceError, ReplayStream,
    SerializedEvent, SerializedSnapshot,
};
use cqrs_es::{Aggregate, CqrsFramework, Query};
use serde_json::Value;
use uuid::Uuid;

use super::log::{CheckpointStore, EventLog, LogPosition, LoggedEvent, MAX_LOG_PAGE};
use super::verify::{ChainKey, ChainRow, ChainSource};
use super::{chain_hash_text, jsonb_text, StoreError, GENESIS_HASH};

/// Where `recorded_at` comes from. Backtests inject their simulated clock; the default reads the wall clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Failures the memory store reports where Postgres would raise an error other than a conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryStoreError {
    /// An event skipped a sequence number (the Postgres trigger refuses the same).
    #[error(
        "event store: {aggregate_type} {aggregate_id} sequence {sequence} has no previous event"
    )]
    MissingPrevious {
        /// The aggregate's type.
        aggregate_type: String,
        /// The aggregate instance.
        aggregate_id: String,
        /// The sequence that was refused.
        sequence: u64,
    },
}

/// The cqrs-es event store over [`MemoryEventRepository`], events as the source of truth.
pub type MemoryEventStore<A> = PersistedEventStore<MemoryEventRepository, A>;

/// A command framework persisting to memory.
pub type MemoryCqrs<A> = CqrsFramework<A, MemoryEventStore<A>>;

/// Builds the command framework for aggregate `A` over `repo` (a clone shares the same log), like
/// [`pg_cqrs`](super::pg_cqrs).
pub fn memory_cqrs<A: Aggregate>(
    repo: MemoryEventRepository,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    queries: Vec<Box<dyn Query<A>>>,
    services: A::Services,
) -> MemoryCqrs<A> {
    let store = PersistedEventStore::new_event_store(repo).with_upcasters(upcasters);
    CqrsFramework::new(store, queries, services)
}

/// An event repository and global log in memory. Clones share the same data; every append is atomic and
/// committed at once, so the log has no invisible in-flight transactions and its order is the append order.
#[derive(Clone)]
pub struct MemoryEventRepository {
    state: Arc<Mutex<MemoryState>>,
    clock: Clock,
}

/// (aggregate_type, aggregate_id).
type StreamKey = (String, String);

#[derive(Default)]
struct MemoryState {
    /// Every event in log order; positions strictly increase along it.
    log: Vec<LoggedEvent>,
    /// Per aggregate (type, id): indices into `log` in sequence order (index i holds sequence i + 1).
    streams: BTreeMap<StreamKey, Vec<usize>>,
    /// Per aggregate (type, id): the snapshot, if snapshots are used.
    snapshots: BTreeMap<StreamKey, SerializedSnapshot>,
    last_tx_id: u64,
    last_global_position: i64,
}

impl Default for MemoryEventRepository {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryEventRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let events = self.lock().log.len();
        f.debug_struct("MemoryEventRepository")
            .field("events", &events)
            .finish_non_exhaustive()
    }
}

impl MemoryEventRepository {
    /// An empty store stamping `recorded_at` from the wall clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(Utc::now))
    }

    /// An empty store stamping `recorded_at` from `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            state: Arc::default(),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while the lock was held happened between validation and the append loop, neither of which
        // leaves partial state, so the data is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn events_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
    ) -> Vec<SerializedEvent> {
        let state = self.lock();
        let key = (aggregate_type.to_string(), aggregate_id.to_string());
        let Some(indices) = state.streams.get(&key) else {
            return Vec::new();
        };
        indices
            .iter()
            .skip(usize::try_from(after).unwrap_or(usize::MAX))
            .map(|&i| serialized(&state.log[i]))
            .collect()
    }
}

fn serialized(event: &LoggedEvent) -> SerializedEvent {
    SerializedEvent::new(
        event.aggregate_id.clone(),
        event.sequence as usize,
        event.aggregate_type.clone(),
        event.event_type.clone(),
        event.event_version.clone(),
        event.payload.clone(),
        event.metadata.clone(),
    )
}

async fn replay(events: Vec<SerializedEvent>) -> ReplayStream {
    // The channel holds the whole (already materialised) batch, so pushing never waits for the consumer.
    let (mut feed, stream) = ReplayStream::new(events.len().max(1));
    for event in events {
        if feed.push(Ok(event)).await.is_err() {
            break;
        }
    }
    stream
}

impl MemoryState {
    fn stream_len(&self, key: &StreamKey) -> u64 {
        self.streams.get(key).map_or(0, |s| s.len() as u64)
    }

    /// Checks the whole batch before anything is written, like the Postgres transaction that would roll back.
    fn validate<A: Aggregate>(&self, events: &[SerializedEvent]) -> Result<(), PersistenceError> {
        let mut staged: BTreeMap<&str, u64> = BTreeMap::new();
        for event in events {
            let key = (A::TYPE.to_string(), event.aggregate_id.clone());
            let len = staged
                .entry(event.aggregate_id.as_str())
                .or_insert_with(|| self.stream_len(&key));
            let sequence = event.sequence as u64;
            if sequence <= *len {
                return Err(PersistenceError::OptimisticLockError);
            }
            if sequence != *len + 1 {
                return Err(PersistenceError::UnknownError(Box::new(
                    MemoryStoreError::MissingPrevious {
                        aggregate_type: A::TYPE.to_string(),
                        aggregate_id: event.aggregate_id.clone(),
                        sequence,
                    },
                )));
            }
            *len += 1;
        }
        Ok(())
    }

    /// postgres-es's snapshot rule: snapshot 1 is inserted, later ones replace exactly their predecessor.
    fn stage_snapshot<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        update: Option<(String, Value, usize)>,
    ) -> Result<Option<(StreamKey, SerializedSnapshot)>, PersistenceError> {
        let Some((aggregate_id, aggregate, current_snapshot)) = update else {
            return Ok(None);
        };
        let key = (A::TYPE.to_string(), aggregate_id.clone());
        let existing = self.snapshots.get(&key).map(|s| s.current_snapshot);
        let expected = current_snapshot.checked_sub(1).filter(|&n| n > 0);
        if existing != expected {
            return Err(PersistenceError::OptimisticLockError);
        }
        let snapshot = SerializedSnapshot {
            aggregate_id,
            aggregate,
            current_sequence: events.last().map_or(0, |e| e.sequence),
            current_snapshot,
        };
        Ok(Some((key, snapshot)))
    }

    fn append<A: Aggregate>(&mut self, events: &[SerializedEvent], recorded_at: DateTime<Utc>) {
        if events.is_empty() {
            return;
        }
        self.last_tx_id += 1;
        for event in events {
            let key = (A::TYPE.to_string(), event.aggregate_id.clone());
            let stream = self.streams.entry(key).or_default();
            let prev_hash = stream
                .last()
                .map_or(GENESIS_HASH, |&i| self.log[i].hash.as_str());
            let sequence = event.sequence as u64;
            debug_assert_eq!(sequence, stream.len() as u64 + 1, "validated contiguous");
            let hash = chain_hash_text(
                prev_hash,
                A::TYPE,
                &event.aggregate_id,
                sequence,
                &event.event_type,
                &event.event_version,
                &jsonb_text(&event.payload),
            );
            self.last_global_position += 1;
            stream.push(self.log.len());
            self.log.push(LoggedEvent {
                position: LogPosition {
                    tx_id: self.last_tx_id,
                    global_position: self.last_global_position,
                },
                event_id: Uuid::new_v4(),
                aggregate_type: A::TYPE.to_string(),
                aggregate_id: event.aggregate_id.clone(),
                sequence,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload: event.payload.clone(),
                metadata: event.metadata.clone(),
                recorded_at,
                hash,
            });
        }
    }
}

impl PersistedEventRepository for MemoryEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        Ok(self.events_of(A::TYPE, aggregate_id, 0))
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        Ok(self.events_of(A::TYPE, aggregate_id, last_sequence as u64))
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let key = (A::TYPE.to_string(), aggregate_id.to_string());
        Ok(self.lock().snapshots.get(&key).map(|s| SerializedSnapshot {
            aggregate_id: s.aggregate_id.clone(),
            aggregate: s.aggregate.clone(),
            current_sequence: s.current_sequence,
            current_snapshot: s.current_snapshot,
        }))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let recorded_at = (self.clock)();
        let mut state = self.lock();
        state.validate::<A>(events)?;
        let snapshot = state.stage_snapshot::<A>(events, snapshot_update)?;
        state.append::<A>(events, recorded_at);
        if let Some((key, snapshot)) = snapshot {
            state.snapshots.insert(key, snapshot);
        }
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        Ok(replay(self.events_of(A::TYPE, aggregate_id, 0)).await)
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let events = {
            let state = self.lock();
            state
                .log
                .iter()
                .filter(|e| e.aggregate_type == A::TYPE)
                .map(serialized)
                .collect()
        };
        Ok(replay(events).await)
    }
}

#[async_trait]
impl EventLog for MemoryEventRepository {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let state = self.lock();
        let start = state.log.partition_point(|e| e.position <= after);
        Ok(state.log[start..]
            .iter()
            .take(limit.min(MAX_LOG_PAGE))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ChainSource for MemoryEventRepository {
    async fn read_chain_rows_after(
        &self,
        after: Option<&ChainKey>,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError> {
        let state = self.lock();
        let limit = limit.min(MAX_LOG_PAGE);
        let streams = match after {
            None => state.streams.range::<StreamKey, _>(..),
            Some(key) => state
                .streams
                .range((key.aggregate_type.clone(), key.aggregate_id.clone())..),
        };
        let rows = streams
            .flat_map(|(_, indices)| indices.iter().map(|&i| &state.log[i]))
            .filter(|e| {
                after
                    .is_none_or(|key| key.is_before(&e.aggregate_type, &e.aggregate_id, e.sequence))
            })
            .take(limit)
            .map(|e| ChainRow {
                aggregate_type: e.aggregate_type.clone(),
                aggregate_id: e.aggregate_id.clone(),
                sequence: e.sequence,
                event_type: e.event_type.clone(),
                event_version: e.event_version.clone(),
                payload_text: jsonb_text(&e.payload),
                hash: e.hash.clone(),
            })
            .collect();
        Ok(rows)
    }
}

/// Checkpoints in memory (for projectors over [`MemoryEventRepository`]).
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpointStore {
    positions: Arc<Mutex<BTreeMap<String, LogPosition>>>,
}

impl MemoryCheckpointStore {
    /// No checkpoints yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn load(&self, name: &str) -> Result<Option<LogPosition>, StoreError> {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(positions.get(name).copied())
    }

    async fn save(&self, name: &str, position: LogPosition) -> Result<(), StoreError> {
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        positions.insert(name.to_string(), position);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    struct Probe;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Poked;

    impl cqrs_es::DomainEvent for Poked {
        fn event_type(&self) -> String {
            "Poked".into()
        }
        fn event_version(&self) -> String {
            "1".into()
        }
    }

    impl Aggregate for Probe {
        const TYPE: &'static str = "Probe";
        type Command = ();
        type Event = Poked;
        type Error = std::io::Error;
        type Services = ();

        async fn handle(
            &mut self,
            _: (),
            _: &(),
            sink: &cqrs_es::event_sink::EventSink<Self>,
        ) -> Result<(), Self::Error> {
            sink.write(Poked, self).await;
            Ok(())
        }

        fn apply(&mut self, _: Poked) {}
    }

    fn event(id: &str, sequence: usize) -> SerializedEvent {
        SerializedEvent::new(
            id.into(),
            sequence,
            "Probe".into(),
            "Poked".into(),
            "1".into(),
            json!("Poked"),
            json!({}),
        )
    }

    #[tokio::test]
    async fn an_injected_clock_stamps_recorded_at_and_positions_follow_append_order() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T10:00:00.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let repo = MemoryEventRepository::with_clock(Arc::new(move || at));
        repo.persist::<Probe>(&[event("b", 1), event("b", 2)], None)
            .await
            .unwrap();
        repo.persist::<Probe>(&[event("a", 1)], None).await.unwrap();
        let log = repo.read_after(LogPosition::START, 10).await.unwrap();
        let positions: Vec<(u64, i64)> = log
            .iter()
            .map(|e| (e.position.tx_id, e.position.global_position))
            .collect();
        assert_eq!(positions, [(1, 1), (1, 2), (2, 3)]);
        assert!(log.iter().all(|e| e.recorded_at == at));
        assert_eq!(
            repo.read_after(log[1].position, 10).await.unwrap(),
            log[2..]
        );
        assert_eq!(
            repo.read_after(log[0].position, 1).await.unwrap(),
            log[1..2]
        );
    }

    #[tokio::test]
    async fn chain_rows_resume_after_a_key_in_aggregate_order() {
        let repo = MemoryEventRepository::new();
        for id in ["b", "a", "c"] {
            repo.persist::<Probe>(&[event(id, 1), event(id, 2)], None)
                .await
                .unwrap();
        }
        let after = ChainKey {
            aggregate_type: "Probe".into(),
            aggregate_id: "a".into(),
            sequence: 1,
        };
        let rows = repo.read_chain_rows_after(Some(&after), 3).await.unwrap();
        let keys: Vec<(String, u64)> = rows
            .iter()
            .map(|r| (r.aggregate_id.clone(), r.sequence))
            .collect();
        assert_eq!(keys, [("a".into(), 2), ("b".into(), 1), ("b".into(), 2)]);
    }
}
