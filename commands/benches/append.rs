//! `make bench` (`cargo bench -p strom-commands --bench append`): the event store's figures beside the machine's
//! own baseline, as the brief's bar asks (append ≥ half of pgbench's single-row inserts; rebuild ≥ 1M events/s).
//!
//! Prints the machine, then commands/s through the real command path (cqrs-es → postgres-es → our hash-chain
//! trigger, one event per command, distinct aggregates per writer) at 1, 8 and 32 writers beside pgbench's tps for
//! one-row INSERTs at the same client counts on the same database, then read figures over 1M events (sequential
//! scan, the global log reader, the relay to JetStream), and the place where projection rebuild figures go.
//! Everything happens in scratch schemas (and a scratch NATS prefix) that are dropped at the end.
//!
//! Not a libtest bench (`harness = false`): `cargo test --all-targets` runs this binary without `--bench`, and it
//! then returns at once. `STROM_BENCH_QUICK=1` shortens every phase (for a smoke run while others build).

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use strom_commands::bus::nats::NatsBus;
use strom_commands::bus::{Bus, Subjects};
use strom_commands::relay::{Relay, RelayConfig};
use strom_commands::store::{
    execute_with_retry, migrate, pg_connect_options, pg_cqrs, EventLog, LogPosition, PgEventLog,
    MAX_LOG_PAGE,
};

/// Concurrent writers per append level: one (latency-bound), a few per core, and well past the cores (where
/// group commit should pay off).
const WRITER_LEVELS: [usize; 3] = [1, 8, 32];
/// Length of each append level and of each pgbench run (the same, so both see the same conditions).
const LEVEL_SECONDS: u64 = 10;
/// Events generated for the read figures: the brief's rebuild workload size.
const SCAN_EVENTS: i64 = 1_000_000;
/// Rows per generating INSERT ... SELECT: one transaction per 100,000 rows keeps each commit's WAL and memory
/// modest while the per-statement overhead stays negligible.
const GENERATE_CHUNK: i64 = 100_000;
/// Events the relay figure publishes to JetStream: enough for a steady rate, few enough that the stream and its
/// dedup index stay small (the whole run must stay short on a shared machine).
const RELAY_EVENTS: usize = 100_000;
/// pgbench uses at most this many threads: the machine has two cores, and the server needs them too.
const PGBENCH_MAX_THREADS: usize = 2;
/// How long a scratch-schema connection waits for the server before the bench gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The phase sizes: the constants above, or a smoke-run fraction of them.
struct Plan {
    level: Duration,
    scan_events: i64,
    relay_events: usize,
}

impl Plan {
    fn from_env() -> Self {
        if std::env::var("STROM_BENCH_QUICK").is_ok_and(|v| v == "1") {
            Self {
                level: Duration::from_secs(2),
                scan_events: 100_000,
                relay_events: 10_000,
            }
        } else {
            Self {
                level: Duration::from_secs(LEVEL_SECONDS),
                scan_events: SCAN_EVENTS,
                relay_events: RELAY_EVENTS,
            }
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("append bench: run it with `make bench` (cargo bench); skipped under cargo test");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(error) = runtime.block_on(run(Plan::from_env())) {
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
    let url = database_url();
    let mut admin = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(&url))
        .await
        .map_err(|_| format!("no answer from Postgres at {url}"))??;
    print_machine(&mut admin).await?;
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
    admin.close().await.ok();
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
    Ok(())
}

/// A schema that exists for one phase and is dropped with everything in it when the guard goes.
struct Scratch {
    url: String,
    schema: String,
    pool: PgPool,
}

impl Scratch {
    async fn new(url: &str, what: &str, connections: u32) -> BenchResult<Self> {
        let schema = format!("bench_{what}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(url).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await?;
        admin.close().await.ok();
        let options = pg_connect_options(url, Some(&schema))?.application_name(&schema);
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self {
            url: url.to_owned(),
            schema,
            pool,
        })
    }

    async fn migrated(url: &str, what: &str, connections: u32) -> BenchResult<Self> {
        let scratch = Self::new(url, what, connections).await?;
        migrate(&scratch.pool).await?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop may run inside the runtime: clean up on a thread and runtime of our own.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&url).await?;
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut admin)
                .await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("warning: could not drop scratch schema {}", self.schema);
        }
    }
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
    let scratch = Scratch::migrated(url, "append", writers as u32 + 2).await?;
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

