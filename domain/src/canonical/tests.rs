//! Known vectors for the jsonb text form and the hash chain. Every expected string below was produced by
//! PostgreSQL 15 (`select '<serde_json text>'::jsonb::text`, `encode(sha256(convert_to(…, 'UTF8')), 'hex')`).

use serde_json::{json, Value};

use super::*;
use crate::agent::AgentEvent;
use crate::config::{RiskLimits, StrategySpec};
use crate::symbol::Symbol;

const AGENT_ID: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn keys_are_ordered_by_length_then_bytes_with_postgres_separators() {
    assert_eq!(
        jsonb_text(&parse(r#"{"bb":1,"a":[1,2]}"#)),
        r#"{"a": [1, 2], "bb": 1}"#
    );
    assert_eq!(
        jsonb_text(&parse(
            r#"{"bb":1,"a":[1,2],"aa":{},"c":[],"ab":null,"é":true,"z":false}"#
        )),
        r#"{"a": [1, 2], "c": [], "z": false, "aa": {}, "ab": null, "bb": 1, "é": true}"#
    );
}

#[test]
fn scalars_and_empty_containers_print_bare() {
    assert_eq!(jsonb_text(&json!({})), "{}");
    assert_eq!(jsonb_text(&json!([])), "[]");
    assert_eq!(jsonb_text(&json!(null)), "null");
    assert_eq!(jsonb_text(&json!("x")), r#""x""#);
    assert_eq!(jsonb_text(&json!([[], {}, [1]])), "[[], {}, [1]]");
}

#[test]
fn strings_are_escaped_like_postgres_escape_json() {
    let text = "q\"b\\s\u{8}f\u{c}n\nr\rt\tx\u{1}y\u{1f}z\u{7f}é€😀/";
    assert_eq!(
        jsonb_text(&json!(text)),
        "\"q\\\"b\\\\s\\bf\\fn\\nr\\rt\\tx\\u0001y\\u001fz\u{7f}é€😀/\""
    );
}

#[test]
fn integers_print_as_they_are() {
    assert_eq!(
        jsonb_text(&json!([u64::MAX, i64::MIN, 0, 42])),
        "[18446744073709551615, -9223372036854775808, 0, 42]"
    );
}

#[test]
fn floats_print_as_postgres_numeric_prints_serde_jsons_text() {
    // serde_json sends: [1.5,1e+20,1.5e-7,-0.0,1.0,0.1,-12.5,1e+308,5e-324,1000000000000000.0,1e+16,
    //                    123456789.125,-1.5e-7,0.000025,1.7976931348623157e+308]
    let value = json!([
        1.5,
        1e20,
        1.5e-7,
        -0.0,
        1.0,
        0.1,
        -12.5,
        1e308,
        5e-324,
        1e15,
        1e16,
        123456789.125,
        -1.5e-7,
        2.5e-5,
        1.797_693_134_862_315_7e308 // the largest finite double
    ]);
    let expected = [
        "1.5".to_owned(),
        format!("1{}", "0".repeat(20)),
        "0.00000015".to_owned(),
        "0.0".to_owned(),
        "1.0".to_owned(),
        "0.1".to_owned(),
        "-12.5".to_owned(),
        format!("1{}", "0".repeat(308)),
        format!("0.{}5", "0".repeat(323)),
        "1000000000000000.0".to_owned(),
        format!("1{}", "0".repeat(16)),
        "123456789.125".to_owned(),
        "-0.00000015".to_owned(),
        "0.000025".to_owned(),
        format!("17976931348623157{}", "0".repeat(292)),
    ];
    assert_eq!(jsonb_text(&value), format!("[{}]", expected.join(", ")));
}

#[test]
fn nested_event_payloads_match_postgres_byte_for_byte() {
    assert_eq!(jsonb_text(&created_payload()), CREATED_JSONB_TEXT);
}

const CREATED_JSONB_TEXT: &str = "{\"AgentCreated\": {\"name\": \"btc hodl \\\"Ä\\\"\\n\", \"risk\": {\"max_notional\": \"100000\", \"max_order_qty\": \"5\", \"max_daily_loss\": null, \"max_position_qty\": \"10\"}, \"seed\": 42, \"owner\": \"alice\", \"symbol\": \"BTC-USD\", \"agent_id\": \"0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10\", \"strategy\": {\"kind\": \"hold\", \"params\": {}}, \"created_at\": \"2026-11-22T10:00:00.000Z\", \"frequency_s\": 60, \"starting_cash\": \"10000\"}}";

/// The AgentCreated event hashed in Postgres, built the way the event store builds it: serializing the
/// typed event.
fn created_payload() -> Value {
    let event = AgentEvent::AgentCreated {
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        name: "btc hodl \"Ä\"\n".into(),
        symbol: Symbol::parse("BTC-USD").unwrap(),
        strategy: StrategySpec::default(),
        frequency_s: 60,
        risk: RiskLimits {
            max_position_qty: "10".parse().unwrap(),
            max_order_qty: "5".parse().unwrap(),
            max_notional: "100000".parse().unwrap(),
            max_daily_loss: None,
        },
        starting_cash: "10000".parse().unwrap(),
        seed: 42,
        created_at: "2026-11-22T10:00:00Z".parse().unwrap(),
    };
    serde_json::to_value(event).unwrap()
}

#[test]
fn the_genesis_hash_is_64_zeros() {
    assert_eq!(GENESIS_HASH.len(), 64);
    assert!(GENESIS_HASH.bytes().all(|b| b == b'0'));
}

#[test]
fn chain_hashes_match_the_postgres_trigger() {
    let h1 = chain_hash(
        GENESIS_HASH,
        "Agent",
        AGENT_ID,
        1,
        "AgentCreated",
        "2",
        &created_payload(),
    );
    assert_eq!(
        h1,
        "a85d4b96e93151b151f23856f852ee5ffd8dbd8a7edd2c0a55dd3a7ac1dd696b"
    );
    let started = json!({"AgentStarted": {"session": 1, "started_at": "2026-11-22T10:01:40.000Z", "frequency_s": 60}});
    let h2 = chain_hash(&h1, "Agent", AGENT_ID, 2, "AgentStarted", "1", &started);
    assert_eq!(
        h2,
        "d69a381694dc0e1be14f694e647c727237aed24e5eedc6a312da70360c71666b"
    );
}

#[test]
fn changing_any_input_changes_the_hash() {
    let payload = json!({"AgentArchived": {"archived_at": "2026-11-22T10:00:00.000Z"}});
    let base = chain_hash(
        GENESIS_HASH,
        "Agent",
        "a",
        1,
        "AgentArchived",
        "1",
        &payload,
    );
    let variants = [
        chain_hash(
            &"1".repeat(64),
            "Agent",
            "a",
            1,
            "AgentArchived",
            "1",
            &payload,
        ),
        chain_hash(
            GENESIS_HASH,
            "Order",
            "a",
            1,
            "AgentArchived",
            "1",
            &payload,
        ),
        chain_hash(
            GENESIS_HASH,
            "Agent",
            "b",
            1,
            "AgentArchived",
            "1",
            &payload,
        ),
        chain_hash(
            GENESIS_HASH,
            "Agent",
            "a",
            2,
            "AgentArchived",
            "1",
            &payload,
        ),
        chain_hash(GENESIS_HASH, "Agent", "a", 1, "AgentStopped", "1", &payload),
        chain_hash(
            GENESIS_HASH,
            "Agent",
            "a",
            1,
            "AgentArchived",
            "2",
            &payload,
        ),
        chain_hash(
            GENESIS_HASH,
            "Agent",
            "a",
            1,
            "AgentArchived",
            "1",
            &json!({}),
        ),
    ];
    for variant in variants {
        assert_ne!(variant, base);
        assert_eq!(variant.len(), 64);
    }
}
