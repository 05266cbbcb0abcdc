//! The conformance cases, written once against `dyn Bus` and run against every adapter by `main.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use strom_commands::bus::sim_publisher::{SimPublisher, TickOutcome};
use strom_commands::bus::{
    Bus, BusError, Consumer, ConsumerSpec, Delivery, Headers, StreamKind, CORRELATION_ID_HEADER,
};
use strom_sim::{Decimal, PriceObserved, PricePath, SimFeed};

/// Ack wait of consumers that test redelivery: short so NATS tests stay quick (memory tests run on paused time).
const SHORT_ACK_WAIT: Duration = Duration::from_secs(1);
/// How long to wait for a message that should come: generous for a loaded CI machine (it returns as soon as the
/// message arrives).
const ARRIVAL: Duration = Duration::from_secs(10);
/// How long to wait to be sure nothing more comes: longer than `SHORT_ACK_WAIT`, so a redelivery would show.
const QUIET: Duration = Duration::from_millis(2_500);
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;

async fn publish(bus: &dyn Bus, subject: &str, msg_id: &str, body: &str) -> u64 {
    let ack = bus
        .publish(subject, msg_id, &Headers::new(), body.as_bytes().to_vec())
        .await
        .unwrap();
    assert!(!ack.duplicate, "{msg_id} is new");
    ack.stream_sequence
}

async fn expect(consumer: &mut dyn Consumer) -> Delivery {
    consumer
        .next(ARRIVAL)
        .await
        .unwrap()
        .expect("a message within the arrival time")
}

async fn expect_quiet(consumer: &mut dyn Consumer) {
    if let Some(d) = consumer.next(QUIET).await.unwrap() {
        panic!("expected no more messages, got {d:?}");
    }
}

fn body(d: &Delivery) -> String {
    String::from_utf8(d.payload.clone()).unwrap()
}

pub async fn messages_are_consumed_in_publish_order_per_subject(bus: Arc<dyn Bus>) {
    let s = bus.subjects().clone();
    let (a, b) = (
        s.event("Agent", "a").unwrap(),
        s.event("Agent", "b").unwrap(),
    );
    let headers = Headers::from([(CORRELATION_ID_HEADER.to_owned(), "req-1".to_owned())]);
    for i in 1..=5 {
        for subject in [&a, &b] {
            let id = format!("{subject}/{i}");
            let payload = format!("{subject} {i}").into_bytes();
            bus.publish(subject, &id, &headers, payload).await.unwrap();
        }
    }
    let mut consumer = bus
        .consumer(ConsumerSpec::new(StreamKind::Events, "projector"))
        .await
        .unwrap();
    let mut last_sequence = 0;
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..10 {
        let d = expect(consumer.as_mut()).await;
        assert!(d.stream_sequence > last_sequence, "stream order");
        last_sequence = d.stream_sequence;
        assert_eq!(d.delivery_count, 1);
        assert_eq!(d.headers, headers);
        assert_eq!(
            d.msg_id.as_deref(),
            Some(format!("{}/{}", d.subject, body(&d).rsplit(' ').next().unwrap()).as_str())
        );
        seen.push(body(&d));
        d.ack().await.unwrap();
    }
    for subject in [&a, &b] {
        let order: Vec<&String> = seen
            .iter()
            .filter(|m| m.starts_with(subject.as_str()))
            .collect();
        let expected: Vec<String> = (1..=5).map(|i| format!("{subject} {i}")).collect();
        assert_eq!(order, expected.iter().collect::<Vec<_>>());
    }
    expect_quiet(consumer.as_mut()).await;
}

