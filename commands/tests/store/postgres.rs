//! Postgres-only behaviour: the xmin watermark, rolled-back writes, idempotent migrations, checkpoints inside a
//! caller's transaction, and the trigger's hashes against the Rust chain hash.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::Row;
use strom_commands::store::{
    execute_with_retry, migrate, pg_connect_options, CheckpointStore, EventLog, LogPosition,
    LoggedEvent, PgCheckpointStore, MIGRATOR,
};

use crate::conformance::{assert_chained, tricky_notes};
use crate::support::{metadata, read_exactly, Backend, CounterCommand, MemoryBackend, PgBackend};

const INSERT_RAW_EVENT: &str = "
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
VALUES ('Counter', $1, $2, 'Incremented', '1', $3, '{}')";

async fn increment<B: Backend>(backend: &B, aggregate_id: &str) {
    execute_with_retry(
        &backend.cqrs(),
        aggregate_id,
        || CounterCommand::Increment,
        metadata(aggregate_id),
    )
    .await
    .expect("increment");
}

/// Reads pages from the checkpoint until a page comes back empty, saving the checkpoint after each page.
async fn read_until_caught_up(
    log: &dyn EventLog,
    checkpoints: &dyn CheckpointStore,
) -> Vec<LoggedEvent> {
    let mut seen = Vec::new();
    loop {
        let after = checkpoints
            .load("watermark")
            .await
            .unwrap()
            .unwrap_or_default();
        let page = log.read_after(after, 2).await.unwrap();
        let Some(last) = page.last() else {
            return seen;
        };
        checkpoints.save("watermark", last.position).await.unwrap();
        seen.extend(page);
    }
}

#[tokio::test]
async fn a_reader_never_skips_a_transaction_that_commits_late() {
    let backend = PgBackend::new().await;
    let log = backend.log();
    let checkpoints = backend.checkpoints();

    increment(&backend, "early").await;
    let mut seen = read_exactly(log.as_ref(), LogPosition::START, 1).await;
    checkpoints
        .save("watermark", seen[0].position)
        .await
        .unwrap();

    // A writer that takes its transaction id first and commits last.
    let mut late = backend.db.connect().await;
    sqlx::query("BEGIN").execute(&mut late).await.unwrap();
    sqlx::query(INSERT_RAW_EVENT)
        .bind("late")
        .bind(1_i64)
        .bind(json!({"Incremented": {"value": 1}}))
        .execute(&mut late)
        .await
        .unwrap();

    for i in 0..3 {
        increment(&backend, &format!("after-{i}")).await;
    }
    let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&backend.db.pool)
        .await
        .unwrap();
    assert_eq!(committed, 4, "the three later transactions have committed");

    // While the early transaction is open, catching up must stop before the later commits: reading past them
    // and checkpointing would skip the late event for good.
    let during = read_until_caught_up(log.as_ref(), checkpoints.as_ref()).await;
    assert!(
        during.is_empty(),
        "read past an open transaction: {during:?}"
    );

    sqlx::query("COMMIT").execute(&mut late).await.unwrap();
    let resumed_from = checkpoints.load("watermark").await.unwrap().unwrap();
    let after = read_exactly(log.as_ref(), resumed_from, 4).await;
    assert_eq!(
        after[0].aggregate_id, "late",
        "the late commit comes first: it has the smallest tx_id"
    );
    seen.extend(after);

    let all_ids: BTreeSet<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(&backend.db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let seen_ids: Vec<uuid::Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids.len(), all_ids.len(), "no event returned twice");
    assert_eq!(
        seen_ids.into_iter().collect::<BTreeSet<_>>(),
        all_ids,
        "every event returned"
    );
}

#[tokio::test]
async fn the_log_orders_transaction_ids_numerically_not_as_text() {
    let backend = PgBackend::new().await;
    // Explicit, long-finished transaction ids whose text forms sort the other way ("10" < "9").
    for (aggregate_id, tx_id) in [("ten", "10"), ("nine", "9")] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tx_id) \
             VALUES ('Counter', $1, 1, 'Incremented', '1', '{\"Incremented\": {\"value\": 1}}', '{}', $2::text::xid8)",
        )
        .bind(aggregate_id)
        .bind(tx_id)
        .execute(&backend.db.pool)
        .await
        .unwrap();
    }
    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, 2).await;
    let order: Vec<(u64, &str)> = logged
        .iter()
        .map(|e| (e.position.tx_id, e.aggregate_id.as_str()))
        .collect();
    assert_eq!(order, [(9, "nine"), (10, "ten")]);
    let page = backend
        .log()
        .read_after(logged[0].position, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].aggregate_id, "ten");
}

