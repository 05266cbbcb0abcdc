//! The store conformance suite: one set of checks, run against the memory adapter and against Postgres.

use std::collections::BTreeSet;

use cqrs_es::persist::{PersistedEventRepository, PersistenceError};
use cqrs_es::{AggregateError, EventStore};
use serde_json::json;
use strom_commands::store::{
    chain_hash_text, execute_with_retry, jsonb_text, verify_chains, CommandError, LogPosition,
    LoggedEvent, GENESIS_HASH, MAX_COMMAND_ATTEMPTS,
};

use crate::support::{
    load, metadata, read_exactly, serialized, Backend, CounterCommand, CounterEvent,
};

/// Runs each named check once per backend: `memory::<check>` and `postgres::<check>`.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&crate::support::MemoryBackend::new()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(&crate::support::PgBackend::new().await).await;
                }
            )*
        }
    };
}

conformance!(
    appended_events_load_back_in_order,
    a_taken_sequence_is_a_conflict_and_nothing_is_written,
    a_skipped_sequence_is_refused_as_an_error_not_a_conflict,
    the_log_is_in_commit_order_across_aggregates,
    every_hash_links_its_stream_and_the_chains_verify,
    reading_in_pages_with_checkpoints_returns_each_event_once,
    concurrent_writers_take_each_sequence_exactly_once,
    legacy_events_are_upcast_on_load,
    rejected_commands_are_returned_not_retried,
    snapshots_round_trip_and_conflict_like_events,
);

async fn increment<B: Backend>(backend: &B, aggregate_id: &str) {
    execute_with_retry(
        &backend.cqrs(),
        aggregate_id,
        || CounterCommand::Increment,
        metadata("corr-1"),
    )
    .await
    .expect("increment");
}

async fn note<B: Backend>(backend: &B, aggregate_id: &str, note: serde_json::Value) {
    execute_with_retry(
        &backend.cqrs(),
        aggregate_id,
        || CounterCommand::Note(note.clone()),
        metadata("corr-note"),
    )
    .await
    .expect("note");
}

async fn appended_events_load_back_in_order<B: Backend>(backend: &B) {
    for _ in 0..3 {
        increment(backend, "c-1").await;
    }
    note(backend, "c-2", json!({"hello": "world"})).await;

    let (counter, sequence) = load(backend, "c-1").await;
    assert_eq!((counter.value, sequence), (3, 3));
    let events = backend
        .repo()
        .get_events::<crate::support::Counter>("c-1")
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(events[2].payload, json!({"Incremented": {"value": 3}}));
    assert_eq!(events[0].metadata["correlation_id"], "corr-1");
    let tail = backend
        .repo()
        .get_last_events::<crate::support::Counter>("c-1", 1)
        .await
        .unwrap();
    assert_eq!(
        tail.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![2, 3]
    );

    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, 4).await;
    let noted = logged.iter().find(|e| e.aggregate_id == "c-2").unwrap();
    assert_eq!(noted.event_type, "Noted");
    assert_eq!(noted.event_version, "1");
    assert_eq!(noted.metadata_str("correlation_id"), Some("corr-note"));
    assert_eq!(noted.metadata_str("actor"), Some("system:test"));
    let ids: BTreeSet<_> = logged.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 4, "event ids are unique");
}

async fn a_taken_sequence_is_a_conflict_and_nothing_is_written<B: Backend>(backend: &B) {
    type C = crate::support::Counter;
    let repo = backend.repo();
    let first = CounterEvent::Incremented { value: 1 };
    let second = CounterEvent::Incremented { value: 2 };
    repo.persist::<C>(
        &[serialized("c", 1, &first), serialized("c", 2, &second)],
        None,
    )
    .await
    .unwrap();

    let again = repo
        .persist::<C>(&[serialized("c", 2, &second)], None)
        .await;
    assert!(
        matches!(again, Err(PersistenceError::OptimisticLockError)),
        "{again:?}"
    );

    // A batch whose first event is new but whose second is taken must leave nothing behind.
    let third = CounterEvent::Incremented { value: 3 };
    let mixed = repo
        .persist::<C>(
            &[serialized("c", 3, &third), serialized("c", 2, &second)],
            None,
        )
        .await;
    assert!(
        matches!(mixed, Err(PersistenceError::OptimisticLockError)),
        "{mixed:?}"
    );
    assert_eq!(repo.get_events::<C>("c").await.unwrap().len(), 2);

    // Through the event store: two commands that loaded the same version; the second to commit conflicts.
    let store = backend.store();
    let winner = store.load_aggregate("c").await.unwrap();
    let loser = store.load_aggregate("c").await.unwrap();
    store
        .commit(vec![third.clone()], winner, metadata("w"))
        .await
        .unwrap();
    let lost = store.commit(vec![third], loser, metadata("l")).await;
    assert!(
        matches!(lost, Err(AggregateError::AggregateConflict)),
        "{lost:?}"
    );
    read_exactly(backend.log().as_ref(), LogPosition::START, 3).await;
}

