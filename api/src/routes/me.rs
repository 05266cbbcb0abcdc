//! `GET /api/v1/me`: who the server thinks the caller is.

use axum::Json;

use crate::auth::{Caller, Role};
use crate::problem::ApiError;

/// # Errors
/// 401 without a valid token; 403 when the token carries no STROM role.
#[tracing::instrument(skip_all)]
pub async fn me(caller: Caller) -> Result<Json<Caller>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(caller))
}
