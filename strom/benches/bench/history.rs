//! Agent histories for the bench, made cheaply but valid: every agent is created, started and run once through the
//! real command path (`AggregateService<Agent>`), and its further runs are added in bulk with exactly the events the
//! aggregate would record for them —
//!
//! - on Postgres by `INSERT ... SELECT generate_series` through the hash-chain trigger, with payloads computed in SQL
//!   by [`RUN_PAYLOAD_SQL`] (checked equal to the payloads the aggregate recorded before it is used);
//! - in memory by `Agent::decide`/`evolve` on the agent's own state, appended through the store's append port
//!   ([`EventStore::append`]), one run per append in the same tick-by-tick order as the Postgres log.
//!
//! A generated agent `n` trades [`SYMBOL`] with the hold strategy at 1 s from session 1 started at the scenario start
//! + 1 s; run `t` starts [`run_late_ms`] after its slot and observes [`run_price`].

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::PgPool;
use strom_commands::service::{AggregateService, CommandError};
use strom_commands::store::{EventStore, MemoryEventStore};
use strom_domain::{Agent, AgentCommand, AgentError, Decider, EventMetadata, StromEvent};
use strom_tests::scenario::{
    config, deterministic_memory_store, run_command, scenario_start, AgentDriver,
};

use crate::report::{Progress, Report};
use crate::{BenchResult, Plan};

/// Events per agent of the read workload: `AgentCreated`, `AgentStarted`, then runs 1..=498 of session 1.
pub const EVENTS_PER_AGENT: u64 = 500;
/// Events before the first run (created, started): run `t` is sequence `t + 2`.
pub const EVENTS_BEFORE_RUNS: u64 = 2;
/// Agents of the append levels are numbered from here, those of the latency figures from [`LATENCY_AGENTS_FROM`]
/// (the read log's are 1..=2,000): each phase has its own schema, distinct numbers just keep the ids unambiguous.
pub const APPEND_AGENTS_FROM: u64 = 10_000;
pub const LATENCY_AGENTS_FROM: u64 = 20_000;
/// The symbol every generated agent trades (its runs observe it).
pub const SYMBOL: &str = "BTC-USD";
/// Concurrent writers driving the agents through the command path.
const COMMAND_WRITERS: u64 = 8;
/// About this many rows per generating INSERT ... SELECT: one transaction per 100,000 rows keeps each commit's WAL
/// and memory modest while the per-statement overhead stays negligible.
const GENERATE_CHUNK: u64 = 100_000;
/// Rows of a bulk insert's first statement, after which the table is analyzed. The trigger looks each event's
/// predecessor up by primary key, but the plan comes from the table's statistics: while they say the table is a page
/// or two (as right after a `VACUUM ANALYZE` of a young schema), the plan is a sequential scan, kept for the whole
/// statement, and inserting 100,000 events of one agent rereads the table per row (measured: 20,000 rows took 32 s
/// instead of 0.65 s). 1,000 rows are cheap even so, and make the statistics pick the index.
const FIRST_BULK_ROWS: u64 = 1_000;
/// Session, its start (ms after the scenario start) and frequency of every generated agent's runs.
const SESSION: u64 = 1;
const SESSION_START_MS: i64 = 1_000;
const FREQUENCY_S: u32 = 1;
/// How often the driving tasks' progress is looked at.
const PROGRESS_POLL: Duration = Duration::from_millis(200);

/// The id of generated agent `n` (1-based): its number is the last twelve digits.
pub fn agent_id(n: u64) -> String {
    format!("{n:08}-0000-4000-8000-{n:012}")
}

/// How late (ms) run `tick` of agent `n` starts after its slot: 3 to 42 ms. [`RUN_PAYLOAD_SQL`] computes the same.
fn run_late_ms(n: u64, tick: u64) -> i64 {
    3 + ((n * 7 + tick) % 40) as i64
}

/// The price run `tick` of agent `n` observes: 100.00 to 119.99. [`RUN_PAYLOAD_SQL`] computes the same.
fn run_price(n: u64, tick: u64) -> Decimal {
    Decimal::new(10_000 + ((n * 31 + tick * 17) % 2_000) as i64, 2)
}

