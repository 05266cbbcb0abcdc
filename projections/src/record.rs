//! The trading record of specs/06 §1, folded from an Agent stream by the agents projector's trading fold
//! ([`apply_trading`]): the orders, the fills, the position after each fill and the PnL points (and the equity
//! series trader metrics use). A paper agent's record comes from its stored events, a backtest's from the events its
//! kernel decided ([`crate::backtest`]); [`crate::parity`] compares them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use strom_domain::metrics::{ClosedTrade, EquityPoint, TraderMetrics};
use strom_domain::{AgentEvent, FillModel, RunOutcome};

use crate::fold::{EventAt, ProjectionError};
use crate::ledger::{trader_metrics, Book, OrderRow, PnlRow, PositionRow, TradeRow};
use crate::trading::{apply_to_book, created, Traded};

/// A position right after one fill: the fields of specs/06 §1 (3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionAfterFill {
    pub qty: Decimal,
    pub avg_price: Decimal,
    pub cash: Decimal,
    pub realized_pnl: Decimal,
    pub fees: Decimal,
}

/// What one agent's (or backtest's) events fold to, in each sequence's defining order, plus what decides whether a
/// comparison is meaningful.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TradingRecord {
    /// Orders in order of creation, each in its final state (a placed order that filled says `filled`).
    pub orders: Vec<OrderRow>,
    /// Fills (trades), in order.
    pub trades: Vec<TradeRow>,
    /// The position after each fill.
    pub positions: Vec<PositionAfterFill>,
    /// One PnL point per run, as the projector writes it (empty when the recorder keeps equity points only); its
    /// keys (agent id, session, tick) are not compared.
    pub pnl: Vec<PnlRow>,
    /// One equity point per run: the series trader metrics and charts use (kept always; a fifth of a PnL point).
    pub equity: Vec<EquityPoint>,
    /// The final position row.
    pub position: Option<PositionRow>,
    /// Runs recorded as `skipped` behind an unfilled order (a backtest never skips).
    pub skipped_runs: u64,
    /// Config changes after the first run.
    pub config_changes_while_trading: u64,
    /// Every distinct fill model its orders were decided with, in first-use order.
    pub fill_models: Vec<FillModel>,
}

/// Folds one agent's events into its [`TradingRecord`] with the projector's trading fold.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The agent's book once its `AgentCreated` is applied.
    book: Option<Book>,
    record: TradingRecord,
    open_order: Option<usize>,
    runs: u64,
    /// Keep every PnL point whole (a parity comparison needs them), or only the equity series.
    equity_only: bool,
}

impl Recorder {
    /// A recorder that keeps every PnL point.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps only the equity series of the PnL points from now on (a long backtest that compares nothing), and room
    /// for `runs` of them.
    pub fn equity_only(&mut self, runs: usize) {
        self.equity_only = true;
        self.record.equity.reserve(runs);
    }

    /// Applies `event`, the `sequence`-th of aggregate `agent_id`.
    ///
    /// # Errors
    /// The event cannot follow the ones before ([`crate::trading::apply_trading`]).
    pub fn apply(
        &mut self,
        agent_id: &str,
        sequence: u64,
        event: &AgentEvent,
    ) -> Result<(), ProjectionError> {
        let at = EventAt {
            aggregate_id: agent_id,
            sequence,
            global_position: 0,
        };
        match event {
            AgentEvent::AgentRunRecorded { outcome, .. } => {
                self.runs += 1;
                if matches!(outcome, RunOutcome::Skipped { .. }) {
                    self.record.skipped_runs += 1;
                }
            }
            AgentEvent::AgentConfigUpdated { .. } if self.runs > 0 => {
                self.record.config_changes_while_trading += 1;
            }
            AgentEvent::OrderPlaced { fill_model, .. }
            | AgentEvent::OrderRejected { fill_model, .. }
                if !self.record.fill_models.contains(fill_model) =>
            {
                self.record.fill_models.push(fill_model.clone());
            }
            _ => {}
        }
        let Some(book) = self.book.as_mut() else {
            self.book = Some(created(at, event)?);
            return Ok(());
        };
        let traded = apply_to_book(book, at, 0, event)?;
        let record = &mut self.record;
        match traded {
            Traded::Nothing | Traded::Book => {}
            Traded::Order(row) => {
                if row.status == "accepted" {
                    self.open_order = Some(record.orders.len());
                }
                record.orders.push(*row);
            }
            Traded::Fill(order, trade) => {
                if let Some(slot) = self
                    .open_order
                    .take()
                    .and_then(|i| record.orders.get_mut(i))
                {
                    *slot = *order;
                }
                record.trades.push(*trade);
                let p = &book.position;
                record.positions.push(PositionAfterFill {
                    qty: p.qty,
                    avg_price: p.avg_price,
                    cash: p.cash,
                    realized_pnl: p.realized_pnl,
                    fees: p.fees,
                });
            }
            Traded::Pnl(mark) => {
                let p = &book.position;
                record.equity.push(EquityPoint {
                    at: mark.at,
                    equity: p.equity,
                    position_qty: p.qty,
                    mark_price: mark.mark_price,
                });
                if !self.equity_only {
                    record.pnl.push(p.pnl_point(mark));
                }
            }
        }
        Ok(())
    }

    /// The record, with the final position.
    pub fn finish(mut self) -> TradingRecord {
        self.record.position = self.book.map(|b| b.position);
        self.record
    }
}

impl TradingRecord {
    /// The trader metrics of this record ([`trader_metrics`], specs/06 §8) over its equity series (whose last point
    /// is revalued after every fill), each sell a closed trade worth its realized PnL less its fee. `None` before the
    /// agent exists.
    pub fn metrics(&mut self) -> Option<TraderMetrics> {
        let position = self.position.as_ref()?;
        let closed_trades: Vec<ClosedTrade> = self
            .trades
            .iter()
            .filter(|t| t.side == "sell")
            .map(|t| ClosedTrade {
                at: t.filled_at,
                pnl: t.realized_pnl - t.fee,
            })
            .collect();
        Some(trader_metrics(position, &mut self.equity, &closed_trades))
    }

    /// Folds an agent's whole stream (events in sequence order, from 1).
    ///
    /// # Errors
    /// The stream does not fold ([`apply_trading`]).
    pub fn of_stream<'a>(
        agent_id: &str,
        events: impl IntoIterator<Item = &'a AgentEvent>,
    ) -> Result<Self, ProjectionError> {
        let mut recorder = Recorder::new();
        for (i, event) in events.into_iter().enumerate() {
            recorder.apply(agent_id, i as u64 + 1, event)?;
        }
        Ok(recorder.finish())
    }
}

/// The observations of an agent's runs, in stream order ((session, tick_no) order): what
/// `strom replay --export-observations` writes and a parity backtest runs over.
pub fn observations<'a>(
    events: impl IntoIterator<Item = &'a AgentEvent>,
) -> Vec<(DateTime<Utc>, Decimal)> {
    events
        .into_iter()
        .filter_map(|event| match event {
            AgentEvent::AgentRunRecorded { observation, .. } => {
                Some((observation.observed_at, observation.price))
            }
            _ => None,
        })
        .collect()
}
