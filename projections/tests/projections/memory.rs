//! The memory read model: the projector runner over a memory log, idempotent pages, queries (order, filters,
//! cursors, errors) and the JSON of the views against specs/openapi.yaml.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use strom_commands::log::{EventLog, LogPosition};
use strom_commands::service::AggregateService;
use strom_commands::store::EventStore;
use strom_domain::{Agent, AgentState};
use strom_projections::{
    rebuild_from, AgentFilter, AgentQueries, MemoryReadModel, ProjectionSink, Projector,
    QueryError, AGENTS_PROJECTOR,
};
use strom_tests::scenario::{self, AgentDriver, TWO_AGENTS_IDS};

use crate::support::read_all;

async fn projected_two_agents() -> MemoryReadModel {
    let repo = scenario::two_agents_in_memory().await.unwrap();
    let model = MemoryReadModel::new();
    let projector = Projector::new(AGENTS_PROJECTOR, Arc::new(repo), Arc::new(model.clone()));
    projector.catch_up().await.unwrap();
    model
}

#[tokio::test]
async fn the_projector_folds_the_scenario_into_agents_and_runs() {
    let model = projected_two_agents().await;
    let [a, b] = TWO_AGENTS_IDS;
    let alice = model.get_agent(a).await.unwrap().expect("alice's agent");
    assert_eq!(alice.name, "btc trend (slow)");
    assert_eq!(alice.status, AgentState::Stopped);
    assert_eq!((alice.session, alice.runs_count), (2, 8));
    assert_eq!(alice.last_tick_no, Some(3));
    assert_eq!(alice.next_tick_at, None);
    let bob = model.get_agent(b).await.unwrap().expect("bob's agent");
    assert_eq!(bob.status, AgentState::Archived);
    assert!(bob.archived_at.is_some());
    assert_eq!(model.get_agent("nope").await.unwrap(), None);
}

#[tokio::test]
async fn applying_the_same_page_twice_changes_nothing() {
    let repo = scenario::two_agents_in_memory().await.unwrap();
    let page = repo.read_after(LogPosition::START, 10).await.unwrap();
    let model = MemoryReadModel::new();
    let first = model.apply_page(&page).await.unwrap();
    let once = model.snapshot();
    let second = model.apply_page(&page).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(model.snapshot(), once);
    // A fresh sink given the page twice (no checkpoint yet for the second copy) also ends equal: the fold skips
    // what each row already reflects.
    let fresh = MemoryReadModel::new();
    let doubled: Vec<_> = page.iter().chain(page.iter()).cloned().collect();
    fresh.apply_page(&doubled).await.unwrap();
    assert_eq!(fresh.snapshot().dump(), once.dump());
}

