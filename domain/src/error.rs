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
