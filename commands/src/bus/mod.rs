//! The message-bus port: publish with deduplication, durable explicit-ack pull consumers, and the latest-price board.
//!
//! Two adapters implement it with the same semantics, checked by one conformance suite (`tests/bus`):
//! [`nats::NatsBus`] over JetStream, and [`memory::MemoryBus`], which the embedded mode and backtests use (an adapter,
//! not a mock). Delivery is at least once: consumers must be idempotent, which the aggregates are (a tick number
//! already run is rejected).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use strom_sim::PriceObserved;
use thiserror::Error;

pub mod memory;
pub mod nats;
pub mod sim_publisher;
mod subjects;

pub use subjects::{validate_token, NameError, StreamKind, Subjects};

/// Message headers other than the message id. A `BTreeMap` so iteration (and anything derived from it) is
/// deterministic.
pub type Headers = BTreeMap<String, String>;

/// Header carrying the request's correlation id from HTTP through events, ticks and fills.
pub const CORRELATION_ID_HEADER: &str = "Strom-Correlation-Id";

/// How long EVENTS and TICKS remember a message id to drop a republished copy. One hour covers a relay or scheduler
/// that crashes after publishing but before recording it, restarts (even after a slow deploy) and republishes
/// everything unconfirmed; JetStream keeps the id index in memory for the window, so it must not be unbounded.
/// Events older than that are also guarded by consumer idempotency.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Market-data dedup window: JetStream's default two minutes. A price is a pure function of (seed, symbol, t), so a
/// copy republished later is harmless, and a short window keeps the id index small at one message/s per symbol.
pub const MD_DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);
/// Market-data history kept per symbol (the contract's figure): about 16 minutes of 1-second prices for charts and
/// late subscribers, while a year of them never accumulates. Older prices can be recomputed from the seed.
pub const MD_MAX_MSGS_PER_SUBJECT: u32 = 1_000;
/// Default time a consumer may hold a message before it is redelivered: a tick's work (strategy, risk, one command)
/// takes milliseconds, so 30 s only fires for a worker that died or hung, yet a restart recovers the work quickly.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Default deliveries before a message is given up on: a transient failure (database restart) gets four retries;
/// a poison message stops after five instead of looping forever.
pub const MAX_DELIVER: u32 = 5;
/// Unacknowledged messages one durable consumer may have out at once (JetStream's default for pull consumers):
/// bounds the work held by slow or stuck workers; delivery pauses until some are settled.
pub const MAX_ACK_PENDING: usize = 1_000;

/// How a stream keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Kept until a limit (per-subject count) drops them; any number of consumers read them.
    Limits,
    /// Removed once acknowledged; each message goes to one consumer. Consumers' filters must not overlap.
    WorkQueue,
}

/// The configuration of one stream, the single source both adapters build from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    pub kind: StreamKind,
    pub retention: Retention,
    pub duplicate_window: Duration,
    pub max_msgs_per_subject: Option<u32>,
}

impl StreamSpec {
    pub fn of(kind: StreamKind) -> Self {
        match kind {
            StreamKind::Events => Self {
                kind,
                retention: Retention::Limits,
                duplicate_window: DUPLICATE_WINDOW,
                max_msgs_per_subject: None,
            },
            StreamKind::Ticks => Self {
                kind,
                retention: Retention::WorkQueue,
                duplicate_window: DUPLICATE_WINDOW,
                max_msgs_per_subject: None,
            },
            StreamKind::MarketData => Self {
                kind,
                retention: Retention::Limits,
                duplicate_window: MD_DUPLICATE_WINDOW,
                max_msgs_per_subject: Some(MD_MAX_MSGS_PER_SUBJECT),
            },
        }
    }
}

/// What a publish did: the message's sequence in its stream, and whether it was a duplicate of a message already
/// stored under the same id (then `stream_sequence` is the original's and nothing new was stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAck {
    pub stream_sequence: u64,
    pub duplicate: bool,
}

/// A durable pull consumer to open (or re-open: the same durable name continues where it was left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub stream: StreamKind,
    pub durable: String,
    /// Only subjects matching this pattern (within the stream's subjects); `None` = the whole stream.
    pub filter_subject: Option<String>,
    pub ack_wait: Duration,
    pub max_deliver: u32,
}

impl ConsumerSpec {
    /// A consumer with the contract's defaults ([`ACK_WAIT`], [`MAX_DELIVER`]) and no filter.
    pub fn new(stream: StreamKind, durable: impl Into<String>) -> Self {
        Self {
            stream,
            durable: durable.into(),
            filter_subject: None,
            ack_wait: ACK_WAIT,
            max_deliver: MAX_DELIVER,
        }
    }

    pub fn with_filter(mut self, filter_subject: impl Into<String>) -> Self {
        self.filter_subject = Some(filter_subject.into());
        self
    }

    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    pub fn with_max_deliver(mut self, max_deliver: u32) -> Self {
        self.max_deliver = max_deliver;
        self
    }

