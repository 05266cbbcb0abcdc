//! The write-side kernel's contract, the "Decider" pattern: an aggregate is a pure pair
//! `decide(&state, command) → events | error` and `evolve(&mut state, &event)`. Everything that runs commands — the
//! command service over an event store, the cqrs-es `Aggregate` adapter ([`cqrs_aggregate!`]), a backtest loop over
//! memory state — calls these two functions and holds no rule of its own.
//!
//! [`StromEvent`] is the one typed event of the global log: the union of every aggregate's events, so stores, logs and
//! folds carry typed events in memory and JSON exists only at the Postgres/NATS edge ([`crate::codec`]).

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::agent::{Agent, AgentEvent};
use crate::backtest::{Backtest, BacktestEvent};
use crate::error::DomainError;
use crate::order::{Order, OrderEvent};

/// An aggregate as a decide/evolve pair over its state (`Self`).
///
/// Invariants every implementation keeps: `decide` reads only `self` and the command (no clock, no I/O, no
/// randomness), and `evolve` never fails — an event was decided from a valid state, so applying it is total.
pub trait Decider:
    Default + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The aggregate type as stored and published (`"Agent"`).
    const TYPE: &'static str;
    /// The shape of the serialized state, for snapshots: bump it whenever a field of the state changes meaning or
    /// form, and stored snapshots of the old shape are ignored (the aggregate is replayed from its events instead).
    const STATE_VERSION: u32 = 1;
    type Command: Send;
    type Event: Clone + PartialEq + Debug + Send + Sync + 'static;
    type Error: DomainError;

    /// The events `command` produces from this state, or why it is refused. An empty list means "nothing to do".
    ///
    /// # Errors
    /// The aggregate's rules refuse the command.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// This state with `event` applied.
    fn evolve(&mut self, event: &Self::Event);

    /// The event as the global log carries it.
    fn wrap(event: Self::Event) -> StromEvent;

    /// This aggregate's event inside a log event, or `None` for another aggregate's.
    fn unwrap(event: &StromEvent) -> Option<&Self::Event>;
}

/// Implements cqrs-es's `Aggregate` for a [`Decider`]: `handle` decides and writes each event (the sink applies it),
/// `apply` evolves. It adds nothing, so given/when/then tests through cqrs-es's `TestFramework` test the decider.
#[macro_export]
macro_rules! cqrs_aggregate {
    ($decider:ty) => {
        impl ::cqrs_es::Aggregate for $decider {
            const TYPE: &'static str = <$decider as $crate::decider::Decider>::TYPE;
            type Command = <$decider as $crate::decider::Decider>::Command;
            type Event = <$decider as $crate::decider::Decider>::Event;
            type Error = <$decider as $crate::decider::Decider>::Error;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &::cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                for event in $crate::decider::Decider::decide(self, command)? {
                    sink.write(event, self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                $crate::decider::Decider::evolve(self, &event);
            }
        }
    };
}

/// An event of any aggregate: what the event log, the stores and the folds carry.
#[allow(clippy::large_enum_variant)] // events are built once and shared behind an `Arc` in the log
#[derive(Debug, Clone, PartialEq)]
pub enum StromEvent {
    Agent(AgentEvent),
    Order(OrderEvent),
    Backtest(BacktestEvent),
}

/// Every aggregate type, in the order specs/04 §2 lists them.
pub const AGGREGATE_TYPES: [&str; 3] = [Agent::TYPE, Order::TYPE, Backtest::TYPE];

impl StromEvent {
    /// `"Agent"`, `"Order"` or `"Backtest"`.
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            StromEvent::Agent(_) => Agent::TYPE,
            StromEvent::Order(_) => Order::TYPE,
            StromEvent::Backtest(_) => Backtest::TYPE,
        }
    }

    /// The variant name, e.g. `"AgentStarted"`.
    pub fn event_type(&self) -> &'static str {
        match self {
            StromEvent::Agent(e) => e.name(),
            StromEvent::Order(e) => e.name(),
            StromEvent::Backtest(e) => e.name(),
        }
    }

    /// The version new events of this type are written with (specs/04 §2).
    pub fn event_version(&self) -> &'static str {
        match self {
            StromEvent::Agent(e) => e.version(),
            StromEvent::Order(e) => e.version(),
            StromEvent::Backtest(e) => e.version(),
        }
    }

    pub fn as_agent(&self) -> Option<&AgentEvent> {
        Agent::unwrap(self)
    }

    pub fn as_order(&self) -> Option<&OrderEvent> {
        Order::unwrap(self)
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

impl From<OrderEvent> for StromEvent {
    fn from(event: OrderEvent) -> Self {
        StromEvent::Order(event)
    }
}

impl From<BacktestEvent> for StromEvent {
    fn from(event: BacktestEvent) -> Self {
        StromEvent::Backtest(event)
    }
}
