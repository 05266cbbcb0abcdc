//! Command latency against history: `RecordRun` through `AggregateService<Agent>::execute` on an agent with 10 and
//! with 100,000 prior events, on Postgres and in memory. The kernel's promise is that the two cost the same: a warm
//! service decides on its cached state, and a fresh one reads the latest snapshot and the (fewer than
//! `SNAPSHOT_EVERY`) events after it, never the whole history.
//!
//! Per backing: both histories are made in bulk ([`crate::history::agent_history`]); a first load on a throwaway
//! service reads each and snapshots it, as the first load after any long gap does; then fresh services run one timed
//! command each (cold), and one service runs one untimed command and the timed ones (warm), the two agents taking
//! turns throughout.

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

/// One agent under test: its number, its history and the next tick to run, with the latencies measured on it.
struct Case {
    n: u64,
    events: u64,
    tick: u64,
    warm: Vec<Duration>,
    cold: Vec<Duration>,
}

/// Prints the latency table (a row per backing and cache, the two histories side by side) and keeps its figures.
pub async fn latency(url: &str, plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let [short, long] = plan.latency_histories;
    println!(
        "command latency: RecordRun through AggregateService<Agent>::execute, µs, the two agents taking turns; \
         cold = the first command of each of {} fresh services (snapshot + the events after it), warm = {} commands \
         on one service after one untimed",
        plan.cold_samples, plan.latency_commands
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
            cases.push(prepare(&store, LATENCY_AGENTS_FROM + i as u64, events).await?);
        }
        measure(&store, &mut cases, plan).await?;
        print_rows(backing, &cases, report);
    }
    Ok(())
}

/// Makes agent `n`'s history of `events` events in `store`. The first load of a long history then reads it all and
/// snapshots it (as the first load after any long gap does); every later load starts from a snapshot.
async fn prepare(store: &EventStore, n: u64, events: u64) -> BenchResult<Case> {
    let setup = AggregateService::<Agent>::new(store.clone());
    agent_history(store, &setup, n, events).await?;
    AggregateService::<Agent>::new(store.clone())
        .load(&agent_id(n))
        .await?;
    Ok(Case {
        n,
        events,
        tick: events - EVENTS_BEFORE_RUNS + 1,
        warm: Vec::new(),
        cold: Vec::new(),
    })
}

/// Times commands on every case, the cases taking turns so that whatever else the machine does falls on all of
/// them alike: cold first (so the short history is still short while fresh services load it), then warm.
async fn measure(store: &EventStore, cases: &mut [Case], plan: &Plan) -> BenchResult<()> {
    for _ in 0..plan.cold_samples {
        for case in cases.iter_mut() {
            let fresh = AggregateService::new(store.clone());
            let took = timed_run(&fresh, case).await?;
            case.cold.push(took);
            // The promise under test: a load never replays more than the events since the last snapshot.
            if fresh.events_replayed() >= SNAPSHOT_EVERY {
                return Err(format!(
                    "a fresh service replayed {} events of agent {} ({} prior): snapshots are not used",
                    fresh.events_replayed(),
                    agent_id(case.n),
                    case.events
                )
                .into());
            }
        }
    }
    let service = AggregateService::new(store.clone());
    for case in cases.iter_mut() {
        timed_run(&service, case).await?; // untimed: fills the cache
    }
    for _ in 0..plan.latency_commands {
        for case in cases.iter_mut() {
            let took = timed_run(&service, case).await?;
            case.warm.push(took);
        }
    }
    Ok(())
}

/// Records the next run of `case`'s agent through `agents`. Returns how long the command took.
async fn timed_run(agents: &AggregateService<Agent>, case: &mut Case) -> BenchResult<Duration> {
    let id = agent_id(case.n);
    let mut agent = AgentDriver::new(agents, &id);
    let started = Instant::now();
    runs(&mut agent, case.n, case.tick..=case.tick).await?;
    let took = started.elapsed();
    case.tick += 1;
    Ok(took)
}

/// Prints `backing`'s cold and warm rows and keeps their figures.
fn print_rows(backing: &'static str, cases: &[Case], report: &mut Report) {
    for cache in ["cold", "warm"] {
        let mut cells = String::new();
        for case in cases {
            let samples = if cache == "warm" {
                &case.warm
            } else {
                &case.cold
            };
            for p in [50, 99] {
                let micros = percentile(samples, p).as_secs_f64() * 1e6;
                let name = format!(
                    "RecordRun latency p{p}, {cache} cache, {} prior events",
                    case.events
                );
                report.record(&name, micros, "µs", backing);
                cells.push_str(&format!(" {micros:>14.1}"));
            }
        }
        println!("  {backing:<9} {cache:<5}{cells}");
    }
    std::io::stdout().flush().ok();
}

/// The nearest-rank `p`th percentile of `samples` (zero when there are none).
pub fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}