/// Creates, starts and runs once (tick 1) agent `n` through the command path: [`EVENTS_BEFORE_RUNS`] + 1 events.
pub async fn new_agent(
    agents: &AggregateService<Agent>,
    n: u64,
) -> Result<(), CommandError<AgentError>> {
    let id = agent_id(n);
    let mut agent = AgentDriver::new(agents, &id);
    let hold = serde_json::json!({"kind": "hold", "params": {}});
    let cash = Decimal::new(1_000_000, 2);
    let settings = config(&format!("bench {n}"), SYMBOL, hold, FREQUENCY_S, cash, n);
    agent
        .create(&format!("user{}", n % 100), settings, 0)
        .await?;
    agent.start(SESSION_START_MS).await?;
    runs(&mut agent, n, 1..=1).await
}

/// Records runs `ticks` of agent `n` through `agent`'s command service, one command each.
pub async fn runs(
    agent: &mut AgentDriver<'_>,
    n: u64,
    ticks: RangeInclusive<u64>,
) -> Result<(), CommandError<AgentError>> {
    let id = agent_id(n);
    for tick in ticks {
        agent.run(record_run(&id, n, tick)).await?;
    }
    Ok(())
}

/// The `RecordRun` of run `tick` of agent `n` (whose id is `id`).
fn record_run(id: &str, n: u64, tick: u64) -> AgentCommand {
    let (price, late) = (run_price(n, tick), run_late_ms(n, tick));
    run_command(
        id,
        SESSION,
        SESSION_START_MS,
        FREQUENCY_S,
        tick,
        SYMBOL,
        price,
        late,
    )
}

