//! The pure fold of projector `agents`: logged `Agent` events in, `agents` and `agent_runs` rows out.
//!
//! No clock, no randomness, no I/O: every value comes from the event payload or its log position, so folding the
//! same log gives the same rows byte for byte, live or in a rebuild. Events of other aggregates are ignored; an
//! event already reflected in its agent's row (`sequence <= version`) is skipped, which makes applying a page twice
//! harmless.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use cqrs_es::DomainEvent;
use serde::Deserialize;
use serde_json::Value;
use strom_commands::store::LoggedEvent;
use strom_domain::config::RiskLimits;
use strom_domain::upcast::event_upcasters;
use strom_domain::{AgentEvent, AgentState, RunOutcome};

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

/// Folds Agent events into rows. Holds only the upcasters (built once); the state is the caller's map of rows.
pub struct AgentFold {
    upcasters: Vec<Box<dyn EventUpcaster>>,
}

impl Default for AgentFold {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AgentFold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentFold").finish_non_exhaustive()
    }
}

/// Event versions this fold reads (after upcasting).
fn is_current(event_type: &str, event_version: &str) -> bool {
    matches!(
        (event_type, event_version),
        ("AgentCreated", "2")
            | ("AgentConfigUpdated", "1")
            | ("AgentStarted", "1")
            | ("AgentStopped", "1")
            | ("AgentArchived", "1")
            | ("AgentRunRecorded", "1")
    )
}

impl AgentFold {
    /// A fold with the domain's upcasters.
    pub fn new() -> Self {
        Self {
            upcasters: event_upcasters(),
        }
    }

    /// Applies `event` to `agents` (keyed by agent_id).
    ///
    /// # Errors
    /// The event is an Agent event this fold cannot read or place; `agents` is unchanged then.
    pub fn apply(
        &self,
        agents: &mut BTreeMap<String, AgentRow>,
        event: &LoggedEvent,
    ) -> Result<Folded, ProjectionError> {
        if event.aggregate_type != "Agent" {
            return Ok(Folded::Nothing);
        }
        let existing = agents.get_mut(&event.aggregate_id);
        if existing
            .as_ref()
            .is_some_and(|row| event.sequence <= row.version)
        {
            return Ok(Folded::Nothing);
        }
        let decoded = self.decode(event)?;
        match existing {
            None => {
                let row = created_row(event, decoded)?;
                agents.insert(row.agent_id.clone(), row);
                Ok(Folded::Agent)
            }
            Some(row) => {
                let run = apply_to(row, event, decoded)?;
                row.version = event.sequence;
                Ok(run.map_or(Folded::Agent, |r| Folded::Run(Box::new(r))))
            }
        }
    }

    /// The event as the current `AgentEvent` (upcast when stored in an older shape).
    ///
    /// # Errors
    /// Unknown type/version, or a payload that does not deserialize.
    pub fn decode(&self, event: &LoggedEvent) -> Result<AgentEvent, ProjectionError> {
        let upcaster = self
            .upcasters
            .iter()
            .find(|u| u.can_upcast(&event.event_type, &event.event_version));
        let decoded = match upcaster {
            Some(upcaster) => {
                let upcast = upcaster.upcast(serialized(event));
                if !is_current(&upcast.event_type, &upcast.event_version) {
                    return Err(unknown(event));
                }
                AgentEvent::deserialize(&upcast.payload)
            }
            None if is_current(&event.event_type, &event.event_version) => {
                AgentEvent::deserialize(&event.payload)
            }
            None => return Err(unknown(event)),
        };
        let decoded = decoded.map_err(|e| malformed(event, e.to_string()))?;
        if decoded.event_type() != event.event_type {
            return Err(malformed(
                event,
                format!("payload is tagged {}", decoded.event_type()),
            ));
        }
        Ok(decoded)
    }
}

fn serialized(event: &LoggedEvent) -> SerializedEvent {
    SerializedEvent::new(
        event.aggregate_id.clone(),
        usize::try_from(event.sequence).unwrap_or(usize::MAX),
        event.aggregate_type.clone(),
        event.event_type.clone(),
        event.event_version.clone(),
        event.payload.clone(),
        event.metadata.clone(),
    )
}

fn unknown(event: &LoggedEvent) -> ProjectionError {
    ProjectionError::UnknownEventVersion {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
    }
}

fn malformed(event: &LoggedEvent, reason: String) -> ProjectionError {
    ProjectionError::MalformedPayload {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        reason,
    }
}

fn inconsistent(event: &LoggedEvent, reason: impl Into<String>) -> ProjectionError {
    ProjectionError::Inconsistent {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        reason: reason.into(),
    }
}

