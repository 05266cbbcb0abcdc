//! The runtime role's tick worker: takes `AgentTick`s from the durable work-queue consumer `runtime` on `<P>_TICKS`
//! (several workers share it; each tick goes to one of them), observes the market at the tick's scheduled time and
//! records the run with `RecordRun` (specs/01 §3.2). A run whose strategy signals records its order (placed or
//! rejected by risk) in the same commit; the execution role fills it.
//!
//! Exactly-once effects on top of at-least-once delivery: a tick is acked only after its run committed, and a
//! redelivered tick is rejected by the Agent aggregate (`tick_already_run`) and then acked. Anything that may succeed
//! later (a conflict after the bounded retries, a store or market failure) is nak'ed with a delay; a tick that can
//! never succeed (malformed, or not a valid run of that agent) is terminated, so it is not retried forever.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use strom_domain::{
    Agent, AgentCommand, AgentError, AgentEvent, AgentState, DomainError, FillModel, Symbol,
};
use tokio::time::Instant;
use tracing::Instrument;

use crate::bus::{Bus, BusError, Consumer, ConsumerSpec, Delivery, StreamKind};
use crate::market::MarketData;
use crate::scheduler::AgentTick;
use crate::service::{AggregateService, CommandContext, CommandError, Executed};
use crate::store::Clock;

/// The durable consumer all runtime workers share (specs/04 §4).
pub const RUNTIME_CONSUMER: &str = "runtime";
/// The role name in `actor` metadata (`system:runtime`).
pub const RUNTIME_ROLE: &str = "runtime";
/// Delay before a tick that failed for a passing reason comes back: long enough for a conflicting command to finish
/// or a database failover to progress, short enough that the run is still close to its scheduled time.
pub const NAK_DELAY: Duration = Duration::from_secs(1);
/// Ticks one worker processes at once. A tick is two short database round trips (load, append); 32 in flight keep a
/// 2-core Postgres busy without queueing on a default-sized pool, and match the bus's pull batch so buffered ticks
/// do not wait out their ack wait behind a slow one.
pub const MAX_CONCURRENT_TICKS: usize = 32;
/// Longest wait for a tick in one pull; the loop also wakes for shutdown and finished ticks, so this only bounds how
/// stale an idle pull request gets.
pub const FETCH_WAIT: Duration = Duration::from_secs(5);
/// Pause before re-opening the consumer or pulling again after a bus failure (NATS restarting).
pub const CONSUMER_RETRY: Duration = Duration::from_secs(1);
/// Most (agent, session) → symbol entries cached. A session's symbol cannot change (config updates need a stopped
/// agent, and a restart is a new session), so entries never go stale; the cache is cleared when full. 100,000 entries
/// are a few MB and cover ten times the 10,000-agent target.
pub const SYMBOL_CACHE_MAX: usize = 100_000;

/// Worker settings; [`Default`] is the contract's consumer (`runtime`, ack wait 30 s, max deliver 5) and the zero
/// fill model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The durable consumer to share. Tests shorten its ack wait.
    pub consumer: ConsumerSpec,
    /// Slippage and fee every order a run places will fill with (`STROM_FILL_SLIPPAGE_BPS`, `STROM_FILL_FEE_BPS`);
    /// recorded on the order, so the fill never depends on the filling process's settings.
    pub fill_model: FillModel,
    /// See [`NAK_DELAY`].
    pub nak_delay: Duration,
    /// See [`MAX_CONCURRENT_TICKS`].
    pub max_concurrent_ticks: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            consumer: ConsumerSpec::new(StreamKind::Ticks, RUNTIME_CONSUMER),
            fill_model: FillModel::default(),
            nak_delay: NAK_DELAY,
            max_concurrent_ticks: MAX_CONCURRENT_TICKS,
        }
    }
}

