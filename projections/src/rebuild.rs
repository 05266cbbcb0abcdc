//! Rebuilding read models from zero and checking them: [`rebuild_from`] folds the entire log into a
//! [`RebuildSink`] (the agents in memory, runs streamed in bulk while the next page is read), [`fold_events`] folds
//! a log in memory (files, golden tests, `--verify`), and [`diff_dumps`] names every row where two read models
//! differ.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use strom_commands::log::{
    EventEnvelope, EventLog, LogPosition, LoggedEvent, StoreError, MAX_LOG_PAGE,
};

use crate::fold::{AgentFold, ProjectionError};
use crate::model::{AgentsModel, TableDump, AGENTS_TABLES};
use crate::sink::{AppendedRows, FoldState, RebuildSink, SinkError};

/// Events read per page during a rebuild: the log's own cap. A rebuild wants the biggest pages (fewest round
/// trips); one page of a few megabytes is in memory at a time plus the one being read ahead.
pub const REBUILD_PAGE: usize = MAX_LOG_PAGE;

/// Most row differences one comparison lists; past this it says the list is truncated (a wholesale difference,
/// e.g. comparing with an empty table, would otherwise print every row).
pub const MAX_REPORTED_DIFFERENCES: usize = 10_000;

/// How far a rebuild or fold has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RebuildProgress {
    /// Events read from the log.
    pub events: u64,
    /// Agent rows so far.
    pub agents: u64,
    /// Run rows so far.
    pub runs: u64,
    /// Position of the last event read.
    pub position: LogPosition,
}

/// Rebuilds the read model in `sink` from the whole of `log`: `begin`, fold every page (runs go to the sink page
/// by page while the next page is being read), `finish` with the agents and the last position as checkpoint.
/// `progress` is called after each page. Dropping the future before it returns leaves the sink's previous read
/// model untouched (a Postgres sink rolls back).
///
/// # Errors
/// The log or the sink failed, or an event could not be folded; nothing is made visible then.
pub async fn rebuild_from(
    log: &dyn EventLog,
    sink: &mut dyn RebuildSink,
    mut progress: impl FnMut(&RebuildProgress) + Send,
) -> Result<RebuildProgress, SinkError> {
    let fold = AgentFold::new();
    let mut state = FoldState::default();
    let mut done = RebuildProgress::default();
    sink.begin().await?;
    let mut page = log.read_after(LogPosition::START, REBUILD_PAGE).await?;
    while let Some(last) = page.last() {
        let position = last.position;
        // Most events of a long log are runs: size for all of them rather than regrow a multi-megabyte vector.
        let mut rows = AppendedRows::with_capacity(page.len());
        for event in &page {
            state.apply(&fold, event, &mut rows)?;
        }
        done.events += page.len() as u64;
        done.runs += rows.runs.len() as u64;
        done.agents = state.agents.len() as u64;
        done.position = position;
        // Read the next page while the sink writes this one's rows.
        let (next, written) = futures::join!(
            log.read_after(position, REBUILD_PAGE),
            sink.write_rows(rows)
        );
        written?;
        page = next?;
        progress(&done);
    }
    sink.finish(&state, done.position).await?;
    Ok(done)
}

/// Folds `events` (in log order) in memory, from empty tables. Events that cannot be folded are skipped and
/// returned with the model, so a check can report them all; the model's checkpoint is the last event's position.
pub fn fold_events<'a>(
    events: impl IntoIterator<Item = &'a Arc<LoggedEvent>>,
) -> (AgentsModel, Vec<ProjectionError>) {
    let mut folder = LenientFold::default();
    for event in events {
        folder.push(event);
    }
    folder.finish()
}

/// [`fold_events`] incrementally, for logs read page by page.
#[derive(Debug, Default)]
pub struct LenientFold {
    fold: AgentFold,
    state: FoldState,
    model: AgentsModel,
    errors: Vec<ProjectionError>,
}

impl LenientFold {
    /// Folds one event (recording, not returning, an error).
    pub fn push(&mut self, event: &LoggedEvent) {
        self.model.checkpoint = event.position;
        let mut rows = AppendedRows::default();
        if let Err(e) = self.state.apply(&self.fold, event, &mut rows) {
            self.errors.push(e);
        }
        for run in rows.runs {
            self.model.put_run(run);
        }
        for trade in rows.trades {
            self.model.put_trade(trade);
        }
        for point in rows.pnl_points {
            self.model.put_pnl(point);
        }
    }

    /// Decodes and folds one stored event; one that does not decode is recorded like one that does not fold.
    pub fn push_envelope(&mut self, envelope: &EventEnvelope) {
        match envelope.decode() {
            Ok(event) => self.push(&event),
            Err(e) => {
                self.model.checkpoint = envelope.position;
                self.errors.extend(ProjectionError::undecodable(&e));
            }
        }
    }

