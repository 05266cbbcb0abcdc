//! What a database has applied of the embedded migrations ([`MIGRATOR`]): the one reader of `_sqlx_migrations`.
//! `strom serve` checks [`pending_migrations`] at startup (or applies them with `--migrate`), and `strom migrate`
//! reports what [`apply_migrations`] applied.

use std::collections::BTreeSet;

use sqlx::migrate::Migration;
use sqlx::PgPool;

use super::postgres::{migrate, MIGRATOR};
use super::StoreError;

/// Why the migration state could not be read or brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// `_sqlx_migrations` exists but could not be read.
    #[error("Failed to read the applied migrations")]
    ReadApplied(#[source] sqlx::Error),
    /// Applying the pending migrations failed.
    #[error(transparent)]
    Apply(#[from] StoreError),
}

/// The embedded migrations that `pool`'s database (schema: first on the search_path) has not applied successfully,
/// in version order. All of them when nothing was ever migrated there.
///
/// # Errors
/// The database does not answer or `_sqlx_migrations` cannot be read.
pub async fn pending_migrations(pool: &PgPool) -> Result<Vec<&'static Migration>, MigrationError> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(versions) => versions,
            // 42P01 undefined_table: nothing was ever migrated here.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(MigrationError::ReadApplied(e)),
        };
    let applied: BTreeSet<i64> = applied.into_iter().collect();
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .collect())
}

/// Applies the pending migrations and returns those it applied (none: the schema was up to date).
///
/// # Errors
/// The applied migrations cannot be read, a migration failed, or one already applied was changed since.
pub async fn apply_migrations(pool: &PgPool) -> Result<Vec<&'static Migration>, MigrationError> {
    let pending = pending_migrations(pool).await?;
    migrate(pool).await?;
    Ok(pending)
}

/// A migration as `strom migrate` names it: its file name without the extension, e.g. `0001_event_store`.
pub fn migration_name(migration: &Migration) -> String {
    format!(
        "{:04}_{}",
        migration.version,
        migration.description.replace(' ', "_")
    )
}
