//! The pure fold of projector `agents`: logged `Agent` events in, `agents` and `agent_runs` rows out. The one fold of
//! the agent read model: the projector, rebuilds, `replay --verify`, command responses and SSE messages all apply it.
//!
//! No clock, no randomness, no I/O: every value comes from the typed event or its log position, so folding the
//! same log gives the same rows byte for byte, live or in a rebuild. Events of other aggregates are ignored; an
//! event already reflected in its agent's row (`sequence <= version`) is skipped, which makes applying a page twice
//! harmless.

use std::collections::BTreeMap;

use serde_json::Value;
use strom_commands::log::{LoggedEvent, StoreError};
use strom_domain::config::RiskLimits;
use strom_domain::{AgentEvent, AgentState, DecodeError, RunOutcome, TickSchedule};

use crate::model::{AgentRow, RunOutcomeKind, RunRow};

/// Checkpoint name of the projector that owns `agents` and `agent_runs` (specs/01 §2).
pub const AGENTS_PROJECTOR: &str = "projector:agents";

/// Why an event could not be folded. The projector stops on these (it never skips an event silently); verify
/// reports them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ProjectionError {
    /// An event type/version this code has no schema or upcaster for.
    #[error("{aggregate_type}/{aggregate_id} sequence {sequence}: unknown event {event_type} v{event_version}")]
    UnknownEventVersion {
        aggregate_type: String,
        aggregate_id: String,
        sequence: u64,
        event_type: String,
        event_version: String,
    },
    /// The payload does not deserialize as its event type.
    #[error("{aggregate_type}/{aggregate_id} sequence {sequence}: malformed {event_type} payload: {reason}")]
    MalformedPayload {
        aggregate_type: String,
        aggregate_id: String,
        sequence: u64,
        event_type: String,
        reason: String,
    },
    /// The event cannot follow what came before it in its stream (e.g. an event for an agent never created).
    #[error("{aggregate_type}/{aggregate_id} sequence {sequence}: {reason}")]
    Inconsistent {
        aggregate_type: String,
        aggregate_id: String,
        sequence: u64,
        reason: String,
    },
}

/// What one folded event changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Folded {
    /// Not an Agent event, or already applied.
    Nothing,
    /// The agent's row changed.
    Agent,
    /// The agent's row changed and this run was recorded.
    Run(Box<RunRow>),
}

impl ProjectionError {
    /// A stored event the log could not decode, as a fold error (`replay --verify` lists them with the rest).
    pub fn undecodable(error: &StoreError) -> Option<Self> {
        let StoreError::Undecodable {
            aggregate_type,
            aggregate_id,
            sequence,
            source,
        } = error
        else {
            return None;
        };
        let (aggregate_type, aggregate_id, sequence) =
            (aggregate_type.clone(), aggregate_id.clone(), *sequence);
        Some(match source {
            DecodeError::UnknownEventVersion {
                event_type,
                event_version,
            } => ProjectionError::UnknownEventVersion {
                aggregate_type,
                aggregate_id,
                sequence,
                event_type: event_type.clone(),
                event_version: event_version.clone(),
            },
            DecodeError::MalformedPayload { event_type, reason } => {
                ProjectionError::MalformedPayload {
                    aggregate_type,
                    aggregate_id,
                    sequence,
                    event_type: event_type.clone(),
                    reason: reason.clone(),
                }
            }
            DecodeError::UnknownAggregateType { .. } => ProjectionError::Inconsistent {
                aggregate_type,
                aggregate_id,
                sequence,
                reason: source.to_string(),
            },
        })
    }
}

/// Folds Agent events into rows; the state is the caller's map of rows.
#[derive(Debug, Default)]
pub struct AgentFold;

impl AgentFold {
    pub fn new() -> Self {
        Self
    }