/// pgbench's tps for one-row INSERTs with `clients` clients, or why there is none.
async fn pgbench_level(url: &str, clients: usize, duration: Duration) -> Result<f64, String> {
    if Command::new("pgbench").arg("--version").output().is_err() {
        return Err("pgbench not installed".to_owned());
    }
    let scratch = Scratch::new(url, "pgbench", 1)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("CREATE TABLE bench_t (id bigserial PRIMARY KEY, v bigint NOT NULL)")
        .execute(&scratch.pool)
        .await
        .map_err(|e| e.to_string())?;
    let script = std::env::temp_dir().join(format!("{}.sql", scratch.schema));
    std::fs::write(
        &script,
        "\\set v random(1, 1000000000)\nINSERT INTO bench_t (v) VALUES (:v);\n",
    )
    .map_err(|e| e.to_string())?;
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-c", &clients.to_string()])
        .args(["-j", &clients.min(PGBENCH_MAX_THREADS).to_string()])
        .args(["-T", &duration.as_secs().to_string()])
        .arg("-f")
        .arg(&script)
        .arg(url)
        .env(
            "PGOPTIONS",
            format!(
                "-c search_path={} -c application_name={}",
                scratch.schema, scratch.schema
            ),
        )
        .output()
        .await;
    std::fs::remove_file(&script).ok();
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

async fn reads(url: &str, plan: &Plan) -> BenchResult<()> {
    let scratch = Scratch::migrated(url, "scan", 4).await?;
    println!("reads over {} events (one per aggregate)", plan.scan_events);
    let started = Instant::now();
    let mut generated = 0;
    while generated < plan.scan_events {
        let chunk = GENERATE_CHUNK.min(plan.scan_events - generated);
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'Tally', 's' || g, 1, 'Counted', '1',
                    json_build_object('Counted', json_build_object('count', 1, 'writer', g % 32)),
                    '{\"correlation_id\": \"bench\", \"actor\": \"system:bench\"}'::json
               FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(generated + 1)
        .bind(generated + chunk)
        .execute(&scratch.pool)
        .await?;
        generated += chunk;
    }
    row(
        "bulk insert through the trigger (INSERT ... SELECT generate_series)",
        generated as f64 / started.elapsed().as_secs_f64(),
    );
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
    let started = Instant::now();
    let (mut position, mut read) = (LogPosition::START, 0_usize);
    loop {
        let page = log.read_after(position, MAX_LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        read += page.len();
    }
    row(
        &format!("global log read (PgEventLog::read_after, pages of {MAX_LOG_PAGE})"),
        read as f64 / started.elapsed().as_secs_f64(),
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
        Err(why) => println!("  {:<70} n/a ({why})", "relay to JetStream"),
    }

    // ---- projection rebuild (from Postgres and from memory) ------------------------------------------------
    // To be printed here once strom_projections' rebuild lands on main (`rebuild_from(log, sink, progress)` on the
    // projections branch): rebuild over Agent events generated like the ones above (AgentCreated, AgentStarted,
    // then AgentRunRecorded), once from this Postgres log into PgRebuildSink and once from a
    // MemoryEventRepository into the memory read model, each printed with `row(.., events/s)`. Goal: ≥ 1M/s.
    println!(
        "  {:<70} n/a (strom_projections rebuild not on main yet)",
        "projection rebuild from Postgres"
    );
    println!(
        "  {:<70} n/a (strom_projections rebuild not on main yet)",
        "projection rebuild from memory"
    );
    Ok(())
}

fn row(what: &str, per_second: f64) {
    println!("  {what:<70} {per_second:>12.0} events/s");
    std::io::stdout().flush().ok();
}

/// Events per second the relay publishes (and checkpoints) from the scan schema to a scratch JetStream prefix.
async fn relay_rate(scratch: &Scratch, events: usize) -> Result<f64, String> {
    let subjects = Subjects::new(format!("bench{}", uuid::Uuid::new_v4().simple()))
        .map_err(|e| e.to_string())?;
    let bus = NatsBus::connect(&nats_url(), subjects)
        .await
        .map_err(|e| format!("NATS at {}: {e}", nats_url()))?;
    let result = async {
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
        }
        let rate = published as f64 / started.elapsed().as_secs_f64();
        active.release().await;
        Ok(rate)
    }
    .await;
    bus.delete_topology().await.ok();
    result
}
