//! Paper trading over HTTP (issue "M2 paper trading"), on the memory store and on Postgres: the test plays the
//! runtime (RecordRun with a 10 bps fee, 5 bps slippage fill model) and the execution role (FillOrder), then reads
//! orders (with a risk rejection), one order, trades, the position, the PnL series (paged and thinned) and the
//! summary; every body is checked against specs/openapi.yaml by the helpers. Others' orders are 404.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use strom_api::auth::Role;
use strom_commands::service::CommandContext;
use strom_domain::metrics::{self, ClosedTrade, EquityPoint, MetricsInput};
use strom_domain::{AgentCommand, FillModel};

use crate::support::{Backend, TestApp};

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("{v} is not a decimal string")),
    )
    .unwrap()
}

/// The fill model the test's runtime records on its orders: 5 bps slippage, 10 bps fee.
fn fills() -> FillModel {
    FillModel {
        slippage_bps: Decimal::from(5),
        fee_bps: Decimal::from(10),
    }
}

fn path(id: &str, suffix: &str) -> String {
    format!("/api/v1/agents/{id}{suffix}")
}

/// Fills `order_id` as the execution role would.
pub(crate) async fn fill(app: &TestApp, id: &str, order_id: &str) {
    let services = &app.handles.commands;
    let (state, _) = services.agents.load(id).await.unwrap();
    let at = state.book().open_order().unwrap().placed_at + chrono::TimeDelta::milliseconds(15);
    services
        .agents
        .execute(
            id,
            || AgentCommand::FillOrder {
                order_id: order_id.to_owned(),
                at,
            },
            &CommandContext::system("execution", "fill"),
        )
        .await
        .unwrap();
}

