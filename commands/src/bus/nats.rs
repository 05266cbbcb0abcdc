//! The JetStream adapter of the bus port: streams `<PREFIX>_EVENTS|TICKS|MD`, deduplication by `Nats-Msg-Id`,
//! durable explicit-ack pull consumers, and the `<prefix>_prices` KV bucket.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, kv, AckKind, ErrorCode};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use async_trait::async_trait;
use futures::StreamExt;
use strom_sim::PriceObserved;

use super::{
    validate_price_key, validate_publish, Bus, BusError, Consumer, ConsumerSpec, Delivery, Headers,
    PriceBoard, PublishAck, Retention, Settle, Settler, StreamKind, StreamSpec, StreamStats,
    Subjects, MAX_ACK_PENDING,
};

/// Messages one pull request asks for. Each worker buffers at most this many (their ack wait runs meanwhile), so
/// it is small enough that one busy worker does not hoard ticks others could run, and large enough that a worker
/// at 10,000 ticks/s makes only a few hundred pull requests per second.
const PULL_BATCH: usize = 32;
/// KV history per key: only the latest price is ever read.
const PRICE_HISTORY: i64 = 1;

/// The bus over NATS JetStream.
#[derive(Clone)]
pub struct NatsBus {
    js: jetstream::Context,
    subjects: Subjects,
}

impl NatsBus {
    pub fn new(client: async_nats::Client, subjects: Subjects) -> Self {
        Self {
            js: jetstream::new(client),
            subjects,
        }
    }

    /// # Errors
    /// The URL is malformed or the server cannot be reached.
    pub async fn connect(url: &str, subjects: Subjects) -> Result<Self, BusError> {
        let client = async_nats::connect(url)
            .await
            .map_err(|e| BusError::nats("connect", e))?;
        Ok(Self::new(client, subjects))
    }

    /// Deletes this prefix's streams and price bucket (tests, and `strom` operators resetting a deployment).
    /// Missing ones are skipped.
    ///
    /// # Errors
    /// The server refuses a deletion for another reason than "not found".
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        for kind in StreamKind::ALL {
            match self.js.delete_stream(self.subjects.stream_name(kind)).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e.kind()) => {}
                Err(e) => return Err(BusError::nats("delete stream", e)),
            }
        }
        // The bucket is the stream `KV_<bucket>`; deleting it through the stream API reports "not found" cleanly.
        let kv_stream = format!("KV_{}", self.subjects.price_bucket());
        match self.js.delete_stream(kv_stream).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e.kind()) => Ok(()),
            Err(e) => Err(BusError::nats("delete price bucket", e)),
        }
    }

    async fn stream(&self, kind: StreamKind) -> Result<jetstream::stream::Stream, BusError> {
        self.js
            .get_stream(self.subjects.stream_name(kind))
            .await
            .map_err(|e| {
                if is_not_found(&e.kind()) {
                    BusError::NoTopology {
                        stream: self.subjects.stream_name(kind),
                    }
                } else {
                    BusError::nats("get stream", e)
                }
            })
    }

    fn stream_config(&self, spec: StreamSpec) -> stream::Config {
        stream::Config {
            name: self.subjects.stream_name(spec.kind),
            subjects: vec![self.subjects.stream_subjects(spec.kind)],
            retention: match spec.retention {
                Retention::Limits => RetentionPolicy::Limits,
                Retention::WorkQueue => RetentionPolicy::WorkQueue,
            },
            duplicate_window: spec.duplicate_window,
            // -1 is JetStream's "unlimited".
            max_messages_per_subject: spec.max_msgs_per_subject.map_or(-1, i64::from),
            storage: StorageType::File,
            ..Default::default()
        }
    }

    /// The stream behind the KV bucket, as `create_key_value` would make it (history 1, rollups, direct get).
    /// Built here because `create_key_value` first queries the account info in a shape NATS 2.9 servers do not
    /// send, and fails there.
    fn price_bucket_config(&self) -> stream::Config {
        let bucket = self.subjects.price_bucket();
        stream::Config {
            name: format!("KV_{bucket}"),
            description: Some("latest PriceObserved per symbol".into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: PRICE_HISTORY,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: DiscardPolicy::New,
            num_replicas: 1,
            storage: StorageType::File,
            ..Default::default()
        }
    }
}

