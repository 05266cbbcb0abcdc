//! The read side of a `strom serve` process: the read models of the configured store (Postgres tables, or memory in
//! embedded mode), projector `agents` keeping them current as a role, and the query handle the API reads through.

use std::sync::Arc;

use strom_api::reads::Reads;
use strom_commands::store::EventStore;
use strom_projections::{
    AgentQueries, MemoryReadModel, PgReadModel, ProjectionSink, Projector, AGENTS_PROJECTOR,
};

use strom_projections::backtests::{
    BacktestStore, MemoryBacktests, PgBacktests, BACKTESTS_PROJECTOR,
};

use crate::roles::Roles;

/// Opens the read models of `store`, starts their projectors (`agents` and `backtests`, following `store`'s log, woken
/// by its commits) in `roles`, and returns the queries over them and the backtests store.
pub fn start(store: &EventStore, roles: &mut Roles) -> (Reads, Arc<dyn BacktestStore>) {
    let (backtests, backtests_sink): (Arc<dyn BacktestStore>, Arc<dyn ProjectionSink>) = match store
    {
        EventStore::Postgres(pg) => {
            let model = PgBacktests::new(pg.pool().clone());
            (Arc::new(model.clone()), Arc::new(model))
        }
        EventStore::Memory(_) => {
            let model = MemoryBacktests::new();
            (Arc::new(model.clone()), Arc::new(model))
        }
    };
    let projector =
        Projector::new(BACKTESTS_PROJECTOR, store.log(), backtests_sink).woken_by(store.commits());
    roles.spawn("projector:backtests", move |stop| async move {
        projector.run(stop.cancelled_owned()).await;
        Ok(())
    });
    let (queries, sink): (Arc<dyn AgentQueries>, Arc<dyn ProjectionSink>) = match store {
        EventStore::Postgres(pg) => {
            let model = PgReadModel::new(pg.pool().clone());
            (Arc::new(model.clone()), Arc::new(model))
        }
        EventStore::Memory(_) => {
            let model = MemoryReadModel::new();
            (Arc::new(model.clone()), Arc::new(model))
        }
    };
    let projector = Projector::new(AGENTS_PROJECTOR, store.log(), sink).woken_by(store.commits());
    let progress = projector.progress();
    roles.spawn("projector:agents", move |stop| async move {
        projector.run(stop.cancelled_owned()).await;
        Ok(())
    });
    (Reads::new(queries, progress), backtests)
}
