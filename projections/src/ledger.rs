//! The rows of the agents' paper trading (tables `orders`, `trades`, `positions`, `pnl_points`, specs/02 §3) and an
//! agent's trading fold state ([`Book`]). The fold that produces them is [`crate::trading`]; like every row of the
//! projector, they serialize losslessly into the canonical dump.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use strom_domain::metrics::{self, ClosedTrade, EquityPoint, MetricsInput, TraderMetrics};
use strom_domain::settle::Position;

/// One order, as table `orders` holds it: placed (`accepted`, then `filled`) or `rejected` by a risk rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct OrderRow {
    pub order_id: String,
    pub agent_id: String,
    pub owner: String,
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    pub qty: Decimal,
    /// `accepted`, `rejected` or `filled` ([`strom_domain::order::OrderStatus`]).
    pub status: String,
    pub observed_price: Decimal,
    pub observed_at: DateTime<Utc>,
    pub slippage_bps: Decimal,
    pub fee_bps: Decimal,
    /// The risk rule's code ([`strom_domain::RiskCode`]) of a rejected order.
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub fill_price: Option<Decimal>,
    pub fill_qty: Option<Decimal>,
    pub fee: Option<Decimal>,
    /// `placed_at` or `rejected_at`.
    pub created_at: DateTime<Utc>,
    pub filled_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last event applied to the row.
    pub version: i64,
}

/// One fill, as table `trades` holds it. An order fills once, whole, so `trade_id` is its `order_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct TradeRow {
    pub trade_id: String,
    pub order_id: String,
    pub agent_id: String,
    pub owner: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    /// `qty × price`.
    pub notional: Decimal,
    /// A sell's proceeds less the sold units' share of the cost basis (fee excluded); 0 for a buy.
    pub realized_pnl: Decimal,
    pub filled_at: DateTime<Utc>,
    /// Global-log position of the `OrderFilled` event.
    pub global_position: i64,
}

/// One agent's trading, as table `positions` holds it: the position (long-only, one symbol) valued at the latest
/// observed price, and the running figures of the agent's summary. The identity
/// `pnl = realized_pnl + unrealized_pnl − fees = equity − starting_cash` holds exactly (specs/06 §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct PositionRow {
    pub agent_id: String,
    pub owner: String,
    pub symbol: String,
    pub qty: Decimal,
    /// What the units held cost, fees excluded (exact).
    pub cost_basis: Decimal,
    /// `cost_basis / qty` for display (0 when flat); no amount is computed from it.
    pub avg_price: Decimal,
    pub cash: Decimal,
    pub starting_cash: Decimal,
    pub realized_pnl: Decimal,
    pub fees: Decimal,
    /// The latest run's observed price; `None` before the first run.
    pub mark_price: Option<Decimal>,
    pub unrealized_pnl: Decimal,
    pub equity: Decimal,
    pub pnl: Decimal,
    pub orders_placed: i64,
    pub orders_rejected: i64,
    /// Fills.
    pub trades: i64,
    /// Sell fills.
    pub closing_trades: i64,
    /// Sell fills whose realized PnL less their fee is > 0.
    pub winning_trades: i64,
    /// Highest equity at a PnL point so far (starting at `starting_cash`).
    pub peak_equity: Decimal,
    /// Largest fall of equity from its running peak, over the PnL points.
    pub max_drawdown: Decimal,
    /// That fall as a percentage of the peak it fell from (4 decimal places).
    pub max_drawdown_pct: Decimal,
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last event applied to the row.
    pub version: i64,
}

/// One run's valuation, as table `pnl_points` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct PnlRow {
    pub agent_id: String,
    pub session: i64,
    pub tick_no: i64,
    /// The instant of the price the run observed and marked at.
    pub at: DateTime<Utc>,
    pub mark_price: Decimal,
    pub position_qty: Decimal,
    pub cash: Decimal,
    pub equity: Decimal,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub fees: Decimal,
    pub pnl: Decimal,
}

/// An agent's trading fold state: its `positions` row and its open order (placed, not yet filled).
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    pub position: PositionRow,
    pub open_order: Option<OrderRow>,
    /// The equity the drawdown figures were last updated with (not stored: `None` after a load, which only costs
    /// the next run one update). A run that finds the equity unchanged leaves them as they are.
    pub drawdown_seen: Option<Decimal>,
    /// The fall below the current peak that the largest drawdown % so far needs to be beaten, `max_drawdown_pct ×
    /// peak_equity / 100`, exactly (not stored: `None` after a load or once either changes, computed again at the
    /// next fall).
    pub drawdown_bar: Option<Decimal>,
}

impl Book {
    /// The fold state of an agent whose row and open order are these.
    pub fn new(position: PositionRow, open_order: Option<OrderRow>) -> Self {
        Self {
            position,
            open_order,
            drawdown_seen: None,
            drawdown_bar: None,
        }
    }
}

impl PositionRow {
    /// The domain position this row holds.
    pub fn position(&self) -> Position {
        Position {
            qty: self.qty,
            cost_basis: self.cost_basis,
            realized_pnl: self.realized_pnl,
            cash: self.cash,
            fees: self.fees,
        }
    }

    /// The position's return on its starting cash, in percent (4 decimal places); 0 without starting cash.
    pub fn return_pct(&self) -> Decimal {
        percent(self.pnl, self.starting_cash, 4)
    }

    /// Winning over closing trades in percent (2 decimal places); `None` before the first closing trade.
    pub fn win_rate(&self) -> Option<Decimal> {
        (self.closing_trades > 0)
            .then(|| percent(self.winning_trades.into(), self.closing_trades.into(), 2))
    }
}

/// `part / whole × 100` rounded half to even to `dp` places (specs/06 §6); 0 when `whole` is 0 or it overflows.
pub fn percent(part: Decimal, whole: Decimal, dp: u32) -> Decimal {
    if whole.is_zero() {
        return Decimal::ZERO;
    }
    part.checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|p| p.checked_div(whole))
        .map_or(Decimal::ZERO, |p| p.round_dp(dp))
}

/// The trader metrics ([`strom_domain::metrics`], specs/06 §8) of an agent or backtest whose position is `position`,
/// over its PnL points (`points`, oldest first) and closed trades: the one place both a paper agent's summary and a
/// backtest's result get them from ([`crate::walk::TraderMetricsWalk`] for points not kept). A PnL point is valued
/// when its run is recorded, before an order that run placed fills; the last point is therefore revalued (in `points`
/// too) as the position stands now, after every fill, so `total_return_pct` is the position's own return.
pub fn trader_metrics(
    position: &PositionRow,
    points: &mut [EquityPoint],
    closed_trades: &[ClosedTrade],
) -> TraderMetrics {
    if let Some(last) = points.last_mut() {
        revalue_last(position, last);
    }
    metrics::compute(&MetricsInput {
        starting_cash: position.starting_cash,
        points,
        closed_trades,
        fills: fills(position),
        fees: position.fees,
    })
}

/// The last PnL point as the position stands now (see [`trader_metrics`]).
pub(crate) fn revalue_last(position: &PositionRow, last: &mut EquityPoint) {
    last.equity = position.equity;
    last.position_qty = position.qty;
}

pub(crate) fn fills(position: &PositionRow) -> u64 {
    u64::try_from(position.trades).unwrap_or(0)
}
