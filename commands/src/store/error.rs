//! Errors of the log reader, checkpoint stores, migrations and chain verification.

/// What went wrong reading the global log, saving a checkpoint, migrating or verifying chains.
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
}