pub async fn a_duplicate_msg_id_is_stored_and_delivered_once(bus: Arc<dyn Bus>) {
    let subject = bus.subjects().tick("agent-1").unwrap();
    let first = bus
        .publish(&subject, "agent-1/1/1", &Headers::new(), b"tick".to_vec())
        .await
        .unwrap();
    let second = bus
        .publish(
            &subject,
            "agent-1/1/1",
            &Headers::new(),
            b"tick again".to_vec(),
        )
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(second.stream_sequence, first.stream_sequence);
    assert_eq!(
        bus.stream_stats(StreamKind::Ticks).await.unwrap().messages,
        1
    );

    let mut consumer = bus
        .consumer(ConsumerSpec::new(StreamKind::Ticks, "runtime"))
        .await
        .unwrap();
    let d = expect(consumer.as_mut()).await;
    assert_eq!(body(&d), "tick");
    d.ack().await.unwrap();
    expect_quiet(consumer.as_mut()).await;
}

pub async fn an_unacked_message_is_redelivered_after_the_ack_wait(bus: Arc<dyn Bus>) {
    let subject = bus.subjects().tick("agent-1").unwrap();
    let seq = publish(bus.as_ref(), &subject, "agent-1/1/1", "tick").await;
    let spec = ConsumerSpec::new(StreamKind::Ticks, "runtime").with_ack_wait(SHORT_ACK_WAIT);
    let mut consumer = bus.consumer(spec).await.unwrap();

    let first = expect(consumer.as_mut()).await;
    assert_eq!((first.stream_sequence, first.delivery_count), (seq, 1));
    assert!(!first.is_redelivery());
    drop(first); // a worker that died before settling

    let again = expect(consumer.as_mut()).await;
    assert_eq!((again.stream_sequence, again.delivery_count), (seq, 2));
    assert!(again.is_redelivery());
    assert_eq!(again.msg_id.as_deref(), Some("agent-1/1/1"));
    again.ack().await.unwrap();
    expect_quiet(consumer.as_mut()).await;
}

pub async fn a_nak_with_delay_redelivers_the_message(bus: Arc<dyn Bus>) {
    let subject = bus.subjects().tick("agent-1").unwrap();
    let seq = publish(bus.as_ref(), &subject, "agent-1/1/1", "tick").await;
    let mut consumer = bus
        .consumer(ConsumerSpec::new(StreamKind::Ticks, "runtime"))
        .await
        .unwrap();
    let first = expect(consumer.as_mut()).await;
    first.nak(Some(Duration::from_millis(200))).await.unwrap();
    let again = expect(consumer.as_mut()).await;
    assert_eq!((again.stream_sequence, again.delivery_count), (seq, 2));
    again.term().await.unwrap();
    expect_quiet(consumer.as_mut()).await;
}

pub async fn deliveries_stop_after_max_deliver(bus: Arc<dyn Bus>) {
    let subject = bus.subjects().tick("agent-1").unwrap();
    publish(bus.as_ref(), &subject, "agent-1/1/1", "poison").await;
    let spec = ConsumerSpec::new(StreamKind::Ticks, "runtime")
        .with_ack_wait(SHORT_ACK_WAIT)
        .with_max_deliver(2);
    let mut consumer = bus.consumer(spec).await.unwrap();
    assert_eq!(expect(consumer.as_mut()).await.delivery_count, 1);
    assert_eq!(expect(consumer.as_mut()).await.delivery_count, 2);
    expect_quiet(consumer.as_mut()).await;
}

/// Takes and acks messages until none comes for a while; returns their bodies.
async fn drain(mut consumer: Box<dyn Consumer>) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(d) = consumer.next(QUIET).await.unwrap() {
        got.push(body(&d));
        d.ack().await.unwrap();
        // Lets the other worker in, so the memory adapter interleaves them like a real pair of workers.
        tokio::task::yield_now().await;
    }
    got
}

