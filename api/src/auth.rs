//! Bearer-JWT authentication and role checks for /api/v1.
//!
//! Two modes (specs/05-security.md): RS256 against a JWKS URL (Keycloak in the full stack), or dev mode with an HS256
//! key kept in a local file that `strom token` also reads. Roles are ordered viewer < trader < admin; a caller acts
//! with the highest role it holds. In addition, always, Telegram session tokens (HS256 with the session key, issuer
//! [`TELEGRAM_ISSUER`]) that `POST /api/v1/telegram/sessions` mints for a linked chat; the token's `iss` selects the
//! verifier.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use crate::problem::ApiError;

/// Issuer written into dev tokens and expected from them unless STROM_AUTH_ISSUER says otherwise.
pub const DEV_ISSUER: &str = "strom-dev";
/// Audience every token must carry unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "strom-api";
/// Clock skew tolerated on `exp`/`nbf`: a minute covers ordinary NTP drift between Keycloak and us.
const CLOCK_LEEWAY_S: u64 = 60;
/// A token with an unknown `kid` triggers a JWKS refresh at most this often, so forged tokens cannot make us
/// hammer the identity provider.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);
/// Bound on the JWKS fetch: the identity provider is on the same network; longer means it is down.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of randomness in a generated dev key (HS256 wants at least 256 bits).
const DEV_KEY_BYTES: usize = 32;
/// Issuer of the session tokens the API mints for linked Telegram chats (specs/05 §5).
pub const TELEGRAM_ISSUER: &str = "strom-api/telegram";
/// Lifetime of a Telegram session token (specs/05 §5): the bot asks for a fresh one per message.
pub const TELEGRAM_SESSION_TTL_S: u64 = 300;
/// The service role of the bot's own credential, outside the viewer < trader < admin hierarchy.
pub const TELEGRAM_BOT_ROLE: &str = "telegram-bot";

/// A STROM role. The derive order is the privilege order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Trader,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "trader" => Some(Role::Trader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Trader => "trader",
            Role::Admin => "admin",
        }
    }
}

/// `roles` capped at trader (an admin links a Telegram chat as a trader), sorted, without duplicates.
pub fn capped_at_trader(roles: &[Role]) -> Vec<Role> {
    let mut capped: Vec<Role> = roles.iter().map(|r| (*r).min(Role::Trader)).collect();
    capped.sort();
    capped.dedup();
    capped
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub sub: String,
    /// STROM roles found in the token, sorted, without duplicates; other roles are ignored.
    pub roles: Vec<Role>,
    /// The token carries the `telegram-bot` service role (the bot's own credential).
    pub telegram_bot: bool,
    /// The Telegram chat this caller acts from: set for a Telegram session token only.
    pub chat_id: Option<i64>,
}

impl Caller {
    /// A user caller with `roles` (no service role, not from Telegram).
    pub fn user(sub: impl Into<String>, roles: Vec<Role>) -> Self {
        Self {
            sub: sub.into(),
            roles,
            telegram_bot: false,
            chat_id: None,
        }
    }

    /// Who acted, as the events' metadata `actor` records it (specs/04 §1): `telegram:<chat_id>` for a command
    /// from a linked chat (the user's `sub` then rides in metadata `user`), else the `sub`.
    pub fn actor(&self) -> String {
        match self.chat_id {
            Some(chat_id) => format!("telegram:{chat_id}"),
            None => self.sub.clone(),
        }
    }

    /// The metadata of the commands this caller asks for: `actor` ([`Self::actor`]), and `user` = `sub` when the
    /// actor is a Telegram chat.
    pub fn command_context(&self, correlation_id: &str) -> strom_commands::service::CommandContext {
        let context = strom_commands::service::CommandContext::new(correlation_id, self.actor());
        if self.chat_id.is_some() {
            context.on_behalf_of(self.sub.clone())
        } else {
            context
        }
    }

