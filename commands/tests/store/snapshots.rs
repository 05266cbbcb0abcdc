//! Loading costs the same whatever an aggregate's history: a long history loads from its snapshot plus what
//! follows it, and a snapshot that cannot be trusted (another state shape, unreadable) is ignored, never used.
//! Counted in events and rows, never in time.

use strom_commands::service::{AggregateService, SNAPSHOT_EVERY};
use strom_commands::store::EventStore;
use strom_domain::Agent;

use crate::support::{agent_id, ctx, run, script, Backend};

/// The long history: created, started, then 49,998 runs.
const EVENTS: u64 = 50_000;
/// The last run tick of that history.
const LAST_TICK: u64 = EVENTS - 2;

/// The runs `$3..=$4` of a scripted agent (`support::run`: one a second from `$2`), each as the payload the
/// aggregate records, made from `$1`, the payload it recorded for one run: only the tick's number, times and
/// correlation id differ between runs.
const GENERATED_RUNS_SQL: &str = r#"
SELECT t, jsonb_build_object('AgentRunRecorded', ($1::jsonb -> 'AgentRunRecorded') || jsonb_build_object(
           'tick_no', t,
           'scheduled_at', to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'started_at', to_char((slot + interval '5 ms') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'completed_at', to_char((slot + interval '10 ms') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'observation', ($1::jsonb #> '{AgentRunRecorded,observation}') || jsonb_build_object(
               'observed_at', to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
           'correlation_id', 'tick-' || t)) AS payload
  FROM (SELECT t, $2::timestamptz + (t - 1) * interval '1 second' AS slot
          FROM generate_series($3::bigint, $4::bigint) t) runs"#;

/// Builds agent `name`'s history of [`EVENTS`] events in Postgres: the first four through the command service,
/// the other runs in one `INSERT … SELECT` (the triggers still check each sequence and chain each hash), after
/// checking that the generated payloads are the ones the aggregate recorded for runs 1 and 2.
async fn bulk_history(backend: &Backend, name: &str) {
    backend.steps(name, 4).await;
    let id = agent_id(name);
    let template: serde_json::Value = sqlx::query_scalar(
        "SELECT payload::jsonb FROM events WHERE aggregate_id = $1 AND sequence = 3",
    )
    .bind(&id)
    .fetch_one(backend.pool())
    .await
    .unwrap();
    let matching: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM ({GENERATED_RUNS_SQL}) g
           JOIN events e ON e.aggregate_id = $5 AND e.sequence = g.t + 2
          WHERE e.payload::jsonb = g.payload"
    ))
    .bind(&template)
    .bind(crate::support::t0())
    .bind(1_i64)
    .bind(2_i64)
    .bind(&id)
    .fetch_one(backend.pool())
    .await
    .unwrap();
    assert_eq!(matching, 2, "the generated runs are the aggregate's own");

    sqlx::query(&format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'Agent', $5, g.t + 2, 'AgentRunRecorded', '1', g.payload::json,
                json_build_object('correlation_id', 'tick-' || g.t, 'actor', 'system:runtime')
           FROM ({GENERATED_RUNS_SQL}) g
          ORDER BY g.t"
    ))
    .bind(&template)
    .bind(crate::support::t0())
    .bind(3_i64)
    .bind(LAST_TICK as i64)
    .bind(&id)
    .execute(backend.pool())
    .await
    .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(&id)
        .fetch_one(backend.pool())
        .await
        .unwrap();
    assert_eq!(stored as u64, EVENTS);
}

/// A service with an empty cache, as in a process that just started.
fn fresh(store: &EventStore) -> AggregateService<Agent> {
    AggregateService::new(store.clone())
}