pub async fn workers_on_one_work_queue_consumer_never_get_the_same_message(bus: Arc<dyn Bus>) {
    let mut sent = BTreeSet::new();
    for agent in ["a1", "a2", "a3", "a4"] {
        let subject = bus.subjects().tick(agent).unwrap();
        for tick in 1..=5 {
            let id = format!("{agent}/1/{tick}");
            publish(bus.as_ref(), &subject, &id, &id).await;
            sent.insert(id);
        }
    }
    let spec = ConsumerSpec::new(StreamKind::Ticks, "runtime");
    let worker_1 = bus.consumer(spec.clone()).await.unwrap();
    let worker_2 = bus.consumer(spec).await.unwrap();
    let (got_1, got_2) = tokio::join!(drain(worker_1), drain(worker_2));

    let set_1: BTreeSet<String> = got_1.iter().cloned().collect();
    let set_2: BTreeSet<String> = got_2.iter().cloned().collect();
    assert_eq!(set_1.len(), got_1.len(), "worker 1 got a message twice");
    assert_eq!(set_2.len(), got_2.len(), "worker 2 got a message twice");
    assert!(
        set_1.is_disjoint(&set_2),
        "both workers got {:?}",
        set_1.intersection(&set_2)
    );
    assert_eq!(set_1.union(&set_2).cloned().collect::<BTreeSet<_>>(), sent);
    // A work queue forgets what was acked.
    assert_eq!(
        bus.stream_stats(StreamKind::Ticks).await.unwrap().messages,
        0
    );
}

pub async fn a_second_overlapping_consumer_on_the_work_queue_is_refused(bus: Arc<dyn Bus>) {
    bus.consumer(ConsumerSpec::new(StreamKind::Ticks, "runtime"))
        .await
        .unwrap();
    let err = match bus
        .consumer(ConsumerSpec::new(StreamKind::Ticks, "other"))
        .await
    {
        Ok(_) => panic!("a second unfiltered consumer on a work queue must be refused"),
        Err(err) => err,
    };
    assert!(matches!(err, BusError::WorkQueueOverlap { .. }), "{err}");
    // The same durable again is fine: that is how several workers share it.
    bus.consumer(ConsumerSpec::new(StreamKind::Ticks, "runtime"))
        .await
        .unwrap();
}

pub async fn acked_messages_are_not_redelivered_after_the_consumer_is_reopened(bus: Arc<dyn Bus>) {
    let subject = bus.subjects().event("Agent", "a").unwrap();
    for i in 1..=3 {
        publish(
            bus.as_ref(),
            &subject,
            &format!("e{i}"),
            &format!("event {i}"),
        )
        .await;
    }
    let spec = ConsumerSpec::new(StreamKind::Events, "projector").with_ack_wait(SHORT_ACK_WAIT);
    let mut consumer = bus.consumer(spec.clone()).await.unwrap();
    for i in 1..=2 {
        let d = expect(consumer.as_mut()).await;
        assert_eq!(body(&d), format!("event {i}"));
        d.ack().await.unwrap();
    }
    let unsettled = expect(consumer.as_mut()).await;
    assert_eq!(body(&unsettled), "event 3");
    drop(unsettled);
    drop(consumer); // the process stops

    publish(bus.as_ref(), &subject, "e4", "event 4").await;
    let mut reopened = bus.consumer(spec).await.unwrap();
    let mut got = BTreeSet::new();
    while let Some(d) = reopened.next(QUIET).await.unwrap() {
        got.insert(body(&d));
        d.ack().await.unwrap();
    }
    let expected: BTreeSet<String> = ["event 3", "event 4"].map(String::from).into();
    assert_eq!(got, expected, "acked events 1 and 2 must not come back");
}

