//! The parity rule's trading record and its comparison (specs/06 §1): the orders, fills, positions after each fill
//! and PnL points an Agent stream folds to, and "equal" or the first differing element between a paper agent's record
//! and a backtest's.
//!
//! Both records come from the same fold ([`apply_trading`]) over typed Agent events: the paper agent's as stored, the
//! backtest's as its in-memory run decided them. Ids, session/tick numbering and wall-clock times are left out of the
//! comparison, nothing else.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use strom_domain::metrics::{ClosedTrade, EquityPoint, TraderMetrics};
use strom_domain::{AgentConfig, AgentEvent, FillModel, RunOutcome};

use crate::fold::{EventAt, ProjectionError};
use crate::ledger::{trader_metrics, Book, OrderRow, PnlRow, PositionRow, TradeRow};
use crate::trading::{apply_trading, Traded};

/// A position right after one fill: the fields of specs/06 §1 (3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionAfterFill {
    pub qty: Decimal,
    pub avg_price: Decimal,
    pub cash: Decimal,
    pub realized_pnl: Decimal,
    pub fees: Decimal,
}

/// One PnL point (specs/02 `pnl_points` without its keys): one per run or bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PnlPoint {
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

impl From<&PnlRow> for PnlPoint {
    fn from(row: &PnlRow) -> Self {
        Self {
            at: row.at,
            mark_price: row.mark_price,
            position_qty: row.position_qty,
            cash: row.cash,
            equity: row.equity,
            realized_pnl: row.realized_pnl,
            unrealized_pnl: row.unrealized_pnl,
            fees: row.fees,
            pnl: row.pnl,
        }
    }
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
    /// One point per run (empty when the recorder keeps equity points only).
    pub pnl: Vec<PnlPoint>,
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
    books: BTreeMap<String, Book>,
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
    /// The event cannot follow the ones before ([`apply_trading`]).
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
        let traded = apply_trading(&mut self.books, at, 0, event)?;
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
                if let Some(book) = self.books.get(agent_id) {
                    let p = &book.position;
                    record.positions.push(PositionAfterFill {
                        qty: p.qty,
                        avg_price: p.avg_price,
                        cash: p.cash,
                        realized_pnl: p.realized_pnl,
                        fees: p.fees,
                    });
                }
            }
            Traded::Pnl(row) => {
                record.equity.push(EquityPoint {
                    at: row.at,
                    equity: row.equity,
                    position_qty: row.position_qty,
                    mark_price: row.mark_price,
                });
                if !self.equity_only {
                    record.pnl.push(PnlPoint::from(&*row));
                }
            }
        }
        Ok(())
    }

    /// The position now.
    pub fn position(&self, agent_id: &str) -> Option<&PositionRow> {
        self.books.get(agent_id).map(|b| &b.position)
    }

    /// The record so far.
    pub fn record(&self) -> &TradingRecord {
        &self.record
    }

    /// The record, with the final position of `agent_id`.
    pub fn finish(mut self, agent_id: &str) -> TradingRecord {
        self.record.position = self.books.remove(agent_id).map(|b| b.position);
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
        Ok(recorder.finish(agent_id))
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

/// What [`check_agent`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParityReport {
    pub agent_id: String,
    /// The observations backtested (the agent's runs).
    pub observations: usize,
    /// The config and fill model the backtest ran with (the agent's, from its events).
    pub config: AgentConfig,
    pub fill_model: FillModel,
    #[serde(flatten)]
    pub parity: Parity,
}

/// Why [`check_agent`] could not compare.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParityError {
    #[error("agent {0} has no events")]
    NotFound(String),
    #[error("agent {0} has no runs yet: nothing to compare")]
    NoRuns(String),
    #[error("the agent's events do not fold: {0}")]
    Fold(String),
    #[error("the backtest failed: {0}")]
    Backtest(String),
}

