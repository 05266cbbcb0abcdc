//! Runs migrations/*.sql against a fresh Postgres schema and lists the tables they create.
//!
//! Postgres comes from `STROM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`). Each call uses
//! its own schema (`strom_tests::db::TestDb`), dropped even when the test panics.

use std::collections::BTreeSet;
use std::path::Path;

use strom_tests::db::TestDb;

/// Creates a fresh schema, runs every migration in file-name order with sqlx's migrator, and returns the names of
/// the tables in that schema.
pub async fn tables_after_migrations() -> BTreeSet<String> {
    // Migrated here, from the files, not by the guard: this checks migrations/ itself.
    let db = TestDb::builder("spec")
        .connections(1)
        .without_migrations()
        .build()
        .await;
    let (pool, schema) = (&db.pool, &db.schema);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let migrator = sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .unwrap_or_else(|e| panic!("cannot read migrations in {}: {e}", dir.display()));
    if let Err(e) = migrator.run(pool).await {
        panic!("migrations/ do not apply to an empty schema: {e}");
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("list tables");
    tables.into_iter().collect()
}
