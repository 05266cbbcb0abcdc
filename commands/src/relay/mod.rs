//! The outbox relay: publishes every committed event of the global log to the bus, at least once and in order per
//! aggregate, on `<p>.events.<aggregate_type lowercase>.<aggregate_id>` with `Nats-Msg-Id` = event id (so the
//! stream drops republished copies).
//!
//! One relay is active at a time (the singleton lease of [`crate::lease`]); others stand by and take over when the
//! active one dies. The active relay follows the log ([`crate::log::Follower`], in the stored form) after its
//! checkpoint `relay`: it publishes a page, waits for every ack, then saves the checkpoint through the lease. A crash
//! between publish and save republishes that page, which JetStream deduplicates. The log reader's xmin watermark
//! means a transaction that commits late (or rolls back) is never skipped (or never seen).
//!
//! [`ActiveRelay`] exposes the two halves of a step ([`ActiveRelay::publish_page`],
//! [`ActiveRelay::commit_checkpoint`]) so tests can stop between them, like a crash would.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::bus::{Bus, BusError, Headers, NameError, CORRELATION_ID_HEADER};
use crate::lease::{Lease, LeaseError, Singleton, LEASE_CHECK};
use crate::log::{
    CheckpointStore, CommitSignal, EventEnvelope, EventLog, FollowError, Follower, FollowerConfig,
    LogPosition, PageHandler, PgCheckpointStore, PgEventLog, StoreError,
};
use crate::store::MemoryEventStore;

/// The role name of the relay's lease (`relay:<nats_prefix>`): one active relay per bus prefix (the prefix names the
/// stream it feeds; tests and deployments sharing a database use distinct prefixes).
pub const RELAY_ROLE: &str = "relay";

/// Header naming the event type (`AgentStarted`), so a consumer can skip a message without decoding its body.
pub const EVENT_TYPE_HEADER: &str = "Strom-Event-Type";
/// Header with the event version (`"1"`).
pub const EVENT_VERSION_HEADER: &str = "Strom-Event-Version";
/// Header with the event's 1-based sequence within its aggregate (decimal text).
pub const SEQUENCE_HEADER: &str = "Strom-Sequence";

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

/// Pause between reads when the log has nothing new (and no commit of this process woke the relay). The projectors'
/// idle poll (specs/01 §3.1); an idle read is one index probe, so ten per second cost nothing.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Counter: events the stream stored (acked as new).
pub const METRIC_PUBLISHED: &str = "strom_relay_events_published_total";
/// Counter: publishes the stream acked as duplicates of an already stored event id (republished after a crash,
/// a lost ack or a failover).
pub const METRIC_DUPLICATES: &str = "strom_relay_duplicates_total";
/// Gauge: committed events after the active relay's checkpoint (see [`crate::log::EventLog::backlog`]).
pub const METRIC_LAG: &str = "strom_relay_lag_events";
/// Gauge: 1 while this process's relay is the active one, else 0.
pub const METRIC_ACTIVE: &str = "strom_relay_active";

/// Tunables of one relay; [`Default`] gives the named constants. Tests shorten the intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Events per page (capped by the log at [`MAX_LOG_PAGE`](crate::log::MAX_LOG_PAGE)).
    pub page_size: usize,
    /// Idle pause between reads.
    pub poll_interval: Duration,
    /// Standby's pause between attempts to take the lease, also after losing it.
    pub leader_retry: Duration,
    /// Longest pause between retries of a failing page.
    pub error_backoff_max: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            page_size: RELAY_PAGE,
            poll_interval: POLL_INTERVAL,
            leader_retry: crate::lease::LEADER_RETRY,
            error_backoff_max: crate::log::FOLLOWER_ERROR_BACKOFF_MAX,
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
    /// Pages that failed and were retried.
    pub failures: u64,
}

