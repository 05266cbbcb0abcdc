//! What the API returns for agents and runs (`Agent`, `Run` in specs/openapi.yaml): the rows in the API's JSON
//! conventions (decimals as strings, times RFC 3339 with milliseconds, absent values as `null`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use strom_domain::time::rfc3339_millis;
use strom_domain::{AgentState, Side, TickSchedule};

use crate::model::{AgentRow, RunOutcomeKind, RunRow};

/// An agent as `GET /api/v1/agents/{id}` returns it (schema `Agent`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    pub agent_id: String,
    pub owner: String,
    pub name: String,
    pub symbol: String,
    pub strategy: Value,
    pub frequency_s: u32,
    pub risk: Value,
    pub starting_cash: Decimal,
    pub seed: u64,
    pub status: AgentState,
    pub session: u64,
    #[serde(with = "rfc3339_millis::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_millis::option")]
    pub stopped_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_millis::option")]
    pub archived_at: Option<DateTime<Utc>>,
    /// From the projection: the tick after the last recorded run (see [`AgentView::next_tick_after`] for a
    /// countdown at response time).
    #[serde(with = "rfc3339_millis::option")]
    pub next_tick_at: Option<DateTime<Utc>>,
    pub last_tick_no: Option<u64>,
    #[serde(with = "rfc3339_millis::option")]
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_price: Option<Decimal>,
    pub runs_count: u64,
    #[serde(with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl From<&AgentRow> for AgentView {
    fn from(row: &AgentRow) -> Self {
        Self {
            agent_id: row.agent_id.clone(),
            owner: row.owner.clone(),
            name: row.name.clone(),
            symbol: row.symbol.clone(),
            strategy: row.strategy.clone(),
            frequency_s: row.frequency_s,
            risk: row.risk.clone(),
            starting_cash: row.starting_cash,
            seed: row.seed,
            status: row.status,
            session: row.session,
            started_at: row.started_at,
            stopped_at: row.stopped_at,
            archived_at: row.archived_at,
            next_tick_at: row.next_tick_at,
            last_tick_no: row.last_tick_no,
            last_run_at: row.last_run_at,
            last_price: row.last_price,
            runs_count: row.runs_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version,
        }
    }
}

impl From<AgentRow> for AgentView {
    fn from(row: AgentRow) -> Self {
        Self::from(&row)
    }
}

impl AgentView {
    /// The countdown target at `now` (specs/04 §5): the smallest `started_at + k × frequency_s` (k ≥ 0) strictly
    /// after `now` while running, else `None`. The API calls this with its clock; the projection itself never
    /// reads one.
    pub fn next_tick_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.status != AgentState::Running {
            return None;
        }
        TickSchedule::new(self.started_at?, self.frequency_s).next_after(now)
    }
}

/// The order a run's signal placed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalView {
    pub side: Side,
    pub qty: Decimal,
    pub order_id: String,
}

/// The observation a run recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservationView {
    pub symbol: String,
    pub price: Decimal,
    #[serde(with = "rfc3339_millis")]
    pub observed_at: DateTime<Utc>,
}

/// A run as `GET /api/v1/agents/{id}/runs` lists it (schema `Run`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub agent_id: String,
    pub session: u64,
    pub tick_no: u64,
    #[serde(with = "rfc3339_millis")]
    pub scheduled_at: DateTime<Utc>,
    #[serde(with = "rfc3339_millis")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339_millis")]
    pub completed_at: DateTime<Utc>,
    pub observation: ObservationView,
    pub outcome: RunOutcomeKind,
    pub signal: Option<SignalView>,
    /// The open order a `skipped` run waited for; `None` otherwise.
    pub waiting_for_order: Option<String>,
    pub correlation_id: String,
    /// started_at − scheduled_at.
    pub lateness_ms: i64,
}

impl From<&RunRow> for RunView {
    fn from(row: &RunRow) -> Self {
        let signal = match (row.signal_side, row.signal_qty, &row.order_id) {
            (Some(side), Some(qty), Some(order_id)) => Some(SignalView {
                side,
                qty,
                order_id: order_id.clone(),
            }),
            _ => None,
        };
        Self {
            agent_id: row.agent_id.clone(),
            session: row.session,
            tick_no: row.tick_no,
            scheduled_at: row.scheduled_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
            observation: ObservationView {
                symbol: row.symbol.clone(),
                price: row.price,
                observed_at: row.observed_at,
            },
            outcome: row.outcome,
            signal,
            waiting_for_order: (row.outcome == RunOutcomeKind::Skipped)
                .then(|| row.order_id.clone())
                .flatten(),
            correlation_id: row.correlation_id.clone(),
            lateness_ms: (row.started_at - row.scheduled_at).num_milliseconds(),
        }
    }
}

impl From<RunRow> for RunView {
    fn from(row: RunRow) -> Self {
        Self::from(&row)
    }
}
