//! The in-memory bus: the same streams, dedup windows, durable consumers, redelivery and work-queue semantics as
//! JetStream, inside one process. Used by the embedded mode, backtests and the demo; checked against the NATS
//! adapter by the conformance suite.
//!
//! Deterministic: messages are delivered in stream-sequence order, due redeliveries (lowest sequence first) before
//! new messages, and all state lives in ordered maps. Time is `tokio::time::Instant`, so tests may pause it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use strom_sim::PriceObserved;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::subjects::{patterns_overlap, subject_matches};
use super::{
    validate_price_key, Bus, BusError, Consumer, ConsumerSpec, Delivery, Headers, PriceBoard,
    PublishAck, Retention, Settle, Settler, StreamKind, StreamSpec, StreamStats, Subjects,
    MAX_ACK_PENDING,
};

/// Messages one memory stream holds at most; beyond it the oldest is dropped (JetStream's discard-old limit), with
/// a warning. The memory adapter lives in one process's RAM, so even the event stream needs a ceiling; a million
/// small messages is a few hundred MB at worst, and the event store (not the bus) is the system of record.
pub const MEMORY_STREAM_MAX_MESSAGES: usize = 1_000_000;

/// The in-memory bus. Cheap to clone: clones share the same streams.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    subjects: Subjects,
    /// `None` until `ensure_topology`, like a NATS server without our streams.
    state: Mutex<Option<Topology>>,
    /// Wakes consumers waiting on a stream (indexed by `StreamKind::index`) when a message is published or nak'ed.
    wakers: [Notify; 3],
}

struct Topology {
    streams: [MemStream; 3],
    prices: BTreeMap<String, PriceObserved>,
}

struct Stored {
    subject: String,
    msg_id: Option<String>,
    headers: Headers,
    payload: Vec<u8>,
}

struct MemStream {
    spec: StreamSpec,
    name: String,
    messages: BTreeMap<u64, Stored>,
    last_sequence: u64,
    /// Sequences per subject, only kept when the stream limits messages per subject.
    per_subject: BTreeMap<String, VecDeque<u64>>,
    /// Message id → sequence of the original, for ids published within the duplicate window.
    dedup: BTreeMap<String, u64>,
    /// The same ids in publish order with their time, to expire them.
    dedup_order: VecDeque<(Instant, String)>,
    consumers: BTreeMap<String, MemConsumer>,
}

struct MemConsumer {
    filter: Option<String>,
    ack_wait: Duration,
    max_deliver: u32,
    /// Next stream sequence never delivered to this consumer.
    cursor: u64,
    /// Delivered, not yet settled: sequence → deliveries so far and when it is due again.
    pending: BTreeMap<u64, Pending>,
}

struct Pending {
    deliveries: u32,
    due_at: Instant,
}

