//! Postgres adapters: migrations, cqrs-es wiring over postgres-es, the global log reader and checkpoints.

use std::str::FromStr;

use async_trait::async_trait;
use cqrs_es::persist::{EventUpcaster, PersistedEventStore};
use cqrs_es::{Aggregate, CqrsFramework, Query};
use postgres_es::PostgresEventRepository;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{PgExecutor, PgPool, Row};

use super::log::{CheckpointStore, EventLog, LogPosition, LoggedEvent, MAX_LOG_PAGE};
use super::verify::{ChainKey, ChainRow, ChainSource};
use super::StoreError;

/// The migrations in `migrations/`, embedded at compile time so the `strom` binary needs no files to migrate.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Applies the embedded migrations that `pool`'s database (schema: first on the search_path) has not applied yet.
/// Safe to run any number of times: sqlx records applied migrations in `_sqlx_migrations`.
///
/// # Errors
/// A migration failed, or one already applied was changed since (checksum mismatch).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Connection options for `url`, with `schema` (if any) as the only search_path entry, so postgres-es's and our
/// unqualified table names resolve there (`STROM_DATABASE_SCHEMA`; tests use one schema each).
///
/// # Errors
/// `url` is not a Postgres URL, or `schema` is not a plain lower-case identifier.
pub fn pg_connect_options(url: &str, schema: Option<&str>) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidConnection(format!("database URL: {e}")))?;
    let Some(schema) = schema else {
        return Ok(options);
    };
    // The value goes into the startup packet's `-c search_path=...` unescaped, so accept only names that need no
    // quoting (Postgres's identifier limit is 63 bytes).
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !plain {
        return Err(StoreError::InvalidConnection(format!(
            "schema {schema:?} must be 1..=63 of [a-z0-9_], not starting with a digit"
        )));
    }
    Ok(options.options([("search_path", schema)]))
}

/// The cqrs-es event store over postgres-es, events as the source of truth.
pub type PgEventStore<A> = PersistedEventStore<PostgresEventRepository, A>;

/// A command framework persisting to Postgres.
pub type PgCqrs<A> = CqrsFramework<A, PgEventStore<A>>;

/// Builds the command framework for aggregate `A` over `pool`, loading old event versions through `upcasters`
/// (in the order given). `queries` run in-process after each commit; they are best-effort (a crash between commit
/// and dispatch loses them), so use them only as wake-ups, never to build read models.
pub fn pg_cqrs<A: Aggregate>(
    pool: PgPool,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    queries: Vec<Box<dyn Query<A>>>,
    services: A::Services,
) -> PgCqrs<A> {
    let store = PersistedEventStore::new_event_store(PostgresEventRepository::new(pool))
        .with_upcasters(upcasters);
    CqrsFramework::new(store, queries, services)
}

/// The global log and the hash chains, read from the `events` table.
#[derive(Debug, Clone)]
pub struct PgEventLog {
    pool: PgPool,
}

impl PgEventLog {
    /// A reader over `pool`'s `events` table.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

// The text copy of tx_id must not be aliased `tx_id`: ORDER BY resolves a bare name to an output column first, and
// ordering the text ("10003" < "9903") breaks the log order whenever transaction ids gain a digit.
const READ_AFTER_SQL: &str = "
SELECT e.tx_id::text AS tx_id_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence,
       e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at, e.hash
  FROM events e
 WHERE e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
   AND (e.tx_id, e.global_position) > ($1::text::xid8, $2)
 ORDER BY e.tx_id, e.global_position
 LIMIT $3";

#[async_trait]
impl EventLog for PgEventLog {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let limit = limit.min(MAX_LOG_PAGE) as i64;
        let rows = sqlx::query(READ_AFTER_SQL)
            .bind(after.tx_id.to_string())
            .bind(after.global_position)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(logged_event).collect()
    }
}

