//! The parity rule, proven on Postgres + NATS through the real scheduler, runtime and execution roles: three paper
//! agents (both trading strategies, different seeds and symbols) trade, one is stopped and started again (a second
//! session), the whole server restarts mid-run, they trade on and stop. Then, per agent:
//! - `strom parity <id>` backtests its observations with its config and fill model and reports `equal`;
//! - `strom replay --export-observations <id>` writes them as CSV, and `strom backtest` over that file (the user's
//!   path) ends with the paper agent's cash, position and fill count.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use strom_tests::{eventually, strom_bin, Backing, Server};

/// Signals come within a few 1-second ticks; the rest is start-up slack on a busy machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// Every item of a listing, page by page.
async fn items(server: &Server, token: &str, path: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=200&cursor={c}"),
            None => format!("{path}?limit=200"),
        };
        let (status, page) = server.call(Method::GET, &url, token, None).await;
        assert_eq!(status, 200, "{url}: {page}");
        all.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

async fn fills(server: &Server, token: &str, id: &str) -> usize {
    items(server, token, &format!("/api/v1/agents/{id}/trades"))
        .await
        .len()
}

/// Waits until every agent in `ids` has at least `wanted` fills and no order waits for its fill.
async fn trade_until(server: &Server, token: &str, ids: &[String], wanted: usize, what: &str) {
    eventually(DEADLINE, what, || async {
        for id in ids {
            let orders = items(server, token, &format!("/api/v1/agents/{id}/orders")).await;
            if orders.iter().any(|o| o["status"] == "accepted") {
                return None;
            }
            if fills(server, token, id).await < wanted {
                return None;
            }
        }
        Some(())
    })
    .await;
}

async fn post(server: &Server, token: &str, path: &str) {
    let (status, body) = server.call(Method::POST, path, token, None).await;
    assert_eq!(status, 200, "{path}: {body}\n{}", server.log());
}

fn strom(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(strom_bin())
        .args(args)
        .env_remove("STROM_DATABASE_URL")
        .envs(server.env().iter().map(|(k, v)| (k, v)))
        .output()
        .expect("strom runs")
}

#[tokio::test]
async fn backtests_over_paper_agents_observations_reproduce_their_trading_records() {
    let mut server = Server::start(
        Backing::Services,
        &[
            ("STROM_FILL_FEE_BPS", "10"),
            ("STROM_FILL_SLIPPAGE_BPS", "5"),
        ],
    )
    .await
    .expect("server starts");
    let token = server.token("alice", "trader");
    let configs = [
        json!({"name": "sma fast", "symbol": "BTC-USD", "seed": 1, "frequency_s": 1, "starting_cash": "100000",
               "strategy": {"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.5"}},
               "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "100000",
                        "max_daily_loss": "50"}}),
        json!({"name": "sma slower", "symbol": "ETH-USD", "seed": 2, "frequency_s": 1, "starting_cash": "50000",
               "strategy": {"kind": "sma_crossover", "params": {"fast": 1, "slow": 3, "qty": "2"}},
               "risk": {"max_position_qty": "4", "max_order_qty": "2", "max_notional": "50000"}}),
        json!({"name": "reversion", "symbol": "SOL-USD", "seed": 3, "frequency_s": 1, "starting_cash": "20000",
               "strategy": {"kind": "mean_reversion", "params": {"window": 2, "threshold_pct": "0.002", "qty": "3"}},
               "risk": {"max_position_qty": "6", "max_order_qty": "3", "max_notional": "20000"}}),
    ];
    let mut ids = Vec::new();
    for config in configs {
        let (status, agent) = server
            .call(Method::POST, "/api/v1/agents", &token, Some(config))
            .await;
        assert_eq!(status, 201, "create: {agent}\n{}", server.log());
        let id = agent["agent_id"].as_str().unwrap().to_owned();
        post(&server, &token, &format!("/api/v1/agents/{id}/start")).await;
        ids.push(id);
    }
    trade_until(&server, &token, &ids, 1, "every agent to fill an order").await;

    // A second session for the first agent.
    post(&server, &token, &format!("/api/v1/agents/{}/stop", ids[0])).await;
    post(&server, &token, &format!("/api/v1/agents/{}/start", ids[0])).await;
    trade_until(&server, &token, &ids, 2, "two fills each").await;

    // Every role restarts mid-run (at a moment when no order waits for its fill).
    server.restart().await.expect("server restarts");
    let before: Vec<usize> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(fills(&server, &token, id).await);
        }
        v
    };
    eventually(
        DEADLINE,
        "a fill after the restart for every agent",
        || async {
            for (id, n) in ids.iter().zip(&before) {
                if fills(&server, &token, id).await <= *n {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for id in &ids {
        post(&server, &token, &format!("/api/v1/agents/{id}/stop")).await;
    }
    trade_until(&server, &token, &ids, 3, "orders settled after the stop").await;

    let dir = std::env::temp_dir().join(format!("strom-parity-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for id in &ids {
        let runs = items(&server, &token, &format!("/api/v1/agents/{id}/runs")).await;
        assert!(
            runs.iter().all(|r| r["outcome"] != "skipped"),
            "agent {id} skipped a run behind an unfilled order, which voids parity: {runs:?}"
        );
        let sessions: std::collections::BTreeSet<i64> = runs
            .iter()
            .map(|r| r["session"].as_i64().unwrap())
            .collect();
        if id == &ids[0] {
            assert_eq!(sessions.len(), 2, "two sessions: {sessions:?}");
        }

        let out = strom(&server, &["parity", id, "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "parity JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(
            out.status.success(),
            "{report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(report["verdict"], "equal", "{report}");
        assert_eq!(
            report["observations"].as_u64(),
            Some(runs.len() as u64),
            "{report}"
        );
        assert_eq!(
            report["pnl_points"].as_u64(),
            Some(runs.len() as u64),
            "{report}"
        );
        let trades = fills(&server, &token, id).await;
        assert_eq!(report["fills"].as_u64(), Some(trades as u64), "{report}");
        assert!(trades >= 3, "{report}");

        // The same through files, as a user would.
        let out = strom(&server, &["replay", "--export-observations", id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = dir.join(format!("{id}.csv"));
        std::fs::write(&csv, &out.stdout).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            runs.len() + 1,
            "a header and one row per run"
        );
        let config = dir.join(format!("{id}.json"));
        std::fs::write(&config, serde_json::to_vec(&report["config"]).unwrap()).unwrap();
        let out = strom(
            &server,
            &[
                "backtest",
                "--config",
                config.to_str().unwrap(),
                "--csv",
                csv.to_str().unwrap(),
                "--fill-slippage-bps",
                "5",
                "--fill-fee-bps",
                "10",
                "--json",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let backtest: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (_, position) = server
            .call(
                Method::GET,
                &format!("/api/v1/agents/{id}/positions"),
                &token,
                None,
            )
            .await;
        let position = position["items"].get(0).cloned().unwrap_or(position);
        assert_eq!(
            backtest["summary"]["fills"].as_u64(),
            Some(trades as u64),
            "{backtest}"
        );
        let dec = |v: &Value| {
            v.as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        };
        assert_eq!(
            dec(&backtest["summary"]["final_cash"]),
            dec(&position["cash"]),
            "{backtest}\n{position}"
        );
        assert_eq!(
            dec(&backtest["summary"]["final_position"]),
            dec(&position["qty"]),
            "{backtest}\n{position}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