/// What became of one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    /// `AgentRunRecorded` committed. Ack.
    Recorded,
    /// Nothing to do: `tick_already_run` (a redelivery), `agent_not_running` (stopped, or an old session) or
    /// `agent_not_found`. Ack.
    Ignored(&'static str),
    /// May succeed later (the reason says why it did not now). Nak with a delay.
    Retry(&'static str),
    /// Can never succeed: `malformed` payload, `invalid` run (e.g. a scheduled time off the agent's schedule). Term.
    Dropped(&'static str),
}

/// Counters of one worker (Prometheus metrics are process-wide; these are per worker, for tests and health).
#[derive(Debug, Default)]
pub struct RuntimeStats {
    recorded: AtomicU64,
    already_run: AtomicU64,
    not_running: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
}

/// A copy of [`RuntimeStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeCounts {
    pub recorded: u64,
    /// Ignored as `tick_already_run`.
    pub already_run: u64,
    /// Ignored as `agent_not_running` or `agent_not_found`.
    pub not_running: u64,
    /// Nak'ed for a retry.
    pub retried: u64,
    /// Terminated (malformed, invalid, or out of deliveries).
    pub dropped: u64,
}

impl RuntimeStats {
    pub fn snapshot(&self) -> RuntimeCounts {
        RuntimeCounts {
            recorded: self.recorded.load(Ordering::Relaxed),
            already_run: self.already_run.load(Ordering::Relaxed),
            not_running: self.not_running.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// One runtime worker. Build with [`RuntimeWorker::new`], run with [`RuntimeWorker::run`]; run several (in one
/// process or many) to share the ticks.
pub struct RuntimeWorker {
    bus: Arc<dyn Bus>,
    agents: Arc<AggregateService<Agent>>,
    market: Arc<dyn MarketData>,
    clock: Clock,
    config: RuntimeConfig,
    stats: Arc<RuntimeStats>,
    symbols: Mutex<BTreeMap<(String, u64), Symbol>>,
}

/// What woke the worker loop.
enum Step {
    Shutdown,
    /// A tick finished; its agent, if it parsed.
    Settled(Option<String>),
    Resume,
    Pulled(Result<Option<Delivery>, BusError>),
}

impl RuntimeWorker {
    /// A worker taking ticks from `bus` (topology must exist), recording runs through `agents`, observing `market`,
    /// stamping `started_at`/`completed_at` from `clock`.
    pub fn new(
        bus: Arc<dyn Bus>,
        agents: Arc<AggregateService<Agent>>,
        market: Arc<dyn MarketData>,
        clock: Clock,
        config: RuntimeConfig,
    ) -> Self {
        Self {
            bus,
            agents,
            market,
            clock,
            config,
            stats: Arc::default(),
            symbols: Mutex::default(),
        }
    }

    pub fn stats(&self) -> Arc<RuntimeStats> {
        Arc::clone(&self.stats)
    }

    /// Consumes ticks until `shutdown` resolves, then finishes (and settles) the ticks it already pulled and returns.
    /// Bus failures are retried every [`CONSUMER_RETRY`].
    ///
    /// Ticks of one agent are run one at a time, in the order this worker received them: one pulled while another
    /// of the same agent is running waits its turn (otherwise the later one could commit first and the earlier one
    /// would be refused as `tick_already_run`). Different agents run concurrently, up to
    /// [`RuntimeConfig::max_concurrent_ticks`] ticks held in all.
    ///
    /// # Errors
    /// The consumer configuration is refused (invalid, or overlapping another consumer of the work queue): retrying
    /// cannot help.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), BusError> {
        tokio::pin!(shutdown);
        let mut consumer: Option<Box<dyn Consumer>> = None;
        let mut paused_until: Option<Instant> = None;
        let mut in_flight = FuturesUnordered::new();
        let mut lanes = Lanes::default();
        loop {
            if paused_until.is_some_and(|until| Instant::now() >= until) {
                paused_until = None;
            }
            if consumer.is_none() && paused_until.is_none() {
                match self.bus.consumer(self.config.consumer.clone()).await {
                    Ok(opened) => consumer = Some(opened),
                    Err(
                        e @ (BusError::InvalidConsumer { .. }
                        | BusError::WorkQueueOverlap { .. }
                        | BusError::Name(_)),
                    ) => {
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "runtime cannot open its tick consumer; retrying");
                        paused_until = Some(Instant::now() + CONSUMER_RETRY);
                    }
                }
            }
            let held = in_flight.len() + lanes.parked;
            let can_pull = consumer.is_some()
                && paused_until.is_none()
                && held < self.config.max_concurrent_ticks.max(1);
            let step = tokio::select! {
                biased;
                () = &mut shutdown => Step::Shutdown,
                Some(agent) = in_flight.next(), if !in_flight.is_empty() => Step::Settled(agent),
                () = sleep_until(paused_until) => Step::Resume,
                pulled = pull(&mut consumer), if can_pull => Step::Pulled(pulled),
            };
            match step {
                Step::Shutdown => break,
                Step::Resume | Step::Pulled(Ok(None)) => {}
                Step::Settled(agent) => {
                    if let Some((delivery, tick)) = agent.and_then(|a| lanes.finished(&a)) {
                        in_flight.push(self.process(delivery, Ok(tick)));
                    }
                }
                Step::Pulled(Ok(Some(delivery))) => match self.parse(&delivery) {
                    Ok(tick) => {
                        if let Some((delivery, tick)) = lanes.admit(delivery, tick) {
                            in_flight.push(self.process(delivery, Ok(tick)));
                        }
                    }
                    Err(reason) => in_flight.push(self.process(delivery, Err(reason))),
                },
                Step::Pulled(Err(e)) => {
                    tracing::warn!(error = %e, "runtime cannot pull ticks; retrying");
                    if matches!(e, BusError::ConsumerClosed) {
                        consumer = None;
                    }
                    paused_until = Some(Instant::now() + CONSUMER_RETRY);
                }
            }
        }
        // Stop pulling; ticks a pull fetched but did not hand over yet come back after the ack wait. Everything
        // already handed over is run and settled, waiting ticks included (they are quick, and dropping them could
        // let a later tick of the same agent, run elsewhere, overtake them).
        drop(consumer);
        while let Some(agent) = in_flight.next().await {
            if let Some((delivery, tick)) = agent.and_then(|a| lanes.finished(&a)) {
                in_flight.push(self.process(delivery, Ok(tick)));
            }
        }
        Ok(())
    }

    /// Processes one delivery and settles it (ack, nak with delay, or term).
    pub async fn handle(&self, delivery: Delivery) {
        let parsed = self.parse(&delivery);
        self.process(delivery, parsed).await;
    }

    /// Settles a delivery given its parse result; returns the tick's agent, if it parsed.
    async fn process(
        &self,
        delivery: Delivery,
        parsed: Result<AgentTick, String>,
    ) -> Option<String> {
        let tick = match parsed {
            Ok(tick) => tick,
            Err(reason) => {
                tracing::warn!(subject = %delivery.subject, stream_sequence = delivery.stream_sequence, %reason, "malformed tick terminated");
                self.count(&TickOutcome::Dropped("malformed"));
                if let Err(e) = delivery.term().await {
                    tracing::warn!(error = %e, "could not terminate a malformed tick; it will come back");
                }
                return None;
            }
        };
        let span = tracing::info_span!(
            "tick",
            agent_id = %tick.agent_id,
            session = tick.session,
            tick_no = tick.tick_no,
            correlation_id = %tick.correlation_id,
        );
        self.settle(delivery, &tick).instrument(span).await;
        Some(tick.agent_id)
    }

    fn parse(&self, delivery: &Delivery) -> Result<AgentTick, String> {
        let tick = AgentTick::parse(&delivery.payload).map_err(|e| e.to_string())?;
        let expected = self
            .bus
            .subjects()
            .tick(&tick.agent_id)
            .map_err(|e| e.to_string())?;
        if delivery.subject != expected {
            return Err(format!(
                "tick for agent {} arrived on {}",
                tick.agent_id, delivery.subject
            ));
        }
        Ok(tick)
    }

    async fn settle(&self, delivery: Delivery, tick: &AgentTick) {
        let mut outcome = self.run_tick(tick).await;
        let last_delivery = delivery.delivery_count >= u64::from(self.config.consumer.max_deliver);
        if let (TickOutcome::Retry(reason), true) = (&outcome, last_delivery) {
            tracing::error!(
                reason,
                deliveries = delivery.delivery_count,
                "tick failed on its last delivery; dropped"
            );
            outcome = TickOutcome::Dropped("retries_exhausted");
        }
        self.count(&outcome);
        let settled = match outcome {
            TickOutcome::Recorded | TickOutcome::Ignored(_) => delivery.ack().await,
            TickOutcome::Retry(_) => delivery.nak(Some(self.config.nak_delay)).await,
            TickOutcome::Dropped(_) => delivery.term().await,
        };
        if let Err(e) = settled {
            // Not fatal: an unsettled tick is redelivered after the ack wait, and its run is idempotent.
            tracing::warn!(error = %e, "could not settle the tick; it will be redelivered");
        }
    }

    fn count(&self, outcome: &TickOutcome) {
        let stats = &self.stats;
        match outcome {
            TickOutcome::Recorded => {
                stats.recorded.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("strom_runs_recorded_total").increment(1);
            }
            TickOutcome::Ignored(reason) => {
                let counter = if *reason == "tick_already_run" {
                    &stats.already_run
                } else {
                    &stats.not_running
                };
                counter.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("strom_ticks_ignored_total", "reason" => *reason).increment(1);
            }
            TickOutcome::Retry(reason) => {
                stats.retried.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("strom_ticks_retried_total", "reason" => *reason).increment(1);
            }
            TickOutcome::Dropped(reason) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("strom_ticks_dropped_total", "reason" => *reason).increment(1);
            }
        }
    }

    /// Runs one tick without settling it: observe the market at `scheduled_at`, then `RecordRun`. Public so the
    /// caller decides what to do with the delivery (tests simulate a worker crashing between commit and ack).
    pub async fn run_tick(&self, tick: &AgentTick) -> TickOutcome {
        let started_at = (self.clock)();
        let symbol = match self.symbol_of(tick).await {
            Ok(symbol) => symbol,
            Err(outcome) => return outcome,
        };
        let observation = match self.market.observe(&symbol, tick.scheduled_at).await {
            Ok(observation) => observation,
            Err(e) => {
                tracing::warn!(error = %e, "no observation for the tick; retrying later");
                return TickOutcome::Retry("no_price");
            }
        };
        let completed_at = (self.clock)().max(started_at);
        let ctx = CommandContext::system(RUNTIME_ROLE, tick.correlation_id.clone())
            .caused_by(tick.msg_id());
        let result = self
            .agents
            .execute(
                &tick.agent_id,
                || AgentCommand::RecordRun {
                    session: tick.session,
                    tick_no: tick.tick_no,
                    scheduled_at: tick.scheduled_at,
                    started_at,
                    completed_at,
                    observation: observation.clone(),
                    fill_model: self.config.fill_model.clone(),
                    correlation_id: tick.correlation_id.clone(),
                },
                &ctx,
            )
            .await;
        if let Ok(executed) = &result {
            count_orders(&executed.events);
        }
        let outcome = outcome_of(result);
        if outcome == TickOutcome::Recorded {
            let to_run = ((self.clock)() - tick.emitted_at).as_seconds_f64();
            metrics::histogram!("strom_tick_to_run_seconds").record(to_run.max(0.0));
            tracing::debug!(price = %observation.price, "run recorded");
        }
        outcome
    }

    /// The agent's symbol for the tick's session, loading the agent on a cache miss. A tick for an agent that is not
    /// running that session is settled here without a command.
    async fn symbol_of(&self, tick: &AgentTick) -> Result<Symbol, TickOutcome> {
        let key = (tick.agent_id.clone(), tick.session);
        if let Some(symbol) = self.cached_symbols().get(&key) {
            return Ok(symbol.clone());
        }
        let agent = match self.agents.load(&tick.agent_id).await {
            Ok((agent, _)) => agent,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the agent; retrying later");
                return Err(TickOutcome::Retry("store_error"));
            }
        };
        let Some(config) = agent.config() else {
            return Err(TickOutcome::Ignored("agent_not_found"));
        };
        if agent.state() != AgentState::Running || agent.session() != tick.session {
            return Err(TickOutcome::Ignored("agent_not_running"));
        }
        let symbol = config.symbol.clone();
        let mut cache = self.cached_symbols();
        if cache.len() >= SYMBOL_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, symbol.clone());
        Ok(symbol)
    }

    fn cached_symbols(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u64), Symbol>> {
        // The map is only ever inserted into or cleared whole: a poisoned lock's data is still consistent.
        self.symbols
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Per-agent lanes of one worker: which agents have a tick running, and the ticks waiting behind it.
#[derive(Default)]
struct Lanes {
    busy: BTreeMap<String, VecDeque<(Delivery, AgentTick)>>,
    /// Ticks waiting in all lanes (they count towards the worker's bound).
    parked: usize,
}

impl Lanes {
    /// The tick to run now, or `None` if it waits behind another tick of its agent.
    fn admit(&mut self, delivery: Delivery, tick: AgentTick) -> Option<(Delivery, AgentTick)> {
        match self.busy.get_mut(&tick.agent_id) {
            Some(waiting) => {
                waiting.push_back((delivery, tick));
                self.parked += 1;
                None
            }
            None => {
                self.busy.insert(tick.agent_id.clone(), VecDeque::new());
                Some((delivery, tick))
            }
        }
    }

    /// `agent`'s running tick finished: its next waiting tick, if any (the lane stays busy), else the lane frees.
    fn finished(&mut self, agent: &str) -> Option<(Delivery, AgentTick)> {
        let waiting = self.busy.get_mut(agent)?;
        match waiting.pop_front() {
            Some(next) => {
                self.parked -= 1;
                Some(next)
            }
            None => {
                self.busy.remove(agent);
                None
            }
        }
    }
}

/// Counts the orders a run recorded: `strom_orders_placed_total`, `strom_orders_rejected_total{reason}`.
fn count_orders(events: &[AgentEvent]) {
    for event in events {
        match event {
            AgentEvent::OrderPlaced { .. } => {
                metrics::counter!("strom_orders_placed_total").increment(1);
            }
            AgentEvent::OrderRejected { reason_code, .. } => {
                metrics::counter!("strom_orders_rejected_total", "reason" => reason_code.as_str())
                    .increment(1);
            }
            _ => {}
        }
    }
}

fn outcome_of(result: Result<Executed<Agent>, CommandError<AgentError>>) -> TickOutcome {
    match result {
        Ok(_) => TickOutcome::Recorded,
        Err(CommandError::Rejected(e)) => match e {
            AgentError::TickAlreadyRun { .. } => TickOutcome::Ignored("tick_already_run"),
            AgentError::AgentNotRunning { .. } | AgentError::AgentArchived { .. } => {
                TickOutcome::Ignored("agent_not_running")
            }
            AgentError::AgentNotFound => TickOutcome::Ignored("agent_not_found"),
            other => {
                tracing::warn!(code = other.code(), error = %other, "tick is not a valid run; dropped");
                TickOutcome::Dropped("invalid")
            }
        },
        Err(e @ CommandError::Conflict { .. }) => {
            tracing::warn!(error = %e, "run lost every retry to concurrent commands; retrying later");
            TickOutcome::Retry("conflict")
        }
        Err(e @ CommandError::Store(_)) => {
            tracing::warn!(error = %e, "event store failed; retrying later");
            TickOutcome::Retry("store_error")
        }
    }
}

/// The next delivery, or never if there is no consumer (the select branch is disabled then anyway).
async fn pull(consumer: &mut Option<Box<dyn Consumer>>) -> Result<Option<Delivery>, BusError> {
    match consumer {
        Some(consumer) => consumer.next(FETCH_WAIT).await,
        None => std::future::pending().await,
    }
}

/// Resolves at `until`, or never without one.
async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}
