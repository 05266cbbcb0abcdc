//! How far the relay is behind: the `strom_relay_lag_events` gauge.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgPool;

use crate::store::{EventLog, LogPosition, StoreError, MAX_LOG_PAGE};

/// The most events a lag sample counts. Counting is O(lag), so it is capped: a relay 100,000 events behind is
/// "far behind" for any alert, and the sample then costs one bounded index scan (Postgres) or ten page reads
/// (memory) per [`LAG_SAMPLE_INTERVAL`](super::LAG_SAMPLE_INTERVAL). The gauge saturates at this value.
pub const LAG_COUNT_CAP: u64 = 100_000;

/// Counts committed events after a position.
#[async_trait]
pub(crate) trait LagProbe: Send + Sync {
    /// Events committed after `after`, at most [`LAG_COUNT_CAP`].
    async fn events_after(&self, after: LogPosition) -> Result<u64, StoreError>;
}

/// Postgres: every committed row after the checkpoint, including rows of transactions that committed above the
/// watermark (they are lag too, just not readable yet).
pub(crate) struct PgLag {
    pub(crate) pool: PgPool,
}

const COUNT_AFTER_SQL: &str = "
SELECT count(*) FROM (
  SELECT 1 FROM events e WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2) LIMIT $3
) t";

#[async_trait]
impl LagProbe for PgLag {
    async fn events_after(&self, after: LogPosition) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(COUNT_AFTER_SQL)
            .bind(after.tx_id.to_string())
            .bind(after.global_position)
            .bind(LAG_COUNT_CAP as i64)
            .fetch_one(&self.pool)
            .await?;
        Ok(count.max(0) as u64)
    }
}

/// Any [`EventLog`] (memory): counts what the log would return, page by page. The memory log has no open
/// transactions, so this is every event after the position.
pub(crate) struct LogLag {
    pub(crate) log: Arc<dyn EventLog>,
}

#[async_trait]
impl LagProbe for LogLag {
    async fn events_after(&self, mut after: LogPosition) -> Result<u64, StoreError> {
        let mut count = 0;
        while count < LAG_COUNT_CAP {
            let page = self.log.read_after(after, MAX_LOG_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            count += page.len() as u64;
        }
        Ok(count.min(LAG_COUNT_CAP))
    }
}
