//! Backtests as the API and the backtest runner see them: projector `backtests` (checkpoint
//! [`BACKTESTS_PROJECTOR`]) folds the Backtest stream into table `backtests` ([`BacktestRow`], rebuildable from the
//! log like every read model), and [`BacktestStore`] also keeps the runner's *artifacts* beside it — the uploaded CSV
//! (`backtest_inputs`, written by the API before `RequestBacktest`) and the progress, attempt count and result
//! (`backtest_results`, written by the runner before `CompleteBacktest`). Artifacts are not derived from events: they
//! are inputs and outputs of a run, kept outside the log because they are large (specs/02 §3).
//!
//! [`report`] turns a kernel result into what `GET /api/v1/backtests/{id}` shows: the summary's companions (metrics,
//! rejections), the equity and drawdown series thinned for a chart, and the orders and trades (capped).

mod memory;
mod postgres;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strom_commands::log::LoggedEvent;
use strom_domain::metrics::TraderMetrics;
use strom_domain::{
    AgentConfig, BacktestEvent, BacktestSource, BacktestState, BacktestSummary, FillModel,
};

use crate::backtest::BacktestResult;
use crate::fold::ProjectionError;
use crate::page::{Page, QueryError};
use crate::parity::Parity;
use crate::trading::view::{OrderView, TradeView};
use crate::walk::{EquityPoint, SeriesWalk, MAX_RESULT_ROWS};

pub use memory::MemoryBacktests;
pub use postgres::PgBacktests;

/// Checkpoint name of the projector that keeps table `backtests`.
pub const BACKTESTS_PROJECTOR: &str = "projector:backtests";
/// One backtest, as table `backtests` holds it (the fold of its stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestRow {
    pub backtest_id: String,
    pub owner: String,
    pub agent_id: Option<String>,
    pub config: AgentConfig,
    pub source: BacktestSource,
    pub fill_model: FillModel,
    pub status: BacktestState,
    #[serde(with = "strom_domain::time::rfc3339_millis")]
    pub requested_at: DateTime<Utc>,
    #[serde(with = "strom_domain::time::rfc3339_millis::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "strom_domain::time::rfc3339_millis::option")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(with = "strom_domain::time::rfc3339_millis::option")]
    pub failed_at: Option<DateTime<Utc>>,
    #[serde(with = "strom_domain::time::rfc3339_millis::option")]
    pub cancelled_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub summary: Option<BacktestSummary>,
    /// The time field of the last applied event.
    #[serde(with = "strom_domain::time::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last applied event.
    pub version: u64,
}

fn inconsistent(id: &str, sequence: u64, reason: &str) -> ProjectionError {
    ProjectionError::Inconsistent {
        aggregate_type: "Backtest".into(),
        aggregate_id: id.into(),
        sequence,
        reason: reason.into(),
    }
}

/// Applies the `sequence`-th event of backtest `id` to its row (`None` before `BacktestRequested`).
///
/// # Errors
/// An event other than `BacktestRequested` for a backtest never requested.
pub fn fold_backtest(
    row: Option<BacktestRow>,
    id: &str,
    sequence: u64,
    event: &BacktestEvent,
) -> Result<BacktestRow, ProjectionError> {
    if let BacktestEvent::BacktestRequested {
        backtest_id,
        owner,
        agent_id,
        config,
        source,
        fill_model,
        requested_at,
    } = event
    {
        return Ok(BacktestRow {
            backtest_id: backtest_id.clone(),
            owner: owner.clone(),
            agent_id: agent_id.clone(),
            config: config.clone(),
            source: source.clone(),
            fill_model: fill_model.clone(),
            status: BacktestState::Requested,
            requested_at: *requested_at,
            started_at: None,
            completed_at: None,
            failed_at: None,
            cancelled_at: None,
            error: None,
            summary: None,
            updated_at: *requested_at,
            version: sequence,
        });
    }
    let mut row =
        row.ok_or_else(|| inconsistent(id, sequence, "event before BacktestRequested"))?;
    let at = match event {
        BacktestEvent::BacktestRequested { .. } => unreachable!("handled above"),
        BacktestEvent::BacktestStarted { started_at } => {
            row.status = BacktestState::Running;
            row.started_at = Some(*started_at);
            *started_at
        }
        BacktestEvent::BacktestCompleted {
            summary,
            completed_at,
        } => {
            row.status = BacktestState::Completed;
            row.summary = Some(summary.clone());
            row.completed_at = Some(*completed_at);
            *completed_at
        }
        BacktestEvent::BacktestFailed { error, failed_at } => {
            row.status = BacktestState::Failed;
            row.error = Some(error.clone());
            row.failed_at = Some(*failed_at);
            *failed_at
        }
        BacktestEvent::BacktestCancelled { cancelled_at } => {
            row.status = BacktestState::Cancelled;
            row.cancelled_at = Some(*cancelled_at);
            *cancelled_at
        }
    };
    row.updated_at = at;
    row.version = sequence;
    Ok(row)
}

/// Folds the Backtest events of `page` (after `checkpoint`) over `rows`.
pub(crate) fn fold_page(
    rows: &mut BTreeMap<String, BacktestRow>,
    page: &[Arc<LoggedEvent>],
    checkpoint: strom_commands::log::LogPosition,
) -> Result<Option<strom_commands::log::LogPosition>, ProjectionError> {
    let mut last = None;
    for logged in page.iter().filter(|e| e.position > checkpoint) {
        last = Some(logged.position);
        let Some(event) = logged.event.as_backtest() else {
            continue;
        };
        let id = &logged.aggregate_id;
        let row = fold_backtest(rows.remove(id), id, logged.sequence, event)?;
        rows.insert(id.clone(), row);
    }
    Ok(last)
}