/// Why a relay step failed. Every failure is retried; losing the lease also sends the relay back to standby.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the global log failed.
    #[error("relay could not read the event log: {0}")]
    Log(#[source] StoreError),
    /// The lease is (or may be) lost, or the checkpoint could not be used under it.
    #[error("relay lease: {0}")]
    Lease(#[source] LeaseError),
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
        matches!(self, Self::Lease(_))
    }

    fn into_follow(self) -> FollowError {
        if self.lost_lease() {
            FollowError::Stop(Box::new(self))
        } else {
            FollowError::Retry(Box::new(self))
        }
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
    /// Where the checkpoint lives when the lease has no connection of its own (memory).
    checkpoints: Arc<dyn CheckpointStore>,
    bus: Arc<dyn Bus>,
    singleton: Singleton,
    config: RelayConfig,
    commits: Option<CommitSignal>,
    state: watch::Sender<RelayState>,
    counters: Counters,
}

impl Relay {
    /// A relay over the Postgres event log in `pool`'s schema. Its lease is the singleton lock
    /// `relay:<bus prefix>`, on a dedicated connection opened with `pool`'s connect options; the checkpoint is saved
    /// through that connection.
    pub fn postgres(pool: PgPool, bus: Arc<dyn Bus>, config: RelayConfig) -> Self {
        let singleton = Singleton::postgres(
            (*pool.connect_options()).clone(),
            RELAY_ROLE,
            bus.subjects().prefix(),
        );
        Self::new(
            Arc::new(PgEventLog::new(pool.clone())),
            Arc::new(PgCheckpointStore::new(pool)),
            bus,
            singleton,
            config,
        )
    }

    /// A relay over the memory event store, keeping its checkpoint there. No lock: the memory store exists in this one
    /// process, which runs one relay role (embedded mode is single-process), so there is no other instance to exclude;
    /// a second relay over the same store would only cause duplicates the bus drops.
    pub fn memory(store: MemoryEventStore, bus: Arc<dyn Bus>, config: RelayConfig) -> Self {
        Self::new(
            Arc::new(store.clone()),
            Arc::new(store),
            bus,
            Singleton::Single,
            config,
        )
    }

    fn new(
        log: Arc<dyn EventLog>,
        checkpoints: Arc<dyn CheckpointStore>,
        bus: Arc<dyn Bus>,
        singleton: Singleton,
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
            checkpoints,
            bus,
            singleton,
            config,
            commits: None,
            state: watch::Sender::new(RelayState::Standby),
            counters: Counters::default(),
        }
    }

    /// Reads at once after each commit signalled on `commits` (this process's commands) instead of at the next poll.
    #[must_use]
    pub fn woken_by(mut self, commits: &CommitSignal) -> Self {
        self.commits = Some(commits.clone());
        self
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

    /// Tries once to become the active relay, loading the checkpoint. `None`: another relay is active.
    ///
    /// # Errors
    /// The lock or the checkpoint could not be reached.
    pub async fn try_activate(&self) -> Result<Option<ActiveRelay<'_>>, RelayError> {
        let Some(lease) = self
            .singleton
            .try_acquire()
            .await
            .map_err(RelayError::Lease)?
        else {
            return Ok(None);
        };
        self.activate(lease).await.map(Some)
    }

    async fn activate(&self, mut lease: Lease) -> Result<ActiveRelay<'_>, RelayError> {
        let checkpoint = lease
            .load_checkpoint(CHECKPOINT_NAME, self.checkpoints.as_ref())
            .await
            .map_err(RelayError::Lease)?
            .unwrap_or_default();
        Ok(ActiveRelay {
            relay: self,
            lease,
            checkpoint,
            confirmed_at: Instant::now(),
        })
    }

    /// Relays until `shutdown` resolves: stands by until it holds the lease, then publishes page after page,
    /// retrying failed pages with backoff and going back to standby if the lease is lost. Returns promptly on
    /// shutdown, dropping any page in flight (it was not checkpointed, so the next relay republishes it).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut try_at_once = true;
        loop {
            self.set_state(RelayState::Standby);
            if !try_at_once {
                // Leave the next attempt to the other instances first: losing a lease usually means this one is
                // unhealthy (its connection broke).
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(self.config.leader_retry) => {}
                }
            }
            let Some(lease) = self
                .singleton
                .acquire(self.config.leader_retry, &mut shutdown)
                .await
            else {
                break;
            };
            let mut active = match self.activate(lease).await {
                Ok(active) => active,
                Err(error) => {
                    tracing::warn!(%error, "relay could not load its checkpoint; standing by");
                    try_at_once = false;
                    continue;
                }
            };
            self.set_state(RelayState::Active);
            tracing::info!(checkpoint = ?active.checkpoint, "relay is active");
            let lost = active.lead(&mut shutdown).await;
            active.release().await;
            let Some(error) = lost else { break };
            tracing::warn!(%error, "relay lost its lease; standing by");
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

    fn follower(&self, from: LogPosition) -> Follower {
        Follower::new(
            "relay",
            Arc::clone(&self.log),
            from,
            self.commits.as_ref().map(CommitSignal::subscribe),
            FollowerConfig {
                page_size: self.config.page_size,
                idle_poll: self.config.poll_interval,
                error_backoff_max: self.config.error_backoff_max,
                lag_gauge: Some((METRIC_LAG, Vec::new())),
            },
        )
    }

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

    /// Publishes `events` and waits for every ack: one queue per subject (= per aggregate), in log order, which is
    /// sequence order within an aggregate. Returns how many were duplicates.
    async fn publish(&self, events: &[EventEnvelope]) -> Result<usize, RelayError> {
        let mut queues: BTreeMap<String, Vec<Outgoing>> = BTreeMap::new();
        for event in events {
            let message = outgoing(self.bus.as_ref(), event)?;
            queues
                .entry(message.subject.clone())
                .or_default()
                .push(message);
        }
        futures::stream::iter(queues.into_values())
            .map(|queue| self.publish_in_order(queue))
            .buffer_unordered(PUBLISH_CONCURRENCY)
            .try_fold(0, |total, duplicates| async move { Ok(total + duplicates) })
            .await
    }
}

