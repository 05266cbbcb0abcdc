//! Command latency against history: `RecordRun` through `AggregateService<Agent>::execute` on an agent with 10 and
//! with 100,000 prior events, on Postgres and in memory. The kernel's promise is that the two cost the same: a warm
//! service decides on its cached state, and a fresh one reads the latest snapshot and the (fewer than
//! `SNAPSHOT_EVERY`) events after it, never the whole history.
//!
//! Per case: the history is made in bulk ([`crate::history::agent_history`]); a first load on a throwaway service
//! reads it all and snapshots it, as the first load after any long gap does; then fresh services run one timed
//! command each (cold), and one service runs one untimed command and the timed ones (warm).

use std::io::Write;
use std::time::{Duration, Instant};

use strom_commands::service::{AggregateService, SNAPSHOT_EVERY};
use strom_commands::store::EventStore;
use strom_domain::Agent;
use strom_tests::scenario::{deterministic_memory_store, AgentDriver};

use crate::history::{
    agent_history, agent_id, install_run_payload, runs, EVENTS_BEFORE_RUNS, LATENCY_AGENTS_FROM,
};
use crate::report::Report;
use crate::{scratch, BenchResult, Plan};

/// Connections of the latency schema: one command at a time, plus a spare for the snapshot write.
const LATENCY_CONNECTIONS: u32 = 2;

/// Latencies of one case.
struct Samples {
    warm: Vec<Duration>,
    cold: Vec<Duration>,
}

/// Prints the latency table (a row per backing and cache, the two histories side by side) and keeps its figures.
pub async fn latency(url: &str, plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let [short, long] = plan.latency_histories;
    println!(
        "command latency: RecordRun through AggregateService<Agent>::execute, µs; warm = {} commands on one service \
         (after one untimed), cold = the first command of {} fresh services (snapshot + the events after it)",
        plan.latency_commands, plan.cold_samples
    );
    println!(
        "  {:<9} {:<5} {:>14} {:>14} {:>14} {:>14}",
        "backing",
        "cache",
        format!("p50 @{short}"),
        format!("p99 @{short}"),
        format!("p50 @{long}"),
        format!("p99 @{long}")
    );
    // The guard outlives the Postgres store that uses its pool.
    let scratch = scratch(url, "latency", LATENCY_CONNECTIONS, true).await?;
    install_run_payload(&scratch.pool).await?;
    let stores = [
        ("postgres", EventStore::postgres(scratch.pool.clone())),
        ("memory", EventStore::Memory(deterministic_memory_store())),
    ];
    for (backing, store) in stores {
        let mut cases = Vec::new();
        for (i, &events) in plan.latency_histories.iter().enumerate() {
            let n = LATENCY_AGENTS_FROM + i as u64;
            cases.push((events, measure(&store, n, events, plan).await?));
        }
        print_rows(backing, &cases, report);
    }
    Ok(())
}

/// Makes agent `n`'s history of `events` events in `store`, then times commands on it: cold first (so the short
/// history is still short while fresh services load it), then warm.
async fn measure(store: &EventStore, n: u64, events: u64, plan: &Plan) -> BenchResult<Samples> {
    let id = agent_id(n);
    let setup = AggregateService::<Agent>::new(store.clone());
    agent_history(store, &setup, n, events).await?;
    // The first load of a long history reads it all and snapshots it; every later load starts from a snapshot.
    AggregateService::<Agent>::new(store.clone())
        .load(&id)
        .await?;
    let mut tick = events - EVENTS_BEFORE_RUNS + 1;
    let mut cold = Vec::with_capacity(plan.cold_samples);
    for _ in 0..plan.cold_samples {
        let fresh = AggregateService::new(store.clone());
        cold.push(timed_run(&fresh, n, &mut tick).await?);
        // The promise under test: a load never replays more than the events since the last snapshot.
        if fresh.events_replayed() >= SNAPSHOT_EVERY {
            return Err(format!(
                "a fresh service replayed {} events of agent {id} ({events} prior): snapshots are not used",
                fresh.events_replayed()
            )
            .into());
        }
    }
    let service = AggregateService::new(store.clone());
    timed_run(&service, n, &mut tick).await?; // untimed: fills the cache
    let mut warm = Vec::with_capacity(plan.latency_commands);
    for _ in 0..plan.latency_commands {
        warm.push(timed_run(&service, n, &mut tick).await?);
    }
    Ok(Samples { warm, cold })
}

/// Records run `tick` of agent `n` through `agents` and moves `tick` on. Returns how long the command took.
async fn timed_run(
    agents: &AggregateService<Agent>,
    n: u64,
    tick: &mut u64,
) -> BenchResult<Duration> {
    let id = agent_id(n);
    let mut agent = AgentDriver::new(agents, &id);
    let started = Instant::now();
    runs(&mut agent, n, *tick..=*tick).await?;
    let took = started.elapsed();
    *tick += 1;
    Ok(took)
}

/// Prints `backing`'s warm and cold rows and keeps their figures.
fn print_rows(backing: &'static str, cases: &[(u64, Samples)], report: &mut Report) {
    for cache in ["warm", "cold"] {
        let mut cells = String::new();
        for (events, samples) in cases {
            let samples = if cache == "warm" {
                &samples.warm
            } else {
                &samples.cold
            };
            for p in [50, 99] {
                let micros = percentile(samples, p).as_secs_f64() * 1e6;
                let name = format!("RecordRun latency p{p}, {cache} cache, {events} prior events");
                report.record(&name, micros, "µs", backing);
                cells.push_str(&format!(" {micros:>14.1}"));
            }
        }
        println!("  {backing:<9} {cache:<5}{cells}");
    }
    std::io::stdout().flush().ok();
}

/// The nearest-rank `p`th percentile of `samples` (zero when there are none).
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}
