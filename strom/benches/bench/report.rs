//! What the bench prints, also kept for `target/bench/results.json` (`{"quick", "figures": [{name, value, unit,
//! backing}], "machine": {...}}`) so runs can be compared by a program; and the progress lines of the long steps.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use serde::Serialize;
use sqlx::PgConnection;

use crate::BenchResult;

/// Progress lines on stderr: about this many per step.
const PROGRESS_LINES: u64 = 10;
/// Width of a figure's label in the printed rows (the longest label fits).
const LABEL_WIDTH: usize = 74;

/// One printed figure. `value` is `None` when it could not be measured (`note` says why).
#[derive(Debug, Serialize)]
pub struct Figure {
    name: String,
    value: Option<f64>,
    unit: &'static str,
    /// Where the figure's data lives: `postgres`, `memory`, `postgres+memory` (read from one, written to the
    /// other), `postgres+nats`.
    backing: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// The machine the figures were taken on: every figure depends on it and on what else ran.
#[derive(Debug, Serialize)]
pub struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: Option<f64>,
    kernel: Option<String>,
    postgres: String,
    nats: Option<String>,
    rustc: Option<String>,
    /// UTC, RFC 3339, when the bench started.
    date: String,
    /// 1, 5 and 15-minute load averages at the start and at the end.
    load_start: String,
    load_end: Option<String>,
}

/// The figures of one run and its machine.
#[derive(Debug, Serialize)]
pub struct Report {
    quick: bool,
    figures: Vec<Figure>,
    machine: Machine,
}

impl Report {
    /// Reads the machine (the Postgres server through `admin`, the NATS server's version if one answers at
    /// `nats_url`).
    pub async fn new(admin: &mut PgConnection, nats_url: &str, quick: bool) -> BenchResult<Self> {
        let postgres: String = sqlx::query_scalar("SELECT version()")
            .fetch_one(&mut *admin)
            .await?;
        let nats = match async_nats::connect(nats_url).await {
            Ok(client) => Some(format!("nats-server {}", client.server_info().version)),
            Err(_) => None,
        };
        let machine = Machine {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: memory_gib(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            postgres,
            nats,
            rustc: rustc_version(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            load_start: load_average(),
            load_end: None,
        };
        Ok(Self {
            quick,
            figures: Vec::new(),
            machine,
        })
    }

    pub fn print_machine(&self) {
        let m = &self.machine;
        let memory = m.memory_gib.map_or("?".to_owned(), |g| format!("{g:.1}"));
        let unknown = || "unknown".to_owned();
        println!("STROM bench{}", if self.quick { " (quick)" } else { "" });
        println!("machine:  {}, {} cores, {memory} GiB RAM", m.cpu, m.cores);
        println!("kernel:   {}", m.kernel.clone().unwrap_or_else(unknown));
        println!("postgres: {}", m.postgres);
        println!("nats:     {}", m.nats.clone().unwrap_or_else(unknown));
        println!("rustc:    {}", m.rustc.clone().unwrap_or_else(unknown));
        println!("date:     {}", m.date);
        println!(
            "load:     {} (1/5/15-minute averages at the start)",
            m.load_start
        );
    }

    /// Keeps a figure the caller prints in its own table.
    pub fn record(&mut self, name: &str, value: f64, unit: &'static str, backing: &'static str) {
        self.figures.push(Figure {
            name: name.to_owned(),
            value: Some(value),
            unit,
            backing,
            note: None,
        });
    }

    /// Keeps a figure that could not be measured, and why.
    pub fn missing(&mut self, name: &str, unit: &'static str, backing: &'static str, why: &str) {
        self.figures.push(Figure {
            name: name.to_owned(),
            value: None,
            unit,
            backing,
            note: Some(why.to_owned()),
        });
    }

    /// Prints and keeps one `events/s` row.
    pub fn rate(&mut self, what: &str, backing: &'static str, per_second: f64) {
        println!("  {what:<LABEL_WIDTH$} {per_second:>12.0} events/s");
        std::io::stdout().flush().ok();
        self.record(what, per_second, "events/s", backing);
    }

    /// Prints and keeps a row that could not be measured.
    pub fn rate_missing(&mut self, what: &str, backing: &'static str, why: &str) {
        println!("  {what:<LABEL_WIDTH$} n/a ({why})");
        self.missing(what, "events/s", backing, why);
    }

    /// Writes `target/bench/results.json` (temp file, then rename: a reader never sees half a file) and returns
    /// its path.
    ///
    /// # Errors
    /// The file could not be written.
    pub fn finish(&mut self) -> BenchResult<PathBuf> {
        self.machine.load_end = Some(load_average());
        let dir = results_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("results.json");
        let temp = dir.join(format!("results.json.{}.tmp", std::process::id()));
        std::fs::write(&temp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&temp, &path)?;
        Ok(path)
    }
}

/// `target/bench`: the bench runs as `target/<profile>/deps/bench-<hash>` (with its working directory in the package,
/// not the workspace), so the target directory is three levels above the executable, wherever `CARGO_TARGET_DIR`
/// put it.
fn results_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("bench")
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned()
}

fn memory_gib() -> Option<f64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
}

/// The compiler on the PATH (the one cargo built the bench with, unless the toolchain was switched meanwhile).
fn rustc_version() -> Option<String> {
    let output = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The 1, 5 and 15-minute load averages: other work on the machine lowers every figure, so they are printed with
/// them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times: Linux's `USER_HZ`, 100 on every architecture it
/// supports for this (it is part of the userspace ABI, unlike the kernel's own `HZ`).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system, all threads) this process has used so far, in seconds, at 10 ms resolution.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis): state is the
    // first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// Progress of one long step on stderr: one line rewritten in place on a terminal, a line per update otherwise.
pub struct Progress {
    what: &'static str,
    total: u64,
    next: u64,
    terminal: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Self {
        Self {
            what,
            total,
            next: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: u64) {
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
