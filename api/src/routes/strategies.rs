//! `GET /api/v1/strategies`: the predefined strategies and their parameters, served from the domain's catalogue
//! (`strom_domain::config::STRATEGIES`), the same declaration validation uses, so the two cannot drift.

use axum::Json;
use serde::Serialize;
use strom_domain::config::{StrategyInfo, STRATEGIES};

use crate::auth::Viewer;
use crate::problem::ApiError;

/// `StrategyList`.
#[derive(Debug, Serialize)]
pub struct StrategyList {
    items: &'static [StrategyInfo],
}

/// # Errors
/// 401/403 without a viewer token.
#[tracing::instrument(skip_all)]
pub async fn list_strategies(Viewer(_caller): Viewer) -> Result<Json<StrategyList>, ApiError> {
    Ok(Json(StrategyList { items: &STRATEGIES }))
}