    /// Checks the durable name, filter, ack wait and max deliveries against the stream's subjects.
    ///
    /// # Errors
    /// [`BusError::Name`] for a bad durable name, [`BusError::InvalidConsumer`] for the rest.
    pub fn validate(&self, subjects: &Subjects) -> Result<(), BusError> {
        validate_token("durable consumer name", &self.durable)?;
        let invalid = |reason: String| BusError::InvalidConsumer {
            durable: self.durable.clone(),
            reason,
        };
        if self.ack_wait.is_zero() {
            return Err(invalid("ack_wait must be positive".into()));
        }
        if self.max_deliver == 0 {
            return Err(invalid("max_deliver must be at least 1".into()));
        }
        if let Some(filter) = &self.filter_subject {
            let within = format!("{}.{}.", subjects.prefix(), self.stream.token());
            let rest = filter.strip_prefix(&within).unwrap_or_default();
            if rest.is_empty() || rest.split('.').any(str::is_empty) {
                return Err(invalid(format!(
                    "filter `{filter}` is not within the stream's subjects `{within}>`"
                )));
            }
        }
        Ok(())
    }
}

/// Message counts of one stream (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Messages currently stored.
    pub messages: u64,
    /// Sequence of the last message ever stored (0 if none).
    pub last_sequence: u64,
}

