//! `GET /api/v1/auth/config`: how the dashboard signs in on this server (specs/05 §1). No bearer token: it is
//! asked before there is one.
//!
//! Dev mode: with the one-time link `strom serve` prints or a pasted `strom token`. JWKS (Keycloak) mode: at the
//! identity provider, with the authorization code flow and PKCE as the public client named here; the provider's
//! issuer URL is also where the browser finds its discovery document.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::auth::AuthMode;
use crate::state::AppState;

/// The client of deploy/keycloak/strom-realm.json the dashboard signs in as.
pub const DEFAULT_DASHBOARD_CLIENT_ID: &str = "strom-dashboard";
/// Where the identity provider sends the browser back with the authorization code (a dashboard page).
pub const CALLBACK_PATH: &str = "/sign-in/callback";
/// What the dashboard asks for: an ID token (OpenID) and, by the client's audience mapper, an access token for the
/// API. No refresh token: when the access token expires, the dashboard signs in again.
const SCOPE: &str = "openid";

/// `AuthConfig` (specs/03 §5).
#[derive(Debug, Serialize)]
pub struct AuthConfig {
    /// `dev` (local HS256 key) or `keycloak` (RS256 tokens of an identity provider, verified through its JWKS) —
    /// the values of `Me.auth_mode`.
    mode: &'static str,
    /// Where and as what to sign in; null in dev mode.
    oidc: Option<Oidc>,
}

/// `OidcClient` (specs/03 §5).
#[derive(Debug, Serialize)]
pub struct Oidc {
    /// The issuer (OpenID Connect authority): discovery at `<issuer>/.well-known/openid-configuration`.
    issuer: String,
    client_id: String,
    scope: &'static str,
    /// The path of this server the provider redirects back to (register `<origin><path>` at the client).
    redirect_path: &'static str,
}

/// Always 200.
#[tracing::instrument(skip_all)]
pub async fn auth_config(State(state): State<AppState>) -> Json<AuthConfig> {
    let settings = state.auth.settings();
    Json(match (&settings.mode, &settings.issuer) {
        (AuthMode::Jwks { .. }, Some(issuer)) => AuthConfig {
            mode: "keycloak",
            oidc: Some(Oidc {
                issuer: issuer.clone(),
                client_id: state.settings.dashboard_client_id.clone(),
                scope: SCOPE,
                redirect_path: CALLBACK_PATH,
            }),
        },
        (AuthMode::Jwks { .. }, None) => AuthConfig {
            mode: "keycloak",
            oidc: None,
        },
        (AuthMode::Dev { .. }, _) => AuthConfig {
            mode: "dev",
            oidc: None,
        },
    })
}

/// The origin (`scheme://host[:port]`) of the identity provider the dashboard talks to, when there is one: the
/// dashboard's Content-Security-Policy lets it fetch the provider's discovery document and token endpoint there.
pub fn identity_provider_origin(state: &AppState) -> Option<String> {
    let settings = state.auth.settings();
    if !matches!(settings.mode, AuthMode::Jwks { .. }) {
        return None;
    }
    let url = reqwest::Url::parse(settings.issuer.as_deref()?).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}
