//! The JSON edge of the event log: the one place events become JSON ([`encode`]) and JSON becomes events
//! ([`decode`], with the upcasters of [`crate::upcast`]). The Postgres store, the log readers, the bus envelope, export
//! files and audits all go through these two functions; inside a process events stay typed ([`StromEvent`]).
//!
//! Stored form (specs/04 §1): serde's externally tagged enum, one key = the event type:
//! `{"AgentStarted": {"session": 1, …}}`, with `event_type` and `event_version` beside it.

use std::sync::LazyLock;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::AgentEvent;
use crate::backtest::BacktestEvent;
use crate::event::StromEvent;
use crate::upcast::event_upcasters;

/// Built once: upcasters hold no state.
static UPCASTERS: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(event_upcasters);

/// A stored payload, as the edge has it: JSON text (a Postgres `payload::text` column, a file line) or a parsed value.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Text(&'a str),
    Json(&'a Value),
}

/// Why a stored event could not be read. The caller adds which event it was (aggregate, sequence); an undecodable
/// event is always an error, never skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DecodeError {
    /// Not one of [`crate::event::AGGREGATE_TYPES`].
    #[error("unknown aggregate type {aggregate_type:?}")]
    UnknownAggregateType { aggregate_type: String },
    /// A type/version this code has neither a schema nor an upcaster for (specs/04 §2.1 `unknown_event_version`).
    #[error("unknown event {event_type} v{event_version}")]
    UnknownEventVersion {
        event_type: String,
        event_version: String,
    },
    /// The payload does not deserialize as its event type.
    #[error("malformed {event_type} payload: {reason}")]
    MalformedPayload { event_type: String, reason: String },
}

/// The version current code writes for `event_type` of `aggregate_type`, if it is one of its events.
pub fn current_version(aggregate_type: &str, event_type: &str) -> Option<&'static str> {
    let versions = match aggregate_type {
        "Agent" => AgentEvent::VERSIONS,
        "Backtest" => BacktestEvent::VERSIONS,
        _ => return None,
    };
    versions
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, version)| *version)
}

/// The stored payload of `event` (externally tagged, current version).
pub fn encode(event: &StromEvent) -> Value {
    // Events are plain data (strings, integers, decimals as strings, times as strings): serializing cannot fail.
    match event {
        StromEvent::Agent(e) => serde_json::to_value(e),
        StromEvent::Backtest(e) => serde_json::to_value(e),
    }
    .unwrap_or(Value::Null)
}

/// Reads a stored event: upcasts an older version to the current one, then deserializes it as `aggregate_type`'s
/// event and checks that the payload's tag is `event_type`.
///
/// # Errors
/// [`DecodeError`] saying what is wrong; nothing is guessed.
pub fn decode(
    aggregate_type: &str,
    event_type: &str,
    event_version: &str,
    payload: Payload<'_>,
) -> Result<StromEvent, DecodeError> {
    if !crate::event::AGGREGATE_TYPES.contains(&aggregate_type) {
        return Err(DecodeError::UnknownAggregateType {
            aggregate_type: aggregate_type.to_owned(),
        });
    }
    let upcast;
    let payload = if current_version(aggregate_type, event_type) == Some(event_version) {
        payload
    } else {
        upcast = upcast_to_current(aggregate_type, event_type, event_version, payload)?;
        Payload::Json(&upcast)
    };
    let event = match aggregate_type {
        "Agent" => parse::<AgentEvent>(event_type, payload).map(StromEvent::Agent),
        _ => parse::<BacktestEvent>(event_type, payload).map(StromEvent::Backtest),
    }?;
    if event.event_type() != event_type {
        return Err(DecodeError::MalformedPayload {
            event_type: event_type.to_owned(),
            reason: format!("payload is tagged {}", event.event_type()),
        });
    }
    Ok(event)
}

/// Runs the upcasters until the event is at its current version (each upcaster raises the version, so at most one
/// pass per upcaster).
fn upcast_to_current(
    aggregate_type: &str,
    event_type: &str,
    event_version: &str,
    payload: Payload<'_>,
) -> Result<Value, DecodeError> {
    let unknown = || DecodeError::UnknownEventVersion {
        event_type: event_type.to_owned(),
        event_version: event_version.to_owned(),
    };
    let value = match payload {
        Payload::Json(value) => value.clone(),
        Payload::Text(text) => {
            serde_json::from_str(text).map_err(|e| DecodeError::MalformedPayload {
                event_type: event_type.to_owned(),
                reason: e.to_string(),
            })?
        }
    };
    // Upcasters look only at type, version and payload; the other fields of cqrs-es's `SerializedEvent` are unused.
    let mut event = SerializedEvent::new(
        String::new(),
        0,
        aggregate_type.to_owned(),
        event_type.to_owned(),
        event_version.to_owned(),
        value,
        Value::Null,
    );
    for _ in 0..=UPCASTERS.len() {
        if current_version(aggregate_type, &event.event_type) == Some(event.event_version.as_str())
        {
            return Ok(event.payload);
        }
        let upcaster = UPCASTERS
            .iter()
            .find(|u| u.can_upcast(&event.event_type, &event.event_version))
            .ok_or_else(unknown)?;
        let before = event.event_version.clone();
        event = upcaster.upcast(event);
        if event.event_version == before {
            // The upcaster could not read the payload (it keeps the version then): report it as what it is.
            return Err(DecodeError::MalformedPayload {
                event_type: event_type.to_owned(),
                reason: format!("cannot upcast from version {before}"),
            });
        }
    }
    Err(unknown())
}

fn parse<E: DeserializeOwned>(event_type: &str, payload: Payload<'_>) -> Result<E, DecodeError> {
    let parsed = match payload {
        Payload::Text(text) => serde_json::from_str(text),
        Payload::Json(value) => E::deserialize(value),
    };
    parsed.map_err(|e| DecodeError::MalformedPayload {
        event_type: event_type.to_owned(),
        reason: e.to_string(),
    })
}

/// What every event carries besides its payload (specs/04 §1): who asked and which request it belongs to. Not part
/// of the hash chain. Readers tolerate missing entries (rows written by hand); STROM always writes
/// `correlation_id` and `actor`. Extra string entries are kept as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The event or message that caused the command (e.g. the tick msg id for a `RecordRun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, String>,
}

impl EventMetadata {
    pub fn new(correlation_id: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            correlation_id: Some(correlation_id.into()),
            actor: Some(actor.into()),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests;
