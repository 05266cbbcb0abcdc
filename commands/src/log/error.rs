//! What can go wrong reading or writing the event log: one error type for the log port, the event stores, checkpoints,
//! migrations and chain verification.

use strom_domain::DecodeError;

/// What went wrong reading the global log, appending, saving a checkpoint, migrating or verifying chains.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres refused or failed a query.
    #[error("event store query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("event store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL or schema name could not be turned into connection options.
    #[error("invalid event store connection settings: {0}")]
    InvalidConnection(String),
    /// A row held a value no valid event store row can hold (e.g. a negative sequence).
    #[error("event store row is malformed: {column} = {value}")]
    MalformedRow {
        /// The column holding the bad value.
        column: &'static str,
        /// The value as text.
        value: String,
    },
    /// A stored event this code cannot read (unknown type or version, malformed payload or metadata). Never skipped:
    /// readers stop on it and name it.
    #[error("{aggregate_type}/{aggregate_id} sequence {sequence}: {source}")]
    Undecodable {
        aggregate_type: String,
        aggregate_id: String,
        sequence: u64,
        #[source]
        source: DecodeError,
    },
    /// An append skipped a sequence number (the Postgres trigger refuses the same).
    #[error("{aggregate_type} {aggregate_id} sequence {sequence} has no previous event")]
    MissingPrevious {
        aggregate_type: &'static str,
        aggregate_id: String,
        sequence: u64,
    },
    /// postgres-es failed to read or append (connection lost, an unexpected database error).
    #[error("event store failed: {0}")]
    Repository(#[from] cqrs_es::persist::PersistenceError),
    /// A snapshot could not be written or read back as its aggregate's state.
    #[error("{aggregate_type} {aggregate_id}: snapshot unusable: {reason}")]
    Snapshot {
        aggregate_type: &'static str,
        aggregate_id: String,
        reason: String,
    },
}