    /// Applies `event` to `agents` (keyed by agent_id).
    ///
    /// # Errors
    /// The event cannot follow what `agents` holds (e.g. a run of an agent never created); `agents` is unchanged then.
    pub fn apply(
        &self,
        agents: &mut BTreeMap<String, AgentRow>,
        event: &LoggedEvent,
    ) -> Result<Folded, ProjectionError> {
        let Some(agent_event) = event.event.as_agent() else {
            return Ok(Folded::Nothing);
        };
        let at = EventAt {
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            global_position: event.position.global_position,
        };
        match agents.get_mut(&event.aggregate_id) {
            Some(row) => apply_event(row, at, agent_event),
            None => {
                let row = created_row(at, agent_event)?;
                agents.insert(row.agent_id.clone(), row);
                Ok(Folded::Agent)
            }
        }
    }
}

/// `row` (the agent's read-model row, possibly behind, `None` if it has none yet) with the agent's `events` (each with
/// its sequence) folded in: the agent as the read model will show it once the projector has applied them. Command
/// responses use it to answer with the same view GET returns, without waiting for the projector.
///
/// # Errors
/// An event cannot follow the row (the events are not the agent's, or not contiguous from its creation).
pub fn fold_agent_row<'e>(
    mut row: Option<AgentRow>,
    aggregate_id: &str,
    events: impl IntoIterator<Item = (u64, &'e AgentEvent)>,
) -> Result<Option<AgentRow>, ProjectionError> {
    for (sequence, event) in events {
        let at = EventAt {
            aggregate_id,
            sequence,
            global_position: 0,
        };
        match row.as_mut() {
            Some(row) => {
                apply_event(row, at, event)?;
            }
            None => row = Some(created_row(at, event)?),
        }
    }
    Ok(row)
}

/// Where an event sits: enough for the fold, also when the event was just decided and not read back from a log (a
/// command response folds its own events with `global_position` 0, which only a run row would carry).
#[derive(Debug, Clone, Copy)]
pub struct EventAt<'a> {
    pub aggregate_id: &'a str,
    pub sequence: u64,
    pub global_position: i64,
}

/// Applies one Agent event to its existing row (skipping one the row already reflects).
///
/// # Errors
/// The event cannot follow the row (an `AgentCreated` for an existing agent); the row is unchanged then.
pub fn apply_event(
    row: &mut AgentRow,
    at: EventAt<'_>,
    event: &AgentEvent,
) -> Result<Folded, ProjectionError> {
    if at.sequence <= row.version {
        return Ok(Folded::Nothing);
    }
    let run = apply_to(row, at, event)?;
    row.version = at.sequence;
    Ok(run.map_or(Folded::Agent, |r| Folded::Run(Box::new(r))))
}

fn inconsistent(at: EventAt<'_>, reason: impl Into<String>) -> ProjectionError {
    ProjectionError::Inconsistent {
        aggregate_type: "Agent".to_owned(),
        aggregate_id: at.aggregate_id.to_owned(),
        sequence: at.sequence,
        reason: reason.into(),
    }
}

/// `risk` as the column holds it: the limits exactly as events serialize them (decimals as strings,
/// `max_daily_loss` null when unset).
pub fn risk_value(risk: &RiskLimits) -> Value {
    serde_json::to_value(risk).expect("RiskLimits serializes to JSON")
}

/// The row an `AgentCreated` starts.
///
/// # Errors
/// Any other event (for an agent never created), or an `AgentCreated` naming another agent.
pub fn created_row(at: EventAt<'_>, event: &AgentEvent) -> Result<AgentRow, ProjectionError> {
    let (
        AgentEvent::AgentCreated {
            agent_id,
            owner,
            created_at,
            ..
        },
        Some(config),
    ) = (event, event.config())
    else {
        return Err(inconsistent(
            at,
            format!("{} for an agent that was never created", event.name()),
        ));
    };
    if agent_id != at.aggregate_id {
        return Err(inconsistent(
            at,
            format!("AgentCreated names agent {agent_id}"),
        ));
    }
    Ok(AgentRow {
        agent_id: agent_id.clone(),
        owner: owner.clone(),
        name: config.name,
        symbol: config.symbol.to_string(),
        strategy: serde_json::to_value(&config.strategy).unwrap_or(Value::Null),
        frequency_s: config.frequency_s,
        risk: risk_value(&config.risk),
        starting_cash: config.starting_cash,
        seed: config.seed,
        status: AgentState::Stopped,
        session: 0,
        started_at: None,
        stopped_at: None,
        archived_at: None,
        last_tick_no: None,
        last_run_at: None,
        last_price: None,
        next_tick_at: None,
        runs_count: 0,
        created_at: *created_at,
        updated_at: *created_at,
        version: at.sequence,
    })
}

