//! The backtests read model and artifacts in Postgres: table `backtests` (projector `backtests`, one transaction per
//! page under the projector's lock, like the agents projector), `backtest_inputs` and `backtest_results`
//! (migration 0007).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use strom_commands::log::{EventLog, LogPosition, LoggedEvent, PgCheckpointStore};

use super::{
    fold_page, BacktestArtifacts, BacktestProgress, BacktestRow, BacktestStore, BACKTESTS_PROJECTOR,
};
use crate::memory::paged;
use crate::page::{page_size, BacktestCursor, Page, QueryError};
use crate::sink::{ProjectionSink, SinkError};

/// Same lock as the agents projector's (`crate::postgres`), keyed by this projector's name.
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext('strom-projector'), hashtext($1))";

/// Table `backtests` and the artifacts in `pool`'s schema (migrated).
#[derive(Debug, Clone)]
pub struct PgBacktests {
    pool: PgPool,
}

/// Events read per page by [`PgBacktests::rebuild`].
const REBUILD_PAGE: usize = 1_000;

impl PgBacktests {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Rebuilds table `backtests` from zero in ONE transaction under the projector's lock: deletes the rows, folds
    /// every Backtest event of `log` and writes the rows and the checkpoint (the artifacts are not touched). Until
    /// the commit readers see the old rows; an error rolls everything back. Returns the rows written and the
    /// checkpoint.
    ///
    /// # Errors
    /// The log or the tables could not be read or written, or an event does not fold.
    pub async fn rebuild(&self, log: &dyn EventLog) -> Result<(usize, LogPosition), SinkError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_SQL)
            .bind(BACKTESTS_PROJECTOR)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM backtests")
            .execute(&mut *tx)
            .await?;
        let (mut rows, mut position) = (BTreeMap::new(), LogPosition::START);
        loop {
            let page = log.read_after(position, REBUILD_PAGE).await?;
            match fold_page(&mut rows, &page, position)? {
                Some(last) => position = last,
                None => break,
            }
        }
        for row in rows.values() {
            upsert(&mut tx, row).await?;
        }
        PgCheckpointStore::save_in(&mut *tx, BACKTESTS_PROJECTOR, position).await?;
        tx.commit().await?;
        Ok((rows.len(), position))
    }
}

async fn upsert(tx: &mut PgConnection, row: &BacktestRow) -> Result<(), SinkError> {
    let state = serde_json::to_value(row).map_err(|e| SinkError::MalformedRow {
        table: "backtests",
        column: "state",
        value: e.to_string(),
    })?;
    sqlx::query(
        "INSERT INTO backtests (backtest_id, owner, status, requested_at, state, version)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (backtest_id) DO UPDATE SET status = EXCLUDED.status, state = EXCLUDED.state,
             version = EXCLUDED.version",
    )
    .bind(&row.backtest_id)
    .bind(&row.owner)
    .bind(row.status.as_str())
    .bind(row.requested_at)
    .bind(state)
    .bind(i64::try_from(row.version).unwrap_or(i64::MAX))
    .execute(tx)
    .await?;
    Ok(())
}

fn decode(state: Value) -> Result<BacktestRow, QueryError> {
    serde_json::from_value(state)
        .map_err(|e| QueryError::Unavailable(format!("malformed backtests.state: {e}")))
}

#[async_trait]
impl ProjectionSink for PgBacktests {
    async fn checkpoint(&self) -> Result<LogPosition, SinkError> {
        Ok(PgCheckpointStore::load_in(&self.pool, BACKTESTS_PROJECTOR)
            .await?
            .unwrap_or(LogPosition::START))
    }

    async fn apply_page(&self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, SinkError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_SQL)
            .bind(BACKTESTS_PROJECTOR)
            .execute(&mut *tx)
            .await?;
        let checkpoint = PgCheckpointStore::load_in(&mut *tx, BACKTESTS_PROJECTOR)
            .await?
            .unwrap_or(LogPosition::START);
        let ids = super::backtest_ids(page, checkpoint);
        let mut rows = BTreeMap::new();
        for row in sqlx::query("SELECT state FROM backtests WHERE backtest_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
        {
            let row = serde_json::from_value::<BacktestRow>(row.get("state")).map_err(|e| {
                SinkError::MalformedRow {
                    table: "backtests",
                    column: "state",
                    value: e.to_string(),
                }
            })?;
            rows.insert(row.backtest_id.clone(), row);
        }
        let Some(last) = fold_page(&mut rows, page, checkpoint)? else {
            return Ok(checkpoint);
        };
        for row in rows.values() {
            upsert(&mut tx, row).await?;
        }
        PgCheckpointStore::save_in(&mut *tx, BACKTESTS_PROJECTOR, last).await?;
        tx.commit().await?;
        Ok(last)
    }
}

