//! The read side as handlers see it: [`AgentQueries`] (strom-projections) over the read models of this process's
//! store (Postgres tables, or memory in embedded mode). The projector that keeps them current is started by the
//! `strom` binary, not here.

use std::sync::Arc;
use std::time::Duration;

use strom_projections::{wait_for_agent_version, AgentQueries, AgentView, QueryError};

use crate::auth::Caller;
use crate::problem::ApiError;

/// How long a command response waits for the read model to hold the agent it needs history fields from
/// (created_at, runs). The in-process projector takes one idle poll (100 ms) at most; the rest is slack.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// Query handle on the read models.
#[derive(Clone)]
pub struct Reads {
    queries: Arc<dyn AgentQueries>,
}

impl Reads {
    /// Reads through `queries`.
    pub fn new(queries: Arc<dyn AgentQueries>) -> Self {
        Self { queries }
    }

    pub fn queries(&self) -> &dyn AgentQueries {
        self.queries.as_ref()
    }

    /// The agent if the caller may see it; 404 `agent_not_found` otherwise (also for another user's).
    ///
    /// # Errors
    /// 404, or 503 when the read model fails.
    pub async fn visible_agent(&self, caller: &Caller, id: &str) -> Result<AgentView, ApiError> {
        let agent = self.queries.get_agent(id).await.map_err(query_error)?;
        agent
            .filter(|a| a.owner == caller.sub || caller.is_admin())
            .ok_or_else(agent_not_found)
    }

    /// The projected agent at `min_version` or later, waiting at most [`READ_YOUR_WRITES_WAIT`]; whatever the
    /// projection has then.
    ///
    /// # Errors
    /// 503 when the read model fails.
    pub async fn agent_at(
        &self,
        id: &str,
        min_version: u64,
    ) -> Result<Option<AgentView>, ApiError> {
        wait_for_agent_version(
            self.queries.as_ref(),
            id,
            min_version,
            READ_YOUR_WRITES_WAIT,
        )
        .await
        .map_err(query_error)
    }
}

/// 404 `agent_not_found`: the answer for a missing agent and for another user's alike (specs/05 §4).
pub fn agent_not_found() -> ApiError {
    ApiError::Missing {
        code: "agent_not_found",
        detail: "no such agent".into(),
    }
}

/// specs/03 §2: a bad limit or cursor is 400 `bad_request`; a failing store 503.
pub fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::InvalidLimit(_) | QueryError::BadCursor => ApiError::BadRequest(e.to_string()),
        QueryError::Unavailable(detail) => ApiError::Unavailable(detail),
    }
}
