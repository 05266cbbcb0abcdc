//! `strom replay` as a process against a real Postgres schema (one per test): verify passes on an intact store
//! and names each tampered event or read-model row (exit status 1); rebuild is equal to the live projection;
//! export then offline replay gives the live read models; a missing database URL is a clear error.

use std::path::Path;
use std::process::{Command, Output};

use sqlx::PgPool;
use strom_commands::log::PgEventLog;
use strom_commands::service::AggregateService;
use strom_commands::store::EventStore;
use strom_domain::Agent;
use strom_projections::replay::file::read_expected;
use strom_projections::{PgReadModel, Projector, AGENTS_PROJECTOR};
use strom_tests::db::TestDb;
use strom_tests::scenario::{self, TWO_AGENTS_IDS};

/// A schema with the two-agents scenario recorded and projected; dropped with the guard.
struct Store {
    pool: PgPool,
    db: TestDb,
}

impl Store {
    async fn new() -> Self {
        let db = TestDb::builder("r").connections(2).build().await;
        let pool = db.pool.clone();
        let agents = AggregateService::<Agent>::new(EventStore::postgres(pool.clone()));
        scenario::two_agents(&agents).await.unwrap();
        let projector = Projector::new(
            AGENTS_PROJECTOR,
            std::sync::Arc::new(PgEventLog::new(pool.clone())),
            std::sync::Arc::new(PgReadModel::new(pool.clone())),
        );
        // Other sessions' open transactions can hold the log back for a moment: wait (bounded) for all of it.
        for _ in 0..3000 {
            projector.catch_up().await.unwrap();
            let runs: i64 = sqlx::query_scalar("SELECT runs_count FROM agents WHERE agent_id = $1")
                .bind(TWO_AGENTS_IDS[1])
                .fetch_optional(&pool)
                .await
                .unwrap()
                .unwrap_or(0);
            let archived: bool =
                sqlx::query_scalar("SELECT count(*) = 1 FROM agents WHERE status = 'archived'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            if runs == 3 && archived {
                return Self { pool, db };
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the projector never caught up with the scenario");
    }

    fn replay(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strom"))
            .arg("replay")
            .args(args)
            .env("STROM_DATABASE_URL", self.db.url())
            .env("STROM_DATABASE_SCHEMA", &self.db.schema)
            .env("STROM_LOG", "warn")
            .output()
            .unwrap()
    }

    /// How many events the log holds.
    async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The sequence of `aggregate_id`'s first event of type `event_type`.
    async fn sequence_of(&self, aggregate_id: &str, event_type: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT min(sequence) FROM events WHERE aggregate_id = $1 AND event_type = $2",
        )
        .bind(aggregate_id)
        .bind(event_type)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// Runs `statements` with the event table's triggers (append-only guard, hash) disabled, as only the table
    /// owner could.
    async fn tamper(&self, statements: &[&str]) {
        let mut tx = self.pool.begin().await.unwrap();
        sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
            .execute(&mut *tx)
            .await
            .unwrap();
        for statement in statements {
            sqlx::query(statement).execute(&mut *tx).await.unwrap();
        }
        sqlx::query("ALTER TABLE events ENABLE TRIGGER USER")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn verify_passes_on_an_intact_store_and_rebuild_changes_nothing() {
    let store = Store::new().await;
    let out = store.replay(&["--verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hash chains intact"), "{}", text(&out));
    assert!(
        stdout.contains("equal to a rebuild from the log"),
        "{}",
        text(&out)
    );

    let before = PgReadModel::new(store.pool.clone()).dump().await.unwrap();
    let out = store.replay(&["--rebuild"]);
    assert!(out.status.success(), "{}", text(&out));
    let folded = format!(
        "{} events folded into 2 agents and 11 runs",
        store.event_count().await
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&folded),
        "{}",
        text(&out)
    );
    assert_eq!(
        PgReadModel::new(store.pool.clone()).dump().await.unwrap(),
        before
    );
    let out = store.replay(&["--verify"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn verify_names_an_altered_event_and_exits_non_zero() {
    let store = Store::new().await;
    let [alice, _] = TWO_AGENTS_IDS;
    let sequence = store.sequence_of(alice, "AgentConfigUpdated").await;
    store
        .tamper(&[&format!(
            r#"UPDATE events SET payload = jsonb_set(payload::jsonb, '{{AgentConfigUpdated,name}}', '"tampered"')::json
                WHERE aggregate_id = '{alice}' AND sequence = {sequence}"#
        )])
        .await;
    let out = store.replay(&["--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("altered event: Agent/{alice} sequence {sequence}")),
        "{}",
        text(&out)
    );
    // The altered name also changes what a rebuild produces: that row is named too.
    assert!(
        stdout.contains(&format!("read model: agents row agent_id={alice} differs")),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify found"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn verify_checks_each_snapshot_against_its_events_and_names_an_altered_one() {
    let store = Store::new().await;
    let [alice, _] = TWO_AGENTS_IDS;
    let events = EventStore::postgres(store.pool.clone());
    let (state, version) = AggregateService::<Agent>::new(events.clone())
        .load(alice)
        .await
        .unwrap();
    events.save_snapshot(alice, &state, version).await.unwrap();
    let out = store.replay(&["--verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 snapshots checked against their events"),
        "{}",
        text(&out)
    );

    // Snapshots are outside the hash chain: an edited one (here the agent's session) is found by refolding.
    sqlx::query("UPDATE snapshots SET state = jsonb_set(state, '{session}', '99')")
        .execute(&store.pool)
        .await
        .unwrap();
    let out = store.replay(&["--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "altered snapshot: Agent/{alice} at sequence {version} does not hold the state its events fold to"
        )),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn verify_names_a_deleted_event_as_missing() {
    let store = Store::new().await;
    let [_, bob] = TWO_AGENTS_IDS;
    store
        .tamper(&[&format!(
            "DELETE FROM events WHERE aggregate_id = '{bob}' AND sequence = 4"
        )])
        .await;
    let out = store.replay(&["--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("missing event: Agent/{bob} sequence 4")),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn verify_names_an_altered_read_model_row() {
    let store = Store::new().await;
    let [alice, bob] = TWO_AGENTS_IDS;
    sqlx::query("UPDATE agents SET name = 'renamed behind the log' WHERE agent_id = $1")
        .bind(bob)
        .execute(&store.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM agent_runs WHERE agent_id = $1 AND session = 2 AND tick_no = 3")
        .bind(alice)
        .execute(&store.pool)
        .await
        .unwrap();
    let out = store.replay(&["--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hash chains intact"), "{}", text(&out));
    assert!(
        stdout.contains(&format!("read model: agents row agent_id={bob} differs")),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("renamed behind the log"), "{}", text(&out));
    assert!(
        stdout.contains(&format!(
            "read model: agent_runs row agent_id={alice}, session=2, tick_no=3 is missing"
        )),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn an_exported_log_replays_offline_to_the_live_read_models() {
    let store = Store::new().await;
    let dir = std::env::temp_dir().join(format!("strom-replay-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("log.jsonl");
    let out = store.replay(&["--export", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let exported = std::fs::read_to_string(&file).unwrap().lines().count();
    assert_eq!(i64::try_from(exported).unwrap(), store.event_count().await);

    let models = dir.join("models");
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "replay",
            "--from",
            file.to_str().unwrap(),
            "--out",
            models.to_str().unwrap(),
        ])
        .env_remove("STROM_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let live = PgReadModel::new(store.pool.clone()).dump().await.unwrap();
    assert_eq!(read_expected(&models).unwrap(), live);

    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "replay",
            "--from",
            file.to_str().unwrap(),
            "--expect",
            models.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn replay_without_a_database_url_says_what_to_set() {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["replay", "--verify"])
        .env_remove("STROM_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set STROM_DATABASE_URL"),
        "{}",
        text(&out)
    );
}

#[test]
fn replay_from_a_broken_file_names_the_line() {
    let dir = std::env::temp_dir().join(format!("strom-replay-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.jsonl");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../replay-fixtures/two-agents/events.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(fixture)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines[2] = "{not json".into();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["replay", "--from", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:3: not a logged event"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(dir);
}