#[tokio::test]
async fn a_rolled_back_transactions_events_never_appear() {
    let backend = PgBackend::new().await;
    let mut tx = backend.db.pool.begin().await.unwrap();
    sqlx::query(INSERT_RAW_EVENT)
        .bind("ghost")
        .bind(1_i64)
        .bind(json!({"Incremented": {"value": 1}}))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    increment(&backend, "real").await;

    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, 1).await;
    assert_eq!(logged[0].aggregate_id, "real");
    // The rollback burnt a global_position: the log has a gap there and readers do not care.
    assert_eq!(logged[0].position.global_position, 2);
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let backend = PgBackend::new().await;
    increment(&backend, "before").await;
    let tables_after_first = schema_tables(&backend).await;
    migrate(&backend.db.pool).await.expect("second migration");
    migrate(&backend.db.pool).await.expect("third migration");

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&backend.db.pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, MIGRATOR.iter().count());
    let tables = schema_tables(&backend).await;
    assert_eq!(tables, tables_after_first);
    for needed in ["_sqlx_migrations", "checkpoints", "events", "snapshots"] {
        assert!(
            tables.iter().any(|t| t == needed),
            "{needed} missing: {tables:?}"
        );
    }
    increment(&backend, "before").await;
    assert_eq!(
        read_exactly(backend.log().as_ref(), LogPosition::START, 2)
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn a_checkpoint_saved_in_a_transaction_commits_with_it() {
    let backend = PgBackend::new().await;
    let first = LogPosition {
        tx_id: 7,
        global_position: 3,
    };
    let second = LogPosition {
        tx_id: u64::from(u32::MAX) + 5,
        global_position: 9,
    };

    let mut tx = backend.db.pool.begin().await.unwrap();
    PgCheckpointStore::save_in(&mut *tx, "projector", first)
        .await
        .unwrap();
    assert_eq!(
        PgCheckpointStore::load_in(&mut *tx, "projector")
            .await
            .unwrap(),
        Some(first)
    );
    tx.rollback().await.unwrap();
    assert_eq!(backend.checkpoints().load("projector").await.unwrap(), None);

    let mut tx = backend.db.pool.begin().await.unwrap();
    PgCheckpointStore::save_in(&mut *tx, "projector", first)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        backend.checkpoints().load("projector").await.unwrap(),
        Some(first)
    );

    // Saving again replaces it; xid8 values beyond 32 bits round-trip.
    backend
        .checkpoints()
        .save("projector", second)
        .await
        .unwrap();
    assert_eq!(
        backend.checkpoints().load("projector").await.unwrap(),
        Some(second)
    );
}

#[tokio::test]
async fn the_triggers_hashes_equal_the_rust_chain_hash_for_the_same_events() {
    let memory = MemoryBackend::new();
    let postgres = PgBackend::new().await;
    let notes = tricky_notes();
    for note in &notes {
        for id in ["x", "y"] {
            execute_with_retry(
                &memory.cqrs(),
                id,
                || CounterCommand::Note(note.clone()),
                metadata("m"),
            )
            .await
            .unwrap();
            execute_with_retry(
                &postgres.cqrs(),
                id,
                || CounterCommand::Note(note.clone()),
                metadata("m"),
            )
            .await
            .unwrap();
        }
        increment(&memory, "x").await;
        increment(&postgres, "x").await;
    }
    let expected = notes.len() * 3;
    let from_memory = read_exactly(memory.log().as_ref(), LogPosition::START, expected).await;
    let from_postgres = read_exactly(postgres.log().as_ref(), LogPosition::START, expected).await;
    let chain = |events: &[LoggedEvent]| {
        events
            .iter()
            .map(|e| (e.aggregate_id.clone(), e.sequence, e.hash.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(chain(&from_postgres), chain(&from_memory));
    assert_chained(&from_postgres);

    // The text the trigger hashed is exactly what jsonb_text reproduces.
    let texts: Vec<String> =
        sqlx::query("SELECT payload::jsonb::text AS t FROM events ORDER BY tx_id, global_position")
            .fetch_all(&postgres.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get("t"))
            .collect();
    let ours: Vec<String> = from_memory
        .iter()
        .map(|e| strom_commands::store::jsonb_text(&e.payload))
        .collect();
    assert_eq!(texts, ours);
}

#[tokio::test]
async fn events_cannot_be_updated_or_deleted() {
    let backend = PgBackend::new().await;
    increment(&backend, "fixed").await;
    let update = sqlx::query("UPDATE events SET event_version = '2'")
        .execute(&backend.db.pool)
        .await;
    assert!(update.is_err(), "{update:?}");
    let delete = sqlx::query("DELETE FROM events")
        .execute(&backend.db.pool)
        .await;
    assert!(delete.is_err(), "{delete:?}");
    assert_eq!(
        read_exactly(backend.log().as_ref(), LogPosition::START, 1)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_client_supplied_hash_is_overwritten() {
    let backend = PgBackend::new().await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash) \
         VALUES ('Counter', 'h', 1, 'Incremented', '1', '{\"Incremented\":{\"value\":1}}', '{}', 'forged')",
    )
    .execute(&backend.db.pool)
    .await
    .unwrap();
    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, 1).await;
    assert_ne!(logged[0].hash, "forged");
    assert_chained(&logged);
}

#[test]
fn schema_names_that_would_need_quoting_are_refused() {
    let url = "postgres://postgres@127.0.0.1:5432/test";
    assert!(pg_connect_options(url, Some("t_0123abc")).is_ok());
    for bad in [
        "",
        "Upper",
        "1abc",
        "a b",
        "a;drop",
        "x\"y",
        &"a".repeat(64),
    ] {
        assert!(
            pg_connect_options(url, Some(bad)).is_err(),
            "{bad:?} accepted"
        );
    }
    assert!(pg_connect_options("not a url", None).is_err());
}

async fn schema_tables(backend: &PgBackend) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(&backend.db.schema)
    .fetch_all(&backend.db.pool)
    .await
    .unwrap()
}
