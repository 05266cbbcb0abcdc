//! Idempotency-Key: one conformance suite for both store adapters (memory LRU, Valkey/Redis), and the HTTP
//! behaviour of specs/03 §1 (replay, key reuse, in-flight duplicates).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

use strom_api::auth::Role;
use strom_api::idempotency::memory::MemoryIdempotencyStore;
use strom_api::idempotency::redis::RedisIdempotencyStore;
use strom_api::idempotency::{Claim, IdempotencyStore, Record, StoredResponse};

use crate::agents::new_agent;
use crate::support::{valkey_url, TestApp};

/// TTLs short enough for the expiry cases to finish quickly.
const SHORT_TTL: Duration = Duration::from_millis(300);
/// How long an expiry case waits for a record to go (polling, not a fixed sleep).
const EXPIRY_DEADLINE: Duration = Duration::from_secs(10);

fn response(body: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("location".into(), "/api/v1/agents/x".into())],
        body: body.into(),
    }
}

async fn conformance(store: Arc<dyn IdempotencyStore>) {
    let key = uuid::Uuid::new_v4().simple().to_string();
    assert_eq!(store.claim(&key, "h1").await.unwrap(), Claim::Claimed);
    // A second claim sees the first in flight, whatever its body.
    assert_eq!(
        store.claim(&key, "h1").await.unwrap(),
        Claim::Existing(Record::InFlight {
            body_hash: "h1".into()
        })
    );
    store.complete(&key, "h1", &response("{}")).await.unwrap();
    assert_eq!(
        store.claim(&key, "h2").await.unwrap(),
        Claim::Existing(Record::Completed {
            body_hash: "h1".into(),
            response: response("{}")
        })
    );

    // Released keys run again.
    let other = uuid::Uuid::new_v4().simple().to_string();
    assert_eq!(store.claim(&other, "h").await.unwrap(), Claim::Claimed);
    store.release(&other).await.unwrap();
    assert_eq!(store.claim(&other, "h").await.unwrap(), Claim::Claimed);

    // Of many concurrent claims of one key, exactly one wins.
    let raced = uuid::Uuid::new_v4().simple().to_string();
    let claims = futures::future::join_all((0..16).map(|_| {
        let store = Arc::clone(&store);
        let raced = raced.clone();
        async move { store.claim(&raced, "h").await.unwrap() }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| **c == Claim::Claimed).count(), 1);
}

async fn expiry(store: Arc<dyn IdempotencyStore>) {
    let key = uuid::Uuid::new_v4().simple().to_string();
    assert_eq!(store.claim(&key, "h").await.unwrap(), Claim::Claimed);
    let deadline = tokio::time::Instant::now() + EXPIRY_DEADLINE;
    // The in-flight marker of a request that never completes goes away by itself.
    while store.claim(&key, "h").await.unwrap() != Claim::Claimed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "marker never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.complete(&key, "h", &response("{}")).await.unwrap();
    let deadline = tokio::time::Instant::now() + EXPIRY_DEADLINE;
    while store.claim(&key, "h").await.unwrap() != Claim::Claimed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "record never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn test_prefix() -> String {
    format!("strom-test-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn the_memory_store_conforms() {
    conformance(Arc::new(MemoryIdempotencyStore::new())).await;
    expiry(Arc::new(MemoryIdempotencyStore::with_limits(
        10, SHORT_TTL, SHORT_TTL,
    )))
    .await;
}

#[tokio::test]
async fn the_valkey_store_conforms() {
    let store = RedisIdempotencyStore::connect(&valkey_url(), &test_prefix())
        .await
        .expect("Valkey/Redis at STROM_TEST_VALKEY_URL");
    conformance(Arc::new(store)).await;
    let short = RedisIdempotencyStore::connect_with_ttls(
        &valkey_url(),
        &test_prefix(),
        SHORT_TTL,
        SHORT_TTL,
    )
    .await
    .unwrap();
    expiry(Arc::new(short)).await;
}

#[tokio::test]
async fn the_memory_store_forgets_the_least_recently_used_beyond_its_bound() {
    let store =
        MemoryIdempotencyStore::with_limits(2, Duration::from_secs(60), Duration::from_secs(60));
    for key in ["a", "b", "c"] {
        assert_eq!(store.claim(key, "h").await.unwrap(), Claim::Claimed);
    }
    assert_eq!(
        store.claim("a", "h").await.unwrap(),
        Claim::Claimed,
        "a was evicted"
    );
    assert!(matches!(
        store.claim("c", "h").await.unwrap(),
        Claim::Existing(_)
    ));
}

async fn replay_and_reuse(app: &TestApp) {
    let alice = app.token("alice", &[Role::Trader]);
    let key = [("Idempotency-Key", "create-btc-1")];
    let first = app
        .call(
            Method::POST,
            "/api/v1/agents",
            &alice,
            Some(new_agent("once")),
            &key,
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = app
        .call(
            Method::POST,
            "/api/v1/agents",
            &alice,
            Some(new_agent("once")),
            &key,
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the stored first response");
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    app.call(
        Method::POST,
        "/api/v1/agents",
        &alice,
        Some(new_agent("twice")),
        &key,
    )
    .await
    .assert_problem(422, "idempotency_key_reused");

    // Keys are per user: bob's identical key is unrelated.
    let bob = app.token("bob", &[Role::Trader]);
    let bobs = app
        .call(
            Method::POST,
            "/api/v1/agents",
            &bob,
            Some(new_agent("once")),
            &key,
        )
        .await;
    assert_eq!(bobs.status, 201);
    assert_ne!(bobs.body["agent_id"], first.body["agent_id"]);

    // Only one agent was created for alice.
    let page = app
        .eventually("/api/v1/agents", &alice, |p| {
            !p["items"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");

    // Commands on an agent replay too (a retried start does not become 409).
    let start = format!(
        "/api/v1/agents/{}/start",
        first.body["agent_id"].as_str().unwrap()
    );
    let key = [("Idempotency-Key", "start-1")];
    let started = app.call(Method::POST, &start, &alice, None, &key).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let replayed = app.call(Method::POST, &start, &alice, None, &key).await;
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.body, started.body);
    app.call(
        Method::POST,
        &start,
        &alice,
        None,
        &[("Idempotency-Key", "start-2")],
    )
    .await
    .assert_problem(409, "agent_already_running");
    app.call(
        Method::POST,
        &start,
        &alice,
        None,
        &[("Idempotency-Key", " bad key ")],
    )
    .await
    .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn a_repeated_post_replays_the_first_response_in_memory() {
    replay_and_reuse(&TestApp::embedded().await).await;
}

#[tokio::test]
async fn a_repeated_post_replays_the_first_response_with_valkey() {
    let prefix = test_prefix();
    let app = TestApp::spawn_with(|c| {
        c.valkey_url = Some(valkey_url());
        c.prefix = prefix;
    })
    .await;
    replay_and_reuse(&app).await;
}

#[tokio::test]
async fn concurrent_duplicates_run_once_and_the_other_gets_409_or_the_replay() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let key = [("Idempotency-Key", "race-1")];
    let (a, b) = tokio::join!(
        app.call(
            Method::POST,
            "/api/v1/agents",
            &alice,
            Some(new_agent("race")),
            &key
        ),
        app.call(
            Method::POST,
            "/api/v1/agents",
            &alice,
            Some(new_agent("race")),
            &key
        ),
    );
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&201), "{statuses:?}");
    for r in [&a, &b] {
        assert!(
            r.status == 201 || (r.status == 409 && r.body["code"] == "idempotency_in_progress"),
            "{} {}",
            r.status,
            r.body
        );
    }
    let page = app
        .eventually("/api/v1/agents", &alice, |p| {
            !p["items"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}