/// `risk` as the column holds it: the limits exactly as events serialize them (decimals as strings,
/// `max_daily_loss` null when unset).
pub fn risk_value(risk: &RiskLimits) -> Value {
    serde_json::to_value(risk).expect("RiskLimits serializes to JSON")
}

fn created_row(event: &LoggedEvent, decoded: AgentEvent) -> Result<AgentRow, ProjectionError> {
    let AgentEvent::AgentCreated {
        agent_id,
        owner,
        name,
        symbol,
        strategy,
        frequency_s,
        risk,
        starting_cash,
        seed,
        created_at,
    } = decoded
    else {
        return Err(inconsistent(
            event,
            format!("{} for an agent that was never created", event.event_type),
        ));
    };
    if agent_id != event.aggregate_id {
        return Err(inconsistent(
            event,
            format!("AgentCreated names agent {agent_id}"),
        ));
    }
    Ok(AgentRow {
        agent_id,
        owner,
        name,
        symbol: symbol.to_string(),
        strategy: serde_json::to_value(&strategy).unwrap_or(Value::Null),
        frequency_s,
        risk: risk_value(&risk),
        starting_cash,
        seed,
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
        created_at,
        updated_at: created_at,
        version: event.sequence,
    })
}

/// When tick `tick_no + 1` is due: `started_at + tick_no × frequency_s` (None past the representable range).
pub fn tick_after(
    started_at: DateTime<Utc>,
    frequency_s: u32,
    tick_no: u64,
) -> Option<DateTime<Utc>> {
    let offset_s = tick_no.checked_mul(u64::from(frequency_s))?;
    started_at.checked_add_signed(TimeDelta::try_seconds(i64::try_from(offset_s).ok()?)?)
}

/// Applies a non-creating event to an existing row; returns the run row for `AgentRunRecorded`.
fn apply_to(
    row: &mut AgentRow,
    event: &LoggedEvent,
    decoded: AgentEvent,
) -> Result<Option<RunRow>, ProjectionError> {
    match decoded {
        AgentEvent::AgentCreated { .. } => {
            return Err(inconsistent(event, "AgentCreated for an existing agent"))
        }
        AgentEvent::AgentConfigUpdated {
            name,
            symbol,
            strategy,
            frequency_s,
            risk,
            starting_cash,
            seed,
            updated_at,
        } => {
            row.name = name;
            row.symbol = symbol.to_string();
            row.strategy = serde_json::to_value(&strategy).unwrap_or(Value::Null);
            row.frequency_s = frequency_s;
            row.risk = risk_value(&risk);
            row.starting_cash = starting_cash;
            row.seed = seed;
            row.updated_at = updated_at;
        }
        AgentEvent::AgentStarted {
            session,
            started_at,
            frequency_s,
        } => {
            row.status = AgentState::Running;
            row.session = session;
            row.started_at = Some(started_at);
            row.last_tick_no = None;
            row.next_tick_at = tick_after(started_at, frequency_s, 0);
            row.updated_at = started_at;
        }
        AgentEvent::AgentStopped { stopped_at, .. } => {
            row.status = AgentState::Stopped;
            row.stopped_at = Some(stopped_at);
            row.next_tick_at = None;
            row.updated_at = stopped_at;
        }
        AgentEvent::AgentArchived { archived_at } => {
            row.status = AgentState::Archived;
            row.archived_at = Some(archived_at);
            row.next_tick_at = None;
            row.updated_at = archived_at;
        }
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
            row.last_tick_no = Some(tick_no);
            row.last_run_at = Some(completed_at);
            row.last_price = Some(observation.price);
            row.runs_count += 1;
            row.next_tick_at = match (row.status, row.started_at) {
                (AgentState::Running, Some(at)) => tick_after(at, row.frequency_s, tick_no),
                _ => None,
            };
            row.updated_at = completed_at;
            let (outcome, signal_side, signal_qty, order_id) = match outcome {
                RunOutcome::Observed => (RunOutcomeKind::Observed, None, None, None),
                RunOutcome::Signalled {
                    side,
                    qty,
                    order_id,
                } => (
                    RunOutcomeKind::Signalled,
                    Some(side),
                    Some(qty),
                    Some(order_id),
                ),
            };
            return Ok(Some(RunRow {
                agent_id: row.agent_id.clone(),
                session,
                tick_no,
                scheduled_at,
                started_at,
                completed_at,
                symbol: observation.symbol.to_string(),
                price: observation.price,
                observed_at: observation.observed_at,
                outcome,
                signal_side,
                signal_qty,
                order_id,
                correlation_id,
                global_position: event.position.global_position,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
