//! The outbox relay: publishes every committed event of the global log to the bus, at least once and in order per
//! aggregate, on `<p>.events.<aggregate_type lowercase>.<aggregate_id>` with `Nats-Msg-Id` = event id (so the
//! stream drops republished copies).
//!
//! The relay is a singleton role ([`crate::role`]): one instance is active, following the log in the stored form
//! after its checkpoint `relay`; it publishes a page, waits for every ack, then saves the checkpoint through the lease.
//! A crash between publish and save republishes that page, which JetStream deduplicates. The log reader's xmin
//! watermark means a transaction that commits late (or rolls back) is never skipped (or never seen).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use uuid::Uuid;

use crate::bus::{Bus, BusError, Headers, NameError, CORRELATION_ID_HEADER};
use crate::lease::Singleton;
use crate::log::{EventEnvelope, PgCheckpointStore, PgEventLog};
use crate::role::{
    LeasedRole, RoleConfig, RoleError, RoleHandler, RoleNames, RoleState, RoleStats,
};
use crate::store::MemoryEventStore;

/// The role name of the relay's lease (`relay:<nats_prefix>`), also its checkpoint's name (specs/01 §2): one active
/// relay per bus prefix (the prefix names the stream it feeds; tests and deployments sharing a database use distinct
/// prefixes).
pub const RELAY_ROLE: &str = "relay";

/// Header naming the event type (`AgentStarted`), so a consumer can skip a message without decoding its body.
pub const EVENT_TYPE_HEADER: &str = "Strom-Event-Type";
/// Header with the event version (`"1"`).
pub const EVENT_VERSION_HEADER: &str = "Strom-Event-Version";
/// Header with the event's 1-based sequence within its aggregate (decimal text).
pub const SEQUENCE_HEADER: &str = "Strom-Sequence";

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
pub type RelayConfig = RoleConfig;

/// The relay's defaults: [`RELAY_PAGE`], [`POLL_INTERVAL`], the lease's retry and the follower's backoff.
pub fn relay_config() -> RelayConfig {
    RoleConfig {
        page_size: RELAY_PAGE,
        poll_interval: POLL_INTERVAL,
        leader_retry: crate::lease::LEADER_RETRY,
        error_backoff_max: crate::log::FOLLOWER_ERROR_BACKOFF_MAX,
    }
}

/// What a relay is doing.
pub type RelayState = RoleState;

/// The relay's lease, checkpoint and gauges.
pub const RELAY_NAMES: RoleNames = RoleNames {
    role: RELAY_ROLE,
    active_gauge: METRIC_ACTIVE,
    lag_gauge: METRIC_LAG,
};

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

/// Why a page could not be published. Every failure is retried (the page is read and published again).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
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

/// The relay's page handler: publishes a page and waits for every ack.
pub struct Publisher {
    bus: Arc<dyn Bus>,
    published: AtomicU64,
    duplicates: AtomicU64,
}

/// The outbox relay: the singleton role [`RELAY_NAMES`] publishing the log. Build it with [`Relay::postgres`] or
/// [`Relay::memory`], then [`run`](LeasedRole::run) it.
pub type Relay = LeasedRole<Publisher>;

impl LeasedRole<Publisher> {
    /// A relay over the Postgres event log in `pool`'s schema. Its lease is the singleton lock
    /// `relay:<bus prefix>`, on a dedicated connection opened with `pool`'s connect options; the checkpoint is saved
    /// through that connection.
    pub fn postgres(pool: PgPool, bus: Arc<dyn Bus>, config: RelayConfig) -> Self {
        let singleton = Singleton::postgres(
            (*pool.connect_options()).clone(),
            RELAY_ROLE,
            bus.subjects().prefix(),
        );
        LeasedRole::new(
            Publisher::new(bus),
            RELAY_NAMES,
            Arc::new(PgEventLog::new(pool.clone())),
            Arc::new(PgCheckpointStore::new(pool)),
            singleton,
            config,
        )
    }

    /// A relay over the memory event store, keeping its checkpoint there. No lock: the memory store exists in this one
    /// process, which runs one relay role (embedded mode is single-process), so there is no other instance to exclude;
    /// a second relay over the same store would only cause duplicates the bus drops.
    pub fn memory(store: MemoryEventStore, bus: Arc<dyn Bus>, config: RelayConfig) -> Self {
        LeasedRole::new(
            Publisher::new(bus),
            RELAY_NAMES,
            Arc::new(store.clone()),
            Arc::new(store),
            Singleton::Single,
            config,
        )
    }

    /// This instance's counts so far.
    pub fn stats(&self) -> RelayStats {
        let RoleStats { reads, failures } = self.role_stats();
        let publisher = self.handler();
        RelayStats {
            published: publisher.published.load(Ordering::Relaxed),
            duplicates: publisher.duplicates.load(Ordering::Relaxed),
            reads,
            failures,
        }
    }
}

impl Publisher {
    fn new(bus: Arc<dyn Bus>) -> Self {
        metrics::describe_counter!(
            METRIC_PUBLISHED,
            "Events the relay published (stored as new)"
        );
        metrics::describe_counter!(
            METRIC_DUPLICATES,
            "Relay publishes the stream dropped as duplicates"
        );
        Self {
            bus,
            published: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        }
    }

    /// Publishes one aggregate's messages one after another, each after the previous one's ack.
    async fn publish_in_order(&self, queue: Vec<Outgoing>) -> Result<(), PublishError> {
        for message in queue {
            let msg_id = message.event_id.to_string();
            let ack = self
                .bus
                .publish(&message.subject, &msg_id, &message.headers, message.payload)
                .await
                .map_err(|source| PublishError::Publish {
                    event_id: message.event_id,
                    source,
                })?;
            if ack.duplicate {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_DUPLICATES).increment(1);
            } else {
                self.published.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(METRIC_PUBLISHED).increment(1);
            }
        }
        Ok(())
    }

    /// Publishes `events` and waits for every ack: one queue per subject (= per aggregate), in log order, which is
    /// sequence order within an aggregate.
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), PublishError> {
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
            .try_collect::<()>()
            .await
    }
}

#[async_trait]
impl RoleHandler for Publisher {
    type Item = EventEnvelope;

    async fn handle(&self, page: &[EventEnvelope]) -> Result<(), RoleError> {
        self.publish(page)
            .await
            .map_err(|e| RoleError::Handler(Box::new(e)))?;
        tracing::debug!(events = page.len(), "relay published a page");
        Ok(())
    }
}

/// One event as it goes on the bus.
struct Outgoing {
    event_id: Uuid,
    subject: String,
    headers: Headers,
    payload: Vec<u8>,
}

fn outgoing(bus: &dyn Bus, event: &EventEnvelope) -> Result<Outgoing, PublishError> {
    let subject = bus
        .subjects()
        .event(&event.aggregate_type, &event.aggregate_id)
        .map_err(|source| PublishError::Subject {
            event_id: event.event_id,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            source,
        })?;
    let payload = event.to_json().map_err(|source| PublishError::Encode {
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
    use crate::log::LogPosition;

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
}
