//! The read side the API builds on: one agent, a page of agents, a page of an agent's runs. Postgres and memory
//! implement it over the same rows, with the same order and cursors.

use async_trait::async_trait;
use strom_domain::AgentState;

use crate::model::AgentRow;
use crate::page::{Page, QueryError};
use crate::view::{AgentView, RunView};

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
}
