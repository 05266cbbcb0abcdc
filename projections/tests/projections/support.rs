//! Test support: a throwaway Postgres schema per test, and the scenario events read back from a store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_commands::log::{EventLog, LogPosition, LoggedEvent, MAX_LOG_PAGE};
pub use strom_tests::db::TestDb;

/// Connections per test pool: a projector, a rebuild and queries at once, far below the server's limit.
const TEST_POOL_CONNECTIONS: u32 = 4;

/// How long a test waits for the log watermark to pass its events (other sessions on the shared server may hold
/// a write transaction open for a moment).
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);

/// A fresh schema with the migrations applied; dropped (with its connections) when the guard drops.
pub async fn test_db() -> TestDb {
    TestDb::builder("p")
        .connections(TEST_POOL_CONNECTIONS)
        .build()
        .await
}

/// Reads the whole log, waiting (bounded) until at least `expected` events are visible.
pub async fn read_all(log: &dyn EventLog, expected: usize) -> Vec<Arc<LoggedEvent>> {
    let started = Instant::now();
    loop {
        let mut events = Vec::new();
        let mut position = LogPosition::START;
        loop {
            let page = log
                .read_after(position, MAX_LOG_PAGE)
                .await
                .expect("read log");
            let Some(last) = page.last() else { break };
            position = last.position;
            events.extend(page);
        }
        if events.len() >= expected {
            return events;
        }
        assert!(
            started.elapsed() < CATCH_UP_DEADLINE,
            "log stuck at {} of {expected}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (bounded) until at least `expected` events are visible in the stored form (which reads also events that do
/// not decode).
pub async fn wait_visible(log: &dyn EventLog, expected: usize) {
    let started = Instant::now();
    loop {
        let visible = log
            .read_envelopes_after(LogPosition::START, MAX_LOG_PAGE)
            .await
            .expect("read log")
            .len();
        if visible >= expected {
            return;
        }
        assert!(
            started.elapsed() < CATCH_UP_DEADLINE,
            "log stuck at {visible} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