    /// # Errors
    /// `Forbidden` unless the caller holds the `telegram-bot` service role.
    pub fn require_telegram_bot(&self) -> Result<(), ApiError> {
        if self.telegram_bot {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this endpoint is for the Telegram bot's service credential (role {TELEGRAM_BOT_ROLE})"
            )))
        }
    }

    /// The highest role held, if any.
    pub fn role(&self) -> Option<Role> {
        self.roles.iter().copied().max()
    }

    /// # Errors
    /// `Forbidden` when the caller's highest role is below `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        match self.role() {
            Some(role) if role >= needed => Ok(()),
            Some(role) => Err(ApiError::Forbidden(format!(
                "this action needs role {}; you have {}",
                needed.as_str(),
                role.as_str()
            ))),
            None => Err(ApiError::Forbidden(format!(
                "this action needs role {}; your token carries no STROM role (viewer, trader or admin)",
                needed.as_str()
            ))),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Some(Role::Admin)
    }
}

/// Claims we read. Keycloak puts realm roles in `realm_access.roles`; dev tokens use a top-level `roles`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_access: Option<RealmAccess>,
    /// Telegram session tokens only: the linked chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RealmAccess {
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Claims {
    fn into_caller(self) -> Caller {
        let realm = self.realm_access.map(|r| r.roles).unwrap_or_default();
        let mut roles: Vec<Role> = self
            .roles
            .iter()
            .chain(realm.iter())
            .filter_map(|r| Role::parse(r))
            .collect();
        roles.sort();
        roles.dedup();
        let telegram_bot = self
            .roles
            .iter()
            .chain(realm.iter())
            .any(|r| r == TELEGRAM_BOT_ROLE);
        Caller {
            sub: self.sub,
            roles,
            telegram_bot,
            chat_id: None,
        }
    }

    /// The caller of a Telegram session token: the linked user's roles capped at trader (admin power is never
    /// available through Telegram), no service role, and the chat.
    fn into_telegram_caller(self) -> Result<Caller, ApiError> {
        let chat_id = self.chat_id.ok_or_else(|| {
            ApiError::Unauthorized("telegram session token lacks `chat_id`".into())
        })?;
        let mut caller = self.into_caller();
        caller.roles = capped_at_trader(&caller.roles);
        caller.telegram_bot = false;
        caller.chat_id = Some(chat_id);
        Ok(caller)
    }
}

/// Only the issuer, read before verification to choose the verifier.
#[derive(Deserialize)]
struct IssuerOnly {
    #[serde(default)]
    iss: Option<String>,
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// HS256 with the key in this file (created on first use).
    Dev { key_file: PathBuf },
    /// RS256 with keys from this JWKS URL.
    Jwks { url: String },
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub audience: String,
    /// Expected `iss`; `None` accepts any issuer (dev mode defaults to `strom-dev`).
    pub issuer: Option<String>,
    /// The HS256 key of Telegram session tokens (`STROM_AUTH_SESSION_KEY_FILE`; created like the dev key).
    pub session_key_file: PathBuf,
}

/// Verifies bearer tokens. Cheap to share (`Arc`).
pub struct Authenticator {
    settings: AuthSettings,
    verifier: Verifier,
    session: SessionKeys,
}

/// The Telegram session key, for minting and verifying.
struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

enum Verifier {
    Dev(DecodingKey),
    Jwks(JwksCache),
}

impl Authenticator {
    /// # Errors
    /// Dev mode: the key file cannot be read or created.
    pub fn new(settings: AuthSettings) -> anyhow::Result<Self> {
        let verifier = match &settings.mode {
            AuthMode::Dev { key_file } => Verifier::Dev(DecodingKey::from_secret(
                &DevKey::load_or_create(key_file)?.0,
            )),
            AuthMode::Jwks { url } => Verifier::Jwks(JwksCache::new(url.clone())?),
        };
        let session_key = DevKey::load_or_create(&settings.session_key_file)?;
        let session = SessionKeys {
            encoding: EncodingKey::from_secret(&session_key.0),
            decoding: DecodingKey::from_secret(&session_key.0),
        };
        Ok(Self {
            settings,
            verifier,
            session,
        })
    }

