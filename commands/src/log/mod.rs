//! The global event log as readers see it — the port projectors, the relay, the scheduler and the live feed build on:
//! positions, typed logged events, the wire envelope, the reader and checkpoint ports, and the one log follower.
//!
//! Two forms of one event: [`LoggedEvent`] is typed (a [`StromEvent`] and [`EventMetadata`]) and is what every fold and
//! decision reads; [`EventEnvelope`] is the stored row as the edge carries it (JSON payload in the version it was
//! stored with, EventEnvelope v1 on the bus, in SSE and in export files). [`EventEnvelope::decode`] is the one way from
//! the second to the first (upcasting through `strom_domain::codec`); an event that does not decode is an error naming
//! it, never skipped.

mod error;
mod follower;
mod postgres;
mod verify;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strom_domain::codec::{self, Payload};
use strom_domain::{EventMetadata, StromEvent};
use uuid::Uuid;

pub use error::StoreError;
pub use follower::{
    FollowError, Follower, FollowerConfig, LogItem, PageHandler, FOLLOWER_ERROR_BACKOFF_MAX,
    FOLLOWER_ERROR_BACKOFF_MIN, LAG_COUNT_CAP,
};
pub(crate) use postgres::parse_sequence;
pub use postgres::{PgCheckpointStore, PgEventLog};
/// The chain functions (one definition, in the pure core).
pub use strom_domain::canonical::{chain_hash_text, jsonb_text, GENESIS_HASH};
pub use verify::{
    verify_chains, verify_chains_with_progress, AggregateKey, ChainKey, ChainProblem, ChainReport,
    ChainRow, ChainSource, ChainVerifier, MAX_REPORTED_PROBLEMS, REORDER_SEARCH_WINDOW,
    VERIFY_PAGE,
};

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

/// One committed event, typed: what folds, the scheduler and the runtime read.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Where the event sits in the global log; checkpoint this after applying it.
    pub position: LogPosition,
    /// Unique per event; the relay's `Nats-Msg-Id`.
    pub event_id: Uuid,
    /// The aggregate instance (its type is the event's, [`LoggedEvent::aggregate_type`]).
    pub aggregate_id: String,
    /// 1-based, contiguous per aggregate.
    pub sequence: u64,
    /// The event, upcast to its current version.
    pub event: StromEvent,
    pub metadata: EventMetadata,
    /// When the store recorded the event (Postgres `now()` of the writing transaction). Never used by the domain or
    /// the read models.
    pub recorded_at: DateTime<Utc>,
    /// This event's link in its aggregate's hash chain (over the stored form).
    pub hash: String,
}

impl LoggedEvent {
    /// `"Agent"` or `"Backtest"`.
    pub fn aggregate_type(&self) -> &'static str {
        self.event.aggregate_type()
    }

    /// e.g. `"AgentStarted"`.
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    /// The request (or tick) the event belongs to.
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata.correlation_id.as_deref()
    }

    /// The event as the edge carries it, in its current version (what the memory store stored).
    pub fn envelope(&self) -> EventEnvelope {
        EventEnvelope {
            position: self.position,
            event_id: self.event_id,
            aggregate_type: self.aggregate_type().to_owned(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            event_type: self.event_type().to_owned(),
            event_version: self.event.event_version().to_owned(),
            payload: codec::encode(&self.event),
            // A struct of strings always serializes.
            metadata: serde_json::to_value(&self.metadata).unwrap_or(Value::Null),
            recorded_at: self.recorded_at,
            hash: self.hash.clone(),
        }
    }
}