async fn a_skipped_sequence_is_refused_as_an_error_not_a_conflict<B: Backend>(backend: &B) {
    type C = crate::support::Counter;
    let repo = backend.repo();
    let event = CounterEvent::Incremented { value: 1 };
    repo.persist::<C>(&[serialized("g", 1, &event)], None)
        .await
        .unwrap();
    let gap = repo.persist::<C>(&[serialized("g", 3, &event)], None).await;
    assert!(
        matches!(gap, Err(PersistenceError::UnknownError(_))),
        "{gap:?}"
    );
    let first_missing = repo.persist::<C>(&[serialized("h", 2, &event)], None).await;
    assert!(
        matches!(first_missing, Err(PersistenceError::UnknownError(_))),
        "{first_missing:?}"
    );
    assert_eq!(repo.get_events::<C>("g").await.unwrap().len(), 1);
    assert!(repo.get_events::<C>("h").await.unwrap().is_empty());
}

async fn the_log_is_in_commit_order_across_aggregates<B: Backend>(backend: &B) {
    let order = ["a", "b", "a", "c", "b", "a", "c", "c", "a"];
    for id in order {
        increment(backend, id).await;
    }
    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, order.len()).await;
    assert_eq!(
        logged
            .iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        order
    );
    assert!(logged.windows(2).all(|w| w[0].position < w[1].position));
    assert!(logged
        .windows(2)
        .all(|w| w[0].recorded_at <= w[1].recorded_at));
    for id in ["a", "b", "c"] {
        let sequences: Vec<u64> = logged
            .iter()
            .filter(|e| e.aggregate_id == id)
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    }
}

/// Payloads chosen to exercise every part of the jsonb text form the hash covers.
pub fn tricky_notes() -> Vec<serde_json::Value> {
    vec![
        json!({"zz": 1, "a": {"ccc": [], "bb": {}}, "b": null, "aa": [true, false, -0, 1.5]}),
        json!("quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f} é € 😀"),
        json!([
            0.1,
            1e-7,
            1.5e300,
            123456789012345678u64,
            -42,
            100.0,
            2.5e-3
        ]),
        json!({"": "empty key", "é": "two bytes", "e": "one byte", "ab": "x", "b": "y"}),
        json!({"Noted": "shadowing the variant name", "nested": [[{"k": [1, {"z": 0, "y": 1}]}]]}),
    ]
}

async fn every_hash_links_its_stream_and_the_chains_verify<B: Backend>(backend: &B) {
    for (i, payload) in tricky_notes().into_iter().enumerate() {
        note(backend, "notes", payload).await;
        increment(backend, &format!("other-{}", i % 2)).await;
    }
    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, 10).await;
    assert_chained(&logged);

    let report = verify_chains(backend.chains().as_ref()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.streams, report.events), (3, 10));
}

/// Recomputes every event's hash in Rust from its logged fields (for Postgres: the trigger's hash).
pub fn assert_chained(logged: &[LoggedEvent]) {
    let mut by_stream: std::collections::BTreeMap<(&str, &str), Vec<&LoggedEvent>> =
        Default::default();
    for event in logged {
        by_stream
            .entry((&event.aggregate_type, &event.aggregate_id))
            .or_default()
            .push(event);
    }
    for events in by_stream.values() {
        let mut prev = GENESIS_HASH.to_string();
        for event in events {
            let expected = chain_hash_text(
                &prev,
                &event.aggregate_type,
                &event.aggregate_id,
                event.sequence,
                &event.event_type,
                &event.event_version,
                &jsonb_text(&event.payload),
            );
            assert_eq!(
                event.hash,
                expected,
                "hash of {}/{} #{} (payload text {})",
                event.aggregate_type,
                event.aggregate_id,
                event.sequence,
                jsonb_text(&event.payload)
            );
            prev = expected;
        }
    }
}

