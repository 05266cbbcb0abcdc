//! The event store in Postgres: appends and per-aggregate reads through postgres-es's `PostgresEventRepository`
//! (table `events`, optimistic concurrency on its primary key), snapshots in our `snapshots` table. Events become JSON
//! here and only here, with `strom_domain::codec`.

use std::sync::Arc;

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use postgres_es::PostgresEventRepository;
use sqlx::{PgPool, Row};
use strom_domain::codec::{encode, Payload};
use strom_domain::{Agent, Backtest, Decider, EventMetadata, Logged, StromEvent};

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

/// Snapshots verified per query: a page of states (a few kilobytes each) at a time keeps an audit's memory flat.
const VERIFY_SNAPSHOTS_PAGE: i64 = 1_000;

const SNAPSHOTS_AFTER_SQL: &str = "
SELECT aggregate_type, aggregate_id, sequence, state_version, state FROM snapshots
 WHERE (aggregate_type, aggregate_id) > ($1, $2)
 ORDER BY aggregate_type, aggregate_id
 LIMIT $3";

/// A snapshot that does not hold the state its aggregate's events fold to: edited, or written by a bug. Commands load
/// from snapshots, so `strom replay --verify` reports it (the hash chain does not cover snapshots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMismatch {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
}

/// What [`PgEventStore::verify_snapshots`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Snapshots of the current state shape, refolded and compared.
    pub checked: u64,
    /// Snapshots of another state shape: ignored by loads, so not checked.
    pub other_versions: u64,
    pub mismatches: Vec<SnapshotMismatch>,
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

    /// Refolds every snapshot's aggregate from its events up to the snapshot's sequence and compares the states (an
    /// audit: it reads the history of every snapshotted aggregate).
    ///
    /// # Errors
    /// The store failed or an event does not decode.
    pub async fn verify_snapshots(&self) -> Result<SnapshotReport, StoreError> {
        let mut report = SnapshotReport::default();
        let mut after = (String::new(), String::new());
        loop {
            let rows = sqlx::query(SNAPSHOTS_AFTER_SQL)
                .bind(&after.0)
                .bind(&after.1)
                .bind(VERIFY_SNAPSHOTS_PAGE)
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = rows.last() else {
                return Ok(report);
            };
            after = (
                last.try_get("aggregate_type")?,
                last.try_get("aggregate_id")?,
            );
            for row in &rows {
                self.verify_snapshot(row, &mut report).await?;
            }
        }
    }

    async fn verify_snapshot(
        &self,
        row: &sqlx::postgres::PgRow,
        report: &mut SnapshotReport,
    ) -> Result<(), StoreError> {
        let aggregate_type: String = row.try_get("aggregate_type")?;
        let aggregate_id: String = row.try_get("aggregate_id")?;
        let sequence = crate::log::parse_sequence(row.try_get("sequence")?)?;
        let state_version: i32 = row.try_get("state_version")?;
        let stored: serde_json::Value = row.try_get("state")?;
        let refolded = match aggregate_type.as_str() {
            "Agent" if current::<Agent>(state_version) => {
                self.refold::<Agent>(&aggregate_id, sequence).await?
            }
            "Backtest" if current::<Backtest>(state_version) => {
                self.refold::<Backtest>(&aggregate_id, sequence).await?
            }
            "Agent" | "Backtest" => {
                report.other_versions += 1;
                return Ok(());
            }
            _ => None,
        };
        report.checked += 1;
        if refolded.as_ref() != Some(&stored) {
            report.mismatches.push(SnapshotMismatch {
                aggregate_type,
                aggregate_id,
                sequence,
            });
        }
        Ok(())
    }

    /// `A`'s state after its events up to `sequence`, as a snapshot stores it; `None` if it has fewer events.
    async fn refold<A: Logged + cqrs_es::Aggregate>(
        &self,
        aggregate_id: &str,
        sequence: u64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let events = self.events_after::<A>(aggregate_id, 0).await?;
        if events.len() < usize::try_from(sequence).unwrap_or(usize::MAX) {
            return Ok(None);
        }
        let mut state = A::default();
        for (_, event) in events.iter().take_while(|(s, _)| *s <= sequence) {
            if let Some(event) = A::unwrap(event) {
                state.evolve(event);
            }
        }
        Ok(serde_json::to_value(&state).ok())
    }
}

/// Whether a stored `state_version` is `A`'s current state shape.
fn current<A: Decider>(state_version: i32) -> bool {
    i64::from(state_version) == i64::from(A::STATE_VERSION)
}
