//! SQL for the rows of `agents` and `agent_runs`: decode, load, upsert (UNNEST, one statement per page), page,
//! dump. Text keys sort with `COLLATE "C"` (bytes) so Postgres orders them exactly as the memory model's `BTreeMap`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, Row};
use strom_commands::log::{jsonb_text, LogPosition, PgCheckpointStore};
use strom_domain::{AgentState, Side};

use crate::fold::AGENTS_PROJECTOR;
use crate::model::{AgentRow, RunOutcomeKind, RunRow, TableDump};
use crate::page::{AgentCursor, RunCursor};
use crate::queries::AgentFilter;
use crate::sink::SinkError;

const AGENT_COLUMNS: &str = "agent_id, owner, name, symbol, strategy, frequency_s, risk, starting_cash, seed, \
     status, session, started_at, stopped_at, archived_at, last_tick_no, last_run_at, last_price, next_tick_at, \
     runs_count, created_at, updated_at, version";

const RUN_COLUMNS: &str =
    "agent_id, session, tick_no, scheduled_at, started_at, completed_at, symbol, price, \
     observed_at, outcome, signal_side, signal_qty, order_id, correlation_id, global_position";

fn malformed(table: &'static str, column: &'static str, value: impl ToString) -> SinkError {
    SinkError::MalformedRow {
        table,
        column,
        value: value.to_string(),
    }
}

fn unsigned(table: &'static str, column: &'static str, v: i64) -> Result<u64, SinkError> {
    u64::try_from(v).map_err(|_| malformed(table, column, v))
}

fn signed(v: u64) -> i64 {
    // Sessions, ticks, counts and sequences stay far below i64::MAX; saturate rather than wrap if one did not.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn status(text: &str) -> Result<AgentState, SinkError> {
    match text {
        "stopped" => Ok(AgentState::Stopped),
        "running" => Ok(AgentState::Running),
        "archived" => Ok(AgentState::Archived),
        other => Err(malformed("agents", "status", other)),
    }
}

fn side(text: Option<String>) -> Result<Option<Side>, SinkError> {
    match text.as_deref() {
        None => Ok(None),
        Some("buy") => Ok(Some(Side::Buy)),
        Some("sell") => Ok(Some(Side::Sell)),
        Some(other) => Err(malformed("agent_runs", "signal_side", other)),
    }
}

