//! The bot's client of the STROM REST API (the only thing the bot talks to besides Telegram): the bot's own service
//! credential for linking and sessions, and the linked user's session token for everything else.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// How long one API call may take before the user is told the API is not answering.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Most PnL points `/daily` reads (pages of 5000).
const MAX_PNL_POINTS: usize = 100_000;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API did not answer (connection refused, timeout).
    #[error("the STROM API is not reachable: {0}")]
    Unreachable(String),
    /// The API answered with a problem (`code` from problem+json).
    #[error("{status} {code}: {detail}")]
    Problem {
        status: u16,
        code: String,
        detail: String,
    },
    /// The API answered with something this client does not understand.
    #[error("unexpected answer from the STROM API: {0}")]
    Unexpected(String),
}

impl ApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Problem { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Problem { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `TelegramSession`.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub sub: String,
    /// The Telegram user who linked the chat: in a group, the only one the bot obeys.
    #[serde(default)]
    pub telegram_user_id: Option<i64>,
}

/// The fields of `Agent` the bot shows.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Agent {
    pub agent_id: String,
    pub name: String,
    pub symbol: String,
    pub status: String,
    pub runs_count: u64,
    pub last_run_at: Option<DateTime<Utc>>,
}

/// The fields of `AgentSummary` the bot shows.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub agent_id: String,
    pub symbol: String,
    pub starting_cash: Decimal,
    pub equity: Decimal,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub fees: Decimal,
    pub pnl: Decimal,
    pub return_pct: Decimal,
    pub trades: u64,
}

/// The fields of `Trade` the bot shows.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Trade {
    pub side: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub realized_pnl: Decimal,
    pub filled_at: DateTime<Utc>,
}

/// The fields of `Position` the bot shows.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Position {
    pub symbol: String,
    pub qty: Decimal,
    pub avg_price: Decimal,
    pub mark_price: Option<Decimal>,
    pub equity: Decimal,
    pub pnl: Decimal,
}

/// The fields of `PnlPoint` `/daily` needs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PnlPoint {
    pub at: DateTime<Utc>,
    pub pnl: Decimal,
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

/// A client of one STROM API.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    /// For the SSE streams: no bound on the whole response, only on silence (the API sends a keep-alive every 15 s).
    streams: reqwest::Client,
    service_token: String,
}

