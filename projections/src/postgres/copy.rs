//! Bulk writes for rebuilds: `COPY … FROM STDIN` in text format, the fastest way to load rows into Postgres.
//! Each value is written in the same textual form Postgres would print (numerics with their scale, timestamps in
//! RFC 3339, jsonb as its canonical text), escaped for COPY.

use sqlx::PgConnection;
use strom_commands::log::jsonb_text;
use strom_domain::time::format_millis;

use crate::ledger::PnlRow;
use crate::model::{AgentRow, RunRow};
use crate::sink::SinkError;

/// One COPY text field.
enum Field<'a> {
    Null,
    Text(&'a str),
    Owned(String),
}

/// Appends `fields` as one COPY text line.
fn line(out: &mut String, fields: &[Field<'_>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match field {
            Field::Null => out.push_str("\\N"),
            Field::Text(s) => escape(out, s),
            Field::Owned(s) => escape(out, s),
        }
    }
    out.push('\n');
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

fn opt<T: ToString>(v: Option<T>) -> Field<'static> {
    v.map_or(Field::Null, |v| Field::Owned(v.to_string()))
}

fn ts(t: &chrono::DateTime<chrono::Utc>) -> Field<'static> {
    // Rows come from events, whose times have millisecond precision; a finer time would be kept as well since
    // Postgres parses any number of fractional digits, but format it losslessly anyway.
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        Field::Owned(format_millis(t))
    } else {
        Field::Owned(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

fn opt_ts(t: &Option<chrono::DateTime<chrono::Utc>>) -> Field<'static> {
    t.as_ref().map_or(Field::Null, ts)
}

async fn copy(conn: &mut PgConnection, statement: &str, data: String) -> Result<(), SinkError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(e) = copy.send(data.into_bytes()).await {
        copy.abort(e.to_string()).await.ok();
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

const COPY_RUNS_SQL: &str = "COPY agent_runs (agent_id, session, tick_no, scheduled_at, started_at, completed_at, \
     symbol, price, observed_at, outcome, signal_side, signal_qty, order_id, correlation_id, global_position) \
     FROM STDIN";

/// `COPY`s `runs` into `agent_runs`.
pub(super) async fn copy_runs(conn: &mut PgConnection, runs: &[RunRow]) -> Result<(), SinkError> {
    if runs.is_empty() {
        return Ok(());
    }
    let mut data = String::with_capacity(runs.len() * 256);
    for r in runs {
        line(
            &mut data,
            &[
                Field::Text(&r.agent_id),
                Field::Owned(r.session.to_string()),
                Field::Owned(r.tick_no.to_string()),
                ts(&r.scheduled_at),
                ts(&r.started_at),
                ts(&r.completed_at),
                Field::Text(&r.symbol),
                Field::Owned(r.price.to_string()),
                ts(&r.observed_at),
                Field::Text(r.outcome.as_str()),
                opt(r.signal_side.map(strom_domain::Side::as_str)),
                opt(r.signal_qty),
                r.order_id.as_deref().map_or(Field::Null, Field::Text),
                Field::Text(&r.correlation_id),
                Field::Owned(r.global_position.to_string()),
            ],
        );
    }
    copy(conn, COPY_RUNS_SQL, data).await
}

const COPY_PNL_SQL: &str =
    "COPY pnl_points (agent_id, session, tick_no, at, mark_price, position_qty, cash, equity, \
     realized_pnl, unrealized_pnl, fees, pnl) FROM STDIN";

/// `COPY`s `points` into `pnl_points` (one per run, so as many as the runs of a rebuild).
pub(super) async fn copy_pnl(conn: &mut PgConnection, points: &[PnlRow]) -> Result<(), SinkError> {
    if points.is_empty() {
        return Ok(());
    }
    let mut data = String::with_capacity(points.len() * 160);
    for p in points {
        line(
            &mut data,
            &[
                Field::Text(&p.agent_id),
                Field::Owned(p.session.to_string()),
                Field::Owned(p.tick_no.to_string()),
                ts(&p.at),
                Field::Owned(p.mark_price.to_string()),
                Field::Owned(p.position_qty.to_string()),
                Field::Owned(p.cash.to_string()),
                Field::Owned(p.equity.to_string()),
                Field::Owned(p.realized_pnl.to_string()),
                Field::Owned(p.unrealized_pnl.to_string()),
                Field::Owned(p.fees.to_string()),
                Field::Owned(p.pnl.to_string()),
            ],
        );
    }
    copy(conn, COPY_PNL_SQL, data).await
}

const COPY_AGENTS_SQL: &str = "COPY agents (agent_id, owner, name, symbol, strategy, frequency_s, risk, \
     starting_cash, seed, status, session, started_at, stopped_at, archived_at, last_tick_no, last_run_at, \
     last_price, next_tick_at, runs_count, created_at, updated_at, version) FROM STDIN";

/// `COPY`s `agents` into `agents`.
pub(super) async fn copy_agents<'a>(
    conn: &mut PgConnection,
    agents: impl Iterator<Item = &'a AgentRow>,
) -> Result<(), SinkError> {
    let mut data = String::new();
    let mut any = false;
    for a in agents {
        any = true;
        line(
            &mut data,
            &[
                Field::Text(&a.agent_id),
                Field::Text(&a.owner),
                Field::Text(&a.name),
                Field::Text(&a.symbol),
                Field::Owned(jsonb_text(&a.strategy)),
                Field::Owned(a.frequency_s.to_string()),
                Field::Owned(jsonb_text(&a.risk)),
                Field::Owned(a.starting_cash.to_string()),
                Field::Owned(a.seed.to_string()),
                Field::Text(a.status.as_str()),
                Field::Owned(a.session.to_string()),
                opt_ts(&a.started_at),
                opt_ts(&a.stopped_at),
                opt_ts(&a.archived_at),
                opt(a.last_tick_no),
                opt_ts(&a.last_run_at),
                opt(a.last_price),
                opt_ts(&a.next_tick_at),
                Field::Owned(a.runs_count.to_string()),
                ts(&a.created_at),
                ts(&a.updated_at),
                Field::Owned(a.version.to_string()),
            ],
        );
    }
    if !any {
        return Ok(());
    }
    copy(conn, COPY_AGENTS_SQL, data).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_the_characters_copy_interprets() {
        let mut out = String::new();
        line(
            &mut out,
            &[
                Field::Text("a\\b\tc\nd\re"),
                Field::Null,
                Field::Owned("x".into()),
            ],
        );
        assert_eq!(out, "a\\\\b\\tc\\nd\\re\t\\N\tx\n");
    }
}
