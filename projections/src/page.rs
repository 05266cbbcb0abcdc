//! Cursor paging for the read API: page sizes, opaque cursors and the errors a bad request gets.
//!
//! A cursor names the last item of the previous page by its sort key, so pages stay stable while new rows arrive
//! (no offsets). It is opaque to clients: hex of `<kind>|<fields>`, where the kind stops a runs cursor from being
//! replayed against the agents listing.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Items per page when the client does not say (specs/03 §1).
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Most items one page returns (specs/03 §1): 200 agents or runs are a few hundred kilobytes of JSON, enough for a
/// dashboard table, small enough to keep a read well under the 5 ms p99 target.
pub const MAX_PAGE_SIZE: usize = 200;
/// Longest cursor accepted (openapi `Cursor` maxLength); anything longer is refused before decoding.
pub const MAX_CURSOR_CHARS: usize = 512;

/// Why a read request was refused. The API maps both to a client error (specs/03 §2: `bad_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `limit` outside 1..=[`MAX_PAGE_SIZE`].
    #[error("limit must be between 1 and {MAX_PAGE_SIZE} (got {0})")]
    InvalidLimit(usize),
    /// A PnL `limit` or `max_points` outside its range.
    #[error("limit must be between 1 and {MAX_PNL_PAGE_SIZE} (got {0})")]
    InvalidPnlLimit(usize),
    /// Any other query parameter that cannot be answered (e.g. `from` after `to`); the text says which.
    #[error("{0}")]
    BadParameter(String),
    /// The cursor is not one this listing issued.
    #[error("cursor is not valid for this listing")]
    BadCursor,
    /// The read-model store failed.
    #[error("read model unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// One page of a listing: `{"items": [...], "next_cursor": string|null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A validated page size.
///
/// # Errors
/// [`QueryError::InvalidLimit`] when `limit` is 0 or above [`MAX_PAGE_SIZE`].
pub fn page_size(limit: Option<usize>) -> Result<usize, QueryError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(n) => Err(QueryError::InvalidLimit(n)),
    }
}

/// Where the agents listing (newest first by created_at, then agent_id) continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCursor {
    pub created_at: DateTime<Utc>,
    pub agent_id: String,
}

/// Where a runs listing (newest first by session, then tick_no) continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCursor {
    pub session: u64,
    pub tick_no: u64,
}

const AGENT_KIND: &str = "a1";
const RUN_KIND: &str = "r1";
const ORDER_KIND: &str = "o1";
const TRADE_KIND: &str = "t1";
const PNL_KIND: &str = "p1";
const BACKTEST_KIND: &str = "b1";
const EVENT_KIND: &str = "e1";

/// PnL points per page when the client does not say (specs/03 §1: a chart's worth).
pub const DEFAULT_PNL_PAGE_SIZE: usize = 1_000;
/// Most PnL points one page (or one thinned series) returns.
pub const MAX_PNL_PAGE_SIZE: usize = 5_000;

/// A validated PnL page size.
///
/// # Errors
/// [`QueryError::InvalidLimit`] when `limit` is 0 or above [`MAX_PNL_PAGE_SIZE`].
pub fn pnl_page_size(limit: Option<usize>) -> Result<usize, QueryError> {
    match limit {
        None => Ok(DEFAULT_PNL_PAGE_SIZE),
        Some(n) if (1..=MAX_PNL_PAGE_SIZE).contains(&n) => Ok(n),
        Some(n) => Err(QueryError::InvalidPnlLimit(n)),
    }
}

/// Where an orders listing (newest first by created_at, then order_id) continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCursor {
    pub created_at: DateTime<Utc>,
    pub order_id: String,
}

/// Where a trades listing (newest first by filled_at, then trade_id) continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeCursor {
    pub filled_at: DateTime<Utc>,
    pub trade_id: String,
}

