//! The global event log as readers see it: positions, logged events, and the reader and checkpoint ports that
//! projectors and the relay build on.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;

/// Most events one `read_after` call returns, whatever the caller asks for. A page is held in memory and, for
/// projectors, applied in one transaction; 10,000 events of a few hundred bytes keep both to a few megabytes
/// while still amortising the round trip during a rebuild.
pub const MAX_LOG_PAGE: usize = 10_000;

/// A place in the global log: the writing transaction's id, then the insertion counter within it.
///
/// Ordered lexicographically (tx_id first), which is the log order. [`LogPosition::START`] is before every event.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// Postgres `xid8` of the transaction that wrote the event (memory: a commit counter).
    pub tx_id: u64,
    /// `global_position` bigserial (memory: an insertion counter).
    pub global_position: i64,
}

impl LogPosition {
    /// Before the first event: read from here to read everything.
    pub const START: Self = Self {
        tx_id: 0,
        global_position: 0,
    };
}

/// One committed event as the global log delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Where the event sits in the global log; checkpoint this after applying it.
    pub position: LogPosition,
    /// Unique per event; the relay's `Nats-Msg-Id`.
    pub event_id: Uuid,
    /// cqrs-es `Aggregate::TYPE`, e.g. "Agent".
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// 1-based, contiguous per aggregate.
    pub sequence: u64,
    /// e.g. "AgentCreated".
    pub event_type: String,
    /// e.g. "1".
    pub event_version: String,
    /// The serialized event as stored (not upcast).
    pub payload: Value,
    /// cqrs-es metadata (`correlation_id`, `actor`, `causation_id`).
    pub metadata: Value,
    /// When the store recorded the event (Postgres `now()` of the writing transaction).
    pub recorded_at: DateTime<Utc>,
    /// This event's link in its aggregate's hash chain.
    pub hash: String,
}

impl LoggedEvent {
    /// A string metadata entry, e.g. `metadata_str("correlation_id")`.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// Reads the global log in order, without ever skipping an event that commits later.
///
/// Implementations return only events whose writing transaction is older than every transaction still running
/// (Postgres: `tx_id < pg_snapshot_xmin(pg_current_snapshot())`), ordered by [`LogPosition`]. So once a reader has
/// seen position `p`, no event at or before `p` can still appear: checkpointing `p` is safe. An open transaction
/// holds readers back until it ends; there is no timeout that would skip it.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` (capped at [`MAX_LOG_PAGE`]) events strictly after `after`, in log order. Empty when caught
    /// up for now.
    ///
    /// # Errors
    /// The store could not be read, or a row is malformed.
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError>;
}

/// Named log positions (one per projector or relay).
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The saved position for `name`, or `None` if it has never been saved.
    ///
    /// # Errors
    /// The store could not be read.
    async fn load(&self, name: &str) -> Result<Option<LogPosition>, StoreError>;

    /// Saves `position` for `name`, replacing any previous one.
    ///
    /// # Errors
    /// The store could not be written.
    async fn save(&self, name: &str, position: LogPosition) -> Result<(), StoreError>;
}
