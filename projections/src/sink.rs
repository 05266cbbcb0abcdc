//! The ports a projector writes through: [`ProjectionSink`] (incremental, one atomic page at a time) and
//! [`RebuildSink`] (from zero: clear, stream runs, finish with agents and the checkpoint, all or nothing).
//! Postgres and memory implement both; the fold they call is the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use strom_commands::log::{LogPosition, LoggedEvent, StoreError};

use crate::fold::{AgentFold, Folded, ProjectionError};
use crate::model::{AgentRow, RunRow};

/// What went wrong writing or reading a read model.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// An event could not be folded; nothing of its page was written.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The log or checkpoint store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Postgres refused or failed a read-model query.
    #[error("read-model query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// A read-model row held a value no fold produces (e.g. an unknown status).
    #[error("read-model row is malformed: {table}.{column} = {value}")]
    MalformedRow {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    /// A rebuild sink was used out of order (`write_runs`/`finish` before `begin`).
    #[error("rebuild sink used before begin()")]
    NotBegun,
}

/// An incremental read-model store with its checkpoint.
#[async_trait]
pub trait ProjectionSink: Send + Sync {
    /// The last log position whose effects are stored ([`LogPosition::START`] if none).
    ///
    /// # Errors
    /// The store could not be read.
    async fn checkpoint(&self) -> Result<LogPosition, SinkError>;

    /// Folds the events of `page` that are after the stored checkpoint and stores the resulting rows together with
    /// the new checkpoint, atomically: all of it or (on error) none of it. Events at or before the checkpoint are
    /// skipped, so applying a page twice changes nothing. Returns the checkpoint after the call.
    ///
    /// # Errors
    /// An event could not be folded, or the store failed; nothing was written.
    async fn apply_page(&self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, SinkError>;
}

/// A read-model store being rebuilt from zero. `begin`, any number of `write_runs`, then `finish`; dropping the
/// sink (or an error) before `finish` leaves the previous read model as it was.
#[async_trait]
pub trait RebuildSink: Send {
    /// Starts from empty tables.
    ///
    /// # Errors
    /// The store failed.
    async fn begin(&mut self) -> Result<(), SinkError>;

    /// Adds run rows (each key once; the fold guarantees it). Owned, so a memory sink keeps them without copying.
    ///
    /// # Errors
    /// The store failed, or `begin` was not called.
    async fn write_runs(&mut self, runs: Vec<RunRow>) -> Result<(), SinkError>;

    /// Writes the agent rows and the checkpoint `last`, and makes the new read model visible.
    ///
    /// # Errors
    /// The store failed, or `begin` was not called; the previous read model stays.
    async fn finish(
        &mut self,
        agents: &BTreeMap<String, AgentRow>,
        last: LogPosition,
    ) -> Result<(), SinkError>;
}

/// The effect of one page: the touched agent rows after the page, and the new runs.
#[derive(Debug, Default)]
pub(crate) struct PageEffects {
    /// Rows of the agents that changed (only those).
    pub agents: BTreeMap<String, AgentRow>,
    pub runs: Vec<RunRow>,
    /// Position of the last event folded (None when every event was at or before the checkpoint).
    pub last: Option<LogPosition>,
}

/// The agent ids of `page`'s Agent events after `checkpoint`: the rows a sink must load before folding it.
pub(crate) fn agent_ids(page: &[Arc<LoggedEvent>], checkpoint: LogPosition) -> BTreeSet<String> {
    page.iter()
        .filter(|e| e.position > checkpoint && e.event.as_agent().is_some())
        .map(|e| e.aggregate_id.clone())
        .collect()
}

/// Folds `page` (events after `checkpoint`) over `loaded` (the current rows of [`agent_ids`]).
pub(crate) fn fold_page(
    fold: &AgentFold,
    mut loaded: BTreeMap<String, AgentRow>,
    page: &[Arc<LoggedEvent>],
    checkpoint: LogPosition,
) -> Result<PageEffects, ProjectionError> {
    let mut effects = PageEffects::default();
    let mut changed = BTreeSet::new();
    for event in page.iter().filter(|e| e.position > checkpoint) {
        effects.last = Some(event.position);
        match fold.apply(&mut loaded, event)? {
            Folded::Nothing => {}
            Folded::Agent => {
                changed.insert(event.aggregate_id.clone());
            }
            Folded::Run(run) => {
                changed.insert(event.aggregate_id.clone());
                effects.runs.push(*run);
            }
        }
    }
    loaded.retain(|id, _| changed.contains(id));
    effects.agents = loaded;
    Ok(effects)
}
