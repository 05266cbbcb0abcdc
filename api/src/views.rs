//! Response bodies (the `Agent`, `MarketPrice`, … schemas of specs/openapi.yaml) and the countdown arithmetic.
//! Built either from the aggregate right after a command (read-your-own-writes) or from the read models.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use strom_domain::config::StrategySpec;
use strom_domain::{Agent, AgentState, RiskLimits};

/// `#[serde(serialize_with = "millis")]`: RFC 3339 with milliseconds, as events carry times.
pub fn millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&strom_domain::time::format_millis(t))
}

/// [`millis`] for optional times (`null` when absent).
pub fn millis_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => millis(t, s),
        None => s.serialize_none(),
    }
}

/// When the next tick of a session that started at `started_at` with `frequency_s` is due: the smallest
/// `started_at + k × frequency_s` (k ≥ 0) strictly after `now` (specs/04 §5).
pub fn next_tick_at(
    started_at: DateTime<Utc>,
    frequency_s: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let frequency_ms = i64::from(frequency_s.max(1)) * 1000;
    let elapsed_ms = (now - started_at).num_milliseconds();
    let k = if elapsed_ms < 0 {
        0
    } else {
        elapsed_ms / frequency_ms + 1
    };
    started_at.checked_add_signed(TimeDelta::try_milliseconds(k.checked_mul(frequency_ms)?)?)
}

/// `RiskLimits` with `max_daily_loss` always present (`null` when unset), as the API schema requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskView {
    pub max_position_qty: Decimal,
    pub max_order_qty: Decimal,
    pub max_notional: Decimal,
    pub max_daily_loss: Option<Decimal>,
}

impl From<&RiskLimits> for RiskView {
    fn from(r: &RiskLimits) -> Self {
        Self {
            max_position_qty: r.max_position_qty,
            max_order_qty: r.max_order_qty,
            max_notional: r.max_notional,
            max_daily_loss: r.max_daily_loss,
        }
    }
}

/// What an agent's history adds to its aggregate state: the parts only the read model keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHistory {
    pub created_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub runs_count: u64,
}

/// The `Agent` representation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentView {
    pub agent_id: String,
    pub owner: String,
    pub name: String,
    pub symbol: String,
    pub strategy: StrategySpec,
    pub frequency_s: u32,
    pub risk: RiskView,
    pub starting_cash: Decimal,
    pub seed: u64,
    pub status: AgentState,
    pub session: u64,
    #[serde(serialize_with = "millis_opt")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "millis_opt")]
    pub stopped_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "millis_opt")]
    pub next_tick_at: Option<DateTime<Utc>>,
    pub last_tick_no: Option<u64>,
    #[serde(serialize_with = "millis_opt")]
    pub last_run_at: Option<DateTime<Utc>>,
    pub runs_count: u64,
    #[serde(serialize_with = "millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "millis")]
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl AgentView {
    /// The view of `agent` right after a command: its state at `version`, the `history` the aggregate does not
    /// keep, `updated_at` = the time of the command just applied. `None` if the agent does not exist.
    pub fn from_state(
        agent: &Agent,
        version: usize,
        history: &AgentHistory,
        updated_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let config = agent.config()?;
        let status = agent.state();
        let started_at = agent.session_started_at();
        Some(Self {
            agent_id: agent.agent_id()?.to_owned(),
            owner: agent.owner()?.to_owned(),
            name: config.name.clone(),
            symbol: config.symbol.as_str().to_owned(),
            strategy: config.strategy.clone(),
            frequency_s: config.frequency_s,
            risk: RiskView::from(&config.risk),
            starting_cash: config.starting_cash,
            seed: config.seed,
            status,
            session: agent.session(),
            started_at,
            stopped_at: history.stopped_at,
            next_tick_at: countdown(status, started_at, config.frequency_s, now),
            last_tick_no: (agent.last_tick_no() > 0).then_some(agent.last_tick_no()),
            last_run_at: history.last_run_at,
            runs_count: history.runs_count,
            created_at: history.created_at,
            updated_at: strom_domain::time::to_millis(updated_at),
            version: version as u64,
        })
    }
}

/// `next_tick_at` of an agent: only a running agent has one.
pub fn countdown(
    status: AgentState,
    started_at: Option<DateTime<Utc>>,
    frequency_s: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match (status, started_at) {
        (AgentState::Running, Some(started_at)) => next_tick_at(started_at, frequency_s, now),
        _ => None,
    }
}

/// `{items, next_cursor}` pages.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32, ms: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap() + TimeDelta::milliseconds(ms.into())
    }

    #[test]
    fn the_next_tick_is_the_first_slot_strictly_after_now() {
        let start = t(10, 0, 0, 0);
        assert_eq!(next_tick_at(start, 60, t(9, 59, 0, 0)), Some(start));
        assert_eq!(next_tick_at(start, 60, start), Some(t(10, 1, 0, 0)));
        assert_eq!(
            next_tick_at(start, 60, t(10, 0, 59, 999)),
            Some(t(10, 1, 0, 0))
        );
        assert_eq!(
            next_tick_at(start, 60, t(10, 1, 0, 0)),
            Some(t(10, 2, 0, 0))
        );
        assert_eq!(
            next_tick_at(start, 1, t(10, 0, 5, 500)),
            Some(t(10, 0, 6, 0))
        );
    }

    #[test]
    fn only_running_agents_count_down() {
        let start = Some(t(10, 0, 0, 0));
        assert!(countdown(AgentState::Running, start, 5, t(10, 0, 1, 0)).is_some());
        assert_eq!(
            countdown(AgentState::Stopped, start, 5, t(10, 0, 1, 0)),
            None
        );
        assert_eq!(
            countdown(AgentState::Archived, start, 5, t(10, 0, 1, 0)),
            None
        );
    }
}
