//! SQL for the trading tables (`orders`, `trades`, `positions`, `pnl_points`). Rows go in as one JSON array per
//! statement through `jsonb_populate_recordset` (the row structs' fields are the columns; decimals travel as strings,
//! so numerics keep their scale) and come out through `sqlx::FromRow`. Text keys sort with `COLLATE "C"`, as the
//! memory model's `BTreeMap`s do.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use strom_domain::metrics::{ClosedTrade, EquityPoint};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

use crate::ledger::{Book, OrderRow, PnlRow, PositionRow, TradeRow};
use crate::page::{OrderCursor, PnlCursor, TradeCursor};
use crate::sink::SinkError;

/// Rows per statement when many are written (a rebuild): keeps each JSON parameter a few megabytes.
const CHUNK: usize = 5_000;

fn json<T: Serialize>(rows: &[T]) -> Result<serde_json::Value, SinkError> {
    serde_json::to_value(rows).map_err(|e| SinkError::MalformedRow {
        table: "trading",
        column: "json",
        value: e.to_string(),
    })
}

async fn write<T: Serialize>(
    conn: &mut PgConnection,
    sql: &str,
    rows: &[T],
) -> Result<(), SinkError> {
    for chunk in rows.chunks(CHUNK) {
        sqlx::query(sql)
            .bind(json(chunk)?)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

const UPSERT_ORDERS_SQL: &str = "
INSERT INTO orders SELECT * FROM jsonb_populate_recordset(NULL::orders, $1)
    ON CONFLICT (order_id) DO UPDATE
   SET status = EXCLUDED.status, fill_price = EXCLUDED.fill_price, fill_qty = EXCLUDED.fill_qty,
       fee = EXCLUDED.fee, filled_at = EXCLUDED.filled_at, updated_at = EXCLUDED.updated_at,
       version = EXCLUDED.version";

/// Inserts or updates (an order's fill) `orders`.
pub(super) async fn upsert_orders(
    conn: &mut PgConnection,
    orders: &[&OrderRow],
) -> Result<(), SinkError> {
    write(conn, UPSERT_ORDERS_SQL, orders).await
}

/// Inserts `trades` (one already present is left: trades never change).
pub(super) async fn insert_trades(
    conn: &mut PgConnection,
    trades: &[TradeRow],
) -> Result<(), SinkError> {
    write(
        conn,
        "INSERT INTO trades SELECT * FROM jsonb_populate_recordset(NULL::trades, $1) ON CONFLICT DO NOTHING",
        trades,
    )
    .await
}

/// Inserts PnL points (one already present is left: points never change).
pub(super) async fn insert_pnl(
    conn: &mut PgConnection,
    points: &[PnlRow],
) -> Result<(), SinkError> {
    write(
        conn,
        "INSERT INTO pnl_points SELECT * FROM jsonb_populate_recordset(NULL::pnl_points, $1) ON CONFLICT DO NOTHING",
        points,
    )
    .await
}

/// Inserts or replaces `positions` rows.
pub(super) async fn upsert_positions(
    conn: &mut PgConnection,
    positions: &[&PositionRow],
) -> Result<(), SinkError> {
    for chunk in positions.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|p| p.agent_id.as_str()).collect();
        sqlx::query("DELETE FROM positions WHERE agent_id = ANY($1)")
            .bind(ids)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO positions SELECT * FROM jsonb_populate_recordset(NULL::positions, $1)",
        )
        .bind(json(chunk)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The books (position and open order) of `ids` that exist, by agent_id.
pub(super) async fn load_books(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<BTreeMap<String, Book>, SinkError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let positions: Vec<PositionRow> =
        sqlx::query_as("SELECT * FROM positions WHERE agent_id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut open: BTreeMap<String, OrderRow> = sqlx::query_as::<_, OrderRow>(
        "SELECT * FROM orders WHERE agent_id = ANY($1) AND status = 'accepted'",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|o| (o.agent_id.clone(), o))
    .collect();
    Ok(positions
        .into_iter()
        .map(|position| {
            let open_order = open.remove(&position.agent_id);
            (position.agent_id.clone(), Book::new(position, open_order))
        })
        .collect())
}

/// One order.
pub(super) async fn get_order<'e>(
    executor: impl PgExecutor<'e>,
    order_id: &str,
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(executor)
        .await
}

/// The agent's position row.
pub(super) async fn get_position<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: &str,
) -> Result<Option<PositionRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM positions WHERE agent_id = $1")
        .bind(agent_id)
        .fetch_optional(executor)
        .await
}

