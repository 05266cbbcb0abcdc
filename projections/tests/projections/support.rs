//! Test support: a throwaway Postgres schema per test, and the scenario events read back from a store.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use strom_commands::store::{
    migrate, pg_connect_options, EventLog, LogPosition, LoggedEvent, MAX_LOG_PAGE,
};

/// Connections per test pool: a projector, a rebuild and queries at once, far below the server's limit.
const TEST_POOL_CONNECTIONS: u32 = 4;

/// How long a test waits for the log watermark to pass its events (other sessions on the shared server may hold
/// a write transaction open for a moment).
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);

pub fn database_url() -> String {
    std::env::var("STROM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh schema with the migrations applied; dropped (with its connections) when the guard drops.
pub struct TestDb {
    pub pool: PgPool,
    pub schema: String,
    url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let url = database_url();
        let schema = format!("p_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&url)
            .await
            .expect("connect to the test database (STROM_TEST_DATABASE_URL)");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create test schema");
        admin.close().await.ok();
        let db = Self {
            pool: PgPoolOptions::new()
                .max_connections(TEST_POOL_CONNECTIONS)
                .connect_lazy_with(Self::options(&url, &schema)),
            schema,
            url,
        };
        migrate(&db.pool).await.expect("migrate test schema");
        db
    }

    fn options(url: &str, schema: &str) -> PgConnectOptions {
        pg_connect_options(url, Some(schema))
            .expect("test connection options")
            .application_name(schema)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&url).await?;
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut admin)
                .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("failed to drop test schema {}: {e}", self.schema);
        }
    }
}

/// Reads the whole log, waiting (bounded) until at least `expected` events are visible.
pub async fn read_all(log: &dyn EventLog, expected: usize) -> Vec<LoggedEvent> {
    let started = Instant::now();
    loop {
        let mut events = Vec::new();
        let mut position = LogPosition::START;
        loop {
            let page = log
                .read_after(position, MAX_LOG_PAGE)
                .await
                .expect("read log");
            let Some(last) = page.last() else { break };
            position = last.position;
            events.extend(page);
        }
        if events.len() >= expected {
            return events;
        }
        assert!(
            started.elapsed() < CATCH_UP_DEADLINE,
            "log stuck at {} of {expected}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