/// [`new_agent`] for agents `numbers`, from [`COMMAND_WRITERS`] concurrent tasks. Returns commands/s.
async fn drive_agents(agents: &Arc<AggregateService<Agent>>, count: u64) -> BenchResult<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let commands = count * (EVENTS_BEFORE_RUNS + 1);
    let started = Instant::now();
    let writers: Vec<_> = (0..COMMAND_WRITERS)
        .map(|writer| {
            let (agents, done) = (Arc::clone(agents), Arc::clone(&done));
            tokio::spawn(async move {
                for n in (1..=count).filter(|n| n % COMMAND_WRITERS == writer) {
                    new_agent(&agents, n)
                        .await
                        .map_err(|e| format!("agent {}: {e}", agent_id(n)))?;
                    done.fetch_add(EVENTS_BEFORE_RUNS + 1, Ordering::Relaxed);
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    let mut progress = Progress::new("agents through the command path (commands)", commands);
    for writer in writers {
        while !writer.is_finished() {
            progress.update(done.load(Ordering::Relaxed));
            tokio::time::sleep(PROGRESS_POLL).await;
        }
        writer
            .await?
            .map_err(|e| format!("driving the agents: {e}"))?;
    }
    Ok(commands as f64 / started.elapsed().as_secs_f64())
}

/// `bench_run_payload(agent_id, tick)`: the `AgentRunRecorded` payload the `Agent` aggregate records for run
/// `tick` of a generated agent (hold strategy, so the outcome is `observed`), as [`runs`] sends it: slot
/// `t0 + 1 s + (tick - 1) s`, started [`run_late_ms`] later, completed 5 ms after that, observed 250 ms before the
/// slot at [`run_price`]. `{t0}` is replaced by the scenario start. [`check_run_payloads`] compares it with the
/// payloads the aggregate recorded before it is used.
const RUN_PAYLOAD_SQL: &str = r#"
CREATE FUNCTION bench_ts(t timestamptz) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE FUNCTION bench_run_payload(agent_id text, tick bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS
$$
DECLARE
    n     bigint      := right(agent_id, 12)::bigint;
    slot  timestamptz := '{t0}'::timestamptz + tick * interval '1 second';
    late  interval    := (3 + (n * 7 + tick) % 40) * interval '1 millisecond';
    cents bigint      := 10000 + (n * 31 + tick * 17) % 2000;
BEGIN
    RETURN jsonb_build_object('AgentRunRecorded', jsonb_build_object(
        'session', 1,
        'tick_no', tick,
        'scheduled_at', bench_ts(slot),
        'started_at', bench_ts(slot + late),
        'completed_at', bench_ts(slot + late + interval '5 milliseconds'),
        'observation', jsonb_build_object(
            'symbol', 'BTC-USD',
            'price', (cents / 100)::text || '.' || lpad((cents % 100)::text, 2, '0'),
            'observed_at', bench_ts(slot - interval '250 milliseconds')),
        'outcome', 'observed',
        'correlation_id', 'tick-' || left(agent_id, 8) || '-1-' || tick));
END;
$$;
"#;

/// Runs `$1..=$2` of the agents `$4`, tick by tick across agents (the order the live system writes them in).
const BULK_RUNS_SQL: &str = "
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'Agent', a.agent_id, t + $3, 'AgentRunRecorded', '1', bench_run_payload(a.agent_id, t)::json,
       json_build_object('correlation_id', left(a.agent_id, 8) || '-' || (t + $3), 'actor', 'system:runtime')
  FROM generate_series($1::bigint, $2::bigint) t CROSS JOIN unnest($4::text[]) a(agent_id)
 ORDER BY t, a.agent_id";

/// Creates `bench_run_payload` in `pool`'s schema.
pub async fn install_run_payload(pool: &PgPool) -> BenchResult<()> {
    let t0 = scenario_start().to_rfc3339();
    sqlx::raw_sql(&RUN_PAYLOAD_SQL.replace("{t0}", &t0))
        .execute(pool)
        .await?;
    Ok(())
}

/// Checks every run the aggregate recorded so far against `bench_run_payload`; at least `expected` must exist.
pub async fn check_run_payloads(pool: &PgPool, expected: u64) -> BenchResult<()> {
    let (matching, runs): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE payload::jsonb = bench_run_payload(aggregate_id,
                                    (payload::jsonb #>> '{AgentRunRecorded,tick_no}')::bigint)),
                count(*)
           FROM events WHERE event_type = 'AgentRunRecorded'",
    )
    .fetch_one(pool)
    .await?;
    if matching != runs || (runs as u64) < expected {
        return Err(format!(
            "bench_run_payload differs from the aggregate's AgentRunRecorded: {matching} of {runs} payloads match \
             ({expected} expected at least)"
        )
        .into());
    }
    Ok(())
}

/// Inserts runs `ticks` of agents `ids` through the trigger. Returns events/s.
pub async fn bulk_runs(
    pool: &PgPool,
    ids: &[String],
    ticks: RangeInclusive<u64>,
) -> BenchResult<f64> {
    let agents = ids.len() as u64;
    let ticks_per_chunk = (GENERATE_CHUNK / agents.max(1)).max(1);
    let (first, last) = (*ticks.start(), *ticks.end());
    let total = (last + 1).saturating_sub(first) * agents;
    let mut progress = Progress::new("bulk runs through the trigger", total);
    let started = Instant::now();
    let first_ticks = (FIRST_BULK_ROWS / agents.max(1)).max(1);
    let mut tick = first;
    while tick <= last {
        let chunk = if tick == first {
            first_ticks
        } else {
            ticks_per_chunk
        };
        let until = (tick + chunk - 1).min(last);
        sqlx::query(BULK_RUNS_SQL)
            .bind(tick as i64)
            .bind(until as i64)
            .bind(EVENTS_BEFORE_RUNS as i64)
            .bind(ids)
            .execute(pool)
            .await?;
        if tick == first {
            sqlx::query("ANALYZE events").execute(pool).await?;
        }
        progress.update((until + 1 - first) * agents);
        tick = until + 1;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Builds the read workload on Postgres in `pool`'s schema and prints the rates of both ways of writing it.
pub async fn pg_log(pool: &PgPool, plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let agents = Arc::new(AggregateService::new(EventStore::postgres(pool.clone())));
    let rate = drive_agents(&agents, plan.agents).await?;
    report.rate(
        &format!("command path: create, start, run ({COMMAND_WRITERS} writers, 1 event each)"),
        "postgres",
        rate,
    );
    install_run_payload(pool).await?;
    check_run_payloads(pool, plan.agents).await?;
    let ids: Vec<String> = (1..=plan.agents).map(agent_id).collect();
    let rate = bulk_runs(pool, &ids, 2..=plan.runs_per_agent()).await?;
    report.rate(
        "bulk AgentRunRecorded through the trigger (INSERT ... SELECT)",
        "postgres",
        rate,
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    if events as u64 != plan.log_events() {
        return Err(format!("generated {events} events, meant {}", plan.log_events()).into());
    }
    Ok(())
}

/// A generated agent's state as its runs are decided without a command service.
struct Decided {
    n: u64,
    id: String,
    state: Agent,
    version: u64,
}

impl Decided {
    /// Agent `n`'s current state in `agents`' store.
    async fn load(agents: &AggregateService<Agent>, n: u64) -> BenchResult<Self> {
        let id = agent_id(n);
        let (state, version) = agents.load(&id).await?;
        Ok(Self {
            n,
            id,
            state,
            version,
        })
    }

    /// Decides run `tick` on the state and applies it (`Decider::execute`), then appends the events through the
    /// store's port (the hash chain included): what the command service does, less its cache and snapshots.
    async fn append_run(&mut self, store: &EventStore, tick: u64) -> BenchResult<()> {
        let events = self.state.execute(record_run(&self.id, self.n, tick))?;
        let sequence = self.version + 1;
        let metadata =
            EventMetadata::new(format!("{}-{sequence}", &self.id[..8]), "system:runtime");
        let logged: Vec<_> = events.into_iter().map(StromEvent::Agent).collect();
        store
            .append::<Agent>(&self.id, self.version, &logged, &metadata)
            .await?;
        self.version += logged.len() as u64;
        Ok(())
    }
}

/// Adds runs `ticks` of agents `numbers` (already run once through `agents`, a service over `store`) to `store`, tick
/// by tick across agents.
async fn append_runs(
    store: &EventStore,
    agents: &AggregateService<Agent>,
    numbers: RangeInclusive<u64>,
    ticks: RangeInclusive<u64>,
) -> BenchResult<()> {
    let mut decided = Vec::new();
    for n in numbers {
        decided.push(Decided::load(agents, n).await?);
    }
    let total = (ticks.end() + 1).saturating_sub(*ticks.start()) * decided.len() as u64;
    let mut progress = Progress::new("runs decided and appended in memory", total);
    let mut done = 0;
    for tick in ticks {
        for agent in &mut decided {
            agent.append_run(store, tick).await?;
        }
        done += decided.len() as u64;
        progress.update(done);
    }
    Ok(())
}

/// The read workload in a memory store: the same agents and runs as [`pg_log`] (only positions, event ids and
/// `recorded_at` differ). Prints how fast it was made.
pub async fn memory_log(plan: &Plan, report: &mut Report) -> BenchResult<MemoryEventStore> {
    let memory = deterministic_memory_store();
    let store = EventStore::Memory(memory.clone());
    let agents = Arc::new(AggregateService::new(store.clone()));
    let started = Instant::now();
    drive_agents(&agents, plan.agents).await?;
    append_runs(&store, &agents, 1..=plan.agents, 2..=plan.runs_per_agent()).await?;
    let events = memory.events().len() as u64;
    if events != plan.log_events() {
        return Err(format!(
            "made {events} events in memory, meant {}",
            plan.log_events()
        )
        .into());
    }
    report.rate(
        "memory log made: command path, then Agent decide/evolve + append port",
        "memory",
        events as f64 / started.elapsed().as_secs_f64(),
    );
    Ok(memory)
}

/// Gives agent `n` a history of `events` (at least 3) events in `store`: [`new_agent`] through `agents` (a service
/// over `store`), then the runs in bulk.
pub async fn agent_history(
    store: &EventStore,
    agents: &AggregateService<Agent>,
    n: u64,
    events: u64,
) -> BenchResult<()> {
    new_agent(agents, n).await?;
    let more = 2..=events - EVENTS_BEFORE_RUNS;
    match store {
        EventStore::Postgres(pg) => {
            check_run_payloads(pg.pool(), 1).await?;
            bulk_runs(pg.pool(), &[agent_id(n)], more).await?;
            settle(pg.pool()).await?;
        }
        EventStore::Memory(_) => append_runs(store, agents, n..=n, more).await?,
    }
    Ok(())
}

/// Lets the server finish now what a bulk load leaves for later — autovacuum's pass over the new rows and the
/// checkpoint of the dirty pages — so that work does not land inside the figures measured next. (`CHECKPOINT`
/// needs a privileged role; without one the checkpointer does it in its own time.)
pub async fn settle(pool: &PgPool) -> BenchResult<()> {
    sqlx::query("VACUUM (ANALYZE) events").execute(pool).await?;
    sqlx::query("CHECKPOINT").execute(pool).await.ok();
    Ok(())
}
