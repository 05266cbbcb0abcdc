//! Errors every aggregate shares: a validation failure that names the offending field, and the coarse kind
//! (not found / conflict / invalid) an edge maps to its own status codes.

use serde::{Deserialize, Serialize};

/// A command or value failed validation. `field` is the dotted path of the offending input
/// (`"name"`, `"risk.max_order_qty"`, `"strategy.params.fast"`), so the API can point at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, with its field nested under `prefix` (`"price"` becomes `"observation.price"`).
    #[must_use]
    pub fn within(self, prefix: &str) -> Self {
        Self {
            field: format!("{prefix}.{}", self.field),
            reason: self.reason,
        }
    }
}

/// What kind of failure a domain error is, so an edge can pick a status without matching every variant
/// (the API maps NotFound → 404, Conflict → 409, Invalid → 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Invalid,
}

impl ErrorKind {
    /// The kind a code stands for: `*_not_found` is [`ErrorKind::NotFound`], `validation_failed` is
    /// [`ErrorKind::Invalid`], every other refusal is a [`ErrorKind::Conflict`] with the aggregate's state.
    pub fn of_code(code: &str) -> Self {
        if code.ends_with("_not_found") {
            ErrorKind::NotFound
        } else if code == "validation_failed" {
            ErrorKind::Invalid
        } else {
            ErrorKind::Conflict
        }
    }
}

/// What every aggregate's error says about itself, so an edge (the API's problem+json, the runtime's ack/nak, a CLI
/// message) maps any of them with one function and a new aggregate needs no new mapping.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    /// Every code [`DomainError::code`] returns: the list specs/03 §2 and specs/04 §3 give for this aggregate
    /// (checked by `spec_consistency`).
    fn all_codes() -> &'static [&'static str]
    where
        Self: Sized;

    /// Stable snake_case code (problem+json `code`).
    fn code(&self) -> &'static str;

    /// Not found, conflict or invalid (see [`ErrorKind::of_code`]).
    fn kind(&self) -> ErrorKind {
        ErrorKind::of_code(self.code())
    }

    /// The offending field (dotted path) of a validation failure.
    fn field(&self) -> Option<&str>;

    /// The aggregate's state when a state error refused the command (`"running"`, `"filled"`, …).
    fn current_state(&self) -> Option<&'static str>;
}
