//! Endpoints that specs/03 and specs/openapi.yaml document for a milestone not built yet (marked
//! `x-strom-planned: true` there). They are routed so they answer as documented without a token (401 problem+json),
//! and with one they say plainly that they are not built: 501 `not_implemented`, never a 404 that reads like a typo.

use crate::auth::Caller;
use crate::problem::ApiError;

/// Authenticates the caller (401 without a valid token), then answers 501 `not_implemented`.
pub async fn not_implemented(_caller: Caller) -> ApiError {
    ApiError::NotImplemented("this endpoint is planned and arrives with milestone M2".into())
}