async fn reading_in_pages_with_checkpoints_returns_each_event_once<B: Backend>(backend: &B) {
    /// Small enough that 23 events take several pages, with a short last one.
    const PAGE: usize = 5;
    const EVENTS: usize = 23;
    for i in 0..EVENTS {
        increment(backend, &format!("p-{}", i % 4)).await;
    }
    let everything = read_exactly(backend.log().as_ref(), LogPosition::START, EVENTS).await;

    let checkpoints = backend.checkpoints();
    assert_eq!(checkpoints.load("pager").await.unwrap(), None);
    let mut seen: Vec<LoggedEvent> = Vec::new();
    let started = std::time::Instant::now();
    while seen.len() < EVENTS {
        // A fresh reader each page, resuming only from the saved checkpoint (as after a restart).
        let after = checkpoints.load("pager").await.unwrap().unwrap_or_default();
        let page = backend.log().read_after(after, PAGE).await.unwrap();
        assert!(page.len() <= PAGE);
        if let Some(last) = page.last() {
            checkpoints.save("pager", last.position).await.unwrap();
        } else {
            assert!(
                started.elapsed() < crate::support::CATCH_UP_DEADLINE,
                "stuck"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        seen.extend(page);
    }
    assert_eq!(seen, everything);
    let last = checkpoints.load("pager").await.unwrap().unwrap();
    assert_eq!(last, everything.last().unwrap().position);
    assert!(backend
        .log()
        .read_after(last, PAGE)
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_writers_take_each_sequence_exactly_once<B: Backend>(backend: &B) {
    /// More writers than pool connections, so commits really race.
    const WRITERS: usize = 24;
    let results = futures::future::join_all((0..WRITERS).map(|i| async move {
        let cqrs = backend.cqrs();
        execute_with_retry(
            &cqrs,
            "hot",
            || CounterCommand::Increment,
            metadata(&format!("w-{i}")),
        )
        .await
    }))
    .await;

    let mut successes = 0;
    for result in &results {
        match result {
            Ok(()) => successes += 1,
            Err(CommandError::Conflict {
                attempts,
                aggregate_id,
                ..
            }) => {
                assert_eq!(*attempts, MAX_COMMAND_ATTEMPTS);
                assert_eq!(aggregate_id, "hot");
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(successes > 0);

    let (counter, sequence) = load(backend, "hot").await;
    assert_eq!(counter.value, successes as u64);
    assert_eq!(sequence, successes);
    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, successes).await;
    let sequences: Vec<u64> = logged.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=successes as u64).collect::<Vec<_>>());
    // Each event was decided on the state it was committed after: no lost update.
    for event in &logged {
        assert_eq!(
            event.payload,
            json!({"Incremented": {"value": event.sequence}})
        );
    }
    assert_chained(&logged);
}

async fn legacy_events_are_upcast_on_load<B: Backend>(backend: &B) {
    type C = crate::support::Counter;
    let legacy = cqrs_es::persist::SerializedEvent::new(
        "old".into(),
        1,
        "Counter".into(),
        "Bumped".into(),
        "0".into(),
        json!({"Bumped": {"to": 1}}),
        json!({}),
    );
    backend.repo().persist::<C>(&[legacy], None).await.unwrap();
    increment(backend, "old").await;
    let (counter, sequence) = load(backend, "old").await;
    assert_eq!((counter.value, sequence), (2, 2));
    // The log keeps what was written; upcasting happens on load only.
    let logged = read_exactly(backend.log().as_ref(), LogPosition::START, 2).await;
    assert_eq!(logged[0].event_type, "Bumped");
    assert_chained(&logged);
}

async fn rejected_commands_are_returned_not_retried<B: Backend>(backend: &B) {
    let result = execute_with_retry(
        &backend.cqrs(),
        "r",
        || CounterCommand::Refuse,
        metadata("r"),
    )
    .await;
    assert!(
        matches!(result, Err(CommandError::Rejected(_))),
        "{result:?}"
    );
    let (_, sequence) = load(backend, "r").await;
    assert_eq!(sequence, 0);
}

async fn snapshots_round_trip_and_conflict_like_events<B: Backend>(backend: &B) {
    // Repository level only: cqrs-es 0.5's snapshot store applies each new event twice (EventSink::write has
    // already applied it when commit folds it into the snapshot), so STROM runs events-as-truth stores.
    type C = crate::support::Counter;
    let repo = backend.repo();
    let one = CounterEvent::Incremented { value: 1 };
    let two = CounterEvent::Incremented { value: 2 };
    repo.persist::<C>(
        &[serialized("snap", 1, &one)],
        Some(("snap".into(), json!({"value": 1, "notes": 0}), 1)),
    )
    .await
    .unwrap();
    repo.persist::<C>(
        &[serialized("snap", 2, &two)],
        Some(("snap".into(), json!({"value": 2, "notes": 0}), 2)),
    )
    .await
    .unwrap();
    let snapshot = repo.get_snapshot::<C>("snap").await.unwrap().unwrap();
    assert_eq!(
        (snapshot.current_snapshot, snapshot.current_sequence),
        (2, 2)
    );
    assert_eq!(snapshot.aggregate["value"], 2);
    assert_eq!(repo.get_last_events::<C>("snap", 2).await.unwrap(), vec![]);
    // Replacing snapshot 2 requires that snapshot 1 is the current one.
    let stale = repo
        .persist::<C>(
            &[],
            Some(("snap".into(), json!({"value": 0, "notes": 0}), 2)),
        )
        .await;
    assert!(
        matches!(stale, Err(PersistenceError::OptimisticLockError)),
        "{stale:?}"
    );
    assert_eq!(
        repo.get_snapshot::<C>("snap")
            .await
            .unwrap()
            .unwrap()
            .aggregate["value"],
        2
    );
}