#[async_trait]
impl BacktestStore for PgBacktests {
    async fn list_backtests(
        &self,
        owner: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<BacktestRow>, QueryError> {
        let limit = page_size(limit)?;
        let after = cursor.map(BacktestCursor::decode).transpose()?;
        let (after_at, after_id) = match after {
            Some(c) => (Some(c.requested_at), Some(c.backtest_id)),
            None => (None, None),
        };
        let rows = sqlx::query(
            r#"SELECT state FROM backtests
               WHERE ($1::text IS NULL OR owner = $1)
                 AND ($2::timestamptz IS NULL OR (requested_at, backtest_id COLLATE "C") < ($2, $3 COLLATE "C"))
               ORDER BY requested_at DESC, backtest_id COLLATE "C" DESC
               LIMIT $4"#,
        )
        .bind(owner)
        .bind(after_at)
        .bind(after_id)
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows
            .into_iter()
            .map(|r| decode(r.get("state")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paged(&mut items, limit, |r| {
            BacktestCursor {
                requested_at: r.requested_at,
                backtest_id: r.backtest_id.clone(),
            }
            .encode()
        }))
    }

    async fn unfinished_backtests(&self, limit: usize) -> Result<Vec<BacktestRow>, QueryError> {
        sqlx::query(
            r#"SELECT state FROM backtests WHERE status IN ('requested', 'running')
               ORDER BY requested_at, backtest_id COLLATE "C" LIMIT $1"#,
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| decode(r.get("state")))
        .collect()
    }

    async fn put_input(&self, id: &str, csv: &[u8]) -> Result<(), QueryError> {
        sqlx::query(
            "INSERT INTO backtest_inputs (backtest_id, csv) VALUES ($1, $2)
             ON CONFLICT (backtest_id) DO UPDATE SET csv = EXCLUDED.csv",
        )
        .bind(id)
        .bind(csv)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn input(&self, id: &str) -> Result<Option<Vec<u8>>, QueryError> {
        Ok(
            sqlx::query_scalar("SELECT csv FROM backtest_inputs WHERE backtest_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn begin_attempt(&self, id: &str) -> Result<u32, QueryError> {
        let attempts: i32 = sqlx::query_scalar(
            "INSERT INTO backtest_results (backtest_id, attempts) VALUES ($1, 1)
             ON CONFLICT (backtest_id) DO UPDATE SET attempts = backtest_results.attempts + 1,
                 bars_done = NULL, bars_total = NULL, updated_at = now()
             RETURNING attempts",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(attempts).unwrap_or(0))
    }

    async fn set_progress(&self, id: &str, progress: BacktestProgress) -> Result<(), QueryError> {
        let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO backtest_results (backtest_id, bars_done, bars_total) VALUES ($1, $2, $3)
             ON CONFLICT (backtest_id) DO UPDATE SET bars_done = EXCLUDED.bars_done,
                 bars_total = EXCLUDED.bars_total, updated_at = now()",
        )
        .bind(id)
        .bind(signed(progress.bars_done))
        .bind(signed(progress.bars_total))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn put_result(&self, id: &str, result: &Value) -> Result<(), QueryError> {
        sqlx::query(
            "INSERT INTO backtest_results (backtest_id, result) VALUES ($1, $2)
             ON CONFLICT (backtest_id) DO UPDATE SET result = EXCLUDED.result, updated_at = now()",
        )
        .bind(id)
        .bind(result)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn artifacts(&self, id: &str) -> Result<Option<BacktestArtifacts>, QueryError> {
        let row = sqlx::query(
            "SELECT attempts, bars_done, bars_total, result FROM backtest_results WHERE backtest_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| {
            let done: Option<i64> = r.get("bars_done");
            let total: Option<i64> = r.get("bars_total");
            let unsigned = |v: i64| u64::try_from(v).unwrap_or(0);
            BacktestArtifacts {
                attempts: u32::try_from(r.get::<i32, _>("attempts")).unwrap_or(0),
                progress: done.zip(total).map(|(d, t)| BacktestProgress {
                    bars_done: unsigned(d),
                    bars_total: unsigned(t),
                }),
                result: r.get("result"),
            }
        }))
    }
}
