//! The audit endpoints (issue 10): an agent's own event stream, paged oldest first with every event's correlation
//! id, and its hash chain verified by the replay CLI's verifier — intact on an untouched store, the altered sequence
//! named after an event is edited behind the trigger's back. On the memory store and on Postgres; others' agents
//! are 404.

use reqwest::Method;
use serde_json::{json, Value};
use strom_api::auth::Role;
use strom_commands::store::EventStore;
use strom_domain::FillModel;

use crate::support::{Backend, TestApp};

fn path(id: &str, suffix: &str) -> String {
    format!("/api/v1/agents/{id}{suffix}")
}

/// An agent of `owner` created with correlation id `create-1`, started with `start-1`, then three runs recorded
/// (`tick-1`..`tick-3`); returns its id.
async fn agent_with_history(app: &TestApp, owner: &str) -> String {
    let body = json!({
        "name": "audited",
        "symbol": "BTC-USD",
        "strategy": {"kind": "hold", "params": {}},
        "frequency_s": 10,
        "risk": {"max_position_qty": "10", "max_order_qty": "5", "max_notional": "100000"},
        "starting_cash": "1000"
    });
    let created = app
        .call(
            Method::POST,
            "/api/v1/agents",
            owner,
            Some(body),
            &[("x-request-id", "create-1")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["agent_id"].as_str().unwrap().to_owned();
    let started = app
        .call(
            Method::POST,
            &path(&id, "/start"),
            owner,
            None,
            &[("x-request-id", "start-1")],
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    for (tick_no, price) in [(1, "100"), (2, "101"), (3, "99")] {
        app.record_run(&id, tick_no, price, FillModel::default())
            .await;
    }
    id
}

/// Every event of the agent's timeline, following `next_cursor` with pages of `limit`; also the number of pages.
async fn whole_timeline(app: &TestApp, id: &str, token: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit={limit}&cursor={c}"),
            None => format!("?limit={limit}"),
        };
        let page = app
            .get_json(&path(id, &format!("/events{query}")), token)
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        events.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (events, pages),
        }
    }
}

async fn timeline_and_chain(backend: Backend) {
    let app = TestApp::on(backend).await;
    let dora = app.token("dora", &[Role::Trader]);
    let id = agent_with_history(&app, &dora).await;
    let viewer = app.token("dora", &[Role::Viewer]);

    let (events, pages) = whole_timeline(&app, &id, &viewer, 2).await;
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    let n = sequences.len() as u64;
    assert!(n >= 5, "create, start and three runs: {events:?}");
    assert_eq!(
        sequences,
        (1..=n).collect::<Vec<_>>(),
        "in sequence order, none twice"
    );
    assert_eq!(pages, usize::try_from(n.div_ceil(2)).unwrap());
    assert_eq!(events[0]["event_type"], "AgentCreated");
    assert_eq!(events[0]["metadata"]["correlation_id"], "create-1");
    assert_eq!(events[0]["metadata"]["actor"], "dora");
    assert_eq!(events[1]["event_type"], "AgentStarted");
    assert_eq!(events[1]["metadata"]["correlation_id"], "start-1");
    for tick in ["tick-1", "tick-2", "tick-3"] {
        assert!(
            events
                .iter()
                .any(|e| e["metadata"]["correlation_id"] == tick),
            "{tick} missing: {events:?}"
        );
    }
    assert!(events.iter().all(|e| e["aggregate_id"] == id.as_str()
        && e["metadata"]["correlation_id"].is_string()
        && e["position"]["global_position"].is_i64()));

    // One page holds everything: no cursor.
    let all = app.get_json(&path(&id, "/events"), &viewer).await;
    assert_eq!(all.body["items"].as_array().unwrap().len() as u64, n);
    assert_eq!(all.body["next_cursor"], Value::Null);

    let chain = app.get_json(&path(&id, "/chain"), &viewer).await;
    assert_eq!(chain.status, 200, "{}", chain.body);
    assert_eq!(chain.body["verified"], true, "{}", chain.body);
    assert_eq!(chain.body["events"], n);
    assert_eq!(chain.body["head_hash"], events.last().unwrap()["hash"]);
    assert_eq!(chain.body["problems"], json!([]));

    // Another user's agent is as missing as an unknown one; an admin sees it.
    let eve = app.token("eve", &[Role::Trader]);
    for suffix in ["/events", "/chain"] {
        app.get_json(&path(&id, suffix), &eve)
            .await
            .assert_problem(404, "agent_not_found");
        let unknown = uuid::Uuid::new_v4().to_string();
        app.get_json(&path(&unknown, suffix), &viewer)
            .await
            .assert_problem(404, "agent_not_found");
    }
    let admin = app.token("root", &[Role::Admin]);
    assert_eq!(
        app.get_json(&path(&id, "/chain"), &admin).await.body["verified"],
        true
    );
    // A cursor of another listing, or a limit out of range, is a bad request.
    app.get_json(&path(&id, "/events?cursor=72317c317c31"), &viewer)
        .await
        .assert_problem(400, "bad_request");
    app.get_json(&path(&id, "/events?limit=0"), &viewer)
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn audit_timeline_and_chain_check_on_memory() {
    timeline_and_chain(Backend::Memory).await;
}

#[tokio::test]
async fn audit_timeline_and_chain_check_on_postgres() {
    timeline_and_chain(Backend::Postgres).await;
}

#[tokio::test]
async fn audit_chain_check_names_an_event_edited_behind_the_triggers_back() {
    let app = TestApp::on(Backend::Postgres).await;
    let dora = app.token("dora", &[Role::Trader]);
    let id = agent_with_history(&app, &dora).await;
    let EventStore::Postgres(store) = &app.handles.store else {
        panic!("a Postgres server has a Postgres store");
    };
    // As only the table owner could: the append-only guard and the hash trigger off, one payload edited.
    let mut tx = store.pool().begin().await.unwrap();
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER USER",
        &format!(
            r#"UPDATE events SET payload = jsonb_set(payload::jsonb, '{{AgentCreated,name}}', '"tampered"')::json
                WHERE aggregate_id = '{id}' AND sequence = 1"#
        ),
        "ALTER TABLE events ENABLE TRIGGER USER",
    ] {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();

    let chain = app.get_json(&path(&id, "/chain"), &dora).await;
    assert_eq!(chain.status, 200, "{}", chain.body);
    assert_eq!(chain.body["verified"], false, "{}", chain.body);
    let problems = chain.body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{}", chain.body);
    assert_eq!(problems[0]["sequence"], 1);
    assert_eq!(problems[0]["problem"], "altered_event");
    assert!(
        problems[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("altered event: Agent/{id} sequence 1")),
        "{}",
        chain.body
    );
}
