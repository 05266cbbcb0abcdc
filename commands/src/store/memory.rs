//! The event store in memory: the same port as Postgres for embedded mode and tests, with the same semantics
//! (per-aggregate optimistic concurrency, a global log with positions, event ids, the hash chain), holding typed
//! events. Readers get the logged events themselves (shared, `Arc`), never copies, so a rebuild from memory costs the
//! fold and nothing else.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use strom_domain::codec::encode;
use strom_domain::{Decider, EventMetadata, StromEvent};
use uuid::Uuid;

use super::AppendError;
use crate::log::{
    chain_hash_text, jsonb_text, ChainKey, ChainRow, ChainSource, CheckpointStore, CommitSignal,
    EventEnvelope, EventLog, LogPosition, LoggedEvent, StoreError, GENESIS_HASH, MAX_LOG_PAGE,
};

/// Where `recorded_at` comes from. Scenarios inject a deterministic clock; the default reads the wall clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// (aggregate_type, aggregate_id).
type StreamKey = (&'static str, String);

/// The event store and its global log in memory. Clones share the same data; every append is atomic and committed at
/// once, so the log has no invisible in-flight transactions and its order is the append order.
#[derive(Clone)]
pub struct MemoryEventStore {
    state: Arc<Mutex<MemoryState>>,
    clock: Clock,
    commits: CommitSignal,
}

#[derive(Default)]
struct MemoryState {
    /// Every event in log order; positions strictly increase along it.
    log: Vec<Arc<LoggedEvent>>,
    /// Per aggregate: indices into `log` in sequence order (index i holds sequence i + 1).
    streams: BTreeMap<StreamKey, Vec<usize>>,
    /// Per aggregate: the latest snapshot and its sequence (typed; the `Any` is the aggregate's own state type).
    snapshots: BTreeMap<StreamKey, (u64, Arc<dyn Any + Send + Sync>)>,
    /// Named checkpoints of memory followers (projectors, relay).
    checkpoints: BTreeMap<String, LogPosition>,
    last_tx_id: u64,
    last_global_position: i64,
}

impl Default for MemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let events = self.lock().log.len();
        f.debug_struct("MemoryEventStore")
            .field("events", &events)
            .finish_non_exhaustive()
    }
}

impl MemoryEventStore {
    /// An empty store stamping `recorded_at` from the wall clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(Utc::now))
    }

    /// An empty store stamping `recorded_at` from `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            state: Arc::default(),
            clock,
            commits: CommitSignal::new(),
        }
    }

    pub(super) fn commits(&self) -> &CommitSignal {
        &self.commits
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // Appends validate the whole batch before changing anything, so a panic while the lock was held leaves
        // consistent data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every event in log order (shared, not copied).
    pub fn events(&self) -> Vec<Arc<LoggedEvent>> {
        self.lock().log.clone()
    }

    pub(super) fn append(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
        expected_version: u64,
        events: &[StromEvent],
        metadata: &EventMetadata,
    ) -> Result<(), AppendError> {
        let recorded_at = (self.clock)();
        let mut state = self.lock();
        let key: StreamKey = (aggregate_type, aggregate_id.to_owned());
        let length = state.streams.get(&key).map_or(0, |s| s.len() as u64);
        if length != expected_version {
            // Postgres refuses a taken sequence as a conflict and a gap through the trigger; the same here.
            return Err(if length > expected_version {
                AppendError::Conflict
            } else {
                AppendError::Store(StoreError::MissingPrevious {
                    aggregate_type,
                    aggregate_id: aggregate_id.to_owned(),
                    sequence: expected_version + 1,
                })
            });
        }
        if events.is_empty() {
            return Ok(());
        }
        state.last_tx_id += 1;
        for (i, event) in events.iter().enumerate() {
            debug_assert_eq!(
                event.aggregate_type(),
                aggregate_type,
                "one aggregate per append"
            );
            state.push(
                &key,
                expected_version + 1 + i as u64,
                event.clone(),
                metadata.clone(),
                recorded_at,
            );
        }
        Ok(())
    }

    pub(super) fn events_after(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
        after: u64,
    ) -> Vec<(u64, StromEvent)> {
        let state = self.lock();
        let Some(indices) = state
            .streams
            .get(&(aggregate_type, aggregate_id.to_owned()))
        else {
            return Vec::new();
        };
        indices
            .iter()
            .skip(usize::try_from(after).unwrap_or(usize::MAX))
            .map(|&i| (state.log[i].sequence, state.log[i].event.clone()))
            .collect()
    }

    /// Up to `limit` events of one stream after sequence `after`, in sequence order (shared, not copied).
    fn stream_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Vec<Arc<LoggedEvent>> {
        let Some(aggregate_type) = strom_domain::event::AGGREGATE_TYPES
            .iter()
            .find(|t| **t == aggregate_type)
        else {
            return Vec::new();
        };
        let state = self.lock();
        let Some(indices) = state
            .streams
            .get(&(*aggregate_type, aggregate_id.to_owned()))
        else {
            return Vec::new();
        };
        indices
            .iter()
            .skip(usize::try_from(after).unwrap_or(usize::MAX))
            .take(limit.min(MAX_LOG_PAGE))
            .map(|&i| Arc::clone(&state.log[i]))
            .collect()
    }

    /// [`crate::log::PgEventLog::stream_envelopes_after`] in memory.
    pub(super) fn stream_envelopes_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Vec<EventEnvelope> {
        self.stream_after(aggregate_type, aggregate_id, after, limit)
            .iter()
            .map(|e| e.envelope())
            .collect()
    }

    /// [`crate::log::PgEventLog::stream_chain_rows_after`] in memory.
    pub(super) fn stream_chain_rows_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Vec<ChainRow> {
        self.stream_after(aggregate_type, aggregate_id, after, limit)
            .iter()
            .map(|e| chain_row(e))
            .collect()
    }

    pub(super) fn load_snapshot<A: Decider>(&self, aggregate_id: &str) -> Option<(A, u64)> {
        let state = self.lock();
        let (version, snapshot) = state.snapshots.get(&(A::TYPE, aggregate_id.to_owned()))?;
        snapshot
            .downcast_ref::<A>()
            .map(|aggregate| (aggregate.clone(), *version))
    }

    pub(super) fn save_snapshot<A: Decider>(&self, aggregate_id: &str, state: &A, version: u64) {
        let mut store = self.lock();
        let entry = store
            .snapshots
            .entry((A::TYPE, aggregate_id.to_owned()))
            .or_insert_with(|| (0, Arc::new(())));
        if entry.0 < version {
            *entry = (version, Arc::new(state.clone()));
        }
    }
}

