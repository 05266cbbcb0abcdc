//! Unit tests of the agents fold: each event's effect on the row, idempotency, upcasting and refusals.

use chrono::{DateTime, Utc};
use serde_json::json;
use strom_commands::log::{EventEnvelope, LogPosition};
use uuid::Uuid;

use super::*;

const ID: &str = "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10";

/// A stored event; the tests fold it the way every reader does: decoded at the edge, then folded.
fn logged(sequence: u64, event_type: &str, version: &str, payload: Value) -> EventEnvelope {
    EventEnvelope {
        position: LogPosition {
            tx_id: sequence,
            global_position: i64::try_from(sequence).unwrap() * 10,
        },
        event_id: Uuid::nil(),
        aggregate_type: "Agent".into(),
        aggregate_id: ID.into(),
        sequence,
        event_type: event_type.into(),
        event_version: version.into(),
        payload,
        metadata: json!({"correlation_id": "c"}),
        recorded_at: "2030-01-01T00:00:00Z".parse().unwrap(),
        hash: String::new(),
    }
}

fn created() -> EventEnvelope {
    logged(
        1,
        "AgentCreated",
        "2",
        json!({"AgentCreated": {"agent_id": ID, "owner": "alice", "name": "n", "symbol": "BTC-USD",
            "strategy": {"kind": "hold", "params": {}}, "frequency_s": 60,
            "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "1000"},
            "starting_cash": "2500.00", "seed": 7, "created_at": "2026-11-22T10:00:00.000Z"}}),
    )
}

fn started(sequence: u64, session: u64, at: &str) -> EventEnvelope {
    logged(
        sequence,
        "AgentStarted",
        "1",
        json!({"AgentStarted": {"session": session, "started_at": at, "frequency_s": 60}}),
    )
}

fn run(sequence: u64, tick_no: u64, scheduled_at: &str) -> EventEnvelope {
    logged(
        sequence,
        "AgentRunRecorded",
        "1",
        json!({"AgentRunRecorded": {"session": 1, "tick_no": tick_no, "scheduled_at": scheduled_at,
            "started_at": "2026-11-22T10:01:00.040Z", "completed_at": "2026-11-22T10:01:00.045Z",
            "observation": {"symbol": "BTC-USD", "price": "101.250", "observed_at": "2026-11-22T10:00:59.750Z"},
            "outcome": {"signalled": {"side": "buy", "qty": "1", "order_id": format!("{ID}-1-{tick_no}")}},
            "correlation_id": "tick-1"}}),
    )
}

/// Decodes `event` (as every log reader does) and folds it.
fn fold_stored(
    agents: &mut BTreeMap<String, AgentRow>,
    event: &EventEnvelope,
) -> Result<Folded, ProjectionError> {
    let decoded = event
        .decode()
        .map_err(|e| ProjectionError::undecodable(&e).expect("an undecodable event"))?;
    AgentFold::new().apply(agents, &decoded)
}

fn fold_all(events: &[EventEnvelope]) -> (BTreeMap<String, AgentRow>, Vec<RunRow>) {
    let mut agents = BTreeMap::new();
    let mut runs = Vec::new();
    for event in events {
        if let Folded::Run(r) = fold_stored(&mut agents, event).expect("folds") {
            runs.push(*r);
        }
    }
    (agents, runs)
}

fn t(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[test]
fn a_created_agent_is_stopped_with_its_config_and_full_risk() {
    let (agents, _) = fold_all(&[created()]);
    let row = &agents[ID];
    assert_eq!(row.status, AgentState::Stopped);
    assert_eq!(row.owner, "alice");
    assert_eq!(row.starting_cash.to_string(), "2500.00");
    assert_eq!(row.risk["max_daily_loss"], Value::Null);
    assert_eq!((row.version, row.session, row.runs_count), (1, 0, 0));
    assert_eq!(row.updated_at, t("2026-11-22T10:00:00Z"));
    assert_eq!(row.next_tick_at, None);
}

#[test]
fn starting_makes_tick_one_due_at_the_start() {
    let (agents, _) = fold_all(&[created(), started(2, 1, "2026-11-22T10:00:00.000Z")]);
    let row = &agents[ID];
    assert_eq!(row.status, AgentState::Running);
    assert_eq!(row.next_tick_at, Some(t("2026-11-22T10:00:00Z")));
    assert_eq!(row.last_tick_no, None);
}

#[test]
fn a_run_is_recorded_and_moves_the_countdown_to_the_following_tick() {
    let (agents, runs) = fold_all(&[
        created(),
        started(2, 1, "2026-11-22T10:00:00.000Z"),
        run(3, 2, "2026-11-22T10:01:00.000Z"),
    ]);
    let row = &agents[ID];
    assert_eq!(row.last_tick_no, Some(2));
    assert_eq!(row.next_tick_at, Some(t("2026-11-22T10:02:00Z")));
    assert_eq!(row.runs_count, 1);
    assert_eq!(row.last_price.unwrap().to_string(), "101.250");
    assert_eq!(row.updated_at, t("2026-11-22T10:01:00.045Z"));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, RunOutcomeKind::Signalled);
    assert_eq!(runs[0].order_id.as_deref(), Some(&*format!("{ID}-1-2")));
    assert_eq!(runs[0].global_position, 30);
}

