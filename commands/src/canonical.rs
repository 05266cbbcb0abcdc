//! Canonical bytes for the event hash chain: Postgres's jsonb text form of a payload and the chain hash itself.
//!
// TEMP until strom_domain::canonical lands: this is a private copy with the signatures agreed for
// `strom_domain::canonical::{jsonb_text, chain_hash, GENESIS_HASH}`. When the domain crate ships them, delete this
// file and re-point the `use crate::canonical` lines at `strom_domain::canonical` (the store's tests compare these
// functions against the hashes the Postgres trigger computes, so they will check the domain's copy too).

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of every stream's first event (sequence 1): 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hex sha256 over the '\n'-joined chain fields, byte for byte what the `events_hash_chain` trigger computes:
/// `prev_hash \n aggregate_type \n aggregate_id \n sequence \n event_type \n event_version \n payload_text`,
/// where `payload_text` is the payload's jsonb text form (see [`jsonb_text`]).
pub fn chain_hash(
    prev_hash: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: u64,
    event_type: &str,
    event_version: &str,
    payload_text: &str,
) -> String {
    let mut hasher = Sha256::new();
    let sequence = sequence.to_string();
    let fields = [
        prev_hash,
        aggregate_type,
        aggregate_id,
        &sequence,
        event_type,
        event_version,
    ];
    for field in fields {
        hasher.update(field.as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(payload_text.as_bytes());
    hex::encode(hasher.finalize())
}

/// The text Postgres prints for `value::jsonb::text`: object keys ordered by length then bytes, `", "` and `": "`
/// separators, numbers as Postgres `numeric` prints them (no exponents), strings escaped as `escape_json` does.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&numeric_text(&n.to_string())),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // jsonb stores keys shorter-first, then bytewise (lengthCompareJsonbString), and prints them in that order.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| a.as_bytes().cmp(b.as_bytes()))
            });
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Postgres's `escape_json`: the usual short escapes, other control characters as lowercase `\u00xx`, everything
/// else (including non-ASCII) verbatim.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Re-prints a JSON number the way Postgres's `numeric` does after parsing it: no exponent, and as many fraction
/// digits as the literal had minus the exponent (`1.50e1` → `15.0`, `1e-7` → `0.0000001`, `-0.0` → `0.0`).
fn numeric_text(literal: &str) -> String {
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..].parse::<i64>().unwrap_or(0),
        ),
        None => (unsigned, 0),
    };
    let (int_digits, frac_digits) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int_digits}{frac_digits}");
    let scale = (frac_digits.len() as i64 - exponent).max(0) as usize;
    // Where the decimal point falls within `digits` once the exponent is applied.
    let point = int_digits.len() as i64 + exponent;

    let (integer, fraction) = if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        ("0".to_string(), format!("{zeros}{digits}"))
    } else if point as usize >= digits.len() {
        let zeros = "0".repeat(point as usize - digits.len());
        (format!("{digits}{zeros}"), String::new())
    } else {
        let (i, f) = digits.split_at(point as usize);
        (i.to_string(), f.to_string())
    };
    let integer = integer.trim_start_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    debug_assert_eq!(fraction.len(), scale, "fraction digits follow the scale");

    let is_zero = integer == "0" && fraction.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(integer.len() + fraction.len() + 2);
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(integer);
    if scale > 0 {
        out.push('.');
        out.push_str(&fraction);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_ordered_by_length_then_bytes_with_postgres_separators() {
        let value = json!({"bb": 1, "a": [true, null, "x"], "ab": {"z": {}, "yy": []}});
        assert_eq!(
            jsonb_text(&value),
            r#"{"a": [true, null, "x"], "ab": {"z": {}, "yy": []}, "bb": 1}"#
        );
    }

    #[test]
    fn numbers_print_like_postgres_numeric() {
        for (literal, expected) in [
            ("0", "0"),
            ("-12", "-12"),
            ("100.0", "100.0"),
            ("0.1", "0.1"),
            ("1e-7", "0.0000001"),
            ("1.50e1", "15.0"),
            ("1.5e3", "1500"),
            ("-0.0", "0.0"),
            ("1.2345678901234568e20", "123456789012345680000"),
            ("2.5E-3", "0.0025"),
        ] {
            assert_eq!(numeric_text(literal), expected, "literal {literal}");
        }
    }

    #[test]
    fn strings_escape_like_postgres_escape_json() {
        let value = json!("q\"b\\\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é€😀");
        assert_eq!(
            jsonb_text(&value),
            "\"q\\\"b\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é€😀\""
        );
    }

    #[test]
    fn chain_hash_joins_fields_with_newlines() {
        let expected = hex::encode(Sha256::digest(
            format!("{GENESIS_HASH}\nCounter\nc-1\n1\nIncremented\n1\n{{\"by\": 1}}").as_bytes(),
        ));
        assert_eq!(
            chain_hash(
                GENESIS_HASH,
                "Counter",
                "c-1",
                1,
                "Incremented",
                "1",
                "{\"by\": 1}"
            ),
            expected
        );
    }
}
