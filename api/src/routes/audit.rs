//! `/api/v1/agents/{id}/events` and `/api/v1/agents/{id}/chain`: an agent's audit trail straight from the event
//! store — its stream as stored (the envelopes the SSE stream and `strom replay --export` carry), and its hash chain
//! verified by the same verifier `strom replay --verify` runs. Ownership as for every agent endpoint (specs/05 §4).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use strom_commands::log::{ChainProblem, EventEnvelope};
use strom_commands::store::StoreError;
use strom_domain::{Agent, Decider};
use strom_projections::page::{page_size, EventCursor};
use strom_projections::replay::chain_problem_line;
use strom_projections::Page;

use crate::auth::Viewer;
use crate::extract::ApiQuery;
use crate::problem::ApiError;
use crate::reads::query_error;
use crate::routes::agents::{agent_id, check_visible};
use crate::state::AppState;

/// `limit` and `cursor` of `GET …/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `ChainCheck`: the outcome of verifying one agent's hash chain from genesis.
#[derive(Debug, Serialize)]
pub struct ChainCheck {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// No problem found (and the list was not truncated).
    pub verified: bool,
    /// Events in the stream.
    pub events: u64,
    /// The stored hash of the last event; null for a stream without events.
    pub head_hash: Option<String>,
    /// In sequence order.
    pub problems: Vec<ChainProblemView>,
    /// More problems were found than listed (`strom_commands::log::MAX_REPORTED_PROBLEMS`).
    pub problems_truncated: bool,
}

/// `ChainProblem`: one problem of the chain, as `strom replay --verify` words it.
#[derive(Debug, Serialize)]
pub struct ChainProblemView {
    /// The sequence it is at (for a missing event, the first absent one).
    pub sequence: u64,
    /// `altered_event`, `missing_event` or `reordered_or_inserted` (the report's own tags).
    pub problem: &'static str,
    /// The replay CLI's line for it.
    pub detail: String,
}

impl From<&ChainProblem> for ChainProblemView {
    fn from(problem: &ChainProblem) -> Self {
        Self {
            sequence: problem.sequence(),
            problem: match problem {
                ChainProblem::AlteredEvent { .. } => "altered_event",
                ChainProblem::MissingEvent { .. } => "missing_event",
                ChainProblem::ReorderedOrInserted { .. } => "reordered_or_inserted",
            },
            detail: chain_problem_line(problem),
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::Unavailable(format!("event store: {e}"))
}

/// `GET /api/v1/agents/{id}/events` → 200 `EventPage`: the agent's events oldest first (by sequence).
///
/// # Errors
/// 400 for a bad limit or cursor; 401/403; 404 for an unknown agent or another user's; 503 when the store fails.
#[tracing::instrument(skip(state, caller))]
pub async fn list_events(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<Page<EventEnvelope>>, ApiError> {
    let id = agent_id(&id)?;
    let limit = page_size(query.limit).map_err(query_error)?;
    let after = match query.cursor.as_deref() {
        Some(cursor) => EventCursor::decode(cursor).map_err(query_error)?.sequence,
        None => 0,
    };
    check_visible(&state, &caller, &id).await?;
    // One more than the page shows whether another page follows.
    let mut items = state
        .commands
        .store()
        .stream_envelopes_after(<Agent as Decider>::TYPE, &id, after, limit + 1)
        .await
        .map_err(store_error)?;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|e| {
            EventCursor {
                sequence: e.sequence,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(Json(Page { items, next_cursor }))
}

/// `GET /api/v1/agents/{id}/chain` → 200 `ChainCheck`.
///
/// # Errors
/// 401/403; 404 for an unknown agent or another user's; 503 when the store fails.
#[tracing::instrument(skip(state, caller))]
pub async fn check_chain(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<Json<ChainCheck>, ApiError> {
    let id = agent_id(&id)?;
    check_visible(&state, &caller, &id).await?;
    let verification = state
        .commands
        .store()
        .verify_stream(<Agent as Decider>::TYPE, &id)
        .await
        .map_err(store_error)?;
    let report = &verification.report;
    Ok(Json(ChainCheck {
        aggregate_type: <Agent as Decider>::TYPE,
        aggregate_id: id,
        verified: report.is_intact(),
        events: report.events,
        head_hash: verification.head_hash,
        problems: report.problems.iter().map(ChainProblemView::from).collect(),
        problems_truncated: report.problems_truncated,
    }))
}
