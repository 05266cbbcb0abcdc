//! The event store in Postgres: appends and per-aggregate reads through postgres-es's `PostgresEventRepository`
//! (table `events`, optimistic concurrency on its primary key), snapshots in our `snapshots` table. Events become JSON
//! here and only here, with `strom_domain::codec`.

use std::sync::Arc;

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use postgres_es::PostgresEventRepository;
use sqlx::{PgPool, Row};
use strom_domain::codec::{encode, Payload};
use strom_domain::{Decider, EventMetadata, StromEvent};

use super::AppendError;
use crate::log::{decode_event, CommitSignal, EventRef, PgEventLog, StoreError};

/// The Postgres event store of one schema. Clones share the pool and the commit signal.
#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
    repo: Arc<PostgresEventRepository>,
    commits: CommitSignal,
}

impl std::fmt::Debug for PgEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventStore").finish_non_exhaustive()
    }
}

const LOAD_SNAPSHOT_SQL: &str = "
SELECT sequence, state_version, state FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2";

const SAVE_SNAPSHOT_SQL: &str = "
INSERT INTO snapshots (aggregate_type, aggregate_id, sequence, state_version, state)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
   SET sequence = EXCLUDED.sequence, state_version = EXCLUDED.state_version, state = EXCLUDED.state,
       taken_at = now()
 WHERE snapshots.sequence < EXCLUDED.sequence OR snapshots.state_version <> EXCLUDED.state_version";

impl PgEventStore {
    /// The store in `pool`'s schema (migrated).
    pub fn new(pool: PgPool) -> Self {
        Self {
            repo: Arc::new(PostgresEventRepository::new(pool.clone())),
            pool,
            commits: CommitSignal::new(),
        }
    }

    /// The pool it reads and writes through.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The global log of this schema.
    pub fn log(&self) -> PgEventLog {
        PgEventLog::new(self.pool.clone())
    }

    pub(super) fn commits(&self) -> &CommitSignal {
        &self.commits
    }

    pub(super) async fn append<A: Decider + cqrs_es::Aggregate>(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        events: &[StromEvent],
        metadata: &EventMetadata,
    ) -> Result<(), AppendError> {
        // A struct of strings always serializes.
        let metadata = serde_json::to_value(metadata).unwrap_or_default();
        let serialized: Vec<SerializedEvent> = events
            .iter()
            .zip(expected_version + 1..)
            .map(|(event, sequence)| {
                SerializedEvent::new(
                    aggregate_id.to_owned(),
                    usize::try_from(sequence).unwrap_or(usize::MAX),
                    <A as Decider>::TYPE.to_owned(),
                    event.event_type().to_owned(),
                    event.event_version().to_owned(),
                    encode(event),
                    metadata.clone(),
                )
            })
            .collect();
        match self.repo.persist::<A>(&serialized, None).await {
            Ok(()) => Ok(()),
            Err(PersistenceError::OptimisticLockError) => Err(AppendError::Conflict),
            Err(other) => Err(AppendError::Store(StoreError::Repository(other))),
        }
    }

    pub(super) async fn events_after<A: Decider + cqrs_es::Aggregate>(
        &self,
        aggregate_id: &str,
        after: u64,
    ) -> Result<Vec<(u64, StromEvent)>, StoreError> {
        let rows = self
            .repo
            .get_last_events::<A>(aggregate_id, usize::try_from(after).unwrap_or(usize::MAX))
            .await?;
        rows.iter()
            .map(|row| {
                let sequence = row.sequence as u64;
                let at = EventRef {
                    aggregate_type: <A as Decider>::TYPE,
                    aggregate_id,
                    sequence,
                    event_type: &row.event_type,
                    event_version: &row.event_version,
                };
                let (event, _) = decode_event(at, Payload::Json(&row.payload), &row.metadata)?;
                Ok((sequence, event))
            })
            .collect()
    }

    pub(super) async fn load_snapshot<A: Decider>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(A, u64)>, StoreError> {
        let Some(row) = sqlx::query(LOAD_SNAPSHOT_SQL)
            .bind(<A as Decider>::TYPE)
            .bind(aggregate_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let sequence = crate::log::parse_sequence(row.try_get("sequence")?)?;
        let state_version: i32 = row.try_get("state_version")?;
        if i64::from(state_version) != i64::from(A::STATE_VERSION) {
            return Ok(None);
        }
        match serde_json::from_value::<A>(row.try_get("state")?) {
            Ok(state) => Ok(Some((state, sequence))),
            Err(e) => {
                tracing::warn!(aggregate_type = <A as Decider>::TYPE, aggregate_id, error = %e, "snapshot does not read as the current state; replaying the events instead");
                Ok(None)
            }
        }
    }

    pub(super) async fn save_snapshot<A: Decider>(
        &self,
        aggregate_id: &str,
        state: &A,
        version: u64,
    ) -> Result<(), StoreError> {
        let state = serde_json::to_value(state).map_err(|e| StoreError::Snapshot {
            aggregate_type: <A as Decider>::TYPE,
            aggregate_id: aggregate_id.to_owned(),
            reason: e.to_string(),
        })?;
        sqlx::query(SAVE_SNAPSHOT_SQL)
            .bind(<A as Decider>::TYPE)
            .bind(aggregate_id)
            .bind(i64::try_from(version).unwrap_or(i64::MAX))
            .bind(i32::try_from(A::STATE_VERSION).unwrap_or(i32::MAX))
            .bind(state)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
