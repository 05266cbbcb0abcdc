//! `GET /api/v1/me`: who the server thinks the caller is.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::auth::{AuthMode, Authenticator, Caller, Role};
use crate::problem::ApiError;

/// `Me` (specs/03 §5).
#[derive(Debug, Serialize)]
pub struct Me {
    sub: String,
    roles: Vec<Role>,
    /// The highest role held: what the caller acts with.
    role: Role,
    /// How the token was verified: `keycloak` (RS256 via JWKS) or `dev` (local HS256 key).
    auth_mode: &'static str,
    /// Telegram chats linked to this user. Linking arrives with the Telegram bot (M2); until then no chat can be
    /// linked, so this is always 0.
    telegram_links: u32,
}

/// # Errors
/// 401 without a valid token; 403 when the token carries no STROM role.
#[tracing::instrument(skip_all)]
pub async fn me(
    State(auth): State<Arc<Authenticator>>,
    caller: Caller,
) -> Result<Json<Me>, ApiError> {
    caller.require(Role::Viewer)?;
    let role = caller.role().unwrap_or(Role::Viewer);
    let auth_mode = match auth.settings().mode {
        AuthMode::Dev { .. } => "dev",
        AuthMode::Jwks { .. } => "keycloak",
    };
    Ok(Json(Me {
        sub: caller.sub,
        roles: caller.roles,
        role,
        auth_mode,
        telegram_links: 0,
    }))
}
