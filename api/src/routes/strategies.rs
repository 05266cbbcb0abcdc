//! `GET /api/v1/strategies`: the predefined strategies and their parameters, from the domain's own constants so
//! the catalogue cannot drift from what validation accepts.

use axum::Json;
use serde::Serialize;
use strom_domain::config::{
    MEAN_REVERSION_THRESHOLD_PCT_DEFAULT, MEAN_REVERSION_WINDOW_DEFAULT, MEAN_REVERSION_WINDOW_MAX,
    MEAN_REVERSION_WINDOW_MIN, SMA_FAST_DEFAULT, SMA_FAST_MAX, SMA_SLOW_DEFAULT, SMA_SLOW_MAX,
    STRATEGY_QTY_DEFAULT,
};
use strom_domain::StrategyKind;

use crate::auth::Viewer;
use crate::problem::ApiError;

#[derive(Debug, Serialize)]
pub struct StrategyParam {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    default: String,
    min: Option<String>,
    max: Option<String>,
    description: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Strategy {
    kind: StrategyKind,
    description: &'static str,
    params: Vec<StrategyParam>,
}

#[derive(Debug, Serialize)]
pub struct StrategyList {
    items: Vec<Strategy>,
}

fn integer(
    name: &'static str,
    default: u32,
    min: u32,
    max: u32,
    description: &'static str,
) -> StrategyParam {
    StrategyParam {
        name,
        kind: "integer",
        default: default.to_string(),
        min: Some(min.to_string()),
        max: Some(max.to_string()),
        description,
    }
}

fn positive_decimal(
    name: &'static str,
    default: rust_decimal::Decimal,
    description: &'static str,
) -> StrategyParam {
    StrategyParam {
        name,
        kind: "decimal",
        default: default.to_string(),
        min: None,
        max: None,
        description,
    }
}

/// The catalogue, in a fixed order.
pub fn catalogue() -> StrategyList {
    StrategyList {
        items: vec![
            Strategy {
                kind: StrategyKind::Hold,
                description: "Never trades; records an observation each tick (the default).",
                params: vec![],
            },
            Strategy {
                kind: StrategyKind::SmaCrossover,
                description: "Buys when the fast simple moving average crosses above the slow one, sells when it crosses below.",
                params: vec![
                    integer("fast", SMA_FAST_DEFAULT, 1, SMA_FAST_MAX, "bars in the fast average"),
                    integer("slow", SMA_SLOW_DEFAULT, 2, SMA_SLOW_MAX, "bars in the slow average; must exceed fast"),
                    positive_decimal("qty", STRATEGY_QTY_DEFAULT, "units per order; > 0"),
                ],
            },
            Strategy {
                kind: StrategyKind::MeanReversion,
                description: "Buys when the price falls threshold_pct below its moving average, sells when it rises that far above.",
                params: vec![
                    integer(
                        "window",
                        MEAN_REVERSION_WINDOW_DEFAULT,
                        MEAN_REVERSION_WINDOW_MIN,
                        MEAN_REVERSION_WINDOW_MAX,
                        "bars in the moving average",
                    ),
                    positive_decimal(
                        "threshold_pct",
                        MEAN_REVERSION_THRESHOLD_PCT_DEFAULT,
                        "distance from the average that triggers a trade, in percent; > 0",
                    ),
                    positive_decimal("qty", STRATEGY_QTY_DEFAULT, "units per order; > 0"),
                ],
            },
        ],
    }
}

/// # Errors
/// 401/403 without a viewer token.
#[tracing::instrument(skip_all)]
pub async fn list_strategies(Viewer(_caller): Viewer) -> Result<Json<StrategyList>, ApiError> {
    Ok(Json(catalogue()))
}
