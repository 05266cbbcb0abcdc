//! Golden replay fixtures: each `replay-fixtures/<name>/events.jsonl` (a recorded log) must replay — order and
//! hash chains intact — to exactly `replay-fixtures/<name>/expected/*.jsonl`. `UPDATE_EXPECT=1` rewrites the
//! expected files (and re-records `two-agents` from the aggregates) instead of comparing.

use std::path::{Path, PathBuf};

use serde_json::Value;
use strom_commands::log::{EventEnvelope, EventLog, LogPosition, MAX_LOG_PAGE};
use strom_projections::replay::file::{
    check_events, check_file, compare_expected, read_events, write_events, write_expected,
};
use strom_tests::scenario;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../replay-fixtures")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1")
}

/// Replays `input` and compares the read models with the golden files in `expect` (or rewrites them).
fn check(input: &Path, expect: &Path) {
    let replay = check_file(input).unwrap_or_else(|e| panic!("{}: {e:#}", input.display()));
    let problems = replay.problems();
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        input.display(),
        problems.join("\n")
    );
    if updating() {
        write_expected(expect, &replay.model.dump()).unwrap();
        return;
    }
    let comparison = compare_expected(expect, &replay.model).unwrap();
    let lines: Vec<String> = comparison
        .differences
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        comparison.is_equal(),
        "{} does not replay to {} (live = expected, rebuilt = replayed; UPDATE_EXPECT=1 rewrites):\n{}",
        input.display(),
        expect.display(),
        lines.join("\n")
    );
}

#[test]
fn every_replay_fixture_replays_to_its_expected_read_models() {
    let mut checked = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("replay-fixtures/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("events.jsonl").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        check(&dir.join("events.jsonl"), &dir.join("expected"));
        checked += 1;
    }
    assert!(checked >= 1, "no fixture found in {}", fixtures().display());
}

async fn recorded(fixture: &str) -> Vec<EventEnvelope> {
    let repo = match fixture {
        "two-agents" => scenario::two_agents_in_memory().await.unwrap(),
        _ => scenario::paper_trading_in_memory().await.unwrap(),
    };
    let mut events = Vec::new();
    let mut position = LogPosition::START;
    loop {
        let page = repo
            .read_envelopes_after(position, MAX_LOG_PAGE)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        position = last.position;
        events.extend(page);
    }
    events
}

/// Everything but the store-chosen event id, which is random by design.
fn comparable(events: &[EventEnvelope]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            v.as_object_mut().unwrap().remove("event_id");
            v
        })
        .collect()
}

async fn the_fixture_is_what_the_aggregates_record(fixture: &str) {
    let dir = fixtures().join(fixture);
    let path = dir.join("events.jsonl");
    let recorded = recorded(fixture).await;
    let stored = read_events(&path).ok();
    let same = stored
        .as_ref()
        .is_some_and(|s| comparable(s) == comparable(&recorded));
    if updating() && !same {
        std::fs::create_dir_all(&dir).unwrap();
        write_events(std::fs::File::create(&path).unwrap(), &recorded).unwrap();
        write_expected(&dir.join("expected"), &check_events(&recorded).model.dump()).unwrap();
        return;
    }
    assert!(
        same,
        "{} is not what its scenario records now (UPDATE_EXPECT=1 re-records it)",
        path.display()
    );
}

#[tokio::test]
async fn the_two_agents_fixture_is_what_the_aggregates_record() {
    the_fixture_is_what_the_aggregates_record("two-agents").await;
}

#[tokio::test]
async fn the_paper_trading_fixture_is_what_the_aggregates_record() {
    the_fixture_is_what_the_aggregates_record("paper-trading").await;
}

/// The paper-trading fixture trades as its scenario says, and its read models keep the PnL identity exactly.
#[test]
fn the_paper_trading_fixture_buys_is_refused_a_sell_and_sells_at_a_loss_with_fees() {
    let model = check_file(&fixtures().join("paper-trading/events.jsonl"))
        .unwrap()
        .model;
    let orders: Vec<_> = model.orders.values().flat_map(|o| o.values()).collect();
    assert!(orders
        .iter()
        .any(|o| o.side == "sell" && o.reason_code.as_deref() == Some("insufficient_position")));
    let trades: Vec<_> = model.trades.values().flat_map(|t| t.values()).collect();
    assert!(trades.iter().any(|t| t.side == "buy"));
    assert!(trades
        .iter()
        .any(|t| t.side == "sell" && t.realized_pnl < rust_decimal::Decimal::ZERO));
    assert!(trades.iter().all(|t| t.fee > rust_decimal::Decimal::ZERO));
    let position = model.positions.values().next().unwrap();
    assert_eq!(
        position.pnl,
        position.realized_pnl + position.unrealized_pnl - position.fees
    );
    assert_eq!(position.pnl, position.equity - position.starting_cash);
    let fees: rust_decimal::Decimal = trades.iter().map(|t| t.fee).sum();
    assert_eq!(position.fees, fees);
    let realized: rust_decimal::Decimal = trades.iter().map(|t| t.realized_pnl).sum();
    assert_eq!(position.realized_pnl, realized);
}

#[test]
fn a_tampered_fixture_is_reported_with_the_event_it_concerns() {
    let path = fixtures().join("two-agents/events.jsonl");
    let mut events = read_events(&path).unwrap();
    events[3].payload["AgentStarted"]["session"] = Value::from(9);
    let removed = events.remove(6);
    let problems = check_events(&events).problems();
    let text = problems.join("\n");
    assert!(
        text.contains(&format!(
            "altered event: Agent/{} sequence {}",
            events[3].aggregate_id, events[3].sequence
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "missing event: Agent/{} sequence {}",
            removed.aggregate_id, removed.sequence
        )),
        "{text}"
    );
}
