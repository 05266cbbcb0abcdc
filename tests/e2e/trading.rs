//! M2 scenario, over HTTP only: an agent whose SMA(1/2) strategy trades within seconds on the simulated market, with
//! a 10 bps fee and a daily-loss limit of 0.01, is started → a signal, a risk refusal and a fill appear → its
//! position and PnL equal a recomputation from the listed fills → it is stopped → nothing more happens. Then the
//! determinism check: the agent's listed observations, replayed through a fresh `Agent` aggregate with the same
//! fill model, decide the same orders (ids, sides, quantities, refusals) and the same fills (prices, fees).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use strom_domain::config::AgentConfig;
use strom_domain::market::Observation;
use strom_domain::{Agent, AgentCommand, AgentEvent, Decider, FillModel, Symbol};
use strom_tests::{eventually, Backing, Server};

/// A fill and a refusal come within a few signals, and signals within a few 1-second ticks; the rest is slack.
const TRADES_DEADLINE: Duration = Duration::from_secs(90);

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("{v} is not a decimal string")),
    )
    .unwrap()
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a time"))
        .parse()
        .unwrap()
}

async fn items(server: &Server, token: &str, path: &str) -> Vec<Value> {
    let (status, page) = server.call(Method::GET, path, token, None).await;
    assert_eq!(status, 200, "{path}: {page}");
    assert_eq!(
        page["next_cursor"],
        Value::Null,
        "{path}: one page holds everything here"
    );
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn trade_refuse_fill_stop(backing: Backing) {
    let server = Server::start(
        backing,
        &[
            ("STROM_FILL_FEE_BPS", "10"),
            ("STROM_FILL_SLIPPAGE_BPS", "5"),
        ],
    )
    .await
    .expect("server starts");
    let token = server.token("alice", "trader");
    let (status, agent) = server
        .call(
            Method::POST,
            "/api/v1/agents",
            &token,
            Some(json!({
                "name": "e2e trader",
                "symbol": "BTC-USD",
                "strategy": {"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.5"}},
                "frequency_s": 1,
                "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "100000",
                         "max_daily_loss": "0.01"},
                "starting_cash": "100000"
            })),
        )
        .await;
    assert_eq!(status, 201, "create: {agent}\n{}", server.log());
    let id = agent["agent_id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/agents/{id}");
    let (status, started) = server
        .call(Method::POST, &format!("{base}/start"), &token, None)
        .await;
    assert_eq!(status, 200, "start: {started}");

    // A signal, a refusal with its reason, and a fill.
    let orders_path = format!("{base}/orders?limit=200");
    eventually(TRADES_DEADLINE, "a filled and a rejected order", || async {
        let orders = items(&server, &token, &orders_path).await;
        let filled = orders.iter().any(|o| o["status"] == "filled");
        let rejected = orders.iter().any(|o| o["status"] == "rejected");
        (filled && rejected).then_some(())
    })
    .await;
    let (status, stopped) = server
        .call(
            Method::POST,
            &format!("{base}/stop"),
            &token,
            Some(json!({"reason": "e2e done"})),
        )
        .await;
    assert_eq!(status, 200, "stop: {stopped}");
    let last_tick = stopped["last_tick_no"].as_i64().expect("last_tick_no");

    // After the stop: the open order (if any) still fills, then nothing changes.
    let runs_path = format!("{base}/runs?limit=200");
    let trades_path = format!("{base}/trades?limit=200");
    let settled = || async {
        let orders = items(&server, &token, &orders_path).await;
        let runs = items(&server, &token, &runs_path).await;
        let trades = items(&server, &token, &trades_path).await;
        let done = orders.iter().all(|o| o["status"] != "accepted")
            && runs.first().and_then(|r| r["tick_no"].as_i64()) == Some(last_tick)
            && trades.len() == orders.iter().filter(|o| o["status"] == "filled").count();
        done.then_some((orders, runs, trades))
    };
    let (orders, runs, trades) =
        eventually(TRADES_DEADLINE, "orders settled after the stop", settled).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        items(&server, &token, &orders_path).await.len(),
        orders.len(),
        "an order after the stop"
    );
    assert_eq!(
        items(&server, &token, &runs_path).await.len(),
        runs.len(),
        "a run after the stop"
    );
    let rejected: Vec<&Value> = orders
        .iter()
        .filter(|o| o["status"] == "rejected")
        .collect();
    assert!(rejected
        .iter()
        .all(|o| o["reason_code"].is_string() && o["reason"].is_string()));

    // The position and PnL over HTTP equal a recomputation from the listed fills.
    let start_cash = Decimal::from(100_000);
    let (mut qty, mut cash, mut fees) = (Decimal::ZERO, start_cash, Decimal::ZERO);
    for t in trades.iter().rev() {
        let (q, notional, fee) = (dec(&t["qty"]), dec(&t["notional"]), dec(&t["fee"]));
        assert_eq!(notional, q * dec(&t["price"]), "{t}");
        assert!(fee > Decimal::ZERO, "a 10 bps fee: {t}");
        if t["side"] == "buy" {
            qty += q;
            cash -= notional;
        } else {
            qty -= q;
            cash += notional;
        }
        cash -= fee;
        fees += fee;
    }
    let positions = items(&server, &token, &format!("{base}/positions")).await;
    let p = &positions[0];
    let mark = dec(&runs[0]["observation"]["price"]);
    assert_eq!(dec(&p["qty"]), qty, "{p}");
    assert_eq!(dec(&p["cash"]), cash, "{p}");
    assert_eq!(dec(&p["fees"]), fees, "{p}");
    assert_eq!(dec(&p["mark_price"]), mark, "{p}");
    assert_eq!(dec(&p["equity"]), cash + qty * mark, "{p}");
    assert_eq!(dec(&p["pnl"]), cash + qty * mark - start_cash, "{p}");
    assert_eq!(
        dec(&p["pnl"]),
        dec(&p["realized_pnl"]) + dec(&p["unrealized_pnl"]) - dec(&p["fees"]),
        "{p}"
    );
    let (_, summary) = server
        .call(Method::GET, &format!("{base}/summary"), &token, None)
        .await;
    assert_eq!(
        summary["trades"].as_u64(),
        Some(trades.len() as u64),
        "{summary}"
    );
    assert_eq!(
        summary["orders_rejected"].as_u64(),
        Some(rejected.len() as u64),
        "{summary}"
    );
    let (_, pnl) = server
        .call(Method::GET, &format!("{base}/pnl?limit=5000"), &token, None)
        .await;
    assert_eq!(
        pnl["items"].as_array().map(Vec::len),
        Some(runs.len()),
        "one PnL point per run"
    );

    // The trading metrics of this process: orders placed and refused by reason, fills, tick-to-fill, the backlog.
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let placed = orders.iter().filter(|o| o["status"] != "rejected").count() as f64;
    assert_eq!(value("strom_orders_placed_total"), placed, "{metrics}");
    let reason = rejected[0]["reason_code"].as_str().unwrap();
    assert!(
        value(&format!(
            "strom_orders_rejected_total{{reason=\"{reason}\"}}"
        )) >= 1.0,
        "{metrics}"
    );
    assert_eq!(value("strom_fills_total"), trades.len() as f64, "{metrics}");
    assert_eq!(
        value("strom_tick_to_fill_seconds_count"),
        trades.len() as f64,
        "{metrics}"
    );
    assert!(
        metrics.contains("strom_execution_backlog_events"),
        "{metrics}"
    );

    // Same inputs, same trades: replay the listed runs through a fresh aggregate.
    let replayed = replay(&agent, &started, &runs, &trades);
    let listed: Vec<(String, String, Decimal, String, Option<String>)> = orders
        .iter()
        .rev()
        .map(|o| {
            (
                o["order_id"].as_str().unwrap().to_owned(),
                o["side"].as_str().unwrap().to_owned(),
                dec(&o["qty"]),
                o["status"].as_str().unwrap().to_owned(),
                o["reason_code"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(replayed.orders, listed, "the replay decided other orders");
    let listed_fills: Vec<(String, Decimal, Decimal)> = trades
        .iter()
        .rev()
        .map(|t| {
            (
                t["order_id"].as_str().unwrap().to_owned(),
                dec(&t["price"]),
                dec(&t["fee"]),
            )
        })
        .collect();
    assert_eq!(
        replayed.fills, listed_fills,
        "the replay filled at other prices"
    );
}

/// What a replay decided: orders (id, side, qty, final status, reason code) and fills (order id, price, fee).
struct Replayed {
    orders: Vec<(String, String, Decimal, String, Option<String>)>,
    fills: Vec<(String, Decimal, Decimal)>,
}

fn decide(agent: &mut Agent, command: AgentCommand) -> Vec<AgentEvent> {
    let events = agent
        .decide(command)
        .expect("the replay's command is accepted");
    for event in &events {
        agent.evolve(event);
    }
    events
}

/// Runs the agent's listed runs (oldest first) through a fresh `Agent`, filling each placed order before the first
/// later run that was not skipped behind it, as the execution role did.
fn replay(created: &Value, started: &Value, runs: &[Value], trades: &[Value]) -> Replayed {
    let config: AgentConfig = serde_json::from_value(json!({
        "name": created["name"], "symbol": created["symbol"], "strategy": created["strategy"],
        "frequency_s": created["frequency_s"], "risk": created["risk"],
        "starting_cash": created["starting_cash"], "seed": created["seed"],
    }))
    .unwrap();
    let mut agent = Agent::default();
    decide(
        &mut agent,
        AgentCommand::CreateAgent {
            agent_id: created["agent_id"].as_str().unwrap().to_owned(),
            owner: created["owner"].as_str().unwrap().to_owned(),
            config,
            at: at(&created["created_at"]),
        },
    );
    decide(
        &mut agent,
        AgentCommand::StartAgent {
            at: at(&started["started_at"]),
        },
    );
    let fill_at = |order_id: &str| {
        trades
            .iter()
            .find(|t| t["order_id"] == order_id)
            .map(|t| at(&t["filled_at"]))
    };
    let fill_model = FillModel {
        slippage_bps: Decimal::from(5),
        fee_bps: Decimal::from(10),
    };
    let mut out = Replayed {
        orders: Vec::new(),
        fills: Vec::new(),
    };
    let mut open: Option<String> = None;
    let fill = |agent: &mut Agent, order_id: String, out: &mut Replayed| {
        let at = fill_at(&order_id).expect("every placed order filled");
        for event in decide(agent, AgentCommand::FillOrder { order_id, at }) {
            if let AgentEvent::OrderFilled {
                order_id,
                price,
                fee,
                ..
            } = event
            {
                if let Some(order) = out.orders.iter_mut().find(|o| o.0 == order_id) {
                    order.3 = "filled".into();
                }
                out.fills.push((order_id, price, fee));
            }
        }
    };
    for run in runs.iter().rev() {
        if run["outcome"] != "skipped" {
            if let Some(order_id) = open.take() {
                fill(&mut agent, order_id, &mut out);
            }
        }
        let observation = &run["observation"];
        let command = AgentCommand::RecordRun {
            session: run["session"].as_u64().unwrap(),
            tick_no: run["tick_no"].as_u64().unwrap(),
            scheduled_at: at(&run["scheduled_at"]),
            started_at: at(&run["started_at"]),
            completed_at: at(&run["completed_at"]),
            observation: Observation {
                symbol: Symbol::parse(observation["symbol"].as_str().unwrap()).unwrap(),
                price: dec(&observation["price"]),
                observed_at: at(&observation["observed_at"]),
            },
            fill_model: fill_model.clone(),
            correlation_id: run["correlation_id"].as_str().unwrap().to_owned(),
        };
        for event in decide(&mut agent, command) {
            match event {
                AgentEvent::OrderPlaced {
                    order_id,
                    side,
                    qty,
                    ..
                } => {
                    out.orders.push((
                        order_id.clone(),
                        side.as_str().into(),
                        qty,
                        "accepted".into(),
                        None,
                    ));
                    open = Some(order_id);
                }
                AgentEvent::OrderRejected {
                    order_id,
                    side,
                    qty,
                    reason_code,
                    ..
                } => out.orders.push((
                    order_id,
                    side.as_str().into(),
                    qty,
                    "rejected".into(),
                    Some(reason_code.as_str().into()),
                )),
                _ => {}
            }
        }
    }
    if let Some(order_id) = open.take() {
        fill(&mut agent, order_id, &mut out);
    }
    out
}

#[tokio::test]
async fn an_agent_trades_is_refused_fills_and_stops_on_postgres_and_nats() {
    trade_refuse_fill_stop(Backing::Services).await;
}

#[tokio::test]
async fn an_agent_trades_is_refused_fills_and_stops_embedded() {
    trade_refuse_fill_stop(Backing::Embedded).await;
}
