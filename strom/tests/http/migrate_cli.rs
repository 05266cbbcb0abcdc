//! `strom migrate` (and `strom relay`) as a process: applies the migrations to a fresh schema once, then reports it is
//! up to date, and fails clearly (non-zero exit) without a URL or with an unreachable database.

use std::process::{Command, Output};

use sqlx::{Connection, PgConnection};

fn database_url() -> String {
    std::env::var("STROM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn migrate(url: Option<&str>, schema: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
    command
        .arg("migrate")
        .env_remove("STROM_DATABASE_URL")
        .env("STROM_DATABASE_SCHEMA", schema)
        .env("STROM_LOG", "warn");
    if let Some(url) = url {
        command.env("STROM_DATABASE_URL", url);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Drops the schema when the test ends, also on panic.
struct SchemaGuard(String);

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut admin = PgConnection::connect(&database_url()).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
    }
}

#[test]
fn migrate_applies_everything_once_then_is_up_to_date() {
    let guard = SchemaGuard(format!("m_{}", uuid::Uuid::new_v4().simple()));
    let url = database_url();

    let first = migrate(Some(&url), &guard.0);
    assert!(first.status.success(), "{}", stderr(&first));
    let every_migration: Vec<String> = strom_commands::store::MIGRATOR
        .iter()
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect();
    assert_eq!(
        stdout(&first),
        format!("applied {}", every_migration.join(", "))
    );
    assert!(stdout(&first).starts_with("applied 0001_event_store, 0002_read_models"));

    let second = migrate(Some(&url), &guard.0);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&second), "up to date");

    let tables: Vec<String> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            )
            .bind(&guard.0)
            .fetch_all(&mut conn)
            .await
            .unwrap()
        });
    for needed in ["_sqlx_migrations", "checkpoints", "events", "agents"] {
        assert!(tables.iter().any(|t| t == needed), "{needed}: {tables:?}");
    }
}

#[test]
fn migrate_without_a_database_url_says_which_variable_to_set() {
    let out = migrate(None, "unused");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("STROM_DATABASE_URL"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn migrate_against_an_unreachable_database_fails_with_the_reason() {
    // Port 1 on loopback has no Postgres; the password must not be echoed.
    let out = migrate(
        Some("postgres://postgres:s3cret@127.0.0.1:1/none"),
        "unused",
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Failed to connect to the database at postgres://postgres@127.0.0.1:1/none"),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn relay_without_a_nats_url_says_which_variable_to_set() {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .arg("relay")
        .env_remove("STROM_NATS_URL")
        .env("STROM_DATABASE_URL", database_url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("STROM_NATS_URL"), "{}", stderr(&out));
}
