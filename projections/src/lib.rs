//! STROM read models as pure folds over the event log, with Postgres and memory sinks, checkpoints, rebuild and
//! verify.
//!
//! The flow: [`Projector`] reads the global log after its checkpoint and hands each page to a [`ProjectionSink`],
//! which folds it with [`AgentFold`] (pure: rows from event payloads and log positions only) and commits the rows
//! with the checkpoint atomically. [`rebuild_from`] refolds the whole log into a [`RebuildSink`]; the result is
//! byte-equal to what the live projector built ([`TableDump`], [`diff_dumps`]). The API reads through
//! [`AgentQueries`] ([`AgentView`], [`RunView`], cursor [`Page`]s). The audits `strom replay` runs (rebuild,
//! verify, export, replay of a file) are in [`replay`].
//!
//! Projector `agents` (checkpoint [`AGENTS_PROJECTOR`]) owns the tables of the Agent stream: `agents` and
//! `agent_runs` ([`fold`]) and the paper trading's `orders`, `trades`, `positions` and `pnl_points` ([`trading`],
//! rows in [`ledger`]), written together, page by page, with one checkpoint.

pub mod backtest;
pub mod backtests;
pub mod fold;
pub mod ledger;
pub mod memory;
pub mod model;
pub mod page;
pub mod parity;
pub mod postgres;
pub mod queries;
pub mod rebuild;
pub mod record;
pub mod replay;
pub mod runner;
pub mod sink;
pub mod trading;
pub mod view;
pub mod walk;

pub use fold::{AgentFold, Folded, ProjectionError, AGENTS_PROJECTOR};
pub use ledger::{Book, OrderRow, PnlRow, PositionRow, TradeRow};
pub use memory::MemoryReadModel;
pub use model::{AgentRow, AgentsModel, RunOutcomeKind, RunRow, TableDump, AGENTS_TABLES};
pub use page::{Page, QueryError, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use postgres::{PgReadModel, PgRebuildSink};
pub use queries::{AgentFilter, AgentQueries, PnlQuery};
pub use rebuild::{
    diff_dumps, fold_events, fold_log, rebuild_from, DumpComparison, RebuildProgress, RowDifference,
};
pub use runner::{Projector, PROJECTOR_BATCH, PROJECTOR_IDLE_POLL};
pub use sink::{AppendedRows, FoldState, ProjectionSink, RebuildSink, SinkError};
pub use trading::view::{OrderView, PnlPointView, PositionView, SummaryView, TradeView};
pub use view::{AgentView, ObservationView, RunView, SignalView};
