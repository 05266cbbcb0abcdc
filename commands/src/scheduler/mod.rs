//! The scheduler role: emits an `AgentTick` on `<prefix>.ticks.<agent_id>` whenever a running agent's next tick is
//! due (specs/01 §3.2, specs/04 §5).
//!
//! It learns which agents run by following the event log (`EventLog::read_after`, the xmin-watermark reader): from
//! the start when it becomes active, then incrementally. One loop owns all agents — a timer queue ordered by due time,
//! no task per agent — and publishes each round's due ticks concurrently with a bound, so 10,000 agents at 1 s cost
//! one sorted heap and a few hundred in-flight publishes, not 10,000 timers.
//!
//! Exactly-once emission rests on the message id `<agent_id>/<session>/<tick_no>`: JetStream drops a second publish
//! of a tick, so a restarted scheduler (or two briefly overlapping ones) cannot double-tick. After downtime only the
//! latest due tick per agent is emitted; the older ones are counted as skipped, never replayed in a burst.
//!
//! Only one instance is active (the singleton lease of [`crate::lease`]); the clock is injected, so tests and demos
//! control time.

mod schedule;
mod tick;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use tokio::time::Instant;

pub use tick::{tick_msg_id, AgentTick, TickError};

use self::schedule::{PlannedTick, Schedule};
use crate::bus::{Bus, BusError, Headers, PublishAck, CORRELATION_ID_HEADER};
use crate::lease::{Lease, Singleton, LEADER_RETRY, LEASE_CHECK};
use crate::log::{
    EventLog, FollowError, Follower, FollowerConfig, LogPosition, LoggedEvent, PageHandler,
    MAX_LOG_PAGE,
};
use crate::store::Clock;

/// The scheduler's role name in its lease (`scheduler:<nats_prefix>`).
pub const SCHEDULER_ROLE: &str = "scheduler";

/// How often the log is read when nothing is due sooner. A start is noticed within this (plus the commit), which is
/// how late tick 1 of a session can be, since its due time is the (truncated) start itself; 50 ms keeps that well
/// inside the 100 ms lateness budget, at 20 cheap indexed queries per second.
pub const LOG_POLL: Duration = Duration::from_millis(50);
/// Log pages read per round once caught up: at 10,000 runs/s a round sees about one page, so 4 absorb a burst while a
/// large backlog cannot delay due ticks by more than a few pages' reading.
pub const MAX_LOG_PAGES_PER_ROUND: usize = 4;
/// Most ticks taken from the queue per round: the whole one-second burst of the 10,000-agent target, so the publish
/// pipeline does not drain and refill between rounds. Between rounds the log is read and shutdown checked; a round
/// of this size takes a few hundred milliseconds against NATS, so neither waits long.
pub const MAX_TICKS_PER_ROUND: usize = 10_000;
/// Publishes awaiting their JetStream ack at once. A burst of 10,000 agents due on the same second is
/// server-bound: on the 2-core dev box (release build, local NATS 2.9 with file storage, machine shared with other
/// builds) it took 0.36–0.41 s with 256 in flight and 0.28–0.35 s with 2,048. 1,024 keeps the pipeline full while
/// bounding the memory and the server's pending work if NATS slows down.
pub const PUBLISH_CONCURRENCY: usize = 1_024;
/// How long a tick whose publish failed waits before it is tried again (a NATS restart takes seconds; retrying
/// sooner only adds load). By then a later tick may be due, which replaces it.
pub const PUBLISH_RETRY: Duration = Duration::from_secs(1);
/// Pause before reading the log again after a read failed (a Postgres restart, an event that does not decode),
/// doubled on each further failure up to [`LOG_RETRY_MAX`]: a lasting failure costs one warning per minute, not one
/// per poll, while ticks go on from what the scheduler knows.
const LOG_RETRY: Duration = Duration::from_secs(1);
/// Longest pause between failing log reads.
const LOG_RETRY_MAX: Duration = Duration::from_secs(60);
/// Gauge: events in the log the scheduler has not read yet.
pub const LAG_METRIC: &str = "strom_scheduler_lag_events";

