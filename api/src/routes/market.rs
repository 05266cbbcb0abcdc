//! `GET /api/v1/market/{symbol}`: the latest observed price of a symbol, from the price board (the NATS KV bucket,
//! or the memory board in embedded mode).

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use strom_commands::bus::BusError;
use strom_domain::Symbol;

use crate::auth::Viewer;
use crate::problem::ApiError;
use crate::state::AppState;
use strom_domain::time::rfc3339_millis;

/// The `MarketPrice` representation.
#[derive(Debug, Serialize)]
pub struct MarketPrice {
    symbol: String,
    price: Decimal,
    #[serde(with = "rfc3339_millis")]
    at: DateTime<Utc>,
}

fn no_price(symbol: &str) -> ApiError {
    ApiError::Missing {
        code: "no_price",
        detail: format!("no price has been observed for {symbol}"),
    }
}

/// # Errors
/// 401/403; 404 `no_price` when nothing was observed for the symbol (or it is not a valid symbol); 503 when the
/// price board does not answer.
#[tracing::instrument(skip(state, _caller))]
pub async fn get_price(
    State(state): State<AppState>,
    Viewer(_caller): Viewer,
    Path(symbol): Path<String>,
) -> Result<Json<MarketPrice>, ApiError> {
    let symbol = Symbol::parse(&symbol).map_err(|_| no_price(&symbol))?;
    let board = match state.bus.price_board().await {
        Ok(board) => board,
        // No bucket yet: nothing was ever published.
        Err(BusError::NoTopology { .. }) => return Err(no_price(symbol.as_str())),
        Err(e) => return Err(ApiError::Unavailable(format!("price board: {e}"))),
    };
    let observed = board
        .get(symbol.as_str())
        .await
        .map_err(|e| ApiError::Unavailable(format!("price board: {e}")))?
        .ok_or_else(|| no_price(symbol.as_str()))?;
    Ok(Json(MarketPrice {
        symbol: observed.symbol,
        price: observed.price,
        at: observed.at,
    }))
}