#[tokio::test]
async fn a_rebuild_from_zero_equals_the_live_projection_byte_for_byte() {
    let repo = scenario::two_agents_in_memory().await.unwrap();
    let live = MemoryReadModel::new();
    // Page by page, as the projector applies the log.
    let events = repo.events();
    for page in events.chunks(3) {
        live.apply_page(page).await.unwrap();
    }
    let mut rebuilt = MemoryReadModel::new();
    let done = rebuild_from(&repo, &mut rebuilt, |_| {}).await.unwrap();
    assert_eq!(done.events, events.len() as u64);
    assert_eq!(rebuilt.snapshot().dump(), live.snapshot().dump());
    assert_eq!(rebuilt.snapshot(), live.snapshot());
    // Listing a rebuilt agent's runs pages through them newest first, as live.
    let runs = rebuilt
        .list_runs(TWO_AGENTS_IDS[0], Some(3), None)
        .await
        .unwrap();
    assert_eq!(
        runs,
        live.list_runs(TWO_AGENTS_IDS[0], Some(3), None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn agents_are_listed_newest_first_page_by_page_with_filters() {
    let repo = scenario::deterministic_memory_store();
    let cqrs = AggregateService::<Agent>::new(EventStore::Memory(repo.clone()));
    let ids: Vec<String> = (0..5)
        .map(|i| format!("00000000-0000-4000-8000-00000000000{i}"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let owner = if i % 2 == 0 { "alice" } else { "bob" };
        let config = scenario::config(
            "a",
            "BTC-USD",
            serde_json::json!({"kind": "hold", "params": {}}),
            60,
            100.into(),
            1,
        );
        // Agents 3 and 4 share a creation time: the id breaks the tie.
        let at = (i.min(3) as i64) * 1000;
        AgentDriver::new(&cqrs, id)
            .create(owner, config, at)
            .await
            .unwrap();
    }
    AgentDriver::new(&cqrs, &ids[0])
        .start(10_000)
        .await
        .unwrap();
    let model = MemoryReadModel::new();
    model.apply_page(&read_all(&repo, 6).await).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = model
            .list_agents(&AgentFilter::default(), Some(2), cursor.as_deref())
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|a| a.agent_id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = [4, 3, 2, 1, 0].iter().map(|&i| ids[i].clone()).collect();
    assert_eq!(seen, expected);

    let alices = model
        .list_agents(&AgentFilter::owned_by("alice"), None, None)
        .await
        .unwrap();
    assert_eq!(alices.items.len(), 3);
    assert_eq!(alices.next_cursor, None);
    let running = AgentFilter {
        owner: None,
        status: Some(AgentState::Running),
    };
    let page = model.list_agents(&running, None, None).await.unwrap();
    assert_eq!(
        page.items.iter().map(|a| &a.agent_id).collect::<Vec<_>>(),
        [&ids[0]]
    );
}

#[tokio::test]
async fn runs_are_listed_newest_first_across_sessions() {
    let model = projected_two_agents().await;
    let [a, _] = TWO_AGENTS_IDS;
    let first = model.list_runs(a, Some(3), None).await.unwrap();
    let keys: Vec<(u64, u64)> = first.items.iter().map(|r| (r.session, r.tick_no)).collect();
    assert_eq!(keys, [(2, 3), (2, 1), (1, 6)]);
    let rest = model
        .list_runs(a, Some(200), first.next_cursor.as_deref())
        .await
        .unwrap();
    let keys: Vec<(u64, u64)> = rest.items.iter().map(|r| (r.session, r.tick_no)).collect();
    assert_eq!(keys, [(1, 5), (1, 4), (1, 3), (1, 2), (1, 1)]);
    assert_eq!(rest.next_cursor, None);
    assert!(model
        .list_runs("nobody", None, None)
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn bad_limits_and_cursors_are_typed_errors() {
    let model = projected_two_agents().await;
    let [a, _] = TWO_AGENTS_IDS;
    assert_eq!(
        model.list_runs(a, Some(0), None).await.unwrap_err(),
        QueryError::InvalidLimit(0)
    );
    assert_eq!(
        model
            .list_agents(&AgentFilter::default(), Some(201), None)
            .await
            .unwrap_err(),
        QueryError::InvalidLimit(201)
    );
    let runs_cursor = model
        .list_runs(a, Some(1), None)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    assert_eq!(
        model
            .list_agents(&AgentFilter::default(), None, Some(&runs_cursor))
            .await
            .unwrap_err(),
        QueryError::BadCursor
    );
    assert_eq!(
        model
            .list_runs(a, None, Some("not-a-cursor"))
            .await
            .unwrap_err(),
        QueryError::BadCursor
    );
}

/// Polls (bounded) until `model` shows agent `id` at `version` or later.
async fn wait_for_version(model: &MemoryReadModel, id: &str, version: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = model.get_agent(id).await.unwrap().map(|a| a.version);
        if seen >= Some(version) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent {id} stuck at {seen:?}, want {version}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_running_projector_catches_up_and_applies_new_commits() {
    let repo = scenario::two_agents_in_memory().await.unwrap();
    let store = EventStore::Memory(repo.clone());
    let model = MemoryReadModel::new();
    let projector = Projector::new(AGENTS_PROJECTOR, Arc::new(repo), Arc::new(model.clone()))
        .woken_by(store.commits());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(projector.run(async {
        stopped.await.ok();
    }));
    let [a, _] = TWO_AGENTS_IDS;
    wait_for_version(&model, a, 17).await;
    let agents = AggregateService::<Agent>::new(store);
    AgentDriver::new(&agents, a).start(900_000).await.unwrap();
    wait_for_version(&model, a, 18).await;
    assert_eq!(
        model.get_agent(a).await.unwrap().unwrap().status,
        AgentState::Running
    );
    stop.send(()).unwrap();
    running.await.unwrap();
}

fn openapi_schema(name: &str) -> serde_yaml::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["components"]["schemas"][name].clone()
}

fn assert_has_required(json: &Value, schema: &str) {
    let required = openapi_schema(schema)["required"].clone();
    let required: Vec<String> = serde_yaml::from_value(required).unwrap();
    for field in required {
        assert!(
            json.get(&field).is_some(),
            "{schema} lacks `{field}`: {json}"
        );
    }
    let properties = openapi_schema(schema)["properties"].clone();
    let properties: serde_yaml::Mapping = serde_yaml::from_value(properties).unwrap();
    for key in json.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(serde_yaml::Value::String(key.clone())),
            "{schema} has no property `{key}`"
        );
    }
}

#[tokio::test]
async fn views_serialize_as_the_openapi_agent_and_run_schemas() {
    let model = projected_two_agents().await;
    let [a, _] = TWO_AGENTS_IDS;
    let agent = serde_json::to_value(model.get_agent(a).await.unwrap().unwrap()).unwrap();
    assert_has_required(&agent, "Agent");
    assert_eq!(agent["created_at"], "2026-11-22T10:00:00.000Z");
    assert_eq!(agent["starting_cash"], "10000.00");
    assert_eq!(agent["status"], "stopped");
    assert_eq!(agent["seed"], 7);
    assert_eq!(agent["next_tick_at"], Value::Null);
    assert_eq!(agent["risk"]["max_daily_loss"], Value::Null);
    let page = serde_json::to_value(model.list_runs(a, Some(200), None).await.unwrap()).unwrap();
    assert_eq!(page["next_cursor"], Value::Null);
    let runs = page["items"].as_array().unwrap();
    for run in runs {
        assert_has_required(run, "Run");
        assert_has_required(&run["observation"], "Observation");
    }
    let signalled: Vec<&Value> = runs
        .iter()
        .filter(|r| r["outcome"] == "signalled")
        .collect();
    assert!(!signalled.is_empty(), "the scenario's crossings signal");
    for run in signalled {
        assert_has_required(&run["signal"], "Signal");
    }
    let late = runs
        .iter()
        .find(|r| r["session"] == 2 && r["tick_no"] == 3)
        .unwrap();
    assert_eq!(late["lateness_ms"], 900);
}
