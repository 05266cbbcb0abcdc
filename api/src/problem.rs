//! RFC 7807 problem+json: the one place where API errors become HTTP responses (zero2prod's single
//! `IntoResponse` impl), so every handler returns `Result<_, ApiError>` and never builds an error body itself.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strom_commands::service::CommandError;
use strom_domain::{DomainError, ErrorKind};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error as the API reports it. Each variant maps to exactly one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that do not verify (bad signature, expired, wrong audience/issuer).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist, or exists but belongs to someone else (we do not reveal which).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state of the resource.
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        current_state: Option<String>,
    },
    /// The body or a parameter is well-formed but invalid; `field` names the offending input.
    #[error("{detail}")]
    Validation {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// The body could not be read as JSON of the expected shape.
    #[error("{0}")]
    BadRequest(String),
    /// A dependency (database, bus) is not answering.
    #[error("{0}")]
    Unavailable(String),
    /// `/readyz`: a configured dependency does not answer.
    #[error("{0}")]
    NotReady(String),
    /// A 404 with a more specific code than `not_found` (`agent_not_found`, `no_price`).
    #[error("{detail}")]
    Missing { code: &'static str, detail: String },
    /// The body is larger than the API accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A documented endpoint whose milestone is not built yet (`x-strom-planned` in specs/openapi.yaml).
    #[error("{0}")]
    NotImplemented(String),
    /// 403 `chat_not_linked`: the Telegram chat of a session request is not linked to any user.
    #[error("{0}")]
    ChatNotLinked(String),
    /// Too many requests (or open streams) for this caller; try again after `retry_after_s`.
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after_s: u64 },
    /// Anything else: logged with its cause, reported without internals.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_state: Option<&'a str>,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ChatNotLinked(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::Missing { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code, also the last segment of the problem `type` URI.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::ChatNotLinked(_) => "chat_not_linked",
            ApiError::NotFound(_) => "not_found",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Conflict { code, .. }
            | ApiError::Validation { code, .. }
            | ApiError::Missing { code, .. } => code,
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NotReady(_) => "not_ready",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                "internal error; the correlation id in x-request-id identifies it in the logs"
                    .to_owned()
            }
            other => other.to_string(),
        };
        let (field, current_state) = match &self {
            ApiError::Validation { field, .. } => (field.as_deref(), None),
            ApiError::Conflict { current_state, .. } => (None, current_state.as_deref()),
            _ => (None, None),
        };
        let code = self.code();
        let body = Problem {
            kind: format!("https://strom.invalid/problems/{code}"),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail,
            code,
            field,
            current_state,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::TooManyRequests { retry_after_s, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl ApiError {
    /// 422 `validation_failed` naming `field` (a JSON pointer such as `/strategy/params/slow`).
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation {
            code: "validation_failed",
            field: Some(field.into()),
            detail: detail.into(),
        }
    }
}

/// The JSON pointer (`/strategy/params/slow`) for a domain field path (`strategy.params.slow`); the empty path (the
/// whole request) is `/`; a path that already is a pointer is kept.
pub fn field_pointer(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    if path.starts_with('/') {
        return path.to_owned();
    }
    format!("/{}", path.replace('.', "/"))
}

impl ApiError {
    /// The one mapping of an aggregate's refusal (any aggregate: [`DomainError`]) to problem+json: `*_not_found` →
    /// 404, `validation_failed` → 422 with the field as a JSON pointer, any other code → 409 with the aggregate's
    /// `current_state`.
    pub fn refused(e: &impl DomainError) -> Self {
        let detail = e.to_string();
        match e.kind() {
            ErrorKind::NotFound => ApiError::Missing {
                code: e.code(),
                detail,
            },
            ErrorKind::Invalid => ApiError::Validation {
                code: e.code(),
                field: e.field().map(field_pointer),
                detail,
            },
            ErrorKind::Conflict => ApiError::Conflict {
                code: e.code(),
                detail,
                current_state: e.current_state().map(str::to_owned),
            },
        }
    }
}

impl From<strom_domain::ValidationError> for ApiError {
    fn from(e: strom_domain::ValidationError) -> Self {
        ApiError::invalid(field_pointer(&e.field), format!("invalid {e}"))
    }
}

impl<E: DomainError> From<CommandError<E>> for ApiError {
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(e) => ApiError::refused(&e),
            conflict @ CommandError::Conflict { .. } => ApiError::Conflict {
                code: "concurrency_conflict",
                detail: conflict.to_string(),
                current_state: None,
            },
            CommandError::Store(e) => ApiError::Internal(anyhow::anyhow!("event store: {e}")),
        }
    }
}
