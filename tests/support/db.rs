//! A throwaway Postgres schema per test (or bench phase): created with the migrations applied (unless asked not
//! to), reached through a pool whose sessions have `search_path` set to it, and dropped with everything in it (and
//! its open sessions ended) when the guard drops, also when the test panics or setup fails half-way.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use strom_commands::store::{migrate, pg_connect_options};

/// Connections per test pool unless [`TestDbBuilder::connections`] says otherwise: a projector, a rebuild and
/// queries at once, far below the server's connection limit shared with parallel tests and other users.
pub const DEFAULT_CONNECTIONS: u32 = 4;

/// A schema owned by one test; dropped (with its connections) when the guard drops.
pub struct TestDb {
    pub pool: PgPool,
    pub schema: String,
    url: String,
}

/// How to make a [`TestDb`]: database URL, pool size, acquire timeout, migrations or not.
#[must_use]
pub struct TestDbBuilder {
    tag: String,
    url: String,
    connections: u32,
    acquire_timeout: Option<Duration>,
    migrate: bool,
}

impl TestDb {
    /// A migrated schema named `<tag>_<uuid>` on [`crate::database_url`], with the default pool.
    ///
    /// # Panics
    /// Postgres does not answer or the migrations fail (the schema is dropped again first).
    pub async fn new(tag: &str) -> Self {
        Self::builder(tag).build().await
    }

    pub fn builder(tag: &str) -> TestDbBuilder {
        TestDbBuilder {
            tag: tag.to_owned(),
            url: crate::database_url(),
            connections: DEFAULT_CONNECTIONS,
            acquire_timeout: None,
            migrate: true,
        }
    }

    /// Options for a session in this schema; `pg_connect_options` names it after the schema (`application_name`), so
    /// the guard can end exactly its sessions — the test's and those of any `strom` it started on the schema.
    ///
    /// # Panics
    /// The database URL does not parse (it did when the guard was made).
    pub fn connect_options(&self) -> PgConnectOptions {
        Self::options(&self.url, &self.schema).expect("test connection options")
    }

    fn options(url: &str, schema: &str) -> anyhow::Result<PgConnectOptions> {
        pg_connect_options(url, Some(schema)).context("test connection options")
    }

    /// A connection outside the pool, in the same schema.
    ///
    /// # Panics
    /// Postgres does not answer.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect_with(&self.connect_options())
            .await
            .expect("connect to the test schema")
    }

    /// The database URL the schema lives in.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl TestDbBuilder {
    /// Another database than `STROM_TEST_DATABASE_URL` (benches).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Pool size (default [`DEFAULT_CONNECTIONS`]).
    pub fn connections(mut self, connections: u32) -> Self {
        self.connections = connections;
        self
    }

    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// An empty schema, for a server or command that migrates it itself.
    pub fn without_migrations(mut self) -> Self {
        self.migrate = false;
        self
    }

    /// Creates (and migrates) the schema.
    ///
    /// # Errors
    /// Postgres does not answer, or the migrations fail; the schema is dropped again before this returns.
    pub async fn try_build(self) -> anyhow::Result<TestDb> {
        let schema = format!("{}_{}", self.tag, uuid::Uuid::new_v4().simple());
        let options = TestDb::options(&self.url, &schema)?;
        let mut pool = PgPoolOptions::new().max_connections(self.connections);
        if let Some(timeout) = self.acquire_timeout {
            pool = pool.acquire_timeout(timeout);
        }
        // The guard exists before anything can fail: from here on, an error or a panic drops the schema.
        let db = TestDb {
            pool: pool.connect_lazy_with(options),
            schema,
            url: self.url,
        };
        let mut admin = PgConnection::connect(&db.url)
            .await
            .with_context(|| format!("connect to the test database {}", db.url))?;
        sqlx::query(&format!("CREATE SCHEMA \"{}\"", db.schema))
            .execute(&mut admin)
            .await
            .context("create test schema")?;
        admin.close().await.ok();
        if self.migrate {
            migrate(&db.pool).await.context("migrate test schema")?;
        }
        Ok(db)
    }

    /// [`Self::try_build`], panicking on an error.
    ///
    /// # Panics
    /// Postgres does not answer (`STROM_TEST_DATABASE_URL`), or the migrations fail.
    pub async fn build(self) -> TestDb {
        self.try_build()
            .await
            .unwrap_or_else(|e| panic!("test database (STROM_TEST_DATABASE_URL): {e:#}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime (possibly while unwinding), so clean up on a thread and runtime of
        // our own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&url).await?;
                // End this schema's own sessions (an open transaction would block the DROP).
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut admin)
                .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test schema {}: {e:#}", self.schema),
            Err(_) => eprintln!("warning: could not drop test schema {}", self.schema),
        }
    }
}