pub async fn a_filtered_consumer_sees_only_its_subjects(bus: Arc<dyn Bus>) {
    let s = bus.subjects().clone();
    publish(bus.as_ref(), &s.event("Agent", "a").unwrap(), "e1", "agent").await;
    publish(bus.as_ref(), &s.event("Order", "o").unwrap(), "e2", "order").await;
    publish(bus.as_ref(), &s.event("Agent", "b").unwrap(), "e3", "agent").await;
    let spec = ConsumerSpec::new(StreamKind::Events, "orders")
        .with_filter(format!("{}.events.order.>", s.prefix()));
    let mut consumer = bus.consumer(spec).await.unwrap();
    let d = expect(consumer.as_mut()).await;
    assert_eq!(
        (body(&d).as_str(), d.subject.as_str()),
        ("order", s.event("Order", "o").unwrap().as_str())
    );
    d.ack().await.unwrap();
    expect_quiet(consumer.as_mut()).await;

    let outside = ConsumerSpec::new(StreamKind::Events, "bad").with_filter("elsewhere.>");
    assert!(matches!(
        bus.consumer(outside).await,
        Err(BusError::InvalidConsumer { .. })
    ));
}

pub async fn market_data_keeps_at_most_1000_messages_per_symbol(bus: Arc<dyn Bus>) {
    let (x, y) = (
        bus.subjects().market_data("X").unwrap(),
        bus.subjects().market_data("Y").unwrap(),
    );
    for t in 0..1_005 {
        publish(bus.as_ref(), &x, &format!("X/{t}"), "p").await;
    }
    for t in 0..3 {
        publish(bus.as_ref(), &y, &format!("Y/{t}"), "p").await;
    }
    let stats = bus.stream_stats(StreamKind::MarketData).await.unwrap();
    assert_eq!((stats.messages, stats.last_sequence), (1_003, 1_008));
    // The oldest X prices went, so a new consumer starts at X's 6th message.
    let mut consumer = bus
        .consumer(ConsumerSpec::new(StreamKind::MarketData, "chart"))
        .await
        .unwrap();
    assert_eq!(
        expect(consumer.as_mut()).await.msg_id.as_deref(),
        Some("X/5")
    );
}

fn observation(symbol: &str, price: i64, t: i64) -> PriceObserved {
    PriceObserved {
        symbol: symbol.to_owned(),
        price: Decimal::new(price, 2),
        at: DateTime::from_timestamp(t, 0).unwrap(),
        seed: 42,
    }
}

pub async fn the_price_board_returns_the_latest_price(bus: Arc<dyn Bus>) {
    let board = bus.price_board().await.unwrap();
    assert_eq!(board.get("BTC-USD").await.unwrap(), None);
    board
        .put(&observation("BTC-USD", 10_000, T0))
        .await
        .unwrap();
    board.put(&observation("ETH-USD", 2_000, T0)).await.unwrap();
    board
        .put(&observation("BTC-USD", 10_125, T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        board.get("BTC-USD").await.unwrap(),
        Some(observation("BTC-USD", 10_125, T0 + 1))
    );
    assert_eq!(
        board.get("ETH-USD").await.unwrap(),
        Some(observation("ETH-USD", 2_000, T0))
    );
    assert!(matches!(board.get("BTC.USD").await, Err(BusError::Name(_))));
}

pub async fn ensure_topology_is_idempotent(bus: Arc<dyn Bus>) {
    let subject = bus.subjects().event("Agent", "a").unwrap();
    publish(bus.as_ref(), &subject, "e1", "kept").await;
    bus.price_board()
        .await
        .unwrap()
        .put(&observation("X", 1, T0))
        .await
        .unwrap();
    bus.ensure_topology().await.unwrap();
    bus.ensure_topology().await.unwrap();
    assert_eq!(
        bus.stream_stats(StreamKind::Events).await.unwrap().messages,
        1
    );
    let board = bus.price_board().await.unwrap();
    assert_eq!(board.get("X").await.unwrap(), Some(observation("X", 1, T0)));
    // Dedup state survives too.
    let again = bus
        .publish(&subject, "e1", &Headers::new(), b"kept".to_vec())
        .await
        .unwrap();
    assert!(again.duplicate);
}

pub async fn subjects_outside_the_streams_and_reserved_headers_are_refused(bus: Arc<dyn Bus>) {
    let prefix = bus.subjects().prefix().to_owned();
    let err = bus
        .publish(&format!("{prefix}.other.x"), "m1", &Headers::new(), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NoStream { .. }), "{err}");
    let reserved = Headers::from([("Nats-Expected-Stream".to_owned(), "X".to_owned())]);
    let subject = bus.subjects().tick("a").unwrap();
    let err = bus
        .publish(&subject, "m1", &reserved, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::InvalidHeader { .. }), "{err}");
    let broken = Headers::from([("X-Note".to_owned(), "a\r\nb".to_owned())]);
    assert!(bus.publish(&subject, "m1", &broken, vec![]).await.is_err());
    let err = bus
        .publish(&subject, "", &Headers::new(), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::InvalidHeader { .. }), "{err}");
    assert_eq!(
        bus.stream_stats(StreamKind::Ticks).await.unwrap().messages,
        0
    );
}

