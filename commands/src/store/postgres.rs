//! Postgres settings: connection options with the schema as search_path, and the embedded migrations.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use super::StoreError;

/// The migrations in `migrations/`, embedded at compile time so the `strom` binary needs no files to migrate.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Applies the embedded migrations that `pool`'s database (schema: first on the search_path) has not applied yet.
/// Safe to run any number of times: sqlx records applied migrations in `_sqlx_migrations`.
///
/// # Errors
/// A migration failed, or one already applied was changed since (checksum mismatch).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Connection options for `url`, with `schema` (if any) as the only search_path entry, so postgres-es's and our
/// unqualified table names resolve there (`STROM_DATABASE_SCHEMA`; tests use one schema each).
///
/// # Errors
/// `url` is not a Postgres URL, or `schema` is not a plain lower-case identifier.
pub fn pg_connect_options(url: &str, schema: Option<&str>) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidConnection(format!("database URL: {e}")))?;
    let Some(schema) = schema else {
        return Ok(options);
    };
    // The value goes into the startup packet's `-c search_path=...` unescaped, so accept only names that need no
    // quoting (Postgres's identifier limit is 63 bytes).
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !plain {
        return Err(StoreError::InvalidConnection(format!(
            "schema {schema:?} must be 1..=63 of [a-z0-9_], not starting with a digit"
        )));
    }
    // Sessions are named after their schema (`application_name`): `pg_stat_activity` then shows which schema each
    // serves, and whoever drops a schema (the test guards) can end exactly its sessions first, including one a
    // stopped process left idle in a transaction.
    Ok(options
        .options([("search_path", schema)])
        .application_name(schema))
}