impl MemoryBus {
    pub fn new(subjects: Subjects) -> Self {
        Self {
            inner: Arc::new(Inner {
                subjects,
                state: Mutex::new(None),
                wakers: [Notify::new(), Notify::new(), Notify::new()],
            }),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Option<Topology>> {
        // A panic while holding the lock cannot leave a half-applied change (each critical section is
        // all-or-nothing on plain maps), so a poisoned lock's data is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_stream<T>(
        &self,
        kind: StreamKind,
        f: impl FnOnce(&mut MemStream) -> Result<T, BusError>,
    ) -> Result<T, BusError> {
        let mut state = self.lock();
        let topology = state.as_mut().ok_or_else(|| BusError::NoTopology {
            stream: self.subjects.stream_name(kind),
        })?;
        f(&mut topology.streams[kind.index()])
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    async fn ensure_topology(&self) -> Result<(), BusError> {
        let mut state = self.inner.lock();
        if state.is_none() {
            let subjects = &self.inner.subjects;
            *state = Some(Topology {
                streams: StreamKind::ALL
                    .map(|kind| MemStream::new(StreamSpec::of(kind), subjects.stream_name(kind))),
                prices: BTreeMap::new(),
            });
        }
        Ok(())
    }

    async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        headers: &Headers,
        payload: Vec<u8>,
    ) -> Result<PublishAck, BusError> {
        let kind = self
            .inner
            .subjects
            .stream_of(subject)
            .ok_or_else(|| BusError::NoStream {
                subject: subject.to_owned(),
            })?;
        super::validate_publish(msg_id, headers)?;
        let stored = Stored {
            subject: subject.to_owned(),
            msg_id: Some(msg_id.to_owned()),
            headers: headers.clone(),
            payload,
        };
        let ack = self
            .inner
            .with_stream(kind, |stream| Ok(stream.publish(Instant::now(), stored)))?;
        if !ack.duplicate {
            self.inner.wakers[kind.index()].notify_waiters();
        }
        Ok(ack)
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        spec.validate(&self.inner.subjects)?;
        self.inner
            .with_stream(spec.stream, |stream| stream.open_consumer(&spec))?;
        Ok(Box::new(MemoryConsumer {
            inner: Arc::clone(&self.inner),
            kind: spec.stream,
            durable: spec.durable,
        }))
    }

    async fn price_board(&self) -> Result<Arc<dyn PriceBoard>, BusError> {
        if self.inner.lock().is_none() {
            return Err(BusError::NoTopology {
                stream: self.inner.subjects.price_bucket(),
            });
        }
        Ok(Arc::new(MemoryPriceBoard {
            inner: Arc::clone(&self.inner),
        }))
    }

    async fn stream_stats(&self, kind: StreamKind) -> Result<StreamStats, BusError> {
        self.inner.with_stream(kind, |stream| {
            Ok(StreamStats {
                messages: stream.messages.len() as u64,
                last_sequence: stream.last_sequence,
            })
        })
    }
}

impl MemStream {
    fn new(spec: StreamSpec, name: String) -> Self {
        Self {
            spec,
            name,
            messages: BTreeMap::new(),
            last_sequence: 0,
            per_subject: BTreeMap::new(),
            dedup: BTreeMap::new(),
            dedup_order: VecDeque::new(),
            consumers: BTreeMap::new(),
        }
    }

    fn publish(&mut self, now: Instant, stored: Stored) -> PublishAck {
        self.expire_ids(now);
        if let Some(seq) = stored.msg_id.as_ref().and_then(|id| self.dedup.get(id)) {
            return PublishAck {
                stream_sequence: *seq,
                duplicate: true,
            };
        }
        self.last_sequence += 1;
        let seq = self.last_sequence;
        if let Some(id) = &stored.msg_id {
            self.dedup.insert(id.clone(), seq);
            self.dedup_order.push_back((now, id.clone()));
        }
        if let Some(limit) = self.spec.max_msgs_per_subject {
            let seqs = self.per_subject.entry(stored.subject.clone()).or_default();
            seqs.push_back(seq);
            if seqs.len() > limit as usize {
                if let Some(oldest) = seqs.pop_front() {
                    self.messages.remove(&oldest);
                }
            }
        }
        self.messages.insert(seq, stored);
        if self.messages.len() > MEMORY_STREAM_MAX_MESSAGES {
            if let Some((&oldest, _)) = self.messages.first_key_value() {
                tracing::warn!(stream = %self.name, seq = oldest, "memory stream full; dropping its oldest message");
                self.remove(oldest);
            }
        }
        PublishAck {
            stream_sequence: seq,
            duplicate: false,
        }
    }

    fn expire_ids(&mut self, now: Instant) {
        while let Some((at, _)) = self.dedup_order.front() {
            if now.duration_since(*at) < self.spec.duplicate_window {
                break;
            }
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
    }

    fn remove(&mut self, seq: u64) {
        if let Some(stored) = self.messages.remove(&seq) {
            if let Some(seqs) = self.per_subject.get_mut(&stored.subject) {
                seqs.retain(|s| *s != seq);
            }
        }
    }

    fn open_consumer(&mut self, spec: &ConsumerSpec) -> Result<(), BusError> {
        if self.spec.retention == Retention::WorkQueue {
            let mine = spec.filter_subject.as_deref().unwrap_or(">");
            let clash = self.consumers.iter().find(|(name, other)| {
                **name != spec.durable
                    && patterns_overlap(mine, other.filter.as_deref().unwrap_or(">"))
            });
            if let Some((existing, _)) = clash {
                return Err(BusError::WorkQueueOverlap {
                    stream: self.name.clone(),
                    durable: spec.durable.clone(),
                    detail: format!("consumer `{existing}` already takes overlapping subjects"),
                });
            }
        }
        let first = self.messages.first_key_value().map_or(1, |(seq, _)| *seq);
        let consumer = self
            .consumers
            .entry(spec.durable.clone())
            .or_insert_with(|| MemConsumer {
                filter: None,
                ack_wait: spec.ack_wait,
                max_deliver: spec.max_deliver,
                cursor: first,
                pending: BTreeMap::new(),
            });
        // Re-opening with another configuration updates it, as JetStream's create-or-update does.
        consumer.filter.clone_from(&spec.filter_subject);
        consumer.ack_wait = spec.ack_wait;
        consumer.max_deliver = spec.max_deliver;
        Ok(())
    }

    /// Hands the next message to a worker of `durable`, or says when one may become due.
    fn take_next(&mut self, durable: &str, now: Instant) -> Result<Next, BusError> {
        let consumer = self
            .consumers
            .get_mut(durable)
            .ok_or(BusError::ConsumerClosed)?;
        let messages = &self.messages;
        // Messages dropped by a limit (or acked via another path) cannot be redelivered.
        consumer.pending.retain(|seq, _| messages.contains_key(seq));
        let (due, wake) = consumer.due_redelivery(now);
        let (seq, deliveries) = match due {
            Some(seq) => {
                let p = consumer
                    .pending
                    .get_mut(&seq)
                    .ok_or(BusError::ConsumerClosed)?;
                p.deliveries += 1;
                p.due_at = now + consumer.ack_wait;
                (seq, p.deliveries)
            }
            None => {
                if consumer.pending.len() >= MAX_ACK_PENDING {
                    return Ok(Next::Wait(wake));
                }
                let filter = consumer.filter.as_deref();
                let found = messages
                    .range(consumer.cursor..)
                    .find(|(_, m)| filter.is_none_or(|f| subject_matches(f, &m.subject)))
                    .map(|(seq, _)| *seq);
                let Some(seq) = found else {
                    consumer.cursor = self.last_sequence + 1;
                    return Ok(Next::Wait(wake));
                };
                consumer.cursor = seq + 1;
                let due_at = now + consumer.ack_wait;
                consumer.pending.insert(
                    seq,
                    Pending {
                        deliveries: 1,
                        due_at,
                    },
                );
                (seq, 1)
            }
        };
        let m = &messages[&seq];
        Ok(Next::Message {
            seq,
            deliveries,
            subject: m.subject.clone(),
            msg_id: m.msg_id.clone(),
            headers: m.headers.clone(),
            payload: m.payload.clone(),
        })
    }

    fn settle(&mut self, durable: &str, seq: u64, how: Settle, now: Instant) {
        let Some(consumer) = self.consumers.get_mut(durable) else {
            return;
        };
        match how {
            Settle::Nak(delay) => {
                if let Some(p) = consumer.pending.get_mut(&seq) {
                    p.due_at = now + delay.unwrap_or_default();
                }
            }
            Settle::Ack | Settle::Term => {
                let was_pending = consumer.pending.remove(&seq).is_some();
                if was_pending && self.spec.retention == Retention::WorkQueue {
                    self.remove(seq);
                }
            }
        }
    }
}

impl MemConsumer {
    /// The lowest pending sequence whose ack wait has run out and that may still be delivered, and otherwise the
    /// earliest instant one will be due. Messages out of deliveries are dropped from pending (never sent again).
    fn due_redelivery(&mut self, now: Instant) -> (Option<u64>, Option<Instant>) {
        let max_deliver = self.max_deliver;
        self.pending
            .retain(|_, p| p.due_at > now || p.deliveries < max_deliver);
        let due = self
            .pending
            .iter()
            .find(|(_, p)| p.due_at <= now)
            .map(|(seq, _)| *seq);
        let wake = self.pending.values().map(|p| p.due_at).min();
        (due, wake)
    }
}

enum Next {
    Message {
        seq: u64,
        deliveries: u32,
        subject: String,
        msg_id: Option<String>,
        headers: Headers,
        payload: Vec<u8>,
    },
    /// Nothing now; something may become due at this instant.
    Wait(Option<Instant>),
}

struct MemoryConsumer {
    inner: Arc<Inner>,
    kind: StreamKind,
    durable: String,
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self, max_wait: Duration) -> Result<Option<Delivery>, BusError> {
        let deadline = Instant::now() + max_wait;
        let waker = &self.inner.wakers[self.kind.index()];
        loop {
            // Registered before looking, so a publish between the look and the wait still wakes us.
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let next = self
                .inner
                .with_stream(self.kind, |stream| stream.take_next(&self.durable, now))?;
            match next {
                Next::Message {
                    seq,
                    deliveries,
                    subject,
                    msg_id,
                    headers,
                    payload,
                } => {
                    let settler = MemorySettler {
                        inner: Arc::clone(&self.inner),
                        kind: self.kind,
                        durable: self.durable.clone(),
                        seq,
                    };
                    return Ok(Some(Delivery::new(
                        subject,
                        msg_id,
                        headers,
                        payload,
                        seq,
                        u64::from(deliveries),
                        Box::new(settler),
                    )));
                }
                Next::Wait(_) if now >= deadline => return Ok(None),
                Next::Wait(wake) => {
                    let until = wake.map_or(deadline, |w| w.min(deadline));
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
            }
        }
    }
}

struct MemorySettler {
    inner: Arc<Inner>,
    kind: StreamKind,
    durable: String,
    seq: u64,
}

#[async_trait]
impl Settler for MemorySettler {
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), BusError> {
        self.inner.with_stream(self.kind, |stream| {
            stream.settle(&self.durable, self.seq, how, Instant::now());
            Ok(())
        })?;
        if matches!(how, Settle::Nak(_)) {
            self.inner.wakers[self.kind.index()].notify_waiters();
        }
        Ok(())
    }
}

struct MemoryPriceBoard {
    inner: Arc<Inner>,
}

impl MemoryPriceBoard {
    fn with_prices<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, PriceObserved>) -> T,
    ) -> Result<T, BusError> {
        let mut state = self.inner.lock();
        let topology = state.as_mut().ok_or_else(|| BusError::NoTopology {
            stream: self.inner.subjects.price_bucket(),
        })?;
        Ok(f(&mut topology.prices))
    }
}

#[async_trait]
impl PriceBoard for MemoryPriceBoard {
    async fn put(&self, price: &PriceObserved) -> Result<(), BusError> {
        validate_price_key(&price.symbol)?;
        self.with_prices(|prices| {
            prices.insert(price.symbol.clone(), price.clone());
        })
    }

    async fn get(&self, symbol: &str) -> Result<Option<PriceObserved>, BusError> {
        validate_price_key(symbol)?;
        self.with_prices(|prices| prices.get(symbol).cloned())
    }
}
