//! The Postgres read model: projector `agents`' rows in tables `agents`, `agent_runs` (migrations 0002, 0003) and
//! `orders`, `trades`, `positions`, `pnl_points` (migration 0005).
//!
//! Every write of the projector (a page, or a whole rebuild) is one transaction that first takes the projector's
//! transaction-scoped advisory lock, then reads its checkpoint, writes rows, and saves the checkpoint: a page
//! applied twice, a crash mid-page or a rebuild racing the live projector cannot leave rows and checkpoint apart.

mod copy;
mod rows;
mod trading_rows;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use strom_commands::log::{LogPosition, LoggedEvent, PgCheckpointStore};
use strom_domain::metrics::{ClosedTrade, EquityPoint};

use crate::fold::{AgentFold, AGENTS_PROJECTOR};
use crate::ledger::{Book, OrderRow, PositionRow};
use crate::memory::paged;
use crate::model::{AgentRow, TableDump};
use crate::page::{
    page_size, AgentCursor, OrderCursor, Page, PnlCursor, QueryError, RunCursor, TradeCursor,
};
use crate::queries::{AgentFilter, AgentQueries, PnlQuery, PnlRead};
use crate::sink::{
    agent_ids, fold_page, AppendedRows, FoldState, ProjectionSink, RebuildSink, SinkError,
};
use crate::trading::view::{OrderView, PnlPointView, TradeView};
use crate::view::{AgentView, RunView};
use strom_domain::order::OrderStatus;

pub use rows::{dump_tables, dump_tables_at_checkpoint};

/// Serializes every writer of one projector's tables (pages, rebuilds) for the length of its transaction. The
/// first key is our own namespace so it cannot meet the role locks (`hashtext('strom')`, specs/01 §2).
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext('strom-projector'), hashtext($1))";

async fn lock_projector(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(LOCK_SQL).bind(name).execute(conn).await?;
    Ok(())
}

/// Projector `agents`' tables in the connection's schema: sink for the live projector and rebuilds, and the
/// query side of the API.
#[derive(Debug, Clone)]
pub struct PgReadModel {
    pool: PgPool,
    fold: Arc<AgentFold>,
}

impl PgReadModel {
    /// The read model in `pool`'s schema (migrated).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            fold: Arc::default(),
        }
    }

    /// The pool it reads and writes through.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A sink that rebuilds these tables from zero in one transaction (see [`PgRebuildSink`]).
    pub fn rebuild_sink(&self) -> PgRebuildSink {
        PgRebuildSink {
            pool: self.pool.clone(),
            tx: None,
        }
    }

    /// The canonical dump of both tables (see [`TableDump`]).
    ///
    /// # Errors
    /// The tables could not be read, or hold a value no fold produces.
    pub async fn dump(&self) -> Result<TableDump, SinkError> {
        let mut conn = self.pool.acquire().await?;
        dump_tables(&mut conn).await
    }
}

#[async_trait]
impl ProjectionSink for PgReadModel {
    async fn checkpoint(&self) -> Result<LogPosition, SinkError> {
        Ok(PgCheckpointStore::load_in(&self.pool, AGENTS_PROJECTOR)
            .await?
            .unwrap_or(LogPosition::START))
    }

    async fn apply_page(&self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, SinkError> {
        let mut tx = self.pool.begin().await?;
        lock_projector(&mut tx, AGENTS_PROJECTOR).await?;
        let checkpoint = PgCheckpointStore::load_in(&mut *tx, AGENTS_PROJECTOR)
            .await?
            .unwrap_or(LogPosition::START);
        let ids: Vec<String> = agent_ids(page, checkpoint).into_iter().collect();
        let loaded = FoldState {
            agents: rows::load_agents(&mut tx, &ids).await?,
            books: trading_rows::load_books(&mut tx, &ids).await?,
            orders: BTreeMap::new(),
        };
        let effects = fold_page(&self.fold, loaded, page, checkpoint)?;
        let Some(last) = effects.last else {
            return Ok(checkpoint);
        };
        rows::upsert_agents(&mut tx, effects.state.agents.values()).await?;
        rows::insert_runs(&mut tx, &effects.rows.runs).await?;
        let orders: Vec<_> = effects.state.orders.values().collect();
        trading_rows::upsert_orders(&mut tx, &orders).await?;
        trading_rows::insert_trades(&mut tx, &effects.rows.trades).await?;
        trading_rows::insert_pnl(&mut tx, &effects.rows.pnl_points).await?;
        let positions: Vec<_> = effects.state.books.values().map(|b| &b.position).collect();
        trading_rows::upsert_positions(&mut tx, &positions).await?;
        PgCheckpointStore::save_in(&mut *tx, AGENTS_PROJECTOR, last).await?;
        tx.commit().await?;
        Ok(last)
    }
}

/// Rebuilds `agents` and `agent_runs` from zero in ONE transaction: lock, `TRUNCATE`, `COPY` the runs as the fold
/// produces them, `COPY` the agents, save the checkpoint, commit. Until the commit every reader sees the old rows
/// (readers of these tables wait on the truncate's lock while the rebuild runs); an error, Ctrl-C or a dropped
/// sink rolls everything back.
pub struct PgRebuildSink {
    pool: PgPool,
    tx: Option<Transaction<'static, Postgres>>,
}

impl std::fmt::Debug for PgRebuildSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRebuildSink")
            .field("begun", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

impl PgRebuildSink {
    /// A rebuild of the tables in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, tx: None }
    }
}

#[async_trait]
impl RebuildSink for PgRebuildSink {
    async fn begin(&mut self) -> Result<(), SinkError> {
        let mut tx = self.pool.begin().await?;
        lock_projector(&mut tx, AGENTS_PROJECTOR).await?;
        sqlx::query("TRUNCATE agents, agent_runs, orders, trades, positions, pnl_points")
            .execute(&mut *tx)
            .await?;
        self.tx = Some(tx);
        Ok(())
    }