fn agent_row(row: &PgRow) -> Result<AgentRow, SinkError> {
    const T: &str = "agents";
    let seed: Decimal = row.try_get("seed")?;
    let frequency_s: i32 = row.try_get("frequency_s")?;
    let last_tick_no: Option<i64> = row.try_get("last_tick_no")?;
    Ok(AgentRow {
        agent_id: row.try_get("agent_id")?,
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        symbol: row.try_get("symbol")?,
        strategy: row.try_get::<Value, _>("strategy")?,
        frequency_s: u32::try_from(frequency_s)
            .map_err(|_| malformed(T, "frequency_s", frequency_s))?,
        risk: row.try_get::<Value, _>("risk")?,
        starting_cash: row.try_get("starting_cash")?,
        seed: u64::try_from(seed).map_err(|_| malformed(T, "seed", seed))?,
        status: status(row.try_get::<&str, _>("status")?)?,
        session: unsigned(T, "session", row.try_get("session")?)?,
        started_at: row.try_get("started_at")?,
        stopped_at: row.try_get("stopped_at")?,
        archived_at: row.try_get("archived_at")?,
        last_tick_no: last_tick_no
            .map(|v| unsigned(T, "last_tick_no", v))
            .transpose()?,
        last_run_at: row.try_get("last_run_at")?,
        last_price: row.try_get("last_price")?,
        next_tick_at: row.try_get("next_tick_at")?,
        runs_count: unsigned(T, "runs_count", row.try_get("runs_count")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: unsigned(T, "version", row.try_get("version")?)?,
    })
}

fn run_row(row: &PgRow) -> Result<RunRow, SinkError> {
    const T: &str = "agent_runs";
    let outcome: &str = row.try_get("outcome")?;
    Ok(RunRow {
        agent_id: row.try_get("agent_id")?,
        session: unsigned(T, "session", row.try_get("session")?)?,
        tick_no: unsigned(T, "tick_no", row.try_get("tick_no")?)?,
        scheduled_at: row.try_get("scheduled_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        symbol: row.try_get("symbol")?,
        price: row.try_get("price")?,
        observed_at: row.try_get("observed_at")?,
        outcome: RunOutcomeKind::parse(outcome).ok_or_else(|| malformed(T, "outcome", outcome))?,
        signal_side: side(row.try_get("signal_side")?)?,
        signal_qty: row.try_get("signal_qty")?,
        order_id: row.try_get("order_id")?,
        correlation_id: row.try_get("correlation_id")?,
        global_position: row.try_get("global_position")?,
    })
}

/// The rows of `ids` that exist, by agent_id.
pub(super) async fn load_agents(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<BTreeMap<String, AgentRow>, SinkError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = ANY($1)");
    let rows = sqlx::query(&sql).bind(ids).fetch_all(conn).await?;
    rows.iter()
        .map(|row| agent_row(row).map(|a| (a.agent_id.clone(), a)))
        .collect()
}

const UPSERT_AGENTS_SQL: &str = "
INSERT INTO agents (agent_id, owner, name, symbol, strategy, frequency_s, risk, starting_cash, seed, status, session,
                    started_at, stopped_at, archived_at, last_tick_no, last_run_at, last_price, next_tick_at,
                    runs_count, created_at, updated_at, version)
SELECT a.agent_id, a.owner, a.name, a.symbol, a.strategy::jsonb, a.frequency_s, a.risk::jsonb, a.starting_cash,
       a.seed, a.status, a.session, a.started_at, a.stopped_at, a.archived_at, a.last_tick_no, a.last_run_at,
       a.last_price, a.next_tick_at, a.runs_count, a.created_at, a.updated_at, a.version
  FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], $8::numeric[],
              $9::numeric[], $10::text[], $11::int8[], $12::timestamptz[], $13::timestamptz[], $14::timestamptz[],
              $15::int8[], $16::timestamptz[], $17::numeric[], $18::timestamptz[], $19::int8[], $20::timestamptz[],
              $21::timestamptz[], $22::int8[])
       AS a(agent_id, owner, name, symbol, strategy, frequency_s, risk, starting_cash, seed, status, session,
            started_at, stopped_at, archived_at, last_tick_no, last_run_at, last_price, next_tick_at, runs_count,
            created_at, updated_at, version)
    ON CONFLICT (agent_id) DO UPDATE
   SET owner = EXCLUDED.owner, name = EXCLUDED.name, symbol = EXCLUDED.symbol, strategy = EXCLUDED.strategy,
       frequency_s = EXCLUDED.frequency_s, risk = EXCLUDED.risk, starting_cash = EXCLUDED.starting_cash,
       seed = EXCLUDED.seed, status = EXCLUDED.status, session = EXCLUDED.session,
       started_at = EXCLUDED.started_at, stopped_at = EXCLUDED.stopped_at, archived_at = EXCLUDED.archived_at,
       last_tick_no = EXCLUDED.last_tick_no, last_run_at = EXCLUDED.last_run_at,
       last_price = EXCLUDED.last_price, next_tick_at = EXCLUDED.next_tick_at, runs_count = EXCLUDED.runs_count,
       created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version";

/// Column arrays for one multi-row statement.
#[derive(Default)]
struct AgentColumns {
    agent_id: Vec<String>,
    owner: Vec<String>,
    name: Vec<String>,
    symbol: Vec<String>,
    strategy: Vec<String>,
    frequency_s: Vec<i32>,
    risk: Vec<String>,
    starting_cash: Vec<Decimal>,
    seed: Vec<Decimal>,
    status: Vec<&'static str>,
    session: Vec<i64>,
    started_at: Vec<Option<DateTime<Utc>>>,
    stopped_at: Vec<Option<DateTime<Utc>>>,
    archived_at: Vec<Option<DateTime<Utc>>>,
    last_tick_no: Vec<Option<i64>>,
    last_run_at: Vec<Option<DateTime<Utc>>>,
    last_price: Vec<Option<Decimal>>,
    next_tick_at: Vec<Option<DateTime<Utc>>>,
    runs_count: Vec<i64>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    version: Vec<i64>,
}

