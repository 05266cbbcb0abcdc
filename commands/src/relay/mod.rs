//! The outbox relay: publishes every committed event of the global log to the bus, at least once and in order per
//! aggregate, on `<p>.events.<aggregate_type lowercase>.<aggregate_id>` with `Nats-Msg-Id` = event id (so the
//! stream drops republished copies).
//!
//! One relay is active at a time ([`Relay::postgres`]: a Postgres advisory lock; [`Relay::memory`]: no lock, see
//! there); others stand by and take over when the active one dies. The active relay reads the log after its
//! checkpoint `relay` one page at a time, publishes the page, waits for every ack, then saves the checkpoint. A
//! crash between publish and save republishes that page, which JetStream deduplicates. The log reader's xmin
//! watermark means a transaction that commits late (or rolls back) is never skipped (or never seen).
//!
//! [`ActiveRelay`] exposes the two halves of a step ([`ActiveRelay::publish_page`],
//! [`ActiveRelay::commit_checkpoint`]) so tests can stop between them, like a crash would.

mod envelope;
mod lag;
mod leadership;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::{Aggregate, Query};
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use uuid::Uuid;

pub use envelope::{EventEnvelope, EVENT_TYPE_HEADER, EVENT_VERSION_HEADER, SEQUENCE_HEADER};
pub use lag::LAG_COUNT_CAP;
pub use leadership::{LEASE_ROUND_TRIP_TIMEOUT, LOCK_NAMESPACE, LOCK_ROLE};

use self::lag::{LagProbe, LogLag, PgLag};
use self::leadership::{Leadership, Lease, PgLeadership, Unshared};
use crate::bus::{Bus, BusError, Headers, NameError, CORRELATION_ID_HEADER};
use crate::store::{
    EventLog, LogPosition, LoggedEvent, MemoryCheckpointStore, MemoryEventRepository, PgEventLog,
    StoreError,
};

/// The relay's checkpoint name (specs/01 §2).
pub const CHECKPOINT_NAME: &str = "relay";

/// Events per page, i.e. between two checkpoint saves. A crash republishes at most one page (deduplicated by the
/// stream), and a page is held in memory while its acks come back; 1,000 events of a few hundred bytes is well
/// under a megabyte, and the one checkpoint write per page is noise beside 1,000 publishes.
pub const RELAY_PAGE: usize = 1_000;

/// Aggregates whose messages are in flight at once. Within an aggregate a message is published only after the
/// previous one's ack (that is what keeps per-aggregate order), so throughput comes from publishing different
/// aggregates concurrently: 64 round trips in flight fill a local JetStream server's pipeline without letting one
/// page queue thousands of pending acks.
pub const PUBLISH_CONCURRENCY: usize = 64;

/// Pause between reads when the log has nothing new (and no in-process wake-up came). The projectors' idle poll
/// (specs/01 §3.1); an idle read is one index probe, so ten per second cost nothing, and commands in the same
/// process wake the relay at once through [`RelayWaker`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a standby relay tries to take the lock (specs/01 §2 `LEADER_RETRY_S`). A failover within 5 s keeps
/// the bus at most seconds behind, and a standby's attempt (a connection and one query) every 5 s is negligible.
pub const LEADER_RETRY: Duration = Duration::from_secs(5);

/// First pause after a failed step (bus or database unreachable); doubled on each further failure up to
/// [`ERROR_BACKOFF_MAX`]. Short, since most failures are a reconnect that takes milliseconds.
pub const ERROR_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Longest pause between retries while the bus or database stays down: recovery is noticed within 5 s, while a
/// long outage costs one failed attempt (and one warning line) per 5 s.
pub const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How often the active relay samples `strom_relay_lag_events`. A sample is one capped count
/// ([`LAG_COUNT_CAP`]); once a second is as fresh as a Prometheus scrape needs.
pub const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Counter: events the stream stored (acked as new).
pub const METRIC_PUBLISHED: &str = "strom_relay_events_published_total";
/// Counter: publishes the stream acked as duplicates of an already stored event id (republished after a crash,
/// a lost ack or a failover).
pub const METRIC_DUPLICATES: &str = "strom_relay_duplicates_total";
/// Gauge: committed events after the active relay's checkpoint, counted up to [`LAG_COUNT_CAP`] every
/// [`LAG_SAMPLE_INTERVAL`] (Postgres: including rows of transactions still held back by the xmin watermark).
pub const METRIC_LAG: &str = "strom_relay_lag_events";
/// Gauge: 1 while this process's relay is the active one, else 0.
pub const METRIC_ACTIVE: &str = "strom_relay_active";