/// Applies a non-creating event to an existing row; returns the run row for `AgentRunRecorded`.
fn apply_to(
    row: &mut AgentRow,
    at: EventAt<'_>,
    event: &AgentEvent,
) -> Result<Option<RunRow>, ProjectionError> {
    match event {
        AgentEvent::AgentCreated { .. } => {
            return Err(inconsistent(at, "AgentCreated for an existing agent"))
        }
        AgentEvent::AgentConfigUpdated { updated_at, .. } => {
            if let Some(config) = event.config() {
                row.name = config.name;
                row.symbol = config.symbol.to_string();
                row.strategy = serde_json::to_value(&config.strategy).unwrap_or(Value::Null);
                row.frequency_s = config.frequency_s;
                row.risk = risk_value(&config.risk);
                row.starting_cash = config.starting_cash;
                row.seed = config.seed;
            }
            row.updated_at = *updated_at;
        }
        AgentEvent::AgentStarted {
            session,
            started_at,
            frequency_s,
        } => {
            row.status = AgentState::Running;
            row.session = *session;
            row.started_at = Some(*started_at);
            row.last_tick_no = None;
            row.next_tick_at = TickSchedule::new(*started_at, *frequency_s).due_at(1);
            row.updated_at = *started_at;
        }
        AgentEvent::AgentStopped { stopped_at, .. } => {
            row.status = AgentState::Stopped;
            row.stopped_at = Some(*stopped_at);
            row.next_tick_at = None;
            row.updated_at = *stopped_at;
        }
        AgentEvent::AgentArchived { archived_at } => {
            row.status = AgentState::Archived;
            row.archived_at = Some(*archived_at);
            row.next_tick_at = None;
            row.updated_at = *archived_at;
        }
        // Orders and fills are the trading projector's (`crate::trading`); the agent's row only moves its version.
        AgentEvent::OrderPlaced { .. }
        | AgentEvent::OrderRejected { .. }
        | AgentEvent::OrderFilled { .. } => {}
        AgentEvent::AgentRunRecorded {
            session,
            tick_no,
            scheduled_at,
            started_at,
            completed_at,
            observation,
            outcome,
            correlation_id,
        } => {
            row.last_tick_no = Some(*tick_no);
            row.last_run_at = Some(*completed_at);
            row.last_price = Some(observation.price);
            row.runs_count += 1;
            row.next_tick_at = match (row.status, row.started_at) {
                (AgentState::Running, Some(start)) => {
                    TickSchedule::new(start, row.frequency_s).due_at(tick_no + 1)
                }
                _ => None,
            };
            row.updated_at = *completed_at;
            let (outcome, signal_side, signal_qty, order_id) = match outcome {
                RunOutcome::Observed => (RunOutcomeKind::Observed, None, None, None),
                RunOutcome::Signalled {
                    side,
                    qty,
                    order_id,
                } => (
                    RunOutcomeKind::Signalled,
                    Some(*side),
                    Some(*qty),
                    Some(order_id.clone()),
                ),
                RunOutcome::Skipped { order_id } => {
                    (RunOutcomeKind::Skipped, None, None, Some(order_id.clone()))
                }
            };
            return Ok(Some(RunRow {
                agent_id: row.agent_id.clone(),
                session: *session,
                tick_no: *tick_no,
                scheduled_at: *scheduled_at,
                started_at: *started_at,
                completed_at: *completed_at,
                symbol: observation.symbol.to_string(),
                price: observation.price,
                observed_at: observation.observed_at,
                outcome,
                signal_side,
                signal_qty,
                order_id,
                correlation_id: correlation_id.clone(),
                global_position: at.global_position,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
