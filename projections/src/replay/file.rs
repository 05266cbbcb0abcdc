//! Event logs as JSON-lines files (one `EventEnvelope` per line, the stored form, in log order) and read models as
//! golden files (`agents.jsonl`, `agent_runs.jsonl`, `orders.jsonl`, `trades.jsonl`, `positions.jsonl`,
//! `pnl_points.jsonl`: one canonical dump line per row, in primary-key order). Everything here works without a
//! database: [`check_file`] verifies a file's order and hash chains and folds it.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use strom_commands::log::{jsonb_text, ChainReport, ChainRow, ChainVerifier, EventEnvelope};

use crate::fold::ProjectionError;
use crate::model::{AgentsModel, TableDump, AGENTS_TABLES};
use crate::rebuild::{diff_dumps, DumpComparison, LenientFold};

use super::ReplayError;

/// Longest line accepted in an event file: an event payload is bounded by the API's 64 KiB body limit, so a
/// longer line is not an event and is refused before it is parsed.
pub const MAX_EVENT_LINE_BYTES: usize = 1024 * 1024;

/// Writes `events` as JSON lines.
///
/// # Errors
/// Writing failed.
pub fn write_events<'a>(
    out: impl Write,
    events: impl IntoIterator<Item = &'a EventEnvelope>,
) -> std::io::Result<u64> {
    let mut out = BufWriter::new(out);
    let mut n = 0;
    for event in events {
        serde_json::to_writer(&mut out, event)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Reads a JSON-lines event file. Blank lines are skipped.
///
/// # Errors
/// The file cannot be read, or a line is not a logged event (the error names the line).
pub fn read_events(path: &Path) -> Result<Vec<EventEnvelope>, ReplayError> {
    let file = std::fs::File::open(path).map_err(ReplayError::file("Failed to open", path))?;
    let mut events = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(ReplayError::file("Failed to read", path))?;
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_EVENT_LINE_BYTES {
            return Err(ReplayError::LineTooLong {
                path: path.to_owned(),
                line: i + 1,
            });
        }
        let event: EventEnvelope =
            serde_json::from_str(&line).map_err(|source| ReplayError::NotAnEvent {
                path: path.to_owned(),
                line: i + 1,
                source,
            })?;
        events.push(event);
    }
    Ok(events)
}

/// What [`check_file`] found.
#[derive(Debug)]
pub struct FileCheck {
    /// Events in the file.
    pub events: usize,
    /// Lines whose position is not after the previous line's (the file is not in log order).
    pub order_problems: Vec<String>,
    /// The hash chains recomputed from the file.
    pub chains: ChainReport,
    /// Events the fold could not read.
    pub fold_errors: Vec<ProjectionError>,
    /// The read models folded from the file.
    pub model: AgentsModel,
}

impl FileCheck {
    /// Every problem, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.order_problems.clone();
        out.extend(super::chain_problem_lines(&self.chains));
        out.extend(self.fold_errors.iter().map(|e| format!("cannot fold: {e}")));
        out
    }
}

/// Verifies `events` (log order, hash chains) and folds them into read models.
pub fn check_events(events: &[EventEnvelope]) -> FileCheck {
    let mut order_problems = Vec::new();
    for (i, pair) in events.windows(2).enumerate() {
        if pair[1].position <= pair[0].position {
            order_problems.push(format!(
                "out of log order: event {} ({}/{} sequence {}) at {:?} is not after {:?}",
                i + 2,
                pair[1].aggregate_type,
                pair[1].aggregate_id,
                pair[1].sequence,
                pair[1].position,
                pair[0].position
            ));
        }
    }
    let mut rows: Vec<ChainRow> = events
        .iter()
        .map(|e| ChainRow {
            aggregate_type: e.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type.clone(),
            event_version: e.event_version.clone(),
            payload_text: jsonb_text(&e.payload),
            hash: e.hash.clone(),
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.aggregate_type, &a.aggregate_id, a.sequence).cmp(&(
            &b.aggregate_type,
            &b.aggregate_id,
            b.sequence,
        ))
    });
    let mut verifier = ChainVerifier::new();
    for row in rows {
        verifier.push(row);
    }
    let mut folder = LenientFold::default();
    for event in events {
        folder.push_envelope(event);
    }
    let (model, fold_errors) = folder.finish();
    FileCheck {
        events: events.len(),
        order_problems,
        chains: verifier.finish(),
        fold_errors,
        model,
    }
}

/// [`read_events`] then [`check_events`].
///
/// # Errors
/// The file cannot be read or parsed.
pub fn check_file(path: &Path) -> Result<FileCheck, ReplayError> {
    Ok(check_events(&read_events(path)?))
}

fn table_file(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("{table}.jsonl"))
}

/// Writes `dump` as golden files in `dir` (created if needed).
///
/// # Errors
/// Writing failed.
pub fn write_expected(dir: &Path, dump: &TableDump) -> Result<(), ReplayError> {
    std::fs::create_dir_all(dir).map_err(ReplayError::file("Failed to create", dir))?;
    for table in AGENTS_TABLES {
        let path = table_file(dir, table);
        let mut text = dump.table(table).join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(ReplayError::file("Failed to write", &path))?;
    }
    Ok(())
}

/// Reads golden files from `dir`.
///
/// # Errors
/// A file is missing or unreadable.
pub fn read_expected(dir: &Path) -> Result<TableDump, ReplayError> {
    let read = |table: &str| -> Result<Vec<String>, ReplayError> {
        let path = table_file(dir, table);
        let text = std::fs::read_to_string(&path).map_err(ReplayError::file(
            "Failed to read expected read model",
            &path,
        ))?;
        Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect())
    };
    let mut dump = TableDump::default();
    for table in AGENTS_TABLES {
        if let Some(lines) = dump.table_mut(table) {
            *lines = read(table)?;
        }
    }
    Ok(dump)
}

/// Compares `model` with the golden files in `dir`, row by row (`live` = expected, `rebuilt` = from the events).
///
/// # Errors
/// The golden files cannot be read.
pub fn compare_expected(dir: &Path, model: &AgentsModel) -> Result<DumpComparison, ReplayError> {
    Ok(diff_dumps(&read_expected(dir)?, &model.dump()))
}
