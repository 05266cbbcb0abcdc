//! The `AgentTick` bus message (specs/04 §4.1, §5): what the scheduler publishes on `<prefix>.ticks.<agent_id>` and
//! the runtime consumes. Plain JSON, no tag; times in the events' RFC 3339 millisecond form.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strom_domain::id::{validate_correlation_id, validate_uuid};
use thiserror::Error;

/// "It is time for run `tick_no` of session `session` of agent `agent_id`, due at `scheduled_at`."
/// Identity: (agent_id, session, tick_no), which is also the bus message id ([`tick_msg_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTick {
    pub agent_id: String,
    /// 1-based session number (`AgentStarted.session`).
    pub session: u64,
    /// 1-based tick number within the session.
    pub tick_no: u64,
    /// The tick's due time: `started_at + (tick_no − 1) × frequency_s`. The run observes the market at this instant.
    #[serde(with = "strom_domain::time::rfc3339_millis")]
    pub scheduled_at: DateTime<Utc>,
    /// The scheduler's clock when it published the tick (lateness = emitted_at − scheduled_at).
    #[serde(with = "strom_domain::time::rfc3339_millis")]
    pub emitted_at: DateTime<Utc>,
    /// A new id per tick (specs/01 §7); also the `Strom-Correlation-Id` header and the run's event metadata.
    pub correlation_id: String,
}

/// Why a tick message was refused. A refused tick is poison: the runtime terminates it instead of retrying.
#[derive(Debug, Error)]
pub enum TickError {
    #[error("tick payload is not an AgentTick: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tick field `{field}` {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// `<agent_id>/<session>/<tick_no>`: the message id JetStream deduplicates on, so a restarted (or a second, briefly
/// overlapping) scheduler publishing the same tick stores nothing new.
pub fn tick_msg_id(agent_id: &str, session: u64, tick_no: u64) -> String {
    format!("{agent_id}/{session}/{tick_no}")
}

impl AgentTick {
    pub fn msg_id(&self) -> String {
        tick_msg_id(&self.agent_id, self.session, self.tick_no)
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, integers and timestamps always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a tick body: known fields only, ids safe for subjects, numbers from 1, a correlation id of
    /// `[A-Za-z0-9._:-]{1,128}` (the AgentTick schema).
    ///
    /// # Errors
    /// [`TickError`] saying what is wrong.
    pub fn parse(payload: &[u8]) -> Result<Self, TickError> {
        let tick: Self = serde_json::from_slice(payload)?;
        let invalid = |field, reason: &str| TickError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        validate_uuid("agent_id", &tick.agent_id).map_err(|e| TickError::Invalid {
            field: "agent_id",
            reason: e.to_string(),
        })?;
        if tick.session == 0 {
            return Err(invalid("session", "must be at least 1"));
        }
        if tick.tick_no == 0 {
            return Err(invalid("tick_no", "must be at least 1"));
        }
        validate_correlation_id(&tick.correlation_id).map_err(|e| TickError::Invalid {
            field: "correlation_id",
            reason: e.to_string(),
        })?;
        Ok(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick() -> AgentTick {
        AgentTick {
            agent_id: "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10".into(),
            session: 1,
            tick_no: 31,
            scheduled_at: "2026-11-22T10:40:00Z".parse().unwrap(),
            emitted_at: "2026-11-22T10:40:00.002Z".parse().unwrap(),
            correlation_id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        }
    }

    #[test]
    fn a_tick_serializes_as_the_spec_example() {
        let example: serde_json::Value = serde_json::from_str(include_str!(
            "../../../specs/events/examples/AgentTick.v1.json"
        ))
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&tick().to_json()).unwrap();
        assert_eq!(json, example);
        assert_eq!(AgentTick::parse(&tick().to_json()).unwrap(), tick());
    }

    #[test]
    fn the_msg_id_is_agent_session_tick() {
        assert_eq!(tick().msg_id(), "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10/1/31");
    }

    #[test]
    fn malformed_ticks_are_refused_with_the_reason() {
        assert!(matches!(
            AgentTick::parse(b"not json"),
            Err(TickError::Json(_))
        ));
        let mut extra = serde_json::to_value(tick()).unwrap();
        extra["surprise"] = 1.into();
        assert!(AgentTick::parse(extra.to_string().as_bytes()).is_err());
        for (field, bad) in [
            ("tick_no", serde_json::json!(0)),
            ("session", serde_json::json!(0)),
            ("agent_id", serde_json::json!("a.b")),
            ("correlation_id", serde_json::json!("")),
            ("correlation_id", serde_json::json!("has space")),
        ] {
            let mut value = serde_json::to_value(tick()).unwrap();
            value[field] = bad;
            let err = AgentTick::parse(value.to_string().as_bytes()).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
