//! The write-side kernel's contract, the "Decider" pattern: an aggregate is a pure pair
//! `decide(&state, command) → events | error` and `evolve(&mut state, &event)`. Everything that runs commands — the
//! command service over an event store, the cqrs-es `Aggregate` adapter ([`cqrs_aggregate!`]), a backtest loop over
//! memory state — calls these two functions and holds no rule of its own.
//!
//! The log carries every aggregate's events as one typed event ([`crate::event::StromEvent`]); [`crate::event::Logged`]
//! connects a decider's events to it.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::DomainError;

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

    /// Decides `command` and applies its events to this state: exactly `decide` followed by `evolve` of each event
    /// (the same events, the same state), in one call so that an aggregate may hand what deciding computed to
    /// applying instead of computing it twice (the Agent's strategy sums on every run). On an error the state is
    /// unchanged. The command service runs commands through it.
    ///
    /// # Errors
    /// As [`Decider::decide`].
    fn execute(&mut self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        let mut events = Vec::new();
        self.execute_into(command, &mut events)?;
        Ok(events)
    }

    /// [`Decider::execute`], appending the events to `events` instead of returning a new `Vec`: a loop that runs
    /// one command after another (the backtest) reuses one buffer instead of allocating one per command. On an error
    /// neither the state nor `events` changes.
    ///
    /// # Errors
    /// As [`Decider::decide`].
    fn execute_into(
        &mut self,
        command: Self::Command,
        events: &mut Vec<Self::Event>,
    ) -> Result<(), Self::Error> {
        let decided = self.decide(command)?;
        for event in &decided {
            self.evolve(event);
        }
        events.extend(decided);
        Ok(())
    }
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