/// Agent `name` has [`EVENTS`] events and a snapshot at the last: a fresh service loads it applying fewer than
/// [`SNAPSHOT_EVERY`] events, a command on it works, and the next fresh load applies only that command's event.
async fn loads_from_its_snapshot_and_takes_commands(store: &EventStore, name: &str) {
    let id = agent_id(name);
    assert_eq!(
        store
            .load_snapshot::<Agent>(&id)
            .await
            .unwrap()
            .map(|(_, version)| version),
        Some(EVENTS)
    );
    let agents = fresh(store);
    let (agent, version) = agents.load(&id).await.unwrap();
    assert_eq!((agent.last_tick_no(), version), (LAST_TICK, EVENTS));
    assert!(
        agents.events_replayed() < SNAPSHOT_EVERY,
        "loading applied {} events",
        agents.events_replayed()
    );

    let next = agents
        .execute(&id, || run(LAST_TICK + 1), &ctx("next"))
        .await
        .expect("a command on the long history");
    assert_eq!(
        (next.version, next.state.last_tick_no()),
        (EVENTS + 1, LAST_TICK + 1)
    );
    let after = fresh(store);
    assert_eq!(after.load(&id).await.unwrap().1, EVENTS + 1);
    assert_eq!(
        after.events_replayed(),
        1,
        "only the event after the snapshot"
    );
}

#[tokio::test]
async fn an_agent_with_50_000_events_loads_by_reading_only_what_follows_its_snapshot_in_memory() {
    let backend = Backend::memory();
    let id = agent_id("long");
    for n in 1..=EVENTS {
        backend
            .services
            .agents
            .execute(&id, || script("long", n), &ctx("build"))
            .await
            .unwrap();
    }
    assert_eq!(backend.memory_store().events().len() as u64, EVENTS);
    loads_from_its_snapshot_and_takes_commands(&backend.store, "long").await;
}

#[tokio::test]
async fn an_agent_with_50_000_events_loads_by_reading_only_what_follows_its_snapshot_on_postgres() {
    let backend = Backend::postgres().await;
    bulk_history(&backend, "long").await;
    let id = agent_id("long");
    assert_eq!(
        backend.store.load_snapshot::<Agent>(&id).await.unwrap(),
        None
    );

    // Never snapshotted: the first load applies the whole history, once, and keeps a snapshot of it.
    let first = fresh(&backend.store);
    let (agent, version) = first.load(&id).await.unwrap();
    assert_eq!((agent.last_tick_no(), version), (LAST_TICK, EVENTS));
    assert_eq!(first.events_replayed(), EVENTS);
    let snapshots: i64 = sqlx::query_scalar("SELECT count(*) FROM snapshots")
        .fetch_one(backend.pool())
        .await
        .unwrap();
    assert_eq!(snapshots, 1);

    loads_from_its_snapshot_and_takes_commands(&backend.store, "long").await;
}

/// Agent `name` after five commands, with a snapshot of it at 5 that `tamper` then spoils in SQL: a fresh service
/// must replay the five events instead of trusting it.
async fn spoiled_snapshot_is_replayed_instead(tamper: &str) {
    let backend = Backend::postgres().await;
    backend.steps("spoiled", 5).await;
    let id = agent_id("spoiled");
    let (truth, _) = backend.services.agents.load(&id).await.unwrap();
    backend.store.save_snapshot(&id, &truth, 5).await.unwrap();
    assert_eq!(
        backend.store.load_snapshot::<Agent>(&id).await.unwrap(),
        Some((truth.clone(), 5))
    );

    let changed = sqlx::query(tamper)
        .execute(backend.pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1);
    assert_eq!(
        backend.store.load_snapshot::<Agent>(&id).await.unwrap(),
        None
    );
    let agents = fresh(&backend.store);
    assert_eq!(agents.load(&id).await.unwrap(), (truth.clone(), 5));
    assert_eq!(agents.events_replayed(), 5, "replayed from the first event");
    let executed = agents
        .execute(&id, || script("spoiled", 6), &ctx("next"))
        .await
        .unwrap();
    assert_eq!(executed.version, 6);
}

#[tokio::test]
async fn a_snapshot_of_another_state_version_is_ignored_and_the_events_replayed() {
    spoiled_snapshot_is_replayed_instead("UPDATE snapshots SET state_version = state_version + 1")
        .await;
}

#[tokio::test]
async fn an_unreadable_snapshot_is_ignored_and_the_events_replayed() {
    spoiled_snapshot_is_replayed_instead(r#"UPDATE snapshots SET state = '{"not": "an agent"}'"#)
        .await;
}
