//! Command services: one way to send a command to an aggregate, whatever the event store behind it.
//!
//! [`EventStoreBackend`] names where events live (Postgres or memory); [`AggregateService`] runs commands with the
//! bounded conflict retry of [`execute_with_retry`] and loads an aggregate's current state (for command responses
//! and for the runtime). Callers — the API, the runtime worker, backtests — never see which backend is in use.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::persist::{EventUpcaster, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::store::{
    execute_with_retry, memory_cqrs, pg_cqrs, CommandError, MemoryCqrs, MemoryEventRepository,
    MemoryEventStore, PgCqrs, PgEventStore,
};

/// Where the event log lives.
#[derive(Clone)]
pub enum EventStoreBackend {
    /// Postgres, the system of record.
    Postgres(PgPool),
    /// In memory: embedded mode and backtests. Clones share one log.
    Memory(MemoryEventRepository),
}

impl EventStoreBackend {
    /// A fresh, empty memory backend.
    pub fn memory() -> Self {
        Self::Memory(MemoryEventRepository::new())
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Self::Memory(_))
    }
}

/// Metadata every event of a command carries (specs/04: `correlation_id`, `actor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// Follows one request from HTTP through events, ticks and fills.
    pub correlation_id: String,
    /// Who asked: a JWT `sub`, or `system:<role>` for background roles.
    pub actor: String,
}

impl CommandContext {
    pub fn new(correlation_id: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            actor: actor.into(),
        }
    }

    /// A context for a background role (`system:<role>`).
    pub fn system(role: &str, correlation_id: impl Into<String>) -> Self {
        Self::new(correlation_id, format!("system:{role}"))
    }

    fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            ("correlation_id".to_owned(), self.correlation_id.clone()),
            ("actor".to_owned(), self.actor.clone()),
        ])
    }
}

// Built once per process and never moved in a hot loop, so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Engine<A: Aggregate> {
    Postgres {
        cqrs: PgCqrs<A>,
        store: PgEventStore<A>,
    },
    Memory {
        cqrs: MemoryCqrs<A>,
        store: MemoryEventStore<A>,
    },
}

/// Runs commands against aggregates of type `A` and loads their state.
pub struct AggregateService<A: Aggregate> {
    engine: Engine<A>,
}

impl<A> AggregateService<A>
where
    A: Aggregate<Services = ()> + 'static,
{
    /// `upcasters` builds the upcaster list (called twice: for the command path and for loading).
    pub fn new(
        backend: &EventStoreBackend,
        upcasters: fn() -> Vec<Box<dyn EventUpcaster>>,
    ) -> Self {
        let engine = match backend {
            EventStoreBackend::Postgres(pool) => Engine::Postgres {
                cqrs: pg_cqrs(pool.clone(), upcasters(), vec![], ()),
                store: PersistedEventStore::new_event_store(PostgresEventRepository::new(
                    pool.clone(),
                ))
                .with_upcasters(upcasters()),
            },
            EventStoreBackend::Memory(repo) => Engine::Memory {
                cqrs: memory_cqrs(repo.clone(), upcasters(), vec![], ()),
                store: PersistedEventStore::new_event_store(repo.clone())
                    .with_upcasters(upcasters()),
            },
        };
        Self { engine }
    }

    /// Executes the command built by `command` (called once per attempt) against `aggregate_id`.
    ///
    /// # Errors
    /// See [`CommandError`]: a domain rejection, a conflict after the bounded retries, or a store failure.
    pub async fn execute<F>(
        &self,
        aggregate_id: &str,
        command: F,
        ctx: &CommandContext,
    ) -> Result<(), CommandError<A::Error>>
    where
        F: FnMut() -> A::Command,
    {
        metrics::counter!("strom_commands_total", "aggregate" => A::TYPE).increment(1);
        let result = match &self.engine {
            Engine::Postgres { cqrs, .. } => {
                execute_with_retry(cqrs, aggregate_id, command, ctx.metadata()).await
            }
            Engine::Memory { cqrs, .. } => {
                execute_with_retry(cqrs, aggregate_id, command, ctx.metadata()).await
            }
        };
        if let Err(e) = &result {
            let outcome = match e {
                CommandError::Rejected(_) => "rejected",
                CommandError::Conflict { .. } => "conflict",
                CommandError::Store(_) => "store_error",
            };
            metrics::counter!("strom_commands_failed_total", "aggregate" => A::TYPE, "outcome" => outcome)
                .increment(1);
        }
        result
    }

    /// The aggregate's current state and its last sequence number (0 and `A::default()` when it has no events).
    ///
    /// # Errors
    /// The store failed or an event could not be deserialized.
    pub async fn load(&self, aggregate_id: &str) -> Result<(A, usize), AggregateError<A::Error>> {
        let ctx = match &self.engine {
            Engine::Postgres { store, .. } => store.load_aggregate(aggregate_id).await?,
            Engine::Memory { store, .. } => store.load_aggregate(aggregate_id).await?,
        };
        Ok((ctx.aggregate, ctx.current_sequence))
    }

    /// Executes a command, then loads the resulting state (for responses that show what the command did).
    ///
    /// # Errors
    /// As [`Self::execute`]; a failed load after a successful command is a [`CommandError::Store`].
    pub async fn execute_and_load<F>(
        &self,
        aggregate_id: &str,
        command: F,
        ctx: &CommandContext,
    ) -> Result<(A, usize), CommandError<A::Error>>
    where
        F: FnMut() -> A::Command,
    {
        self.execute(aggregate_id, command, ctx).await?;
        self.load(aggregate_id).await.map_err(CommandError::Store)
    }
}

