//! Agent lifecycle over HTTP (issue "M1 agent lifecycle"), on the memory store and on Postgres: create → get →
//! list (paging) → patch → start → stop → archive; validation, ownership, roles and state conflicts.

use chrono::Utc;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use strom_api::auth::Role;

use crate::support::{Backend, TestApp};

pub fn new_agent(name: &str) -> Value {
    json!({
        "name": name,
        "symbol": "BTC-USD",
        "strategy": {"kind": "sma_crossover", "params": {"fast": 5, "slow": 20}},
        "frequency_s": 60,
        "starting_cash": "10000"
    })
}

/// Creates an agent as `token`'s user and returns its JSON.
pub async fn create(app: &TestApp, token: &str, name: &str) -> Value {
    let resp = app
        .post_json("/api/v1/agents", token, Some(new_agent(name)))
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    resp.body
}

fn path(agent: &Value, suffix: &str) -> String {
    format!(
        "/api/v1/agents/{}{suffix}",
        agent["agent_id"].as_str().unwrap()
    )
}

async fn lifecycle(backend: Backend) {
    let app = TestApp::on(backend).await;
    let alice = app.token("alice", &[Role::Trader]);

    // create
    let resp = app
        .post_json("/api/v1/agents", &alice, Some(new_agent("btc trend")))
        .await;
    assert_eq!(resp.status, 201, "{}", resp.body);
    let agent = resp.body.clone();
    assert_eq!(resp.header("location"), Some(path(&agent, "").as_str()));
    assert_eq!(agent["owner"], "alice");
    assert_eq!(agent["status"], "stopped");
    assert_eq!(agent["version"], 1);
    assert_eq!(agent["seed"], 42, "the default seed");
    assert_eq!(
        agent["strategy"],
        json!({"kind": "sma_crossover", "params": {"fast": 5, "slow": 20, "qty": "1"}}),
        "defaults written out"
    );
    assert_eq!(
        agent["risk"],
        json!({"max_position_qty": "1", "max_order_qty": "1", "max_notional": "10000", "max_daily_loss": null})
    );
    assert_eq!(agent["next_tick_at"], Value::Null);

    // get (read model) shows what the command answered
    let got = app
        .eventually(&path(&agent, ""), &alice, |a| a["version"] == 1)
        .await;
    assert_eq!(got, agent);

    // patch
    let resp = app
        .call(
            Method::PATCH,
            &path(&agent, ""),
            &alice,
            Some(json!({"name": "renamed", "frequency_s": 5})),
            &[],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["name"], "renamed");
    assert_eq!(resp.body["frequency_s"], 5);
    assert_eq!(resp.body["symbol"], "BTC-USD");
    assert_eq!(resp.body["version"], 2);
    assert_eq!(resp.body["created_at"], agent["created_at"]);

    // start
    let resp = app.post_json(&path(&agent, "/start"), &alice, None).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["status"], "running");
    assert_eq!(resp.body["session"], 1);
    let started_at = resp.body["started_at"].as_str().unwrap().to_owned();
    assert!(started_at.ends_with(".000Z"), "whole seconds: {started_at}");
    let next = resp.body["next_tick_at"]
        .as_str()
        .expect("a countdown while running");
    assert!(next > started_at.as_str(), "{next} after {started_at}");

    // illegal transitions
    app.post_json(&path(&agent, "/start"), &alice, None)
        .await
        .assert_problem(409, "agent_already_running");
    let body = app
        .post_json(&path(&agent, "/archive"), &alice, None)
        .await
        .assert_problem(409, "agent_running")
        .clone();
    assert_eq!(body["current_state"], "running");
    app.call(
        Method::PATCH,
        &path(&agent, ""),
        &alice,
        Some(json!({"name": "x"})),
        &[],
    )
    .await
    .assert_problem(409, "agent_running");

    // stop with a reason, then archive
    let resp = app
        .post_json(
            &path(&agent, "/stop"),
            &alice,
            Some(json!({"reason": "lunch"})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["status"], "stopped");
    assert!(resp.body["stopped_at"].is_string());
    assert_eq!(resp.body["next_tick_at"], Value::Null);
    app.post_json(&path(&agent, "/stop"), &alice, None)
        .await
        .assert_problem(409, "agent_not_running");
    let resp = app.post_json(&path(&agent, "/archive"), &alice, None).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["status"], "archived");
    let body = app
        .post_json(&path(&agent, "/start"), &alice, None)
        .await
        .assert_problem(409, "agent_archived")
        .clone();
    assert_eq!(body["current_state"], "archived");
    let final_version = resp.body["version"].clone();
    let got = app
        .eventually(&path(&agent, ""), &alice, |a| a["version"] == final_version)
        .await;
    assert_eq!(got["status"], "archived");
    assert_eq!(got["stopped_at"], resp.body["stopped_at"]);
}

#[tokio::test]
async fn an_agent_goes_through_its_lifecycle_on_memory() {
    lifecycle(Backend::Memory).await;
}