/// Tunables of one relay; [`Default`] gives the named constants above. Tests shorten the intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Events per page (capped by the log at [`MAX_LOG_PAGE`](crate::store::MAX_LOG_PAGE)).
    pub page_size: usize,
    /// Idle pause between reads.
    pub poll_interval: Duration,
    /// Standby's pause between attempts to take the lock, also after losing it.
    pub leader_retry: Duration,
    /// Longest pause between retries of a failing step.
    pub error_backoff_max: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            page_size: RELAY_PAGE,
            poll_interval: POLL_INTERVAL,
            leader_retry: LEADER_RETRY,
            error_backoff_max: ERROR_BACKOFF_MAX,
        }
    }
}

/// What a relay is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayState {
    /// Not (yet) holding the lease: waiting for the active relay to go away.
    Standby,
    /// Holding the lease and publishing.
    Active,
    /// [`Relay::run`] returned.
    Stopped,
}

/// Counts of one relay instance since it was built (the metrics sum them over a process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Events the stream stored as new.
    pub published: u64,
    /// Publishes acked as duplicates.
    pub duplicates: u64,
    /// Log reads (pages), empty ones included.
    pub reads: u64,
    /// Steps that failed and were retried.
    pub failures: u64,
}

/// Why a relay step failed. Every failure is retried; losing the lease also sends the relay back to standby.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the global log failed.
    #[error("relay could not read the event log: {0}")]
    Log(#[source] StoreError),
    /// The (memory) checkpoint store failed.
    #[error("relay could not load or save its checkpoint: {0}")]
    Checkpoint(#[source] StoreError),
    /// The lock's connection could not be opened or is gone: the lease is lost.
    #[error("relay leader lock connection failed (lease lost): {0}")]
    Lock(#[source] sqlx::Error),
    /// A round trip on the lock's connection took too long: the connection is presumed cut, the lease lost.
    #[error("relay leader lock connection did not answer within {0:?} (lease presumed lost)")]
    LockTimedOut(Duration),
    /// Loading or saving the checkpoint through the lock's connection failed: the lease may be lost.
    #[error(
        "relay could not use its checkpoint through the leader lock connection (lease lost): {0}"
    )]
    LockCheckpoint(#[source] StoreError),
    /// The event's aggregate type or id cannot be a subject token. The relay stops here rather than skip the
    /// event (nothing is ever skipped); commands validate ids, so this means a row written outside STROM.
    #[error("event {event_id} ({aggregate_type} {aggregate_id}) cannot be published: {source}")]
    Subject {
        event_id: Uuid,
        aggregate_type: String,
        aggregate_id: String,
        #[source]
        source: NameError,
    },
    /// Serializing the envelope failed.
    #[error("event {event_id} could not be encoded: {source}")]
    Encode {
        event_id: Uuid,
        #[source]
        source: serde_json::Error,
    },
    /// The bus refused or did not ack a publish (the message may or may not be stored; republishing is safe).
    #[error("publishing event {event_id} failed: {source}")]
    Publish {
        event_id: Uuid,
        #[source]
        source: BusError,
    },
}

impl RelayError {
    /// Whether the relay must stop publishing and stand by (its lease is or may be gone).
    pub fn lost_lease(&self) -> bool {
        matches!(
            self,
            Self::Lock(_) | Self::LockTimedOut(_) | Self::LockCheckpoint(_)
        )
    }
}

/// Wakes an idle relay of this process at once (instead of at its next poll), e.g. after a command committed.
/// Also a cqrs-es [`Query`], so it can be registered on any framework: in-process dispatch is only a wake-up
/// here, never a source of events, so a lost dispatch costs at most one [`POLL_INTERVAL`].
#[derive(Debug, Clone)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Makes the relay read the log now (or right after its current step).
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

#[async_trait::async_trait]
impl<A: Aggregate> Query<A> for RelayWaker {
    async fn dispatch(&self, _aggregate_id: &str, _events: &[cqrs_es::EventEnvelope<A>]) {
        self.wake();
    }
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    duplicates: AtomicU64,
    reads: AtomicU64,
    failures: AtomicU64,
}

/// The outbox relay. Build it with [`Relay::postgres`] or [`Relay::memory`], then [`run`](Relay::run) it.
pub struct Relay {
    log: Arc<dyn EventLog>,
    bus: Arc<dyn Bus>,
    leadership: Box<dyn Leadership>,
    lag: Box<dyn LagProbe>,
    config: RelayConfig,
    wake: Arc<Notify>,
    state: watch::Sender<RelayState>,
    counters: Counters,
}

impl Relay {
    /// A relay over the Postgres event log in `pool`'s schema. Its lock is
    /// `pg_try_advisory_lock(hashtext('strom'), hashtext('relay:<bus prefix>'))`, held on a dedicated connection
    /// opened with `pool`'s connect options; the checkpoint is saved through that connection.
    pub fn postgres(pool: PgPool, bus: Arc<dyn Bus>, config: RelayConfig) -> Self {
        let leadership = PgLeadership {
            options: (*pool.connect_options()).clone(),
            key: format!("{LOCK_ROLE}:{}", bus.subjects().prefix()),
        };
        Self::new(
            Arc::new(PgEventLog::new(pool.clone())),
            bus,
            Box::new(leadership),
            Box::new(PgLag { pool }),
            config,
        )
    }

    /// A relay over the memory event store, with checkpoints in `checkpoints`. No lock: the memory store exists in
    /// this one process, which runs one relay role (embedded mode is single-process), so there is no other
    /// instance to exclude; a second relay over the same store would only cause duplicates the bus drops.
    pub fn memory(
        repo: MemoryEventRepository,
        checkpoints: MemoryCheckpointStore,
        bus: Arc<dyn Bus>,
        config: RelayConfig,
    ) -> Self {
        let log: Arc<dyn EventLog> = Arc::new(repo);
        Self::new(
            Arc::clone(&log),
            bus,
            Box::new(Unshared {
                checkpoints: Arc::new(checkpoints),
            }),
            Box::new(LogLag { log }),
            config,
        )
    }

    fn new(
        log: Arc<dyn EventLog>,
        bus: Arc<dyn Bus>,
        leadership: Box<dyn Leadership>,
        lag: Box<dyn LagProbe>,
        config: RelayConfig,
    ) -> Self {
        metrics::describe_counter!(
            METRIC_PUBLISHED,
            "Events the relay published (stored as new)"
        );
        metrics::describe_counter!(
            METRIC_DUPLICATES,
            "Relay publishes the stream dropped as duplicates"
        );
        metrics::describe_gauge!(
            METRIC_LAG,
            "Committed events after the relay checkpoint (capped)"
        );
        metrics::describe_gauge!(METRIC_ACTIVE, "1 while this relay is the active one");
        Self {
            log,
            bus,
            leadership,
            lag,
            config,
            wake: Arc::new(Notify::new()),
            state: watch::Sender::new(RelayState::Standby),
            counters: Counters::default(),
        }
    }

    /// Follows the relay's state changes.
    pub fn state(&self) -> watch::Receiver<RelayState> {
        self.state.subscribe()
    }

    /// This instance's counts so far.
    pub fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            published: c.published.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            reads: c.reads.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
        }
    }

    /// A handle that wakes this relay when it idles.
    pub fn waker(&self) -> RelayWaker {
        RelayWaker(Arc::clone(&self.wake))
    }

    /// Tries once to become the active relay, loading the checkpoint. `None`: another relay is active.
    ///
    /// # Errors
    /// The lock or the checkpoint could not be reached.
    pub async fn try_activate(&self) -> Result<Option<ActiveRelay<'_>>, RelayError> {
        let Some(mut lease) = self.leadership.try_acquire().await? else {
            return Ok(None);
        };
        let checkpoint = lease.load(CHECKPOINT_NAME).await?.unwrap_or_default();
        Ok(Some(ActiveRelay {
            relay: self,
            lease,
            checkpoint,
        }))
    }

    /// Relays until `shutdown` resolves: stands by until it holds the lease, then publishes page after page,
    /// retrying failed steps with backoff and going back to standby if the lease is lost. Returns promptly on
    /// shutdown, dropping any page in flight (it was not checkpointed, so the next relay republishes it).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut try_at_once = true;
        loop {
            self.set_state(RelayState::Standby);
            let mut active = tokio::select! {
                () = &mut shutdown => break,
                active = self.stand_by(try_at_once) => active,
            };
            self.set_state(RelayState::Active);
            tracing::info!(checkpoint = ?active.checkpoint, "relay is active");
            let lost = tokio::select! {
                () = &mut shutdown => None,
                lost = self.lead(&mut active) => Some(lost),
            };
            active.release().await;
            let Some(error) = lost else { break };
            tracing::warn!(%error, "relay lost its lease; standing by");
            // Leave the next attempt to the other instances first: losing a lease usually means this one is
            // unhealthy (its connection broke).
            try_at_once = false;
        }
        self.set_state(RelayState::Stopped);
        tracing::info!("relay stopped");
    }

    fn set_state(&self, state: RelayState) {
        metrics::gauge!(METRIC_ACTIVE).set(if state == RelayState::Active {
            1.0
        } else {
            0.0
        });
        self.state.send_replace(state);
    }

    /// Waits until this relay holds the lease.
    async fn stand_by(&self, try_at_once: bool) -> ActiveRelay<'_> {
        if !try_at_once {
            tokio::time::sleep(self.config.leader_retry).await;
        }
        loop {
            match self.try_activate().await {
                Ok(Some(active)) => return active,
                Ok(None) => tracing::debug!("another relay is active; standing by"),
                Err(error) => tracing::warn!(%error, "relay could not try to become active"),
            }
            tokio::time::sleep(self.config.leader_retry).await;
        }
    }

    /// Publishes while the lease holds; returns why it stopped holding.
    async fn lead(&self, active: &mut ActiveRelay<'_>) -> RelayError {
        let mut backoff = ERROR_BACKOFF_MIN;
        let mut next_lag_sample = Instant::now();
        loop {
            let step = active.step().await;
            if Instant::now() >= next_lag_sample {
                self.sample_lag(active.checkpoint).await;
                next_lag_sample = Instant::now() + LAG_SAMPLE_INTERVAL;
            }
            match step {
                Ok(true) => backoff = ERROR_BACKOFF_MIN,
                Ok(false) => {
                    backoff = ERROR_BACKOFF_MIN;
                    self.idle().await;
                }
                Err(error) if error.lost_lease() => return error,
                Err(error) => {
                    self.counters.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "relay step failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.error_backoff_max);
                }
            }
        }
    }

    async fn idle(&self) {
        tokio::select! {
            () = tokio::time::sleep(self.config.poll_interval) => {}
            () = self.wake.notified() => {}
        }
    }

    async fn sample_lag(&self, checkpoint: LogPosition) {
        match self.lag.events_after(checkpoint).await {
            Ok(lag) => metrics::gauge!(METRIC_LAG).set(lag as f64),
            Err(error) => tracing::debug!(%error, "relay lag sample failed"),
        }
    }
}