/// A stream that has said nothing for this long is dead (the API's keep-alive comes every 15 s).
const STREAM_SILENCE: Duration = Duration::from_secs(45);

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`) with the bot's service credential.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(base: &str, service_token: String) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder().timeout(API_TIMEOUT).build()?,
            streams: reqwest::Client::builder()
                .connect_timeout(API_TIMEOUT)
                .read_timeout(STREAM_SILENCE)
                .build()?,
            service_token,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        correlation_id: &str,
        body: Option<Value>,
    ) -> Result<Option<T>, ApiError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("x-request-id", correlation_id);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiError::Unreachable(e.without_url().to_string()))?;
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return Ok(None);
            }
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ApiError::Unexpected(format!("{path}: {e}")));
        }
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(ApiError::Problem {
            status: status.as_u16(),
            code: problem["code"].as_str().unwrap_or("unknown").to_owned(),
            detail: problem["detail"]
                .as_str()
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
                .to_owned(),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        correlation_id: &str,
    ) -> Result<T, ApiError> {
        self.call(reqwest::Method::GET, path, token, correlation_id, None)
            .await?
            .ok_or_else(|| ApiError::Unexpected(format!("{path}: empty answer")))
    }

    /// Redeems a link code for `chat_id` with the service credential.
    ///
    /// # Errors
    /// 422 `link_code_invalid`, 429, or the API is unreachable.
    pub async fn redeem(
        &self,
        code: &str,
        chat_id: i64,
        user: (Option<i64>, Option<&str>),
        correlation_id: &str,
    ) -> Result<(), ApiError> {
        let (user_id, username) = user;
        let body = json!({
            "code": code, "chat_id": chat_id, "telegram_username": username, "telegram_user_id": user_id
        });
        self.call::<Value>(
            reqwest::Method::POST,
            "/api/v1/telegram/links",
            &self.service_token,
            correlation_id,
            Some(body),
        )
        .await
        .map(|_| ())
    }

    /// A session for `chat_id`; `None` when the chat is not linked (403 `chat_not_linked`).
    ///
    /// # Errors
    /// Any other failure.
    pub async fn session(
        &self,
        chat_id: i64,
        correlation_id: &str,
    ) -> Result<Option<Session>, ApiError> {
        let result = self
            .call(
                reqwest::Method::POST,
                "/api/v1/telegram/sessions",
                &self.service_token,
                correlation_id,
                Some(json!({ "chat_id": chat_id })),
            )
            .await;
        match result {
            Ok(Some(session)) => Ok(Some(session)),
            Ok(None) => Err(ApiError::Unexpected("empty session".into())),
            Err(e) if e.code() == Some("chat_not_linked") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Unlinks `chat_id` with its own session token.
    ///
    /// # Errors
    /// 404 `link_not_found`, or the API is unreachable.
    pub async fn unlink(
        &self,
        token: &str,
        chat_id: i64,
        correlation_id: &str,
    ) -> Result<(), ApiError> {
        self.call::<Value>(
            reqwest::Method::DELETE,
            &format!("/api/v1/telegram/links/{chat_id}"),
            token,
            correlation_id,
            None,
        )
        .await
        .map(|_| ())
    }

    /// All of the user's agents (up to 200, newest first).
    ///
    /// # Errors
    /// As any call.
    pub async fn agents(&self, token: &str, correlation_id: &str) -> Result<Vec<Agent>, ApiError> {
        let page: Page<Agent> = self
            .get("/api/v1/agents?limit=200", token, correlation_id)
            .await?;
        Ok(page.items)
    }

    /// The agent's trading summary.
    ///
    /// # Errors
    /// As any call.
    pub async fn summary(
        &self,
        token: &str,
        agent_id: &str,
        correlation_id: &str,
    ) -> Result<Summary, ApiError> {
        self.get(
            &format!("/api/v1/agents/{agent_id}/summary"),
            token,
            correlation_id,
        )
        .await
    }

    /// The agent's last `n` trades, newest first.
    ///
    /// # Errors
    /// As any call.
    pub async fn trades(
        &self,
        token: &str,
        agent_id: &str,
        n: u32,
        correlation_id: &str,
    ) -> Result<Vec<Trade>, ApiError> {
        let page: Page<Trade> = self
            .get(
                &format!("/api/v1/agents/{agent_id}/trades?limit={n}"),
                token,
                correlation_id,
            )
            .await?;
        Ok(page.items)
    }

    /// The agent's position.
    ///
    /// # Errors
    /// As any call.
    pub async fn position(
        &self,
        token: &str,
        agent_id: &str,
        correlation_id: &str,
    ) -> Result<Option<Position>, ApiError> {
        let page: Page<Position> = self
            .get(
                &format!("/api/v1/agents/{agent_id}/positions"),
                token,
                correlation_id,
            )
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// The agent's PnL points from `from` on, oldest first.
    ///
    /// # Errors
    /// As any call.
    pub async fn pnl_since(
        &self,
        token: &str,
        agent_id: &str,
        from: DateTime<Utc>,
        correlation_id: &str,
    ) -> Result<Vec<PnlPoint>, ApiError> {
        let from = from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut points = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/agents/{agent_id}/pnl?limit=5000&from={from}");
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(c);
            }
            let page: Page<PnlPoint> = self.get(&path, token, correlation_id).await?;
            points.extend(page.items);
            match page.next_cursor {
                Some(next) if points.len() < MAX_PNL_POINTS => cursor = Some(next),
                _ => return Ok(points),
            }
        }
    }

    /// Starts the agent.
    ///
    /// # Errors
    /// As any call (403 for a viewer, 409 when already running).
    pub async fn start(
        &self,
        token: &str,
        agent_id: &str,
        correlation_id: &str,
    ) -> Result<Agent, ApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/v1/agents/{agent_id}/start"),
            token,
            correlation_id,
            None,
        )
        .await?
        .ok_or_else(|| ApiError::Unexpected("empty answer to start".into()))
    }

    /// Stops the agent with reason `telegram`.
    ///
    /// # Errors
    /// As any call.
    pub async fn stop(
        &self,
        token: &str,
        agent_id: &str,
        correlation_id: &str,
    ) -> Result<Agent, ApiError> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/v1/agents/{agent_id}/stop"),
            token,
            correlation_id,
            Some(json!({ "reason": "telegram" })),
        )
        .await?
        .ok_or_else(|| ApiError::Unexpected("empty answer to stop".into()))
    }
}

impl ApiClient {
    /// The agent's last `pnl` at or before `to` (None before its first point): the baseline of `/daily`.
    ///
    /// # Errors
    /// As any call.
    pub async fn pnl_at(
        &self,
        token: &str,
        agent_id: &str,
        to: DateTime<Utc>,
        correlation_id: &str,
    ) -> Result<Option<Decimal>, ApiError> {
        let to = to.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // max_points keeps the last point of the range (specs/03 §5), in one small response.
        let page: Page<PnlPoint> = self
            .get(
                &format!("/api/v1/agents/{agent_id}/pnl?to={to}&max_points=2"),
                token,
                correlation_id,
            )
            .await?;
        Ok(page.items.last().map(|p| p.pnl))
    }
}

impl ApiClient {
    /// Opens the agent's SSE stream (`GET /api/v1/agents/{id}/stream`); read it with `chunk()` and [`SseParser`].
    /// After a drop, `last_event_id` (the parser's [`SseParser::last_id`]) resumes it: the API first sends what
    /// was missed.
    ///
    /// # Errors
    /// As any call (404 for an agent the user cannot see).
    pub async fn stream(
        &self,
        token: &str,
        agent_id: &str,
        last_event_id: Option<&str>,
        correlation_id: &str,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = self
            .streams
            .get(format!("{}/api/v1/agents/{agent_id}/stream", self.base))
            .bearer_auth(token)
            .header("x-request-id", correlation_id)
            .header("accept", "text/event-stream");
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.without_url().to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap_or(Value::Null);
        Err(ApiError::Problem {
            status,
            code: problem["code"].as_str().unwrap_or("unknown").to_owned(),
            detail: problem["detail"].as_str().unwrap_or("error").to_owned(),
        })
    }
}

/// Splits a server-sent-events byte stream into `(event, data)` messages; comments (keep-alives) are skipped. Keeps
/// the last `id:` seen, to resume the stream from there.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    last_id: Option<String>,
}

impl SseParser {
    /// The id of the last complete message that had one.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds `chunk`; returns the messages it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.pending.extend(chunk.iter().filter(|b| **b != b'\r'));
        let mut messages = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let mut event = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim_start().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                } else if let Some(v) = line.strip_prefix("id:") {
                    self.last_id = Some(v.trim_start().to_owned());
                }
            }
            if !data.is_empty() {
                messages.push((event, data.join("\n")));
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_messages_are_split_across_chunks_and_comments_skipped() {
        let mut parser = SseParser::default();
        assert!(parser
            .push(b": keep-alive\n\nevent: OrderFilled\nid: 1\nda")
            .is_empty());
        assert_eq!(
            parser.last_id(),
            None,
            "a message counts once it is complete"
        );
        let messages = parser.push(b"ta: {\"a\":1}\n\nevent: X\r\ndata: 1\r\ndata: 2\r\n\r\n");
        assert_eq!(
            parser.last_id(),
            Some("1"),
            "the last id seen, kept past a message without one"
        );
        assert_eq!(
            messages,
            vec![
                ("OrderFilled".to_owned(), "{\"a\":1}".to_owned()),
                ("X".to_owned(), "1\n2".to_owned())
            ]
        );
    }
}
