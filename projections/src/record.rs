//! The trading record of specs/06 §1, folded from an Agent stream by the agents projector's trading fold
//! ([`apply_trading`]): the orders, the fills, the position after each fill and the PnL points (and the equity
//! series trader metrics use). A paper agent's record comes from its stored events, a backtest's from the events its
//! kernel decided ([`crate::backtest`]); [`crate::parity`] compares them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use strom_domain::metrics::{ClosedTrade, EquityPoint, TraderMetrics};
use strom_domain::{AgentEvent, FillModel, RunOutcome, Side};

use crate::fold::{EventAt, ProjectionError};
use crate::ledger::{trader_metrics, Book, OrderRow, PnlRow, PositionRow, TradeRow};
use crate::trading::{apply_to_book, created, Filled, Traded};
use crate::walk::{EquityPoint as SeriesPoint, TraderMetricsWalk, MAX_RESULT_ROWS};

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

/// What a [`Recorder`] keeps of the runs' PnL points and of the orders and fills.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every PnL point whole, the equity series, every order, fill and position after a fill: what a parity
    /// comparison needs.
    #[default]
    Everything,
    /// What a stored backtest result shows ([`crate::backtests::report`]): the equity series thinned as the points
    /// come ([`crate::walk::SeriesWalk`]: the recorder must be told how many runs will come), the first
    /// [`MAX_RESULT_ROWS`] orders and fills; the trader metrics walked as for [`Keep::Metrics`]. Memory that does
    /// not grow with the runs but for the returns (8 bytes a run).
    Report,
    /// Only what the trader metrics need: they take each point as it comes ([`TraderMetricsWalk`], 8 bytes a point
    /// kept instead of 60), and each sell fill as a closed trade; no orders, fills or positions after fills are kept
    /// (their counts are the final position row's). A long backtest that shows no rows and no series.
    Metrics,
}

/// Folds one agent's events into its [`TradingRecord`] with the projector's trading fold.
#[derive(Default)]
pub struct Recorder {
    /// The agent's book once its `AgentCreated` is applied.
    book: Option<Book>,
    record: TradingRecord,
    open_order: Option<usize>,
    runs: u64,
    keep: Keep,
    /// The metrics (and with [`Keep::Report`] the thinned series) as the points come, unless everything is kept.
    walk: TraderMetricsWalk,
    /// Each sell fill as a closed trade, for the metrics.
    closed_trades: Vec<ClosedTrade>,
}

impl Recorder {
    /// A recorder that keeps every PnL point.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `keep` of the `runs` runs to come (room for them; the exact count for [`Keep::Report`]'s thinning);
    /// before the first run (a walk sees only the points after it).
    pub fn keep(&mut self, keep: Keep, runs: usize) {
        self.keep = keep;
        match keep {
            Keep::Everything => {
                self.record.pnl.reserve(runs);
                self.record.equity.reserve(runs);
            }
            Keep::Report => self.walk = TraderMetricsWalk::new(runs, true),
            Keep::Metrics => self.walk = TraderMetricsWalk::new(runs, false),
        }
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
            // An order row past what is kept: none with `Metrics` (the counts are the position row's), the first
            // rows only with `Report`.
            Traded::Placed | Traded::Rejected(_)
                if self.keep == Keep::Metrics
                    || (self.keep == Keep::Report && record.orders.len() >= MAX_RESULT_ROWS) => {}
            Traded::Placed => {
                if let Some(order) = &book.open_order {
                    self.open_order = Some(record.orders.len());
                    record.orders.push(order.clone());
                }
            }
            Traded::Rejected(row) => record.orders.push(*row),
            Traded::Fill(order, filled) => {
                self.closed_trades.extend(closed_trade(&filled));
                if self.keep == Keep::Metrics {
                    return Ok(());
                }
                // A result shows the first fills (not those of its first orders only: a rejection has none).
                if self.keep == Keep::Everything || record.trades.len() < MAX_RESULT_ROWS {
                    record.trades.push(filled.trade(&order));
                }
                if let Some(slot) = self
                    .open_order
                    .take()
                    .and_then(|i| record.orders.get_mut(i))
                {
                    *slot = *order;
                }
                if self.keep == Keep::Everything {
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
            Traded::Pnl(mark) => {
                let p = &book.position;
                let point = EquityPoint {
                    at: mark.at,
                    equity: p.equity,
                    position_qty: p.qty,
                    mark_price: mark.mark_price,
                };
                match self.keep {
                    Keep::Everything => {
                        record.equity.push(point);
                        record.pnl.push(p.pnl_point(mark));
                    }
                    Keep::Report | Keep::Metrics => self.walk.point(p, point),
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

    /// The record, with the final position, its trader metrics (specs/06 §8; `None` before the agent exists) over
    /// the kept equity series ([`trader_metrics`], which revalues its last point in the record too) or the walked
    /// points, the sell fills as closed trades, and with [`Keep::Report`] the thinned series.
    pub fn finish_and_metrics(
        self,
    ) -> (
        TradingRecord,
        Option<TraderMetrics>,
        Option<Vec<SeriesPoint>>,
    ) {
        let Self {
            book,
            mut record,
            keep,
            walk,
            closed_trades,
            ..
        } = self;
        record.position = book.map(|b| b.position);
        let Some(position) = record.position.as_ref() else {
            return (record, None, None);
        };
        let (metrics, series) = match keep {
            Keep::Report | Keep::Metrics => walk.finish(position, &closed_trades),
            Keep::Everything => (
                trader_metrics(position, &mut record.equity, &closed_trades),
                None,
            ),
        };
        (record, Some(metrics), series)
    }
}

impl TradingRecord {
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

/// A sell fill as a closed trade, worth its realized PnL less its fee; `None` for a buy.
fn closed_trade(fill: &Filled) -> Option<ClosedTrade> {
    (fill.side == Side::Sell).then(|| ClosedTrade {
        at: fill.filled_at,
        pnl: fill.realized_pnl - fill.fee,
    })
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