/// The parity rule checked for one paper agent (specs/06 §1): its trading record from its own events, against a
/// backtest of its config and fill model over its observations.
///
/// # Errors
/// No events or runs, a stream that does not fold, or a backtest that fails.
pub fn check_agent(agent_id: &str, events: &[AgentEvent]) -> Result<ParityReport, ParityError> {
    if events.is_empty() {
        return Err(ParityError::NotFound(agent_id.to_owned()));
    }
    let paper =
        TradingRecord::of_stream(agent_id, events).map_err(|e| ParityError::Fold(e.to_string()))?;
    let observed = observations(events);
    // The config the runs were recorded under: the latest one before the first run (a later change voids parity).
    let config = events
        .iter()
        .take_while(|e| !matches!(e, AgentEvent::AgentRunRecorded { .. }))
        .filter_map(AgentEvent::config)
        .last()
        .ok_or_else(|| ParityError::NotFound(agent_id.to_owned()))?;
    if observed.is_empty() {
        return Err(ParityError::NoRuns(agent_id.to_owned()));
    }
    let fill_model = paper.fill_models.first().cloned().unwrap_or_default();
    let (owner, backtest_id) = (
        events.iter().find_map(|e| match e {
            AgentEvent::AgentCreated { owner, .. } => Some(owner.clone()),
            _ => None,
        }),
        uuid::Uuid::new_v4().to_string(),
    );
    let setup = crate::backtest::BacktestSetup {
        backtest_id,
        owner: owner.unwrap_or_default(),
        config: config.clone(),
        fill_model: fill_model.clone(),
    };
    let backtest = crate::backtest::run(setup, observed.iter().copied())
        .map_err(|e| ParityError::Backtest(e.to_string()))?;
    Ok(ParityReport {
        agent_id: agent_id.to_owned(),
        observations: observed.len(),
        config,
        fill_model,
        parity: compare(&paper, &backtest.record),
    })
}

/// The first element where two trading records differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `orders`, `fills`, `positions` or `pnl_points`.
    pub sequence: &'static str,
    /// 0-based element index; for a length difference, the shorter length.
    pub index: usize,
    /// The field that differs, or `length`.
    pub field: &'static str,
    pub paper: String,
    pub backtest: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field == "length" {
            write!(
                f,
                "{}: the paper agent has {} and the backtest {}",
                self.sequence, self.paper, self.backtest
            )
        } else {
            write!(
                f,
                "{}[{}].{}: paper {} vs backtest {}",
                self.sequence, self.index, self.field, self.paper, self.backtest
            )
        }
    }
}

/// The verdict of specs/06 §1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Parity {
    /// Every element equal; the sizes compared.
    Equal {
        orders: usize,
        fills: usize,
        pnl_points: usize,
    },
    /// The first differing element.
    Differs { difference: Difference },
    /// The paper agent's record cannot be reproduced by a backtest, and why (nothing was compared).
    Void { reason: String },
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parity::Equal {
                orders,
                fills,
                pnl_points,
            } => write!(
                f,
                "equal: {orders} orders, {fills} fills and {pnl_points} PnL points match element by element"
            ),
            Parity::Differs { difference } => write!(f, "differs at {difference}"),
            Parity::Void { reason } => write!(f, "void: {reason}"),
        }
    }
}

/// Why a paper agent's record is outside the parity rule, if it is.
pub fn void_reason(paper: &TradingRecord) -> Option<String> {
    if paper.skipped_runs > 0 {
        return Some(format!(
            "{} run(s) were skipped while an order waited for its fill (the execution role was behind or down); a \
             backtest fills before the next bar, so its strategy sees those bars",
            paper.skipped_runs
        ));
    }
    if paper.config_changes_while_trading > 0 {
        return Some(
            "the agent's config changed after its first run; parity holds for observations recorded under one config"
                .to_owned(),
        );
    }
    if paper.fill_models.len() > 1 {
        return Some(format!(
            "its orders used {} different fill models; a backtest runs one",
            paper.fill_models.len()
        ));
    }
    None
}

