//! Tamper detection: rows edited, deleted, swapped or forged behind the store's back (with its triggers disabled,
//! as only a table owner could) are each reported by `verify_chains`.

use strom_commands::log::{verify_chains, AggregateKey, ChainProblem, ChainReport, LogPosition};

use crate::support::{agent_id, read_exactly, Backend, Logged};

/// Events in the stream that gets tampered with (created, started, runs 1 to 4).
const VICTIM_EVENTS: u64 = 6;
/// Events in a stream nobody touches; it must never be reported.
const BYSTANDER_EVENTS: u64 = 3;

async fn seeded() -> Backend {
    let backend = Backend::postgres().await;
    backend.steps("victim", VICTIM_EVENTS).await;
    backend.steps("bystander", BYSTANDER_EVENTS).await;
    let total = (VICTIM_EVENTS + BYSTANDER_EVENTS) as usize;
    let _: Vec<Logged> = read_exactly(backend.log().as_ref(), LogPosition::START, total).await;
    let report = verify_chains(backend.chains().as_ref()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    backend
}

/// Runs `statements` with every user trigger on `events` disabled (append-only guard and hash trigger). `'victim'`
/// in a statement stands for the victim's id.
async fn tamper(backend: &Backend, statements: &[&str]) {
    let mut tx = backend.pool().begin().await.unwrap();
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    for statement in statements {
        let statement = statement.replace("'victim'", &format!("'{}'", agent_id("victim")));
        sqlx::query(&statement).execute(&mut *tx).await.unwrap();
    }
    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn report(backend: &Backend) -> ChainReport {
    verify_chains(backend.chains().as_ref()).await.unwrap()
}

fn victim() -> AggregateKey {
    AggregateKey {
        aggregate_type: "Agent".into(),
        aggregate_id: agent_id("victim"),
    }
}

#[tokio::test]
async fn an_edited_payload_is_reported_as_altered() {
    let backend = seeded().await;
    tamper(
        &backend,
        &[
            r#"UPDATE events SET payload = jsonb_set(payload::jsonb, '{AgentRunRecorded,observation,price}', '"999.99"')::json
              WHERE aggregate_id = 'victim' AND sequence = 3"#,
        ],
    )
    .await;
    assert_eq!(
        report(&backend).await.problems,
        vec![ChainProblem::AlteredEvent {
            aggregate: victim(),
            sequence: 3
        }]
    );
}

#[tokio::test]
async fn an_edited_event_type_is_reported_as_altered() {
    let backend = seeded().await;
    tamper(
        &backend,
        &["UPDATE events SET event_version = '2' WHERE aggregate_id = 'victim' AND sequence = 6"],
    )
    .await;
    assert_eq!(
        report(&backend).await.problems,
        vec![ChainProblem::AlteredEvent {
            aggregate: victim(),
            sequence: 6
        }]
    );
}

#[tokio::test]
async fn a_deleted_event_is_reported_as_missing() {
    let backend = seeded().await;
    tamper(
        &backend,
        &["DELETE FROM events WHERE aggregate_id = 'victim' AND sequence = 3"],
    )
    .await;
    assert_eq!(
        report(&backend).await.problems,
        vec![ChainProblem::MissingEvent {
            aggregate: victim(),
            expected_sequence: 3
        }]
    );
}

#[tokio::test]
async fn swapped_events_are_reported_as_reordered() {
    let backend = seeded().await;
    tamper(
        &backend,
        &[
            "UPDATE events SET sequence = 1000 WHERE aggregate_id = 'victim' AND sequence = 3",
            "UPDATE events SET sequence = 3 WHERE aggregate_id = 'victim' AND sequence = 4",
            "UPDATE events SET sequence = 4 WHERE aggregate_id = 'victim' AND sequence = 1000",
        ],
    )
    .await;
    assert_eq!(
        report(&backend).await.problems,
        vec![
            ChainProblem::ReorderedOrInserted {
                aggregate: victim(),
                sequence: 3,
                original_sequence: 4
            },
            ChainProblem::ReorderedOrInserted {
                aggregate: victim(),
                sequence: 4,
                original_sequence: 3
            },
        ]
    );
}

#[tokio::test]
async fn a_forged_event_inserted_mid_stream_is_reported_with_the_events_it_displaced() {
    let backend = seeded().await;
    tamper(
        &backend,
        &[
            "UPDATE events SET sequence = sequence + 1000 WHERE aggregate_id = 'victim' AND sequence >= 4",
            "UPDATE events SET sequence = sequence - 999 WHERE aggregate_id = 'victim' AND sequence >= 1000",
            r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash)
               SELECT aggregate_type, aggregate_id, 4, event_type, event_version, payload, '{}', repeat('f', 64)
                 FROM events WHERE aggregate_id = 'victim' AND sequence = 5"#,
        ],
    )
    .await;
    let moved = |sequence| ChainProblem::ReorderedOrInserted {
        aggregate: victim(),
        sequence,
        original_sequence: sequence - 1,
    };
    assert_eq!(
        report(&backend).await.problems,
        vec![
            ChainProblem::AlteredEvent {
                aggregate: victim(),
                sequence: 4
            },
            moved(5),
            moved(6),
            moved(7),
        ]
    );
}

#[tokio::test]
async fn a_forged_event_appended_without_a_valid_hash_is_reported() {
    let backend = seeded().await;
    tamper(
        &backend,
        &[r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, hash)
             SELECT aggregate_type, aggregate_id, 7, event_type, event_version, payload, '{}',
                    encode(sha256('made up'::bytea), 'hex')
               FROM events WHERE aggregate_id = 'victim' AND sequence = 6"#],
    )
    .await;
    assert_eq!(
        report(&backend).await.problems,
        vec![ChainProblem::AlteredEvent {
            aggregate: victim(),
            sequence: 7
        }]
    );
}
