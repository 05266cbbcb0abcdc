//! The bus conformance suite: every case in `cases` runs against the memory adapter (with tokio's clock paused, so
//! ack waits pass instantly) and against NATS JetStream (`STROM_TEST_NATS_URL`, default nats://127.0.0.1:4222).
//! Each test owns a fresh prefix `t<uuid>`, hence its own streams and bucket, deleted when it ends (also on panic).

mod cases;

use std::sync::Arc;

use strom_commands::bus::memory::MemoryBus;
use strom_commands::bus::{Bus, Subjects};
use strom_tests::nats::TestNats;

fn unique_subjects() -> Subjects {
    Subjects::new(format!("t{}", uuid::Uuid::new_v4().simple())).unwrap()
}

/// A bus with its topology in place; for NATS, deletes the topology when finished or dropped.
pub struct Harness {
    bus: Arc<dyn Bus>,
    // Declared after the bus, so dropped after it.
    nats: Option<TestNats>,
}

impl Harness {
    fn memory() -> Self {
        Self {
            bus: Arc::new(MemoryBus::new(unique_subjects())),
            nats: None,
        }
    }

    async fn nats() -> Self {
        let nats = TestNats::new("t");
        let bus = nats.connect().await;
        Self {
            bus: Arc::new(bus),
            nats: Some(nats),
        }
    }

    async fn start(self) -> Self {
        self.bus.ensure_topology().await.unwrap();
        self
    }

    fn bus(&self) -> Arc<dyn Bus> {
        Arc::clone(&self.bus)
    }

    async fn finish(mut self) {
        if let Some(nats) = self.nats.take() {
            nats.delete().await;
        }
    }
}

/// Declares each case once per adapter: `memory::<case>` and `nats::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $case() {
                    let harness = crate::Harness::memory().start().await;
                    crate::cases::$case(harness.bus()).await;
                    harness.finish().await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test]
                async fn $case() {
                    let harness = crate::Harness::nats().await.start().await;
                    crate::cases::$case(harness.bus()).await;
                    harness.finish().await;
                }
            )*
        }
    };
}

conformance!(
    messages_are_consumed_in_publish_order_per_subject,
    a_duplicate_msg_id_is_stored_and_delivered_once,
    an_unacked_message_is_redelivered_after_the_ack_wait,
    a_nak_with_delay_redelivers_the_message,
    deliveries_stop_after_max_deliver,
    workers_on_one_work_queue_consumer_never_get_the_same_message,
    a_second_overlapping_consumer_on_the_work_queue_is_refused,
    acked_messages_are_not_redelivered_after_the_consumer_is_reopened,
    a_filtered_consumer_sees_only_its_subjects,
    market_data_keeps_at_most_1000_messages_per_symbol,
    the_price_board_returns_the_latest_price,
    ensure_topology_is_idempotent,
    subjects_outside_the_streams_and_reserved_headers_are_refused,
    the_sim_publisher_publishes_each_symbol_once_per_instant,
    the_running_sim_publisher_publishes_on_whole_intervals_until_shutdown,
);

#[tokio::test]
async fn memory_bus_without_topology_says_to_run_ensure_topology() {
    let bus = MemoryBus::new(unique_subjects());
    let err = bus
        .publish(
            &bus.subjects().tick("a").unwrap(),
            "a/1/1",
            &Default::default(),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ensure_topology"), "{err}");
    assert!(bus.price_board().await.is_err());
}