#[tokio::test]
async fn an_agent_goes_through_its_lifecycle_on_postgres() {
    lifecycle(Backend::Postgres).await;
}

async fn paging(backend: Backend) {
    let app = TestApp::on(backend).await;
    let alice = app.token("alice", &[Role::Trader]);
    let bob = app.token("bob", &[Role::Trader]);
    let mut created = Vec::new();
    for name in ["one", "two", "three"] {
        created.push(create(&app, &alice, name).await["agent_id"].clone());
    }
    let bobs = create(&app, &bob, "bob's").await;
    app.eventually("/api/v1/agents?limit=200", &alice, |p| {
        p["items"].as_array().unwrap().len() == 3
    })
    .await;

    // Pages of two, newest first, until next_cursor is null.
    let mut seen = Vec::new();
    let mut url = "/api/v1/agents?limit=2".to_owned();
    loop {
        let page = app.get_json(&url, &alice).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|a| a["agent_id"].clone()));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/v1/agents?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(
        seen, created,
        "alice sees her three agents, newest first, once each"
    );

    // An admin sees everyone's.
    let admin = app.token("root", &[Role::Admin]);
    let all = app
        .eventually("/api/v1/agents?limit=200", &admin, |p| {
            p["items"].as_array().unwrap().len() == 4
        })
        .await;
    assert!(all["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["agent_id"] == bobs["agent_id"]));

    app.get_json("/api/v1/agents?limit=0", &alice)
        .await
        .assert_problem(400, "bad_request");
    app.get_json("/api/v1/agents?limit=201", &alice)
        .await
        .assert_problem(400, "bad_request");
    app.get_json("/api/v1/agents?cursor=not-a-cursor", &alice)
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn agents_list_in_pages_on_memory() {
    paging(Backend::Memory).await;
}

#[tokio::test]
async fn agents_list_in_pages_on_postgres() {
    paging(Backend::Postgres).await;
}

#[tokio::test]
async fn invalid_configs_are_422_naming_the_field() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let cases = [
        (json!({"symbol": "btc/usd"}), "/symbol"),
        (
            json!({"strategy": {"kind": "sma_crossover", "params": {"fast": 20, "slow": 20}}}),
            "/strategy/params/slow",
        ),
        (json!({"frequency_s": 0}), "/frequency_s"),
        (json!({"starting_cash": "-5"}), "/starting_cash"),
        (json!({"colour": "red"}), "/colour"),
        (json!({"frequency_s": "often"}), "/frequency_s"),
    ];
    for (change, field) in cases {
        let mut body = new_agent("bad");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = app.post_json("/api/v1/agents", &alice, Some(body)).await;
        let problem = resp.assert_problem(422, "validation_failed");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let mut missing = new_agent("x");
    missing.as_object_mut().unwrap().remove("name");
    let resp = app.post_json("/api/v1/agents", &alice, Some(missing)).await;
    assert_eq!(
        resp.assert_problem(422, "validation_failed")["field"],
        "/name"
    );
    // Nothing was created by any of them.
    let page = app.get_json("/api/v1/agents", &alice).await;
    assert_eq!(page.body["items"], json!([]));
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_400_and_413() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let resp = app
        .client
        .post(format!("{}/api/v1/agents", app.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    crate::support::Response::read(Method::POST, "/api/v1/agents", resp)
        .await
        .assert_problem(400, "bad_request");
    let mut big = new_agent("big");
    big["name"] = json!("x".repeat(strom_api::extract::MAX_BODY_BYTES));
    let resp = app
        .client
        .post(format!("{}/api/v1/agents", app.base))
        .bearer_auth(&alice)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
}

#[tokio::test]
async fn unknown_agents_are_404() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let unknown = format!("/api/v1/agents/{}", uuid::Uuid::new_v4());
    app.get_json(&unknown, &alice)
        .await
        .assert_problem(404, "agent_not_found");
    app.post_json(&format!("{unknown}/start"), &alice, None)
        .await
        .assert_problem(404, "agent_not_found");
    app.get_json("/api/v1/agents/not-a-uuid", &alice)
        .await
        .assert_problem(404, "agent_not_found");
}

#[tokio::test]
async fn another_traders_agent_is_404_but_an_admin_sees_and_acts_on_it() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let bob = app.token("bob", &[Role::Trader]);
    let admin = app.token("root", &[Role::Admin]);
    let agent = create(&app, &alice, "mine").await;
    app.eventually(&path(&agent, ""), &alice, |_| true).await;

    let unknown = app
        .get_json(&format!("/api/v1/agents/{}", uuid::Uuid::new_v4()), &bob)
        .await;
    let hidden = app.get_json(&path(&agent, ""), &bob).await;
    hidden.assert_problem(404, "agent_not_found");
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("instance");
        v
    };
    assert_eq!(
        strip(&hidden.body),
        strip(&unknown.body),
        "no existence oracle"
    );
    app.post_json(&path(&agent, "/start"), &bob, None)
        .await
        .assert_problem(404, "agent_not_found");
    app.get_json(&path(&agent, "/runs"), &bob)
        .await
        .assert_problem(404, "agent_not_found");
    let resp = app.get(&path(&agent, "/stream"), Some(&bob)).await;
    assert_eq!(resp.status(), 404);

    let seen = app.get_json(&path(&agent, ""), &admin).await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.body["owner"], "alice");
    let started = app.post_json(&path(&agent, "/start"), &admin, None).await;
    assert_eq!(started.status, 200, "{}", started.body);
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_command() {
    let app = TestApp::embedded().await;
    let viewer = app.token("vera", &[Role::Viewer]);
    app.post_json("/api/v1/agents", &viewer, Some(new_agent("nope")))
        .await
        .assert_problem(403, "forbidden");
    // Role is checked before the body: an invalid body from a viewer is still 403.
    app.post_json("/api/v1/agents", &viewer, Some(json!({"bad": true})))
        .await
        .assert_problem(403, "forbidden");
    let resp = app.get_json("/api/v1/agents", &viewer).await;
    assert_eq!(resp.status, 200);
    let resp = app.get_json("/api/v1/strategies", &viewer).await;
    assert_eq!(resp.status, 200);
    let kinds: Vec<&str> = resp.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["hold", "sma_crossover", "mean_reversion"]);
}

