//! The execution role: fills every placed order on paper (specs/01 §3.2). A singleton role ([`crate::role`]) following
//! the global log after its checkpoint `execution`: for each `OrderPlaced` it sends `FillOrder` to the order's agent,
//! which prices the fill from the order's own event (its observation and fill model) — so the fill does not depend on
//! this process's settings, clock or market, only its `filled_at` does.
//!
//! At least once, with idempotent effect: a page whose checkpoint was not saved (a crash, a lost lease, a failover)
//! is handled again, and a second `FillOrder` for a filled order is refused as `order_not_open` and counted as already
//! settled. An outage loses nothing: the orders placed meanwhile wait in the log (their agents skip ticks, the settle
//! barrier) and fill when an instance is active again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use strom_domain::{Agent, AgentCommand, AgentError, AgentEvent, DomainError};

use crate::lease::Singleton;
use crate::log::{CheckpointStore, LoggedEvent, PgCheckpointStore};
use crate::role::{LeasedRole, RoleConfig, RoleError, RoleHandler, RoleNames};
use crate::service::{AggregateService, CommandContext, CommandError};
use crate::store::{Clock, EventStore};

/// The role name of the execution lease (`execution:<nats_prefix>`) and of its checkpoint (specs/01 §2).
pub const EXECUTION_ROLE: &str = "execution";
/// Counter: orders filled.
pub const METRIC_FILLS: &str = "strom_fills_total";
/// Counter: `FillOrder`s refused as `order_not_open` — the order was filled before (a page handled again).
pub const METRIC_ALREADY_SETTLED: &str = "strom_fills_already_settled_total";
/// Counter: orders the domain refused to fill for another reason (a hand-edited store); logged as errors.
pub const METRIC_REFUSED: &str = "strom_fills_refused_total";
/// Histogram: seconds from an order's `placed_at` (its run completing) to its fill committing.
pub const METRIC_TICK_TO_FILL: &str = "strom_tick_to_fill_seconds";

/// The execution role's lease, checkpoint and gauges (`strom_execution_backlog_events`: events after its checkpoint).
pub const EXECUTION_NAMES: RoleNames = RoleNames {
    role: EXECUTION_ROLE,
    active_gauge: "strom_execution_active",
    lag_gauge: "strom_execution_backlog_events",
};

/// Events per page, i.e. between two checkpoint saves. A crash handles at most one page again (each fill then
/// refused as already settled); 500 events cover the orders of a 1,000-agent burst in a page or two.
pub const EXECUTION_PAGE: usize = 500;
/// Idle pause between reads when no commit of this process wakes the role: the latency of a fill whose order another
/// process placed (a commit of this process wakes it at once).
pub const EXECUTION_POLL: Duration = Duration::from_millis(20);
/// Agents whose fills are in flight at once. An agent has at most one open order, so its fills never race each other;
/// different agents' fills are independent commands.
pub const FILL_CONCURRENCY: usize = 32;

/// The execution role's defaults.
pub fn execution_config() -> RoleConfig {
    RoleConfig {
        page_size: EXECUTION_PAGE,
        poll_interval: EXECUTION_POLL,
        leader_retry: crate::lease::LEADER_RETRY,
        error_backoff_max: crate::log::FOLLOWER_ERROR_BACKOFF_MAX,
    }
}

/// Counts of one execution instance since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// Orders this instance filled.
    pub filled: u64,
    /// Orders found already filled.
    pub already_settled: u64,
    /// Orders the domain refused to fill for good.
    pub refused: u64,
}

/// The page handler: fills the page's placed orders.
pub struct Filler {
    agents: Arc<AggregateService<Agent>>,
    clock: Clock,
    filled: AtomicU64,
    already_settled: AtomicU64,
    refused: AtomicU64,
}

/// The execution role. Build it with [`Execution::over`], then [`run`](LeasedRole::run) it.
pub type Execution = LeasedRole<Filler>;

