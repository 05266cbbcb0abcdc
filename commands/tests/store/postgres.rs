//! Postgres-only behaviour: the xmin watermark, rolled-back writes, idempotent migrations, checkpoints inside a
//! caller's transaction, the trigger's hashes against the Rust chain hash, and upcasting of stored legacy events.

use std::collections::BTreeSet;

use sqlx::Row as _;
use strom_commands::log::{
    jsonb_text, CheckpointStore, EventEnvelope, EventLog, LogPosition, PgCheckpointStore,
};
use strom_commands::store::{migrate, pg_connect_options, MIGRATOR};
use strom_domain::config::RiskLimits;
use strom_domain::upcast::V1_DEFAULT_SEED;
use strom_domain::AgentCommand;

use crate::conformance::{create_and_rename, tricky_names};
use crate::support::{
    agent_id, assert_chained, ctx, read_exactly, script_events, t0, Backend, Logged, Row,
};

/// Agent `name`'s first event (`AgentCreated`), stored by SQL at sequence 1 through `executor`.
async fn insert_created<'e>(executor: impl sqlx::PgExecutor<'e>, name: &str) {
    let id = agent_id(name);
    Row::of(&id, 1, &script_events(name, 1)[0])
        .insert(executor)
        .await;
}

/// Reads pages from the checkpoint until a page comes back empty, saving the checkpoint after each page.
async fn read_until_caught_up(
    log: &dyn EventLog,
    checkpoints: &dyn CheckpointStore,
) -> Vec<Logged> {
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
    let backend = Backend::postgres().await;
    let log = backend.log();
    let checkpoints = backend.checkpoints();

    backend.step("early").await;
    let mut seen: Vec<Logged> = read_exactly(log.as_ref(), LogPosition::START, 1).await;
    checkpoints
        .save("watermark", seen[0].position)
        .await
        .unwrap();

    // A writer that takes its transaction id first and commits last.
    let mut late = backend.db().connect().await;
    sqlx::query("BEGIN").execute(&mut late).await.unwrap();
    insert_created(&mut late, "late").await;

    for i in 0..3 {
        backend.step(&format!("after-{i}")).await;
    }
    let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(backend.pool())
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
    let after: Vec<Logged> = read_exactly(log.as_ref(), resumed_from, 4).await;
    assert_eq!(
        after[0].aggregate_id,
        agent_id("late"),
        "the late commit comes first: it has the smallest tx_id"
    );
    seen.extend(after);

    let all_ids: BTreeSet<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(backend.pool())
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
    let backend = Backend::postgres().await;
    // Explicit, long-finished transaction ids whose text forms sort the other way ("10" < "9").
    for (name, tx_id) in [("ten", "10"), ("nine", "9")] {
        let created = &script_events(name, 1)[0];
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tx_id) \
             VALUES ('Agent', $1, 1, $2, $3, $4, '{}', $5::text::xid8)",
        )
        .bind(agent_id(name))
        .bind(created.event_type())
        .bind(created.event_version())
        .bind(strom_domain::codec::encode(created))
        .bind(tx_id)
        .execute(backend.pool())
        .await
        .unwrap();
    }
    let logged: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 2).await;
    let order: Vec<(u64, String)> = logged
        .iter()
        .map(|e| (e.position.tx_id, e.aggregate_id.clone()))
        .collect();
    assert_eq!(order, [(9, agent_id("nine")), (10, agent_id("ten"))]);
    let page = backend
        .log()
        .read_after(logged[0].position, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].aggregate_id, agent_id("ten"));
}

#[tokio::test]
async fn a_rolled_back_transactions_events_never_appear() {
    let backend = Backend::postgres().await;
    let mut tx = backend.pool().begin().await.unwrap();
    insert_created(&mut *tx, "ghost").await;
    tx.rollback().await.unwrap();
    backend.step("real").await;

    let logged: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 1).await;
    assert_eq!(logged[0].aggregate_id, agent_id("real"));
    // The rollback burnt a global_position: the log has a gap there and readers do not care.
    assert_eq!(logged[0].position.global_position, 2);
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let backend = Backend::postgres().await;
    backend.step("before").await;
    let tables_after_first = schema_tables(&backend).await;
    migrate(backend.pool()).await.expect("second migration");
    migrate(backend.pool()).await.expect("third migration");

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(backend.pool())
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
    backend.step("before").await;
    let logged: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 2).await;
    assert_eq!(logged.len(), 2);
}