/// A relay holding the lease: the single instance allowed to publish and move the checkpoint. Dropping it gives
/// the lease up (for Postgres, when the lock's connection closes).
pub struct ActiveRelay<'r> {
    relay: &'r Relay,
    lease: Box<dyn Lease>,
    checkpoint: LogPosition,
}

/// A page published and acked, not yet checkpointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a published page is only done once its checkpoint is committed"]
pub struct PublishedPage {
    /// The position the page was read after.
    pub after: LogPosition,
    /// The last event's position: the checkpoint to commit.
    pub last: LogPosition,
    /// Events in the page.
    pub events: usize,
    /// Of those, publishes the stream acked as duplicates.
    pub duplicates: usize,
}

/// One event as it goes on the bus.
struct Outgoing {
    event_id: Uuid,
    subject: String,
    headers: Headers,
    payload: Vec<u8>,
}

impl ActiveRelay<'_> {
    /// The last committed checkpoint (where the next page starts).
    pub fn checkpoint(&self) -> LogPosition {
        self.checkpoint
    }

    /// Checks the lease still holds.
    ///
    /// # Errors
    /// [`RelayError::Lock`]: the lease is lost.
    pub async fn confirm(&mut self) -> Result<(), RelayError> {
        self.lease.confirm().await
    }

    /// Publishes the next page after the checkpoint and waits for every ack, without saving the checkpoint.
    /// `None` when the log has nothing new. Calling it again before [`commit_checkpoint`](Self::commit_checkpoint)
    /// republishes the same page (the stream acks the copies as duplicates).
    ///
    /// # Errors
    /// Reading the log or a publish failed; some messages of the page may be stored, none checkpointed.
    pub async fn publish_page(&mut self) -> Result<Option<PublishedPage>, RelayError> {
        let relay = self.relay;
        let events = relay
            .log
            .read_after(self.checkpoint, relay.config.page_size)
            .await
            .map_err(RelayError::Log)?;
        relay.counters.reads.fetch_add(1, Ordering::Relaxed);
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(None);
        };
        // One queue per subject (= per aggregate), in log order, which is sequence order within an aggregate.
        let mut queues: BTreeMap<String, Vec<Outgoing>> = BTreeMap::new();
        for event in &events {
            let message = outgoing(relay.bus.as_ref(), event)?;
            queues
                .entry(message.subject.clone())
                .or_default()
                .push(message);
        }
        let duplicates = futures::stream::iter(queues.into_values())
            .map(|queue| relay.publish_in_order(queue))
            .buffer_unordered(PUBLISH_CONCURRENCY)
            .try_fold(0, |total, duplicates| async move { Ok(total + duplicates) })
            .await?;
        tracing::debug!(
            events = events.len(),
            duplicates,
            ?last,
            "relay published a page"
        );
        Ok(Some(PublishedPage {
            after: self.checkpoint,
            last,
            events: events.len(),
            duplicates,
        }))
    }

    /// Saves `page.last` as the checkpoint (under the lease). Never moves the checkpoint backwards.
    ///
    /// # Errors
    /// The save failed (for Postgres: the lease is lost); the checkpoint is unchanged.
    pub async fn commit_checkpoint(&mut self, page: PublishedPage) -> Result<(), RelayError> {
        debug_assert!(
            page.after <= self.checkpoint,
            "a page read after {:?} cannot be committed at {:?}: events in between were not published",
            page.after,
            self.checkpoint
        );
        if page.last <= self.checkpoint {
            return Ok(());
        }
        self.lease.save(CHECKPOINT_NAME, page.last).await?;
        self.checkpoint = page.last;
        Ok(())
    }

    /// Gives the lease up now.
    pub async fn release(self) {
        self.lease.release().await;
    }

    /// One step: confirm the lease, publish a page, commit it. `Ok(false)` when there was nothing to publish.
    async fn step(&mut self) -> Result<bool, RelayError> {
        self.confirm().await?;
        let Some(page) = self.publish_page().await? else {
            return Ok(false);
        };
        self.commit_checkpoint(page).await?;
        Ok(true)
    }
}