/// Up to `limit` orders of `agent_id` (with `status`, if given) after `cursor`, newest first.
pub(super) async fn list_orders<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: &str,
    status: Option<&str>,
    cursor: Option<OrderCursor>,
    limit: usize,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    let (after_at, after_id): (Option<DateTime<Utc>>, Option<String>) = match cursor {
        Some(c) => (Some(c.created_at), Some(c.order_id)),
        None => (None, None),
    };
    sqlx::query_as(
        "SELECT * FROM orders
          WHERE agent_id = $1 AND ($2::text IS NULL OR status = $2)
            AND ($3::timestamptz IS NULL OR created_at < $3
                 OR (created_at = $3 AND order_id COLLATE \"C\" < $4::text COLLATE \"C\"))
          ORDER BY created_at DESC, order_id COLLATE \"C\" DESC
          LIMIT $5",
    )
    .bind(agent_id)
    .bind(status)
    .bind(after_at)
    .bind(after_id)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(executor)
    .await
}

/// Up to `limit` trades of `agent_id` after `cursor`, newest first.
pub(super) async fn list_trades<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: &str,
    cursor: Option<TradeCursor>,
    limit: usize,
) -> Result<Vec<TradeRow>, sqlx::Error> {
    let (after_at, after_id): (Option<DateTime<Utc>>, Option<String>) = match cursor {
        Some(c) => (Some(c.filled_at), Some(c.trade_id)),
        None => (None, None),
    };
    sqlx::query_as(
        "SELECT * FROM trades
          WHERE agent_id = $1
            AND ($2::timestamptz IS NULL OR filled_at < $2
                 OR (filled_at = $2 AND trade_id COLLATE \"C\" < $3::text COLLATE \"C\"))
          ORDER BY filled_at DESC, trade_id COLLATE \"C\" DESC
          LIMIT $4",
    )
    .bind(agent_id)
    .bind(after_at)
    .bind(after_id)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(executor)
    .await
}

/// Up to `limit` PnL points of `agent_id` at `from..=to` after `cursor`, oldest first.
pub(super) async fn list_pnl<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cursor: Option<PnlCursor>,
    limit: usize,
) -> Result<Vec<PnlRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM pnl_points
          WHERE agent_id = $1 AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at <= $3)
            AND ($4::int8 IS NULL OR (session, tick_no) > ($4, $5))
          ORDER BY session, tick_no
          LIMIT $6",
    )
    .bind(agent_id)
    .bind(from)
    .bind(to)
    .bind(cursor.map(|c| c.session))
    .bind(cursor.map(|c| c.tick_no))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(executor)
    .await
}

/// See [`crate::AgentQueries::metrics_series`]: two reads in one repeatable-read snapshot, so the points and the
/// trades are of the same projected state.
pub(super) async fn metrics_series(
    pool: &sqlx::PgPool,
    agent_id: &str,
) -> Result<(Vec<EquityPoint>, Vec<ClosedTrade>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let points = sqlx::query_as::<_, (DateTime<Utc>, Decimal, Decimal, Decimal)>(
        "SELECT at, equity, position_qty, mark_price FROM pnl_points WHERE agent_id = $1 ORDER BY session, tick_no",
    )
    .bind(agent_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(at, equity, position_qty, mark_price)| EquityPoint {
        at,
        equity,
        position_qty,
        mark_price,
    })
    .collect();
    let trades = sqlx::query_as::<_, (DateTime<Utc>, Decimal)>(
        "SELECT filled_at, realized_pnl - fee FROM trades WHERE agent_id = $1 AND side = 'sell'
          ORDER BY global_position",
    )
    .bind(agent_id)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(at, pnl)| ClosedTrade { at, pnl })
    .collect();
    tx.commit().await?;
    Ok((points, trades))
}

/// The PnL points of `agent_id` at `from..=to`, thinned to `max_points` as [`crate::queries`]' `thinned` does.
pub(super) async fn thin_pnl<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    max_points: usize,
) -> Result<Vec<PnlRow>, sqlx::Error> {
    // Row i of n > m is kept when some g has ⌊g(n − 1)/(m − 1)⌋ = i: the smallest candidate is g = ⌈i(m − 1)/(n − 1)⌉.
    sqlx::query_as(
        "WITH r AS (
            SELECT p.*, row_number() OVER (ORDER BY session, tick_no) - 1 AS i, count(*) OVER () AS n
              FROM pnl_points p
             WHERE agent_id = $1 AND ($2::timestamptz IS NULL OR at >= $2) AND ($3::timestamptz IS NULL OR at <= $3))
         SELECT agent_id, session, tick_no, at, mark_price, position_qty, cash, equity, realized_pnl, unrealized_pnl,
                fees, pnl
           FROM r
          WHERE n <= $4 OR ((i * ($4 - 1) + n - 2) / (n - 1)) * (n - 1) / ($4 - 1) = i
          ORDER BY session, tick_no",
    )
    .bind(agent_id)
    .bind(from)
    .bind(to)
    .bind(i64::try_from(max_points).unwrap_or(i64::MAX))
    .fetch_all(executor)
    .await
}

/// The canonical dump lines of the trading tables, in primary-key order: orders, trades, positions, pnl_points.
pub(super) async fn dump(conn: &mut PgConnection) -> Result<[Vec<String>; 4], SinkError> {
    let orders: Vec<OrderRow> =
        sqlx::query_as("SELECT * FROM orders ORDER BY order_id COLLATE \"C\"")
            .fetch_all(&mut *conn)
            .await?;
    let trades: Vec<TradeRow> =
        sqlx::query_as("SELECT * FROM trades ORDER BY trade_id COLLATE \"C\"")
            .fetch_all(&mut *conn)
            .await?;
    let positions: Vec<PositionRow> =
        sqlx::query_as("SELECT * FROM positions ORDER BY agent_id COLLATE \"C\"")
            .fetch_all(&mut *conn)
            .await?;
    let points: Vec<PnlRow> = sqlx::query_as(
        "SELECT * FROM pnl_points ORDER BY agent_id COLLATE \"C\", session, tick_no",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok([
        orders.iter().map(crate::model::dump_line).collect(),
        trades.iter().map(crate::model::dump_line).collect(),
        positions.iter().map(crate::model::dump_line).collect(),
        points.iter().map(crate::model::dump_line).collect(),
    ])
}