/// Compares field by field, in order; decimals numerically (`1.0 == 1.00`), times as instants, strings exactly.
pub fn compare(paper: &TradingRecord, backtest: &TradingRecord) -> Parity {
    if let Some(reason) = void_reason(paper) {
        return Parity::Void { reason };
    }
    let first = first_difference("orders", &paper.orders, &backtest.orders, order_fields)
        .or_else(|| first_difference("fills", &paper.trades, &backtest.trades, fill_fields))
        .or_else(|| {
            first_difference(
                "positions",
                &paper.positions,
                &backtest.positions,
                position_fields,
            )
        })
        .or_else(|| first_difference("pnl_points", &paper.pnl, &backtest.pnl, pnl_fields));
    match first {
        Some(difference) => Parity::Differs { difference },
        None => Parity::Equal {
            orders: paper.orders.len(),
            fills: paper.trades.len(),
            pnl_points: paper.pnl.len(),
        },
    }
}

/// One compared field of two elements: its name and whether (and how) the values differ.
type FieldDiff = (&'static str, Option<(String, String)>);

fn diff<T: PartialEq + fmt::Debug>(name: &'static str, a: &T, b: &T) -> FieldDiff {
    (name, (a != b).then(|| (show(a), show(b))))
}

fn show<T: fmt::Debug>(v: &T) -> String {
    let text = format!("{v:?}");
    text.trim_matches('"').to_owned()
}

fn order_fields(a: &OrderRow, b: &OrderRow) -> Vec<FieldDiff> {
    vec![
        diff("side", &a.side, &b.side),
        diff("qty", &a.qty, &b.qty),
        diff("status", &a.status, &b.status),
        diff("reason_code", &a.reason_code, &b.reason_code),
        diff("observation.price", &a.observed_price, &b.observed_price),
        diff("observation.observed_at", &a.observed_at, &b.observed_at),
        diff("fill_model.slippage_bps", &a.slippage_bps, &b.slippage_bps),
        diff("fill_model.fee_bps", &a.fee_bps, &b.fee_bps),
    ]
}

fn fill_fields(a: &TradeRow, b: &TradeRow) -> Vec<FieldDiff> {
    vec![
        diff("price", &a.price, &b.price),
        diff("qty", &a.qty, &b.qty),
        diff("fee", &a.fee, &b.fee),
    ]
}

fn position_fields(a: &PositionAfterFill, b: &PositionAfterFill) -> Vec<FieldDiff> {
    vec![
        diff("qty", &a.qty, &b.qty),
        diff("avg_price", &a.avg_price, &b.avg_price),
        diff("cash", &a.cash, &b.cash),
        diff("realized_pnl", &a.realized_pnl, &b.realized_pnl),
        diff("fees", &a.fees, &b.fees),
    ]
}

fn pnl_fields(a: &PnlPoint, b: &PnlPoint) -> Vec<FieldDiff> {
    vec![
        diff("at", &a.at, &b.at),
        diff("mark_price", &a.mark_price, &b.mark_price),
        diff("position_qty", &a.position_qty, &b.position_qty),
        diff("cash", &a.cash, &b.cash),
        diff("equity", &a.equity, &b.equity),
        diff("realized_pnl", &a.realized_pnl, &b.realized_pnl),
        diff("unrealized_pnl", &a.unrealized_pnl, &b.unrealized_pnl),
        diff("fees", &a.fees, &b.fees),
        diff("pnl", &a.pnl, &b.pnl),
    ]
}

fn first_difference<T>(
    sequence: &'static str,
    paper: &[T],
    backtest: &[T],
    fields: impl Fn(&T, &T) -> Vec<FieldDiff>,
) -> Option<Difference> {
    for (index, (a, b)) in paper.iter().zip(backtest).enumerate() {
        if let Some((field, (p, q))) = fields(a, b)
            .into_iter()
            .find_map(|(name, d)| d.map(|d| (name, d)))
        {
            return Some(Difference {
                sequence,
                index,
                field,
                paper: p,
                backtest: q,
            });
        }
    }
    (paper.len() != backtest.len()).then(|| Difference {
        sequence,
        index: paper.len().min(backtest.len()),
        field: "length",
        paper: paper.len().to_string(),
        backtest: backtest.len().to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests;