fn feed() -> SimFeed {
    SimFeed::new(42, vec!["BTC-USD".into(), "ETH-USD".into()], 1).unwrap()
}

pub async fn the_sim_publisher_publishes_each_symbol_once_per_instant(bus: Arc<dyn Bus>) {
    let publisher = SimPublisher::new(Arc::clone(&bus), feed()).await.unwrap();
    let at = DateTime::from_timestamp(T0, 0).unwrap();
    assert_eq!(
        publisher.publish_at(at).await.unwrap(),
        TickOutcome {
            published: 2,
            duplicates: 0
        }
    );
    // A restarted publisher repeating the instant adds nothing.
    assert_eq!(
        publisher.publish_at(at).await.unwrap(),
        TickOutcome {
            published: 0,
            duplicates: 2
        }
    );
    let mut consumer = bus
        .consumer(ConsumerSpec::new(StreamKind::MarketData, "chart"))
        .await
        .unwrap();
    let path = PricePath::new(42);
    let board = bus.price_board().await.unwrap();
    for symbol in ["BTC-USD", "ETH-USD"] {
        let d = expect(consumer.as_mut()).await;
        assert_eq!(d.subject, bus.subjects().market_data(symbol).unwrap());
        assert_eq!(d.msg_id, Some(format!("{symbol}/{T0}")));
        let observed: PriceObserved = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(observed.price, path.price_at(symbol, T0));
        assert_eq!((observed.at, observed.seed), (at, 42));
        assert_eq!(board.get(symbol).await.unwrap(), Some(observed));
        d.ack().await.unwrap();
    }
    expect_quiet(consumer.as_mut()).await;
}

pub async fn the_running_sim_publisher_publishes_on_whole_intervals_until_shutdown(
    bus: Arc<dyn Bus>,
) {
    let one = SimFeed::new(7, vec!["SIM".into()], 1).unwrap();
    let publisher = SimPublisher::new(Arc::clone(&bus), one).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(publisher.run(async {
        let _ = stopped.await;
    }));
    let mut consumer = bus
        .consumer(ConsumerSpec::new(StreamKind::MarketData, "chart"))
        .await
        .unwrap();
    let mut instants = Vec::new();
    for _ in 0..2 {
        let d = expect(consumer.as_mut()).await;
        let observed: PriceObserved = serde_json::from_slice(&d.payload).unwrap();
        assert_eq!(observed.at.timestamp_subsec_nanos(), 0, "whole seconds");
        assert_eq!(d.msg_id, Some(format!("SIM/{}", observed.at.timestamp())));
        assert_eq!(
            observed.price,
            PricePath::new(7).price_at("SIM", observed.at.timestamp())
        );
        instants.push(observed.at.timestamp());
        d.ack().await.unwrap();
    }
    assert_eq!(instants[1], instants[0] + 1, "one instant per interval");
    stop.send(()).unwrap();
    tokio::time::timeout(ARRIVAL, task)
        .await
        .expect("the publisher stops on shutdown")
        .unwrap();
}
