//! `POST /api/v1/auth/dev-sign-in`: a one-time code from the link `strom serve` prints, exchanged for a dev token
//! ([`crate::dev_sign_in`], specs/03 §2, specs/05 §1). No bearer token: the code is the credential.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;

/// Lifetime of the token a code buys: as long as `strom token`'s default.
pub const DEV_SIGN_IN_TOKEN_TTL_S: u64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSignInRequest {
    code: String,
}

/// `DevSignIn` (specs/03 §5).
#[derive(Debug, Serialize)]
pub struct DevSignInResponse {
    token: String,
    sub: String,
    roles: Vec<Role>,
    expires_in_s: u64,
}

/// # Errors
/// 404 when the server verifies tokens from an identity provider (no dev sign-in then); 401 for a code that was
/// used, has expired or was never issued; 400 for a malformed body.
#[tracing::instrument(skip_all)]
pub async fn dev_sign_in(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<DevSignInRequest>,
) -> Result<Json<DevSignInResponse>, ApiError> {
    if !state.auth.is_dev() {
        return Err(ApiError::NotFound(
            "dev sign-in is off: this server takes tokens from its identity provider".into(),
        ));
    }
    let now = state.now();
    let Some(sign_in) = state.dev_sign_in.redeem(&request.code, now) else {
        return Err(ApiError::Unauthorized(
            "this sign-in link was used already, has expired (after 15 minutes) or is mistyped: restart \
             `strom serve` for a new one, or sign in with a token from `strom token`"
                .into(),
        ));
    };
    let now_s = u64::try_from(now.timestamp()).unwrap_or(0);
    let token = state
        .auth
        .mint_dev(&sign_in.sub, &sign_in.roles, now_s, DEV_SIGN_IN_TOKEN_TTL_S)
        .map_err(ApiError::Internal)?;
    tracing::info!(sub = %sign_in.sub, "signed in with a one-time dev link");
    Ok(Json(DevSignInResponse {
        token,
        sub: sign_in.sub,
        roles: sign_in.roles,
        expires_in_s: DEV_SIGN_IN_TOKEN_TTL_S,
    }))
}
