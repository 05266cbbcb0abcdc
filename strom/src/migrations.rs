//! Startup check of the database schema. `strom serve` does not change the schema behind an operator's back: with
//! migrations pending it refuses to start and says to run `strom migrate` (or to pass `--migrate` /
//! `STROM_MIGRATE=true`, which applies them first — what tests and the single-process demo do). Running several
//! API processes against one database is then safe: none of them races to migrate it during a rolling start.

use anyhow::Context;
use sqlx::PgPool;
use strom_commands::store::{apply_migrations, pending_migrations};

/// Applies pending migrations when `apply`, otherwise fails if any are pending.
///
/// # Errors
/// Migrations are pending and `apply` is false, or applying them failed, or the database does not answer.
pub async fn ensure_current(pool: &PgPool, apply: bool) -> anyhow::Result<()> {
    if apply {
        apply_migrations(pool)
            .await
            .context("Failed to apply the database migrations")?;
        return Ok(());
    }
    let pending = pending_migrations(pool)
        .await
        .context("Failed to check the database schema (is Postgres up at STROM_DATABASE_URL?)")?;
    anyhow::ensure!(
        pending.is_empty(),
        "the database has {} pending migration(s) ({}); run `strom migrate` first, or start with --migrate \
         (STROM_MIGRATE=true) to apply them at startup",
        pending.len(),
        pending
            .iter()
            .map(|m| m.version.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
