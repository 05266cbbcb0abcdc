//! The backtests read model and artifacts in memory (embedded mode and tests).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;
use strom_commands::log::{LogPosition, LoggedEvent};

use super::{fold_page, BacktestArtifacts, BacktestProgress, BacktestRow, BacktestStore};
use crate::memory::paged;
use crate::page::{page_size, BacktestCursor, Page, QueryError};
use crate::sink::{ProjectionSink, SinkError};

#[derive(Debug, Default)]
struct Tables {
    rows: BTreeMap<String, BacktestRow>,
    checkpoint: LogPosition,
    inputs: BTreeMap<String, Vec<u8>>,
    artifacts: BTreeMap<String, BacktestArtifacts>,
}

/// Table `backtests` (with its checkpoint) and the artifacts, in memory. Clones share the same tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryBacktests {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryBacktests {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Writers replace whole values, so a poisoned lock still holds consistent data.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ProjectionSink for MemoryBacktests {
    async fn checkpoint(&self) -> Result<LogPosition, SinkError> {
        Ok(self.lock().checkpoint)
    }

    async fn apply_page(&self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, SinkError> {
        let mut tables = self.lock();
        let checkpoint = tables.checkpoint;
        // Fold into a copy of the touched rows so a failing event leaves the tables as they were.
        let mut rows: BTreeMap<String, BacktestRow> = super::backtest_ids(page, checkpoint)
            .into_iter()
            .filter_map(|id| tables.rows.get(&id).cloned().map(|row| (id, row)))
            .collect();
        let Some(last) = fold_page(&mut rows, page, checkpoint)? else {
            return Ok(checkpoint);
        };
        tables.rows.extend(rows);
        tables.checkpoint = last;
        Ok(last)
    }
}

#[async_trait]
impl BacktestStore for MemoryBacktests {
    async fn list_backtests(
        &self,
        owner: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<BacktestRow>, QueryError> {
        let limit = page_size(limit)?;
        let after = cursor.map(BacktestCursor::decode).transpose()?;
        let tables = self.lock();
        let mut rows: Vec<BacktestRow> = tables
            .rows
            .values()
            .filter(|r| owner.is_none_or(|o| o == r.owner))
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            (b.requested_at, &b.backtest_id).cmp(&(a.requested_at, &a.backtest_id))
        });
        let mut items: Vec<BacktestRow> = rows
            .into_iter()
            .filter(|r| {
                after.as_ref().is_none_or(|c| {
                    (r.requested_at, r.backtest_id.as_str())
                        < (c.requested_at, c.backtest_id.as_str())
                })
            })
            .take(limit + 1)
            .collect();
        Ok(paged(&mut items, limit, |r| {
            BacktestCursor {
                requested_at: r.requested_at,
                backtest_id: r.backtest_id.clone(),
            }
            .encode()
        }))
    }

    async fn unfinished_backtests(&self, limit: usize) -> Result<Vec<BacktestRow>, QueryError> {
        let tables = self.lock();
        let mut rows: Vec<BacktestRow> = tables
            .rows
            .values()
            .filter(|r| !r.status.is_finished())
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            (a.requested_at, &a.backtest_id).cmp(&(b.requested_at, &b.backtest_id))
        });
        rows.truncate(limit);
        Ok(rows)
    }

    async fn put_input(&self, id: &str, csv: &[u8]) -> Result<(), QueryError> {
        self.lock().inputs.insert(id.to_owned(), csv.to_vec());
        Ok(())
    }

    async fn input(&self, id: &str) -> Result<Option<Vec<u8>>, QueryError> {
        Ok(self.lock().inputs.get(id).cloned())
    }

    async fn begin_attempt(&self, id: &str) -> Result<u32, QueryError> {
        let mut tables = self.lock();
        let artifacts = tables.artifacts.entry(id.to_owned()).or_default();
        artifacts.attempts += 1;
        artifacts.progress = None;
        Ok(artifacts.attempts)
    }

    async fn set_progress(&self, id: &str, progress: BacktestProgress) -> Result<(), QueryError> {
        self.lock()
            .artifacts
            .entry(id.to_owned())
            .or_default()
            .progress = Some(progress);
        Ok(())
    }

    async fn put_result(&self, id: &str, result: &Value) -> Result<(), QueryError> {
        self.lock()
            .artifacts
            .entry(id.to_owned())
            .or_default()
            .result = Some(result.clone());
        Ok(())
    }

    async fn artifacts(&self, id: &str) -> Result<Option<BacktestArtifacts>, QueryError> {
        Ok(self.lock().artifacts.get(id).cloned())
    }
}
