//! The body of every event message on the bus (`EventEnvelope` v1, specs/events/EventEnvelope.v1.schema.json):
//! a logged event with its place in the global log, as consumers (execution, backtests, SSE) decode it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::store::{LogPosition, LoggedEvent};

/// Header naming the event type (`AgentStarted`), so a consumer can skip a message without decoding its body.
pub const EVENT_TYPE_HEADER: &str = "Strom-Event-Type";
/// Header with the event version (`"1"`).
pub const EVENT_VERSION_HEADER: &str = "Strom-Event-Version";
/// Header with the event's 1-based sequence within its aggregate (decimal text).
pub const SEQUENCE_HEADER: &str = "Strom-Sequence";

/// One committed event as published on `<p>.events.<aggregate_type lowercase>.<aggregate_id>`.
///
/// Field for field a [`LoggedEvent`], except `recorded_at`, which is written with exactly three fractional digits
/// like every other time on the wire (Postgres keeps microseconds; the store time is informational only).
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
    /// The stored payload, serde's externally tagged form (`{"AgentStarted": {...}}`), not upcast.
    pub payload: Value,
    /// cqrs-es metadata: `correlation_id`, `actor`, optional `causation_id`.
    pub metadata: Value,
    #[serde(with = "millis")]
    pub recorded_at: DateTime<Utc>,
    pub hash: String,
}

impl From<&LoggedEvent> for EventEnvelope {
    fn from(event: &LoggedEvent) -> Self {
        Self {
            position: event.position,
            event_id: event.event_id,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            recorded_at: event.recorded_at,
            hash: event.hash.clone(),
        }
    }
}

impl EventEnvelope {
    /// The JSON body of the bus message.
    ///
    /// # Errors
    /// Never for envelopes built from the log (every field is plain JSON); kept fallible rather than panicking.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parses a bus message body.
    ///
    /// # Errors
    /// The body is not an `EventEnvelope` v1 (missing or unknown field, wrong type).
    pub fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// A string metadata entry, e.g. `metadata_str("correlation_id")`.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// RFC 3339 UTC with exactly three fractional digits and `Z` (specs/04 §1).
mod millis {
    use super::{DateTime, Deserialize, Deserializer, SecondsFormat, Serializer, Utc};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn logged() -> LoggedEvent {
        LoggedEvent {
            position: LogPosition {
                tx_id: 812,
                global_position: 17,
            },
            event_id: Uuid::parse_str("3f2b8c1e-9d4a-4e6b-8a7c-5b1d2e3f4a60").unwrap(),
            aggregate_type: "Agent".into(),
            aggregate_id: "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10".into(),
            sequence: 2,
            event_type: "AgentStarted".into(),
            event_version: "1".into(),
            payload: json!({"AgentStarted": {"session": 1}}),
            metadata: json!({"correlation_id": "c-1", "actor": "alice"}),
            recorded_at: DateTime::parse_from_rfc3339("2026-11-22T10:10:00.213456Z")
                .unwrap()
                .with_timezone(&Utc),
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn the_envelope_carries_every_logged_field_with_millisecond_times() {
        let envelope = EventEnvelope::from(&logged());
        let json: Value = serde_json::from_slice(&envelope.encode().unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "position": {"tx_id": 812, "global_position": 17},
                "event_id": "3f2b8c1e-9d4a-4e6b-8a7c-5b1d2e3f4a60",
                "aggregate_type": "Agent",
                "aggregate_id": "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10",
                "sequence": 2,
                "event_type": "AgentStarted",
                "event_version": "1",
                "payload": {"AgentStarted": {"session": 1}},
                "metadata": {"correlation_id": "c-1", "actor": "alice"},
                "recorded_at": "2026-11-22T10:10:00.213Z",
                "hash": "ab".repeat(32),
            })
        );
    }

    #[test]
    fn an_encoded_envelope_decodes_to_itself_up_to_milliseconds() {
        let envelope = EventEnvelope::from(&logged());
        let decoded = EventEnvelope::decode(&envelope.encode().unwrap()).unwrap();
        assert_eq!(decoded.recorded_at.timestamp_subsec_micros(), 213_000);
        assert_eq!(
            EventEnvelope {
                recorded_at: envelope.recorded_at,
                ..decoded
            },
            envelope
        );
        assert_eq!(envelope.metadata_str("correlation_id"), Some("c-1"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(EventEnvelope::from(&logged())).unwrap();
        json["extra"] = json!(1);
        let err = EventEnvelope::decode(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
