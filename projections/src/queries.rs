//! The read side the API builds on: one agent, a page of agents, a page of an agent's runs. Postgres and memory
//! implement it over the same rows, with the same order and cursors.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use strom_domain::metrics::{ClosedTrade, EquityPoint};
use strom_domain::order::OrderStatus;
use strom_domain::AgentState;

use crate::ledger::{Book, OrderRow, PositionRow};
use crate::model::AgentRow;
use crate::page::{pnl_page_size, Page, QueryError, MAX_PNL_PAGE_SIZE};
use crate::trading::view::{OrderView, PnlPointView, TradeView};
use crate::view::{AgentView, RunView};

/// Which PnL points a listing returns (`GET /api/v1/agents/{id}/pnl`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PnlQuery {
    /// Points at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Points at or before this time.
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Thin the range evenly to at most this many points (first and last kept), in one response.
    pub max_points: Option<usize>,
}

/// How a validated [`PnlQuery`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PnlRead {
    /// A page of `limit` points.
    Page(usize),
    /// The whole range thinned to this many points.
    Thinned(usize),
}

impl PnlQuery {
    /// # Errors
    /// [`QueryError::InvalidPnlLimit`] for a limit out of range, [`QueryError::BadParameter`] for `from` after `to`
    /// or max_points out of range. With max_points, `limit` and `cursor` are ignored.
    pub(crate) fn read(&self) -> Result<PnlRead, QueryError> {
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(QueryError::BadParameter(format!(
                    "from ({}) is after to ({})",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                )));
            }
        }
        match self.max_points {
            None => Ok(PnlRead::Page(pnl_page_size(self.limit)?)),
            Some(n) if !(2..=MAX_PNL_PAGE_SIZE).contains(&n) => Err(QueryError::BadParameter(
                format!("max_points must be between 2 and {MAX_PNL_PAGE_SIZE} (got {n})"),
            )),
            Some(n) => Ok(PnlRead::Thinned(n)),
        }
    }
}

/// The indexes of `n` points kept when thinning to `max` (≥ 2): all of them when `n <= max`, else
/// `⌊g × (n − 1) / (max − 1)⌋` for g = 0..max (the first, the last, and evenly between). The Postgres query keeps the
/// same rows.
pub(crate) fn thinned(n: usize, max: usize) -> Thinned {
    Thinned { n, max, g: 0 }
}

/// The iterator of [`thinned`] (a named type, so a walk over points that come one at a time can hold it).
#[derive(Debug, Clone)]
pub(crate) struct Thinned {
    n: usize,
    max: usize,
    g: usize,
}

impl Iterator for Thinned {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let all = self.n <= self.max;
        if self.g >= if all { self.n } else { self.max } {
            return None;
        }
        let g = self.g;
        self.g += 1;
        Some(if all {
            g
        } else {
            g * (self.n - 1) / (self.max - 1)
        })
    }
}

/// Which agents a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Only this owner's agents (a non-admin caller's `sub`); `None` = everyone's (admin).
    pub owner: Option<String>,
    /// Only agents in this state (`?status=`).
    pub status: Option<AgentState>,
}

impl AgentFilter {
    /// Agents of `owner`.
    pub fn owned_by(owner: impl Into<String>) -> Self {
        Self {
            owner: Some(owner.into()),
            status: None,
        }
    }

    pub(crate) fn matches(&self, owner: &str, status: AgentState) -> bool {
        self.owner.as_deref().is_none_or(|o| o == owner) && self.status.is_none_or(|s| s == status)
    }
}

/// Reads of projector `agents`' tables.
#[async_trait]
pub trait AgentQueries: Send + Sync {
    /// The agent's row, or `None` if the projection has no such agent (yet). Ownership is the caller's check.
    ///
    /// # Errors
    /// [`QueryError::Unavailable`] when the store fails.
    async fn get_agent_row(&self, agent_id: &str) -> Result<Option<AgentRow>, QueryError>;

    /// The agent as the API shows it ([`AgentView`] of [`AgentQueries::get_agent_row`]).
    ///
    /// # Errors
    /// [`QueryError::Unavailable`] when the store fails.
    async fn get_agent(&self, agent_id: &str) -> Result<Option<AgentView>, QueryError> {
        Ok(self.get_agent_row(agent_id).await?.map(AgentView::from))
    }

    /// Agents matching `filter`, newest first (created_at desc, agent_id desc). `limit` defaults to
    /// [`DEFAULT_PAGE_SIZE`](crate::page::DEFAULT_PAGE_SIZE).
    ///
    /// # Errors
    /// [`QueryError::InvalidLimit`], [`QueryError::BadCursor`], [`QueryError::Unavailable`].
    async fn list_agents(
        &self,
        filter: &AgentFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<AgentView>, QueryError>;

    /// The agent's runs, newest first (session desc, tick_no desc). Empty for an unknown agent (check existence
    /// with [`AgentQueries::get_agent`]).
    ///
    /// # Errors
    /// [`QueryError::InvalidLimit`], [`QueryError::BadCursor`], [`QueryError::Unavailable`].
    async fn list_runs(
        &self,
        agent_id: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<RunView>, QueryError>;

    /// One order (ownership is the caller's check, by its `owner`).
    ///
    /// # Errors
    /// [`QueryError::Unavailable`] when the store fails.
    async fn get_order(&self, order_id: &str) -> Result<Option<OrderRow>, QueryError>;

    /// The agent's orders (only those in `status`, if given), newest first (created_at desc, order_id desc).
    ///
    /// # Errors
    /// [`QueryError::InvalidLimit`], [`QueryError::BadCursor`], [`QueryError::Unavailable`].
    async fn list_orders(
        &self,
        agent_id: &str,
        status: Option<OrderStatus>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<OrderView>, QueryError>;

    /// The agent's fills, newest first (filled_at desc, trade_id desc).
    ///
    /// # Errors
    /// [`QueryError::InvalidLimit`], [`QueryError::BadCursor`], [`QueryError::Unavailable`].
    async fn list_trades(
        &self,
        agent_id: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<TradeView>, QueryError>;

    /// The agent's `positions` row (its position, cash and summary figures); `None` for an unknown agent.
    ///
    /// # Errors
    /// [`QueryError::Unavailable`] when the store fails.
    async fn get_position(&self, agent_id: &str) -> Result<Option<PositionRow>, QueryError>;

    /// The agent's trading fold state (its `positions` row and open order), for a caller that folds the agent's
    /// next events itself (the SSE stream); `None` for an unknown agent.
    ///
    /// # Errors
    /// [`QueryError::Unavailable`] when the store fails.
    async fn get_book(&self, agent_id: &str) -> Result<Option<Book>, QueryError>;

    /// What the agent's trader metrics are computed from (specs/06 §8): every PnL point as an equity point, oldest
    /// first, and every closing (sell) fill as a closed trade worth its realized PnL less its fee, oldest first.
    /// Linear in the agent's runs (the summary reads them whole).
    ///
    /// # Errors
    /// [`QueryError::Unavailable`] when the store fails.
    async fn metrics_series(
        &self,
        agent_id: &str,
    ) -> Result<(Vec<EquityPoint>, Vec<ClosedTrade>), QueryError>;

    /// The agent's PnL points, oldest first (session, tick_no), as `query` asks.
    ///
    /// # Errors
    /// [`QueryError::InvalidPnlLimit`], [`QueryError::BadParameter`], [`QueryError::BadCursor`],
    /// [`QueryError::Unavailable`].
    async fn list_pnl(
        &self,
        agent_id: &str,
        query: &PnlQuery,
    ) -> Result<Page<PnlPointView>, QueryError>;
}
