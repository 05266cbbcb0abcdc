//! Response bodies (the `Agent`, `MarketPrice`, … schemas of specs/openapi.yaml) and the countdown arithmetic.
//! Built either from the aggregate right after a command (read-your-own-writes) or from the read models.

use chrono::{DateTime, Utc};
use serde::Serializer;
use strom_domain::time::to_millis;
use strom_domain::{Agent, AgentCommand};
use strom_projections::fold::risk_value;
use strom_projections::AgentView;

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

/// `next_tick_at` of an agent: only a running agent has one; the smallest `started_at + k × frequency_s` (k ≥ 0)
/// strictly after `now` (specs/04 §5; the arithmetic lives with the read model's view).
pub fn countdown(view: &AgentView, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    view.next_tick_after(now)
}

/// The `Agent` body right after a command, from the aggregate state at `version` — what the command just did —
/// plus what only the read model keeps (`projected`: runs, last price, and times of earlier events). `at` is the
/// time of the command just applied; the fields it set come from it rather than from the (possibly older)
/// projection. `None` if the agent does not exist.
pub fn after_command(
    agent: &Agent,
    version: usize,
    projected: Option<&AgentView>,
    command: &AgentCommand,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<AgentView> {
    let config = agent.config()?;
    let at = to_millis(at);
    let mut view = AgentView {
        agent_id: agent.agent_id()?.to_owned(),
        owner: agent.owner()?.to_owned(),
        name: config.name.clone(),
        symbol: config.symbol.as_str().to_owned(),
        strategy: serde_json::to_value(&config.strategy).ok()?,
        frequency_s: config.frequency_s,
        risk: risk_value(&config.risk),
        starting_cash: config.starting_cash,
        seed: config.seed,
        status: agent.state(),
        session: agent.session(),
        started_at: agent.session_started_at(),
        stopped_at: projected.and_then(|p| p.stopped_at),
        archived_at: projected.and_then(|p| p.archived_at),
        next_tick_at: None,
        last_tick_no: (agent.last_tick_no() > 0).then_some(agent.last_tick_no()),
        last_run_at: projected.and_then(|p| p.last_run_at),
        last_price: projected.and_then(|p| p.last_price),
        runs_count: projected.map_or(0, |p| p.runs_count),
        created_at: projected.map_or(at, |p| p.created_at),
        updated_at: at,
        version: version as u64,
    };
    match command {
        AgentCommand::CreateAgent { .. } => view.created_at = at,
        AgentCommand::StopAgent { .. } => view.stopped_at = Some(at),
        AgentCommand::ArchiveAgent { .. } => view.archived_at = Some(at),
        _ => {}
    }
    view.next_tick_at = countdown(&view, now);
    Some(view)
}
