//! What the API returns for trading (`Order`, `Trade`, `Position`, `PnlPoint`, `AgentSummary` in
//! specs/openapi.yaml): the rows in the API's JSON conventions (decimals as strings, times RFC 3339 with
//! milliseconds, absent values as `null`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use strom_domain::metrics::TraderMetrics;
use strom_domain::time::rfc3339_millis;

use crate::ledger::{OrderRow, PnlRow, PositionRow, TradeRow};

/// The observation an order was priced from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderObservationView {
    pub price: Decimal,
    #[serde(with = "rfc3339_millis")]
    pub observed_at: DateTime<Utc>,
}

/// The fill model recorded on an order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillModelView {
    pub slippage_bps: Decimal,
    pub fee_bps: Decimal,
}

/// An order (schema `Order`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub agent_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub status: String,
    pub observation: OrderObservationView,
    pub fill_model: FillModelView,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub fill_price: Option<Decimal>,
    pub fill_qty: Option<Decimal>,
    pub fee: Option<Decimal>,
    #[serde(with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_millis::option")]
    pub filled_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

impl From<&OrderRow> for OrderView {
    fn from(o: &OrderRow) -> Self {
        Self {
            order_id: o.order_id.clone(),
            agent_id: o.agent_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side.clone(),
            qty: o.qty,
            status: o.status.clone(),
            observation: OrderObservationView {
                price: o.observed_price,
                observed_at: o.observed_at,
            },
            fill_model: FillModelView {
                slippage_bps: o.slippage_bps,
                fee_bps: o.fee_bps,
            },
            reason_code: o.reason_code.clone(),
            reason: o.reason.clone(),
            fill_price: o.fill_price,
            fill_qty: o.fill_qty,
            fee: o.fee,
            created_at: o.created_at,
            filled_at: o.filled_at,
            updated_at: o.updated_at,
        }
    }
}

/// A fill (schema `Trade`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradeView {
    pub trade_id: String,
    pub order_id: String,
    pub agent_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub notional: Decimal,
    pub realized_pnl: Decimal,
    #[serde(with = "rfc3339_millis")]
    pub filled_at: DateTime<Utc>,
}

impl From<&TradeRow> for TradeView {
    fn from(t: &TradeRow) -> Self {
        Self {
            trade_id: t.trade_id.clone(),
            order_id: t.order_id.clone(),
            agent_id: t.agent_id.clone(),
            symbol: t.symbol.clone(),
            side: t.side.clone(),
            qty: t.qty,
            price: t.price,
            fee: t.fee,
            notional: t.notional,
            realized_pnl: t.realized_pnl,
            filled_at: t.filled_at,
        }
    }
}

/// A position (schema `Position`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionView {
    pub agent_id: String,
    pub symbol: String,
    pub qty: Decimal,
    pub cost_basis: Decimal,
    pub avg_price: Decimal,
    pub cash: Decimal,
    pub starting_cash: Decimal,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub fees: Decimal,
    pub mark_price: Option<Decimal>,
    pub equity: Decimal,
    pub pnl: Decimal,
    #[serde(with = "rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

impl From<&PositionRow> for PositionView {
    fn from(p: &PositionRow) -> Self {
        Self {
            agent_id: p.agent_id.clone(),
            symbol: p.symbol.clone(),
            qty: p.qty,
            cost_basis: p.cost_basis,
            avg_price: p.avg_price,
            cash: p.cash,
            starting_cash: p.starting_cash,
            realized_pnl: p.realized_pnl,
            unrealized_pnl: p.unrealized_pnl,
            fees: p.fees,
            mark_price: p.mark_price,
            equity: p.equity,
            pnl: p.pnl,
            updated_at: p.updated_at,
        }
    }
}

/// One run's valuation (schema `PnlPoint`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PnlPointView {
    pub session: i64,
    pub tick_no: i64,
    #[serde(with = "rfc3339_millis")]
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

impl From<&PnlRow> for PnlPointView {
    fn from(p: &PnlRow) -> Self {
        Self {
            session: p.session,
            tick_no: p.tick_no,
            at: p.at,
            mark_price: p.mark_price,
            position_qty: p.position_qty,
            cash: p.cash,
            equity: p.equity,
            realized_pnl: p.realized_pnl,
            unrealized_pnl: p.unrealized_pnl,
            fees: p.fees,
            pnl: p.pnl,
        }
    }
}

/// An agent's trading at a glance (schema `AgentSummary`), from its `positions` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryView {
    pub agent_id: String,
    pub symbol: String,
    pub starting_cash: Decimal,
    pub cash: Decimal,
    pub position_qty: Decimal,
    pub avg_price: Decimal,
    pub mark_price: Option<Decimal>,
    pub equity: Decimal,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub fees: Decimal,
    pub pnl: Decimal,
    /// `pnl / starting_cash × 100`, 4 decimal places.
    pub return_pct: Decimal,
    pub orders_placed: i64,
    pub orders_rejected: i64,
    pub trades: i64,
    pub closing_trades: i64,
    pub winning_trades: i64,
    /// `winning_trades / closing_trades × 100`, 2 decimal places; `None` before the first closing trade.
    pub win_rate: Option<Decimal>,
    pub max_drawdown: Decimal,
    pub max_drawdown_pct: Decimal,
    #[serde(with = "rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
    /// The trader metrics over every PnL point and closing fill (specs/06 §8), as a backtest reports them.
    pub metrics: TraderMetrics,
}

impl SummaryView {
    /// The summary of position row `p` with the metrics of its PnL points and closing fills.
    pub fn new(p: &PositionRow, metrics: TraderMetrics) -> Self {
        Self {
            agent_id: p.agent_id.clone(),
            symbol: p.symbol.clone(),
            starting_cash: p.starting_cash,
            cash: p.cash,
            position_qty: p.qty,
            avg_price: p.avg_price,
            mark_price: p.mark_price,
            equity: p.equity,
            realized_pnl: p.realized_pnl,
            unrealized_pnl: p.unrealized_pnl,
            fees: p.fees,
            pnl: p.pnl,
            return_pct: p.return_pct(),
            orders_placed: p.orders_placed,
            orders_rejected: p.orders_rejected,
            trades: p.trades,
            closing_trades: p.closing_trades,
            winning_trades: p.winning_trades,
            win_rate: p.win_rate(),
            max_drawdown: p.max_drawdown,
            max_drawdown_pct: p.max_drawdown_pct,
            updated_at: p.updated_at,
            metrics,
        }
    }
}
