//! Startup check of the database schema. `strom serve` does not change the schema behind an operator's back: with
//! migrations pending it refuses to start and says to run `strom migrate` (or to pass `--migrate` /
//! `STROM_MIGRATE=true`, which applies them first — what tests and the single-process demo do). Running several
//! API processes against one database is then safe: none of them races to migrate it during a rolling start.

use std::collections::BTreeSet;

use anyhow::Context;
use sqlx::PgPool;
use strom_commands::store::{migrate, MIGRATOR};

/// Versions embedded in this binary that the database has not applied (successfully).
///
/// # Errors
/// The database cannot be queried.
pub async fn pending(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(versions) => versions,
            // 42P01 undefined_table: nothing was ever migrated here.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e).context("Failed to read the applied migrations"),
        };
    let applied: BTreeSet<i64> = applied.into_iter().collect();
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect())
}

/// Applies pending migrations when `apply`, otherwise fails if any are pending.
///
/// # Errors
/// Migrations are pending and `apply` is false, or applying them failed, or the database does not answer.
pub async fn ensure_current(pool: &PgPool, apply: bool) -> anyhow::Result<()> {
    if apply {
        migrate(pool)
            .await
            .context("Failed to apply the database migrations")?;
        return Ok(());
    }
    let pending = pending(pool)
        .await
        .context("Failed to check the database schema (is Postgres up at STROM_DATABASE_URL?)")?;
    anyhow::ensure!(
        pending.is_empty(),
        "the database has {} pending migration(s) ({}); run `strom migrate` first, or start with --migrate \
         (STROM_MIGRATE=true) to apply them at startup",
        pending.len(),
        pending
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
