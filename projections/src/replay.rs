//! The audits behind `strom replay`, as functions that return what they found: rebuild projector `agents` from zero
//! ([`rebuild`]), recompute the hash chains ([`verify_chains`]) and compare the live read models with a rebuild
//! ([`check_read_models`]), export the log as JSON lines ([`export`]), and replay such a file without a database
//! ([`replay_file`], [`file`]). The binary adds the flags, the progress bars and the printing.
//!
//! Every function only reads the event log. [`rebuild`] writes the read models in one transaction, so an error (or
//! dropping its future, as Ctrl-C does) leaves them as they were; [`export`] writes to a temporary file renamed into
//! place at the end.

pub mod file;

use std::path::{Path, PathBuf};

use sqlx::PgPool;
use strom_commands::log::{
    verify_chains_with_progress, ChainProblem, ChainReport, EventLog, LogPosition, PgEventLog,
    StoreError, MAX_LOG_PAGE,
};

use crate::fold::ProjectionError;
use crate::model::TableDump;
use crate::postgres::{dump_tables_at_checkpoint, PgReadModel};
use crate::rebuild::{diff_dumps, fold_log, rebuild_from, DumpComparison, RebuildProgress};
use crate::sink::SinkError;

use self::file::{FileCheck, MAX_EVENT_LINE_BYTES};