/// One committed event as stored and as it travels (`EventEnvelope` v1, specs/events/EventEnvelope.v1.schema.json):
/// the body of `<p>.events.<aggregate_type lowercase>.<aggregate_id>` messages, the `envelope` of SSE messages and a
/// line of an export file. `payload` and `event_version` are as stored, so the hash chain can be checked against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventEnvelope {
    /// The event's place in the global log (what the relay checkpoints).
    pub position: LogPosition,
    /// Also the message's `Nats-Msg-Id`.
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    pub event_type: String,
    pub event_version: String,
    /// serde's externally tagged form (`{"AgentStarted": {...}}`), as stored.
    pub payload: Value,
    /// `correlation_id`, `actor`, optional `causation_id`.
    pub metadata: Value,
    /// Written with milliseconds like every wire time (Postgres keeps microseconds; the store time is informational).
    #[serde(with = "strom_domain::time::rfc3339_millis")]
    pub recorded_at: DateTime<Utc>,
    pub hash: String,
}

impl EventEnvelope {
    /// The typed event: payload upcast and decoded by `strom_domain::codec::decode`, metadata read.
    ///
    /// # Errors
    /// [`StoreError::Undecodable`] naming the event.
    pub fn decode(&self) -> Result<LoggedEvent, StoreError> {
        decode_event(
            EventRef {
                aggregate_type: &self.aggregate_type,
                aggregate_id: &self.aggregate_id,
                sequence: self.sequence,
                event_type: &self.event_type,
                event_version: &self.event_version,
            },
            Payload::Json(&self.payload),
            &self.metadata,
        )
        .map(|(event, metadata)| LoggedEvent {
            position: self.position,
            event_id: self.event_id,
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            event,
            metadata,
            recorded_at: self.recorded_at,
            hash: self.hash.clone(),
        })
    }

    /// The JSON body of a bus message.
    ///
    /// # Errors
    /// Never for envelopes built from the log (every field is plain JSON); kept fallible rather than panicking.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parses a bus message body or export line.
    ///
    /// # Errors
    /// The body is not an `EventEnvelope` v1 (missing or unknown field, wrong type).
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// Which stored event is being decoded (for the error that names it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRef<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: u64,
    pub event_type: &'a str,
    pub event_version: &'a str,
}

/// The one decoding step of every reader: payload through the codec, metadata into [`EventMetadata`].
pub(crate) fn decode_event(
    at: EventRef<'_>,
    payload: Payload<'_>,
    metadata: &Value,
) -> Result<(StromEvent, EventMetadata), StoreError> {
    let undecodable = |source| StoreError::Undecodable {
        aggregate_type: at.aggregate_type.to_owned(),
        aggregate_id: at.aggregate_id.to_owned(),
        sequence: at.sequence,
        source,
    };
    let event = codec::decode(at.aggregate_type, at.event_type, at.event_version, payload)
        .map_err(undecodable)?;
    let metadata = EventMetadata::deserialize(metadata).map_err(|e| {
        undecodable(strom_domain::DecodeError::MalformedPayload {
            event_type: at.event_type.to_owned(),
            reason: format!("metadata: {e}"),
        })
    })?;
    Ok((event, metadata))
}

/// Reads the global log in order, without ever skipping an event that commits later.
///
/// Implementations return only events whose writing transaction is older than every transaction still running
/// (Postgres: `tx_id < pg_snapshot_xmin(pg_current_snapshot())`), ordered by [`LogPosition`]. So once a reader has
/// seen position `p`, no event at or before `p` can still appear: checkpointing `p` is safe. An open transaction
/// holds readers back until it ends; there is no timeout that would skip it.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` (capped at [`MAX_LOG_PAGE`]) events strictly after `after`, in log order, typed. Empty when
    /// caught up for now.
    ///
    /// # Errors
    /// The store could not be read, or an event does not decode ([`StoreError::Undecodable`]).
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<Arc<LoggedEvent>>, StoreError>;

    /// The same events as they are stored (for the relay, exports and audits, which must carry the stored form).
    ///
    /// # Errors
    /// The store could not be read.
    async fn read_envelopes_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// The position of the last event readable now ([`LogPosition::START`] for an empty log): where a follower that
    /// replays nothing starts. Every event at or before it is final (no transaction that could still add one is
    /// open), so starting there misses nothing committed later.
    ///
    /// # Errors
    /// The store could not be read.
    async fn head(&self) -> Result<LogPosition, StoreError>;

    /// Committed events after `after` (including, on Postgres, those of transactions the watermark still holds
    /// back), counted up to `cap`: the lag gauges of every follower.
    ///
    /// # Errors
    /// The store could not be read.
    async fn backlog(&self, after: LogPosition, cap: u64) -> Result<u64, StoreError>;
}

