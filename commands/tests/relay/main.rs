//! Outbox relay tests: the shared cases in `cases` run over Postgres + NATS JetStream and over the memory adapters
//! (memory store + memory bus); `postgres` holds what only a real database can show (rolled-back and late
//! transactions, the advisory lock, a dropped NATS connection, the envelope against its JSON Schema).
//!
//! Each test owns a fresh Postgres schema (`STROM_TEST_DATABASE_URL`) and NATS prefix (`STROM_TEST_NATS_URL`),
//! both removed when it ends, also on panic.

mod cases;
mod faults;
mod postgres;
// The store tests' throwaway schema, scripted Agent and log helpers, reused as they are.
#[path = "../store/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_commands::bus::memory::MemoryBus;
use strom_commands::bus::{Bus, ConsumerSpec, Delivery, StreamKind, Subjects};
use strom_commands::log::{CheckpointStore, CommitSignal, EventEnvelope, EventLog, LogPosition};
use strom_commands::relay::{Relay, RelayConfig, RelayState, EVENT_TYPE_HEADER, SEQUENCE_HEADER};
use strom_tests::nats::TestNats;
use support::Backend;
use uuid::Uuid;

/// Longest a test waits for the relay to catch up. Other sessions on the shared Postgres (parallel tests) hold the
/// xmin watermark back while their write transactions are open, usually for milliseconds; a lost JetStream ack
/// costs the client's 5 s ack timeout.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Pause between checks while waiting for a condition.
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// How long a reader waits for one more message after the expected ones before concluding there are none.
const NOTHING_MORE_WAIT: Duration = Duration::from_millis(300);

pub use strom_tests::nats_url;

/// Short intervals and small pages, so a handful of events spans several pages and failover is quick.
pub fn fast_config() -> RelayConfig {
    RelayConfig {
        page_size: 7,
        poll_interval: Duration::from_millis(10),
        leader_retry: Duration::from_millis(50),
        error_backoff_max: Duration::from_millis(200),
    }
}

/// An event store with its command services and a bus with its topology, owned by one test.
pub struct Stack {
    backend: Backend,
    pub bus: Arc<dyn Bus>,
    nats: Option<TestNats>,
}

impl Stack {
    pub async fn memory() -> Self {
        let bus = MemoryBus::new(unique_subjects());
        bus.ensure_topology().await.unwrap();
        Self {
            backend: Backend::memory(),
            bus: Arc::new(bus),
            nats: None,
        }
    }

    pub async fn postgres() -> Self {
        let nats = TestNats::new("t");
        let backend = Backend::postgres().await;
        let bus = nats.connect().await;
        let stack = Self {
            backend,
            bus: Arc::new(bus),
            nats: Some(nats),
        };
        stack.bus.ensure_topology().await.unwrap();
        stack
    }

    pub fn db(&self) -> &support::TestDb {
        self.backend.db()
    }

    pub fn relay(&self, config: RelayConfig) -> Relay {
        self.relay_over(Arc::clone(&self.bus), config)
    }

    /// A relay publishing through `bus` (e.g. a faulty wrapper, or another connection to the same server).
    pub fn relay_over(&self, bus: Arc<dyn Bus>, config: RelayConfig) -> Relay {
        match &self.backend.store {
            strom_commands::store::EventStore::Memory(store) => {
                Relay::memory(store.clone(), bus, config)
            }
            strom_commands::store::EventStore::Postgres(store) => {
                Relay::postgres(store.pool().clone(), bus, config)
            }
        }
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        self.backend.log()
    }

    pub async fn checkpoint(&self) -> Option<LogPosition> {
        let checkpoints: Arc<dyn CheckpointStore> = self.backend.checkpoints();
        checkpoints
            .load(strom_commands::relay::RELAY_ROLE)
            .await
            .unwrap()
    }

    /// The next command of agent `name`'s script (one event), through the command services.
    pub async fn command(&self, name: &str) {
        self.backend.step(name).await;
    }

    /// Signalled after each command of this stack (this process's commits).
    pub fn commits(&self) -> &CommitSignal {
        self.backend.services.commits()
    }

    /// `rounds` events on each of `agents`, interleaved (round-robin), so pages mix aggregates.
    pub async fn append_round_robin(&self, agents: &[&str], rounds: usize) {
        for _ in 0..rounds {
            for name in agents {
                self.command(name).await;
            }
        }
    }

    pub async fn finish(mut self) {
        if let Some(nats) = self.nats.take() {
            nats.delete().await;
        }
    }
}

fn unique_subjects() -> Subjects {
    Subjects::new(format!("t{}", Uuid::new_v4().simple())).unwrap()
}

/// A relay running on its own task until [`Running::stop`] (or abort, which is how a test kills it).
pub struct Running {
    pub relay: Arc<Relay>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn spawn(relay: Relay) -> Self {
        let relay = Arc::new(relay);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let relay = Arc::clone(&relay);
            async move {
                relay
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
            }
        });
        Self {
            relay,
            stop: Some(stop),
            task,
        }
    }

    pub async fn wait_for_state(&self, state: RelayState) {
        let mut states = self.relay.state();
        tokio::time::timeout(DEADLINE, states.wait_for(|s| *s == state))
            .await
            .unwrap_or_else(|_| panic!("relay never became {state:?}"))
            .unwrap();
    }

    /// Asks the relay to stop and waits until it has.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("relay stops within the deadline")
            .expect("relay task did not panic");
        assert_eq!(*self.relay.state().borrow(), RelayState::Stopped);
    }

    /// Kills the relay like a crashed process: its task is dropped mid-flight, nothing is released politely.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Waits until `condition` holds, failing the test after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