async fn runs(backend: Backend) {
    let app = TestApp::on(backend).await;
    let alice = app.token("alice", &[Role::Trader]);
    let agent = create(&app, &alice, "runner").await;
    let id = agent["agent_id"].as_str().unwrap().to_owned();
    let started = app.post_json(&path(&agent, "/start"), &alice, None).await;
    assert_eq!(started.status, 200);

    // The runtime's part, played by the test: three runs through the command services.
    for tick_no in 1..=3u64 {
        let price = (100 + tick_no).to_string();
        app.record_run(&id, tick_no, &price, strom_domain::FillModel::default())
            .await;
    }
    let page = app
        .eventually(&path(&agent, "/runs"), &alice, |p| {
            p["items"].as_array().unwrap().len() == 3
        })
        .await;
    let ticks: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tick_no"].as_u64().unwrap())
        .collect();
    assert_eq!(ticks, [3, 2, 1], "newest first");
    assert_eq!(page["items"][0]["observation"]["price"], "103");

    let first = app
        .get_json(&format!("{}?limit=2", path(&agent, "/runs")), &alice)
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().expect("a second page");
    let second = app
        .get_json(
            &format!("{}?limit=2&cursor={cursor}", path(&agent, "/runs")),
            &alice,
        )
        .await;
    assert_eq!(second.body["items"][0]["tick_no"], 1);
    assert_eq!(second.body["next_cursor"], Value::Null);

    let got = app
        .eventually(&path(&agent, ""), &alice, |a| a["runs_count"] == 3)
        .await;
    assert_eq!(got["last_tick_no"], 3);
}

#[tokio::test]
async fn runs_are_listed_newest_first_on_memory() {
    runs(Backend::Memory).await;
}

#[tokio::test]
async fn runs_are_listed_newest_first_on_postgres() {
    runs(Backend::Postgres).await;
}

#[tokio::test]
async fn the_latest_price_comes_from_the_price_board() {
    let app = TestApp::embedded().await;
    let viewer = app.token("vera", &[Role::Viewer]);
    app.get_json("/api/v1/market/BTC-USD", &viewer)
        .await
        .assert_problem(404, "no_price");
    let board = app.handles.bus.price_board().await.unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    board
        .put(&strom_sim::PriceObserved {
            symbol: "BTC-USD".into(),
            price: Decimal::new(10125, 2),
            at,
            seed: 42,
        })
        .await
        .unwrap();
    let resp = app.get_json("/api/v1/market/BTC-USD", &viewer).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.body,
        json!({"symbol": "BTC-USD", "price": "101.25", "at": "2026-11-22T10:00:00.000Z"})
    );
}

#[tokio::test]
async fn a_stop_reason_of_500_characters_is_accepted_and_501_is_refused_naming_the_field() {
    let app = TestApp::embedded().await;
    let alice = app.token("alice", &[Role::Trader]);
    let agent = create(&app, &alice, "long reasons").await;
    let resp = app.post_json(&path(&agent, "/start"), &alice, None).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    // The bound is the domain's (`MAX_STOP_REASON_CHARS`, 500 characters, counted as characters, not bytes).
    let too_long = "é".repeat(501);
    let body = app
        .post_json(
            &path(&agent, "/stop"),
            &alice,
            Some(json!({ "reason": too_long })),
        )
        .await
        .assert_problem(422, "validation_failed")
        .clone();
    assert_eq!(body["field"], "/reason");
    let longest = "é".repeat(500);
    let resp = app
        .post_json(
            &path(&agent, "/stop"),
            &alice,
            Some(json!({ "reason": longest })),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body["status"], "stopped");
}
