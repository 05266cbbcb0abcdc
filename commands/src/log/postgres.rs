//! The global log and checkpoints in Postgres: the `events` table read below the xmin watermark, decoded once per row
//! (payload text straight into the typed event), and the `checkpoints` table.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Row};
use strom_domain::codec::Payload;

use super::verify::{ChainKey, ChainRow, ChainSource};
use super::{
    decode_event, CheckpointStore, EventEnvelope, EventLog, EventRef, LogPosition, LoggedEvent,
    StoreError, MAX_LOG_PAGE,
};

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
// ordering the text ("10003" < "9903") breaks the log order whenever transaction ids gain a digit. The payload is read
// as text and decoded once, straight into the typed event (no intermediate JSON tree).
const READ_AFTER_SQL: &str = "
SELECT e.tx_id::text AS tx_id_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence,
       e.event_type, e.event_version, e.payload::text AS payload_text, e.metadata, e.recorded_at, e.hash
  FROM events e
 WHERE e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
   AND (e.tx_id, e.global_position) > ($1::text::xid8, $2)
 ORDER BY e.tx_id, e.global_position
 LIMIT $3";

const READ_ENVELOPES_AFTER_SQL: &str = "
SELECT e.tx_id::text AS tx_id_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence,
       e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at, e.hash
  FROM events e
 WHERE e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
   AND (e.tx_id, e.global_position) > ($1::text::xid8, $2)
 ORDER BY e.tx_id, e.global_position
 LIMIT $3";

const HEAD_SQL: &str = "
SELECT e.tx_id::text AS tx_id_text, e.global_position
  FROM events e
 WHERE e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY e.tx_id DESC, e.global_position DESC
 LIMIT 1";

/// Every committed row after the position, including rows of transactions that committed above the watermark (they
/// are lag too, just not readable yet).
const BACKLOG_SQL: &str = "
SELECT count(*) FROM (
  SELECT 1 FROM events e WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2) LIMIT $3
) t";

const STREAM_ENVELOPES_SQL: &str = "
SELECT e.tx_id::text AS tx_id_text, e.global_position, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence,
       e.event_type, e.event_version, e.payload, e.metadata, e.recorded_at, e.hash
  FROM events e
 WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 AND e.sequence > $3
 ORDER BY e.sequence
 LIMIT $4";

// The payload is read as jsonb text, the exact input the trigger hashed, like CHAIN_ROWS_SQL.
const STREAM_CHAIN_ROWS_SQL: &str = "
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload::jsonb::text AS payload_text, hash
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
 ORDER BY sequence
 LIMIT $4";

impl PgEventLog {
    /// Up to `limit` envelopes of one stream after sequence `after`, in sequence order.
    ///
    /// # Errors
    /// The store could not be read.
    pub async fn stream_envelopes_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let rows = self
            .stream_rows(
                STREAM_ENVELOPES_SQL,
                aggregate_type,
                aggregate_id,
                after,
                limit,
            )
            .await?;
        rows.iter().map(envelope).collect()
    }

    /// Up to `limit` chain rows of one stream after sequence `after`, in sequence order.
    ///
    /// # Errors
    /// The store could not be read.
    pub async fn stream_chain_rows_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError> {
        let rows = self
            .stream_rows(
                STREAM_CHAIN_ROWS_SQL,
                aggregate_type,
                aggregate_id,
                after,
                limit,
            )
            .await?;
        rows.iter().map(chain_row).collect()
    }

    async fn stream_rows(
        &self,
        sql: &'static str,
        aggregate_type: &str,
        aggregate_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<PgRow>, StoreError> {
        Ok(sqlx::query(sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(limit.min(MAX_LOG_PAGE) as i64)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn rows_after(
        &self,
        sql: &'static str,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<PgRow>, StoreError> {
        let limit = limit.min(MAX_LOG_PAGE) as i64;
        Ok(sqlx::query(sql)
            .bind(after.tx_id.to_string())
            .bind(after.global_position)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<Arc<LoggedEvent>>, StoreError> {
        let rows = self.rows_after(READ_AFTER_SQL, after, limit).await?;
        rows.iter()
            .map(|row| logged_event(row).map(Arc::new))
            .collect()
    }

    async fn read_envelopes_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let rows = self
            .rows_after(READ_ENVELOPES_AFTER_SQL, after, limit)
            .await?;
        rows.iter().map(envelope).collect()
    }

    async fn head(&self) -> Result<LogPosition, StoreError> {
        match sqlx::query(HEAD_SQL).fetch_optional(&self.pool).await? {
            Some(row) => position(&row),
            None => Ok(LogPosition::START),
        }
    }

    async fn backlog(&self, after: LogPosition, cap: u64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(BACKLOG_SQL)
            .bind(after.tx_id.to_string())
            .bind(after.global_position)
            .bind(i64::try_from(cap).unwrap_or(i64::MAX))
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

fn position(row: &PgRow) -> Result<LogPosition, StoreError> {
    Ok(LogPosition {
        tx_id: parse_tx_id(row.try_get("tx_id_text")?)?,
        global_position: row.try_get("global_position")?,
    })
}

fn logged_event(row: &PgRow) -> Result<LoggedEvent, StoreError> {
    let aggregate_type: &str = row.try_get("aggregate_type")?;
    let aggregate_id: String = row.try_get("aggregate_id")?;
    let sequence = parse_sequence(row.try_get("sequence")?)?;
    let (event, metadata) = decode_event(
        EventRef {
            aggregate_type,
            aggregate_id: &aggregate_id,
            sequence,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
        },
        Payload::Text(row.try_get("payload_text")?),
        &row.try_get::<serde_json::Value, _>("metadata")?,
    )?;
    Ok(LoggedEvent {
        position: position(row)?,
        event_id: row.try_get("event_id")?,
        aggregate_id,
        sequence,
        event,
        metadata,
        recorded_at: row.try_get("recorded_at")?,
        hash: row.try_get("hash")?,
    })
}

fn envelope(row: &PgRow) -> Result<EventEnvelope, StoreError> {
    Ok(EventEnvelope {
        position: position(row)?,
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

/// A stored sequence as the domain counts it (1-based, never negative).
pub(crate) fn parse_sequence(sequence: i64) -> Result<u64, StoreError> {
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
        rows.iter().map(chain_row).collect()
    }
}

fn chain_row(row: &PgRow) -> Result<ChainRow, StoreError> {
    Ok(ChainRow {
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: parse_sequence(row.try_get("sequence")?)?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload_text: row.try_get("payload_text")?,
        hash: row.try_get("hash")?,
    })
}

/// Checkpoints in the `checkpoints` table. [`PgCheckpointStore::save_in`] writes inside a caller's transaction (or
/// on a lease's connection), so a projector commits its rows and its checkpoint together (exactly-once effects).
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