async fn trading(backend: Backend) {
    let app = TestApp::on(backend).await;
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
    let id = created.body["agent_id"].as_str().unwrap().to_owned();

    // Before any run: a flat position holding the starting cash, an empty summary.
    let positions = app.get_json(&path(&id, "/positions"), &carol).await;
    assert_eq!(positions.status, 200, "{}", positions.body);
    assert_eq!(positions.body["items"][0]["cash"], "1000");
    assert_eq!(positions.body["items"][0]["mark_price"], Value::Null);

    let started = app.post_json(&path(&id, "/start"), &carol, None).await;
    assert_eq!(started.status, 200);
    // Up, then down (a sell with nothing held: refused), up (buy), up, down (sell at a loss), up (buy, left open).
    let prices = ["100", "101", "99", "100.5", "102", "99", "100.5"];
    let mut open = None;
    for (i, price) in prices.iter().enumerate() {
        if let Some(order_id) = app.record_run(&id, i as u64 + 1, price, fills()).await {
            if i + 1 < prices.len() {
                fill(&app, &id, &order_id).await;
            } else {
                open = Some(order_id);
            }
        }
    }
    // The last buy is not filled yet: the next tick is skipped behind it (the settle barrier).
    let open = open.expect("the last up-move buys");
    assert_eq!(app.record_run(&id, 8, "103", fills()).await, None);
    let runs = app
        .eventually(&path(&id, "/runs"), &carol, |p| {
            p["items"].as_array().unwrap().len() == 8
        })
        .await;
    assert_eq!(runs["items"][0]["outcome"], "skipped");
    assert_eq!(runs["items"][0]["waiting_for_order"], open.as_str());
    assert_eq!(runs["items"][0]["signal"], Value::Null);
    let accepted = app
        .get_json(&format!("{}?status=accepted", path(&id, "/orders")), &carol)
        .await;
    assert_eq!(accepted.body["items"][0]["order_id"], open.as_str());
    assert_eq!(accepted.body["items"][0]["fill_price"], Value::Null);
    fill(&app, &id, &open).await;

    // Orders: newest first, the refused sell with its reason, all but it filled.
    let orders = app
        .eventually(&path(&id, "/orders"), &carol, |p| {
            p["items"].as_array().unwrap().len() == 4 && p["items"][0]["status"] == "filled"
        })
        .await;
    let items = orders["items"].as_array().unwrap();
    let created_at: Vec<&str> = items
        .iter()
        .map(|o| o["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created_at.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created_at:?}"
    );
    let rejected = app
        .get_json(&format!("{}?status=rejected", path(&id, "/orders")), &carol)
        .await;
    let refused = &rejected.body["items"].as_array().unwrap()[..];
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["side"], "sell");
    assert_eq!(refused[0]["reason_code"], "insufficient_position");
    assert!(refused[0]["reason"].as_str().unwrap().contains("0.5"));
    let bad_status = app
        .get_json(
            &format!("{}?status=cancelled", path(&id, "/orders")),
            &carol,
        )
        .await;
    assert_eq!(bad_status.status, 400);
    let first = app
        .get_json(&format!("{}?limit=3", path(&id, "/orders")), &carol)
        .await;
    let cursor = first.body["next_cursor"].as_str().expect("a second page");
    let second = app
        .get_json(
            &format!("{}?limit=3&cursor={cursor}", path(&id, "/orders")),
            &carol,
        )
        .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["items"][0], items[3]);

    // One order; another trader's is 404, an admin's read works.
    let order_path = format!("/api/v1/orders/{}", items[0]["order_id"].as_str().unwrap());
    let one = app.get_json(&order_path, &carol).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body, items[0]);
    let dave = app.token("dave", &[Role::Trader]);
    let theirs = app.get_json(&order_path, &dave).await;
    assert_eq!(theirs.status, 404);
    assert_eq!(theirs.body["code"], "order_not_found");
    assert_eq!(app.get_json(&path(&id, "/trades"), &dave).await.status, 404);
    let admin = app.token("root", &[Role::Admin]);
    assert_eq!(app.get_json(&order_path, &admin).await.status, 200);
    assert_eq!(
        app.get_json("/api/v1/orders/nope", &carol).await.status,
        404
    );

    // Trades: the three fills, newest first; the position recomputed from them equals the read model's.
    let trades = app
        .eventually(&path(&id, "/trades"), &carol, |p| {
            p["items"].as_array().unwrap().len() == 3
        })
        .await;
    let trades = trades["items"].as_array().unwrap();
    assert_eq!(
        trades
            .iter()
            .map(|t| t["side"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["buy", "sell", "buy"]
    );
    assert!(
        dec(&trades[1]["realized_pnl"]) < Decimal::ZERO,
        "sold at a loss"
    );
    let (mut qty, mut cash, mut fees, mut realized) = (
        Decimal::ZERO,
        Decimal::from(1000),
        Decimal::ZERO,
        Decimal::ZERO,
    );
    for t in trades {
        let (q, notional, fee) = (dec(&t["qty"]), dec(&t["notional"]), dec(&t["fee"]));
        assert!(fee > Decimal::ZERO);
        assert_eq!(notional, q * dec(&t["price"]));
        if t["side"] == "buy" {
            qty += q;
            cash -= notional;
        } else {
            qty -= q;
            cash += notional;
        }
        cash -= fee;
        fees += fee;
        realized += dec(&t["realized_pnl"]);
    }
    let position = app
        .eventually(&path(&id, "/positions"), &carol, |p| {
            p["items"][0]["qty"] == "0.5"
        })
        .await;
    let p = &position["items"][0];
    assert_eq!(dec(&p["qty"]), qty);
    assert_eq!(dec(&p["cash"]), cash);
    assert_eq!(dec(&p["fees"]), fees);
    assert_eq!(dec(&p["realized_pnl"]), realized);
    assert_eq!(dec(&p["mark_price"]), Decimal::from(103));
    assert_eq!(dec(&p["equity"]), cash + qty * Decimal::from(103));
    assert_eq!(
        dec(&p["pnl"]),
        dec(&p["realized_pnl"]) + dec(&p["unrealized_pnl"]) - dec(&p["fees"])
    );
    assert_eq!(dec(&p["pnl"]), dec(&p["equity"]) - Decimal::from(1000));

    // PnL: one point per run, oldest first; paged, thinned, and a reversed range refused.
    let pnl = app.get_json(&path(&id, "/pnl"), &carol).await;
    let points = pnl.body["items"].as_array().unwrap().clone();
    assert_eq!(points.len(), 8);
    assert_eq!(points[0]["tick_no"], 1);
    assert_eq!(points[7]["mark_price"], "103");
    let paged = app
        .get_json(&format!("{}?limit=5", path(&id, "/pnl")), &carol)
        .await;
    let cursor = paged.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get_json(
            &format!("{}?limit=5&cursor={cursor}", path(&id, "/pnl")),
            &carol,
        )
        .await;
    assert_eq!(rest.body["items"][0], points[5]);
    let thinned = app
        .get_json(&format!("{}?max_points=3", path(&id, "/pnl")), &carol)
        .await;
    let kept: Vec<&Value> = thinned.body["items"].as_array().unwrap().iter().collect();
    assert_eq!(kept, [&points[0], &points[3], &points[7]]);
    assert_eq!(thinned.body["next_cursor"], Value::Null);
    let (from, to) = (
        points[2]["at"].as_str().unwrap(),
        points[4]["at"].as_str().unwrap(),
    );
    let window = app
        .get_json(
            &format!("{}?from={from}&to={to}", path(&id, "/pnl")),
            &carol,
        )
        .await;
    assert_eq!(window.body["items"].as_array().unwrap().len(), 3);
    let reversed = app
        .get_json(
            &format!("{}?from={to}&to={from}", path(&id, "/pnl")),
            &carol,
        )
        .await;
    assert_eq!(reversed.status, 400);

    // Summary: the position's figures and the counts.
    let summary = app.get_json(&path(&id, "/summary"), &carol).await;
    let s = &summary.body;
    assert_eq!(s["orders_placed"], 3);
    assert_eq!(s["orders_rejected"], 1);
    assert_eq!(s["trades"], 3);
    assert_eq!(s["closing_trades"], 1);
    assert_eq!(s["winning_trades"], 0);
    assert_eq!(s["win_rate"], "0");
    assert_eq!(dec(&s["pnl"]), dec(&p["pnl"]));
    assert_eq!(
        dec(&s["return_pct"]),
        (dec(&p["pnl"]) / Decimal::from(10)).round_dp(4)
    );
    let equity: Vec<Decimal> = points.iter().map(|pt| dec(&pt["equity"])).collect();
    let mut peak = Decimal::from(1000);
    let mut drawdown = Decimal::ZERO;
    for e in equity {
        peak = peak.max(e);
        drawdown = drawdown.max(peak - e);
    }
    assert_eq!(dec(&s["max_drawdown"]), drawdown);

    // The metrics are the domain module's over the listed points and sell fills, as a backtest computes them.
    let at = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let equity_points: Vec<EquityPoint> = points
        .iter()
        .map(|pt| EquityPoint {
            at: at(&pt["at"]),
            equity: dec(&pt["equity"]),
            position_qty: dec(&pt["position_qty"]),
            mark_price: dec(&pt["mark_price"]),
        })
        .collect();
    let mut equity_points = equity_points;
    // The last point as the position stands after every fill (specs/06 §8).
    if let Some(last) = equity_points.last_mut() {
        last.equity = dec(&p["equity"]);
        last.position_qty = dec(&p["qty"]);
    }
    let mut sells: Vec<ClosedTrade> = trades
        .iter()
        .filter(|t| t["side"] == "sell")
        .map(|t| ClosedTrade {
            at: at(&t["filled_at"]),
            pnl: dec(&t["realized_pnl"]) - dec(&t["fee"]),
        })
        .collect();
    sells.reverse();
    let expected = metrics::compute(&MetricsInput {
        starting_cash: Decimal::from(1000),
        points: &equity_points,
        closed_trades: &sells,
        fills: 3,
        fees: dec(&p["fees"]),
    });
    assert_eq!(
        s["metrics"],
        serde_json::to_value(&expected).unwrap(),
        "{s}"
    );
    assert_eq!(s["metrics"]["trades"], 1);
    assert_eq!(dec(&s["metrics"]["max_drawdown"]), drawdown);
    assert_eq!(
        dec(&s["metrics"]["total_return_pct"]),
        dec(&s["return_pct"])
    );
}

#[tokio::test]
async fn an_agent_trades_on_paper_and_its_orders_trades_position_and_pnl_are_listed_on_memory() {
    trading(Backend::Memory).await;
}

#[tokio::test]
async fn an_agent_trades_on_paper_and_its_orders_trades_position_and_pnl_are_listed_on_postgres() {
    trading(Backend::Postgres).await;
}
