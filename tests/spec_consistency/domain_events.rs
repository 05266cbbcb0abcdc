//! Gate G2, event schema validation: the events the domain really produces (built by driving its aggregates with
//! commands, serialized exactly as the event stores serialize them) validate against specs/events/; the domain and
//! the 04 catalogue name the same aggregate events; every example in specs/events/examples/ is a real domain event;
//! and the domain's error codes are the ones 03 §2 and 04 §3 list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::LazyLock;

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::persist::SerializedEvent;
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, EventEnvelope};
use regex::Regex;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use strom_domain::fill::FillModel;
use strom_domain::order::paper_order_id;
use strom_domain::upcast::event_upcasters;
use strom_domain::DomainError;
use strom_domain::{
    Agent, AgentCommand, AgentConfig, AgentConfigPatch, AgentError, AgentEvent, Backtest,
    BacktestCommand, BacktestError, BacktestEvent, BacktestSource, BacktestSummary, ErrorKind,
    Observation, RiskLimits, StrategySpec, Symbol,
};

use crate::markdown::{catalogue, CatalogueEntry};
use crate::{events_md, fail_if_any, read, read_json, specs_dir};

const AGENT_ID: &str = "0b6f2a52-3c4e-4d8a-9f61-7d2c1e9a4b10";
const MEAN_REVERSION_AGENT_ID: &str = "1c7a3b63-4d5f-4e9b-8a72-8e3d2f0b5c21";
const BACKTEST_ID: &str = "5d1c7e0a-8b2f-4e3a-a9c4-1f6e2d3b7c80";
const FAILED_BACKTEST_ID: &str = "6e2d8f1b-9c3a-4f4b-b0d5-2a7f3e4c8d91";
const CANCELLED_BACKTEST_ID: &str = "7f3e9a2c-0d4b-4a5c-81e6-3b8a4f5d9ea2";

// ---------------------------------------------------------------------------------------------------------------
// The variants, listed explicitly. Each `match` has no wildcard arm, so a new variant does not compile until it is
// named here; `the_domain_and_the_04_catalogue_name_the_same_aggregate_events` then demands a scenario, a schema and
// a catalogue row for it.

const AGENT_EVENTS: [&str; 9] = [
    "AgentCreated",
    "AgentConfigUpdated",
    "AgentStarted",
    "AgentStopped",
    "AgentArchived",
    "AgentRunRecorded",
    "OrderPlaced",
    "OrderRejected",
    "OrderFilled",
];
const BACKTEST_EVENTS: [&str; 5] = [
    "BacktestRequested",
    "BacktestStarted",
    "BacktestCompleted",
    "BacktestFailed",
    "BacktestCancelled",
];

fn agent_variant(event: &AgentEvent) -> &'static str {
    match event {
        AgentEvent::AgentCreated { .. } => AGENT_EVENTS[0],
        AgentEvent::AgentConfigUpdated { .. } => AGENT_EVENTS[1],
        AgentEvent::AgentStarted { .. } => AGENT_EVENTS[2],
        AgentEvent::AgentStopped { .. } => AGENT_EVENTS[3],
        AgentEvent::AgentArchived { .. } => AGENT_EVENTS[4],
        AgentEvent::AgentRunRecorded { .. } => AGENT_EVENTS[5],
        AgentEvent::OrderPlaced { .. } => AGENT_EVENTS[6],
        AgentEvent::OrderRejected { .. } => AGENT_EVENTS[7],
        AgentEvent::OrderFilled { .. } => AGENT_EVENTS[8],
    }
}

fn backtest_variant(event: &BacktestEvent) -> &'static str {
    match event {
        BacktestEvent::BacktestRequested { .. } => BACKTEST_EVENTS[0],
        BacktestEvent::BacktestStarted { .. } => BACKTEST_EVENTS[1],
        BacktestEvent::BacktestCompleted { .. } => BACKTEST_EVENTS[2],
        BacktestEvent::BacktestFailed { .. } => BACKTEST_EVENTS[3],
        BacktestEvent::BacktestCancelled { .. } => BACKTEST_EVENTS[4],
    }
}