/// Where a PnL listing (oldest first by session, then tick_no) continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PnlCursor {
    pub session: i64,
    pub tick_no: i64,
}

/// `<kind>|<micros>|<id>` cursors (orders, trades).
fn encode_timed(kind: &str, at: DateTime<Utc>, id: &str) -> String {
    hex::encode(format!("{kind}|{}|{id}", at.timestamp_micros()))
}

fn decode_timed(cursor: &str, kind: &str) -> Result<(DateTime<Utc>, String), QueryError> {
    let [micros, id]: [String; 2] = fields(cursor, kind)?
        .try_into()
        .map_err(|_| QueryError::BadCursor)?;
    let micros: i64 = micros.parse().map_err(|_| QueryError::BadCursor)?;
    let at = DateTime::from_timestamp_micros(micros).ok_or(QueryError::BadCursor)?;
    Ok((at, id))
}

impl OrderCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        encode_timed(ORDER_KIND, self.created_at, &self.order_id)
    }

    /// # Errors
    /// [`QueryError::BadCursor`] for anything [`OrderCursor::encode`] did not produce.
    pub fn decode(cursor: &str) -> Result<Self, QueryError> {
        let (created_at, order_id) = decode_timed(cursor, ORDER_KIND)?;
        Ok(Self {
            created_at,
            order_id,
        })
    }
}

impl TradeCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        encode_timed(TRADE_KIND, self.filled_at, &self.trade_id)
    }

    /// # Errors
    /// [`QueryError::BadCursor`] for anything [`TradeCursor::encode`] did not produce.
    pub fn decode(cursor: &str) -> Result<Self, QueryError> {
        let (filled_at, trade_id) = decode_timed(cursor, TRADE_KIND)?;
        Ok(Self {
            filled_at,
            trade_id,
        })
    }
}

/// Where a backtests listing (newest first by requested_at, then backtest_id) continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacktestCursor {
    pub requested_at: DateTime<Utc>,
    pub backtest_id: String,
}

impl BacktestCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        encode_timed(BACKTEST_KIND, self.requested_at, &self.backtest_id)
    }

    /// # Errors
    /// [`QueryError::BadCursor`] for anything [`BacktestCursor::encode`] did not produce.
    pub fn decode(cursor: &str) -> Result<Self, QueryError> {
        let (requested_at, backtest_id) = decode_timed(cursor, BACKTEST_KIND)?;
        Ok(Self {
            requested_at,
            backtest_id,
        })
    }
}

impl PnlCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        hex::encode(format!("{PNL_KIND}|{}|{}", self.session, self.tick_no))
    }

    /// # Errors
    /// [`QueryError::BadCursor`] for anything [`PnlCursor::encode`] did not produce.
    pub fn decode(cursor: &str) -> Result<Self, QueryError> {
        let [session, tick_no]: [String; 2] = fields(cursor, PNL_KIND)?
            .try_into()
            .map_err(|_| QueryError::BadCursor)?;
        let parse = |v: String| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or(QueryError::BadCursor)
        };
        Ok(Self {
            session: parse(session)?,
            tick_no: parse(tick_no)?,
        })
    }
}

/// Where an agent's event timeline (oldest first by sequence) continues: the last sequence of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub sequence: u64,
}

impl EventCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        hex::encode(format!("{EVENT_KIND}|{}", self.sequence))
    }

    /// # Errors
    /// [`QueryError::BadCursor`] for anything [`EventCursor::encode`] did not produce.
    pub fn decode(cursor: &str) -> Result<Self, QueryError> {
        let [sequence]: [String; 1] = fields(cursor, EVENT_KIND)?
            .try_into()
            .map_err(|_| QueryError::BadCursor)?;
        let sequence = sequence.parse().map_err(|_| QueryError::BadCursor)?;
        Ok(Self { sequence })
    }
}