fn is_not_found(kind: &jetstream::context::GetStreamErrorKind) -> bool {
    matches!(kind, jetstream::context::GetStreamErrorKind::JetStream(e)
        if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

#[async_trait]
impl Bus for NatsBus {
    fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    async fn ensure_topology(&self) -> Result<(), BusError> {
        for kind in StreamKind::ALL {
            self.js
                .create_or_update_stream(self.stream_config(StreamSpec::of(kind)))
                .await
                .map_err(|e| BusError::nats("create stream", e))?;
        }
        self.js
            .create_or_update_stream(self.price_bucket_config())
            .await
            .map_err(|e| BusError::nats("create price bucket", e))?;
        Ok(())
    }

    async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        headers: &Headers,
        payload: Vec<u8>,
    ) -> Result<PublishAck, BusError> {
        if self.subjects.stream_of(subject).is_none() {
            return Err(BusError::NoStream {
                subject: subject.to_owned(),
            });
        }
        validate_publish(msg_id, headers)?;
        let mut map = HeaderMap::new();
        map.insert(NATS_MESSAGE_ID, msg_id);
        for (name, value) in headers {
            let bad = |reason| BusError::InvalidHeader {
                name: name.clone(),
                reason,
            };
            let name =
                HeaderName::from_str(name).map_err(|_| bad("not a valid NATS header name"))?;
            let value =
                HeaderValue::from_str(value).map_err(|_| bad("not a valid NATS header value"))?;
            map.insert(name, value);
        }
        let ack = self
            .js
            .publish_with_headers(subject.to_owned(), map, payload.into())
            .await
            .map_err(|e| BusError::nats("publish", e))?
            .await
            .map_err(|e| match e.kind() {
                jetstream::context::PublishErrorKind::StreamNotFound => BusError::NoStream {
                    subject: subject.to_owned(),
                },
                _ => BusError::nats("publish ack", e),
            })?;
        Ok(PublishAck {
            stream_sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        spec.validate(&self.subjects)?;
        let stream = self.stream(spec.stream).await?;
        let config = pull::Config {
            durable_name: Some(spec.durable.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver: i64::from(spec.max_deliver),
            max_ack_pending: MAX_ACK_PENDING as i64,
            filter_subject: spec.filter_subject.clone().unwrap_or_default(),
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.map_err(|e| {
            let code = match e.kind() {
                jetstream::stream::ConsumerErrorKind::JetStream(j) => Some(j.error_code()),
                _ => None,
            };
            if code == Some(ErrorCode::CONSUMER_WQ_MULTIPLE_UNFILTERED)
                || code == Some(ErrorCode::CONSUMER_WQ_CONSUMER_NOT_UNIQUE)
            {
                BusError::WorkQueueOverlap {
                    stream: self.subjects.stream_name(spec.stream),
                    durable: spec.durable.clone(),
                    detail: e.to_string(),
                }
            } else {
                BusError::nats("create consumer", e)
            }
        })?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .messages()
            .await
            .map_err(|e| BusError::nats("pull", e))?;
        Ok(Box::new(NatsConsumer { messages }))
    }

    async fn price_board(&self) -> Result<Arc<dyn PriceBoard>, BusError> {
        let store = self
            .js
            .get_key_value(self.subjects.price_bucket())
            .await
            .map_err(|e| BusError::nats("open price bucket", e))?;
        Ok(Arc::new(NatsPriceBoard { store }))
    }

    async fn stream_stats(&self, kind: StreamKind) -> Result<StreamStats, BusError> {
        let stream = self.stream(kind).await?;
        let state = &stream.cached_info().state;
        Ok(StreamStats {
            messages: state.messages,
            last_sequence: state.last_sequence,
        })
    }
}

struct NatsConsumer {
    messages: pull::Stream,
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn next(&mut self, max_wait: Duration) -> Result<Option<Delivery>, BusError> {
        // `StreamExt::next` is cancel-safe, so the timeout loses nothing: a message arriving later is returned by
        // the following call.
        let message = match tokio::time::timeout(max_wait, self.messages.next()).await {
            Err(_elapsed) => return Ok(None),
            Ok(None) => return Err(BusError::ConsumerClosed),
            Ok(Some(Err(e))) => return Err(BusError::nats("receive", e)),
            Ok(Some(Ok(message))) => message,
        };
        let (stream_sequence, delivered) = {
            let info = message
                .info()
                .map_err(|e| BusError::nats("read ack info", e))?;
            (info.stream_sequence, info.delivered)
        };
        let (message, acker) = message.split();
        let mut msg_id = None;
        let mut headers = Headers::new();
        for (name, values) in message.headers.iter().flat_map(HeaderMap::iter) {
            let Some(value) = values.last() else { continue };
            if *name == NATS_MESSAGE_ID {
                msg_id = Some(value.to_string());
            } else {
                headers.insert(name.to_string(), value.to_string());
            }
        }
        Ok(Some(Delivery::new(
            message.subject.to_string(),
            msg_id,
            headers,
            message.payload.to_vec(),
            stream_sequence,
            u64::try_from(delivered).unwrap_or(1),
            Box::new(NatsSettler { acker }),
        )))
    }
}

struct NatsSettler {
    acker: Acker,
}

#[async_trait]
impl Settler for NatsSettler {
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), BusError> {
        match how {
            // Waits for the server's confirmation: after `ack` returns, the message will not come back.
            Settle::Ack => self.acker.double_ack().await,
            // Naks and terms need no confirmation: if lost, the ack wait expires and the message is redelivered.
            Settle::Nak(delay) => self.acker.ack_with(AckKind::Nak(delay)).await,
            Settle::Term => self.acker.ack_with(AckKind::Term).await,
        }
        .map_err(|e| BusError::nats("acknowledge", e))
    }
}

struct NatsPriceBoard {
    store: kv::Store,
}

#[async_trait]
impl PriceBoard for NatsPriceBoard {
    async fn put(&self, price: &PriceObserved) -> Result<(), BusError> {
        validate_price_key(&price.symbol)?;
        let json = serde_json::to_vec(price).map_err(|source| BusError::BadPrice {
            symbol: price.symbol.clone(),
            source,
        })?;
        self.store
            .put(&price.symbol, json.into())
            .await
            .map_err(|e| BusError::nats("put price", e))?;
        Ok(())
    }

    async fn get(&self, symbol: &str) -> Result<Option<PriceObserved>, BusError> {
        validate_price_key(symbol)?;
        let Some(bytes) = self
            .store
            .get(symbol)
            .await
            .map_err(|e| BusError::nats("get price", e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| BusError::BadPrice {
                symbol: symbol.to_owned(),
                source,
            })
    }
}