fn listed_variants(aggregate_type: &str) -> &'static [&'static str] {
    match aggregate_type {
        "Agent" => &AGENT_EVENTS,
        "Backtest" => &BACKTEST_EVENTS,
        other => panic!("no aggregate type {other:?}"),
    }
}

const AGGREGATE_TYPES: [&str; 2] = [Agent::TYPE, Backtest::TYPE];

// ---------------------------------------------------------------------------------------------------------------
// Driving the aggregates

/// One aggregate instance driven by commands, as a command service drives it (minus the store).
#[derive(Clone)]
struct Stream<A: Aggregate> {
    id: String,
    events: Vec<A::Event>,
}

impl<A> Stream<A>
where
    A: Aggregate<Services = ()>,
    A::Command: Debug,
    A::Error: Debug,
{
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            events: Vec::new(),
        }
    }

    fn handle(&self, command: A::Command) -> Result<Vec<A::Event>, A::Error> {
        TestFramework::<A>::with(())
            .given(self.events.clone())
            .when(command)
            .inspect_result()
    }

    /// Appends what `command` records; panics, naming it, if the domain refuses it.
    fn accept(&mut self, command: A::Command) -> &mut Self {
        let described = format!("{command:?}");
        match self.handle(command) {
            Ok(events) => self.events.extend(events),
            Err(e) => panic!(
                "{} {}: the domain refused {described}: {e:?}",
                A::TYPE,
                self.id
            ),
        }
        self
    }

    /// The error `command` gets; panics if the domain accepts it.
    fn refuse(&self, command: A::Command) -> A::Error {
        let described = format!("{command:?}");
        match self.handle(command) {
            Ok(events) => panic!("{} accepted {described}, recording {events:?}", A::TYPE),
            Err(e) => e,
        }
    }

    /// The stream as the event store writes it: cqrs-es's own `SerializedEvent` of each envelope.
    fn serialized(&self) -> Vec<SerializedEvent> {
        self.events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let envelope = EventEnvelope::<A> {
                    aggregate_id: self.id.clone(),
                    sequence: i + 1,
                    payload: event.clone(),
                    metadata: HashMap::from([("correlation_id".into(), "spec-check".into())]),
                };
                SerializedEvent::try_from(&envelope).expect("domain events serialize")
            })
            .collect()
    }
}

/// 2026-11-22T10:00:00.000Z plus `ms` milliseconds.
fn t(ms: i64) -> DateTime<Utc> {
    "2026-11-22T10:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("valid time")
        + TimeDelta::milliseconds(ms)
}

fn btc() -> Symbol {
    Symbol::parse("BTC-USD").expect("valid symbol")
}

fn strategy(value: Value) -> StrategySpec {
    serde_json::from_value(value).expect("valid strategy spec")
}

fn config(strategy_spec: Value) -> AgentConfig {
    AgentConfig {
        name: "BTC SMA 1/2".into(),
        symbol: btc(),
        strategy: strategy(strategy_spec),
        frequency_s: 60,
        risk: RiskLimits {
            max_daily_loss: Some(dec!(500)),
            ..RiskLimits::for_starting_cash(dec!(10000))
        },
        starting_cash: dec!(10000),
        seed: 42,
    }
}

/// Run `tick_no` of session 1 (started at t(60 s), every 60 s) at `price`.
fn run(tick_no: u64, price: Decimal) -> AgentCommand {
    let slot = t(60_000 * tick_no as i64);
    AgentCommand::RecordRun {
        session: 1,
        tick_no,
        scheduled_at: slot,
        started_at: slot + TimeDelta::milliseconds(4),
        completed_at: slot + TimeDelta::milliseconds(6),
        observation: Observation {
            symbol: btc(),
            price,
            observed_at: slot,
        },
        fill_model: FillModel {
            slippage_bps: dec!(2.5),
            fee_bps: dec!(10),
        },
        correlation_id: format!("req-{tick_no}"),
    }
}

