//! The agents' paper trading (specs/03 §3, tag `trading`): orders, one order, trades, positions, the PnL series and
//! the summary, all read from projector `agents`' trading tables. Ownership as for agents: another user's agent or
//! order is 404, an admin sees all.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strom_domain::order::OrderStatus;
use strom_projections::ledger::trader_metrics;
use strom_projections::{
    OrderView, Page, PnlPointView, PnlQuery, PositionRow, PositionView, SummaryView, TradeView,
};

use crate::auth::Viewer;
use crate::extract::ApiQuery;
use crate::problem::ApiError;
use crate::reads::query_error;
use crate::routes::agents::{agent_id, projected_visible};
use crate::state::AppState;

/// 404 `order_not_found`: the answer for a missing order and for another user's alike (specs/05 §4).
fn order_not_found() -> ApiError {
    ApiError::Missing {
        code: "order_not_found",
        detail: "no such order".into(),
    }
}

/// `limit`, `cursor` and `status` of `GET …/orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub status: Option<OrderStatus>,
}

/// `limit` and `cursor` of `GET …/trades`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradesQuery {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `from`, `to`, `limit`, `cursor` and `max_points` of `GET …/pnl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PnlParams {
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub max_points: Option<usize>,
}

/// `{"items": [Position]}`.
#[derive(Debug, Serialize)]
pub struct PositionList {
    pub items: Vec<PositionView>,
}

/// The agent's `positions` row, once the caller may see the agent.
async fn position(
    state: &AppState,
    caller: &crate::auth::Caller,
    raw_id: &str,
) -> Result<PositionRow, ApiError> {
    let id = agent_id(raw_id)?;
    projected_visible(state, caller, &id).await?;
    state
        .reads
        .queries()
        .get_position(&id)
        .await
        .map_err(query_error)?
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "agent {id} exists but the read model has not caught up with it yet; retry"
            ))
        })
}

/// `GET /api/v1/agents/{id}/orders` → 200 `OrderPage`, newest first.
///
/// # Errors
/// 400 for a bad limit, cursor or status; 401/403; 404 for an unknown agent or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn list_orders(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<OrdersQuery>,
) -> Result<Json<Page<OrderView>>, ApiError> {
    let id = agent_id(&id)?;
    projected_visible(&state, &caller, &id).await?;
    state
        .reads
        .queries()
        .list_orders(&id, query.status, query.limit, query.cursor.as_deref())
        .await
        .map(Json)
        .map_err(query_error)
}

/// `GET /api/v1/orders/{id}` → 200 `Order`.
///
/// # Errors
/// 401/403; 404 `order_not_found` for an unknown order or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn get_order(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    match state
        .reads
        .queries()
        .get_order(&id)
        .await
        .map_err(query_error)?
    {
        Some(order) if order.owner == caller.sub || caller.is_admin() => {
            Ok(Json(OrderView::from(&order)))
        }
        _ => Err(order_not_found()),
    }
}

/// `GET /api/v1/agents/{id}/trades` → 200 `TradePage`, newest first.
///
/// # Errors
/// 400 for a bad limit or cursor; 401/403; 404 for an unknown agent or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn list_trades(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<TradesQuery>,
) -> Result<Json<Page<TradeView>>, ApiError> {
    let id = agent_id(&id)?;
    projected_visible(&state, &caller, &id).await?;
    state
        .reads
        .queries()
        .list_trades(&id, query.limit, query.cursor.as_deref())
        .await
        .map(Json)
        .map_err(query_error)
}

/// `GET /api/v1/agents/{id}/positions` → 200 `PositionList` (one position: long-only, one symbol per agent).
///
/// # Errors
/// 401/403; 404 for an unknown agent or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn list_positions(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<Json<PositionList>, ApiError> {
    let row = position(&state, &caller, &id).await?;
    Ok(Json(PositionList {
        items: vec![PositionView::from(&row)],
    }))
}

/// `GET /api/v1/agents/{id}/summary` → 200 `AgentSummary`.
///
/// # Errors
/// 401/403; 404 for an unknown agent or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn get_summary(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
) -> Result<Json<SummaryView>, ApiError> {
    let row = position(&state, &caller, &id).await?;
    let (mut points, closed_trades) = state
        .reads
        .queries()
        .metrics_series(&id)
        .await
        .map_err(query_error)?;
    let metrics = trader_metrics(&row, &mut points, &closed_trades);
    Ok(Json(SummaryView::new(&row, metrics)))
}

/// `GET /api/v1/agents/{id}/pnl` → 200 `PnlPage`, oldest first; with `max_points`, the range thinned in one page.
///
/// # Errors
/// 400 for a bad limit, cursor, range or max_points; 401/403; 404 for an unknown agent or another user's.
#[tracing::instrument(skip(state, caller))]
pub async fn list_pnl(
    State(state): State<AppState>,
    Viewer(caller): Viewer,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<PnlParams>,
) -> Result<Json<Page<PnlPointView>>, ApiError> {
    let id = agent_id(&id)?;
    projected_visible(&state, &caller, &id).await?;
    let query = PnlQuery {
        from: params.from,
        to: params.to,
        limit: params.limit,
        cursor: params.cursor,
        max_points: params.max_points,
    };
    state
        .reads
        .queries()
        .list_pnl(&id, &query)
        .await
        .map(Json)
        .map_err(query_error)
}
