//! Command services: the one way to run a command on an aggregate, whatever the event store behind it.
//!
//! [`AggregateService`] loads the aggregate's state, decides and applies the command (`Decider::execute`), appends
//! the events under optimistic concurrency and answers with the state after them. Loading costs the same whatever the aggregate's history: a
//! bounded in-process cache holds recent states, a miss reads the latest snapshot and only the events after it, and a
//! snapshot is taken every [`SNAPSHOT_EVERY`] events. The cache is trusted for commands and corrected by the store:
//! an append from a stale state meets the optimistic-concurrency conflict and the command is decided again on a
//! reloaded state; a refusal decided on a cached state is checked against the store before it is returned. Callers —
//! the API, the runtime worker, the demo — never see which backend is in use.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use strom_domain::{Agent, Backtest, Decider, EventMetadata, Logged, StromEvent};

use crate::log::{CommitSignal, StoreError};
use crate::store::{AppendError, EventStore};

/// Most attempts one command gets (the first try plus retries) when other commands keep committing to the same
/// aggregate first. A conflict means another command on that aggregate committed in between, so every lost
/// attempt is someone else's progress; real contention on one aggregate is a handful of writers (an API request,
/// a scheduler tick, a fill), which 5 attempts absorb. A command still losing after 5 rounds is on a hot aggregate
/// and should go back to its caller (HTTP 409 / a redelivered tick) rather than hold a task and a connection.
pub const MAX_COMMAND_ATTEMPTS: usize = 5;

/// A snapshot every this many events of an aggregate: a load reads at most this many events after the snapshot. An
/// Agent at one run a minute gets a snapshot every 100 minutes (a few kilobytes written), and a load applies at most
/// 99 events — well under a millisecond — whether the agent has run for a day or a year.
pub const SNAPSHOT_EVERY: u64 = 100;

/// Aggregate states kept per service (per aggregate type, per process). 100,000 covers ten times the 10,000-agent
/// target with every order of the last minutes; an Agent state is a few hundred bytes plus its price window, so the
/// cache stays within tens of megabytes. An evicted aggregate loads from its snapshot.
pub const AGGREGATE_CACHE_MAX: usize = 100_000;

/// Who asked for a command and why: the metadata every event of the command carries (specs/04 §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// Follows one request from HTTP through events, ticks and fills.
    pub correlation_id: String,
    /// Who asked: a JWT `sub`, or `system:<role>` for background roles.
    pub actor: String,
    /// The event or message that caused the command (a tick's msg id, an `OrderPlaced` event id).
    pub causation_id: Option<String>,
    /// The user on whose behalf `actor` acted, when that is not the actor itself (a linked Telegram chat acts for
    /// its user): metadata `user`.
    pub on_behalf_of: Option<String>,
}

impl CommandContext {
    pub fn new(correlation_id: impl Into<String>, actor: impl Into<String>) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            actor: actor.into(),
            causation_id: None,
            on_behalf_of: None,
        }
    }

    /// A context for a background role (`system:<role>`).
    pub fn system(role: &str, correlation_id: impl Into<String>) -> Self {
        Self::new(correlation_id, format!("system:{role}"))
    }

    /// The same context, naming what caused the command.
    #[must_use]
    pub fn caused_by(mut self, causation_id: impl Into<String>) -> Self {
        self.causation_id = Some(causation_id.into());
        self
    }

    /// The same context, acting on behalf of `user` (metadata `user`).
    #[must_use]
    pub fn on_behalf_of(mut self, user: impl Into<String>) -> Self {
        self.on_behalf_of = Some(user.into());
        self
    }

    fn metadata(&self) -> EventMetadata {
        let mut metadata = EventMetadata {
            causation_id: self.causation_id.clone(),
            ..EventMetadata::new(&self.correlation_id, &self.actor)
        };
        if let Some(user) = &self.on_behalf_of {
            metadata.extra.insert("user".to_owned(), user.clone());
        }
        metadata
    }
}

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
    /// The event store failed (connection, an undecodable stored event, an unexpected database error).
    #[error("event store failed: {0}")]
    Store(#[from] StoreError),
}

