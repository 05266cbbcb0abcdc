//! Upcast stored events of older shapes to the current ones as they are read. The event stores register
//! [`event_upcasters`] (cqrs-es `PersistedEventStore::with_upcasters`), so the aggregates only ever see
//! current events and old rows are never rewritten (rewriting would break their hash chain).

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::agent::AGENT_CREATED_VERSION;
use crate::config::RiskLimits;

/// Seed given to agents created before seeds were recorded. Nothing was drawn from a seed then, so any
/// fixed value replays them identically; zero says "defaulted" plainly.
pub const V1_DEFAULT_SEED: u64 = 0;

/// Every upcaster the stores must register, oldest change first.
pub fn event_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(AgentCreatedV1ToV2)]
}

/// `AgentCreated` v1 (before risk limits and seeds) → v2. Adds, when absent:
/// `risk` = [`RiskLimits::for_starting_cash`] of the agent's `starting_cash` (`{"max_position_qty": "1",
/// "max_order_qty": "1", "max_notional": <starting_cash>, "max_daily_loss": null}`, the API's default too)
/// and `seed` = 0. A payload that is not the expected object (or has no readable `starting_cash`) gets no
/// `risk`, so reading it fails with a deserialization error naming the event instead of a guess.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentCreatedV1ToV2;

impl EventUpcaster for AgentCreatedV1ToV2 {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "AgentCreated" && event_version == "1"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        let Some(Value::Object(fields)) = event.payload.get_mut("AgentCreated") else {
            return event;
        };
        add_v2_defaults(fields);
        event.event_version = AGENT_CREATED_VERSION.to_owned();
        event
    }
}

fn add_v2_defaults(fields: &mut Map<String, Value>) {
    if !fields.contains_key("risk") {
        let starting_cash = fields
            .get("starting_cash")
            .and_then(|v| serde_json::from_value::<Decimal>(v.clone()).ok());
        let risk = starting_cash
            .and_then(|cash| serde_json::to_value(RiskLimits::for_starting_cash(cash)).ok());
        if let Some(risk) = risk {
            fields.insert("risk".into(), risk);
        }
    }
    fields.entry("seed").or_insert(V1_DEFAULT_SEED.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Agent, AgentEvent, AgentState};
    use cqrs_es::{Aggregate, EventEnvelope};
    use rust_decimal_macros::dec;
    use serde_json::json;

    fn v1_event(payload: Value) -> SerializedEvent {
        SerializedEvent::new(
            "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10".into(),
            1,
            "Agent".into(),
            "AgentCreated".into(),
            "1".into(),
            payload,
            json!({"correlation_id": "req-1"}),
        )
    }

    fn v1_payload() -> Value {
        json!({"AgentCreated": {
            "agent_id": "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10",
            "owner": "alice",
            "name": "old timer",
            "symbol": "BTC-USD",
            "strategy": {"kind": "hold", "params": {}},
            "frequency_s": 60,
            "starting_cash": "2500.00",
            "created_at": "2026-01-02T03:04:05.000Z"
        }})
    }

    #[test]
    fn only_agent_created_v1_is_upcast() {
        let upcaster = AgentCreatedV1ToV2;
        assert!(upcaster.can_upcast("AgentCreated", "1"));
        assert!(!upcaster.can_upcast("AgentCreated", "2"));
        assert!(!upcaster.can_upcast("AgentStarted", "1"));
    }

    #[test]
    fn a_v1_agent_created_upcasts_deserializes_and_applies() {
        let upcasters = event_upcasters();
        let event = upcasters.iter().fold(v1_event(v1_payload()), |e, u| {
            if u.can_upcast(&e.event_type, &e.event_version) {
                u.upcast(e)
            } else {
                e
            }
        });
        assert_eq!(event.event_version, "2");

        let envelope = EventEnvelope::<Agent>::try_from(event).expect("upcast event deserializes");
        let AgentEvent::AgentCreated { ref risk, seed, .. } = envelope.payload else {
            panic!("expected AgentCreated, got {:?}", envelope.payload);
        };
        assert_eq!(
            risk,
            &RiskLimits {
                max_position_qty: dec!(1),
                max_order_qty: dec!(1),
                max_notional: dec!(2500.00),
                max_daily_loss: None
            }
        );
        assert_eq!(seed, 0);

        let mut agent = Agent::default();
        agent.apply(envelope.payload);
        assert_eq!(agent.state(), AgentState::Stopped);
        assert_eq!(agent.config().unwrap().risk.max_notional, dec!(2500));
    }

    #[test]
    fn the_upcast_payload_has_the_v2_shape_with_an_explicit_null() {
        let event = AgentCreatedV1ToV2.upcast(v1_event(v1_payload()));
        assert_eq!(
            event.payload["AgentCreated"]["risk"],
            json!({"max_position_qty": "1", "max_order_qty": "1", "max_notional": "2500.00", "max_daily_loss": null})
        );
        assert_eq!(event.payload["AgentCreated"]["seed"], json!(0));
    }

    #[test]
    fn fields_already_present_are_kept() {
        let mut payload = v1_payload();
        payload["AgentCreated"]["seed"] = json!(99);
        let event = AgentCreatedV1ToV2.upcast(v1_event(payload));
        assert_eq!(event.payload["AgentCreated"]["seed"], json!(99));
    }

    #[test]
    fn a_malformed_v1_payload_is_left_for_deserialization_to_reject() {
        let event = AgentCreatedV1ToV2.upcast(v1_event(json!({"Something": 1})));
        assert_eq!(event.event_version, "1");
        assert!(EventEnvelope::<Agent>::try_from(event).is_err());
    }
}
