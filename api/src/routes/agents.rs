//! `/api/v1/agents…`: create, update, start, stop, archive (commands, answered from the aggregate right after the
//! command) and get, list, runs (reads, from the read models). Ownership (specs/05 §4): another user's agent answers
//! exactly like a missing one, 404 `agent_not_found`, unless the caller is admin.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use strom_commands::service::{CommandContext, Executed};
use strom_domain::config::{AgentConfigPatch, NewAgent};
use strom_domain::{Agent, AgentCommand, AgentEvent};
use strom_projections::fold::fold_agent_row;

use crate::auth::{Caller, Trader};
use crate::extract::{ApiJson, OptionalJson};
use crate::observability::CorrelationId;
use crate::problem::ApiError;
use crate::state::AppState;
use strom_projections::{AgentFilter, AgentRow, AgentView, Page, RunView};

use crate::auth::Viewer;
use crate::extract::ApiQuery;
use crate::reads::{agent_not_found, query_error};

/// The reason recorded when a stop request gives none (specs/04 §2).
pub const DEFAULT_STOP_REASON: &str = "user";

/// `StopRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    #[serde(default, deserialize_with = "strom_domain::config::present")]
    reason: Option<String>,
}

fn ctx(correlation: &CorrelationId, caller: &Caller) -> CommandContext {
    caller.command_context(&correlation.0)
}

/// The canonical form of a path id; anything that is not a UUID cannot name an agent.
pub fn agent_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| agent_not_found())
}

/// Checks that the agent exists and the caller may act on it (its owner, or an admin).
pub(crate) async fn check_visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    let (agent, _) = state
        .commands
        .agents
        .load(id)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("loading agent {id}: {e}")))?;
    let visible = agent
        .owner()
        .is_some_and(|owner| owner == caller.sub || caller.is_admin());
    if visible {
        Ok(())
    } else {
        Err(agent_not_found())
    }
}

/// The `Agent` body right after a command: the read model's row once it shows the command (read-your-writes, waiting
/// at most `READ_YOUR_WRITES_WAIT`); if the projector is further behind, its row with the events it lacks folded in by
/// the read model's own fold (the command's own, or read from the store) — either way the very view GET returns.
async fn view_after(
    state: &AppState,
    id: &str,
    executed: &Executed<Agent>,
) -> Result<AgentView, ApiError> {
    let row = state.reads.agent_row_at(id, executed.version).await?;
    let projected = row.as_ref().map_or(0, |r| r.version);
    let before = executed.version - executed.events.len() as u64;
    let missing: Vec<(u64, AgentEvent)> = if projected >= before {
        (before + 1..)
            .zip(executed.events.iter().cloned())
            .collect()
    } else {
        state
            .commands
            .store()
            .events_after::<Agent>(id, projected)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading agent {id}: {e}")))?
            .into_iter()
            .filter_map(|(sequence, event)| event.as_agent().cloned().map(|e| (sequence, e)))
            .collect()
    };
    let folded = fold_agent_row(row, id, missing.iter().map(|(s, e)| (*s, e)))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("folding agent {id}: {e}")))?
        .ok_or_else(agent_not_found)?;
    let mut view = AgentView::from(folded);
    view.next_tick_at = view.next_tick_after(state.now());
    Ok(view)
}

/// The agent's read-model row, if the caller may see it. An agent the write side already has but the projection does
/// not show yet (a GET right after its create on a lagging projector) is waited for, at most
/// [`crate::reads::READ_YOUR_WRITES_WAIT`], rather than called missing.
///
/// # Errors
/// 404 `agent_not_found` for an unknown agent or another user's; 503 when the projection does not catch up in time
/// or a store fails.
pub async fn projected_visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<AgentRow, ApiError> {
    let visible = |row: &AgentRow| row.owner == caller.sub || caller.is_admin();
    match state
        .reads
        .queries()
        .get_agent_row(id)
        .await
        .map_err(query_error)?
    {
        Some(row) if visible(&row) => Ok(row),
        Some(_) => Err(agent_not_found()),
        None => {
            // Only an agent the caller may see on the write side is worth waiting for.
            check_visible(state, caller, id).await?;
            state.reads.agent_row_at(id, 1).await?.ok_or_else(|| {
                ApiError::Unavailable(format!(
                    "agent {id} exists but the read model has not caught up with it yet; retry"
                ))
            })
        }
    }
}