#[tokio::test]
async fn a_checkpoint_saved_in_a_transaction_commits_with_it() {
    let backend = Backend::postgres().await;
    let first = LogPosition {
        tx_id: 7,
        global_position: 3,
    };
    let second = LogPosition {
        tx_id: u64::from(u32::MAX) + 5,
        global_position: 9,
    };

    let mut tx = backend.pool().begin().await.unwrap();
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

    let mut tx = backend.pool().begin().await.unwrap();
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
    let memory = Backend::memory();
    let postgres = Backend::postgres().await;
    let names = tricky_names();
    for backend in [&memory, &postgres] {
        for name in ["x", "y"] {
            create_and_rename(&backend.services, name, &names).await;
        }
        backend.steps("z", 4).await;
    }
    let expected = names.len() * 2 + 4;
    let from_memory: Vec<EventEnvelope> =
        read_exactly(memory.log().as_ref(), LogPosition::START, expected).await;
    let from_postgres: Vec<EventEnvelope> =
        read_exactly(postgres.log().as_ref(), LogPosition::START, expected).await;
    let chain = |events: &[EventEnvelope]| {
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
            .fetch_all(postgres.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| row.get("t"))
            .collect();
    let ours: Vec<String> = from_memory.iter().map(|e| jsonb_text(&e.payload)).collect();
    assert_eq!(texts, ours);
}

#[tokio::test]
async fn events_cannot_be_updated_or_deleted() {
    let backend = Backend::postgres().await;
    backend.step("fixed").await;
    let update = sqlx::query("UPDATE events SET event_version = '2'")
        .execute(backend.pool())
        .await;
    assert!(update.is_err(), "{update:?}");
    let delete = sqlx::query("DELETE FROM events")
        .execute(backend.pool())
        .await;
    assert!(delete.is_err(), "{delete:?}");
    let logged: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 1).await;
    assert_eq!(logged.len(), 1);
}

#[tokio::test]
async fn a_client_supplied_hash_is_overwritten() {
    let backend = Backend::postgres().await;
    let created = &script_events("h", 1)[0];
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash) \
         VALUES ('Agent', $1, 1, $2, $3, $4, '{}', 'forged')",
    )
    .bind(agent_id("h"))
    .bind(created.event_type())
    .bind(created.event_version())
    .bind(strom_domain::codec::encode(created))
    .execute(backend.pool())
    .await
    .unwrap();
    let stored: Vec<EventEnvelope> =
        read_exactly(backend.log().as_ref(), LogPosition::START, 1).await;
    assert_ne!(stored[0].hash, "forged");
    assert_chained(&stored);
}

#[test]
fn schema_names_that_would_need_quoting_are_refused() {
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let options = pg_connect_options(url, Some("t_0123abc")).unwrap();
    // Sessions are named after their schema, so a schema's sessions can be found (and ended) by name.
    assert_eq!(options.get_application_name(), Some("t_0123abc"));
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

async fn schema_tables(backend: &Backend) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(&backend.db().schema)
    .fetch_all(backend.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn legacy_events_are_upcast_on_load() {
    let backend = Backend::postgres().await;
    // An `AgentCreated` v1, written before risk limits and seeds were recorded.
    let id = agent_id("old");
    let mut v1 = strom_domain::codec::encode(&script_events("old", 1)[0]);
    let fields = v1["AgentCreated"].as_object_mut().unwrap();
    fields.remove("risk");
    fields.remove("seed");
    Row {
        aggregate_type: "Agent",
        aggregate_id: &id,
        sequence: 1,
        event_type: "AgentCreated",
        event_version: "1",
        payload: v1.clone(),
    }
    .insert(backend.pool())
    .await;

    backend
        .services
        .agents
        .execute(&id, || AgentCommand::StartAgent { at: t0() }, &ctx("start"))
        .await
        .expect("the upcast agent takes commands");
    let (agent, version) = backend.services.agents.load(&id).await.unwrap();
    assert_eq!(version, 2);
    let config = agent.config().unwrap();
    assert_eq!(config.seed, V1_DEFAULT_SEED);
    assert_eq!(
        config.risk,
        RiskLimits::for_starting_cash(config.starting_cash)
    );
    // The log keeps what was written; upcasting happens on reading only.
    let stored: Vec<EventEnvelope> =
        read_exactly(backend.log().as_ref(), LogPosition::START, 2).await;
    assert_eq!(
        (stored[0].event_version.as_str(), &stored[0].payload),
        ("1", &v1)
    );
    assert_chained(&stored);
    let logged: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, 2).await;
    assert_eq!(logged[0].event.event_version(), "2");
    assert_eq!(
        logged[0].event.as_agent().unwrap().config().as_ref(),
        Some(config)
    );
}
