//! `GET /api/v1/me`: who the server thinks the caller is.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::auth::{AuthMode, Caller, Role};
use crate::problem::ApiError;
use crate::state::AppState;

/// `Me` (specs/03 §5).
#[derive(Debug, Serialize)]
pub struct Me {
    sub: String,
    roles: Vec<Role>,
    /// The highest role held: what the caller acts with.
    role: Role,
    /// How the token was verified: `keycloak` (RS256 via JWKS), `dev` (local HS256 key) or `telegram` (a session
    /// token of a linked chat).
    auth_mode: &'static str,
    /// Telegram chats linked to this user.
    telegram_links: usize,
}

/// # Errors
/// 401 without a valid token; 403 when the token carries no STROM role.
#[tracing::instrument(skip_all)]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    caller.require(Role::Viewer)?;
    let role = caller.role().unwrap_or(Role::Viewer);
    let auth_mode = match (caller.chat_id, &state.auth.settings().mode) {
        (Some(_), _) => "telegram",
        (None, AuthMode::Dev { .. }) => "dev",
        (None, AuthMode::Jwks { .. }) => "keycloak",
    };
    let telegram_links = state.links.links_of_user(&caller.sub).await?.len();
    Ok(Json(Me {
        sub: caller.sub,
        roles: caller.roles,
        role,
        auth_mode,
        telegram_links,
    }))
}