    async fn write_rows(&mut self, rows: AppendedRows) -> Result<(), SinkError> {
        let tx = self.tx.as_mut().ok_or(SinkError::NotBegun)?;
        copy::copy_runs(tx, &rows.runs).await?;
        trading_rows::insert_trades(tx, &rows.trades).await?;
        copy::copy_pnl(tx, &rows.pnl_points).await
    }

    async fn finish(&mut self, state: &FoldState, last: LogPosition) -> Result<(), SinkError> {
        let mut tx = self.tx.take().ok_or(SinkError::NotBegun)?;
        copy::copy_agents(&mut tx, state.agents.values()).await?;
        let positions: Vec<_> = state.books.values().map(|b| &b.position).collect();
        trading_rows::upsert_positions(&mut tx, &positions).await?;
        let orders: Vec<_> = state.orders.values().collect();
        trading_rows::upsert_orders(&mut tx, &orders).await?;
        PgCheckpointStore::save_in(&mut *tx, AGENTS_PROJECTOR, last).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl AgentQueries for PgReadModel {
    async fn get_agent_row(&self, agent_id: &str) -> Result<Option<AgentRow>, QueryError> {
        let mut conn = self.pool.acquire().await?;
        let mut rows = rows::load_agents(&mut conn, &[agent_id.to_owned()])
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
        Ok(rows.remove(agent_id))
    }

    async fn list_agents(
        &self,
        filter: &AgentFilter,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<AgentView>, QueryError> {
        let limit = page_size(limit)?;
        let cursor = cursor.map(AgentCursor::decode).transpose()?;
        let mut items: Vec<AgentView> = rows::list_agents(&self.pool, filter, cursor, limit + 1)
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?
            .iter()
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
        let cursor = cursor.map(RunCursor::decode).transpose()?;
        let mut items: Vec<RunView> = rows::list_runs(&self.pool, agent_id, cursor, limit + 1)
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?
            .iter()
            .map(RunView::from)
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
        Ok(trading_rows::get_order(&self.pool, order_id).await?)
    }

    async fn list_orders(
        &self,
        agent_id: &str,
        status: Option<OrderStatus>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<OrderView>, QueryError> {
        let limit = page_size(limit)?;
        let cursor = cursor.map(OrderCursor::decode).transpose()?;
        let status = status.map(OrderStatus::as_str);
        let mut items: Vec<OrderView> =
            trading_rows::list_orders(&self.pool, agent_id, status, cursor, limit + 1)
                .await?
                .iter()
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
        let cursor = cursor.map(TradeCursor::decode).transpose()?;
        let mut items: Vec<TradeView> =
            trading_rows::list_trades(&self.pool, agent_id, cursor, limit + 1)
                .await?
                .iter()
                .map(TradeView::from)
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
        Ok(trading_rows::get_position(&self.pool, agent_id).await?)
    }

    async fn get_book(&self, agent_id: &str) -> Result<Option<Book>, QueryError> {
        let mut conn = self.pool.acquire().await?;
        let mut books = trading_rows::load_books(&mut conn, &[agent_id.to_owned()])
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
        Ok(books.remove(agent_id))
    }

    async fn metrics_series(
        &self,
        agent_id: &str,
    ) -> Result<(Vec<EquityPoint>, Vec<ClosedTrade>), QueryError> {
        Ok(trading_rows::metrics_series(&self.pool, agent_id).await?)
    }

    async fn list_pnl(
        &self,
        agent_id: &str,
        query: &PnlQuery,
    ) -> Result<Page<PnlPointView>, QueryError> {
        match query.read()? {
            PnlRead::Page(limit) => {
                let cursor = query.cursor.as_deref().map(PnlCursor::decode).transpose()?;
                let mut items: Vec<PnlPointView> = trading_rows::list_pnl(
                    &self.pool,
                    agent_id,
                    query.from,
                    query.to,
                    cursor,
                    limit + 1,
                )
                .await?
                .iter()
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
            PnlRead::Thinned(max) => Ok(Page {
                items: trading_rows::thin_pnl(&self.pool, agent_id, query.from, query.to, max)
                    .await?
                    .iter()
                    .map(PnlPointView::from)
                    .collect(),
                next_cursor: None,
            }),
        }
    }
}
