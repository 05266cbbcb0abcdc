//! `strom migrate`: apply the embedded migrations the database lacks (creating the schema first if one is named)
//! and print which ones it applied, or `up to date`.

use anyhow::Context;
use strom_commands::store::{apply_migrations, migration_name, pg_connect_options};

use super::database::DatabaseArgs;

/// Migrates the configured database.
///
/// # Errors
/// No database URL, an invalid schema name, an unreachable database, or a failed migration.
pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<()> {
    if let Some(schema) = &args.database_schema {
        create_schema(&args, schema).await?;
    }
    let pool = args.connect("migrate", 1).await?;
    let applied = apply_migrations(&pool)
        .await
        .context("Failed to apply the migrations")?;
    pool.close().await;
    if applied.is_empty() {
        println!("up to date");
    } else {
        let names: Vec<String> = applied.into_iter().map(migration_name).collect();
        println!("applied {}", names.join(", "));
    }
    Ok(())
}

async fn create_schema(args: &DatabaseArgs, schema: &str) -> anyhow::Result<()> {
    // Validate the name before it goes into SQL (pg_connect_options refuses anything needing quotes).
    pg_connect_options("postgres://localhost", Some(schema))
        .context("Invalid STROM_DATABASE_SCHEMA")?;
    let pool = DatabaseArgs {
        database_url: args.database_url.clone(),
        database_schema: None,
    }
    .connect("migrate", 1)
    .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&pool)
        .await
        .with_context(|| format!("Failed to create schema {schema}"))?;
    pool.close().await;
    Ok(())
}
