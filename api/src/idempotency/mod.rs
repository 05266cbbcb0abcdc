//! `Idempotency-Key` on POSTs (specs/03 §1, specs/05 §7): a client that retries a POST with the same key and body
//! gets the first response again instead of a second agent, a second start, and so on.
//!
//! The record key is `sha256(sub | method | path | key)`, so keys are per user and per endpoint. A first request
//! claims the key with an in-flight marker; the completed response (2xx and 4xx except 429) replaces it and lives
//! [`RECORD_TTL`]; other outcomes (5xx, 429) release the key so a retry runs again. A duplicate that arrives while
//! the first is still running gets 409 `idempotency_in_progress` at once (it does not wait: the client retries and
//! then gets the stored response). The same key with a different body is 422 `idempotency_key_reused`.
//!
//! Two adapters of one port, [`IdempotencyStore`]: Valkey/Redis ([`redis::RedisIdempotencyStore`], shared by all API
//! processes) and a bounded in-process LRU ([`memory::MemoryIdempotencyStore`], embedded mode).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{Authenticator, Caller};
use crate::extract::{body_limit, read_body_limited};
use crate::problem::ApiError;

pub mod memory;
pub mod redis;

/// The request header carrying the client's key.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed response.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// How long a completed response is kept (specs/05 §7): a day covers any sane client retry schedule, including a
/// job that failed overnight and is re-run in the morning.
pub const RECORD_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long an in-flight marker blocks its key if the request never completes (the process died mid-request).
/// A command takes milliseconds and a shutdown waits at most 10 s, so a minute is never cut short by a live
/// request, yet a crashed one does not block the client's retries for long.
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(60);
/// Longest key accepted (specs/03 §1); the key is hashed, so this only bounds what a client can send.
pub const MAX_KEY_LEN: usize = 255;
/// Response headers a replay reproduces; the rest (date, x-request-id) belong to the replaying request.
const STORED_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];
/// POST endpoints whose responses are secrets and never stored (specs/03 §1); the header is ignored there.
const EXEMPT_PATHS: [&str; 2] = ["/api/v1/telegram/link-codes", "/api/v1/telegram/sessions"];

/// A response as stored for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    /// Lower-case header names with their values, in the order of [`STORED_HEADERS`].
    pub headers: Vec<(String, String)>,
    /// The body as text (every stored response is JSON or problem+json).
    pub body: String,
}

/// What a record key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Record {
    /// A request with this body hash is running.
    InFlight { body_hash: String },
    /// A request with this body hash completed with this response.
    Completed {
        body_hash: String,
        response: StoredResponse,
    },
}

impl Record {
    pub fn body_hash(&self) -> &str {
        match self {
            Record::InFlight { body_hash } | Record::Completed { body_hash, .. } => body_hash,
        }
    }
}

/// The outcome of [`IdempotencyStore::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now marked in flight for this caller: run the request.
    Claimed,
    /// The key already holds this record.
    Existing(Record),
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("idempotency store failed: {0}")]
    Backend(String),
    #[error("idempotency record is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Where idempotency records live. Implementations must make `claim` atomic: of two concurrent claims of one
/// key, exactly one gets [`Claim::Claimed`].
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Marks `key` in flight with `body_hash` if it holds nothing (the marker expires after the in-flight TTL);
    /// otherwise returns what it holds.
    ///
    /// # Errors
    /// The backend failed or holds an unreadable record.
    async fn claim(&self, key: &str, body_hash: &str) -> Result<Claim, IdempotencyError>;

    /// Replaces the in-flight marker of `key` with the completed response (kept for the record TTL).
    ///
    /// # Errors
    /// The backend failed.
    async fn complete(
        &self,
        key: &str,
        body_hash: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError>;

    /// Forgets `key` (the response is not stored), so the next request with it runs again.
    ///
    /// # Errors
    /// The backend failed.
    async fn release(&self, key: &str) -> Result<(), IdempotencyError>;
}

