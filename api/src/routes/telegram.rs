//! `/api/v1/telegram/*`: link codes, linked chats and session tokens for the Telegram bot (specs/05 §5).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role, Viewer, TELEGRAM_SESSION_TTL_S};
use crate::extract::ApiJson;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::telegram::{code_hash, new_link_code, TelegramLink, ATTEMPT_WINDOW_S};

/// Longest code the API reads (`RedeemLinkCode.code`); real codes have 8 characters.
const MAX_CODE_LEN: usize = 32;
/// Longest Telegram username kept (`RedeemLinkCode.telegram_username`).
const MAX_USERNAME_LEN: usize = 64;

/// `LinkCode` (specs/03 §5).
#[derive(Debug, Serialize)]
pub struct LinkCode {
    code: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    bot_command: String,
}

/// `RedeemLinkCode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemLinkCode {
    code: String,
    chat_id: i64,
    #[serde(default)]
    telegram_username: Option<String>,
    /// The Telegram user who sent `/link` (in a group, the only one the bot then obeys).
    #[serde(default)]
    telegram_user_id: Option<i64>,
}

/// `TelegramSessionRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSessionRequest {
    chat_id: i64,
}

/// `TelegramSession`.
#[derive(Debug, Serialize)]
pub struct TelegramSession {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    sub: String,
    /// The Telegram user who linked the chat (null for a link older than that record).
    telegram_user_id: Option<i64>,
}

/// `TelegramLinkList`.
#[derive(Debug, Serialize)]
pub struct TelegramLinkList {
    items: Vec<TelegramLink>,
}

fn link_code_invalid() -> ApiError {
    ApiError::Validation {
        code: "link_code_invalid",
        field: Some("/code".into()),
        detail: "the link code is unknown, used or expired; create a new one".into(),
    }
}

/// `POST /api/v1/telegram/link-codes` → 201 `LinkCode` (viewer: the chat then acts with the caller's role, capped at
/// trader; at most 5 per 10 minutes).
///
/// # Errors
/// 401/403, 429 `rate_limited`.
#[tracing::instrument(skip_all)]
pub async fn create_link_code(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
) -> Result<Response, ApiError> {
    if caller.chat_id.is_some() {
        return Err(ApiError::Forbidden(
            "link codes are created from the dashboard or the API, not from a Telegram chat".into(),
        ));
    }
    let now = state.now();
    if let Some(retry_after_s) = state.links.code_creation_wait(&caller.sub, now) {
        return Err(ApiError::TooManyRequests {
            detail: format!("at most 5 link codes per {} minutes", ATTEMPT_WINDOW_S / 60),
            retry_after_s,
        });
    }
    let code = new_link_code();
    let expires_at = state
        .links
        .create_code(&code_hash(&code), &caller.sub, &caller.roles, now)
        .await?;
    state.links.note_code_creation(&caller.sub, now);
    let bot_command = format!("/link {code}");
    Ok((
        StatusCode::CREATED,
        Json(LinkCode {
            code,
            expires_at,
            bot_command,
        }),
    )
        .into_response())
}

/// `GET /api/v1/telegram/links` → 200 `TelegramLinkList` (the caller's chats).
///
/// # Errors
/// 401/403.
#[tracing::instrument(skip_all)]
pub async fn list_links(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
) -> Result<Json<TelegramLinkList>, ApiError> {
    Ok(Json(TelegramLinkList {
        items: state.links.links_of_user(&caller.sub).await?,
    }))
}

/// `POST /api/v1/telegram/links` → 201 `TelegramLink` (telegram-bot only).
///
/// # Errors
/// 401/403, 422 `link_code_invalid` (unknown, used or expired alike), 429 after 5 failures per chat in 10 minutes.
#[tracing::instrument(skip_all, fields(chat_id))]
pub async fn redeem_link_code(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RedeemLinkCode>,
) -> Result<Response, ApiError> {
    caller.require_telegram_bot()?;
    tracing::Span::current().record("chat_id", body.chat_id);
    if body
        .telegram_username
        .as_ref()
        .is_some_and(|u| u.chars().count() > MAX_USERNAME_LEN)
    {
        return Err(ApiError::invalid(
            "/telegram_username",
            format!("at most {MAX_USERNAME_LEN} characters"),
        ));
    }
    let now = state.now();
    if let Some(retry_after_s) = state.links.redemption_wait(body.chat_id, now) {
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "too many invalid link codes from this chat; at most 5 per {} minutes",
                ATTEMPT_WINDOW_S / 60
            ),
            retry_after_s,
        });
    }
    let redeemed = if body.code.is_empty() || body.code.chars().count() > MAX_CODE_LEN {
        None
    } else {
        state
            .links
            .redeem(
                &code_hash(&body.code),
                body.chat_id,
                body.telegram_username,
                body.telegram_user_id,
                now,
            )
            .await?
    };
    let Some(link) = redeemed else {
        state.links.note_failed_redemption(body.chat_id, now);
        return Err(link_code_invalid());
    };
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

/// `DELETE /api/v1/telegram/links/{chat_id}` → 204 (one of the caller's chats).
///
/// # Errors
/// 401/403, 404 `link_not_found` (also for another user's chat and a path that is not a chat id).
#[tracing::instrument(skip(state, caller))]
pub async fn delete_link(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(chat_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::Missing {
        code: "link_not_found",
        detail: format!("no linked chat {chat_id}"),
    };
    let Ok(id) = chat_id.parse::<i64>() else {
        return Err(not_found());
    };
    if state.links.unlink(id, &caller.sub).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// `POST /api/v1/telegram/sessions` → 200 `TelegramSession` (telegram-bot only).
///
/// # Errors
/// 401/403, 403 `chat_not_linked`.
#[tracing::instrument(skip_all, fields(chat_id))]
pub async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TelegramSessionRequest>,
) -> Result<Json<TelegramSession>, ApiError> {
    caller.require_telegram_bot()?;
    tracing::Span::current().record("chat_id", body.chat_id);
    let Some(link) = state.links.link_of_chat(body.chat_id).await? else {
        return Err(ApiError::ChatNotLinked(format!(
            "chat {} is not linked; send /link <code> with a code from the dashboard",
            body.chat_id
        )));
    };
    let now_s = u64::try_from(state.now().timestamp()).unwrap_or(0);
    let roles: Vec<Role> = link.roles.clone();
    let access_token =
        state
            .auth
            .mint_telegram_session(&link.user_sub, &roles, body.chat_id, now_s)?;
    Ok(Json(TelegramSession {
        access_token,
        token_type: "Bearer",
        expires_in: TELEGRAM_SESSION_TTL_S,
        telegram_user_id: link.telegram_user_id,
        sub: link.user_sub,
    }))
}
