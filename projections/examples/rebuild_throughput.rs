//! Rough rebuild throughput on this machine (not a benchmark harness; `make bench` owns the published figures):
//! a synthetic log of valid Agent events (N agents, each created, started and run R times) folded by
//! `rebuild_from` from memory into memory, from memory into Postgres (COPY), and from Postgres into Postgres.
//!
//! `cargo run --release -p strom-projections --example rebuild_throughput -- [events]` (Postgres from
//! `STROM_TEST_DATABASE_URL`, a throwaway schema).

use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use strom_commands::store::{
    migrate, pg_connect_options, EventLog, LogPosition, LoggedEvent, PgEventLog, StoreError,
    MAX_LOG_PAGE,
};
use strom_domain::config::RiskLimits;
use strom_domain::{AgentEvent, Observation, RunOutcome, StrategySpec, Symbol};
use strom_projections::{rebuild_from, MemoryReadModel, PgReadModel};

struct VecLog(Vec<LoggedEvent>);

#[async_trait]
impl EventLog for VecLog {
    async fn read_after(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let start = self.0.partition_point(|e| e.position <= after);
        Ok(self.0[start..]
            .iter()
            .take(limit.min(MAX_LOG_PAGE))
            .cloned()
            .collect())
    }
}

const RUNS_PER_AGENT: u64 = 98;

fn synthetic(events: usize) -> Vec<LoggedEvent> {
    let t0: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().unwrap();
    let mut out = Vec::with_capacity(events);
    let mut agent = 0u64;
    while out.len() < events {
        agent += 1;
        let id = format!("00000000-0000-4000-8000-{agent:012}");
        let mut seq = 0;
        let mut push = |out: &mut Vec<LoggedEvent>, e: AgentEvent| {
            seq += 1;
            let n = out.len() as i64 + 1;
            out.push(LoggedEvent {
                position: LogPosition {
                    tx_id: n as u64,
                    global_position: n,
                },
                event_id: uuid::Uuid::nil(),
                aggregate_type: "Agent".into(),
                aggregate_id: id.clone(),
                sequence: seq,
                event_type: e.event_type(),
                event_version: e.event_version(),
                payload: serde_json::to_value(&e).unwrap(),
                metadata: serde_json::json!({"correlation_id": "bench", "actor": "bench"}),
                recorded_at: t0,
                hash: String::new(),
            });
        };
        push(
            &mut out,
            AgentEvent::AgentCreated {
                agent_id: id.clone(),
                owner: format!("user{}", agent % 100),
                name: "bench".into(),
                symbol: Symbol::parse("BTC-USD").unwrap(),
                strategy: StrategySpec::default(),
                frequency_s: 1,
                risk: RiskLimits {
                    max_position_qty: Decimal::ONE,
                    max_order_qty: Decimal::ONE,
                    max_notional: Decimal::from(1000),
                    max_daily_loss: None,
                },
                starting_cash: Decimal::from(1000),
                seed: agent,
                created_at: t0,
            },
        );
        push(
            &mut out,
            AgentEvent::AgentStarted {
                session: 1,
                started_at: t0,
                frequency_s: 1,
            },
        );
        for tick in 1..=RUNS_PER_AGENT {
            let at = t0 + TimeDelta::seconds(tick as i64 - 1);
            push(
                &mut out,
                AgentEvent::AgentRunRecorded {
                    session: 1,
                    tick_no: tick,
                    scheduled_at: at,
                    started_at: at + TimeDelta::milliseconds(3),
                    completed_at: at + TimeDelta::milliseconds(5),
                    observation: Observation {
                        symbol: Symbol::parse("BTC-USD").unwrap(),
                        price: Decimal::new(10_000 + tick as i64, 2),
                        observed_at: at,
                    },
                    outcome: RunOutcome::Observed,
                    correlation_id: format!("tick-{agent}-{tick}"),
                },
            );
        }
    }
    out.truncate(events);
    out
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let log = VecLog(synthetic(events));
    let rate = |n: u64, t: Instant| n as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let fold = strom_projections::AgentFold::new();
    let mut agents = std::collections::BTreeMap::new();
    for e in &log.0 {
        fold.apply(&mut agents, e).unwrap();
    }
    println!(
        "fold only:            {} events, {:>10.0} events/s",
        log.0.len(),
        rate(log.0.len() as u64, t)
    );
    let t = Instant::now();
    let n = log.0.to_vec().len();
    println!(
        "clone only:           {n} events, {:>10.0} events/s",
        rate(n as u64, t)
    );
    let t = Instant::now();
    let mut memory = MemoryReadModel::new();
    let done = rebuild_from(&log, &mut memory, |_| {}).await.unwrap();
    println!(
        "memory -> memory:     {} events, {:>10.0} events/s",
        done.events,
        rate(done.events, t)
    );

    let url = std::env::var("STROM_TEST_DATABASE_URL")
        .unwrap_or("postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(pg_connect_options(&url, Some(&schema)).unwrap())
        .await
        .unwrap();
    migrate(&pool).await.unwrap();

    let t = Instant::now();
    let model = PgReadModel::new(pool.clone());
    let done = rebuild_from(&log, &mut model.rebuild_sink(), |_| {})
        .await
        .unwrap();
    println!(
        "memory -> postgres:   {} events, {:>10.0} events/s",
        done.events,
        rate(done.events, t)
    );

    // Load the log into Postgres (hash trigger and all), then rebuild from there.
    let t = Instant::now();
    for chunk in log.0.chunks(5_000) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ");
        q.push_values(chunk, |mut b, e| {
            b.push_bind(&e.aggregate_type)
                .push_bind(&e.aggregate_id)
                .push_bind(e.sequence as i64)
                .push_bind(&e.event_type)
                .push_bind(&e.event_version)
                .push_bind(&e.payload)
                .push_bind(&e.metadata);
        });
        q.build().execute(&pool).await.unwrap();
    }
    println!(
        "(loaded {} events into Postgres in {:.1} s)",
        log.0.len(),
        t.elapsed().as_secs_f64()
    );
    let pg_log = PgEventLog::new(pool.clone());
    let t = Instant::now();
    let mut n = 0u64;
    let mut p = LogPosition::START;
    loop {
        let page = pg_log.read_after(p, MAX_LOG_PAGE).await.unwrap();
        let Some(last) = page.last() else { break };
        p = last.position;
        n += page.len() as u64;
    }
    println!(
        "postgres read only:   {n} events, {:>10.0} events/s",
        rate(n, t)
    );
    let t = Instant::now();
    let mut memory = MemoryReadModel::new();
    let done = rebuild_from(&pg_log, &mut memory, |_| {}).await.unwrap();
    println!(
        "postgres -> memory:   {} events, {:>10.0} events/s",
        done.events,
        rate(done.events, t)
    );
    let t = Instant::now();
    let done = rebuild_from(&pg_log, &mut model.rebuild_sink(), |_| {})
        .await
        .unwrap();
    println!(
        "postgres -> postgres: {} events, {:>10.0} events/s",
        done.events,
        rate(done.events, t)
    );

    pool.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}
