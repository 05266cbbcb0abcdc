//! Authentication flags shared by `strom serve` (which verifies tokens) and `strom token` (which mints dev ones).

use std::path::PathBuf;

use clap::Args;
use strom_api::auth::{AuthMode, AuthSettings, DEFAULT_AUDIENCE, DEV_ISSUER};

#[derive(Args)]
pub struct AuthArgs {
    /// JWKS URL to verify RS256 tokens against (Keycloak: <realm url>/protocol/openid-connect/certs).
    /// Unset = dev mode: HS256 with the key in --dev-key-file.
    #[arg(long, env = "STROM_AUTH_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Required `iss` claim. JWKS mode: required, the identity provider's issuer as the browser reaches it
    /// (Keycloak: the realm URL, e.g. http://localhost:8180/realms/strom); the dashboard signs in there.
    /// Dev mode: `strom-dev`.
    #[arg(long, env = "STROM_AUTH_ISSUER")]
    pub issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "STROM_AUTH_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub audience: String,
    /// Dev-mode signing key file; created with a random key on first use.
    #[arg(
        long,
        env = "STROM_AUTH_DEV_KEY_FILE",
        default_value = ".strom/dev-jwt.key"
    )]
    pub dev_key_file: PathBuf,
    /// Key of the Telegram session tokens the API mints for linked chats; created with a random key on first use.
    /// Default: `session.key` beside the dev key file (`.strom/session.key`).
    #[arg(long, env = "STROM_AUTH_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
}

impl AuthArgs {
    /// What the server's authenticator checks: JWKS mode when a JWKS URL is set, dev mode otherwise.
    ///
    /// # Errors
    /// JWKS mode without an issuer: every token's `iss` must be checked, and the dashboard needs to know where to
    /// sign in.
    pub fn settings(&self) -> anyhow::Result<AuthSettings> {
        let session_key_file = self
            .session_key_file
            .clone()
            .unwrap_or_else(|| self.dev_key_file.with_file_name("session.key"));
        Ok(match &self.jwks_url {
            Some(url) => AuthSettings {
                mode: AuthMode::Jwks { url: url.clone() },
                audience: self.audience.clone(),
                issuer: Some(self.issuer.clone().ok_or_else(|| {
                    anyhow::anyhow!(
                        "STROM_AUTH_ISSUER (--issuer) is required with STROM_AUTH_JWKS_URL: the identity provider's \
                         issuer URL as browsers reach it (Keycloak: the realm URL, e.g. \
                         http://localhost:8180/realms/strom), which every token's `iss` must match and where the \
                         dashboard signs in"
                    )
                })?),
                session_key_file,
            },
            None => AuthSettings {
                mode: AuthMode::Dev {
                    key_file: self.dev_key_file.clone(),
                },
                audience: self.audience.clone(),
                issuer: Some(self.issuer.clone().unwrap_or_else(|| DEV_ISSUER.to_owned())),
                session_key_file,
            },
        })
    }
}