/// Tells this process's log followers that events were just committed, so they read at once instead of at their
/// next idle poll (commits of other processes are seen at the poll). Clones share one signal.
#[derive(Debug, Clone)]
pub struct CommitSignal(Arc<tokio::sync::watch::Sender<u64>>);

impl Default for CommitSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl CommitSignal {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(0)))
    }

    /// Called after every commit.
    pub fn notify(&self) {
        self.0
            .send_modify(|commits| *commits = commits.wrapping_add(1));
    }

    /// A receiver that sees every later [`CommitSignal::notify`] (as one change, however many came).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope() -> EventEnvelope {
        EventEnvelope {
            position: LogPosition {
                tx_id: 812,
                global_position: 17,
            },
            event_id: Uuid::parse_str("3f2b8c1e-9d4a-4e6b-8a7c-5b1d2e3f4a60").unwrap(),
            aggregate_type: "Agent".into(),
            aggregate_id: "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10".into(),
            sequence: 2,
            event_type: "AgentArchived".into(),
            event_version: "1".into(),
            payload: json!({"AgentArchived": {"archived_at": "2026-11-22T10:10:00.000Z"}}),
            metadata: json!({"correlation_id": "c-1", "actor": "alice"}),
            recorded_at: DateTime::parse_from_rfc3339("2026-11-22T10:10:00.213456Z")
                .unwrap()
                .with_timezone(&Utc),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn the_envelope_carries_every_logged_field_with_millisecond_times() {
        let json: Value = serde_json::from_slice(&envelope().to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "position": {"tx_id": 812, "global_position": 17},
                "event_id": "3f2b8c1e-9d4a-4e6b-8a7c-5b1d2e3f4a60",
                "aggregate_type": "Agent",
                "aggregate_id": "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10",
                "sequence": 2,
                "event_type": "AgentArchived",
                "event_version": "1",
                "payload": {"AgentArchived": {"archived_at": "2026-11-22T10:10:00.000Z"}},
                "metadata": {"correlation_id": "c-1", "actor": "alice"},
                "recorded_at": "2026-11-22T10:10:00.213Z",
                "hash": "ab".repeat(32),
            })
        );
    }

    #[test]
    fn an_encoded_envelope_decodes_to_itself_up_to_milliseconds_and_to_the_typed_event() {
        let envelope = envelope();
        let parsed = EventEnvelope::from_json(&envelope.to_json().unwrap()).unwrap();
        assert_eq!(parsed.recorded_at.timestamp_subsec_micros(), 213_000);
        assert_eq!(
            EventEnvelope {
                recorded_at: envelope.recorded_at,
                ..parsed
            },
            envelope
        );
        let logged = envelope.decode().unwrap();
        assert_eq!(logged.event_type(), "AgentArchived");
        assert_eq!(logged.correlation_id(), Some("c-1"));
        assert_eq!(logged.envelope(), envelope);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(envelope()).unwrap();
        json["extra"] = json!(1);
        let err = EventEnvelope::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn an_undecodable_event_is_an_error_that_names_it() {
        let mut bad = envelope();
        bad.payload = json!({"AgentArchived": {"archived_at": "yesterday"}});
        let err = bad.decode().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Agent/0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10 sequence 2"),
            "{text}"
        );
        assert!(matches!(err, StoreError::Undecodable { .. }));
        bad = envelope();
        bad.event_version = "9".into();
        assert!(bad
            .decode()
            .unwrap_err()
            .to_string()
            .contains("unknown event AgentArchived v9"));
    }
}
