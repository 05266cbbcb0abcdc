//! The write side's event store: append an aggregate's new events under optimistic concurrency, read an aggregate's
//! events after a version, keep snapshots of its state — in Postgres (through postgres-es) or in memory. Both hold
//! typed events ([`StromEvent`]); JSON is made and read only by the Postgres adapter, with `strom_domain::codec`.
//!
//! Postgres is the system of record; [`MemoryEventStore`] is the same port for embedded mode and tests, held to the
//! same conformance tests. Each is also the reader of its global log ([`crate::log::EventLog`]).

mod memory;
mod migrations;
mod postgres;
mod postgres_events;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sqlx::PgPool;
use strom_domain::{Decider, EventMetadata, StromEvent};

pub use memory::{Clock, MemoryEventStore};
pub use migrations::{apply_migrations, migration_name, pending_migrations, MigrationError};
pub use postgres::{migrate, pg_connect_options, MIGRATOR};
pub use postgres_events::{PgEventStore, SnapshotMismatch, SnapshotReport};

pub use crate::log::StoreError;
use crate::log::{
    verify_chains, ChainKey, ChainReport, ChainRow, ChainSource, CommitSignal, EventEnvelope,
    EventLog, VERIFY_PAGE,
};

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another command appended to the aggregate since the expected version (optimistic concurrency).
    #[error("the aggregate changed since it was loaded")]
    Conflict,
    /// The store failed; the events may or may not have been appended.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the events live. Clones share one store.
#[derive(Clone, Debug)]
pub enum EventStore {
    /// Postgres, the system of record.
    Postgres(PgEventStore),
    /// In memory: embedded mode and tests.
    Memory(MemoryEventStore),
}

impl EventStore {
    /// The Postgres store in `pool`'s schema (migrated).
    pub fn postgres(pool: PgPool) -> Self {
        Self::Postgres(PgEventStore::new(pool))
    }

    /// A fresh, empty memory store stamping `recorded_at` from the wall clock.
    pub fn memory() -> Self {
        Self::Memory(MemoryEventStore::new())
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Self::Memory(_))
    }

    /// The global log of this store.
    pub fn log(&self) -> Arc<dyn EventLog> {
        match self {
            Self::Postgres(store) => Arc::new(store.log()),
            Self::Memory(store) => Arc::new(store.clone()),
        }
    }

    /// Signalled after every append through this store (this process's commits).
    pub fn commits(&self) -> &CommitSignal {
        match self {
            Self::Postgres(store) => store.commits(),
            Self::Memory(store) => store.commits(),
        }
    }

    /// Appends `events` to aggregate `A` `aggregate_id`, whose last sequence must still be `expected_version`.
    ///
    /// # Errors
    /// [`AppendError::Conflict`] when another append came first, [`AppendError::Store`] when the store failed.
    pub async fn append<A: Decider + cqrs_es::Aggregate>(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        events: &[StromEvent],
        metadata: &EventMetadata,
    ) -> Result<(), AppendError> {
        match self {
            Self::Postgres(store) => {
                store
                    .append::<A>(aggregate_id, expected_version, events, metadata)
                    .await
            }
            Self::Memory(store) => store.append(
                <A as Decider>::TYPE,
                aggregate_id,
                expected_version,
                events,
                metadata,
            ),
        }?;
        self.commits().notify();
        Ok(())
    }

    /// The events of `A` `aggregate_id` after sequence `after`, in order, with their sequences.
    ///
    /// # Errors
    /// The store failed, or a stored event does not decode.
    pub async fn events_after<A: Decider + cqrs_es::Aggregate>(
        &self,
        aggregate_id: &str,
        after: u64,
    ) -> Result<Vec<(u64, StromEvent)>, StoreError> {
        match self {
            Self::Postgres(store) => store.events_after::<A>(aggregate_id, after).await,
            Self::Memory(store) => {
                Ok(store.events_after(<A as Decider>::TYPE, aggregate_id, after))
            }
        }
    }

    /// Up to `limit` envelopes of one stream (`aggregate_type` `aggregate_id`) after sequence `after`, in sequence
    /// order: an aggregate's timeline as stored.
    ///
    /// # Errors
    /// The store failed.
    pub async fn stream_envelopes_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        match self {
            Self::Postgres(store) => {
                store
                    .log()
                    .stream_envelopes_after(aggregate_type, aggregate_id, after, limit)
                    .await
            }
            Self::Memory(store) => {
                Ok(store.stream_envelopes_after(aggregate_type, aggregate_id, after, limit))
            }
        }
    }

    /// Verifies one stream's hash chain from genesis with [`verify_chains`], the code `strom replay --verify` runs
    /// over every stream, fed only this stream's rows.
    ///
    /// # Errors
    /// The store failed. Problems with the chain are not errors: they are in the report.
    pub async fn verify_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<StreamVerification, StoreError> {
        let source = OneStream {
            store: self,
            aggregate_type,
            aggregate_id,
            head_hash: Mutex::new(None),
        };
        let report = verify_chains(&source).await?;
        let head_hash = source
            .head_hash
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(StreamVerification { report, head_hash })
    }

    async fn stream_chain_rows_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError> {
        match self {
            Self::Postgres(store) => {
                store
                    .log()
                    .stream_chain_rows_after(aggregate_type, aggregate_id, after, limit)
                    .await
            }
            Self::Memory(store) => {
                Ok(store.stream_chain_rows_after(aggregate_type, aggregate_id, after, limit))
            }
        }
    }

    /// The latest snapshot of `A` `aggregate_id` and the sequence it was taken at. A snapshot of an older state shape
    /// (or one that no longer reads) is ignored, so the caller replays instead.
    ///
    /// # Errors
    /// The store failed.
    pub async fn load_snapshot<A: Decider>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(A, u64)>, StoreError> {
        match self {
            Self::Postgres(store) => store.load_snapshot::<A>(aggregate_id).await,
            Self::Memory(store) => Ok(store.load_snapshot::<A>(aggregate_id)),
        }
    }

    /// Keeps `state` as `A` `aggregate_id`'s snapshot at `version`, unless a newer one is already kept. Snapshots are
    /// a cache: losing one costs a longer load, never a wrong state.
    ///
    /// # Errors
    /// The store failed.
    pub async fn save_snapshot<A: Decider>(
        &self,
        aggregate_id: &str,
        state: &A,
        version: u64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Postgres(store) => store.save_snapshot(aggregate_id, state, version).await,
            Self::Memory(store) => {
                store.save_snapshot(aggregate_id, state, version);
                Ok(())
            }
        }
    }
}

/// What [`EventStore::verify_stream`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamVerification {
    /// The chain report of the one stream (`streams` is 0 for a stream without events).
    pub report: ChainReport,
    /// The stored hash of the stream's last event; `None` for an empty stream.
    pub head_hash: Option<String>,
}

/// One stream of a store as a [`ChainSource`], remembering the last hash it handed out (the stream's head).
struct OneStream<'a> {
    store: &'a EventStore,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    head_hash: Mutex<Option<String>>,
}

#[async_trait]
impl ChainSource for OneStream<'_> {
    async fn read_chain_rows_after(
        &self,
        after: Option<&ChainKey>,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError> {
        // `after` is always a row this source returned, so of this stream.
        let after = after.map_or(0, |key| key.sequence);
        let rows = self
            .store
            .stream_chain_rows_after(
                self.aggregate_type,
                self.aggregate_id,
                after,
                limit.min(VERIFY_PAGE),
            )
            .await?;
        if let Some(last) = rows.last() {
            *self
                .head_hash
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(last.hash.clone());
        }
        Ok(rows)
    }
}
