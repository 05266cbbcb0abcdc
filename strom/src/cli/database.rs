//! The database flags of `strom migrate` and `strom relay`, and their connection: a direct probe first, so that a
//! wrong URL or a server that is down fails at once with the real reason.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use strom_commands::store::pg_connect_options;

/// How long `strom migrate` / `strom relay` wait for a database connection before saying it is unreachable: long
/// enough for a Postgres that is still starting (compose), short enough that a wrong URL fails visibly.
const DATABASE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct DatabaseArgs {
    /// Postgres URL to migrate.
    #[arg(long, env = "STROM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema to migrate (created if missing); default: the connection's search_path.
    #[arg(long, env = "STROM_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

impl DatabaseArgs {
    /// A small pool on the configured database and schema.
    ///
    /// # Errors
    /// No URL is configured, the settings are invalid, or the database does not accept a connection.
    pub async fn connect(&self, command: &str, connections: u32) -> anyhow::Result<PgPool> {
        let Some(url) = &self.database_url else {
            anyhow::bail!(
                "strom {command} needs a database: set STROM_DATABASE_URL (or --database-url), e.g. \
                 postgres://postgres@127.0.0.1:5432/strom"
            );
        };
        let options = pg_connect_options(url, self.database_schema.as_deref())
            .context("Invalid STROM_DATABASE_URL / STROM_DATABASE_SCHEMA")?;
        let unreachable = || {
            format!(
                "Failed to connect to the database at {} (is Postgres running and the URL right?)",
                redact_url(url)
            )
        };
        // One direct connection first: it fails at once with the real reason (refused, auth, unknown database),
        // where a pool would retry until its timeout and report only that.
        let probe = tokio::time::timeout(
            DATABASE_CONNECT_TIMEOUT,
            PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {DATABASE_CONNECT_TIMEOUT:?}"))
        .and_then(|connected| connected.map_err(|e| anyhow::anyhow!("{e}")))
        .with_context(unreachable)?;
        probe.close().await.ok();
        Ok(PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(DATABASE_CONNECT_TIMEOUT)
            .connect_lazy_with(options))
    }
}

/// `url` without its password, for error messages.
fn redact_url(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (credentials, host) = rest.rsplit_once('@')?;
        let user = credentials.split(':').next().unwrap_or_default();
        Some(format!("{scheme}://{user}@{host}"))
    }) {
        Some(redacted) => redacted,
        None => url.to_owned(),
    }
}
