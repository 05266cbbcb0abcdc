//! Reads over the 1,000,000-event Agent log: a plain sequential scan (the server's baseline), the typed global log
//! reader, the projection rebuild from Postgres into both read models, the rebuild from memory, and the relay to
//! JetStream. Every rebuild is checked against what was generated.

use std::sync::Arc;
use std::time::Instant;

use strom_commands::bus::Bus;
use strom_commands::log::{EventLog, LogPosition, PgEventLog, MAX_LOG_PAGE};
use strom_commands::relay::{relay_config, Relay, RELAY_PAGE};
use strom_projections::{rebuild_from, MemoryReadModel, PgReadModel, RebuildProgress, RebuildSink};
use strom_tests::nats::TestNats;

use crate::history::{memory_log, pg_log, settle};
use crate::report::{process_cpu_seconds, Progress, Report};
use crate::{nats_url, scratch, BenchResult, Plan, Scratch};

/// Connections of the log schema: the agents are driven by 8 writers, plus the rebuild's reader and sink.
const LOG_CONNECTIONS: u32 = 10;
/// Scans of the events table; the best is kept: the first may still pay for reading freshly written pages.
const SCANS: usize = 2;

pub async fn reads(url: &str, plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let scratch = scratch(url, "log", LOG_CONNECTIONS, true).await?;
    println!(
        "reads over {} Agent events ({} agents created, started and run once through the command path, then {} \
         more runs each by INSERT ... SELECT with the aggregate's payload; hash chains by the trigger)",
        plan.log_events(),
        plan.agents,
        plan.runs_per_agent() - 1
    );
    pg_log(&scratch.pool, plan, report).await?;
    settle(&scratch.pool).await?;
    scan(&scratch, report).await?;
    let log = PgEventLog::new(scratch.pool.clone());
    log_read(&log, plan, report).await?;

    // The rebuild as `strom` runs it: the Postgres log into the Postgres read model (one transaction, COPY).
    let model = PgReadModel::new(scratch.pool.clone());
    let done = timed_rebuild(&log, &mut model.rebuild_sink(), plan, "from Postgres").await?;
    check_pg_model(&scratch, &done.0).await?;
    report.rate(
        "projection rebuild from Postgres (PgEventLog -> PgReadModel, COPY)",
        "postgres",
        done.1,
    );
    // The same log into the memory read model: the sink's share of the figure above.
    let mut memory_model = MemoryReadModel::new();
    let done = timed_rebuild(&log, &mut memory_model, plan, "Postgres -> memory").await?;
    report.rate(
        "projection rebuild from Postgres into memory (-> MemoryReadModel)",
        "postgres+memory",
        done.1,
    );
    drop(memory_model);

    memory_rebuild(plan, report).await?;
    match relay_rate(&scratch, plan.relay_events).await {
        Ok(rate) => report.rate(
            &format!(
                "relay to JetStream (first {} events, pages of {RELAY_PAGE})",
                plan.relay_events
            ),
            "postgres+nats",
            rate,
        ),
        Err(why) => report.rate_missing("relay to JetStream", "postgres+nats", &why),
    }
    Ok(())
}

async fn scan(scratch: &Scratch, report: &mut Report) -> BenchResult<()> {
    let mut best = 0.0_f64;
    for _ in 0..SCANS {
        let started = Instant::now();
        let (count, _bytes): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), sum(length(payload::text)) FROM events")
                .fetch_one(&scratch.pool)
                .await?;
        best = best.max(count as f64 / started.elapsed().as_secs_f64());
    }
    report.rate(
        "sequential scan: SELECT count(*), sum(length(payload::text))",
        "postgres",
        best,
    );
    Ok(())
}