pub async fn stream_messages(bus: &dyn Bus) -> u64 {
    bus.stream_stats(StreamKind::Events).await.unwrap().messages
}

/// Waits until the events stream holds `count` messages.
pub async fn wait_for_stream(bus: &dyn Bus, count: u64) {
    wait_until(&format!("the stream holds {count} messages"), || async {
        stream_messages(bus).await >= count
    })
    .await;
}

/// Every message on the events stream, in stream order, read with a fresh durable consumer.
pub async fn read_stream(bus: &dyn Bus, count: usize) -> Vec<Delivery> {
    let durable = format!("check{}", Uuid::new_v4().simple());
    let mut consumer = bus
        .consumer(ConsumerSpec::new(StreamKind::Events, durable))
        .await
        .unwrap();
    let started = Instant::now();
    let mut messages = Vec::new();
    while messages.len() < count {
        assert!(
            started.elapsed() < DEADLINE,
            "read {} of {count} messages",
            messages.len()
        );
        if let Some(delivery) = consumer.next(Duration::from_millis(500)).await.unwrap() {
            messages.push(delivery);
        }
    }
    if let Some(extra) = consumer.next(NOTHING_MORE_WAIT).await.unwrap() {
        panic!("more than {count} messages on the stream: {extra:?}");
    }
    messages.sort_by_key(|m| m.stream_sequence);
    messages
}

/// The relay's whole contract, checked against the log: the stream holds each committed event exactly once
/// (by event id, which is also the msg id), on its aggregate's subject, with its headers and its exact envelope,
/// and each aggregate's events in sequence order 1, 2, 3, …. Returns the log's events.
pub async fn assert_published_exactly_once(stack: &Stack, expected: usize) -> Vec<EventEnvelope> {
    let logged: Vec<EventEnvelope> =
        support::read_exactly(stack.log().as_ref(), LogPosition::START, expected).await;
    wait_for_stream(stack.bus.as_ref(), expected as u64).await;
    let messages = read_stream(stack.bus.as_ref(), expected).await;
    assert_eq!(
        stream_messages(stack.bus.as_ref()).await,
        expected as u64,
        "the stream holds exactly the committed events"
    );

    let by_id: BTreeMap<Uuid, &EventEnvelope> = logged.iter().map(|e| (e.event_id, e)).collect();
    let mut seen = BTreeSet::new();
    let mut sequences: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for message in &messages {
        let envelope = EventEnvelope::from_json(&message.payload).expect("an EventEnvelope");
        assert!(
            seen.insert(envelope.event_id),
            "event {} published twice",
            envelope.event_id
        );
        let event = by_id
            .get(&envelope.event_id)
            .unwrap_or_else(|| panic!("{} is not a committed event", envelope.event_id));
        assert_eq!(message.msg_id, Some(event.event_id.to_string()));
        assert_eq!(
            message.subject,
            stack
                .bus
                .subjects()
                .event(&event.aggregate_type, &event.aggregate_id)
                .unwrap()
        );
        assert_eq!(
            message.payload,
            event.to_json().unwrap(),
            "the body is the stored event's envelope"
        );
        assert_eq!(
            message.headers.get(SEQUENCE_HEADER),
            Some(&event.sequence.to_string())
        );
        assert_eq!(
            message.headers.get(EVENT_TYPE_HEADER),
            Some(&event.event_type)
        );
        sequences
            .entry(&event.aggregate_id)
            .or_default()
            .push(event.sequence);
    }
    assert_eq!(seen.len(), logged.len(), "every committed event published");
    // The relay saves its checkpoint after the acks; once it is at the last event, its counts are final too.
    if let Some(last) = logged.last().map(|e| e.position) {
        wait_until("the checkpoint reaches the last event", || async {
            stack.checkpoint().await == Some(last)
        })
        .await;
    }
    for (aggregate_id, sequences) in sequences {
        let in_order: Vec<u64> = (1..=sequences.len() as u64).collect();
        assert_eq!(
            sequences, in_order,
            "{aggregate_id}'s events in sequence order"
        );
    }
    logged
}

/// Declares each shared case once per backend: `memory::<case>` and `postgres::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let stack = crate::Stack::memory().await;
                    crate::cases::$case(&stack).await;
                    stack.finish().await;
                }
            )*
        }
        mod postgres_nats {
            $(
                #[tokio::test]
                async fn $case() {
                    let stack = crate::Stack::postgres().await;
                    crate::cases::$case(&stack).await;
                    stack.finish().await;
                }
            )*
        }
    };
}

conformance!(
    every_committed_event_is_published_once_in_aggregate_order_and_checkpointed,
    a_relay_dying_between_publish_and_checkpoint_is_replaced_without_loss_or_duplicates,
    failed_publishes_and_lost_acks_are_retried_without_loss_or_duplicates,
    a_stopped_relay_resumes_from_its_checkpoint,
    a_commit_of_this_process_makes_an_idle_relay_publish_at_once,
);
