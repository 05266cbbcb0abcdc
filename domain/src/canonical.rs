//! The event hash chain's canonical text. `events.hash` is computed in Postgres over `payload::text`, the
//! jsonb text form; the memory store and export files must produce the very same bytes, so
//! [`jsonb_text`] reproduces PostgreSQL's jsonb output. It is hand-written because no crate produces that
//! form (serde_json's compact and pretty forms both differ: separators, key order, number text).

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event of every stream: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// PostgreSQL's `jsonb::text` of `value`:
/// - objects: keys sorted by byte length, then bytewise (jsonb's storage order); `{"a": 1, "bb": [1, 2]}`
///   with ", " and ": " separators; `{}` and `[]` when empty;
/// - strings: escaped like Postgres's `escape_json`: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
///   characters below U+0020 as `\u00xx` (lowercase hex), everything else (non-ASCII too) verbatim;
/// - numbers: integers as they are; other numbers as Postgres `numeric` prints the text serde_json sends
///   it (`1e20` → `100000000000000000000`, `1.5e-7` → `0.00000015`, `-0.0` → `0.0`).
///
/// Limits: a float is only as exact as serde_json's shortest round-trip text of it, and Postgres keeps
/// the scale of the text it was sent (`1.50` stays `1.50`), which a `Value` has already lost. Our events
/// carry money as decimal strings and counts as integers, so no event payload hits this. Postgres refuses
/// `\u0000` in jsonb, so a string with NUL has no Postgres form at all; it is escaped here regardless.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
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
        Value::Object(fields) => write_object(out, fields),
    }
}

fn write_object(out: &mut String, fields: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = fields.iter().collect();
    entries.sort_by(|(a, _), (b, _)| {
        a.len()
            .cmp(&b.len())
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    });
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, key);
        out.push_str(": ");
        write_value(out, value);
    }
    out.push('}');
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
    } else {
        out.push_str(&numeric_text(&n.to_string()));
    }
}

/// What Postgres `numeric_out(numeric_in(text))` prints for a JSON number's text: plain notation, with
/// as many fraction digits as the text had after its point minus its exponent (never fewer than zero),
/// and no sign on zero.
fn numeric_text(text: &str) -> String {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (
            &unsigned[..i],
            unsigned[i + 1..].parse::<i64>().unwrap_or(0),
        ),
        None => (unsigned, 0),
    };
    let (int_digits, frac_digits) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = int_digits.bytes().chain(frac_digits.bytes()).collect();
    let point = int_digits.len() as i64 + exponent;
    let scale = (frac_digits.len() as i64 - exponent).max(0);

    let digit_at = |i: i64| -> u8 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(b'0')
    };
    let mut integer: String = (0..point.max(0)).map(|i| char::from(digit_at(i))).collect();
    let trimmed = integer.trim_start_matches('0').len();
    integer.drain(..integer.len() - trimmed);
    if integer.is_empty() {
        integer.push('0');
    }
    let fraction: String = (point..point + scale)
        .map(|i| char::from(digit_at(i)))
        .collect();

    let is_zero = digits.iter().all(|d| *d == b'0');
    let mut out = String::with_capacity(integer.len() + fraction.len() + 2);
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(&integer);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(&fraction);
    }
    out
}

/// The hash of one event in its aggregate's chain: lowercase hex SHA-256 of
/// `prev_hash \n aggregate_type \n aggregate_id \n sequence \n event_type \n event_version \n
/// jsonb_text(payload)`, exactly what the Postgres trigger computes. `prev_hash` is the previous event's
/// hash in the same aggregate, or [`GENESIS_HASH`] for sequence 1.
pub fn chain_hash(
    prev_hash: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: u64,
    event_type: &str,
    event_version: &str,
    payload: &Value,
) -> String {
    chain_hash_text(
        prev_hash,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version,
        &jsonb_text(payload),
    )
}

/// [`chain_hash`] over a payload already in jsonb text form (as Postgres returns `payload::jsonb::text`), so
/// verifying stored rows hashes exactly the bytes the trigger hashed.
pub fn chain_hash_text(
    prev_hash: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: u64,
    event_type: &str,
    event_version: &str,
    payload_text: &str,
) -> String {
    let text = format!(
        "{prev_hash}\n{aggregate_type}\n{aggregate_id}\n{sequence}\n{event_type}\n{event_version}\n{payload_text}"
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests;