/// The whole log through the typed reader, page by page.
async fn log_read(log: &PgEventLog, plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let mut progress = Progress::new("global log read", plan.log_events());
    let started = Instant::now();
    let (mut position, mut read) = (LogPosition::START, 0_u64);
    loop {
        let page = log.read_after(position, MAX_LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        read += page.len() as u64;
        progress.update(read);
    }
    let rate = read as f64 / started.elapsed().as_secs_f64();
    drop(progress);
    if read != plan.log_events() {
        return Err(format!("read {read} events, the log holds {}", plan.log_events()).into());
    }
    report.rate(
        &format!("global log read (PgEventLog::read_after, typed, pages of {MAX_LOG_PAGE})"),
        "postgres",
        rate,
    );
    Ok(())
}

/// Rebuilds `sink` from `log`, checks the outcome against the plan, and returns it with its events/s.
async fn timed_rebuild(
    log: &dyn EventLog,
    sink: &mut dyn RebuildSink,
    plan: &Plan,
    what: &'static str,
) -> BenchResult<(RebuildProgress, f64)> {
    let mut progress = Progress::new(what, plan.log_events());
    let started = Instant::now();
    let done = rebuild_from(log, sink, |p| progress.update(p.events)).await?;
    let rate = done.events as f64 / started.elapsed().as_secs_f64();
    drop(progress);
    check_rebuild(what, &done, plan)?;
    Ok((done, rate))
}

/// Checks a rebuild's outcome against what was generated.
fn check_rebuild(what: &str, done: &RebuildProgress, plan: &Plan) -> BenchResult<()> {
    let runs = plan.agents * plan.runs_per_agent();
    if done.events != plan.log_events() || done.agents != plan.agents || done.runs != runs {
        return Err(format!(
            "rebuild {what}: folded {} events into {} agents and {} runs; the log holds {} events of {} agents \
             and {runs} runs",
            done.events,
            done.agents,
            done.runs,
            plan.log_events(),
            plan.agents
        )
        .into());
    }
    Ok(())
}

/// Checks the Postgres read model holds what the fold made.
async fn check_pg_model(scratch: &Scratch, done: &RebuildProgress) -> BenchResult<()> {
    let (rows, runs_count): (i64, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM agent_runs), (SELECT sum(runs_count)::bigint FROM agents)",
    )
    .fetch_one(&scratch.pool)
    .await?;
    if rows as u64 != done.runs || runs_count.unwrap_or(0) as u64 != done.runs {
        return Err(format!(
            "the Postgres read model holds {rows} runs (agents count {runs_count:?}); the fold made {}",
            done.runs
        )
        .into());
    }
    Ok(())
}

/// The same agents' events made in a memory store (typed, no JSON but the hash chain's), rebuilt into the memory
/// read model.
async fn memory_rebuild(plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let memory_log = memory_log(plan, report).await?;
    let mut model = MemoryReadModel::new();
    let cpu_before = process_cpu_seconds();
    let (done, rate) = timed_rebuild(&memory_log, &mut model, plan, "from memory").await?;
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let rebuilt = model.snapshot();
    let runs_count: u64 = rebuilt.agents.values().map(|a| a.runs_count).sum();
    if rebuilt.run_count() as u64 != done.runs || runs_count != done.runs {
        return Err(format!(
            "the memory read model holds {} runs (agents count {runs_count}); the fold made {}",
            rebuilt.run_count(),
            done.runs
        )
        .into());
    }
    report.rate(
        "projection rebuild from memory (MemoryEventStore -> MemoryReadModel, typed)",
        "memory",
        rate,
    );
    // On a shared machine the wall-clock rate also counts the time other processes held the cores; the goal is per
    // core, so the bench's own CPU time is printed too.
    let per_cpu = "  the same, per CPU-second of the bench process (user + system)";
    match cpu.filter(|&s| s > 0.0) {
        Some(seconds) => report.rate(per_cpu, "memory", done.events as f64 / seconds),
        None => report.rate_missing(per_cpu, "memory", "no /proc/self/stat"),
    }
    Ok(())
}

/// Events per second the relay publishes (and checkpoints) from the log schema to a scratch JetStream prefix.
async fn relay_rate(scratch: &Scratch, events: usize) -> Result<f64, String> {
    // The guard first: the prefix's streams go also when a step below fails.
    let prefix = TestNats::at(&nats_url(), "bench");
    let bus = prefix.try_connect().await.map_err(|e| format!("{e:#}"))?;
    bus.ensure_topology().await.map_err(|e| e.to_string())?;
    let relay = Relay::postgres(scratch.pool.clone(), Arc::new(bus.clone()), relay_config());
    let mut active = relay
        .try_activate()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("another relay holds the bench prefix's lock")?;
    let mut progress = Progress::new("relay to JetStream", events as u64);
    let started = Instant::now();
    let mut published = 0;
    while published < events {
        let Some(page) = active.handle_next_page().await.map_err(|e| e.to_string())? else {
            break;
        };
        published += page.events;
        active
            .commit_checkpoint(page)
            .await
            .map_err(|e| e.to_string())?;
        progress.update(published as u64);
    }
    let rate = published as f64 / started.elapsed().as_secs_f64();
    drop(progress);
    active.release().await;
    Ok(rate)
}