/// `POST /api/v1/agents` → 201 `Agent` with `Location`.
///
/// # Errors
/// 401/403 (trader), 422 naming the invalid field, 409 `concurrency_conflict`.
#[tracing::instrument(skip_all, fields(agent_id))]
pub async fn create_agent(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    ApiJson(body): ApiJson<NewAgent>,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    tracing::Span::current().record("agent_id", id.as_str());
    let config = body.into_config(state.settings.default_seed)?;
    let at = state.now();
    let executed = state
        .commands
        .agents
        .execute(
            &id,
            || AgentCommand::CreateAgent {
                agent_id: id.clone(),
                owner: caller.sub.clone(),
                config: config.clone(),
                at,
            },
            &ctx(&correlation, &caller),
        )
        .await?;
    let view = view_after(&state, &id, &executed).await?;
    let location = format!("/api/v1/agents/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// `PATCH /api/v1/agents/{id}` → 200 `Agent`.
///
/// # Errors
/// 401/403, 404, 409 `agent_running`/`agent_archived`, 422.
#[tracing::instrument(skip(state, caller, correlation, patch))]
pub async fn update_agent(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AgentConfigPatch>,
) -> Result<Json<AgentView>, ApiError> {
    run(&state, &caller, &correlation, &id, move |at| {
        AgentCommand::UpdateAgentConfig {
            patch: patch.clone(),
            at,
        }
    })
    .await
}

/// `POST /api/v1/agents/{id}/start` → 200 `Agent` (running, with `next_tick_at`).
///
/// # Errors
/// 401/403, 404, 409 `agent_already_running`/`agent_archived`.
#[tracing::instrument(skip(state, caller, correlation))]
pub async fn start_agent(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    // Sessions start on whole seconds so every tick time is exact (specs/04 §5).
    run(&state, &caller, &correlation, &id, |at| {
        AgentCommand::StartAgent {
            at: strom_domain::time::to_seconds(at),
        }
    })
    .await
}

/// `POST /api/v1/agents/{id}/stop` with an optional `{reason}` → 200 `Agent`.
///
/// # Errors
/// 401/403, 404, 409 `agent_not_running`/`agent_archived`, 422 for a body that is not a `StopRequest` or a reason
/// the Agent refuses (blank, or over `strom_domain::agent::MAX_STOP_REASON_CHARS`).
#[tracing::instrument(skip(state, caller, correlation, body))]
pub async fn stop_agent(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<StopRequest>,
) -> Result<Json<AgentView>, ApiError> {
    let reason = body
        .and_then(|b| b.reason)
        .unwrap_or_else(|| DEFAULT_STOP_REASON.to_owned());
    run(&state, &caller, &correlation, &id, move |at| {
        AgentCommand::StopAgent {
            at,
            reason: reason.clone(),
        }
    })
    .await
}

/// `POST /api/v1/agents/{id}/archive` → 200 `Agent` (archived).
///
/// # Errors
/// 401/403, 404, 409 `agent_running`/`agent_archived`.
#[tracing::instrument(skip(state, caller, correlation))]
pub async fn archive_agent(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    run(&state, &caller, &correlation, &id, |at| {
        AgentCommand::ArchiveAgent { at }
    })
    .await
}

/// Runs a command on an existing agent the caller may act on and answers with its state right after.
async fn run(
    state: &AppState,
    caller: &Caller,
    correlation: &CorrelationId,
    raw_id: &str,
    command: impl Fn(DateTime<Utc>) -> AgentCommand,
) -> Result<Json<AgentView>, ApiError> {
    let id = agent_id(raw_id)?;
    check_visible(state, caller, &id).await?;
    let at = state.now();
    let executed = state
        .commands
        .agents
        .execute(&id, || command(at), &ctx(correlation, caller))
        .await?;
    view_after(state, &id, &executed).await.map(Json)
}

/// `limit`, `cursor` and (agents only) `status` of a list request. Limits (1..=200, default 50) are checked by
/// the read model (`strom_projections::page`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub status: Option<strom_domain::AgentState>,
}

/// `GET /api/v1/agents` → 200 `AgentPage` (the caller's agents, newest first; admin: everyone's).
///
/// # Errors
/// 400 for a bad limit, cursor or status; 401/403; 503 when the read model fails.
#[tracing::instrument(skip(state, caller))]
pub async fn list_agents(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<AgentView>>, ApiError> {
    let filter = AgentFilter {
        owner: (!caller.is_admin()).then(|| caller.sub.clone()),
        status: query.status,
    };
    let mut page = state
        .reads
        .queries()
        .list_agents(&filter, query.limit, query.cursor.as_deref())
        .await
        .map_err(query_error)?;
    let now = state.now();
    for agent in &mut page.items {
        agent.next_tick_at = agent.next_tick_after(now);
    }
    Ok(Json(page))
}

/// `GET /api/v1/agents/{id}` → 200 `Agent`.
///
/// # Errors
/// 401/403; 404 for an unknown agent or another user's; 503 when the read model fails.
#[tracing::instrument(skip(state, caller))]
pub async fn get_agent(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let id = agent_id(&id)?;
    let mut agent = AgentView::from(projected_visible(&state, &caller, &id).await?);
    agent.next_tick_at = agent.next_tick_after(state.now());
    Ok(Json(agent))
}

/// `GET /api/v1/agents/{id}/runs` → 200 `RunPage`, newest first.
///
/// # Errors
/// 400 for a bad limit or cursor; 401/403; 404 for an unknown agent or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn list_runs(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<RunView>>, ApiError> {
    let id = agent_id(&id)?;
    if query.status.is_some() {
        return Err(ApiError::BadRequest("runs have no status filter".into()));
    }
    projected_visible(&state, &caller, &id).await?;
    state
        .reads
        .queries()
        .list_runs(&id, query.limit, query.cursor.as_deref())
        .await
        .map(Json)
        .map_err(query_error)
}
