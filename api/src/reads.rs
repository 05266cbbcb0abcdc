//! The read side as handlers see it: projector `agents` (strom-projections) running in this process, and its
//! [`AgentQueries`] over the same store (Postgres tables, or memory in embedded mode).

use std::sync::Arc;
use std::time::Duration;

use strom_commands::service::EventStoreBackend;
use strom_commands::store::EventLog;
use strom_projections::{
    wait_for_agent_version, AgentQueries, AgentView, LogBacklog, MemoryReadModel, PgReadModel,
    ProjectionSink, Projector, QueryError, AGENTS_PROJECTOR,
};

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::roles::Roles;

/// How long a command response waits for the read model to hold the agent it needs history fields from
/// (created_at, runs). The in-process projector takes one idle poll (100 ms) at most; the rest is slack.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// Query handle on the read models.
#[derive(Clone)]
pub struct Reads {
    queries: Arc<dyn AgentQueries>,
}

impl Reads {
    /// Opens the read models of `backend` and starts their projector (reading `log`) in `roles`.
    pub fn start(backend: &EventStoreBackend, log: Arc<dyn EventLog>, roles: &mut Roles) -> Self {
        let (queries, sink, backlog): (
            Arc<dyn AgentQueries>,
            Arc<dyn ProjectionSink>,
            Arc<dyn LogBacklog>,
        ) = match backend {
            EventStoreBackend::Postgres(pool) => {
                let model = PgReadModel::new(pool.clone());
                (
                    Arc::new(model.clone()),
                    Arc::new(model),
                    Arc::new(pool.clone()),
                )
            }
            EventStoreBackend::Memory(repo) => {
                let model = MemoryReadModel::new();
                (
                    Arc::new(model.clone()),
                    Arc::new(model),
                    Arc::new(repo.clone()),
                )
            }
        };
        let projector = Projector::new(AGENTS_PROJECTOR, log, backlog, sink);
        roles.spawn("projector:agents", move |stop| async move {
            projector.run(stop.cancelled_owned()).await;
            Ok(())
        });
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
            .ok_or_else(crate::routes::agents::not_found)
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

/// specs/03 §2: a bad limit or cursor is 400 `bad_request`; a failing store 503.
pub fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::InvalidLimit(_) | QueryError::BadCursor => ApiError::BadRequest(e.to_string()),
        QueryError::Unavailable(detail) => ApiError::Unavailable(detail),
    }
}
