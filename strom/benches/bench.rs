//! `make bench` (`cargo bench -p strom --bench bench`): the event store's and the read model's figures
//! beside the machine's own baseline, as the brief's bar asks (append ≥ half of pgbench's single-row inserts;
//! projection rebuild ≥ 1M events/s).
//!
//! Prints the machine, then commands/s through the real command path (cqrs-es → postgres-es → our hash-chain
//! trigger, one event per command, distinct aggregates per writer) at 1, 8 and 32 writers beside pgbench's tps for
//! one-row INSERTs at the same client counts on the same database. Then it builds a log of 1,000,000 valid Agent
//! events (2,000 agents created, started and run once through the real `Agent` aggregate and command path, then 497
//! more runs each inserted in bulk by `INSERT ... SELECT generate_series`, payloads checked against the aggregate's
//! own, hashes by the trigger) and prints over it: a plain sequential scan, the global log reader, the projection
//! rebuild from Postgres (into the Postgres read model, and into the memory one), the same rebuild from memory (the
//! log loaded into a `MemoryEventRepository`, rebuilt into a `MemoryReadModel`), and the relay to JetStream. Every
//! rebuild is checked: as many agents, runs and events as were written.
//!
//! Figures go to stdout, progress of the long steps to stderr. Everything happens in scratch schemas (and a scratch
//! NATS prefix) that guards drop at the end, on an error and on Ctrl-C.
//!
//! Not a libtest bench (`harness = false`): `cargo test --all-targets` runs this binary without `--bench`, and it
//! then returns at once. `--quick` (`cargo bench ... -- --quick`) or `STROM_BENCH_QUICK=1` shortens every phase
//! and builds a log of 100,000 events instead (a smoke run; its figures are not the published ones).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use strom_commands::bus::Bus;
use strom_commands::relay::{Relay, RelayConfig};
use strom_commands::store::{
    execute_with_retry, pg_cqrs, EventLog, LogPosition, MemoryEventRepository, PgEventLog,
    MAX_LOG_PAGE,
};
use strom_domain::upcast::event_upcasters;
use strom_domain::Agent;
use strom_projections::{rebuild_from, MemoryReadModel, PgReadModel, RebuildProgress};
use strom_tests::db::TestDb;
use strom_tests::nats::TestNats;
use strom_tests::scenario::{config, scenario_start, AgentDriver};

/// Concurrent writers per append level: one (latency-bound), a few per core, and well past the cores (where
/// group commit should pay off).
const WRITER_LEVELS: [usize; 3] = [1, 8, 32];
/// Length of each append level and of each pgbench run (the same, so both see the same conditions).
const LEVEL_SECONDS: u64 = 10;
/// Agents in the read workload. With [`EVENTS_PER_AGENT`] this gives the brief's rebuild size, 1,000,000 events.
const LOG_AGENTS: u64 = 2_000;
/// Events per agent: `AgentCreated`, `AgentStarted`, then runs 1..=498 of session 1.
const EVENTS_PER_AGENT: u64 = 500;
/// Events before the first run (created, started): run `t` is sequence `t + 2`.
const EVENTS_BEFORE_RUNS: u64 = 2;
/// Concurrent writers driving the agents through the command path.
const COMMAND_WRITERS: u64 = 8;
/// About this many rows per generating INSERT ... SELECT: one transaction per 100,000 rows keeps each commit's WAL
/// and memory modest while the per-statement overhead stays negligible.
const GENERATE_CHUNK: u64 = 100_000;
/// Events the relay figure publishes to JetStream: enough for a steady rate, few enough that the stream and its
/// dedup index stay small (the whole run must stay short on a shared machine).
const RELAY_EVENTS: usize = 100_000;
/// pgbench uses at most this many threads: the machine has two cores, and the server needs them too.
const PGBENCH_MAX_THREADS: usize = 2;
/// How long a scratch-schema connection waits for the server before the bench gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Progress lines on stderr: about this many per step.
const PROGRESS_LINES: u64 = 10;
/// The symbol every generated agent trades (its runs observe it).
const SYMBOL: &str = "BTC-USD";

