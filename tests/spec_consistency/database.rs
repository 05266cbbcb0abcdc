//! Runs migrations/*.sql against a fresh Postgres schema and lists the tables they create.
//!
//! Postgres comes from `STROM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`). Each call uses
//! its own schema named from a UUID; a guard drops it even when the test panics.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn database_url() -> String {
    std::env::var("STROM_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Drops the schema when dropped. Runs on its own thread and runtime so it also works while a test unwinds.
struct SchemaGuard {
    url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .execute(&mut conn)
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test schema {}", self.schema);
        }
    }
}

/// Creates a fresh schema, runs every migration in file-name order with sqlx's migrator, and returns the names of
/// the tables in that schema.
pub async fn tables_after_migrations() -> BTreeSet<String> {
    let url = database_url();
    let schema = format!("spec_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!("cannot connect to Postgres at {url} (set STROM_TEST_DATABASE_URL): {e}")
    });
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut admin)
        .await
        .expect("create test schema");
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };

    let options = PgConnectOptions::from_str(&url)
        .expect("valid database URL")
        .options([("search_path", &schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect to test schema");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let migrator = sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .unwrap_or_else(|e| panic!("cannot read migrations in {}: {e}", dir.display()));
    if let Err(e) = migrator.run(&pool).await {
        panic!("migrations/ do not apply to an empty schema: {e}");
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .expect("list tables");
    pool.close().await;
    tables.into_iter().collect()
}