impl MemoryState {
    fn push(
        &mut self,
        key: &StreamKey,
        sequence: u64,
        event: StromEvent,
        metadata: EventMetadata,
        recorded_at: DateTime<Utc>,
    ) {
        let stream = self.streams.entry(key.clone()).or_default();
        let prev_hash = stream
            .last()
            .map_or(GENESIS_HASH, |&i| self.log[i].hash.as_str());
        // The memory store's one use of JSON: the chain hashes the stored form, exactly as the Postgres trigger does,
        // so an export of a memory log verifies like one of Postgres.
        let hash = chain_hash_text(
            prev_hash,
            key.0,
            &key.1,
            sequence,
            event.event_type(),
            event.event_version(),
            &jsonb_text(&encode(&event)),
        );
        self.last_global_position += 1;
        stream.push(self.log.len());
        self.log.push(Arc::new(LoggedEvent {
            position: LogPosition {
                tx_id: self.last_tx_id,
                global_position: self.last_global_position,
            },
            event_id: Uuid::new_v4(),
            aggregate_id: key.1.clone(),
            sequence,
            event,
            metadata,
            recorded_at,
            hash,
        }));
    }

    /// Index of the first event after `after`.
    fn start_after(&self, after: LogPosition) -> usize {
        self.log.partition_point(|e| e.position <= after)
    }
}

#[async_trait]
impl EventLog for MemoryEventStore {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<Arc<LoggedEvent>>, StoreError> {
        let state = self.lock();
        let start = state.start_after(after);
        let end = start
            .saturating_add(limit.min(MAX_LOG_PAGE))
            .min(state.log.len());
        Ok(state.log[start..end].to_vec())
    }

    async fn read_envelopes_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let page = self.read_after(after, limit).await?;
        Ok(page.iter().map(|e| e.envelope()).collect())
    }

    async fn head(&self) -> Result<LogPosition, StoreError> {
        Ok(self
            .lock()
            .log
            .last()
            .map_or(LogPosition::START, |e| e.position))
    }

    async fn backlog(&self, after: LogPosition, cap: u64) -> Result<u64, StoreError> {
        let state = self.lock();
        let behind = state.log.len() - state.start_after(after);
        Ok((behind as u64).min(cap))
    }
}

#[async_trait]
impl ChainSource for MemoryEventStore {
    async fn read_chain_rows_after(
        &self,
        after: Option<&ChainKey>,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError> {
        let state = self.lock();
        let limit = limit.min(MAX_LOG_PAGE);
        let streams = match after {
            None => state.streams.range::<StreamKey, _>(..),
            Some(key) => {
                let Some(aggregate_type) = strom_domain::event::AGGREGATE_TYPES
                    .iter()
                    .find(|t| **t == key.aggregate_type)
                else {
                    return Ok(Vec::new());
                };
                state
                    .streams
                    .range((*aggregate_type, key.aggregate_id.clone())..)
            }
        };
        let rows = streams
            .flat_map(|(key, indices)| indices.iter().map(move |&i| (key.0, i)))
            .map(|(aggregate_type, i)| (aggregate_type, &state.log[i]))
            .filter(|(aggregate_type, e)| {
                after.is_none_or(|key| key.is_before(aggregate_type, &e.aggregate_id, e.sequence))
            })
            .take(limit)
            .map(|(_, e)| chain_row(e))
            .collect();
        Ok(rows)
    }
}

/// The hashed fields of `e` as Postgres would hold them (the jsonb text the trigger hashed).
fn chain_row(e: &LoggedEvent) -> ChainRow {
    ChainRow {
        aggregate_type: e.aggregate_type().to_owned(),
        aggregate_id: e.aggregate_id.clone(),
        sequence: e.sequence,
        event_type: e.event_type().to_owned(),
        event_version: e.event.event_version().to_owned(),
        payload_text: jsonb_text(&encode(&e.event)),
        hash: e.hash.clone(),
    }
}

/// Checkpoints of followers of this store's log (projectors and the relay in embedded mode).
#[async_trait]
impl CheckpointStore for MemoryEventStore {
    async fn load(&self, name: &str) -> Result<Option<LogPosition>, StoreError> {
        Ok(self.lock().checkpoints.get(name).copied())
    }

    async fn save(&self, name: &str, position: LogPosition) -> Result<(), StoreError> {
        self.lock().checkpoints.insert(name.to_owned(), position);
        Ok(())
    }
}
