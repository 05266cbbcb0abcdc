//! `/api/v1/backtests…` (specs/03 §3, specs/06 §7): request (an agent's config or an explicit one, over an uploaded
//! CSV, a simulated range or a paper agent's own observations), list, detail (with progress while running and the
//! result once completed) and cancel. The `backtest` role runs them. Ownership as for agents (specs/05 §4): another
//! user's backtest answers exactly like a missing one, 404 `backtest_not_found`, unless the caller is admin.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use strom_commands::service::CommandContext;
use strom_domain::config::NewAgent;
use strom_domain::{AgentConfig, Backtest, BacktestCommand, BacktestSource, FillModel};
use strom_projections::backtests::{fold_backtest, BacktestProgress, BacktestRow};
use strom_projections::Page;

use crate::auth::{Caller, Trader, Viewer};
use crate::extract::{parse_json, read_body_limited, ApiQuery, MAX_BACKTEST_BODY_BYTES};
use crate::observability::CorrelationId;
use crate::problem::ApiError;
use crate::reads::{agent_not_found, query_error};
use crate::state::AppState;

/// 404 `backtest_not_found`: the answer for a missing backtest and for another user's alike (specs/05 §4).
fn backtest_not_found() -> ApiError {
    ApiError::Missing {
        code: "backtest_not_found",
        detail: "no such backtest".into(),
    }
}

/// `BacktestRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequestBody {
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    config: Option<NewAgent>,
    source: SourceBody,
    #[serde(default)]
    fill_model: Option<FillModel>,
}

/// `BacktestRequest.source`: what a client may send. Never a server-side path (specs/05 §6).
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum SourceBody {
    /// The CSV itself (specs/06 §5), inline.
    Csv {
        data: String,
    },
    Sim {
        seed: u64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[serde(default = "default_step_s")]
        step_s: u32,
    },
    Observations {
        agent_id: String,
    },
}

fn default_step_s() -> u32 {
    strom_domain::backtest::DEFAULT_SIM_STEP_S
}

/// `Backtest`: the row of table `backtests` (or the fold of the stream), with the runner's progress and result.
#[derive(Debug, Serialize)]
pub struct BacktestView {
    #[serde(flatten)]
    pub(crate) row: BacktestRow,
    /// Runs begun (0 until the runner takes it; 2 after a takeover).
    pub(crate) attempts: u32,
    /// Bars run of bars to run, as the runner last wrote it (every second while running).
    pub(crate) progress: Option<BacktestProgress>,
    /// `BacktestResult` once completed; null in listings and on the stream.
    pub(crate) result: Option<Value>,
}

/// `limit` and `cursor` of `GET /api/v1/backtests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestListQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
}

fn ctx(correlation: &CorrelationId, caller: &Caller) -> CommandContext {
    caller.command_context(&correlation.0)
}

fn backtest_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| backtest_not_found())
}

pub(crate) fn visible(caller: &Caller, owner: &str) -> bool {
    owner == caller.sub || caller.is_admin()
}

/// The config of agent `raw_id`, if the caller may see it (404 `agent_not_found` otherwise).
async fn agent_config(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<(String, AgentConfig), ApiError> {
    let id = crate::routes::agents::agent_id(raw_id)?;
    let (agent, _) = state
        .commands
        .agents
        .load(&id)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("loading agent {id}: {e}")))?;
    match (agent.owner(), agent.config()) {
        (Some(owner), Some(config)) if visible(caller, owner) => Ok((id, config.clone())),
        _ => Err(agent_not_found()),
    }
}

/// The backtest as its own stream folds it (always current, unlike the listing's read model), with its artifacts.
pub(crate) async fn view(state: &AppState, id: &str) -> Result<Option<BacktestView>, ApiError> {
    let events = state
        .commands
        .store()
        .events_after::<Backtest>(id, 0)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading backtest {id}: {e}")))?;
    let mut row = None;
    for (sequence, event) in &events {
        if let Some(event) = event.as_backtest() {
            row = Some(
                fold_backtest(row, id, *sequence, event)
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?,
            );
        }
    }
    let Some(row) = row else { return Ok(None) };
    let artifacts = state
        .backtests
        .artifacts(id)
        .await
        .map_err(query_error)?
        .unwrap_or_default();
    Ok(Some(BacktestView {
        row,
        attempts: artifacts.attempts,
        progress: artifacts.progress,
        result: artifacts.result,
    }))
}