/// Timing knobs; [`Default`] gives the production values (tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// See [`LOG_POLL`].
    pub log_poll: Duration,
    /// See [`LEADER_RETRY`].
    pub leader_retry: Duration,
    /// See [`LEASE_CHECK`].
    pub lock_check: Duration,
    /// See [`PUBLISH_RETRY`].
    pub publish_retry: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            log_poll: LOG_POLL,
            leader_retry: LEADER_RETRY,
            lock_check: LEASE_CHECK,
            publish_retry: PUBLISH_RETRY,
        }
    }
}

/// Counters of one scheduler instance (the Prometheus metrics are process-wide; these are per instance, for tests,
/// health checks and the demo).
#[derive(Debug)]
pub struct SchedulerStats {
    emitted: AtomicU64,
    duplicates: AtomicU64,
    skipped: AtomicU64,
    publish_failures: AtomicU64,
    running_agents: AtomicU64,
    active: AtomicBool,
    /// Clock reading (Unix ms) of the last completed round; `i64::MIN` before the first.
    last_round_at_ms: AtomicI64,
}

impl Default for SchedulerStats {
    fn default() -> Self {
        Self {
            emitted: AtomicU64::default(),
            duplicates: AtomicU64::default(),
            skipped: AtomicU64::default(),
            publish_failures: AtomicU64::default(),
            running_agents: AtomicU64::default(),
            active: AtomicBool::default(),
            last_round_at_ms: AtomicI64::new(i64::MIN),
        }
    }
}

/// A copy of [`SchedulerStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerCounts {
    /// Ticks this instance stored on the bus.
    pub emitted: u64,
    /// Ticks this instance published that the bus already had (deduplicated by message id).
    pub duplicates: u64,
    /// Due ticks passed over because a later one was due by the time they could be emitted.
    pub skipped: u64,
    pub publish_failures: u64,
    /// Agents running as of the log read so far.
    pub running_agents: u64,
    /// Whether this instance currently holds leadership.
    pub active: bool,
    /// The clock reading of the last completed round: every tick due by then has been handed to the bus (published,
    /// or queued for a retry). `None` before the first round.
    pub last_round_at: Option<DateTime<Utc>>,
}

impl SchedulerStats {
    pub fn snapshot(&self) -> SchedulerCounts {
        SchedulerCounts {
            emitted: self.emitted.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            publish_failures: self.publish_failures.load(Ordering::Relaxed),
            running_agents: self.running_agents.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            last_round_at: match self.last_round_at_ms.load(Ordering::Relaxed) {
                i64::MIN => None,
                ms => DateTime::from_timestamp_millis(ms),
            },
        }
    }
}

/// A clock reading the system's UTC time: the production clock of the scheduler and the runtime.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The scheduler role. Build with [`Scheduler::new`], run with [`Scheduler::run`].
pub struct Scheduler {
    log: Arc<dyn EventLog>,
    bus: Arc<dyn Bus>,
    singleton: Singleton,
    clock: Clock,
    config: SchedulerConfig,
    stats: Arc<SchedulerStats>,
}

/// Why the active phase ended.
enum Exit {
    Shutdown,
    LockLost,
}