/// The execution role filling the order tick `tick_no` placed, 12 ms after its run.
fn fill(tick_no: u64) -> AgentCommand {
    AgentCommand::FillOrder {
        order_id: paper_order_id(AGENT_ID, 1, tick_no),
        at: t(60_000 * tick_no as i64 + 12),
    }
}

/// Everything the Agent aggregate records, and its history at the moments the error checks need.
struct AgentScenario {
    trader: Stream<Agent>,
    created: Stream<Agent>,
    running_after_one_run: Stream<Agent>,
    others: Vec<Stream<Agent>>,
}

fn agent_scenario() -> AgentScenario {
    let mut trader = Stream::<Agent>::new(AGENT_ID);
    trader.accept(AgentCommand::CreateAgent {
        agent_id: AGENT_ID.into(),
        owner: "alice".into(),
        config: config(json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2}})),
        at: t(0),
    });
    let created = trader.clone();
    let patch = AgentConfigPatch {
        name: Some("BTC SMA 1/2, no daily limit".into()),
        risk: Some(RiskLimits::for_starting_cash(dec!(10000))),
        ..AgentConfigPatch::default()
    };
    trader.accept(AgentCommand::UpdateAgentConfig {
        patch,
        at: t(5_000),
    });
    trader.accept(AgentCommand::StartAgent { at: t(60_000) });
    trader.accept(run(1, dec!(100)));
    let running_after_one_run = trader.clone();
    // fast 1 / slow 2 over 100, 100, 105, 95, 100, 90: observed, observed, buy (cross up, placed), skipped (the buy
    // has not filled yet), buy (cross up again: one unit held already, refused by max_position_qty), sell (filled).
    trader
        .accept(run(2, dec!(100)))
        .accept(run(3, dec!(105)))
        .accept(run(4, dec!(95)))
        .accept(fill(3))
        .accept(run(5, dec!(100)))
        .accept(run(6, dec!(90)))
        .accept(fill(6));
    trader.accept(AgentCommand::StopAgent {
        at: t(300_000),
        reason: "user".into(),
    });
    trader.accept(AgentCommand::ArchiveAgent { at: t(400_000) });

    let mut mean_reversion = Stream::<Agent>::new(MEAN_REVERSION_AGENT_ID);
    mean_reversion.accept(AgentCommand::CreateAgent {
        agent_id: MEAN_REVERSION_AGENT_ID.into(),
        owner: "bob".into(),
        config: AgentConfig {
            strategy: strategy(
                json!({"kind": "mean_reversion", "params": {"threshold_pct": "2.5"}}),
            ),
            ..config(json!({"kind": "hold"}))
        },
        at: t(0),
    });
    AgentScenario {
        trader,
        created,
        running_after_one_run,
        others: vec![mean_reversion],
    }
}

fn request(backtest_id: &str, agent_id: Option<&str>, source: BacktestSource) -> BacktestCommand {
    BacktestCommand::RequestBacktest {
        backtest_id: backtest_id.into(),
        owner: "alice".into(),
        agent_id: agent_id.map(Into::into),
        config: config(json!({"kind": "sma_crossover"})),
        source,
        fill_model: FillModel::default(),
        at: t(0),
    }
}

fn csv() -> BacktestSource {
    BacktestSource::Csv {
        bytes: 81_000_000,
        sha256: "9b74c9897bac770ffc029102a200c5de7e2f0a8bd3f4c1b2a9f5d6e7c8b9a0f1".into(),
    }
}

/// Everything the Backtest aggregate records, and its history where the error checks need it.
struct BacktestScenario {
    completed: Stream<Backtest>,
    requested: Stream<Backtest>,
    running: Stream<Backtest>,
    others: Vec<Stream<Backtest>>,
}