fn logged_event(row: &PgRow) -> Result<LoggedEvent, StoreError> {
    Ok(LoggedEvent {
        position: LogPosition {
            tx_id: parse_tx_id(row.try_get("tx_id_text")?)?,
            global_position: row.try_get("global_position")?,
        },
        event_id: row.try_get("event_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: parse_sequence(row.try_get("sequence")?)?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
        hash: row.try_get("hash")?,
    })
}

fn parse_tx_id(text: String) -> Result<u64, StoreError> {
    text.parse().map_err(|_| StoreError::MalformedRow {
        column: "tx_id",
        value: text,
    })
}

fn parse_sequence(sequence: i64) -> Result<u64, StoreError> {
    u64::try_from(sequence).map_err(|_| StoreError::MalformedRow {
        column: "sequence",
        value: sequence.to_string(),
    })
}

// The payload is read as jsonb text, the exact input the trigger hashed (see migrations/0001_event_store.sql).
const CHAIN_ROWS_SQL: &str = "
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload::jsonb::text AS payload_text, hash
  FROM events
 ORDER BY aggregate_type, aggregate_id, sequence
 LIMIT $1";

const CHAIN_ROWS_AFTER_SQL: &str = "
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload::jsonb::text AS payload_text, hash
  FROM events
 WHERE (aggregate_type, aggregate_id, sequence) > ($2, $3, $4)
 ORDER BY aggregate_type, aggregate_id, sequence
 LIMIT $1";

#[async_trait]
impl ChainSource for PgEventLog {
    async fn read_chain_rows_after(
        &self,
        after: Option<&ChainKey>,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError> {
        let limit = limit.min(MAX_LOG_PAGE) as i64;
        let query = match after {
            None => sqlx::query(CHAIN_ROWS_SQL).bind(limit),
            Some(key) => sqlx::query(CHAIN_ROWS_AFTER_SQL)
                .bind(limit)
                .bind(&key.aggregate_type)
                .bind(&key.aggregate_id)
                .bind(i64::try_from(key.sequence).unwrap_or(i64::MAX)),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(ChainRow {
                    aggregate_type: row.try_get("aggregate_type")?,
                    aggregate_id: row.try_get("aggregate_id")?,
                    sequence: parse_sequence(row.try_get("sequence")?)?,
                    event_type: row.try_get("event_type")?,
                    event_version: row.try_get("event_version")?,
                    payload_text: row.try_get("payload_text")?,
                    hash: row.try_get("hash")?,
                })
            })
            .collect()
    }
}

/// Checkpoints in the `checkpoints` table. [`PgCheckpointStore::save_in`] writes inside a caller's transaction, so
/// a projector commits its rows and its checkpoint together (exactly-once effects).
#[derive(Debug, Clone)]
pub struct PgCheckpointStore {
    pool: PgPool,
}

const LOAD_CHECKPOINT_SQL: &str =
    "SELECT tx_id::text AS tx_id_text, global_position FROM checkpoints WHERE name = $1";

const SAVE_CHECKPOINT_SQL: &str = "
INSERT INTO checkpoints (name, tx_id, global_position, updated_at)
VALUES ($1, $2::text::xid8, $3, now())
ON CONFLICT (name) DO UPDATE
   SET tx_id = EXCLUDED.tx_id, global_position = EXCLUDED.global_position, updated_at = EXCLUDED.updated_at";

impl PgCheckpointStore {
    /// Checkpoints in `pool`'s `checkpoints` table.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Loads `name`'s checkpoint through `executor` (a pool, a connection or `&mut *transaction`).
    ///
    /// # Errors
    /// The query failed or the row is malformed.
    pub async fn load_in<'e, E: PgExecutor<'e>>(
        executor: E,
        name: &str,
    ) -> Result<Option<LogPosition>, StoreError> {
        let Some(row) = sqlx::query(LOAD_CHECKPOINT_SQL)
            .bind(name)
            .fetch_optional(executor)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(LogPosition {
            tx_id: parse_tx_id(row.try_get("tx_id_text")?)?,
            global_position: row.try_get("global_position")?,
        }))
    }

    /// Saves `name`'s checkpoint through `executor`; pass `&mut *transaction` to commit it atomically with the
    /// effects it covers.
    ///
    /// # Errors
    /// The query failed.
    pub async fn save_in<'e, E: PgExecutor<'e>>(
        executor: E,
        name: &str,
        position: LogPosition,
    ) -> Result<(), StoreError> {
        sqlx::query(SAVE_CHECKPOINT_SQL)
            .bind(name)
            .bind(position.tx_id.to_string())
            .bind(position.global_position)
            .execute(executor)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for PgCheckpointStore {
    async fn load(&self, name: &str) -> Result<Option<LogPosition>, StoreError> {
        Self::load_in(&self.pool, name).await
    }

    async fn save(&self, name: &str, position: LogPosition) -> Result<(), StoreError> {
        Self::save_in(&self.pool, name, position).await
    }
}
