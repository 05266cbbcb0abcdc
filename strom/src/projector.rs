//! The read side of a `strom serve` process: the read models of the configured store (Postgres tables, or memory in
//! embedded mode), projector `agents` keeping them current as a role, and the query handle the API reads through.

use std::sync::Arc;

use strom_api::reads::Reads;
use strom_commands::service::EventStoreBackend;
use strom_commands::store::EventLog;
use strom_projections::{
    AgentQueries, LogBacklog, MemoryReadModel, PgReadModel, ProjectionSink, Projector,
    AGENTS_PROJECTOR,
};

use crate::roles::Roles;

/// Opens the read models of `backend`, starts their projector (reading `log`) in `roles`, and returns the queries
/// over them.
pub fn start(backend: &EventStoreBackend, log: Arc<dyn EventLog>, roles: &mut Roles) -> Reads {
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
    Reads::new(queries)
}