/// Errors from the bus.
#[derive(Debug, Error)]
pub enum BusError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("invalid header `{name}`: {reason}")]
    InvalidHeader { name: String, reason: &'static str },
    #[error("no stream captures subject `{subject}`; was ensure_topology run for this prefix?")]
    NoStream { subject: String },
    #[error("stream `{stream}` or price bucket does not exist; was ensure_topology run for this prefix?")]
    NoTopology { stream: String },
    #[error("invalid consumer `{durable}`: {reason}")]
    InvalidConsumer { durable: String, reason: String },
    #[error(
        "work-queue stream `{stream}` cannot get consumer `{durable}`: {detail}; each message may go to only one \
         consumer, so consumers' filters must not overlap"
    )]
    WorkQueueOverlap {
        stream: String,
        durable: String,
        detail: String,
    },
    #[error("the consumer's message stream ended (connection closed or consumer deleted)")]
    ConsumerClosed,
    #[error("price board entry `{symbol}` is not a valid PriceObserved: {source}")]
    BadPrice {
        symbol: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("NATS {operation} failed: {source}")]
    Nats {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BusError {
    pub(crate) fn nats(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Nats {
            operation,
            source: source.into(),
        }
    }
}

/// Checks what a publish carries besides the payload: a non-empty message id without line breaks, and the headers
/// (see [`validate_headers`]).
///
/// # Errors
/// [`BusError::InvalidHeader`] naming the bad header (`Nats-Msg-Id` for the id).
pub fn validate_publish(msg_id: &str, headers: &Headers) -> Result<(), BusError> {
    let bad_id = |reason| BusError::InvalidHeader {
        name: "Nats-Msg-Id".to_owned(),
        reason,
    };
    if msg_id.is_empty() {
        return Err(bad_id(
            "the message id must not be empty (it is what deduplicates)",
        ));
    }
    if msg_id.contains(['\r', '\n']) {
        return Err(bad_id("the message id must not contain line breaks"));
    }
    validate_headers(headers)
}

/// Checks header names and values: a name is printable ASCII without ':' or spaces and does not start with `Nats-`
/// (reserved for JetStream's own control headers, which a caller must not set by accident); a value has no line
/// breaks.
///
/// # Errors
/// [`BusError::InvalidHeader`] naming the first bad header.
pub fn validate_headers(headers: &Headers) -> Result<(), BusError> {
    for (name, value) in headers {
        let reason = if name.is_empty() {
            Some("the name is empty")
        } else if !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            Some("the name must be printable ASCII without ':' or spaces")
        } else if name.len() >= 5 && name[..5].eq_ignore_ascii_case("nats-") {
            Some("`Nats-` headers are reserved for JetStream (the message id is a separate argument)")
        } else if value.contains(['\r', '\n']) {
            Some("the value must not contain line breaks")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(BusError::InvalidHeader {
                name: name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Checks a price-board key (a symbol): a valid subject token made of `A-Z a-z 0-9 - _ = /` only, the characters
/// NATS KV accepts in keys besides `.` (which would split the key into subject tokens).
///
/// # Errors
/// [`BusError::Name`] saying why.
pub fn validate_price_key(symbol: &str) -> Result<(), BusError> {
    validate_token("symbol", symbol)?;
    if !symbol
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_=/".contains(&b))
    {
        return Err(NameError {
            what: "symbol",
            value: symbol.to_owned(),
            reason: "may only contain A-Z, a-z, 0-9, '-', '_', '=' and '/' (it is a KV key)",
        }
        .into());
    }
    Ok(())
}

/// The message bus. Object-safe: the roles hold an `Arc<dyn Bus>` chosen at startup.
#[async_trait]
pub trait Bus: Send + Sync {
    fn subjects(&self) -> &Subjects;

    /// Creates (or updates to the current [`StreamSpec`]s) the three streams and the price bucket. Idempotent.
    ///
    /// # Errors
    /// The backend refuses (e.g. an existing stream with an incompatible retention).
    async fn ensure_topology(&self) -> Result<(), BusError>;

    /// Publishes `payload` on `subject` under message id `msg_id`; a second publish of the same id within the
    /// stream's duplicate window stores nothing and returns `duplicate: true`.
    ///
    /// # Errors
    /// No stream captures `subject`, a header is invalid, or the backend fails (the message may or may not be
    /// stored: publish again with the same id).
    async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        headers: &Headers,
        payload: Vec<u8>,
    ) -> Result<PublishAck, BusError>;

    /// Opens a handle on the durable consumer `spec.durable`, creating it on first use (delivering from the start
    /// of the stream). Several handles on one durable share its messages: each message goes to one of them.
    ///
    /// # Errors
    /// The spec is invalid, the stream does not exist, or (work queue) another consumer's filter overlaps.
    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>, BusError>;

    /// The latest-price board (KV bucket `<prefix>_prices`).
    ///
    /// # Errors
    /// The bucket does not exist yet.
    async fn price_board(&self) -> Result<Arc<dyn PriceBoard>, BusError>;

    /// Message counts of a stream.
    ///
    /// # Errors
    /// The stream does not exist.
    async fn stream_stats(&self, kind: StreamKind) -> Result<StreamStats, BusError>;
}

/// One worker's handle on a durable consumer.
#[async_trait]
pub trait Consumer: Send {
    /// The next message for this worker, waiting at most `max_wait`; `None` if none came. A message not settled
    /// (ack/nak/term) within the consumer's ack wait is delivered again, to this or another worker, up to
    /// `max_deliver` times in all. Cancel-safe: dropping the future loses no message.
    ///
    /// # Errors
    /// The backend fails; the handle may be used again (the failure can be transient).
    async fn next(&mut self, max_wait: Duration) -> Result<Option<Delivery>, BusError>;
}

/// How a delivery was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack,
    Nak(Option<Duration>),
    Term,
}

/// Settles one delivery with the adapter that made it.
#[async_trait]
pub(crate) trait Settler: Send + Sync {
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), BusError>;
}

/// A message handed to a consumer, to be settled exactly once with [`ack`](Self::ack), [`nak`](Self::nak) or
/// [`term`](Self::term) (each consumes it).
pub struct Delivery {
    pub subject: String,
    pub msg_id: Option<String>,
    pub headers: Headers,
    pub payload: Vec<u8>,
    pub stream_sequence: u64,
    /// 1 on first delivery, 2 on the first redelivery, …
    pub delivery_count: u64,
    settler: Box<dyn Settler>,
}

impl Delivery {
    pub(crate) fn new(
        subject: String,
        msg_id: Option<String>,
        headers: Headers,
        payload: Vec<u8>,
        stream_sequence: u64,
        delivery_count: u64,
        settler: Box<dyn Settler>,
    ) -> Self {
        Self {
            subject,
            msg_id,
            headers,
            payload,
            stream_sequence,
            delivery_count,
            settler,
        }
    }

    pub fn is_redelivery(&self) -> bool {
        self.delivery_count > 1
    }

    /// Done with the message: it is not delivered again (and leaves a work-queue stream). Confirmed by the backend
    /// before returning, so "acked" really means "will not come back".
    ///
    /// # Errors
    /// The backend fails; the message will then be redelivered after the ack wait.
    pub async fn ack(self) -> Result<(), BusError> {
        self.settler.settle(Settle::Ack).await
    }

    /// Not now: deliver it again after `delay` (immediately if `None`). Counts towards max_deliver.
    ///
    /// # Errors
    /// The backend fails; the message will then be redelivered after the ack wait anyway.
    pub async fn nak(self, delay: Option<Duration>) -> Result<(), BusError> {
        self.settler.settle(Settle::Nak(delay)).await
    }

    /// Never deliver it again, without having processed it (a poison message; log why before calling).
    ///
    /// # Errors
    /// The backend fails.
    pub async fn term(self) -> Result<(), BusError> {
        self.settler.settle(Settle::Term).await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.subject)
            .field("msg_id", &self.msg_id)
            .field("headers", &self.headers)
            .field("payload_len", &self.payload.len())
            .field("stream_sequence", &self.stream_sequence)
            .field("delivery_count", &self.delivery_count)
            .finish_non_exhaustive()
    }
}

/// The latest price per symbol.
#[async_trait]
pub trait PriceBoard: Send + Sync {
    /// Records `price` as the latest for its symbol (last write wins).
    ///
    /// # Errors
    /// The symbol is not a valid key, or the backend fails.
    async fn put(&self, price: &PriceObserved) -> Result<(), BusError>;

    /// The latest price of `symbol`, if any was put.
    ///
    /// # Errors
    /// The symbol is not a valid key, the stored value does not decode, or the backend fails.
    async fn get(&self, symbol: &str) -> Result<Option<PriceObserved>, BusError>;
}
