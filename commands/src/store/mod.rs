//! The event store: cqrs-es wiring over Postgres (postgres-es) or memory, the global log both expose to readers,
//! checkpoints, bounded command retry and hash-chain verification.
//!
//! Postgres is the system of record; [`MemoryEventRepository`] is the same port for embedded mode, backtests and
//! tests, held to the same conformance tests. The log order is (tx_id, global_position) below the xmin watermark:
//! see [`EventLog`].

mod error;
mod log;
mod memory;
mod migrations;
mod postgres;
mod retry;
mod verify;

pub use error::StoreError;
pub use log::{CheckpointStore, EventLog, LogPosition, LoggedEvent, MAX_LOG_PAGE};
pub use memory::{
    memory_cqrs, Clock, MemoryCheckpointStore, MemoryCqrs, MemoryEventRepository, MemoryEventStore,
    MemoryStoreError,
};
pub use migrations::{apply_migrations, migration_name, pending_migrations, MigrationError};
pub use postgres::{
    migrate, pg_connect_options, pg_cqrs, PgCheckpointStore, PgCqrs, PgEventLog, PgEventStore,
    MIGRATOR,
};
pub use retry::{execute_with_retry, CommandError, MAX_COMMAND_ATTEMPTS};
pub use verify::{
    verify_chains, verify_chains_with_progress, AggregateKey, ChainKey, ChainProblem, ChainReport,
    ChainRow, ChainSource, ChainVerifier, MAX_REPORTED_PROBLEMS, REORDER_SEARCH_WINDOW,
    VERIFY_PAGE,
};

/// The chain functions the store uses (one definition, in the pure core).
pub use strom_domain::canonical::{chain_hash_text, jsonb_text, GENESIS_HASH};