/// The phase sizes: the constants above, or a smoke-run fraction of them.
struct Plan {
    level: Duration,
    agents: u64,
    relay_events: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                level: Duration::from_secs(2),
                agents: LOG_AGENTS / 10,
                relay_events: RELAY_EVENTS / 10,
            }
        } else {
            Self {
                level: Duration::from_secs(LEVEL_SECONDS),
                agents: LOG_AGENTS,
                relay_events: RELAY_EVENTS,
            }
        }
    }

    fn log_events(&self) -> u64 {
        self.agents * EVENTS_PER_AGENT
    }

    fn runs_per_agent(&self) -> u64 {
        EVENTS_PER_AGENT - EVENTS_BEFORE_RUNS
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("append bench: run it with `make bench` (cargo bench); skipped under cargo test");
        return;
    }
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var("STROM_BENCH_QUICK").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // On Ctrl-C the bench future is dropped, and with it every scratch guard (schemas, NATS prefix) still alive.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(Plan::new(quick)) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        }
    });
    if let Err(error) = outcome {
        eprintln!("bench failed: {error}");
        std::process::exit(1);
    }
}

fn database_url() -> String {
    std::env::var("STROM_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("STROM_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn nats_url() -> String {
    std::env::var("STROM_BENCH_NATS_URL")
        .or_else(|_| std::env::var("STROM_TEST_NATS_URL"))
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn run(plan: Plan) -> BenchResult<()> {
    let started = Instant::now();
    let url = database_url();
    let mut admin = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&url))
        .await
        .map_err(|_| format!("no answer from Postgres at {url}"))??;
    print_machine(&mut admin).await?;
    admin.close().await.ok();
    println!();
    println!(
        "append: commands/s through cqrs-es + postgres-es + hash-chain trigger (1 event per command, a new aggregate \
         per command), {} s per level, beside pgbench -n -T {} of one-row INSERTs",
        plan.level.as_secs(),
        plan.level.as_secs()
    );
    println!(
        "{:>8} {:>14} {:>16} {:>8}",
        "writers", "commands/s", "pgbench tps", "ratio"
    );
    for writers in WRITER_LEVELS {
        let commands = append_level(&url, writers, plan.level).await?;
        let pgbench = pgbench_level(&url, writers, plan.level).await;
        let (tps, ratio) = match &pgbench {
            Ok(tps) => (format!("{tps:.0}"), format!("{:.2}", commands / tps)),
            Err(why) => (format!("n/a ({why})"), "n/a".to_owned()),
        };
        println!("{writers:>8} {commands:>14.0} {tps:>16} {ratio:>8}");
        std::io::stdout().flush().ok();
    }
    println!();
    reads(&url, &plan).await?;
    println!();
    println!(
        "total bench time: {:.0} s; load at the end: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

async fn print_machine(admin: &mut PgConnection) -> BenchResult<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".to_owned(), |kb| format!("{:.1}", kb / 1024.0 / 1024.0));
    let server: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut *admin)
        .await?;
    println!("STROM bench");
    println!("machine:  {cpu}, {cores} cores, {memory_gib} GiB RAM");
    println!("postgres: {server}");
    println!(
        "load:     {} (1/5/15-minute averages at the start)",
        load_average()
    );
    Ok(())
}

/// The 1, 5 and 15-minute load averages: other work on the machine lowers every figure, so they are printed with
/// them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A schema that exists for one phase and is dropped with everything in it when the guard goes (also when the
/// bench fails or is interrupted: the future holding it is dropped then).
type Scratch = TestDb;

async fn scratch(url: &str, what: &str, connections: u32, migrated: bool) -> BenchResult<Scratch> {
    let builder = TestDb::builder(&format!("bench_{what}"))
        .url(url)
        .connections(connections)
        .acquire_timeout(CONNECT_TIMEOUT);
    let builder = if migrated {
        builder
    } else {
        builder.without_migrations()
    };
    Ok(builder.try_build().await?)
}

/// The bench aggregate: every command appends one event, like `RecordRun` does.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TallyEvent {
    Counted { count: u64, writer: usize },
}