impl AgentColumns {
    fn push(&mut self, a: &AgentRow) {
        self.agent_id.push(a.agent_id.clone());
        self.owner.push(a.owner.clone());
        self.name.push(a.name.clone());
        self.symbol.push(a.symbol.clone());
        self.strategy.push(jsonb_text(&a.strategy));
        self.frequency_s
            .push(i32::try_from(a.frequency_s).unwrap_or(i32::MAX));
        self.risk.push(jsonb_text(&a.risk));
        self.starting_cash.push(a.starting_cash);
        self.seed.push(Decimal::from(a.seed));
        self.status.push(a.status.as_str());
        self.session.push(signed(a.session));
        self.started_at.push(a.started_at);
        self.stopped_at.push(a.stopped_at);
        self.archived_at.push(a.archived_at);
        self.last_tick_no.push(a.last_tick_no.map(signed));
        self.last_run_at.push(a.last_run_at);
        self.last_price.push(a.last_price);
        self.next_tick_at.push(a.next_tick_at);
        self.runs_count.push(signed(a.runs_count));
        self.created_at.push(a.created_at);
        self.updated_at.push(a.updated_at);
        self.version.push(signed(a.version));
    }
}

/// Inserts or replaces `agents` in one statement.
pub(super) async fn upsert_agents<'a>(
    conn: &mut PgConnection,
    agents: impl Iterator<Item = &'a AgentRow>,
) -> Result<(), SinkError> {
    let mut c = AgentColumns::default();
    agents.for_each(|a| c.push(a));
    if c.agent_id.is_empty() {
        return Ok(());
    }
    sqlx::query(UPSERT_AGENTS_SQL)
        .bind(c.agent_id)
        .bind(c.owner)
        .bind(c.name)
        .bind(c.symbol)
        .bind(c.strategy)
        .bind(c.frequency_s)
        .bind(c.risk)
        .bind(c.starting_cash)
        .bind(c.seed)
        .bind(c.status)
        .bind(c.session)
        .bind(c.started_at)
        .bind(c.stopped_at)
        .bind(c.archived_at)
        .bind(c.last_tick_no)
        .bind(c.last_run_at)
        .bind(c.last_price)
        .bind(c.next_tick_at)
        .bind(c.runs_count)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.version)
        .execute(conn)
        .await?;
    Ok(())
}

const INSERT_RUNS_SQL: &str = "
INSERT INTO agent_runs (agent_id, session, tick_no, scheduled_at, started_at, completed_at, symbol, price,
                        observed_at, outcome, signal_side, signal_qty, order_id, correlation_id, global_position)
SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
                     $7::text[], $8::numeric[], $9::timestamptz[], $10::text[], $11::text[], $12::numeric[],
                     $13::text[], $14::text[], $15::int8[])
    ON CONFLICT (agent_id, session, tick_no) DO NOTHING";