impl LeasedRole<Filler> {
    /// The execution role over `store`'s log, filling through `agents` with `filled_at` from `clock`, active while it
    /// holds `singleton` (Postgres: the lock `execution:<nats_prefix>`; memory: [`Singleton::Single`], embedded mode
    /// being one process). The checkpoint is saved through the lease (Postgres) or in the memory store.
    pub fn over(
        store: &EventStore,
        agents: Arc<AggregateService<Agent>>,
        clock: Clock,
        singleton: Singleton,
        config: RoleConfig,
    ) -> Self {
        let checkpoints: Arc<dyn CheckpointStore> = match store {
            EventStore::Postgres(store) => Arc::new(PgCheckpointStore::new(store.pool().clone())),
            EventStore::Memory(store) => Arc::new(store.clone()),
        };
        metrics::describe_counter!(METRIC_FILLS, "Orders the execution role filled");
        metrics::describe_counter!(
            METRIC_ALREADY_SETTLED,
            "Fills refused because the order was already filled (a page handled again)"
        );
        metrics::describe_counter!(METRIC_REFUSED, "Orders the domain refused to fill for good");
        metrics::describe_histogram!(
            METRIC_TICK_TO_FILL,
            metrics::Unit::Seconds,
            "From an order's placed_at (its run completing) to its fill committing"
        );
        LeasedRole::new(
            Filler {
                agents,
                clock,
                filled: AtomicU64::new(0),
                already_settled: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            },
            EXECUTION_NAMES,
            store.log(),
            checkpoints,
            singleton,
            config,
        )
        .woken_by(store.commits())
    }

    /// This instance's counts so far.
    pub fn stats(&self) -> ExecutionStats {
        let filler = self.handler();
        ExecutionStats {
            filled: filler.filled.load(Ordering::Relaxed),
            already_settled: filler.already_settled.load(Ordering::Relaxed),
            refused: filler.refused.load(Ordering::Relaxed),
        }
    }
}

/// One placed order of the page.
struct Placed {
    event: Arc<LoggedEvent>,
    order_id: String,
    placed_at: chrono::DateTime<chrono::Utc>,
}

impl Filler {
    /// Fills one agent's placed orders of the page, in log order.
    async fn fill_all(&self, orders: Vec<Placed>) -> Result<(), RoleError> {
        for order in orders {
            self.fill(order).await?;
        }
        Ok(())
    }

    async fn fill(&self, order: Placed) -> Result<(), RoleError> {
        let event = &order.event;
        let correlation_id = event
            .metadata
            .correlation_id
            .clone()
            .unwrap_or_else(|| event.event_id.to_string());
        let ctx = CommandContext::system(EXECUTION_ROLE, correlation_id)
            .caused_by(event.event_id.to_string());
        let result = self
            .agents
            .execute(
                &event.aggregate_id,
                || AgentCommand::FillOrder {
                    order_id: order.order_id.clone(),
                    at: (self.clock)(),
                },
                &ctx,
            )
            .await;
        match result {
            Ok(_) => {
                self.filled.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_FILLS).increment(1);
                let latency = ((self.clock)() - order.placed_at).as_seconds_f64();
                metrics::histogram!(METRIC_TICK_TO_FILL).record(latency.max(0.0));
                tracing::debug!(order_id = %order.order_id, "order filled");
                Ok(())
            }
            Err(CommandError::Rejected(AgentError::OrderNotOpen { .. })) => {
                self.already_settled.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_ALREADY_SETTLED).increment(1);
                Ok(())
            }
            Err(CommandError::Rejected(refused)) => {
                // Retrying cannot help, and holding every later order back for it would lose far more.
                self.refused.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_REFUSED).increment(1);
                tracing::error!(
                    agent_id = %event.aggregate_id,
                    order_id = %order.order_id,
                    code = refused.code(),
                    error = %refused,
                    "the domain refuses to fill this order; it stays open"
                );
                Ok(())
            }
            Err(e @ (CommandError::Conflict { .. } | CommandError::Store(_))) => {
                Err(RoleError::Handler(Box::new(e)))
            }
        }
    }
}

#[async_trait]
impl RoleHandler for Filler {
    type Item = Arc<LoggedEvent>;

    async fn handle(&self, page: &[Arc<LoggedEvent>]) -> Result<(), RoleError> {
        let mut by_agent: BTreeMap<&str, Vec<Placed>> = BTreeMap::new();
        for event in page {
            if let Some(AgentEvent::OrderPlaced {
                order_id,
                placed_at,
                ..
            }) = event.event.as_agent()
            {
                by_agent
                    .entry(event.aggregate_id.as_str())
                    .or_default()
                    .push(Placed {
                        event: Arc::clone(event),
                        order_id: order_id.clone(),
                        placed_at: *placed_at,
                    });
            }
        }
        futures::stream::iter(by_agent.into_values())
            .map(|orders| self.fill_all(orders))
            .buffer_unordered(FILL_CONCURRENCY)
            .try_collect::<()>()
            .await
    }
}
