//! Backtests over HTTP (issue "backtests in the product"), on the memory store and on Postgres: a config over a
//! simulated range completes with the kernel's own summary; a CSV with a bad row fails naming its line and column; a
//! paper agent's observations give parity `equal`; ownership, listing and cancel; and a runner that dies mid-run is
//! taken over (run again) or, after too many attempts, the backtest fails with the reason — never `running` forever.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use strom::background::Role as ServerRole;
use strom::backtests::{BacktestRunner, RunnerConfig, MAX_ATTEMPTS};
use strom_api::auth::Role;
use strom_commands::lease::Singleton;
use strom_commands::service::CommandContext;
use strom_domain::{AgentConfig, BacktestCommand, FillModel};
use strom_projections::backtest::{run, BacktestSetup};
use strom_sim::PricePath;
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, TestApp, TestSchema};
use crate::trading::fill;

/// Long enough for a debug-build run of a few thousand bars on a loaded 2-core machine.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

fn config() -> Value {
    json!({
        "name": "sma",
        "symbol": "BTC-USD",
        "strategy": {"kind": "sma_crossover", "params": {"fast": 3, "slow": 8, "qty": "0.5"}},
        "frequency_s": 60,
        "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "1000000"},
        "starting_cash": "100000"
    })
}

const FROM: &str = "2026-01-01T00:00:00Z";
/// 2000 one-minute bars after FROM.
const TO: &str = "2026-01-02T09:20:00Z";

async fn spawn(backend: Backend, runner: bool) -> TestApp {
    let schema = match backend {
        Backend::Memory => None,
        Backend::Postgres => Some(TestSchema::new().await),
    };
    TestApp::try_spawn_with(
        |c| {
            if runner {
                c.background.roles.insert(ServerRole::Backtest);
            }
        },
        schema,
    )
    .await
    .expect("server builds")
}

