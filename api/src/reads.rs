//! The read side as handlers see it: projector `agents` (strom-projections) running in this process, and its
//! [`AgentQueries`] over the same store (Postgres tables, or memory in embedded mode).

use std::sync::Arc;

use strom_commands::store::EventStore;
use strom_projections::{
    AgentQueries, AgentView, MemoryReadModel, PgReadModel, ProjectionSink, Projector, QueryError,
    AGENTS_PROJECTOR,
};

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::roles::Roles;

/// Query handle on the read models.
#[derive(Clone)]
pub struct Reads {
    queries: Arc<dyn AgentQueries>,
}

impl Reads {
    /// Opens the read models of `store` and starts their projector (following `store`'s log, woken by its commits)
    /// in `roles`.
    pub fn start(store: &EventStore, roles: &mut Roles) -> Self {
        let (queries, sink): (Arc<dyn AgentQueries>, Arc<dyn ProjectionSink>) = match store {
            EventStore::Postgres(store) => {
                let model = PgReadModel::new(store.pool().clone());
                (Arc::new(model.clone()), Arc::new(model))
            }
            EventStore::Memory(_) => {
                let model = MemoryReadModel::new();
                (Arc::new(model.clone()), Arc::new(model))
            }
        };
        let projector =
            Projector::new(AGENTS_PROJECTOR, store.log(), sink).woken_by(store.commits());
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
}

/// specs/03 §2: a bad limit or cursor is 400 `bad_request`; a failing store 503.
pub fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::InvalidLimit(_) | QueryError::BadCursor => ApiError::BadRequest(e.to_string()),
        QueryError::Unavailable(detail) => ApiError::Unavailable(detail),
    }
}