/// What a command did: its events, and the aggregate's state and version right after them (what responses show; no
/// reload is needed).
#[derive(Debug, Clone)]
pub struct Executed<A: Decider> {
    pub state: A,
    /// The aggregate's last sequence after the command (unchanged when the command decided no events).
    pub version: u64,
    pub events: Vec<<A as Decider>::Event>,
}

/// An aggregate's state at a version.
#[derive(Debug, Clone)]
struct Versioned<A> {
    state: A,
    version: u64,
}

/// Runs commands against aggregates of type `A` and loads their state. See the module docs.
pub struct AggregateService<A: Decider> {
    store: EventStore,
    cache: Mutex<LruCache<String, Versioned<A>>>,
    /// Events applied while loading (after a snapshot or a cached state), for the constant-cost check and metrics.
    replayed: AtomicU64,
}

impl<A> AggregateService<A>
where
    A: Logged + cqrs_es::Aggregate,
{
    pub fn new(store: EventStore) -> Self {
        let capacity = NonZeroUsize::new(AGGREGATE_CACHE_MAX).unwrap_or(NonZeroUsize::MIN);
        Self {
            store,
            cache: Mutex::new(LruCache::new(capacity)),
            replayed: AtomicU64::new(0),
        }
    }

    /// Events this service has applied to bring loaded states up to date (after a snapshot or a cached state) since
    /// it was built. Constant-cost loading keeps this below [`SNAPSHOT_EVERY`] per load.
    pub fn events_replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    fn cache(&self) -> MutexGuard<'_, LruCache<String, Versioned<A>>> {
        // Entries are replaced whole; a panic elsewhere cannot leave one half-written.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, aggregate_id: &str, state: &A, version: u64) {
        let mut cache = self.cache();
        let newer = cache
            .peek(aggregate_id)
            .is_none_or(|cached| cached.version < version);
        if newer {
            cache.put(
                aggregate_id.to_owned(),
                Versioned {
                    state: state.clone(),
                    version,
                },
            );
        }
    }

    /// The aggregate's current state and its last sequence (`A::default()` and 0 when it has no events): the cached or
    /// snapshotted state brought up to date with the events after it.
    ///
    /// # Errors
    /// The store failed or a stored event does not decode.
    pub async fn load(&self, aggregate_id: &str) -> Result<(A, u64), StoreError> {
        let cached = self.cache().get(aggregate_id).cloned();
        let base = match cached {
            Some(cached) => cached,
            None => self.snapshot_or_empty(aggregate_id).await?,
        };
        let fresh = self.catch_up(aggregate_id, base).await?;
        Ok((fresh.state, fresh.version))
    }

    /// The latest snapshot, or the empty state at version 0 when there is none.
    async fn snapshot_or_empty(&self, aggregate_id: &str) -> Result<Versioned<A>, StoreError> {
        Ok(match self.store.load_snapshot::<A>(aggregate_id).await? {
            Some((state, version)) => Versioned { state, version },
            None => Versioned {
                state: A::default(),
                version: 0,
            },
        })
    }

    /// `base` with the stored events after it applied (cached, and snapshotted when they were many).
    async fn catch_up(
        &self,
        aggregate_id: &str,
        mut base: Versioned<A>,
    ) -> Result<Versioned<A>, StoreError> {
        let events = self
            .store
            .events_after::<A>(aggregate_id, base.version)
            .await?;
        if events.is_empty() {
            self.remember(aggregate_id, &base.state, base.version);
            return Ok(base);
        }
        let read = events.len() as u64;
        for (sequence, event) in &events {
            if let Some(event) = A::unwrap(event) {
                base.state.evolve(event);
            }
            base.version = *sequence;
        }
        self.replayed.fetch_add(read, Ordering::Relaxed);
        metrics::counter!("strom_aggregate_events_replayed_total", "aggregate" => <A as Decider>::TYPE)
            .increment(read);
        if read >= SNAPSHOT_EVERY {
            self.snapshot(aggregate_id, &base.state, base.version).await;
        }
        self.remember(aggregate_id, &base.state, base.version);
        Ok(base)
    }

    /// Saves a snapshot; a failure only costs a longer load later, so it is logged, not returned.
    async fn snapshot(&self, aggregate_id: &str, state: &A, version: u64) {
        if let Err(e) = self.store.save_snapshot(aggregate_id, state, version).await {
            tracing::warn!(aggregate_type = <A as Decider>::TYPE, aggregate_id, error = %e, "snapshot not saved");
        }
    }

    /// Runs the command `command` builds (called once per attempt) on `aggregate_id`. See the module docs for how
    /// stale states are caught.
    ///
    /// # Errors
    /// [`CommandError::Rejected`] when the aggregate refuses the command, [`CommandError::Conflict`] when every
    /// attempt lost a race, [`CommandError::Store`] when the store failed.
    #[tracing::instrument(skip_all, fields(aggregate_type = <A as Decider>::TYPE, aggregate_id = aggregate_id))]
    pub async fn execute<F>(
        &self,
        aggregate_id: &str,
        mut command: F,
        ctx: &CommandContext,
    ) -> Result<Executed<A>, CommandError<<A as Decider>::Error>>
    where
        F: FnMut() -> <A as Decider>::Command,
    {
        metrics::counter!("strom_commands_total", "aggregate" => <A as Decider>::TYPE).increment(1);
        let result = self.attempts(aggregate_id, &mut command, ctx).await;
        if let Err(e) = &result {
            let outcome = match e {
                CommandError::Rejected(_) => "rejected",
                CommandError::Conflict { .. } => "conflict",
                CommandError::Store(_) => "store_error",
            };
            metrics::counter!("strom_commands_failed_total", "aggregate" => <A as Decider>::TYPE, "outcome" => outcome)
                .increment(1);
        }
        result
    }

    async fn attempts<F>(
        &self,
        aggregate_id: &str,
        command: &mut F,
        ctx: &CommandContext,
    ) -> Result<Executed<A>, CommandError<<A as Decider>::Error>>
    where
        F: FnMut() -> <A as Decider>::Command,
    {
        let mut cached = self.cache().get(aggregate_id).cloned();
        for attempt in 1..=MAX_COMMAND_ATTEMPTS {
            let trusted = cached.is_some();
            let mut base = match cached.take() {
                Some(base) => base,
                None => {
                    let snapshot = self.snapshot_or_empty(aggregate_id).await?;
                    self.catch_up(aggregate_id, snapshot).await?
                }
            };
            // Decided and applied in one step (`Decider::execute`); a refusal leaves the state as it was.
            let events = match base.state.execute(command()) {
                Ok(events) => events,
                Err(refusal) if trusted => {
                    // Decided on a cached state: refuse only if the store has nothing newer.
                    let fresh = self.catch_up(aggregate_id, base.clone()).await?;
                    if fresh.version == base.version {
                        return Err(CommandError::Rejected(refusal));
                    }
                    cached = Some(fresh);
                    continue;
                }
                Err(refusal) => return Err(CommandError::Rejected(refusal)),
            };
            match self.commit(aggregate_id, base, events, ctx).await {
                Ok(executed) => return Ok(executed),
                Err(AppendError::Conflict) => {
                    tracing::debug!(attempt, "command lost a race on its aggregate; reloading");
                    self.cache().pop(aggregate_id);
                    // Let the winner's task run before reloading; a conflict already means the aggregate moved on.
                    tokio::task::yield_now().await;
                }
                Err(AppendError::Store(e)) => {
                    // The append may or may not have happened: forget the state so the next command reads the store.
                    self.cache().pop(aggregate_id);
                    return Err(CommandError::Store(e));
                }
            }
        }
        tracing::warn!(
            attempts = MAX_COMMAND_ATTEMPTS,
            "command gave up after conflicts"
        );
        Err(CommandError::Conflict {
            aggregate_type: <A as Decider>::TYPE,
            aggregate_id: aggregate_id.to_owned(),
            attempts: MAX_COMMAND_ATTEMPTS,
        })
    }

    /// Appends `events`, decided on the state at `base.version` and already applied to `base.state`, and returns the
    /// state after them.
    async fn commit(
        &self,
        aggregate_id: &str,
        base: Versioned<A>,
        events: Vec<<A as Decider>::Event>,
        ctx: &CommandContext,
    ) -> Result<Executed<A>, AppendError> {
        if events.is_empty() {
            return Ok(Executed {
                state: base.state,
                version: base.version,
                events,
            });
        }
        let state = base.state;
        let logged: Vec<StromEvent> = events.iter().cloned().map(A::wrap).collect();
        self.store
            .append::<A>(aggregate_id, base.version, &logged, &ctx.metadata())
            .await?;
        let version = base.version + events.len() as u64;
        self.remember(aggregate_id, &state, version);
        if version / SNAPSHOT_EVERY > base.version / SNAPSHOT_EVERY {
            self.snapshot(aggregate_id, &state, version).await;
        }
        Ok(Executed {
            state,
            version,
            events,
        })
    }
}

