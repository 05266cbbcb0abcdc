//! Append throughput: commands/s through the real command path on Postgres beside pgbench's one-row INSERTs on the
//! same database, at the same client counts, for the same time.
//!
//! The command is `RecordRun`, the one the system runs most (every running agent, every tick): each writer drives one
//! running agent of its own, so commands never conflict and the service's cache is warm, as in the runtime; each
//! command appends one event through the hash-chain trigger (and every 100th also writes a snapshot).

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_commands::service::AggregateService;
use strom_commands::store::EventStore;
use strom_domain::Agent;
use strom_tests::scenario::AgentDriver;

use crate::history::{agent_id, new_agent, runs, APPEND_AGENTS_FROM};
use crate::report::Report;
use crate::{scratch, BenchResult, Plan, WRITER_LEVELS};

/// pgbench uses at most this many threads: the machine has two cores, and the server needs them too.
const PGBENCH_MAX_THREADS: usize = 2;
/// Connections beyond one per writer: the snapshot writes and the service's occasional reads.
const SPARE_CONNECTIONS: u32 = 2;

/// Prints the append table (one row per writer level) and keeps its figures.
pub async fn append(url: &str, plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let seconds = plan.level.as_secs();
    println!(
        "append: commands/s of RecordRun through AggregateService<Agent> on Postgres (1 event per command, hash-chain \
         trigger, one running agent per writer, warm cache), {seconds} s per level, beside pgbench -n -T {seconds} of \
         one-row INSERTs"
    );
    println!(
        "{:>8} {:>14} {:>16} {:>8}",
        "writers", "commands/s", "pgbench tps", "ratio"
    );
    for writers in WRITER_LEVELS {
        let commands = append_level(url, writers, plan.level).await?;
        report.record(
            &format!("append RecordRun (writers: {writers})"),
            commands,
            "commands/s",
            "postgres",
        );
        let pgbench_name = format!("pgbench one-row INSERT (clients: {writers})");
        let ratio_name = format!("append / pgbench (writers: {writers})");
        let (tps, ratio) = match pgbench_level(url, writers, plan.level).await {
            Ok(tps) => {
                report.record(&pgbench_name, tps, "tps", "postgres");
                report.record(&ratio_name, commands / tps, "ratio", "postgres");
                (format!("{tps:.0}"), format!("{:.2}", commands / tps))
            }
            Err(why) => {
                report.missing(&pgbench_name, "tps", "postgres", &why);
                report.missing(&ratio_name, "ratio", "postgres", &why);
                (format!("n/a ({why})"), "n/a".to_owned())
            }
        };
        println!("{writers:>8} {commands:>14.0} {tps:>16} {ratio:>8}");
        std::io::stdout().flush().ok();
    }
    Ok(())
}

/// Commands per second from `writers` concurrent tasks for `duration`, each recording runs of its own agent.
async fn append_level(url: &str, writers: usize, duration: Duration) -> BenchResult<f64> {
    let scratch = scratch(url, "append", writers as u32 + SPARE_CONNECTIONS, true).await?;
    let agents = Arc::new(AggregateService::<Agent>::new(EventStore::postgres(
        scratch.pool.clone(),
    )));
    // Set-up, not timed: every writer's agent created, started and run once (which also warms the cache).
    let ids: Vec<u64> = (0..writers as u64)
        .map(|w| APPEND_AGENTS_FROM + w)
        .collect();
    for &n in &ids {
        new_agent(&agents, n).await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|n| {
            let (agents, done) = (Arc::clone(&agents), Arc::clone(&done));
            tokio::spawn(async move {
                let id = agent_id(n);
                let mut agent = AgentDriver::new(&agents, &id);
                let mut tick = 2;
                while Instant::now() < deadline {
                    runs(&mut agent, n, tick..=tick)
                        .await
                        .map_err(|e| e.to_string())?;
                    tick += 1;
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