impl Scheduler {
    /// A scheduler reading agents from `log`, publishing on `bus` (whose topology must exist), active while it
    /// holds the `singleton` lease, reading time from `clock`.
    pub fn new(
        log: Arc<dyn EventLog>,
        bus: Arc<dyn Bus>,
        singleton: Singleton,
        clock: Clock,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            log,
            bus,
            singleton,
            clock,
            config,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<SchedulerStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` resolves: waits for leadership, then schedules; if leadership is lost it forgets its
    /// state and waits again. Failures (log reads, publishes, the lock connection) are logged and retried, never
    /// fatal. Publishes in flight when `shutdown` resolves are finished first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let Some(mut lease) = self
                .singleton
                .acquire(self.config.leader_retry, &mut shutdown)
                .await
            else {
                return;
            };
            self.set_active(true);
            let exit = self.run_active(&mut lease, &mut shutdown).await;
            self.set_active(false);
            lease.release().await;
            match exit {
                Exit::Shutdown => return,
                // Sit out one retry interval before competing again: the instance whose lock session died is the
                // likely unhealthy one, so a standby gets the first chance.
                Exit::LockLost => tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(self.config.leader_retry) => {}
                },
            }
        }
    }

    fn set_active(&self, active: bool) {
        self.stats.active.store(active, Ordering::Relaxed);
        metrics::gauge!("strom_scheduler_active").set(if active { 1.0 } else { 0.0 });
    }

    async fn run_active(
        &self,
        lease: &mut Lease,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Exit {
        let mut schedule = Schedule::default();
        let mut follower = Follower::new(
            "scheduler",
            Arc::clone(&self.log),
            LogPosition::START,
            None,
            FollowerConfig {
                page_size: MAX_LOG_PAGE,
                idle_poll: self.config.log_poll,
                error_backoff_max: LOG_RETRY,
                lag_gauge: Some((LAG_METRIC, Vec::new())),
            },
        );
        // The whole log first: a tick planned from a half-read log could belong to an agent stopped later on.
        let mut backoff = LOG_RETRY;
        while let Err(e) = self.follow(&mut follower, &mut schedule, usize::MAX).await {
            tracing::warn!(error = %e, retry_in = ?backoff, "scheduler cannot read the event log; no ticks until it can");
            tokio::select! {
                () = &mut *shutdown => return Exit::Shutdown,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(LOG_RETRY_MAX);
        }
        tracing::info!(
            running_agents = schedule.running_agents(),
            "scheduler caught up with the event log"
        );
        let mut next_lock_check = Instant::now() + self.config.lock_check;
        let (mut next_log_read, mut log_backoff) = (Instant::now(), LOG_RETRY);
        loop {
            if Instant::now() >= next_lock_check {
                if !lease.still_held().await {
                    return Exit::LockLost;
                }
                next_lock_check = Instant::now() + self.config.lock_check;
            }
            if Instant::now() >= next_log_read {
                match self
                    .follow(&mut follower, &mut schedule, MAX_LOG_PAGES_PER_ROUND)
                    .await
                {
                    Ok(()) => log_backoff = LOG_RETRY,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?log_backoff, "scheduler cannot read the event log; ticks continue from what it knows");
                        next_log_read = Instant::now() + log_backoff;
                        log_backoff = (log_backoff * 2).min(LOG_RETRY_MAX);
                    }
                }
            }
            let now = (self.clock)();
            let due = schedule.take_due(now, MAX_TICKS_PER_ROUND);
            let more = due.len() == MAX_TICKS_PER_ROUND;
            if !due.is_empty() {
                self.publish_all(&mut schedule, due).await;
            }
            if !more {
                self.stats
                    .last_round_at_ms
                    .store(now.timestamp_millis(), Ordering::Relaxed);
            }
            let wait = if more {
                Duration::ZERO
            } else {
                self.idle_wait(&schedule)
                    .min(next_lock_check - Instant::now())
            };
            tokio::select! {
                () = &mut *shutdown => return Exit::Shutdown,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Until the next due tick, but at most one log poll.
    fn idle_wait(&self, schedule: &Schedule) -> Duration {
        let poll = self.config.log_poll;
        match schedule.next_wake() {
            None => poll,
            Some(wake_at) => (wake_at - (self.clock)())
                .to_std()
                .unwrap_or_default()
                .min(poll),
        }
    }

    /// Applies at most `max_pages` pages of the log to `schedule`. An event that does not decode stops the follower
    /// before it (it is never skipped); ticks go on from what the schedule knows until it can be read.
    async fn follow(
        &self,
        follower: &mut Follower,
        schedule: &mut Schedule,
        max_pages: usize,
    ) -> Result<(), FollowError> {
        let result = follower
            .step(&mut ScheduleFeed { schedule }, max_pages)
            .await;
        let running = schedule.running_agents() as u64;
        self.stats.running_agents.store(running, Ordering::Relaxed);
        metrics::gauge!("strom_scheduler_running_agents").set(running as f64);
        result.map(|_| ())
    }

    /// Publishes `ticks` with at most [`PUBLISH_CONCURRENCY`] in flight, then queues each agent's next tick (or the
    /// same one again later, if its publish failed).
    async fn publish_all(&self, schedule: &mut Schedule, ticks: Vec<PlannedTick>) {
        let skipped: u64 = ticks.iter().map(|t| t.skipped).sum();
        if skipped > 0 {
            self.stats.skipped.fetch_add(skipped, Ordering::Relaxed);
            metrics::counter!("strom_ticks_skipped_total").increment(skipped);
            tracing::warn!(
                skipped,
                "due ticks skipped: only the latest due tick per agent is emitted"
            );
        }
        let results: Vec<_> = futures::stream::iter(ticks)
            .map(|tick| self.publish_one(tick))
            .buffer_unordered(PUBLISH_CONCURRENCY)
            .collect()
            .await;
        for (tick, result) in results {
            match result {
                Ok(ack) => {
                    let counter = if ack.duplicate {
                        &self.stats.duplicates
                    } else {
                        &self.stats.emitted
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    schedule.emitted(tick);
                }
                Err(BusError::Name(e)) => {
                    tracing::error!(agent_id = %tick.agent_id, error = %e, "agent id cannot be a subject; the agent gets no ticks");
                }
                Err(e) => {
                    self.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("strom_tick_publish_failures_total").increment(1);
                    tracing::warn!(agent_id = %tick.agent_id, tick_no = tick.tick_no, error = %e, "tick not published; retrying");
                    let retry =
                        TimeDelta::from_std(self.config.publish_retry).unwrap_or(TimeDelta::MAX);
                    let wake_at = (self.clock)()
                        .checked_add_signed(retry)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                    schedule.retry(tick, wake_at);
                }
            }
        }
    }

    async fn publish_one(&self, tick: PlannedTick) -> (PlannedTick, Result<PublishAck, BusError>) {
        let subject = match self.bus.subjects().tick(&tick.agent_id) {
            Ok(subject) => subject,
            Err(e) => return (tick, Err(e.into())),
        };
        let message = AgentTick {
            agent_id: tick.agent_id.to_string(),
            session: tick.session,
            tick_no: tick.tick_no,
            scheduled_at: tick.scheduled_at,
            emitted_at: (self.clock)(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
        };
        let headers = Headers::from([(
            CORRELATION_ID_HEADER.to_owned(),
            message.correlation_id.clone(),
        )]);
        let result = self
            .bus
            .publish(&subject, &message.msg_id(), &headers, message.to_json())
            .await;
        if let Ok(ack) = &result {
            if !ack.duplicate {
                let lateness = (message.emitted_at - message.scheduled_at).as_seconds_f64();
                metrics::counter!("strom_ticks_emitted_total").increment(1);
                metrics::histogram!("strom_tick_lateness_seconds").record(lateness.max(0.0));
                tracing::debug!(
                    agent_id = %message.agent_id,
                    session = message.session,
                    tick_no = message.tick_no,
                    correlation_id = %message.correlation_id,
                    lateness_s = lateness,
                    "tick emitted"
                );
            } else {
                metrics::counter!("strom_ticks_duplicate_total").increment(1);
            }
        }
        (tick, result)
    }
}

/// Feeds log pages into the schedule.
struct ScheduleFeed<'a> {
    schedule: &'a mut Schedule,
}

#[async_trait]
impl PageHandler for ScheduleFeed<'_> {
    async fn handle(&mut self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, FollowError> {
        for event in page {
            self.schedule.apply(event);
        }
        Ok(page.last().map_or(LogPosition::START, |e| e.position))
    }
}