/// The aggregates' services over one store.
pub struct CommandServices {
    pub agents: Arc<AggregateService<Agent>>,
    pub backtests: Arc<AggregateService<Backtest>>,
    store: EventStore,
}

impl CommandServices {
    pub fn new(store: &EventStore) -> Self {
        Self {
            agents: Arc::new(AggregateService::new(store.clone())),
            backtests: Arc::new(AggregateService::new(store.clone())),
            store: store.clone(),
        }
    }

    /// The store the commands go to.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Signalled after each of this process's commits (followers' wake-up).
    pub fn commits(&self) -> &CommitSignal {
        self.store.commits()
    }
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

    const ID: &str = "0b6c3c4e-8d7a-4a53-9a55-3f4c1d2e5a61";

    #[tokio::test]
    async fn commands_run_and_state_loads_on_the_memory_backend() {
        let services = CommandServices::new(&EventStore::memory());
        let ctx = CommandContext::new("corr-1", "alice");
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let executed = services
            .agents
            .execute(
                ID,
                || AgentCommand::CreateAgent {
                    agent_id: ID.into(),
                    owner: "alice".into(),
                    config: config(),
                    at,
                },
                &ctx,
            )
            .await
            .expect("created");
        assert_eq!(executed.version, 1);
        assert_eq!(executed.events.len(), 1);
        assert_eq!(executed.state.owner(), Some("alice"));
        assert_eq!(services.agents.load(ID).await.unwrap().1, 1);
        let err = services
            .agents
            .execute(
                ID,
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

    #[tokio::test]
    async fn a_refusal_decided_on_a_stale_cached_state_is_checked_against_the_store() {
        let store = EventStore::memory();
        let (this, other) = (CommandServices::new(&store), CommandServices::new(&store));
        let ctx = CommandContext::new("corr-1", "alice");
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let create = || AgentCommand::CreateAgent {
            agent_id: ID.into(),
            owner: "alice".into(),
            config: config(),
            at,
        };
        this.agents.execute(ID, create, &ctx).await.unwrap();
        this.agents
            .execute(ID, || AgentCommand::StartAgent { at }, &ctx)
            .await
            .unwrap();
        // Another process stops the agent; this one's cache still says "running".
        other
            .agents
            .execute(
                ID,
                || AgentCommand::StopAgent {
                    at,
                    reason: "elsewhere".into(),
                },
                &ctx,
            )
            .await
            .unwrap();
        let started = this
            .agents
            .execute(ID, || AgentCommand::StartAgent { at }, &ctx)
            .await
            .expect("the refusal (already running) is re-decided on the stored state");
        assert_eq!(started.version, 4);
        assert_eq!(started.state.session(), 2);
    }
}
