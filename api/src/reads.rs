//! The read side as handlers see it: [`AgentQueries`] (strom-projections) over the read models of this process's
//! store (Postgres tables, or memory in embedded mode). The projector that keeps them current is started by the
//! `strom` binary, not here.

use std::sync::Arc;

use strom_projections::{AgentQueries, AgentView, QueryError};

use crate::auth::Caller;
use crate::problem::ApiError;

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