fn fields(cursor: &str, kind: &str) -> Result<Vec<String>, QueryError> {
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(QueryError::BadCursor);
    }
    let bytes = hex::decode(cursor).map_err(|_| QueryError::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| QueryError::BadCursor)?;
    let mut parts = text.splitn(3, '|');
    if parts.next() != Some(kind) {
        return Err(QueryError::BadCursor);
    }
    Ok(parts.map(str::to_owned).collect())
}

impl AgentCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{AGENT_KIND}|{}|{}",
            self.created_at.timestamp_micros(),
            self.agent_id
        ))
    }

    /// # Errors
    /// [`QueryError::BadCursor`] for anything [`AgentCursor::encode`] did not produce.
    pub fn decode(cursor: &str) -> Result<Self, QueryError> {
        let [micros, agent_id]: [String; 2] = fields(cursor, AGENT_KIND)?
            .try_into()
            .map_err(|_| QueryError::BadCursor)?;
        let micros: i64 = micros.parse().map_err(|_| QueryError::BadCursor)?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or(QueryError::BadCursor)?;
        Ok(Self {
            created_at,
            agent_id,
        })
    }
}

impl RunCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        hex::encode(format!("{RUN_KIND}|{}|{}", self.session, self.tick_no))
    }

    /// # Errors
    /// [`QueryError::BadCursor`] for anything [`RunCursor::encode`] did not produce.
    pub fn decode(cursor: &str) -> Result<Self, QueryError> {
        let [session, tick_no]: [String; 2] = fields(cursor, RUN_KIND)?
            .try_into()
            .map_err(|_| QueryError::BadCursor)?;
        Ok(Self {
            session: session.parse().map_err(|_| QueryError::BadCursor)?,
            tick_no: tick_no.parse().map_err(|_| QueryError::BadCursor)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_opaque() {
        let cursor = AgentCursor {
            created_at: "2026-11-22T10:00:00.123Z".parse().unwrap(),
            agent_id: "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10".into(),
        };
        let text = cursor.encode();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(AgentCursor::decode(&text).unwrap(), cursor);
        let runs = RunCursor {
            session: 3,
            tick_no: 17,
        };
        assert_eq!(RunCursor::decode(&runs.encode()).unwrap(), runs);
        let events = EventCursor { sequence: 42 };
        // The shape openapi.yaml's EventCursor pattern states: "e1|" then the digits, in hex.
        assert_eq!(events.encode(), "65317c3432");
        assert_eq!(EventCursor::decode(&events.encode()).unwrap(), events);
    }

    #[test]
    fn a_cursor_of_another_listing_or_garbage_is_a_bad_cursor() {
        let runs = RunCursor {
            session: 1,
            tick_no: 1,
        }
        .encode();
        assert_eq!(AgentCursor::decode(&runs), Err(QueryError::BadCursor));
        for bad in ["", "zz", "6131", &"a".repeat(MAX_CURSOR_CHARS + 2)] {
            assert_eq!(
                AgentCursor::decode(bad),
                Err(QueryError::BadCursor),
                "{bad}"
            );
            assert_eq!(RunCursor::decode(bad), Err(QueryError::BadCursor), "{bad}");
        }
        assert_eq!(EventCursor::decode(&runs), Err(QueryError::BadCursor));
        for bad in ["e1|", "e1|-1", "e1|1|2", "e1|99999999999999999999999"] {
            let bad = hex::encode(bad);
            assert_eq!(
                EventCursor::decode(&bad),
                Err(QueryError::BadCursor),
                "{bad}"
            );
        }
        let overflow = hex::encode("r1|1|99999999999999999999999");
        assert_eq!(RunCursor::decode(&overflow), Err(QueryError::BadCursor));
    }

    #[test]
    fn page_sizes_default_and_are_bounded() {
        assert_eq!(page_size(None), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(Some(MAX_PAGE_SIZE)), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size(Some(0)), Err(QueryError::InvalidLimit(0)));
        assert_eq!(page_size(Some(201)), Err(QueryError::InvalidLimit(201)));
    }
}