/// The three aggregates' services over one backend.
pub struct CommandServices {
    pub agents: Arc<AggregateService<strom_domain::Agent>>,
    pub orders: Arc<AggregateService<strom_domain::Order>>,
    pub backtests: Arc<AggregateService<strom_domain::Backtest>>,
}

impl CommandServices {
    pub fn new(backend: &EventStoreBackend) -> Self {
        Self {
            agents: Arc::new(AggregateService::new(
                backend,
                strom_domain::upcast::event_upcasters,
            )),
            orders: Arc::new(AggregateService::new(backend, no_upcasters)),
            backtests: Arc::new(AggregateService::new(backend, no_upcasters)),
        }
    }
}

fn no_upcasters() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use strom_domain::{AgentCommand, AgentConfig, AgentError};

    fn config() -> AgentConfig {
        serde_json::from_value(serde_json::json!({
            "name": "demo", "symbol": "BTC-USD",
            "strategy": {"kind": "hold", "params": {}},
            "frequency_s": 60,
            "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "100000", "max_daily_loss": null},
            "starting_cash": "10000", "seed": 7
        }))
        .expect("valid config json")
    }

    #[tokio::test]
    async fn commands_run_and_state_loads_on_the_memory_backend() {
        let services = CommandServices::new(&EventStoreBackend::memory());
        let ctx = CommandContext::new("corr-1", "alice");
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let (agent, seq) = services
            .agents
            .execute_and_load(
                "0b6c3c4e-8d7a-4a53-9a55-3f4c1d2e5a61",
                || AgentCommand::CreateAgent {
                    agent_id: "0b6c3c4e-8d7a-4a53-9a55-3f4c1d2e5a61".into(),
                    owner: "alice".into(),
                    config: config(),
                    at,
                },
                &ctx,
            )
            .await
            .expect("created");
        assert_eq!(seq, 1);
        assert_eq!(
            services
                .agents
                .load("0b6c3c4e-8d7a-4a53-9a55-3f4c1d2e5a61")
                .await
                .unwrap()
                .1,
            1
        );
        assert!(format!("{agent:?}").contains("alice"));
        let err = services
            .agents
            .execute(
                "0b6c3c4e-8d7a-4a53-9a55-3f4c1d2e5a61",
                || AgentCommand::StopAgent {
                    at,
                    reason: "x".into(),
                },
                &ctx,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CommandError::Rejected(AgentError::AgentNotRunning { .. })
            ),
            "{err:?}"
        );
    }
}