impl Relay {
    /// Publishes one aggregate's messages one after another, each after the previous one's ack; returns how many
    /// were duplicates.
    async fn publish_in_order(&self, queue: Vec<Outgoing>) -> Result<usize, RelayError> {
        let mut duplicates = 0;
        for message in queue {
            let msg_id = message.event_id.to_string();
            let ack = self
                .bus
                .publish(&message.subject, &msg_id, &message.headers, message.payload)
                .await
                .map_err(|source| RelayError::Publish {
                    event_id: message.event_id,
                    source,
                })?;
            if ack.duplicate {
                duplicates += 1;
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_DUPLICATES).increment(1);
            } else {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_PUBLISHED).increment(1);
            }
        }
        Ok(duplicates)
    }
}

fn outgoing(bus: &dyn Bus, event: &LoggedEvent) -> Result<Outgoing, RelayError> {
    let subject = bus
        .subjects()
        .event(&event.aggregate_type, &event.aggregate_id)
        .map_err(|source| RelayError::Subject {
            event_id: event.event_id,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            source,
        })?;
    let payload = EventEnvelope::from(event)
        .encode()
        .map_err(|source| RelayError::Encode {
            event_id: event.event_id,
            source,
        })?;
    Ok(Outgoing {
        event_id: event.event_id,
        subject,
        headers: headers(event),
        payload,
    })
}