/// The backtest if the caller may see it.
async fn visible_view(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<BacktestView, ApiError> {
    let id = backtest_id(raw)?;
    match view(state, &id).await? {
        Some(view) if visible(caller, &view.row.owner) => Ok(view),
        _ => Err(backtest_not_found()),
    }
}

/// The source as the event records it; a CSV is kept in `backtest_inputs` first.
async fn source(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: SourceBody,
) -> Result<BacktestSource, ApiError> {
    Ok(match body {
        SourceBody::Csv { data } => {
            if data.trim().is_empty() {
                return Err(ApiError::invalid("/source/data", "must not be empty"));
            }
            let sha256 = hex::encode(Sha256::digest(data.as_bytes()));
            state
                .backtests
                .put_input(id, data.as_bytes())
                .await
                .map_err(query_error)?;
            BacktestSource::Csv {
                bytes: data.len() as u64,
                sha256,
            }
        }
        SourceBody::Sim {
            seed,
            from,
            to,
            step_s,
        } => BacktestSource::Sim {
            seed,
            from,
            to,
            step_s,
        },
        SourceBody::Observations { agent_id } => {
            let (agent_id, _) = agent_config(state, caller, &agent_id).await?;
            BacktestSource::Observations { agent_id }
        }
    })
}

/// `POST /api/v1/backtests` → 202 `Backtest` (requested) with `Location`. The body may be up to
/// [`MAX_BACKTEST_BODY_BYTES`] (an inline CSV).
///
/// # Errors
/// 401/403 (trader), 404 `agent_not_found` for an agent the caller cannot see, 413 over the size limit, 422 naming
/// the invalid field.
#[tracing::instrument(skip_all, fields(backtest_id))]
pub async fn request_backtest(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let bytes = read_body_limited(request.into_body(), MAX_BACKTEST_BODY_BYTES).await?;
    let body: BacktestRequestBody = parse_json(&bytes)?;
    drop(bytes);
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    tracing::Span::current().record("backtest_id", id.as_str());
    let observed = match &body.source {
        SourceBody::Observations { agent_id } => Some(agent_id.clone()),
        _ => None,
    };
    let (agent_id, config) = match (body.agent_id, body.config, observed) {
        (Some(_), Some(_), _) => {
            return Err(ApiError::invalid(
                "/config",
                "give agent_id or config, not both",
            ))
        }
        (None, Some(config), _) => (None, config.into_config(state.settings.default_seed)?),
        (Some(agent), None, _) | (None, None, Some(agent)) => {
            let (id, config) = agent_config(&state, &caller, &agent).await?;
            (Some(id), config)
        }
        (None, None, None) => {
            return Err(ApiError::invalid(
                "/config",
                "give agent_id (to run that agent's config) or config",
            ))
        }
    };
    let source = source(&state, &caller, &id, body.source).await?;
    let fill_model = body
        .fill_model
        .unwrap_or_else(|| state.settings.fill_model.clone());
    let at = state.now();
    state
        .commands
        .backtests
        .execute(
            &id,
            || BacktestCommand::RequestBacktest {
                backtest_id: id.clone(),
                owner: caller.sub.clone(),
                agent_id: agent_id.clone(),
                config: config.clone(),
                source: source.clone(),
                fill_model: fill_model.clone(),
                at,
            },
            &ctx(&correlation, &caller),
        )
        .await?;
    let view = view(&state, &id).await?.ok_or_else(backtest_not_found)?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/backtests/{id}"))],
        Json(view),
    )
        .into_response())
}

/// `GET /api/v1/backtests` → 200 `BacktestPage` (the caller's, newest first; admin: everyone's).
///
/// # Errors
/// 400 for a bad limit or cursor; 401/403; 503 when the read model fails.
#[tracing::instrument(skip(state, caller))]
pub async fn list_backtests(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    ApiQuery(query): ApiQuery<BacktestListQuery>,
) -> Result<Json<Page<BacktestView>>, ApiError> {
    let owner = (!caller.is_admin()).then_some(caller.sub.as_str());
    let page = state
        .backtests
        .list_backtests(owner, query.limit, query.cursor.as_deref())
        .await
        .map_err(query_error)?;
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|row| BacktestView {
                row,
                attempts: 0,
                progress: None,
                result: None,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/backtests/{id}` → 200 `Backtest`.
///
/// # Errors
/// 401/403; 404 for an unknown backtest or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn get_backtest(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<Json<BacktestView>, ApiError> {
    visible_view(&state, &caller, &id).await.map(Json)
}

/// `POST /api/v1/backtests/{id}/cancel` → 200 `Backtest` (cancelled).
///
/// # Errors
/// 401/403; 404 for an unknown backtest or another user's; 409 `backtest_finished`.
#[tracing::instrument(skip(state, caller, correlation))]
pub async fn cancel_backtest(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    Path(id): Path<String>,
) -> Result<Json<BacktestView>, ApiError> {
    let id = visible_view(&state, &caller, &id).await?.row.backtest_id;
    let at = state.now();
    state
        .commands
        .backtests
        .execute(
            &id,
            || BacktestCommand::CancelBacktest { at },
            &ctx(&correlation, &caller),
        )
        .await?;
    view(&state, &id)
        .await?
        .ok_or_else(backtest_not_found)
        .map(Json)
}
