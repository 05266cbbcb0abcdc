//! Identifiers the domain accepts: aggregate ids, owners and correlation ids. Ids end up in NATS subjects
//! (`strom.ticks.<agent_id>`) and in derived order ids, so they are restricted to characters that are safe
//! in both.

use crate::error::ValidationError;

/// Longest aggregate id. A UUID is 36; derived order ids append "-<session>-<tick_no>" (up to 41 more),
/// and backtest order ids "-<bar_no>".
pub const MAX_ID_CHARS: usize = 128;
/// Longest owner (a JWT `sub`; Keycloak uses UUIDs, other issuers may use e-mail-like strings).
pub const MAX_OWNER_CHARS: usize = 255;
/// Longest correlation id (a request id or a UUID, carried in logs and headers).
pub const MAX_CORRELATION_ID_CHARS: usize = 128;

/// # Errors
/// A [`ValidationError`] on `field` unless `id` is 1..=[`MAX_ID_CHARS`] of `A-Z a-z 0-9 _ -`.
pub fn validate_id(field: &str, id: &str) -> Result<(), ValidationError> {
    let ok = (1..=MAX_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be 1..={MAX_ID_CHARS} of A-Z a-z 0-9 _ - (got {id:?})"),
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

    #[test]
    fn uuids_and_derived_ids_are_valid() {
        assert!(validate_id("agent_id", "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10").is_ok());
        assert!(validate_id("order_id", "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10-3-17").is_ok());
        assert!(validate_id("order_id", &"a".repeat(MAX_ID_CHARS)).is_ok());
    }

    #[test]
    fn ids_unsafe_in_subjects_are_rejected() {
        for id in [
            "",
            "a.b",
            "a b",
            "a*",
            "a>",
            "ä",
            &"a".repeat(MAX_ID_CHARS + 1),
        ] {
            assert_eq!(
                validate_id("agent_id", id).unwrap_err().field,
                "agent_id",
                "{id:?}"
            );
        }
    }

    #[test]
    fn text_must_be_non_blank_and_bounded() {
        assert!(validate_text("owner", "alice", 5).is_ok());
        assert!(validate_text("owner", " ", 5).is_err());
        assert!(validate_text("owner", "alice!", 5).is_err());
    }
}