    /// The model and the events that could not be folded.
    pub fn finish(mut self) -> (AgentsModel, Vec<ProjectionError>) {
        let FoldState {
            agents,
            books,
            orders,
        } = std::mem::take(&mut self.state);
        for row in agents.into_values() {
            self.model.put_agent(row);
        }
        for (id, book) in books {
            self.model.positions.insert(id, book.position);
        }
        for order in orders.into_values() {
            self.model.put_order(order);
        }
        (self.model, self.errors)
    }
}

/// Folds `log` up to and including `until` (everything when `None`) in memory, calling `progress` per page. Reads the
/// stored form and decodes event by event, so an audit lists every event that does not decode instead of stopping.
///
/// # Errors
/// The log could not be read. Events that cannot be decoded or folded are returned, not errors.
pub async fn fold_log(
    log: &dyn EventLog,
    until: Option<LogPosition>,
    mut progress: impl FnMut(&RebuildProgress) + Send,
) -> Result<(AgentsModel, Vec<ProjectionError>), StoreError> {
    let mut folder = LenientFold::default();
    let mut done = RebuildProgress::default();
    let mut position = LogPosition::START;
    'pages: loop {
        let page = log.read_envelopes_after(position, REBUILD_PAGE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        for event in &page {
            if until.is_some_and(|u| event.position > u) {
                break 'pages;
            }
            folder.push_envelope(event);
            done.events += 1;
            done.position = event.position;
        }
        done.agents = folder.state.agents.len() as u64;
        done.runs = folder.model.run_count() as u64;
        progress(&done);
    }
    progress(&done);
    Ok(folder.finish())
}

/// One row where two read models differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowDifference {
    /// `agents` or `agent_runs`.
    pub table: &'static str,
    /// The primary key, e.g. `agent_id=…` or `agent_id=…, session=1, tick_no=3`.
    pub key: String,
    /// The row on the "live" side (`None`: absent there).
    pub live: Option<String>,
    /// The row on the "rebuilt" side (`None`: absent there).
    pub rebuilt: Option<String>,
}

impl std::fmt::Display for RowDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.live, &self.rebuilt) {
            (Some(live), Some(rebuilt)) => write!(
                f,
                "{} row {} differs:\n    live:    {live}\n    rebuilt: {rebuilt}",
                self.table, self.key
            ),
            (Some(live), None) => write!(
                f,
                "{} row {} is not produced by the log:\n    live:    {live}",
                self.table, self.key
            ),
            (None, Some(rebuilt)) => write!(
                f,
                "{} row {} is missing:\n    rebuilt: {rebuilt}",
                self.table, self.key
            ),
            (None, None) => write!(f, "{} row {}", self.table, self.key),
        }
    }
}

/// The result of comparing two dumps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DumpComparison {
    /// The differing rows, per table in key order (at most [`MAX_REPORTED_DIFFERENCES`]).
    pub differences: Vec<RowDifference>,
    /// More rows differ than are listed.
    pub truncated: bool,
}

impl DumpComparison {
    /// Byte-equal.
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty() && !self.truncated
    }
}

/// Sort key of a dump line of `table`: (agent_id, session, tick_no) for runs and PnL points, the id for the rest.
fn line_key(table: &str, line: &str) -> (String, u64, u64) {
    let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    let id = match table {
        "orders" => "order_id",
        "trades" => "trade_id",
        _ => "agent_id",
    };
    (
        value[id].as_str().unwrap_or_default().to_owned(),
        value["session"].as_u64().unwrap_or(0),
        value["tick_no"].as_u64().unwrap_or(0),
    )
}

fn key_text(table: &str, key: &(String, u64, u64)) -> String {
    match table {
        "agent_runs" | "pnl_points" => {
            format!("agent_id={}, session={}, tick_no={}", key.0, key.1, key.2)
        }
        "orders" => format!("order_id={}", key.0),
        "trades" => format!("trade_id={}", key.0),
        _ => format!("agent_id={}", key.0),
    }
}

/// Compares two dumps row by row (both in primary-key order, as dumps are).
pub fn diff_dumps(live: &TableDump, rebuilt: &TableDump) -> DumpComparison {
    let mut out = DumpComparison::default();
    for table in AGENTS_TABLES {
        let (mut a, mut b) = (
            live.table(table).iter().peekable(),
            rebuilt.table(table).iter().peekable(),
        );
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => line_key(table, x).cmp(&line_key(table, y)),
            };
            let (l, r) = match order {
                Ordering::Less => (a.next(), None),
                Ordering::Greater => (None, b.next()),
                Ordering::Equal => (a.next(), b.next()),
            };
            if l == r {
                continue;
            }
            if out.differences.len() >= MAX_REPORTED_DIFFERENCES {
                out.truncated = true;
                break;
            }
            let key = line_key(table, l.or(r).map_or("", String::as_str));
            out.differences.push(RowDifference {
                table,
                key: key_text(table, &key),
                live: l.cloned(),
                rebuilt: r.cloned(),
            });
        }
    }
    out
}