/// A relay holding the lease: the single instance allowed to publish and move the checkpoint. Dropping it gives
/// the lease up (for Postgres, when the lock's connection closes).
pub struct ActiveRelay<'r> {
    relay: &'r Relay,
    lease: Lease,
    checkpoint: LogPosition,
    confirmed_at: Instant,
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

    /// Reads the next page after the checkpoint, publishes it and waits for every ack, without saving the checkpoint
    /// (a test hook: [`Relay::run`] gets its pages from the follower). `None` when the log has nothing new.
    ///
    /// # Errors
    /// Reading the log or a publish failed; some messages of the page may be stored, none checkpointed.
    pub async fn publish_page(&mut self) -> Result<Option<PublishedPage>, RelayError> {
        let events = self
            .relay
            .log
            .read_envelopes_after(self.checkpoint, self.relay.config.page_size)
            .await
            .map_err(RelayError::Log)?;
        self.relay.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.publish_events(&events).await
    }

    async fn publish_events(
        &mut self,
        events: &[EventEnvelope],
    ) -> Result<Option<PublishedPage>, RelayError> {
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(None);
        };
        let duplicates = self.relay.publish(events).await?;
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
        self.lease
            .save_checkpoint(CHECKPOINT_NAME, page.last, self.relay.checkpoints.as_ref())
            .await
            .map_err(RelayError::Lease)?;
        self.checkpoint = page.last;
        Ok(())
    }

    /// Gives the lease up now.
    pub async fn release(self) {
        self.lease.release().await;
    }

    /// Confirms the lease when [`LEASE_CHECK`] has passed since the last confirmation.
    async fn confirm_if_due(&mut self) -> Result<(), RelayError> {
        if self.confirmed_at.elapsed() >= LEASE_CHECK {
            self.lease.confirm().await.map_err(RelayError::Lease)?;
            self.confirmed_at = Instant::now();
        }
        Ok(())
    }

    /// Publishes while the lease holds; returns why it stopped holding (`None`: shutdown).
    async fn lead(
        &mut self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<FollowError> {
        let mut follower = self.relay.follower(self.checkpoint);
        follower.run(self, shutdown).await.err()
    }
}

#[async_trait]
impl PageHandler<EventEnvelope> for ActiveRelay<'_> {
    async fn handle(&mut self, page: &[EventEnvelope]) -> Result<LogPosition, FollowError> {
        let relay = self.relay;
        relay.counters.reads.fetch_add(1, Ordering::Relaxed);
        let published = async {
            self.confirm_if_due().await?;
            if let Some(published) = self.publish_events(page).await? {
                self.commit_checkpoint(published).await?;
            }
            Ok::<_, RelayError>(self.checkpoint)
        };
        published.await.map_err(|error| {
            relay.counters.failures.fetch_add(1, Ordering::Relaxed);
            error.into_follow()
        })
    }

    async fn idle(&mut self) -> Result<(), FollowError> {
        self.relay.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.confirm_if_due().await.map_err(RelayError::into_follow)
    }
}

fn outgoing(bus: &dyn Bus, event: &EventEnvelope) -> Result<Outgoing, RelayError> {
    let subject = bus
        .subjects()
        .event(&event.aggregate_type, &event.aggregate_id)
        .map_err(|source| RelayError::Subject {
            event_id: event.event_id,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            source,
        })?;
    let payload = event.to_json().map_err(|source| RelayError::Encode {
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
fn headers(event: &EventEnvelope) -> Headers {
    let mut headers = Headers::new();
    let sequence = event.sequence.to_string();
    let correlation_id = event
        .metadata
        .get("correlation_id")
        .and_then(serde_json::Value::as_str);
    let candidates = [
        (CORRELATION_ID_HEADER, correlation_id.unwrap_or_default()),
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

    fn event(metadata: serde_json::Value) -> EventEnvelope {
        EventEnvelope {
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
    fn only_lease_errors_lose_the_lease() {
        assert!(RelayError::Lease(LeaseError::TimedOut).lost_lease());
        assert!(
            !RelayError::Log(StoreError::InvalidConnection("x".into())).lost_lease(),
            "a failed read is retried under the same lease"
        );
    }
}