/// Polls the backtest until `done` holds (the runner works in the background).
async fn until(app: &TestApp, id: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/backtests/{id}");
    let deadline = tokio::time::Instant::now() + RUN_DEADLINE;
    loop {
        let resp = app.get_json(&path, token).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        if done(&resp.body) {
            return resp.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backtest {id} did not get there within {RUN_DEADLINE:?}: {}",
            resp.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn finished(body: &Value) -> bool {
    ["completed", "failed", "cancelled"].contains(&body["status"].as_str().unwrap_or_default())
}

async fn request(app: &TestApp, token: &str, body: Value) -> String {
    let resp = app.post_json("/api/v1/backtests", token, Some(body)).await;
    assert_eq!(resp.status, 202, "{}", resp.body);
    assert_eq!(resp.body["status"], "requested");
    let id = resp.body["backtest_id"].as_str().unwrap().to_owned();
    assert_eq!(
        resp.header("location"),
        Some(format!("/api/v1/backtests/{id}").as_str())
    );
    id
}

fn sim_bars(seed: u64) -> Vec<(DateTime<Utc>, rust_decimal::Decimal)> {
    let from = DateTime::parse_from_rfc3339(FROM).unwrap().timestamp();
    let to = DateTime::parse_from_rfc3339(TO).unwrap().timestamp();
    PricePath::new(seed)
        .bars("BTC-USD", from, to, 60)
        .unwrap()
        .map(|bar| (bar.ts, bar.close))
        .collect()
}

async fn a_config_over_a_simulated_range_completes_with_the_kernels_summary(backend: Backend) {
    let app = spawn(backend, true).await;
    let alice = app.token("alice", &[Role::Trader]);
    let body =
        json!({"config": config(), "source": {"kind": "sim", "seed": 7, "from": FROM, "to": TO}});
    let id = request(&app, &alice, body).await;
    let done = until(&app, &id, &alice, finished).await;
    assert_eq!(done["status"], "completed", "{done}");

    let config: AgentConfig = serde_json::from_value(done["config"].clone()).unwrap();
    let expected = run(
        BacktestSetup {
            backtest_id: id.clone(),
            owner: "alice".into(),
            config,
            fill_model: FillModel::default(),
        },
        sim_bars(7),
    )
    .unwrap();
    assert_eq!(
        done["summary"],
        serde_json::to_value(&expected.summary).unwrap()
    );
    assert_eq!(done["summary"]["bars"], 2000);
    assert!(
        expected.summary.orders > 0,
        "the config trades over the range"
    );
    assert_eq!(
        done["progress"],
        json!({"bars_done": 2000, "bars_total": 2000})
    );
    assert_eq!(done["attempts"], 1);
    let result = &done["result"];
    assert_eq!(result["equity"].as_array().unwrap().len(), 1000, "thinned");
    assert_eq!(
        result["orders"].as_array().unwrap().len() as u64,
        expected.summary.orders
    );
    assert_eq!(
        result["trades"].as_array().unwrap().len() as u64,
        expected.summary.fills
    );
    assert_eq!(result["rejected_orders"], expected.rejected_orders);
    assert_eq!(
        result["metrics"],
        serde_json::to_value(&expected.metrics).unwrap()
    );

    // Ownership as for agents: another user gets 404, an admin sees it; listings hold only one's own.
    let bob = app.token("bob", &[Role::Trader]);
    app.get_json(&format!("/api/v1/backtests/{id}"), &bob)
        .await
        .assert_problem(404, "backtest_not_found");
    app.post_json(&format!("/api/v1/backtests/{id}/cancel"), &bob, None)
        .await
        .assert_problem(404, "backtest_not_found");
    let admin = app.token("root", &[Role::Admin]);
    assert_eq!(
        app.get_json(&format!("/api/v1/backtests/{id}"), &admin)
            .await
            .status,
        200
    );
    let listed = app
        .eventually("/api/v1/backtests", &alice, |p| {
            p["items"][0]["status"] == "completed"
        })
        .await;
    assert_eq!(listed["items"][0]["backtest_id"], id.as_str());
    assert_eq!(listed["items"][0]["result"], Value::Null);
    let theirs = app.get_json("/api/v1/backtests", &bob).await;
    assert_eq!(theirs.body["items"], json!([]));
    // A finished backtest cannot be cancelled.
    app.post_json(&format!("/api/v1/backtests/{id}/cancel"), &alice, None)
        .await
        .assert_problem(409, "backtest_finished");

    // The listing's table is a read model: rebuilt from the log, it is the same.
    if let strom_commands::store::EventStore::Postgres(pg) = &app.handles.store {
        let log = strom_commands::log::PgEventLog::new(pg.pool().clone());
        let (rows, _) = strom_projections::backtests::PgBacktests::new(pg.pool().clone())
            .rebuild(&log)
            .await
            .unwrap();
        assert_eq!(rows, 1);
        let rebuilt = app.get_json("/api/v1/backtests", &alice).await;
        assert_eq!(rebuilt.body, listed);
    }
}

#[tokio::test]
async fn a_config_over_a_simulated_range_completes_with_the_kernels_summary_in_memory() {
    a_config_over_a_simulated_range_completes_with_the_kernels_summary(Backend::Memory).await;
}

#[tokio::test]
async fn a_config_over_a_simulated_range_completes_with_the_kernels_summary_on_postgres() {
    a_config_over_a_simulated_range_completes_with_the_kernels_summary(Backend::Postgres).await;
}

async fn a_csv_with_a_bad_row_fails_naming_its_line_and_column(backend: Backend) {
    let app = spawn(backend, true).await;
    let alice = app.token("alice", &[Role::Trader]);
    // 3000 good rows (well over the 64 KiB of other requests' bodies), then a close that is not a number.
    let mut csv = String::from("ts,open,high,low,close,volume\n");
    let start = DateTime::parse_from_rfc3339(FROM).unwrap().timestamp();
    for minute in 1..=3000 {
        let ts = DateTime::from_timestamp(start + minute * 60, 0).unwrap();
        csv.push_str(&format!("{},100,101,99,100.5,10\n", ts.to_rfc3339()));
    }
    csv.push_str("2026-01-03T02:01:00Z,100,101,99,abc,10\n");
    assert!(csv.len() > 64 * 1024);
    let body = json!({"config": config(), "source": {"kind": "csv", "data": csv}});
    let id = request(&app, &alice, body).await;
    let done = until(&app, &id, &alice, finished).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("line 3002, column 5"), "{error}");
    assert_eq!(done["source"]["kind"], "csv");
    assert_eq!(done["source"]["bytes"], csv.len());

    // The body limit of a backtest request is 16 MiB.
    let huge_csv = "x".repeat(strom_api::extract::MAX_BACKTEST_BODY_BYTES + 1);
    let resp = app
        .client
        .post(format!("{}/api/v1/backtests", app.base))
        .bearer_auth(&alice)
        .json(&json!({"config": config(), "source": {"kind": "csv", "data": huge_csv}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A server-side path is not a source the API takes (specs/05 §6).
    let path = json!({"config": config(), "source": {"kind": "csv", "path": "/etc/passwd"}});
    app.post_json("/api/v1/backtests", &alice, Some(path))
        .await
        .assert_problem(422, "validation_failed");
    // A range of more than 10,000,000 bars is refused up front.
    let huge = json!({"config": config(),
        "source": {"kind": "sim", "seed": 1, "from": "2000-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "step_s": 1}});
    app.post_json("/api/v1/backtests", &alice, Some(huge))
        .await
        .assert_problem(422, "validation_failed");
    // A viewer reads but does not request.
    let viewer = app.token("alice", &[Role::Viewer]);
    let body =
        json!({"config": config(), "source": {"kind": "sim", "seed": 7, "from": FROM, "to": TO}});
    app.post_json("/api/v1/backtests", &viewer, Some(body))
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(
        app.get_json(&format!("/api/v1/backtests/{id}"), &viewer)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_csv_with_a_bad_row_fails_naming_its_line_and_column_in_memory() {
    a_csv_with_a_bad_row_fails_naming_its_line_and_column(Backend::Memory).await;
}

#[tokio::test]
async fn a_csv_with_a_bad_row_fails_naming_its_line_and_column_on_postgres() {
    a_csv_with_a_bad_row_fails_naming_its_line_and_column(Backend::Postgres).await;
}

async fn a_paper_agents_observations_give_parity_equal(backend: Backend) {
    let app = spawn(backend, true).await;
    let carol = app.token("carol", &[Role::Trader]);
    let body = json!({
        "name": "scalper",
        "symbol": "BTC-USD",
        "strategy": {"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.5"}},
        "frequency_s": 10,
        "risk": {"max_position_qty": "10", "max_order_qty": "5", "max_notional": "100000"},
        "starting_cash": "1000"
    });
    let created = app.post_json("/api/v1/agents", &carol, Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let agent = created.body["agent_id"].as_str().unwrap().to_owned();
    let started = app
        .post_json(&format!("/api/v1/agents/{agent}/start"), &carol, None)
        .await;
    assert_eq!(started.status, 200);
    let prices = ["100", "101", "99", "100.5", "102", "99", "100.5", "98"];
    for (i, price) in prices.iter().enumerate() {
        if let Some(order_id) = app
            .record_run(&agent, i as u64 + 1, price, FillModel::default())
            .await
        {
            fill(&app, &agent, &order_id).await;
        }
    }
    let body = json!({"source": {"kind": "observations", "agent_id": agent}});
    let id = request(&app, &carol, body).await;
    let done = until(&app, &id, &carol, finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["agent_id"], agent.as_str());
    assert_eq!(done["summary"]["bars"], prices.len());
    assert_eq!(done["result"]["parity"]["verdict"], "equal", "{done}");
    assert!(done["result"]["parity"]["fills"].as_u64().unwrap() > 0);

    // Another user's agent cannot be backtested (nor its observations read).
    let mallory = app.token("mallory", &[Role::Trader]);
    let body = json!({"source": {"kind": "observations", "agent_id": agent}});
    app.post_json("/api/v1/backtests", &mallory, Some(body))
        .await
        .assert_problem(404, "agent_not_found");
}

#[tokio::test]
async fn a_paper_agents_observations_give_parity_equal_in_memory() {
    a_paper_agents_observations_give_parity_equal(Backend::Memory).await;
}

#[tokio::test]
async fn a_paper_agents_observations_give_parity_equal_on_postgres() {
    a_paper_agents_observations_give_parity_equal(Backend::Postgres).await;
}

#[tokio::test]
async fn a_requested_backtest_can_be_cancelled_once() {
    // No runner: the backtest stays requested until cancelled.
    let app = spawn(Backend::Memory, false).await;
    let alice = app.token("alice", &[Role::Trader]);
    let body =
        json!({"config": config(), "source": {"kind": "sim", "seed": 7, "from": FROM, "to": TO}});
    let id = request(&app, &alice, body).await;
    let cancelled = app
        .post_json(&format!("/api/v1/backtests/{id}/cancel"), &alice, None)
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(cancelled.body["cancelled_at"].is_string());
    app.post_json(&format!("/api/v1/backtests/{id}/cancel"), &alice, None)
        .await
        .assert_problem(409, "backtest_finished");
    app.get_json("/api/v1/backtests/not-a-uuid", &alice)
        .await
        .assert_problem(404, "backtest_not_found");
}

/// What a runner that died mid-run leaves behind: the backtest started, one attempt counted.
async fn left_running(app: &TestApp, id: &str, attempts: u32) {
    let services = &app.handles.commands;
    services
        .backtests
        .execute(
            id,
            || BacktestCommand::StartBacktest { at: Utc::now() },
            &CommandContext::system("backtest", "dead-runner"),
        )
        .await
        .unwrap();
    for _ in 0..attempts {
        app.handles.backtests.begin_attempt(id).await.unwrap();
    }
}

fn runner(app: &TestApp, singleton: Singleton) -> BacktestRunner {
    BacktestRunner::new(
        Arc::clone(&app.handles.commands),
        Arc::clone(&app.handles.backtests),
        singleton,
        Arc::new(Utc::now),
        RunnerConfig {
            idle_poll: Duration::from_millis(50),
            leader_retry: Duration::from_millis(100),
            check_every: Duration::from_millis(100),
        },
    )
}

#[tokio::test]
async fn a_backtest_left_running_by_a_dead_runner_is_run_again_or_failed_with_the_reason() {
    // The server runs no runner of its own: the test plays the dead one and starts the next.
    let app = spawn(Backend::Postgres, false).await;
    let alice = app.token("alice", &[Role::Trader]);
    let sim =
        json!({"config": config(), "source": {"kind": "sim", "seed": 7, "from": FROM, "to": TO}});
    let retried = request(&app, &alice, sim.clone()).await;
    let exhausted = request(&app, &alice, sim).await;
    left_running(&app, &retried, 1).await;
    left_running(&app, &exhausted, MAX_ATTEMPTS).await;
    // Both wait in the read model as `running` before any runner is active.
    app.eventually("/api/v1/backtests", &alice, |p| {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "running")
            && p["items"].as_array().unwrap().len() == 2
    })
    .await;

    // The dead runner's lock is still held (its session lingers): the next instance stands by.
    let options = strom_commands::store::pg_connect_options(
        &crate::support::database_url(),
        app.schema_name(),
    )
    .unwrap();
    let prefix = strom::startup::DEFAULT_PREFIX;
    let singleton =
        || Singleton::postgres(options.clone(), strom::backtests::BACKTEST_ROLE, prefix);
    let dead = singleton()
        .try_acquire()
        .await
        .unwrap()
        .expect("the dead runner's lease");
    let next = runner(&app, singleton());
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { next.run(stop.cancelled_owned()).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = app
        .get_json(&format!("/api/v1/backtests/{retried}"), &alice)
        .await;
    assert_eq!(
        waiting.body["status"], "running",
        "no run without the lease"
    );
    assert_eq!(waiting.body["attempts"], 1);

    // The dead runner's session ends: the standby takes the lease and the backtests over.
    dead.release().await;
    let done = until(&app, &retried, &alice, finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempts"], 2, "run again from the start");
    assert_eq!(done["summary"]["bars"], 2000);
    let failed = until(&app, &exhausted, &alice, finished).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("not run again"),
        "{failed}"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn cancelling_a_running_backtest_stops_its_run() {
    let app = spawn(Backend::Memory, true).await;
    let alice = app.token("alice", &[Role::Trader]);
    // 10,000,000 bars: minutes of work, so it is still running when cancelled.
    let long = json!({"config": config(),
        "source": {"kind": "sim", "seed": 7, "from": "2000-01-01T00:00:00Z", "to": "2019-01-05T10:40:00Z"}});
    let id = request(&app, &alice, long).await;
    let running = until(&app, &id, &alice, |b| {
        b["status"] == "running" && b["progress"]["bars_done"].as_u64().is_some_and(|n| n > 0)
    })
    .await;
    assert_eq!(running["progress"]["bars_total"], 10_000_000);
    let cancelled = app
        .post_json(&format!("/api/v1/backtests/{id}/cancel"), &alice, None)
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    // The runner runs one backtest at a time: the next one completes only if the cancelled run stopped.
    let short =
        json!({"config": config(), "source": {"kind": "sim", "seed": 7, "from": FROM, "to": TO}});
    let next = request(&app, &alice, short).await;
    let done = until(&app, &next, &alice, finished).await;
    assert_eq!(done["status"], "completed", "{done}");
    let stopped = app
        .get_json(&format!("/api/v1/backtests/{id}"), &alice)
        .await;
    assert_eq!(stopped.body["status"], "cancelled");
    assert_eq!(stopped.body["result"], Value::Null);
    assert!(stopped.body["progress"]["bars_done"].as_u64().unwrap() < 10_000_000);
}

/// Opens `GET /api/v1/backtests/stream` as `token`.
async fn open_stream(app: &TestApp, token: &str) -> reqwest::Response {
    crate::stream::open_sse(app, token, "/api/v1/backtests/stream", None).await
}

/// The stream follows the caller's backtests from request to completion, each message a whole `Backtest` (no
/// result), and never shows another user's.
#[tokio::test]
async fn the_backtests_stream_follows_the_callers_backtests_to_their_end_and_no_one_elses() {
    let app = spawn(Backend::Memory, true).await;
    let alice = app.token("alice", &[Role::Trader]);
    let bob = app.token("bob", &[Role::Trader]);
    let mut stream = open_stream(&app, &alice).await;
    let mut buffer = String::new();
    let body =
        json!({"config": config(), "source": {"kind": "sim", "seed": 7, "from": FROM, "to": TO}});
    let bobs = request(&app, &bob, body.clone()).await;
    until(&app, &bobs, &bob, finished).await;
    let alices = request(&app, &alice, body).await;

    let mut statuses = Vec::new();
    loop {
        let message = crate::stream::next_event(&mut stream, &mut buffer, "backtest").await;
        crate::support::contract()
            .validate_at("/components/schemas/Backtest", &message)
            .unwrap_or_else(|e| panic!("{e}\n{message}"));
        assert_eq!(
            message["backtest_id"], alices,
            "only alice's backtest: {message}"
        );
        assert_eq!(message["owner"], "alice");
        assert_eq!(message["result"], Value::Null, "no result on the stream");
        let status = message["status"].as_str().unwrap().to_owned();
        statuses.push(status.clone());
        if status == "completed" {
            assert!(message["summary"].is_object(), "{message}");
            break;
        }
        assert!(
            ["requested", "running"].contains(&status.as_str()),
            "{status}"
        );
    }
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("requested"),
        "{statuses:?}"
    );
    // What the stream said last is what GET says.
    let detail = app
        .get_json(&format!("/api/v1/backtests/{alices}"), &alice)
        .await;
    assert_eq!(detail.body["status"], "completed");
}

/// A stream opened (or reopened) while a backtest is unfinished starts with its state: a client that reconnects
/// misses nothing. Cancelling it is the last message about it.
#[tokio::test]
async fn the_backtests_stream_starts_with_every_unfinished_backtest_of_the_caller() {
    // No runner: the backtest stays requested.
    let app = spawn(Backend::Memory, false).await;
    let alice = app.token("alice", &[Role::Trader]);
    let bob = app.token("bob", &[Role::Trader]);
    let body =
        json!({"config": config(), "source": {"kind": "sim", "seed": 7, "from": FROM, "to": TO}});
    let bobs = request(&app, &bob, body.clone()).await;
    let id = request(&app, &alice, body).await;
    let mut stream = open_stream(&app, &alice).await;
    let mut buffer = String::new();
    let first = crate::stream::next_event(&mut stream, &mut buffer, "backtest").await;
    assert_eq!(first["backtest_id"], id);
    assert_eq!(first["status"], "requested");
    assert!(
        !buffer.contains(&bobs),
        "bob's unfinished backtest is not alice's"
    );

    app.post_json(&format!("/api/v1/backtests/{id}/cancel"), &alice, None)
        .await;
    let last = crate::stream::next_event(&mut stream, &mut buffer, "backtest").await;
    assert_eq!(last["backtest_id"], id);
    assert_eq!(last["status"], "cancelled");
    assert!(last["cancelled_at"].is_string(), "{last}");
}