/// Inserts `runs` in one statement (a run already present is left as it is: runs never change).
pub(super) async fn insert_runs(conn: &mut PgConnection, runs: &[RunRow]) -> Result<(), SinkError> {
    if runs.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&RunRow) -> String| runs.iter().map(f).collect::<Vec<_>>();
    let ts = |f: fn(&RunRow) -> DateTime<Utc>| runs.iter().map(f).collect::<Vec<_>>();
    sqlx::query(INSERT_RUNS_SQL)
        .bind(col(|r| r.agent_id.clone()))
        .bind(runs.iter().map(|r| signed(r.session)).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| signed(r.tick_no)).collect::<Vec<_>>())
        .bind(ts(|r| r.scheduled_at))
        .bind(ts(|r| r.started_at))
        .bind(ts(|r| r.completed_at))
        .bind(col(|r| r.symbol.clone()))
        .bind(runs.iter().map(|r| r.price).collect::<Vec<_>>())
        .bind(ts(|r| r.observed_at))
        .bind(col(|r| r.outcome.as_str().to_owned()))
        .bind(
            runs.iter()
                .map(|r| r.signal_side.map(Side::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(runs.iter().map(|r| r.signal_qty).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.order_id.clone()).collect::<Vec<_>>())
        .bind(col(|r| r.correlation_id.clone()))
        .bind(runs.iter().map(|r| r.global_position).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

/// Up to `limit` agents matching `filter` after `cursor`, newest first.
pub(super) async fn list_agents<'e>(
    executor: impl PgExecutor<'e>,
    filter: &AgentFilter,
    cursor: Option<AgentCursor>,
    limit: usize,
) -> Result<Vec<AgentRow>, SinkError> {
    let sql = format!(
        "SELECT {AGENT_COLUMNS} FROM agents
          WHERE ($1::text IS NULL OR owner = $1)
            AND ($2::text IS NULL OR status = $2)
            AND ($3::timestamptz IS NULL OR created_at < $3
                 OR (created_at = $3 AND agent_id COLLATE \"C\" < $4::text COLLATE \"C\"))
          ORDER BY created_at DESC, agent_id COLLATE \"C\" DESC
          LIMIT $5"
    );
    let (after_at, after_id) = match cursor {
        Some(c) => (Some(c.created_at), Some(c.agent_id)),
        None => (None, None),
    };
    let rows = sqlx::query(&sql)
        .bind(filter.owner.as_deref())
        .bind(filter.status.map(AgentState::as_str))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(executor)
        .await?;
    rows.iter().map(agent_row).collect()
}

/// Up to `limit` runs of `agent_id` after `cursor`, newest first.
pub(super) async fn list_runs<'e>(
    executor: impl PgExecutor<'e>,
    agent_id: &str,
    cursor: Option<RunCursor>,
    limit: usize,
) -> Result<Vec<RunRow>, SinkError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM agent_runs
          WHERE agent_id = $1 AND ($2::int8 IS NULL OR (session, tick_no) < ($2, $3))
          ORDER BY session DESC, tick_no DESC
          LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(agent_id)
        .bind(cursor.map(|c| signed(c.session)))
        .bind(cursor.map(|c| signed(c.tick_no)))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(executor)
        .await?;
    rows.iter().map(run_row).collect()
}

/// The canonical dump of projector `agents`' tables as `conn` sees them.
///
/// # Errors
/// The tables could not be read, or hold a value no fold produces.
pub async fn dump_tables(conn: &mut PgConnection) -> Result<TableDump, SinkError> {
    let agents = sqlx::query(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents ORDER BY agent_id COLLATE \"C\""
    ))
    .fetch_all(&mut *conn)
    .await?;
    let runs = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM agent_runs ORDER BY agent_id COLLATE \"C\", session, tick_no"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let [orders, trades, positions, pnl_points] = super::trading_rows::dump(conn).await?;
    Ok(TableDump {
        agents: agents
            .iter()
            .map(|r| agent_row(r).map(|a| a.dump_line()))
            .collect::<Result<_, _>>()?,
        agent_runs: runs
            .iter()
            .map(|r| run_row(r).map(|a| a.dump_line()))
            .collect::<Result<_, _>>()?,
        orders,
        trades,
        positions,
        pnl_points,
    })
}

/// Projector `agents`' checkpoint and the dump of its tables, read in one snapshot (REPEATABLE READ), so the rows
/// are exactly those the checkpoint covers even while the projector keeps running.
///
/// # Errors
/// The tables could not be read, or hold a value no fold produces.
pub async fn dump_tables_at_checkpoint(
    conn: &mut PgConnection,
) -> Result<(LogPosition, TableDump), SinkError> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let checkpoint = PgCheckpointStore::load_in(&mut *tx, AGENTS_PROJECTOR)
        .await?
        .unwrap_or(LogPosition::START);
    let dump = dump_tables(&mut tx).await?;
    tx.commit().await?;
    Ok((checkpoint, dump))
}
