//! The memory read model: projector `agents`' tables as `BTreeMap`s, for embedded mode, backtests and tests.
//! It is a [`ProjectionSink`], a [`RebuildSink`] and an [`AgentQueries`], like the Postgres adapter.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use strom_commands::log::{LogPosition, LoggedEvent};
use strom_domain::metrics::{ClosedTrade, EquityPoint};

use crate::fold::AgentFold;
use crate::ledger::{Book, OrderRow, PositionRow};
use crate::ledger::{PnlRow, TradeRow};
use crate::model::{AgentRow, AgentsModel, RunRow};
use crate::page::{
    page_size, AgentCursor, OrderCursor, Page, PnlCursor, QueryError, RunCursor, TradeCursor,
};
use crate::queries::{thinned, AgentFilter, AgentQueries, PnlQuery, PnlRead};
use crate::sink::{
    agent_ids, fold_page, AppendedRows, FoldState, ProjectionSink, RebuildSink, SinkError,
};
use crate::trading::view::{OrderView, PnlPointView, TradeView};
use crate::view::{AgentView, RunView};
use strom_domain::order::OrderStatus;

/// Projector `agents`' read model in memory. Clones share the same tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryReadModel {
    model: Arc<RwLock<AgentsModel>>,
    fold: Arc<AgentFold>,
    /// A rebuild in progress (invisible to readers until `finish`): each agent's runs in arrival order, and the
    /// trades and PnL points.
    staging: Option<Staging>,
}

#[derive(Debug, Default, Clone)]
struct Staging {
    runs: BTreeMap<String, Vec<RunRow>>,
    trades: Vec<TradeRow>,
    pnl_points: BTreeMap<String, Vec<PnlRow>>,
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
        let mut loaded = FoldState::default();
        for id in agent_ids(page, checkpoint) {
            if let Some(row) = model.agents.get(&id) {
                loaded.agents.insert(id.clone(), row.clone());
            }
            if let Some(book) = model.book(&id) {
                loaded.books.insert(id, book);
            }
        }
        let effects = fold_page(&self.fold, loaded, page, checkpoint)?;
        let FoldState {
            agents,
            books,
            orders,
        } = effects.state;
        for row in agents.into_values() {
            model.put_agent(row);
        }
        for (id, book) in books {
            model.positions.insert(id, book.position);
        }
        for order in orders.into_values() {
            model.put_order(order);
        }
        let AppendedRows {
            runs,
            trades,
            pnl_points,
        } = effects.rows;
        for run in runs {
            model.put_run(run);
        }
        for trade in trades {
            model.put_trade(trade);
        }
        for point in pnl_points {
            model.put_pnl(point);
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
        self.staging = Some(Staging::default());
        Ok(())
    }

    /// Appends each run (and PnL point) to its agent's list; `finish` builds each agent's map from its list in one
    /// pass. Inserting here instead, into a map per agent, touches a different agent's tree at every run of a page
    /// (the log interleaves agents) and cost twice as much over a million runs.
    async fn write_rows(&mut self, rows: AppendedRows) -> Result<(), SinkError> {
        let staging = self.staging.as_mut().ok_or(SinkError::NotBegun)?;
        staging.trades.extend(rows.trades);
        for run in rows.runs {
            push_to(&mut staging.runs, run, |r| &r.agent_id);
        }
        for point in rows.pnl_points {
            push_to(&mut staging.pnl_points, point, |p| &p.agent_id);
        }
        Ok(())
    }