impl DomainEvent for TallyEvent {
    fn event_type(&self) -> String {
        "Counted".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Tally {
    const TYPE: &'static str = "Tally";
    type Command = usize;
    type Event = TallyEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        writer: usize,
        _services: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Never> {
        let count = self.count + 1;
        sink.write(TallyEvent::Counted { count, writer }, self)
            .await;
        Ok(())
    }

    fn apply(&mut self, event: TallyEvent) {
        let TallyEvent::Counted { count, .. } = event;
        self.count = count;
    }
}

/// Commands per second from `writers` concurrent tasks for `duration`.
async fn append_level(url: &str, writers: usize, duration: Duration) -> BenchResult<f64> {
    let scratch = scratch(url, "append", writers as u32 + 2, true).await?;
    let cqrs = Arc::new(pg_cqrs::<Tally>(scratch.pool.clone(), vec![], vec![], ()));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (cqrs, done) = (Arc::clone(&cqrs), Arc::clone(&done));
            tokio::spawn(async move {
                let metadata = HashMap::from([
                    ("correlation_id".to_owned(), format!("bench-{writer}")),
                    ("actor".to_owned(), "system:bench".to_owned()),
                ]);
                let mut n = 0_u64;
                while Instant::now() < deadline {
                    let aggregate_id = format!("w{writer}-{n}");
                    execute_with_retry(cqrs.as_ref(), &aggregate_id, || writer, metadata.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

/// A file removed when the guard goes.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// pgbench's tps for one-row INSERTs with `clients` clients, or why there is none.
async fn pgbench_level(url: &str, clients: usize, duration: Duration) -> Result<f64, String> {
    if Command::new("pgbench").arg("--version").output().is_err() {
        return Err("pgbench not installed".to_owned());
    }
    let scratch = scratch(url, "pgbench", 1, false)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("CREATE TABLE bench_t (id bigserial PRIMARY KEY, v bigint NOT NULL)")
        .execute(&scratch.pool)
        .await
        .map_err(|e| e.to_string())?;
    let script = TempFile(std::env::temp_dir().join(format!("{}.sql", scratch.schema)));
    std::fs::write(
        &script.0,
        "\\set v random(1, 1000000000)\nINSERT INTO bench_t (v) VALUES (:v);\n",
    )
    .map_err(|e| e.to_string())?;
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-c", &clients.to_string()])
        .args(["-j", &clients.min(PGBENCH_MAX_THREADS).to_string()])
        .args(["-T", &duration.as_secs().to_string()])
        .arg("-f")
        .arg(&script.0)
        .arg(url)
        .env(
            "PGOPTIONS",
            format!(
                "-c search_path={} -c application_name={}",
                scratch.schema, scratch.schema
            ),
        )
        .kill_on_drop(true)
        .output()
        .await;
    let output = output.map_err(|e| format!("pgbench did not run: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_tps(&stdout).ok_or_else(|| {
        format!(
            "no tps line in pgbench's output: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

/// The number in pgbench's `tps = 1234.567 (without initial connection time)` line.
fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Progress of one long step on stderr: one line rewritten in place on a terminal, a line per update otherwise.
struct Progress {
    what: &'static str,
    total: u64,
    next: u64,
    terminal: bool,
}

impl Progress {
    fn new(what: &'static str, total: u64) -> Self {
        Self {
            what,
            total,
            next: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64) {
        if done < self.next && done < self.total {
            return;
        }
        self.next = done + (self.total / PROGRESS_LINES).max(1);
        let (what, total) = (self.what, self.total);
        if self.terminal {
            eprint!("\r  … {what}: {done}/{total}\x1b[K");
        } else {
            eprintln!("  … {what}: {done}/{total}");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.terminal {
            // Clear the progress line so the figures on stdout stay one table.
            eprint!("\r\x1b[K");
        }
    }
}

/// The number of generated agent `n` (1-based): the last twelve digits of its id.
fn agent_id(n: u64) -> String {
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

/// `bench_run_payload(agent_id, tick)`: the `AgentRunRecorded` payload the `Agent` aggregate records for run
/// `tick` of a generated agent (session 1 started at scenario start + 1 s, 1 s frequency, hold strategy, so the
/// outcome is `observed`), as the scenario driver sends it: slot `t0 + tick` s, started [`run_late_ms`] later,
/// completed 5 ms after that, observed 250 ms before the slot at [`run_price`]. `{t0}` is replaced by the scenario
/// start. The bench checks it against the payloads the aggregate recorded for run 1 before using it.
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

/// Builds the read workload in `scratch`: `plan.agents` agents created, started and run once through the real
/// command path, then runs 2..=`runs_per_agent` of every agent in bulk, tick by tick across agents (the order the
/// live system writes them in). Prints the rates of both.
async fn generate_agent_log(scratch: &Scratch, plan: &Plan) -> BenchResult<()> {
    let cqrs = Arc::new(pg_cqrs::<Agent>(
        scratch.pool.clone(),
        event_upcasters(),
        vec![],
        (),
    ));
    let done = Arc::new(AtomicU64::new(0));
    let commands = plan.agents * (EVENTS_BEFORE_RUNS + 1);
    let started = Instant::now();
    let writers: Vec<_> = (0..COMMAND_WRITERS)
        .map(|writer| {
            let (cqrs, done, agents) = (Arc::clone(&cqrs), Arc::clone(&done), plan.agents);
            tokio::spawn(async move {
                for n in (1..=agents).filter(|n| n % COMMAND_WRITERS == writer) {
                    let id = agent_id(n);
                    let mut agent = AgentDriver::new(cqrs.as_ref(), &id);
                    let hold = serde_json::json!({"kind": "hold", "params": {}});
                    let cash = Decimal::new(1_000_000, 2);
                    let settings = config(&format!("bench {n}"), SYMBOL, hold, 1, cash, n);
                    let owner = format!("user{}", n % 100);
                    let (price, late) = (run_price(n, 1), run_late_ms(n, 1));
                    async {
                        agent.create(&owner, settings, 0).await?;
                        agent.start(1_000).await?;
                        agent.run(1, 1_000, 1, 1, SYMBOL, price, late).await
                    }
                    .await
                    .map_err(|e| format!("agent {id}: {e}"))?;
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
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        writer
            .await?
            .map_err(|e| format!("driving the agents: {e}"))?;
    }
    drop(progress);
    row(
        &format!("command path: create, start, run ({COMMAND_WRITERS} writers, 1 event each)"),
        commands as f64 / started.elapsed().as_secs_f64(),
    );

    // The SQL payload must be exactly what the aggregate records: compare it with every run 1 it wrote.
    let t0 = scenario_start().to_rfc3339();
    sqlx::raw_sql(&RUN_PAYLOAD_SQL.replace("{t0}", &t0))
        .execute(&scratch.pool)
        .await?;
    let (matching, runs): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE payload::jsonb = bench_run_payload(aggregate_id, 1)), count(*)
           FROM events WHERE event_type = 'AgentRunRecorded'",
    )
    .fetch_one(&scratch.pool)
    .await?;
    if matching != runs || runs as u64 != plan.agents {
        return Err(format!(
            "bench_run_payload differs from the aggregate's AgentRunRecorded: {matching} of {runs} run-1 payloads \
             match ({} agents)",
            plan.agents
        )
        .into());
    }

    sqlx::query("CREATE TABLE bench_agents (agent_id text PRIMARY KEY)")
        .execute(&scratch.pool)
        .await?;
    sqlx::query("INSERT INTO bench_agents SELECT aggregate_id FROM events WHERE event_type = 'AgentCreated'")
        .execute(&scratch.pool)
        .await?;
    let last_tick = plan.runs_per_agent();
    let ticks_per_chunk = (GENERATE_CHUNK / plan.agents).max(1);
    let total = (last_tick - 1) * plan.agents;
    let mut progress = Progress::new("bulk runs through the trigger", total);
    let started = Instant::now();
    let mut tick = 2;
    while tick <= last_tick {
        let until = (tick + ticks_per_chunk - 1).min(last_tick);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'Agent', a.agent_id, t + $3, 'AgentRunRecorded', '1', bench_run_payload(a.agent_id, t)::json,
                    json_build_object('correlation_id', left(a.agent_id, 8) || '-' || (t + $3),
                                      'actor', 'system:runtime')
               FROM generate_series($1::bigint, $2::bigint) t CROSS JOIN bench_agents a
              ORDER BY t, a.agent_id",
        )
        .bind(tick as i64)
        .bind(until as i64)
        .bind(EVENTS_BEFORE_RUNS as i64)
        .execute(&scratch.pool)
        .await?;
        progress.update((until - 1) * plan.agents);
        tick = until + 1;
    }
    drop(progress);
    row(
        "bulk AgentRunRecorded through the trigger (INSERT ... SELECT)",
        total as f64 / started.elapsed().as_secs_f64(),
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&scratch.pool)
        .await?;
    if events as u64 != plan.log_events() {
        return Err(format!("generated {events} events, meant {}", plan.log_events()).into());
    }
    Ok(())
}

/// Checks a rebuild's outcome against what was generated.
fn check_rebuild(what: &str, done: &RebuildProgress, plan: &Plan) -> BenchResult<()> {
    let runs = plan.agents * plan.runs_per_agent();
    if done.events != plan.log_events() || done.agents != plan.agents || done.runs != runs {
        return Err(format!(
            "{what}: folded {} events into {} agents and {} runs; the log holds {} events of {} agents and {runs} \
             runs",
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

async fn reads(url: &str, plan: &Plan) -> BenchResult<()> {
    let scratch = scratch(url, "log", COMMAND_WRITERS as u32 + 2, true).await?;
    println!(
        "reads over {} Agent events ({} agents created, started and run once through the command path, then {} \
         more runs each by INSERT ... SELECT with the aggregate's payload; hash chains by the trigger)",
        plan.log_events(),
        plan.agents,
        plan.runs_per_agent() - 1
    );
    generate_agent_log(&scratch, plan).await?;
    sqlx::query("VACUUM ANALYZE events")
        .execute(&scratch.pool)
        .await?;

    // Best of two: the first pass may still pay for reading the freshly written pages from disk.
    let mut best = 0.0_f64;
    for _ in 0..2 {
        let started = Instant::now();
        let (count, _bytes): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), sum(length(payload::text)) FROM events")
                .fetch_one(&scratch.pool)
                .await?;
        best = best.max(count as f64 / started.elapsed().as_secs_f64());
    }
    row(
        "sequential scan: SELECT count(*), sum(length(payload::text))",
        best,
    );

    let log = PgEventLog::new(scratch.pool.clone());
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
    row(
        &format!("global log read (PgEventLog::read_after, pages of {MAX_LOG_PAGE})"),
        rate,
    );

    // The rebuild as `strom` runs it: the Postgres log into the Postgres read model (one transaction, COPY).
    let model = PgReadModel::new(scratch.pool.clone());
    let mut progress = Progress::new("projection rebuild from Postgres", plan.log_events());
    let started = Instant::now();
    let done = rebuild_from(&log, &mut model.rebuild_sink(), |p| {
        progress.update(p.events)
    })
    .await?;
    let rate = done.events as f64 / started.elapsed().as_secs_f64();
    drop(progress);
    check_rebuild("rebuild from Postgres", &done, plan)?;
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
    row(
        "projection rebuild from Postgres (PgEventLog -> PgReadModel, COPY)",
        rate,
    );

    // The same log into the memory read model: the sink's share of the figure above.
    let mut memory_model = MemoryReadModel::new();
    let mut progress = Progress::new("projection rebuild Postgres -> memory", plan.log_events());
    let started = Instant::now();
    let done = rebuild_from(&log, &mut memory_model, |p| progress.update(p.events)).await?;
    let rate = done.events as f64 / started.elapsed().as_secs_f64();
    drop(progress);
    check_rebuild("rebuild from Postgres into memory", &done, plan)?;
    row(
        "projection rebuild from Postgres into memory (-> MemoryReadModel)",
        rate,
    );
    drop(memory_model);

    // The same events in a memory event store, rebuilt into the memory read model.
    let memory_log = load_into_memory(&log, plan).await?;
    let mut memory_model = MemoryReadModel::new();
    let mut progress = Progress::new("projection rebuild from memory", plan.log_events());
    let started = Instant::now();
    let done = rebuild_from(&memory_log, &mut memory_model, |p| {
        progress.update(p.events);
    })
    .await?;
    let rate = done.events as f64 / started.elapsed().as_secs_f64();
    drop(progress);
    check_rebuild("rebuild from memory", &done, plan)?;
    let rebuilt = memory_model.snapshot();
    let runs_count: u64 = rebuilt.agents.values().map(|a| a.runs_count).sum();
    if rebuilt.runs.len() as u64 != done.runs || runs_count != done.runs {
        return Err(format!(
            "the memory read model holds {} runs (agents count {runs_count}); the fold made {}",
            rebuilt.runs.len(),
            done.runs
        )
        .into());
    }
    drop((rebuilt, memory_model, memory_log));
    row(
        "projection rebuild from memory (MemoryEventRepository -> MemoryReadModel)",
        rate,
    );

    match relay_rate(&scratch, plan.relay_events).await {
        Ok(rate) => row(
            &format!(
                "relay to JetStream (first {} events, pages of {})",
                plan.relay_events,
                strom_commands::relay::RELAY_PAGE
            ),
            rate,
        ),
        Err(why) => println!("  {:<74} n/a ({why})", "relay to JetStream"),
    }
    Ok(())
}

/// The whole of `log` appended to a new memory event store, page by page (each page one atomic append).
async fn load_into_memory(log: &PgEventLog, plan: &Plan) -> BenchResult<MemoryEventRepository> {
    let memory = MemoryEventRepository::new();
    let mut progress = Progress::new("loading the log into memory", plan.log_events());
    let (mut position, mut loaded) = (LogPosition::START, 0_u64);
    loop {
        let page = log.read_after(position, MAX_LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        loaded += page.len() as u64;
        let events: Vec<SerializedEvent> = page
            .into_iter()
            .map(|e| {
                SerializedEvent::new(
                    e.aggregate_id,
                    usize::try_from(e.sequence).unwrap_or(usize::MAX),
                    e.aggregate_type,
                    e.event_type,
                    e.event_version,
                    e.payload,
                    e.metadata,
                )
            })
            .collect();
        memory.persist::<Agent>(&events, None).await?;
        progress.update(loaded);
    }
    Ok(memory)
}

fn row(what: &str, per_second: f64) {
    println!("  {what:<74} {per_second:>12.0} events/s");
    std::io::stdout().flush().ok();
}

/// Events per second the relay publishes (and checkpoints) from the scan schema to a scratch JetStream prefix.
async fn relay_rate(scratch: &Scratch, events: usize) -> Result<f64, String> {
    // The guard first: the prefix's streams go also when a step below fails.
    let prefix = TestNats::at(&nats_url(), "bench");
    let bus = prefix.try_connect().await.map_err(|e| format!("{e:#}"))?;
    bus.ensure_topology().await.map_err(|e| e.to_string())?;
    let relay = Relay::postgres(
        scratch.pool.clone(),
        Arc::new(bus.clone()),
        RelayConfig::default(),
    );
    let mut active = relay
        .try_activate()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("another relay holds the bench prefix's lock")?;
    let mut progress = Progress::new("relay to JetStream", events as u64);
    let started = Instant::now();
    let mut published = 0;
    while published < events {
        let Some(page) = active.publish_page().await.map_err(|e| e.to_string())? else {
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
