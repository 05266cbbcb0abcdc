//! Identifiers the domain accepts: aggregate ids, owners and correlation ids. Ids end up in NATS subjects
//! (`strom.ticks.<agent_id>`), headers and derived order ids, so each has one exact form (specs/04 §1):
//! agent and backtest ids are lowercase UUIDs, order ids derive from them.

use crate::error::ValidationError;

/// Longest owner (a JWT `sub`; Keycloak uses UUIDs, other issuers may use e-mail-like strings).
pub const MAX_OWNER_CHARS: usize = 255;
/// Longest correlation id (a request id or a UUID, carried in logs and headers).
pub const MAX_CORRELATION_ID_CHARS: usize = 128;

/// Length of a hyphenated UUID.
const UUID_CHARS: usize = 36;

/// # Errors
/// A [`ValidationError`] on `field` unless `id` is a lowercase hyphenated UUID
/// (`0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10`), the form of agent and backtest ids: the API chooses them, and one
/// spelling per id keeps subjects, order ids and read-model keys from splitting one aggregate in two.
pub fn validate_uuid(field: &str, id: &str) -> Result<(), ValidationError> {
    if is_uuid(id) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be a lowercase hyphenated UUID (got {id:?})"),
        ))
    }
}

fn is_uuid(id: &str) -> bool {
    id.len() == UUID_CHARS
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The bytes a correlation id may hold, `A-Z a-z 0-9 . _ : -`, as a table: every run checks its correlation id, a
/// backtest a million times.
const CORRELATION_ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-');
        b += 1;
    }
    table
};

/// # Errors
/// A [`ValidationError`] on `correlation_id` unless it is 1..=[`MAX_CORRELATION_ID_CHARS`] of
/// `A-Z a-z 0-9 . _ : -`: the form the API accepts from `x-request-id` (specs/01 §7), safe in NATS headers
/// and log lines.
pub fn validate_correlation_id(id: &str) -> Result<(), ValidationError> {
    // Every byte looked up, without stopping at a bad one: a loop with no exit the compiler unrolls (the ids are
    // short, and a bad one is rare), where `all` would branch on each byte.
    let ok = (1..=MAX_CORRELATION_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .fold(true, |ok, b| ok & CORRELATION_ID_BYTES[usize::from(b)]);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "correlation_id",
            format!("must be 1..={MAX_CORRELATION_ID_CHARS} of A-Z a-z 0-9 . _ : - (got {id:?})"),
        ))
    }
}

/// # Errors
/// A [`ValidationError`] on `field` if `text` is blank or longer than `max` characters.
pub fn validate_text(field: &str, text: &str, max: usize) -> Result<(), ValidationError> {
    if text.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be blank"));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters (got {chars})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

    #[test]
    fn agent_and_backtest_ids_are_lowercase_uuids() {
        assert!(validate_uuid("agent_id", AGENT).is_ok());
        for id in [
            "",
            "agent-1",
            "0B5E4A52-6A6F-4E0B-9D7E-0F2F8A3C9B10",
            "0b5e4a526a6f4e0b9d7e0f2f8a3c9b10",
            "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b1g",
            "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b100",
        ] {
            assert_eq!(
                validate_uuid("agent_id", id).unwrap_err().field,
                "agent_id",
                "{id:?}"
            );
        }
    }

    #[test]
    fn correlation_ids_are_header_safe() {
        assert!(validate_correlation_id("req:7c9e6679-7425.40de_944b").is_ok());
        for id in [
            "",
            "a b",
            "a\n",
            "ä",
            &"a".repeat(MAX_CORRELATION_ID_CHARS + 1),
        ] {
            assert!(validate_correlation_id(id).is_err(), "{id:?}");
        }
    }

    #[test]
    fn text_must_be_non_blank_and_bounded() {
        assert!(validate_text("owner", "alice", 5).is_ok());
        assert!(validate_text("owner", " ", 5).is_err());
        assert!(validate_text("owner", "alice!", 5).is_err());
    }
}