/// The record key for a caller's request: `sha256(sub | method | path | key)` in hex.
pub fn record_key(sub: &str, method: &Method, path: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [sub, method.as_str(), path, key] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn valid_key(value: &HeaderValue) -> Option<&str> {
    let key = value.to_str().ok()?;
    let ok = (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(key)
}

/// Middleware for the API router: applies the rules of the module docs to POSTs that carry the header. Generic
/// over the router's state so that this module needs only the two parts of it it uses (the store and the
/// authenticator), not the state type.
pub async fn idempotency<S>(State(state): State<S>, req: Request, next: Next) -> Response
where
    S: Send + Sync,
    Arc<dyn IdempotencyStore>: FromRef<S>,
    Arc<Authenticator>: FromRef<S>,
{
    if req.method() != Method::POST || EXEMPT_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(&IDEMPOTENCY_KEY).cloned() else {
        return next.run(req).await;
    };
    match guarded(&state, value, req, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn guarded<S>(
    state: &S,
    value: HeaderValue,
    req: Request,
    next: Next,
) -> Result<Response, Response>
where
    S: Send + Sync,
    Arc<dyn IdempotencyStore>: FromRef<S>,
    Arc<Authenticator>: FromRef<S>,
{
    let key = valid_key(&value).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Idempotency-Key must be 1..={MAX_KEY_LEN} visible ASCII characters"
        ))
        .into_response()
    })?;
    let (mut parts, body) = req.into_parts();
    // Without a valid caller there is no scope for the key; the handler answers 401/403 itself.
    let Ok(caller) = Caller::from_request_parts(&mut parts, state).await else {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    };
    let bytes = read_body_limited(body, body_limit(parts.uri.path()))
        .await
        .map_err(IntoResponse::into_response)?;
    let record = record_key(&caller.sub, &parts.method, parts.uri.path(), key);
    let hash = body_hash(&bytes);
    let store = Arc::<dyn IdempotencyStore>::from_ref(state);
    let claim = store.claim(&record, &hash).await.map_err(unavailable)?;
    if let Claim::Existing(existing) = claim {
        return Err(answer_existing(existing, &hash));
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    Ok(finish(store.as_ref(), &record, &hash, response).await)
}

fn unavailable(e: IdempotencyError) -> Response {
    ApiError::Unavailable(format!("{e}; the request was not run")).into_response()
}

fn answer_existing(existing: Record, hash: &str) -> Response {
    if existing.body_hash() != hash {
        return ApiError::Validation {
            code: "idempotency_key_reused",
            field: None,
            detail: "this Idempotency-Key was used with a different request body".into(),
        }
        .into_response();
    }
    match existing {
        Record::InFlight { .. } => ApiError::Conflict {
            code: "idempotency_in_progress",
            detail: "a request with this Idempotency-Key is still running; retry shortly".into(),
            current_state: None,
        }
        .into_response(),
        Record::Completed { response, .. } => replay(response),
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}

/// Stores a 2xx/4xx (not 429) response; releases the key otherwise.
async fn finish(
    store: &dyn IdempotencyStore,
    record: &str,
    hash: &str,
    response: Response,
) -> Response {
    let status = response.status();
    let storable = (status.is_success() || status.is_client_error())
        && status != StatusCode::TOO_MANY_REQUESTS;
    if !storable {
        if let Err(e) = store.release(record).await {
            tracing::warn!(error = %e, "could not release an idempotency key; it expires by itself");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "response body failed; idempotency key released");
            let _ = store.release(record).await;
            return ApiError::Internal(anyhow::anyhow!("response body failed: {e}"))
                .into_response();
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: stored_headers(&parts.headers),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    if let Err(e) = store.complete(record, hash, &stored).await {
        tracing::warn!(error = %e, "could not store an idempotent response; a retry may answer 409 until the marker expires");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn stored_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    STORED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

/// The store configured for this process: Valkey/Redis when a URL is given, the memory LRU otherwise.
///
/// # Errors
/// The URL is malformed or the server does not answer.
pub async fn connect(url: Option<&str>, prefix: &str) -> anyhow::Result<Arc<dyn IdempotencyStore>> {
    Ok(match url {
        Some(url) => Arc::new(redis::RedisIdempotencyStore::connect(url, prefix).await?),
        None => {
            tracing::warn!("EMBEDDED MODE: idempotency keys in memory, state is lost on exit");
            Arc::new(memory::MemoryIdempotencyStore::new())
        }
    })
}
