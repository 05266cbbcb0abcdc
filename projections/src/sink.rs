//! The ports a projector writes through: [`ProjectionSink`] (incremental, one atomic page at a time) and
//! [`RebuildSink`] (from zero: clear, stream runs, finish with agents and the checkpoint, all or nothing).
//! Postgres and memory implement both; the fold they call is the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use strom_commands::log::{LogPosition, LoggedEvent, StoreError};

use crate::fold::{AgentFold, Folded, ProjectionError};
use crate::model::{AgentRow, RunRow};
use crate::trading::{fold_trading, Book, OrderRow, PnlRow, TradeRow, Traded};

/// What went wrong writing or reading a read model.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// An event could not be folded; nothing of its page was written.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The log or checkpoint store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Postgres refused or failed a read-model query.
    #[error("read-model query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// A read-model row held a value no fold produces (e.g. an unknown status).
    #[error("read-model row is malformed: {table}.{column} = {value}")]
    MalformedRow {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    /// A rebuild sink was used out of order (`write_runs`/`finish` before `begin`).
    #[error("rebuild sink used before begin()")]
    NotBegun,
}

/// An incremental read-model store with its checkpoint.
#[async_trait]
pub trait ProjectionSink: Send + Sync {
    /// The last log position whose effects are stored ([`LogPosition::START`] if none).
    ///
    /// # Errors
    /// The store could not be read.
    async fn checkpoint(&self) -> Result<LogPosition, SinkError>;

    /// Folds the events of `page` that are after the stored checkpoint and stores the resulting rows together with
    /// the new checkpoint, atomically: all of it or (on error) none of it. Events at or before the checkpoint are
    /// skipped, so applying a page twice changes nothing. Returns the checkpoint after the call.
    ///
    /// # Errors
    /// An event could not be folded, or the store failed; nothing was written.
    async fn apply_page(&self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, SinkError>;
}

/// Rows a page adds that never change afterwards: a rebuild streams them to its sink page by page.
#[derive(Debug, Default)]
pub struct AppendedRows {
    pub runs: Vec<RunRow>,
    pub trades: Vec<TradeRow>,
    pub pnl_points: Vec<PnlRow>,
}

impl AppendedRows {
    /// Room for a page of `events` (most events of a long log are runs, each with its PnL point).
    pub fn with_capacity(events: usize) -> Self {
        Self {
            runs: Vec::with_capacity(events),
            trades: Vec::new(),
            pnl_points: Vec::with_capacity(events),
        }
    }
}

/// The state the fold ends with: per agent its row and its book, and every order by order_id. A rebuild writes it
/// at the end.
#[derive(Debug, Default)]
pub struct FoldState {
    pub agents: BTreeMap<String, AgentRow>,
    pub books: BTreeMap<String, Book>,
    pub orders: BTreeMap<String, OrderRow>,
}

impl FoldState {
    /// Folds one event into the state, adding the rows it appends to `rows`.
    ///
    /// # Errors
    /// The event cannot follow the state; the agent's row or book may then be half-applied, so a caller that goes
    /// on must not write this state (the projector stops; a lenient fold reports it).
    pub fn apply(
        &mut self,
        fold: &AgentFold,
        event: &LoggedEvent,
        rows: &mut AppendedRows,
    ) -> Result<(), ProjectionError> {
        if let Folded::Run(run) = fold.apply(&mut self.agents, event)? {
            rows.runs.push(*run);
        }
        match fold_trading(&mut self.books, event)? {
            Traded::Nothing | Traded::Book => {}
            Traded::Placed => {
                if let Some(order) = self
                    .books
                    .get(&event.aggregate_id)
                    .and_then(|book| book.open_order.as_ref())
                {
                    self.orders.insert(order.order_id.clone(), order.clone());
                }
            }
            Traded::Rejected(order) => {
                self.orders.insert(order.order_id.clone(), *order);
            }
            Traded::Fill(order, filled) => {
                rows.trades.push(filled.trade(&order));
                self.orders.insert(order.order_id.clone(), *order);
            }
            Traded::Pnl(mark) => {
                if let Some(book) = self.books.get(&event.aggregate_id) {
                    rows.pnl_points.push(book.position.pnl_point(mark));
                }
            }
        }
        Ok(())
    }
}

/// A read-model store being rebuilt from zero. `begin`, any number of `write_rows`, then `finish`; dropping the
/// sink (or an error) before `finish` leaves the previous read model as it was.
#[async_trait]
pub trait RebuildSink: Send {
    /// Starts from empty tables.
    ///
    /// # Errors
    /// The store failed.
    async fn begin(&mut self) -> Result<(), SinkError>;

    /// Adds rows that never change (runs, trades, PnL points; each key once, the fold guarantees it). Owned, so a
    /// memory sink keeps them without copying.
    ///
    /// # Errors
    /// The store failed, or `begin` was not called.
    async fn write_rows(&mut self, rows: AppendedRows) -> Result<(), SinkError>;

    /// Writes the rows of `state` (agents, positions, orders) and the checkpoint `last`, and makes the new read
    /// model visible.
    ///
    /// # Errors
    /// The store failed, or `begin` was not called; the previous read model stays.
    async fn finish(&mut self, state: &FoldState, last: LogPosition) -> Result<(), SinkError>;
}

/// The effect of one page: the touched agents' rows and books after the page, the orders placed or changed, and
/// the appended rows.
#[derive(Debug, Default)]
pub(crate) struct PageEffects {
    /// Rows and books of the agents the page concerns, orders it placed or changed.
    pub state: FoldState,
    pub rows: AppendedRows,
    /// Position of the last event folded (None when every event was at or before the checkpoint).
    pub last: Option<LogPosition>,
}

/// The agent ids of `page`'s Agent events after `checkpoint`: the rows a sink must load before folding it.
pub(crate) fn agent_ids(page: &[Arc<LoggedEvent>], checkpoint: LogPosition) -> BTreeSet<String> {
    page.iter()
        .filter(|e| e.position > checkpoint && e.event.as_agent().is_some())
        .map(|e| e.aggregate_id.clone())
        .collect()
}

/// Folds `page` (events after `checkpoint`) over `loaded` (the current rows and books of [`agent_ids`]; its
/// `orders` empty).
pub(crate) fn fold_page(
    fold: &AgentFold,
    loaded: FoldState,
    page: &[Arc<LoggedEvent>],
    checkpoint: LogPosition,
) -> Result<PageEffects, ProjectionError> {
    let mut effects = PageEffects {
        state: loaded,
        ..PageEffects::default()
    };
    for event in page.iter().filter(|e| e.position > checkpoint) {
        effects.last = Some(event.position);
        effects.state.apply(fold, event, &mut effects.rows)?;
    }
    Ok(effects)
}
