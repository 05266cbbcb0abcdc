//! The memory read model: projector `agents`' tables as `BTreeMap`s, for embedded mode, backtests and tests.
//! It is a [`ProjectionSink`], a [`RebuildSink`] and an [`AgentQueries`], like the Postgres adapter.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use strom_commands::log::{LogPosition, LoggedEvent};

use crate::fold::AgentFold;
use crate::model::{AgentRow, AgentsModel, RunRow};
use crate::page::{page_size, AgentCursor, Page, QueryError, RunCursor};
use crate::queries::{AgentFilter, AgentQueries};
use crate::sink::{agent_ids, fold_page, ProjectionSink, RebuildSink, SinkError};
use crate::view::{AgentView, RunView};

/// Projector `agents`' read model in memory. Clones share the same tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryReadModel {
    model: Arc<RwLock<AgentsModel>>,
    fold: Arc<AgentFold>,
    /// A rebuild in progress (invisible to readers until `finish`): each agent's runs in arrival order.
    staging: Option<BTreeMap<String, Vec<RunRow>>>,
}

impl MemoryReadModel {
    /// Empty tables, checkpoint at the start of the log.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, AgentsModel> {
        // Writers replace whole rows between checks that cannot panic, so a poisoned lock still holds
        // consistent data.
        self.model
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, AgentsModel> {
        self.model
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the tables and checkpoint.
    pub fn snapshot(&self) -> AgentsModel {
        self.read().clone()
    }
}

#[async_trait]
impl ProjectionSink for MemoryReadModel {
    async fn checkpoint(&self) -> Result<LogPosition, SinkError> {
        Ok(self.read().checkpoint)
    }

    async fn apply_page(&self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, SinkError> {
        let mut model = self.write();
        let checkpoint = model.checkpoint;
        let loaded: BTreeMap<String, AgentRow> = agent_ids(page, checkpoint)
            .into_iter()
            .filter_map(|id| model.agents.get(&id).map(|row| (id, row.clone())))
            .collect();
        let effects = fold_page(&self.fold, loaded, page, checkpoint)?;
        for row in effects.agents.into_values() {
            model.put_agent(row);
        }
        for run in effects.runs {
            model.put_run(run);
        }
        if let Some(last) = effects.last {
            model.checkpoint = last;
        }
        Ok(model.checkpoint)
    }
}

#[async_trait]
impl RebuildSink for MemoryReadModel {
    async fn begin(&mut self) -> Result<(), SinkError> {
        self.staging = Some(BTreeMap::new());
        Ok(())
    }

    /// Appends each run to its agent's list; `finish` builds each agent's map from its list in one pass. Inserting
    /// here instead, into a map per agent, touches a different agent's tree at every run of a page (the log
    /// interleaves agents) and cost twice as much over a million runs.
    async fn write_runs(&mut self, runs: Vec<RunRow>) -> Result<(), SinkError> {
        let staging = self.staging.as_mut().ok_or(SinkError::NotBegun)?;
        for run in runs {
            match staging.get_mut(&run.agent_id) {
                Some(agent_runs) => agent_runs.push(run),
                None => {
                    staging.insert(run.agent_id.clone(), vec![run]);
                }
            }
        }
        Ok(())
    }

    async fn finish(
        &mut self,
        agents: &BTreeMap<String, AgentRow>,
        last: LogPosition,
    ) -> Result<(), SinkError> {
        let staging = self.staging.take().ok_or(SinkError::NotBegun)?;
        let mut model = AgentsModel::new();
        // `collect` sorts each list by key (a check only: the log gives an agent's runs in order) and builds the
        // map bottom-up.
        model.runs = staging
            .into_iter()
            .map(|(agent_id, runs)| (agent_id, runs.into_iter().map(|r| (r.key(), r)).collect()))
            .collect();
        for row in agents.values() {
            model.put_agent(row.clone());
        }
        model.checkpoint = last;
        *self.write() = model;
        Ok(())
    }
}

#[async_trait]
impl AgentQueries for MemoryReadModel {
    async fn get_agent_row(&self, agent_id: &str) -> Result<Option<AgentRow>, QueryError> {
        Ok(self.read().agents.get(agent_id).cloned())
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<AgentView>, QueryError> {
        let limit = page_size(limit)?;
        let upper = match cursor {
            None => Bound::Unbounded,
            Some(c) => {
                let c = AgentCursor::decode(c)?;
                Bound::Excluded((c.created_at, c.agent_id))
            }
        };
        let model = self.read();
        let mut items: Vec<AgentView> = model
            .by_created
            .range((Bound::Unbounded, upper))
            .rev()
            .filter_map(|(_, id)| model.agents.get(id))
            .filter(|row| filter.matches(&row.owner, row.status))
            .take(limit + 1)
            .map(AgentView::from)
            .collect();
        Ok(paged(&mut items, limit, |last| {
            AgentCursor {
                created_at: last.created_at,
                agent_id: last.agent_id.clone(),
            }
            .encode()
        }))
    }

    async fn list_runs(
        &self,
        agent_id: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<RunView>, QueryError> {
        let limit = page_size(limit)?;
        let lower = Bound::Included((0, 0));
        let upper = match cursor {
            None => Bound::Included((u64::MAX, u64::MAX)),
            Some(c) => {
                let c = RunCursor::decode(c)?;
                Bound::Excluded((c.session, c.tick_no))
            }
        };
        let model = self.read();
        let mut items: Vec<RunView> = model
            .runs
            .get(agent_id)
            .into_iter()
            .flat_map(|runs| runs.range((lower, upper)).rev())
            .take(limit + 1)
            .map(|(_, run)| RunView::from(run))
            .collect();
        Ok(paged(&mut items, limit, |last| {
            RunCursor {
                session: last.session,
                tick_no: last.tick_no,
            }
            .encode()
        }))
    }
}

/// Turns `limit + 1` fetched items into a page: the extra item only says there is a next page.
pub(crate) fn paged<T>(
    items: &mut Vec<T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> String,
) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(cursor_of)
    } else {
        None
    };
    Page {
        items: std::mem::take(items),
        next_cursor,
    }
}