/// The ids of `page`'s Backtest events after `checkpoint`: the rows a sink loads before folding it.
pub(crate) fn backtest_ids(
    page: &[Arc<LoggedEvent>],
    checkpoint: strom_commands::log::LogPosition,
) -> Vec<String> {
    let mut ids: Vec<String> = page
        .iter()
        .filter(|e| e.position > checkpoint && e.event.as_backtest().is_some())
        .map(|e| e.aggregate_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// How far a running backtest got (bars run of bars to run), as the runner last wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestProgress {
    pub bars_done: u64,
    pub bars_total: u64,
}

/// The runner's record of one backtest (table `backtest_results`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BacktestArtifacts {
    /// Runs begun (1 for the first; a run taken over after a crash is the 2nd).
    pub attempts: u32,
    pub progress: Option<BacktestProgress>,
    /// The [`BacktestReport`] as JSON, once the run finished.
    pub result: Option<Value>,
}

/// The backtests read model, and the runner's artifacts beside it. Postgres and memory implement it alike.
#[async_trait]
pub trait BacktestStore: Send + Sync {
    /// Backtests of `owner` (everyone's for `None`), newest first (requested_at desc, backtest_id desc).
    ///
    /// # Errors
    /// [`QueryError::InvalidLimit`], [`QueryError::BadCursor`], [`QueryError::Unavailable`].
    async fn list_backtests(
        &self,
        owner: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<BacktestRow>, QueryError>;

    /// Up to `limit` backtests still `requested` or `running`, oldest first: the runner's work list.
    ///
    /// # Errors
    /// [`QueryError::Unavailable`].
    async fn unfinished_backtests(&self, limit: usize) -> Result<Vec<BacktestRow>, QueryError>;

    /// Keeps the uploaded CSV of backtest `id` (before its `RequestBacktest`; a retry overwrites it).
    ///
    /// # Errors
    /// [`QueryError::Unavailable`].
    async fn put_input(&self, id: &str, csv: &[u8]) -> Result<(), QueryError>;

    /// The uploaded CSV of backtest `id`.
    ///
    /// # Errors
    /// [`QueryError::Unavailable`].
    async fn input(&self, id: &str) -> Result<Option<Vec<u8>>, QueryError>;

    /// Counts one more run of backtest `id` and returns the count (1 for the first), clearing any progress.
    ///
    /// # Errors
    /// [`QueryError::Unavailable`].
    async fn begin_attempt(&self, id: &str) -> Result<u32, QueryError>;

    /// Records how far the run of `id` got.
    ///
    /// # Errors
    /// [`QueryError::Unavailable`].
    async fn set_progress(&self, id: &str, progress: BacktestProgress) -> Result<(), QueryError>;

    /// Stores the result of `id` (before `CompleteBacktest`; a second run overwrites it with the same result).
    ///
    /// # Errors
    /// [`QueryError::Unavailable`].
    async fn put_result(&self, id: &str, result: &Value) -> Result<(), QueryError>;

    /// The runner's record of `id` (`None` before its first run).
    ///
    /// # Errors
    /// [`QueryError::Unavailable`].
    async fn artifacts(&self, id: &str) -> Result<Option<BacktestArtifacts>, QueryError>;
}

/// What a finished backtest produced, as stored in `backtest_results.result` and shown by GET detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    pub rejected_orders: u64,
    pub max_drawdown_pct: Decimal,
    pub metrics: TraderMetrics,
    /// Every bar's equity and drawdown, thinned to at most [`crate::walk::MAX_SERIES_POINTS`] (first, last, evenly
    /// between: the rule of `GET …/pnl?max_points`).
    pub equity: Vec<EquityPoint>,
    /// The first [`MAX_RESULT_ROWS`] orders in run order, rejections with their reason code and reason.
    pub orders: Vec<OrderView>,
    pub orders_truncated: bool,
    /// The first [`MAX_RESULT_ROWS`] fills in run order.
    pub trades: Vec<TradeView>,
    pub trades_truncated: bool,
    /// For an `observations` source: the parity verdict against the paper agent (specs/06 §1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parity: Option<Parity>,
}

/// The report of a finished run (`starting_cash` is the config's): the series its recorder thinned as the bars went
/// (`Keep::Report`) or, from every point it kept, thinned here; the first [`MAX_RESULT_ROWS`] orders and trades, the
/// summary counting them all.
pub fn report(
    result: &BacktestResult,
    starting_cash: Decimal,
    parity: Option<Parity>,
) -> BacktestReport {
    let equity = result.series.clone().unwrap_or_else(|| {
        let points = &result.record.equity;
        let mut walk = SeriesWalk::new(points.len(), starting_cash);
        for p in points {
            walk.point(p);
        }
        walk.finish()
    });
    let rows = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    BacktestReport {
        rejected_orders: result.rejected_orders,
        max_drawdown_pct: result.max_drawdown_pct,
        metrics: result.metrics.clone().unwrap_or_default(),
        equity,
        orders: result
            .record
            .orders
            .iter()
            .take(MAX_RESULT_ROWS)
            .map(OrderView::from)
            .collect(),
        orders_truncated: rows(result.summary.orders) > MAX_RESULT_ROWS,
        trades: result
            .record
            .trades
            .iter()
            .take(MAX_RESULT_ROWS)
            .map(TradeView::from)
            .collect(),
        trades_truncated: rows(result.summary.fills) > MAX_RESULT_ROWS,
        parity,
    }
}

#[cfg(test)]
mod tests;