    async fn finish(&mut self, state: &FoldState, last: LogPosition) -> Result<(), SinkError> {
        let staging = self.staging.take().ok_or(SinkError::NotBegun)?;
        let mut model = AgentsModel::new();
        // `collect` sorts each list by key (a check only: the log gives an agent's runs in order) and builds the
        // map bottom-up.
        model.runs = staging
            .runs
            .into_iter()
            .map(|(agent_id, runs)| (agent_id, runs.into_iter().map(|r| (r.key(), r)).collect()))
            .collect();
        for trade in staging.trades {
            model.put_trade(trade);
        }
        model.pnl_points = staging
            .pnl_points
            .into_iter()
            .map(|(agent_id, points)| {
                let points = points
                    .into_iter()
                    .map(|p| ((p.session.unsigned_abs(), p.tick_no.unsigned_abs()), p))
                    .collect();
                (agent_id, points)
            })
            .collect();
        for row in state.agents.values() {
            model.put_agent(row.clone());
        }
        for (id, book) in &state.books {
            model.positions.insert(id.clone(), book.position.clone());
        }
        for order in state.orders.values() {
            model.put_order(order.clone());
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
    async fn get_order(&self, order_id: &str) -> Result<Option<OrderRow>, QueryError> {
        Ok(self.read().order(order_id).cloned())
    }

    async fn list_orders(
        &self,
        agent_id: &str,
        status: Option<OrderStatus>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<OrderView>, QueryError> {
        let limit = page_size(limit)?;
        let upper = match cursor {
            None => Bound::Unbounded,
            Some(c) => {
                let c = OrderCursor::decode(c)?;
                Bound::Excluded((c.created_at, c.order_id))
            }
        };
        let model = self.read();
        let mut items: Vec<OrderView> = model
            .orders
            .get(agent_id)
            .into_iter()
            .flat_map(|orders| orders.range((Bound::Unbounded, upper.clone())).rev())
            .map(|(_, o)| o)
            .filter(|o| status.is_none_or(|s| o.status == s.as_str()))
            .take(limit + 1)
            .map(OrderView::from)
            .collect();
        Ok(paged(&mut items, limit, |last| {
            OrderCursor {
                created_at: last.created_at,
                order_id: last.order_id.clone(),
            }
            .encode()
        }))
    }

    async fn list_trades(
        &self,
        agent_id: &str,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<TradeView>, QueryError> {
        let limit = page_size(limit)?;
        let upper = match cursor {
            None => Bound::Unbounded,
            Some(c) => {
                let c = TradeCursor::decode(c)?;
                Bound::Excluded((c.filled_at, c.trade_id))
            }
        };
        let model = self.read();
        let mut items: Vec<TradeView> = model
            .trades
            .get(agent_id)
            .into_iter()
            .flat_map(|trades| trades.range((Bound::Unbounded, upper.clone())).rev())
            .take(limit + 1)
            .map(|(_, t)| TradeView::from(t))
            .collect();
        Ok(paged(&mut items, limit, |last| {
            TradeCursor {
                filled_at: last.filled_at,
                trade_id: last.trade_id.clone(),
            }
            .encode()
        }))
    }

    async fn get_position(&self, agent_id: &str) -> Result<Option<PositionRow>, QueryError> {
        Ok(self.read().positions.get(agent_id).cloned())
    }

    async fn get_book(&self, agent_id: &str) -> Result<Option<Book>, QueryError> {
        Ok(self.read().book(agent_id))
    }

    async fn metrics_series(
        &self,
        agent_id: &str,
    ) -> Result<(Vec<EquityPoint>, Vec<ClosedTrade>), QueryError> {
        let model = self.read();
        let points = model
            .pnl_points
            .get(agent_id)
            .into_iter()
            .flat_map(BTreeMap::values)
            .map(|p| EquityPoint {
                at: p.at,
                equity: p.equity,
                position_qty: p.position_qty,
                mark_price: p.mark_price,
            })
            .collect();
        let mut sells: Vec<&TradeRow> = model
            .trades
            .get(agent_id)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|t| t.side == "sell")
            .collect();
        sells.sort_by_key(|t| t.global_position);
        let trades = sells
            .into_iter()
            .map(|t| ClosedTrade {
                at: t.filled_at,
                pnl: t.realized_pnl - t.fee,
            })
            .collect();
        Ok((points, trades))
    }

    async fn list_pnl(
        &self,
        agent_id: &str,
        query: &PnlQuery,
    ) -> Result<Page<PnlPointView>, QueryError> {
        let read = query.read()?;
        let after = query.cursor.as_deref().map(PnlCursor::decode).transpose()?;
        let model = self.read();
        let in_range = model
            .pnl_points
            .get(agent_id)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|p| query.from.is_none_or(|from| p.at >= from))
            .filter(|p| query.to.is_none_or(|to| p.at <= to));
        match read {
            PnlRead::Page(limit) => {
                let mut items: Vec<PnlPointView> = in_range
                    .filter(|p| {
                        after.is_none_or(|c| (p.session, p.tick_no) > (c.session, c.tick_no))
                    })
                    .take(limit + 1)
                    .map(PnlPointView::from)
                    .collect();
                Ok(paged(&mut items, limit, |last| {
                    PnlCursor {
                        session: last.session,
                        tick_no: last.tick_no,
                    }
                    .encode()
                }))
            }
            PnlRead::Thinned(max) => {
                let points: Vec<_> = in_range.collect();
                let items = thinned(points.len(), max)
                    .map(|i| PnlPointView::from(points[i]))
                    .collect();
                Ok(Page {
                    items,
                    next_cursor: None,
                })
            }
        }
    }
}

/// Appends `row` to its agent's list in `lists` (allocating the key only for an agent's first row).
fn push_to<T>(lists: &mut BTreeMap<String, Vec<T>>, row: T, agent_id: impl Fn(&T) -> &String) {
    match lists.get_mut(agent_id(&row)) {
        Some(list) => list.push(row),
        None => {
            lists.insert(agent_id(&row).clone(), vec![row]);
        }
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
