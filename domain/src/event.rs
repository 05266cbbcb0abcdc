//! The one typed event of the global log: [`StromEvent`], the union of every aggregate's events, so stores, logs and
//! folds carry typed events in memory and JSON exists only at the Postgres/NATS edge ([`crate::codec`]). [`Logged`]
//! connects each aggregate's own events to it.

use crate::agent::{Agent, AgentEvent};
use crate::backtest::{Backtest, BacktestEvent};
use crate::decider::Decider;

/// An event of any aggregate: what the event log, the stores and the folds carry.
#[allow(clippy::large_enum_variant)] // events are built once and shared behind an `Arc` in the log
#[derive(Debug, Clone, PartialEq)]
pub enum StromEvent {
    Agent(AgentEvent),
    Backtest(BacktestEvent),
}

/// Every aggregate type, in the order specs/04 §2 lists them.
pub const AGGREGATE_TYPES: [&str; 2] = [Agent::TYPE, Backtest::TYPE];

/// An aggregate whose events the global log carries (every aggregate): its events in and out of [`StromEvent`].
pub trait Logged: Decider {
    /// The event as the global log carries it.
    fn wrap(event: Self::Event) -> StromEvent;

    /// This aggregate's event inside a log event, or `None` for another aggregate's.
    fn unwrap(event: &StromEvent) -> Option<&Self::Event>;
}

impl StromEvent {
    /// `"Agent"` or `"Backtest"`.
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            StromEvent::Agent(_) => Agent::TYPE,
            StromEvent::Backtest(_) => Backtest::TYPE,
        }
    }

    /// The variant name, e.g. `"AgentStarted"`.
    pub fn event_type(&self) -> &'static str {
        match self {
            StromEvent::Agent(e) => e.name(),
            StromEvent::Backtest(e) => e.name(),
        }
    }

    /// The version new events of this type are written with (specs/04 §2).
    pub fn event_version(&self) -> &'static str {
        match self {
            StromEvent::Agent(e) => e.version(),
            StromEvent::Backtest(e) => e.version(),
        }
    }

    pub fn as_agent(&self) -> Option<&AgentEvent> {
        Agent::unwrap(self)
    }

    pub fn as_backtest(&self) -> Option<&BacktestEvent> {
        Backtest::unwrap(self)
    }
}

impl From<AgentEvent> for StromEvent {
    fn from(event: AgentEvent) -> Self {
        StromEvent::Agent(event)
    }
}

impl From<BacktestEvent> for StromEvent {
    fn from(event: BacktestEvent) -> Self {
        StromEvent::Backtest(event)
    }
}

impl Logged for Agent {
    fn wrap(event: AgentEvent) -> StromEvent {
        StromEvent::Agent(event)
    }

    fn unwrap(event: &StromEvent) -> Option<&AgentEvent> {
        match event {
            StromEvent::Agent(event) => Some(event),
            _ => None,
        }
    }
}

impl Logged for Backtest {
    fn wrap(event: BacktestEvent) -> StromEvent {
        StromEvent::Backtest(event)
    }

    fn unwrap(event: &StromEvent) -> Option<&BacktestEvent> {
        match event {
            StromEvent::Backtest(event) => Some(event),
            _ => None,
        }
    }
}