#[test]
fn stopping_and_archiving_clear_the_countdown() {
    let stopped = logged(
        3,
        "AgentStopped",
        "1",
        json!({"AgentStopped": {"session": 1, "stopped_at": "2026-11-22T11:00:00.000Z", "reason": "r"}}),
    );
    let archived = logged(
        4,
        "AgentArchived",
        "1",
        json!({"AgentArchived": {"archived_at": "2026-11-22T12:00:00.000Z"}}),
    );
    let (agents, _) = fold_all(&[
        created(),
        started(2, 1, "2026-11-22T10:00:00.000Z"),
        stopped,
        archived,
    ]);
    let row = &agents[ID];
    assert_eq!(row.status, AgentState::Archived);
    assert_eq!(row.next_tick_at, None);
    assert_eq!(row.stopped_at, Some(t("2026-11-22T11:00:00Z")));
    assert_eq!(row.archived_at, Some(t("2026-11-22T12:00:00Z")));
    assert_eq!(row.version, 4);
}

#[test]
fn an_event_already_applied_changes_nothing() {
    let mut agents = BTreeMap::new();
    let events = [created(), started(2, 1, "2026-11-22T10:00:00.000Z")];
    for e in &events {
        fold_stored(&mut agents, e).unwrap();
    }
    let before = agents.clone();
    for e in &events {
        assert_eq!(fold_stored(&mut agents, e).unwrap(), Folded::Nothing);
    }
    assert_eq!(agents, before);
}

#[test]
fn a_v1_agent_created_is_upcast_before_folding() {
    let v1 = logged(
        1,
        "AgentCreated",
        "1",
        json!({"AgentCreated": {"agent_id": ID, "owner": "alice", "name": "old", "symbol": "BTC-USD",
            "strategy": {"kind": "hold", "params": {}}, "frequency_s": 60, "starting_cash": "2500.00",
            "created_at": "2026-01-02T03:04:05.000Z"}}),
    );
    let (agents, _) = fold_all(&[v1]);
    assert_eq!(agents[ID].seed, 0);
    assert_eq!(agents[ID].risk["max_notional"], "2500.00");
}

#[test]
fn unknown_versions_malformed_payloads_and_orphan_events_are_errors_not_panics() {
    let mut agents = BTreeMap::new();
    let mut future = created();
    future.event_version = "9".into();
    assert!(matches!(
        fold_stored(&mut agents, &future),
        Err(ProjectionError::UnknownEventVersion { sequence: 1, .. })
    ));
    let mut garbage = created();
    garbage.payload = json!({"AgentCreated": {"agent_id": 3}});
    assert!(matches!(
        fold_stored(&mut agents, &garbage),
        Err(ProjectionError::MalformedPayload { .. })
    ));
    assert!(matches!(
        fold_stored(&mut agents, &started(2, 1, "2026-11-22T10:00:00.000Z")),
        Err(ProjectionError::Inconsistent { sequence: 2, .. })
    ));
    assert!(agents.is_empty());
}

#[test]
fn events_of_other_aggregates_are_ignored() {
    let mut backtest = logged(
        1,
        "BacktestStarted",
        "1",
        json!({"BacktestStarted": {"started_at": "2026-11-22T10:00:00.000Z"}}),
    );
    backtest.aggregate_type = "Backtest".into();
    let mut agents = BTreeMap::new();
    assert_eq!(
        fold_stored(&mut agents, &backtest).unwrap(),
        Folded::Nothing
    );
}