    /// A Telegram session token (specs/05 §5) for `sub` acting from `chat_id` with `roles` (capped at trader),
    /// valid [`TELEGRAM_SESSION_TTL_S`] from `now_s`.
    ///
    /// # Errors
    /// Only if signing fails, which HS256 does not in practice.
    pub fn mint_telegram_session(
        &self,
        sub: &str,
        roles: &[Role],
        chat_id: i64,
        now_s: u64,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: sub.to_owned(),
            exp: now_s + TELEGRAM_SESSION_TTL_S,
            iat: Some(now_s),
            iss: Some(TELEGRAM_ISSUER.to_owned()),
            aud: Some(serde_json::Value::String(self.settings.audience.clone())),
            roles: capped_at_trader(roles)
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            realm_access: None,
            chat_id: Some(chat_id),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.session.encoding,
        )?)
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Whether tokens are dev tokens (HS256 with the local key) rather than the identity provider's.
    pub fn is_dev(&self) -> bool {
        matches!(self.settings.mode, AuthMode::Dev { .. })
    }

    /// A dev token for `sub` with `roles`, valid `ttl_s` from `now_s` (unix seconds), signed with the key this
    /// server verifies with.
    ///
    /// # Errors
    /// The server is not in dev mode, or the key file cannot be read.
    pub fn mint_dev(
        &self,
        sub: &str,
        roles: &[Role],
        now_s: u64,
        ttl_s: u64,
    ) -> anyhow::Result<String> {
        let AuthMode::Dev { key_file } = &self.settings.mode else {
            anyhow::bail!("dev tokens are minted only in dev mode");
        };
        DevKey::load_or_create(key_file)?.mint(sub, roles, now_s, ttl_s, &self.settings.audience)
    }

    /// # Errors
    /// `Unauthorized` for a malformed, expired, wrongly signed, wrong-audience or wrong-issuer token;
    /// `Unavailable` when the JWKS cannot be fetched.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::Unauthorized(format!("malformed bearer token: {e}")))?;
        let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
            .map_err(|e| ApiError::Unauthorized(format!("malformed bearer token: {e}")))?
            .iss;
        if issuer.as_deref() == Some(TELEGRAM_ISSUER) {
            return self.authenticate_telegram(&header, token);
        }
        let (key, alg) = match &self.verifier {
            Verifier::Dev(key) => (key.clone(), Algorithm::HS256),
            Verifier::Jwks(cache) => (
                cache.key_for(header.kid.as_deref()).await?,
                Algorithm::RS256,
            ),
        };
        if header.alg != alg {
            return Err(ApiError::Unauthorized(format!(
                "token signed with {:?}; this server accepts only {alg:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = CLOCK_LEEWAY_S;
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        if let Some(iss) = &self.settings.issuer {
            validation.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| ApiError::Unauthorized(describe_jwt_error(&e)))?;
        Ok(data.claims.into_caller())
    }

    fn authenticate_telegram(
        &self,
        header: &jsonwebtoken::Header,
        token: &str,
    ) -> Result<Caller, ApiError> {
        if header.alg != Algorithm::HS256 {
            return Err(ApiError::Unauthorized(format!(
                "telegram session token signed with {:?}; only HS256 is accepted",
                header.alg
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = CLOCK_LEEWAY_S;
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        validation.set_issuer(&[TELEGRAM_ISSUER]);
        jsonwebtoken::decode::<Claims>(token, &self.session.decoding, &validation)
            .map_err(|e| ApiError::Unauthorized(describe_jwt_error(&e)))?
            .claims
            .into_telegram_caller()
    }
}

fn describe_jwt_error(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::InvalidSignature => "token signature does not verify".into(),
        ErrorKind::InvalidAudience => "token audience is not this API".into(),
        ErrorKind::InvalidIssuer => "token issuer is not trusted".into(),
        ErrorKind::ImmatureSignature => "token not valid yet".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("token lacks the `{c}` claim"),
        other => format!("invalid token: {other:?}"),
    }
}

/// JWKS keys cached by `kid`, refreshed when an unknown `kid` shows up (rate-limited).
struct JwksCache {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Option<JwkSet>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl JwksCache {
    fn new(url: String) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .build()?;
        Ok(Self {
            url,
            client,
            keys: RwLock::new(None),
            last_fetch: Mutex::new(None),
        })
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, ApiError> {
        if let Some(key) = self.lookup(kid).await? {
            return Ok(key);
        }
        self.refresh().await?;
        self.lookup(kid).await?.ok_or_else(|| {
            ApiError::Unauthorized(format!("token signed with unknown key id {kid:?}"))
        })
    }

    async fn lookup(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, ApiError> {
        let keys = self.keys.read().await;
        let Some(set) = keys.as_ref() else {
            return Ok(None);
        };
        let jwk = match kid {
            Some(kid) => set.find(kid),
            // Without a kid, accept only an unambiguous single-key set.
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        };
        jwk.map(DecodingKey::from_jwk)
            .transpose()
            .map_err(|e| ApiError::Unauthorized(format!("unusable signing key in JWKS: {e}")))
    }

    async fn refresh(&self) -> Result<(), ApiError> {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < JWKS_MIN_REFRESH) && self.keys.read().await.is_some()
        {
            return Ok(());
        }
        let set: JwkSet = async {
            self.client
                .get(&self.url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        }
        .await
        .map_err(|e: reqwest::Error| {
            ApiError::Unavailable(format!("cannot fetch signing keys from {}: {e}", self.url))
        })?;
        *self.keys.write().await = Some(set);
        *last = Some(Instant::now());
        Ok(())
    }
}

/// The dev-mode HS256 key: random bytes, hex-encoded in a file readable only by its owner.
pub struct DevKey(Vec<u8>);

impl DevKey {
    /// Reads the key, creating the file (and its directory) with a fresh random key if it does not exist.
    ///
    /// # Errors
    /// The file exists but is not a hex key, or cannot be read/written.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .with_context(|| format!("dev key file {} is not hex", path.display()))?;
                anyhow::ensure!(
                    bytes.len() >= DEV_KEY_BYTES,
                    "dev key file {} holds {} bytes; need at least {DEV_KEY_BYTES}",
                    path.display(),
                    bytes.len()
                );
                Ok(Self(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: Vec<u8> = (0..DEV_KEY_BYTES).map(|_| rand::random::<u8>()).collect();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("Failed to create {}", dir.display()))?;
                }
                write_private(path, &hex::encode(&bytes))
                    .with_context(|| format!("Failed to write dev key file {}", path.display()))?;
                Ok(Self(bytes))
            }
            Err(e) => {
                Err(e).with_context(|| format!("Failed to read dev key file {}", path.display()))
            }
        }
    }

    /// Mints a dev token for `sub` with `roles`, valid `ttl_s` seconds from `now_s` (unix seconds).
    ///
    /// # Errors
    /// Only if signing fails, which HS256 does not in practice.
    pub fn mint(
        &self,
        sub: &str,
        roles: &[Role],
        now_s: u64,
        ttl_s: u64,
        audience: &str,
    ) -> anyhow::Result<String> {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        self.mint_named(sub, &names, now_s, ttl_s, audience)
    }

    /// As [`Self::mint`] with role names, so a service role (`telegram-bot`) can be granted too.
    ///
    /// # Errors
    /// Only if signing fails, which HS256 does not in practice.
    pub fn mint_named(
        &self,
        sub: &str,
        roles: &[&str],
        now_s: u64,
        ttl_s: u64,
        audience: &str,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: sub.to_owned(),
            exp: now_s + ttl_s,
            iat: Some(now_s),
            iss: Some(DEV_ISSUER.to_owned()),
            aud: Some(serde_json::Value::String(audience.to_owned())),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            realm_access: None,
            chat_id: None,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.0),
        )?)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        let value = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization: Bearer <token> header".into())
            })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization header is not `Bearer <token>`".into())
            })?;
        let caller = auth.authenticate(token).await?;
        tracing::Span::current().record("sub", caller.sub.as_str());
        Ok(caller)
    }
}

