//! Command execution with a bounded retry on optimistic-concurrency conflicts.

use std::collections::HashMap;

use cqrs_es::{Aggregate, AggregateError, CqrsFramework, EventStore};

/// Most attempts one command gets (the first try plus retries) when other commands keep committing to the same
/// aggregate first. A conflict means another command on that aggregate committed in between, so every lost
/// attempt is someone else's progress; real contention on one aggregate is a handful of writers (an API request,
/// a scheduler tick, a fill), which 5 attempts absorb. A command still losing after 5 rounds is on a hot aggregate
/// and should go back to its caller (HTTP 409 / a redelivered tick) rather than hold a task and a connection.
pub const MAX_COMMAND_ATTEMPTS: usize = 5;

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command (a domain rule).
    #[error(transparent)]
    Rejected(E),
    /// Other commands committed to the aggregate first on every attempt.
    #[error(
        "{aggregate_type} {aggregate_id} was changed by other commands on each of {attempts} attempts; \
         try again"
    )]
    Conflict {
        /// The aggregate's type.
        aggregate_type: &'static str,
        /// The aggregate instance.
        aggregate_id: String,
        /// How many times the command was tried ([`MAX_COMMAND_ATTEMPTS`]).
        attempts: usize,
    },
    /// The event store failed (connection, serialization, an unexpected database error).
    #[error("event store failed: {0}")]
    Store(AggregateError<E>),
}

/// Executes the command `command_factory` builds against `aggregate_id`, reloading the aggregate and trying again
/// when another command committed first, at most [`MAX_COMMAND_ATTEMPTS`] times. The factory is called once per
/// attempt (commands are consumed by `handle`). `metadata` goes on every event (`correlation_id`, `actor`, ...).
///
/// # Errors
/// [`CommandError::Rejected`] when the aggregate refuses the command, [`CommandError::Conflict`] when every attempt
/// lost a race, [`CommandError::Store`] when the store failed.
#[tracing::instrument(skip_all, fields(aggregate_type = A::TYPE, aggregate_id = aggregate_id))]
pub async fn execute_with_retry<A, ES, F>(
    cqrs: &CqrsFramework<A, ES>,
    aggregate_id: &str,
    mut command_factory: F,
    metadata: HashMap<String, String>,
) -> Result<(), CommandError<A::Error>>
where
    A: Aggregate,
    ES: EventStore<A>,
    F: FnMut() -> A::Command,
{
    for attempt in 1..=MAX_COMMAND_ATTEMPTS {
        match cqrs
            .execute_with_metadata(aggregate_id, command_factory(), metadata.clone())
            .await
        {
            Ok(()) => return Ok(()),
            Err(AggregateError::AggregateConflict) => {
                tracing::debug!(attempt, "command lost a race on its aggregate; retrying");
                // Let the winner's task run before reloading; no sleep is needed since a conflict already
                // means the aggregate moved on.
                tokio::task::yield_now().await;
            }
            Err(AggregateError::UserError(e)) => return Err(CommandError::Rejected(e)),
            Err(e) => return Err(CommandError::Store(e)),
        }
    }
    tracing::warn!(
        attempts = MAX_COMMAND_ATTEMPTS,
        "command gave up after conflicts"
    );
    Err(CommandError::Conflict {
        aggregate_type: A::TYPE,
        aggregate_id: aggregate_id.to_string(),
        attempts: MAX_COMMAND_ATTEMPTS,
    })
}