/// What stopped an audit (problems it finds are not errors: they are in its report).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("Failed to count events (is this a migrated STROM database?)")]
    Count(#[source] sqlx::Error),
    #[error("Rebuild failed; the read models were left as they were")]
    Rebuild(#[source] SinkError),
    #[error("Failed to read the event chains")]
    Chains(#[source] StoreError),
    #[error("Failed to read the live read models")]
    LiveModels(#[source] SinkError),
    #[error("Failed to read the event log")]
    Log(#[source] StoreError),
    /// No database connection for a read.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The log could not be read while exporting it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be opened, read, created, written or moved (`action` says which).
    #[error("{action} {}", .path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: line is longer than {MAX_EVENT_LINE_BYTES} bytes", .path.display())]
    LineTooLong { path: PathBuf, line: usize },
    #[error("{}:{line}: not a logged event", .path.display())]
    NotAnEvent {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

impl ReplayError {
    /// `map_err` adapter for a failed file operation on `path`.
    pub(crate) fn file(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::File {
            action,
            path,
            source,
        }
    }
}

/// Events in the log (the length of a progress bar).
///
/// # Errors
/// The database does not answer or has no `events` table.
pub async fn count_events(pool: &PgPool) -> Result<u64, ReplayError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .map_err(ReplayError::Count)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Rebuilds projector `agents`'s tables from the whole log in ONE transaction (truncate, refold, reset the
/// checkpoint, commit), calling `progress` per page.
///
/// # Errors
/// The log or the tables failed, or an event cannot be folded; the read models are then left as they were.
pub async fn rebuild(
    pool: &PgPool,
    progress: impl FnMut(&RebuildProgress) + Send,
) -> Result<RebuildProgress, ReplayError> {
    let log = PgEventLog::new(pool.clone());
    let mut sink = PgReadModel::new(pool.clone()).rebuild_sink();
    rebuild_from(&log, &mut sink, progress)
        .await
        .map_err(ReplayError::Rebuild)
}

/// Recomputes every hash chain of the store, calling `progress` per page.
///
/// # Errors
/// The events cannot be read.
pub async fn verify_chains(
    pool: &PgPool,
    progress: impl FnMut(&ChainReport) + Send,
) -> Result<ChainReport, ReplayError> {
    verify_chains_with_progress(&PgEventLog::new(pool.clone()), progress)
        .await
        .map_err(ReplayError::Chains)
}

/// The live read models compared with a rebuild of the log up to their checkpoint.
#[derive(Debug)]
pub struct ModelCheck {
    /// The live projector's checkpoint, read in the same snapshot as `live`.
    pub checkpoint: LogPosition,
    /// The live tables.
    pub live: TableDump,
    /// Events the refold could not read.
    pub fold_errors: Vec<ProjectionError>,
    /// Live (`live`) against refolded (`rebuilt`) rows.
    pub comparison: DumpComparison,
}

impl ModelCheck {
    /// The refold read every event and gave exactly the live rows.
    pub fn is_equal(&self) -> bool {
        self.comparison.is_equal() && self.fold_errors.is_empty()
    }
}

/// Reads the live read models at their checkpoint and compares them row by row with a fold of the log up to it,
/// calling `progress` per page of the fold.
///
/// # Errors
/// The tables or the log cannot be read.
pub async fn check_read_models(
    pool: &PgPool,
    progress: impl FnMut(&RebuildProgress) + Send,
) -> Result<ModelCheck, ReplayError> {
    let mut conn = pool.acquire().await?;
    let (checkpoint, live) = dump_tables_at_checkpoint(&mut conn)
        .await
        .map_err(ReplayError::LiveModels)?;
    drop(conn);
    let log = PgEventLog::new(pool.clone());
    let (model, fold_errors) = fold_log(&log, Some(checkpoint), progress)
        .await
        .map_err(ReplayError::Log)?;
    let comparison = diff_dumps(&live, &model.dump());
    Ok(ModelCheck {
        checkpoint,
        live,
        fold_errors,
        comparison,
    })
}

/// Every problem `strom replay --verify` found, one line each: chain problems, unreadable events, differing rows.
pub fn verify_problems(chains: &ChainReport, models: &ModelCheck) -> Vec<String> {
    let mut problems = chain_problem_lines(chains);
    problems.extend(
        models
            .fold_errors
            .iter()
            .map(|e| format!("cannot fold: {e}")),
    );
    problems.extend(difference_lines(&models.comparison));
    problems
}

/// One line per chain problem, naming the stream and sequence.
pub fn chain_problem_lines(report: &ChainReport) -> Vec<String> {
    let mut lines: Vec<String> = report.problems.iter().map(chain_problem_line).collect();
    if report.problems_truncated {
        lines.push("… more chain problems (list truncated)".to_owned());
    }
    lines
}

/// The line for one chain problem, naming the stream and sequence (also the API's chain check's `detail`).
pub fn chain_problem_line(problem: &ChainProblem) -> String {
    match problem {
        ChainProblem::AlteredEvent {
            aggregate,
            sequence,
        } => format!(
            "altered event: {aggregate} sequence {sequence} does not match its hash (edited or forged)"
        ),
        ChainProblem::MissingEvent {
            aggregate,
            expected_sequence,
        } => format!(
            "missing event: {aggregate} sequence {expected_sequence} is absent (deleted; the chain has a gap)"
        ),
        ChainProblem::ReorderedOrInserted {
            aggregate,
            sequence,
            original_sequence,
        } => format!(
            "reordered event: {aggregate} sequence {sequence} was written as sequence {original_sequence}"
        ),
    }
}

/// One line per differing row.
pub fn difference_lines(comparison: &DumpComparison) -> Vec<String> {
    let mut lines: Vec<String> = comparison
        .differences
        .iter()
        .map(|d| format!("read model: {d}"))
        .collect();
    if comparison.truncated {
        lines.push("… more differing rows (list truncated)".to_owned());
    }
    lines
}

/// Writes the whole of `log` to `path` as JSON lines, in log order, calling `progress` with the events written so
/// far. Writes `path` with the extension `partial` first and renames it at the end; removes it on failure.
///
/// # Errors
/// The log cannot be read, or the file cannot be written or moved into place.
pub async fn export(
    log: &dyn EventLog,
    path: &Path,
    progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    let partial = path.with_extension("partial");
    let written = match export_to(log, &partial, progress).await {
        Ok(n) => n,
        Err(e) => {
            std::fs::remove_file(&partial).ok();
            return Err(e);
        }
    };
    std::fs::rename(&partial, path)
        .map_err(ReplayError::file("Failed to move the export into", path))?;
    Ok(written)
}

async fn export_to(
    log: &dyn EventLog,
    path: &Path,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    let out = std::fs::File::create(path).map_err(ReplayError::file("Failed to create", path))?;
    let mut out = std::io::BufWriter::new(out);
    let mut position = LogPosition::START;
    let mut written = 0;
    loop {
        let page = log.read_envelopes_after(position, MAX_LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        written += file::write_events(&mut out, &page)
            .map_err(ReplayError::file("Failed to write", path))?;
        progress(written);
    }
    std::io::Write::flush(&mut out).map_err(ReplayError::file("Failed to write", path))?;
    Ok(written)
}

/// What `strom replay --from FILE [--expect DIR]` found.
#[derive(Debug)]
pub struct FileReplay {
    /// Order, hash chains and fold of the file.
    pub check: FileCheck,
    /// The replayed read models against the golden files of `--expect` (`live` = expected, `rebuilt` = replayed).
    pub comparison: Option<DumpComparison>,
    /// The replayed read models.
    pub dump: TableDump,
}

impl FileReplay {
    /// Every problem, one line each; differences from the golden files are worded as such.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.check.problems();
        if let Some(comparison) = &self.comparison {
            problems.extend(difference_lines(comparison).into_iter().map(|l| {
                l.replacen("read model:", "expected read model:", 1)
                    .replace("    live:    ", "    expected: ")
                    .replace("    rebuilt: ", "    replayed: ")
            }));
        }
        problems
    }
}

/// Replays the event file `path` without a database, comparing the result with the golden files in `expect`.
///
/// # Errors
/// The file or the golden files cannot be read or parsed.
pub fn replay_file(path: &Path, expect: Option<&Path>) -> Result<FileReplay, ReplayError> {
    let check = file::check_file(path)?;
    let comparison = match expect {
        Some(dir) => Some(file::compare_expected(dir, &check.model)?),
        None => None,
    };
    let dump = check.model.dump();
    Ok(FileReplay {
        check,
        comparison,
        dump,
    })
}
