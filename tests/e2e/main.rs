//! End-to-end: the `strom` binary, driven over HTTP only. M1 scenario: create an agent → start it → run records
//! appear at the agent's frequency → stop it → no more runs. M2 scenario ([`trading`]): an agent paper-trades. Each
//! once on real Postgres + NATS, once embedded.

mod parity;
mod trading;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use strom_tests::{eventually, Backing, Server};

/// Runs the scenario waits for: three 1-second ticks take about 3 s; the rest is start-up slack on a busy machine.
const RUNS_DEADLINE: Duration = Duration::from_secs(30);
const FREQUENCY_S: i64 = 1;
const RUNS_WANTED: usize = 3;

async fn create_start_run_stop(backing: Backing) {
    let server = Server::start(backing.clone(), &[])
        .await
        .expect("server starts");
    let token = server.token("alice", "trader");

    let (status, agent) = server
        .call(
            Method::POST,
            "/api/v1/agents",
            &token,
            Some(json!({"name": "e2e", "symbol": "BTC-USD", "frequency_s": FREQUENCY_S, "starting_cash": "10000"})),
        )
        .await;
    assert_eq!(status, 201, "create: {agent}\n{}", server.log());
    assert_eq!(agent["status"], "stopped");
    let id = agent["agent_id"].as_str().expect("agent_id").to_owned();

    let (status, started) = server
        .call(
            Method::POST,
            &format!("/api/v1/agents/{id}/start"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "start: {started}");
    assert_eq!(started["status"], "running");
    assert!(
        started["next_tick_at"].is_string(),
        "a running agent shows its next tick: {started}"
    );

    let runs_path = format!("/api/v1/agents/{id}/runs?limit=200");
    let runs: Vec<Value> = eventually(
        RUNS_DEADLINE,
        "three runs to be recorded and projected",
        || async {
            let (status, page) = server.call(Method::GET, &runs_path, &token, None).await;
            assert_eq!(status, 200, "runs: {page}");
            let items = page["items"].as_array().cloned().unwrap_or_default();
            (items.len() >= RUNS_WANTED).then_some(items)
        },
    )
    .await;
    // Newest first; tick numbers of session 1 are consecutive and scheduled one frequency apart.
    let mut ticks: Vec<(i64, chrono::DateTime<chrono::Utc>)> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["session"], 1, "{r}");
            assert_eq!(r["outcome"], "observed", "{r}");
            assert!(r["observation"]["price"].is_string(), "{r}");
            (
                r["tick_no"].as_i64().expect("tick_no"),
                r["scheduled_at"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert!(
        ticks.windows(2).all(|w| w[0].0 > w[1].0),
        "newest first: {runs:?}"
    );
    ticks.reverse();
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "consecutive tick numbers: {ticks:?}"
        );
        assert_eq!(
            (pair[1].1 - pair[0].1).num_seconds(),
            FREQUENCY_S,
            "one frequency apart: {ticks:?}"
        );
    }

    let (status, stopped) = server
        .call(
            Method::POST,
            &format!("/api/v1/agents/{id}/stop"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "stop: {stopped}");
    assert_eq!(stopped["status"], "stopped");
    let last_tick = stopped["last_tick_no"]
        .as_i64()
        .expect("last_tick_no at stop");

    // The aggregate refuses runs once stopped, so the projected runs settle at the tick count the stop saw, and stay
    // there while at least three more ticks would have been due.
    eventually(
        RUNS_DEADLINE,
        "runs to settle at the stop's last tick",
        || async {
            let (_, page) = server.call(Method::GET, &runs_path, &token, None).await;
            let newest = page["items"][0]["tick_no"].as_i64();
            (newest == Some(last_tick)).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3 * FREQUENCY_S as u64)).await;
    let (_, page) = server.call(Method::GET, &runs_path, &token, None).await;
    assert_eq!(
        page["items"][0]["tick_no"].as_i64(),
        Some(last_tick),
        "a run after the stop: {page}"
    );
    let (_, agent) = server
        .call(Method::GET, &format!("/api/v1/agents/{id}"), &token, None)
        .await;
    assert_eq!(agent["status"], "stopped", "{agent}");
    assert_eq!(
        agent["runs_count"].as_i64(),
        Some(page["items"].as_array().unwrap().len() as i64),
        "{agent}"
    );
}

#[tokio::test]
async fn agent_lifecycle_on_postgres_and_nats() {
    create_start_run_stop(Backing::Services).await;
}

#[tokio::test]
async fn agent_lifecycle_embedded() {
    create_start_run_stop(Backing::Embedded).await;
}
