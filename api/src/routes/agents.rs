//! `/api/v1/agents…`: create, update, start, stop, archive (commands, answered from the aggregate right after the
//! command) and get, list, runs (reads, from the read models). Ownership (specs/05 §4): another user's agent answers
//! exactly like a missing one, 404 `agent_not_found`, unless the caller is admin.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use strom_commands::service::CommandContext;
use strom_domain::config::{AgentConfigPatch, RiskLimits, StrategySpec};
use strom_domain::{Agent, AgentCommand, AgentConfig, Symbol};

use crate::auth::{Caller, Trader};
use crate::extract::{present, ApiJson, OptionalJson};
use crate::observability::CorrelationId;
use crate::problem::ApiError;
use crate::startup::AppState;
use strom_projections::{AgentFilter, AgentView, Page, RunView};

use crate::auth::Viewer;
use crate::extract::ApiQuery;
use crate::reads::query_error;
use crate::views::{after_command, countdown};

/// The reason recorded when a stop request gives none (specs/04 §2).
pub const DEFAULT_STOP_REASON: &str = "user";

/// `CreateAgentRequest`: the config with everything but name, symbol, frequency and cash optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    name: String,
    symbol: Symbol,
    #[serde(default, deserialize_with = "present")]
    strategy: Option<StrategySpec>,
    frequency_s: u32,
    #[serde(default, deserialize_with = "present")]
    risk: Option<RiskLimits>,
    starting_cash: Decimal,
    #[serde(default, deserialize_with = "present")]
    seed: Option<u64>,
}

impl CreateAgentRequest {
    /// The full config, with the documented defaults (specs/03 §3 notes) filled in.
    fn into_config(self, default_seed: u64) -> AgentConfig {
        AgentConfig {
            name: self.name,
            symbol: self.symbol,
            strategy: self.strategy.unwrap_or_default(),
            frequency_s: self.frequency_s,
            risk: self
                .risk
                .unwrap_or_else(|| RiskLimits::for_starting_cash(self.starting_cash)),
            starting_cash: self.starting_cash,
            seed: self.seed.unwrap_or(default_seed),
        }
    }
}

/// `AgentConfigPatch`: any non-empty subset of the config; each field given replaces the current one whole.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchAgentRequest {
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    symbol: Option<Symbol>,
    #[serde(default, deserialize_with = "present")]
    strategy: Option<StrategySpec>,
    #[serde(default, deserialize_with = "present")]
    frequency_s: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    risk: Option<RiskLimits>,
    #[serde(default, deserialize_with = "present")]
    starting_cash: Option<Decimal>,
    #[serde(default, deserialize_with = "present")]
    seed: Option<u64>,
}

impl PatchAgentRequest {
    fn into_patch(self) -> Result<AgentConfigPatch, ApiError> {
        let patch = AgentConfigPatch {
            name: self.name,
            symbol: self.symbol,
            strategy: self.strategy,
            frequency_s: self.frequency_s,
            risk: self.risk,
            starting_cash: self.starting_cash,
            seed: self.seed,
        };
        if patch == AgentConfigPatch::default() {
            return Err(ApiError::invalid(
                "/",
                "a patch must set at least one field",
            ));
        }
        Ok(patch)
    }
}

/// `StopRequest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    #[serde(default, deserialize_with = "present")]
    reason: Option<String>,
}

fn ctx(correlation: &CorrelationId, caller: &Caller) -> CommandContext {
    CommandContext::new(correlation.0.clone(), caller.sub.clone())
}

/// The canonical form of a path id; anything that is not a UUID cannot name an agent.
pub fn agent_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| not_found())
}

pub fn not_found() -> ApiError {
    ApiError::Missing {
        code: "agent_not_found",
        detail: "no such agent".into(),
    }
}

/// The agent's aggregate state, if it exists and the caller may see it.
async fn load_visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Agent, usize), ApiError> {
    let (agent, version) = state
        .commands
        .agents
        .load(id)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("loading agent {id}: {e}")))?;
    let visible = agent
        .owner()
        .is_some_and(|owner| owner == caller.sub || caller.is_admin());
    if visible {
        Ok((agent, version))
    } else {
        Err(not_found())
    }
}

/// The agent as the read model has it, if the caller may see it. An agent the write side already has but the
/// projection does not yet (a GET right after its create) is waited for, at most
/// [`crate::reads::READ_YOUR_WRITES_WAIT`], rather than called missing.
///
/// # Errors
/// 404 `agent_not_found` for an unknown agent or another user's; 503 when the projection does not catch up in time
/// or a store fails.
pub async fn projected_visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<AgentView, ApiError> {
    match state.reads.visible_agent(caller, id).await {
        Err(ApiError::Missing { .. }) => {
            // Only an agent the caller may see on the write side is worth waiting for.
            load_visible(state, caller, id).await?;
            state.reads.agent_at(id, 1).await?.ok_or_else(|| {
                ApiError::Unavailable(format!(
                    "agent {id} exists but the read model has not caught up with it yet; retry"
                ))
            })
        }
        read => read,
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
    ApiJson(body): ApiJson<CreateAgentRequest>,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    tracing::Span::current().record("agent_id", id.as_str());
    // The default risk limits derive from the starting cash, so a bad cash is reported as itself, not as the
    // limit made from it.
    if body.starting_cash <= Decimal::ZERO {
        return Err(ApiError::invalid(
            "/starting_cash",
            format!("must be > 0 (got {})", body.starting_cash),
        ));
    }
    let config = body.into_config(state.settings.default_seed);
    let at = state.now();
    let (agent, version) = state
        .commands
        .agents
        .execute_and_load(
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
    state.committed();
    let command = AgentCommand::CreateAgent {
        agent_id: id.clone(),
        owner: caller.sub.clone(),
        config,
        at,
    };
    let view = view(&agent, version, None, &command, at, state.now())?;
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
#[tracing::instrument(skip(state, caller, correlation, body))]
pub async fn update_agent(
    State(state): State<AppState>,
    Trader(caller): Trader,
    Extension(correlation): Extension<CorrelationId>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchAgentRequest>,
) -> Result<Json<AgentView>, ApiError> {
    let patch = body.into_patch()?;
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
    let (_, before) = load_visible(state, caller, &id).await?;
    let at = state.now();
    let (agent, version) = state
        .commands
        .agents
        .execute_and_load(&id, || command(at), &ctx(correlation, caller))
        .await?;
    state.committed();
    // The fields only the read model keeps, as of (at least) the state this command started from.
    let projected = state.reads.agent_at(&id, before as u64).await?;
    if projected.is_none() {
        tracing::warn!(agent_id = %id, "read model has not caught up with the agent; history fields are partial");
    }
    view(
        &agent,
        version,
        projected.as_ref(),
        &command(at),
        at,
        state.now(),
    )
    .map(Json)
}

fn view(
    agent: &Agent,
    version: usize,
    projected: Option<&AgentView>,
    command: &AgentCommand,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<AgentView, ApiError> {
    after_command(agent, version, projected, command, at, now).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "agent has no profile right after a command that needs one"
        ))
    })
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
        agent.next_tick_at = countdown(agent, now);
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
    let mut agent = projected_visible(&state, &caller, &id).await?;
    agent.next_tick_at = countdown(&agent, state.now());
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