/// The message headers. A value a header cannot carry (a line break, non-ASCII) is left out rather than making
/// the event unpublishable: the body carries every field anyway.
fn headers(event: &LoggedEvent) -> Headers {
    let mut headers = Headers::new();
    let sequence = event.sequence.to_string();
    let candidates = [
        (
            CORRELATION_ID_HEADER,
            event.metadata_str("correlation_id").unwrap_or_default(),
        ),
        (EVENT_TYPE_HEADER, event.event_type.as_str()),
        (EVENT_VERSION_HEADER, event.event_version.as_str()),
        (SEQUENCE_HEADER, sequence.as_str()),
    ];
    for (name, value) in candidates {
        if value.is_empty() {
            continue;
        }
        if value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            headers.insert(name.to_owned(), value.to_owned());
        } else {
            tracing::warn!(event_id = %event.event_id, header = name, "header value left out: not printable ASCII");
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn event(metadata: serde_json::Value) -> LoggedEvent {
        LoggedEvent {
            position: LogPosition::START,
            event_id: Uuid::nil(),
            aggregate_type: "Agent".into(),
            aggregate_id: "a1".into(),
            sequence: 7,
            event_type: "AgentStarted".into(),
            event_version: "1".into(),
            payload: json!({}),
            metadata,
            recorded_at: Utc::now(),
            hash: String::new(),
        }
    }

    #[test]
    fn headers_carry_correlation_type_version_and_sequence() {
        let headers = headers(&event(json!({"correlation_id": "req-1", "actor": "a"})));
        assert_eq!(
            headers.into_iter().collect::<Vec<_>>(),
            [
                ("Strom-Correlation-Id".to_owned(), "req-1".to_owned()),
                ("Strom-Event-Type".to_owned(), "AgentStarted".to_owned()),
                ("Strom-Event-Version".to_owned(), "1".to_owned()),
                ("Strom-Sequence".to_owned(), "7".to_owned()),
            ]
        );
    }

    #[test]
    fn a_missing_or_unsendable_correlation_id_is_left_out() {
        assert!(!headers(&event(json!({}))).contains_key(CORRELATION_ID_HEADER));
        assert!(!headers(&event(json!({"correlation_id": "a\r\nb"})))
            .contains_key(CORRELATION_ID_HEADER));
        assert!(!headers(&event(json!({"correlation_id": 5}))).contains_key(CORRELATION_ID_HEADER));
    }

    #[test]
    fn only_lock_errors_lose_the_lease() {
        assert!(RelayError::Lock(sqlx::Error::PoolClosed).lost_lease());
        assert!(RelayError::LockTimedOut(LEASE_ROUND_TRIP_TIMEOUT).lost_lease());
        assert!(
            !RelayError::Log(StoreError::InvalidConnection("x".into())).lost_lease(),
            "a failed read is retried under the same lease"
        );
    }
}