/// A caller holding at least `viewer` (reads); 401/403 otherwise, before any body is read.
pub struct Viewer(pub Caller);
/// A caller holding at least `trader` (commands); 401/403 otherwise, before any body is read.
pub struct Trader(pub Caller);

impl<S> FromRequestParts<S> for Viewer
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Role::Viewer)?;
        Ok(Viewer(caller))
    }
}

impl<S> FromRequestParts<S> for Trader
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Role::Trader)?;
        Ok(Trader(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[Role]) -> Caller {
        Caller::user("alice", roles.to_vec())
    }

    #[test]
    fn roles_are_ordered_viewer_trader_admin() {
        assert!(Role::Viewer < Role::Trader && Role::Trader < Role::Admin);
        assert!(caller(&[Role::Admin]).require(Role::Trader).is_ok());
        assert!(caller(&[Role::Trader]).require(Role::Trader).is_ok());
        assert!(matches!(
            caller(&[Role::Viewer]).require(Role::Trader),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            caller(&[]).require(Role::Viewer),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn keycloak_realm_roles_and_dev_roles_are_both_read_and_unknown_ones_ignored() {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "sub": "bob", "exp": 1,
            "roles": ["trader", "offline_access"],
            "realm_access": {"roles": ["viewer", "uma_authorization", "trader"]}
        }))
        .unwrap();
        assert_eq!(claims.into_caller().roles, vec![Role::Viewer, Role::Trader]);
    }

    #[tokio::test]
    async fn dev_tokens_round_trip_and_a_foreign_key_is_rejected() {
        let dir = std::env::temp_dir().join(format!("strom-auth-{}", uuid::Uuid::new_v4()));
        let key_file = dir.join("dev.key");
        let auth = Authenticator::new(AuthSettings {
            mode: AuthMode::Dev {
                key_file: key_file.clone(),
            },
            audience: DEFAULT_AUDIENCE.into(),
            issuer: Some(DEV_ISSUER.into()),
            session_key_file: dir.join("session.key"),
        })
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = DevKey::load_or_create(&key_file)
            .unwrap()
            .mint("alice", &[Role::Trader], now, 60, DEFAULT_AUDIENCE)
            .unwrap();
        assert_eq!(
            auth.authenticate(&token).await.unwrap(),
            caller(&[Role::Trader])
        );
        let other = DevKey(vec![7; DEV_KEY_BYTES])
            .mint("alice", &[Role::Admin], now, 60, DEFAULT_AUDIENCE)
            .unwrap();
        assert!(matches!(
            auth.authenticate(&other).await,
            Err(ApiError::Unauthorized(_))
        ));

        // A Telegram session: its issuer selects the session key; roles are capped at trader; the chat is kept.
        let session = auth
            .mint_telegram_session("alice", &[Role::Viewer, Role::Admin], 42, now)
            .unwrap();
        let from_chat = auth.authenticate(&session).await.unwrap();
        assert_eq!(from_chat.roles, vec![Role::Viewer, Role::Trader]);
        assert_eq!(from_chat.chat_id, Some(42));
        assert_eq!(from_chat.actor(), "telegram:42");
        // A dev-key token claiming the Telegram issuer does not verify (wrong key for that issuer).
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                exp: now + 60,
                iat: None,
                iss: Some(TELEGRAM_ISSUER.into()),
                aud: Some(serde_json::json!(DEFAULT_AUDIENCE)),
                roles: vec!["trader".into()],
                realm_access: None,
                chat_id: Some(42),
            },
            &EncodingKey::from_secret(&DevKey::load_or_create(&key_file).unwrap().0),
        )
        .unwrap();
        assert!(matches!(
            auth.authenticate(&forged).await,
            Err(ApiError::Unauthorized(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