fn backtest_scenario() -> BacktestScenario {
    let mut completed = Stream::<Backtest>::new(BACKTEST_ID);
    completed.accept(request(BACKTEST_ID, Some(AGENT_ID), csv()));
    let requested = completed.clone();
    completed.accept(BacktestCommand::StartBacktest { at: t(50) });
    let running = completed.clone();
    completed.accept(BacktestCommand::CompleteBacktest {
        summary: BacktestSummary {
            bars: 1_000_000,
            orders: 35_714,
            fills: 35_700,
            final_cash: dec!(999950.50),
            final_position: dec!(1),
            final_equity: dec!(1000052.25),
            pnl: dec!(52.25),
            return_pct: dec!(0.0052),
        },
        at: t(350),
    });
    let sim = BacktestSource::Sim {
        seed: 42,
        from: t(0),
        to: t(3_600_000),
        step_s: 60,
    };
    let mut failed = Stream::<Backtest>::new(FAILED_BACKTEST_ID);
    failed
        .accept(request(FAILED_BACKTEST_ID, None, sim))
        .accept(BacktestCommand::StartBacktest { at: t(50) })
        .accept(BacktestCommand::FailBacktest {
            error: "line 17: close: invalid decimal \"12,5\"".into(),
            at: t(70),
        });
    let mut cancelled = Stream::<Backtest>::new(CANCELLED_BACKTEST_ID);
    cancelled
        .accept(request(CANCELLED_BACKTEST_ID, Some(AGENT_ID), csv()))
        .accept(BacktestCommand::CancelBacktest { at: t(100) });
    BacktestScenario {
        completed,
        requested,
        running,
        others: vec![failed, cancelled],
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What the scenarios record

/// One recorded event: as stored, plus the variant the exhaustive match names.
struct Recorded {
    serialized: SerializedEvent,
    variant: &'static str,
}

fn recorded<A>(streams: &[&Stream<A>], variant: fn(&A::Event) -> &'static str) -> Vec<Recorded>
where
    A: Aggregate<Services = ()>,
    A::Command: Debug,
    A::Error: Debug,
{
    streams
        .iter()
        .flat_map(|stream| {
            stream
                .serialized()
                .into_iter()
                .zip(stream.events.iter().map(variant))
                .map(|(serialized, variant)| Recorded {
                    serialized,
                    variant,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every event the scenarios record, built once.
static RECORDED: LazyLock<Vec<Recorded>> = LazyLock::new(|| {
    let agents = agent_scenario();
    let backtests = backtest_scenario();
    let mut out = recorded(
        &[&agents.trader]
            .into_iter()
            .chain(&agents.others)
            .collect::<Vec<_>>(),
        agent_variant,
    );
    out.extend(recorded(
        &[&backtests.completed]
            .into_iter()
            .chain(&backtests.others)
            .collect::<Vec<_>>(),
        backtest_variant,
    ));
    out
});

fn schema_validator(file: &str) -> Result<jsonschema::Validator, String> {
    let path = specs_dir().join("events").join(file);
    if !path.is_file() {
        return Err(format!("no schema specs/events/{file}"));
    }
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&read_json(&path))
        .map_err(|e| format!("{file} does not compile: {e}"))
}

fn schema_file(event_type: &str, event_version: &str) -> String {
    format!("{event_type}.v{event_version}.schema.json")
}

// ---------------------------------------------------------------------------------------------------------------
// Events ↔ schemas ↔ catalogue

#[test]
fn every_domain_event_validates_against_its_schema() {
    let mut validators = BTreeMap::new();
    let mut problems = Vec::new();
    for Recorded { serialized: e, .. } in RECORDED.iter() {
        let file = schema_file(&e.event_type, &e.event_version);
        let validator = validators
            .entry(file.clone())
            .or_insert_with(|| schema_validator(&file));
        let validator = match validator {
            Ok(validator) => validator,
            Err(problem) => {
                problems.push(format!("{} {}: {problem}", e.aggregate_type, e.event_type));
                continue;
            }
        };
        for error in validator.iter_errors(&e.payload) {
            problems.push(format!(
                "{} #{} of {} {} fails {file} at {}: {error}\n      payload: {}",
                e.event_type,
                e.sequence,
                e.aggregate_type,
                e.aggregate_id,
                error.instance_path,
                e.payload
            ));
        }
    }
    assert!(
        RECORDED.len() >= 20,
        "the scenarios record too little: {}",
        RECORDED.len()
    );
    fail_if_any(&problems, "domain events that their JSON Schema rejects");
}

#[test]
fn the_domain_and_the_04_catalogue_name_the_same_aggregate_events() {
    let entries: Vec<CatalogueEntry> = catalogue(&events_md())
        .into_iter()
        .filter(|e| e.tagged)
        .collect();
    let mut problems = Vec::new();
    let mut produced: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    for Recorded {
        serialized: e,
        variant,
    } in RECORDED.iter()
    {
        if e.event_type != *variant {
            problems.push(format!(
                "{variant} says its event_type() is {:?}",
                e.event_type
            ));
        }
        produced
            .entry(listed_aggregate(&e.aggregate_type))
            .or_default()
            .insert((e.event_type.clone(), e.event_version.clone()));
    }
    for aggregate in AGGREGATE_TYPES {
        let built: BTreeSet<&str> = produced[aggregate]
            .iter()
            .map(|(ty, _)| ty.as_str())
            .collect();
        let listed: BTreeSet<&str> = listed_variants(aggregate).iter().copied().collect();
        problems.extend(
            listed
                .difference(&built)
                .map(|ty| format!("{aggregate} variant {ty}: no scenario here records it")),
        );
        problems.extend(
            built
                .difference(&listed)
                .map(|ty| format!("{aggregate} records {ty}, which this test does not list")),
        );
        for (ty, version) in &produced[aggregate] {
            let row = entries
                .iter()
                .find(|e| e.ty == *ty && e.version.to_string() == *version);
            match row {
                None => problems.push(format!(
                    "{ty} v{version} ({aggregate}) has no catalogue row in 04 §2"
                )),
                Some(row) if row.aggregate.as_deref() != Some(aggregate) => problems.push(format!(
                    "04-events.md line {}: {ty} is an event of aggregate {aggregate}, not {:?}",
                    row.line, row.aggregate
                )),
                Some(_) => {}
            }
        }
    }
    problems.extend(
        entries
            .iter()
            .filter_map(|entry| uncovered(entry, &produced)),
    );
    fail_if_any(
        &problems,
        "the domain's events and the 04 catalogue disagree",
    );
}

/// The aggregate type as listed in [`AGGREGATE_TYPES`] (so the map keys are `&'static str`).
fn listed_aggregate(aggregate_type: &str) -> &'static str {
    AGGREGATE_TYPES
        .into_iter()
        .find(|t| *t == aggregate_type)
        .unwrap_or_else(|| panic!("unknown aggregate type {aggregate_type:?}"))
}

/// A problem if the catalogue row names an aggregate event the domain neither produces nor upcasts.
fn uncovered(
    entry: &CatalogueEntry,
    produced: &BTreeMap<&str, BTreeSet<(String, String)>>,
) -> Option<String> {
    let version = entry.version.to_string();
    let current = produced
        .values()
        .flatten()
        .any(|(ty, v)| *ty == entry.ty && *v == version);
    let upcast = event_upcasters()
        .iter()
        .any(|u| u.can_upcast(&entry.ty, &version));
    (!current && !upcast).then(|| {
        format!(
            "04-events.md line {}: {} has a schema, but the domain neither produces it nor upcasts it",
            entry.line,
            entry.key()
        )
    })
}

/// What the event stores do on reading: apply every upcaster that matches, in order.
fn upcast(event: SerializedEvent) -> SerializedEvent {
    event_upcasters().iter().fold(event, |event, upcaster| {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            upcaster.upcast(event)
        } else {
            event
        }
    })
}

/// Reads `stored` as aggregate `A` (after upcasting) and writes it back as the store would.
fn read_back<A: Aggregate>(stored: SerializedEvent) -> Result<SerializedEvent, String> {
    let envelope = EventEnvelope::<A>::try_from(stored).map_err(|e| e.to_string())?;
    SerializedEvent::try_from(&envelope).map_err(|e| e.to_string())
}

fn read_back_as(aggregate: &str, stored: SerializedEvent) -> Result<SerializedEvent, String> {
    match aggregate {
        "Agent" => read_back::<Agent>(stored),
        "Backtest" => read_back::<Backtest>(stored),
        other => Err(format!("no aggregate {other:?}")),
    }
}

fn stored_example(entry: &CatalogueEntry, payload: Value) -> SerializedEvent {
    SerializedEvent::new(
        AGENT_ID.into(),
        1,
        entry.aggregate.clone().unwrap_or_default(),
        entry.ty.clone(),
        entry.version.to_string(),
        payload,
        json!({"correlation_id": "spec-check"}),
    )
}

fn example(entry: &CatalogueEntry) -> Value {
    read_json(
        &specs_dir()
            .join("events/examples")
            .join(entry.example_file()),
    )
}

#[test]
fn every_example_is_a_real_domain_event() {
    let mut problems = Vec::new();
    for entry in catalogue(&events_md()).into_iter().filter(|e| e.tagged) {
        let example = example(&entry);
        let stored = upcast(stored_example(&entry, example.clone()));
        let aggregate = entry.aggregate.clone().unwrap_or_default();
        let back = match read_back_as(&aggregate, stored.clone()) {
            Ok(back) => back,
            Err(e) => {
                problems.push(format!(
                    "example {} is not a domain {aggregate} event: {e}",
                    entry.example_file()
                ));
                continue;
            }
        };
        if (back.event_type.as_str(), back.event_version.as_str())
            != (stored.event_type.as_str(), stored.event_version.as_str())
        {
            problems.push(format!(
                "example {} reads as {} v{}, not {} v{}",
                entry.example_file(),
                back.event_type,
                back.event_version,
                stored.event_type,
                stored.event_version
            ));
        }
        if back.payload != stored.payload {
            problems.push(format!(
                "example {} does not survive a round trip through the domain:\n      example: {}\n      domain:  {}",
                entry.example_file(), stored.payload, back.payload
            ));
        }
        if stored.event_version != entry.version.to_string() {
            problems.extend(upcast_payload_problems(&entry, &stored));
        }
    }
    fail_if_any(
        &problems,
        "examples in specs/events/examples/ that are not real domain events",
    );
}

/// An upcast payload must be exactly what the current schema describes.
fn upcast_payload_problems(entry: &CatalogueEntry, upcast: &SerializedEvent) -> Vec<String> {
    let file = schema_file(&upcast.event_type, &upcast.event_version);
    match schema_validator(&file) {
        Err(problem) => vec![format!("{} upcasts to {file}: {problem}", entry.key())],
        Ok(validator) => validator
            .iter_errors(&upcast.payload)
            .map(|error| {
                format!(
                    "{} upcast to v{} fails {file} at {}: {error}",
                    entry.key(),
                    upcast.event_version,
                    error.instance_path
                )
            })
            .collect(),
    }
}

#[test]
fn unknown_fields_are_rejected_by_schema_and_domain_alike() {
    let mut problems = Vec::new();
    for entry in catalogue(&events_md()).into_iter().filter(|e| e.tagged) {
        let mut example = example(&entry);
        example[&entry.ty]["unexpected"] = json!(1);
        let validator = match schema_validator(&entry.schema_file()) {
            Ok(validator) => validator,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if validator.is_valid(&example) {
            problems.push(format!("{} accepts an unknown field", entry.schema_file()));
        }
        let aggregate = entry.aggregate.clone().unwrap_or_default();
        if read_back_as(&aggregate, upcast(stored_example(&entry, example))).is_ok() {
            problems.push(format!(
                "the domain reads {} with an unknown field",
                entry.key()
            ));
        }
    }
    fail_if_any(&problems, "unknown fields accepted");
}

#[test]
fn aggregate_event_schemas_have_no_optional_fields() {
    let mut problems = Vec::new();
    for entry in catalogue(&events_md()).into_iter().filter(|e| e.tagged) {
        let path = specs_dir().join("events").join(entry.schema_file());
        if path.is_file() {
            optional_fields(&read_json(&path), &entry.schema_file(), &mut problems);
        }
    }
    fail_if_any(&problems, "optional fields in event schemas (04 §1: Option fields are written as null, never omitted)");
}

fn optional_fields(schema: &Value, at: &str, problems: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                let required: BTreeSet<&str> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                problems.extend(
                    properties
                        .keys()
                        .filter(|k| !required.contains(k.as_str()))
                        .map(|k| format!("{at}: property `{k}` is not required")),
                );
            }
            for (key, value) in map {
                optional_fields(value, &format!("{at}/{key}"), problems);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| optional_fields(v, at, problems)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Error codes: domain ↔ 04 §3 ↔ 03 §2

/// Drives each aggregate into every refusal it has; returns (aggregate, code, kind) per refusal.
fn refusals() -> Vec<(&'static str, &'static str, ErrorKind)> {
    let mut out: Vec<(&'static str, &'static str, ErrorKind)> = Vec::new();
    let agents = agent_scenario();
    let agent = |e: AgentError| (Agent::TYPE, e.code(), e.kind());
    let create = |agent_id: &str| AgentCommand::CreateAgent {
        agent_id: agent_id.into(),
        owner: "alice".into(),
        config: config(json!({"kind": "hold"})),
        at: t(0),
    };
    let start = || AgentCommand::StartAgent { at: t(1_000) };
    let running = &agents.running_after_one_run;
    out.extend([
        agent(agents.created.refuse(create(AGENT_ID))),
        agent(Stream::<Agent>::new(AGENT_ID).refuse(start())),
        agent(running.refuse(AgentCommand::UpdateAgentConfig {
            patch: AgentConfigPatch::default(),
            at: t(1_000),
        })),
        agent(running.refuse(start())),
        agent(agents.trader.refuse(start())),
        agent(agents.created.refuse(AgentCommand::StopAgent {
            at: t(1_000),
            reason: "user".into(),
        })),
        agent(running.refuse(run(1, dec!(100)))),
        agent(Stream::<Agent>::new("agent-1").refuse(create("agent-1"))),
        agent(running.refuse(fill(9))),
    ]);
    out.extend(backtest_refusals());
    out
}

fn backtest_refusals() -> Vec<(&'static str, &'static str, ErrorKind)> {
    let backtests = backtest_scenario();
    let backtest = |e: BacktestError| (Backtest::TYPE, e.code(), e.kind());
    let start = || BacktestCommand::StartBacktest { at: t(1_000) };
    vec![
        backtest(
            backtests
                .requested
                .refuse(request(BACKTEST_ID, None, csv())),
        ),
        backtest(Stream::<Backtest>::new(BACKTEST_ID).refuse(start())),
        backtest(backtests.running.refuse(start())),
        backtest(backtests.requested.refuse(BacktestCommand::FailBacktest {
            error: "x".into(),
            at: t(1_000),
        })),
        backtest(
            backtests
                .completed
                .refuse(BacktestCommand::CancelBacktest { at: t(1_000) }),
        ),
        backtest(Stream::<Backtest>::new("bt-1").refuse(request("bt-1", None, csv()))),
    ]
}

fn all_codes(aggregate: &str) -> BTreeSet<&'static str> {
    let codes = match aggregate {
        "Agent" => AgentError::all_codes(),
        "Backtest" => BacktestError::all_codes(),
        other => panic!("no aggregate {other:?}"),
    };
    codes.iter().copied().collect()
}

static REFUSED_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"→ `([a-z][a-z0-9_]*)`").expect("valid regex"));
static SNAKE_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`").expect("valid regex"));

/// 04 §3: the codes after "→" in each aggregate's subsection (`### 3.n <Aggregate>`), tables and prose.
fn codes_in_04() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in events_md().lines() {
        if line.starts_with("## ") {
            current = None;
        } else if let Some(heading) = line.strip_prefix("### ") {
            current = heading
                .split_whitespace()
                .last()
                .filter(|word| AGGREGATE_TYPES.contains(word))
                .map(str::to_owned);
        } else if let Some(aggregate) = &current {
            let codes = REFUSED_CODE.captures_iter(line).map(|c| c[1].to_owned());
            out.entry(aggregate.clone()).or_default().extend(codes);
        }
    }
    out
}

/// 03 §2: code → the statuses of the rows that list it (`| 409 | `a`, `b` |`).
fn codes_in_03() -> BTreeMap<String, BTreeSet<u16>> {
    let md = read(&specs_dir().join("03-apis.md"));
    let mut out: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for line in md.lines() {
        let mut cells = line.trim().trim_matches('|').split('|');
        let status = cells.next().and_then(|c| c.trim().parse::<u16>().ok());
        if let (Some(status), Some(codes)) = (status, cells.next()) {
            for code in SNAKE_CODE.captures_iter(codes) {
                out.entry(code[1].to_owned()).or_default().insert(status);
            }
        }
    }
    out
}

fn status_of(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::Invalid => 422,
    }
}

#[test]
fn aggregate_error_codes_agree_with_03_and_04() {
    let refusals = refusals();
    let in_04 = codes_in_04();
    let in_03 = codes_in_03();
    let mut problems = Vec::new();
    for aggregate in AGGREGATE_TYPES {
        let listed = all_codes(aggregate);
        let reached: BTreeSet<&str> = refusals
            .iter()
            .filter(|r| r.0 == aggregate)
            .map(|r| r.1)
            .collect();
        problems.extend(listed.difference(&reached).map(|c| {
            format!("{aggregate}: `{c}` is in all_codes() but no command here reaches it")
        }));
        problems.extend(
            reached
                .difference(&listed)
                .map(|c| format!("{aggregate}: `{c}` is reachable but missing from all_codes()")),
        );
        let documented: BTreeSet<&str> = in_04
            .get(aggregate)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        problems.extend(
            listed.difference(&documented).map(|c| {
                format!("{aggregate}: `{c}` is not listed in 04 §3 ({aggregate} section)")
            }),
        );
        problems.extend(
            documented
                .difference(&listed)
                .map(|c| format!("04 §3 ({aggregate}) lists `{c}`, which the domain has not")),
        );
    }
    for (aggregate, code, kind) in &refusals {
        let status = status_of(*kind);
        if !in_03.get(*code).is_some_and(|s| s.contains(&status)) {
            problems.push(format!(
                "{aggregate} `{code}` is a {status}, but 03 §2 lists it under {:?}",
                in_03.get(*code)
            ));
        }
    }
    let domain: BTreeSet<&str> = AGGREGATE_TYPES.into_iter().flat_map(all_codes).collect();
    problems.extend(
        in_03
            .keys()
            .filter(|c| {
                ["agent_", "order_", "backtest_", "tick_"]
                    .iter()
                    .any(|p| c.starts_with(p))
            })
            .filter(|c| !domain.contains(c.as_str()))
            // The read side's 404 for `GET /orders/{id}`: orders are entities of the Agent aggregate, and no command
            // addresses one by id, so no aggregate refuses with it.
            .filter(|c| c.as_str() != "order_not_found")
            .map(|c| format!("03 §2 lists `{c}`, which no aggregate has")),
    );
    fail_if_any(&problems, "error codes of the domain and of 03/04 disagree");
}
