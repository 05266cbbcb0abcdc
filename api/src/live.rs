//! Live events for SSE (specs/03 §4): one task per API process follows the global event log (the same ordered,
//! commit-safe log the projectors read, through the same [`Follower`]) and broadcasts each committed event to the open
//! streams, which pick out the ones that concern their agent.
//!
//! The log, not the bus, is the source so that live updates work the same with and without NATS and arrive in
//! commit order. There is no replay: the tail starts at the end of the log when the process starts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use strom_commands::log::{
    CommitSignal, EventLog, FollowError, Follower, FollowerConfig, LogPosition, LoggedEvent,
    PageHandler, MAX_LOG_PAGE,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::problem::ApiError;

/// Events between the tail and the slowest stream's forwarder. The forwarders only filter and copy, so they keep up
/// unless the process is starved; one that falls this far behind is disconnected (the client reconnects and
/// refetches) rather than holding memory for it.
pub const LIVE_BROADCAST_CAPACITY: usize = 4_096;
/// How often an idle tail looks for new events when no command in this process woke it (commands of other
/// processes, the runtime's runs): the same cadence as the projectors' idle poll, so SSE is no later than GETs.
pub const LIVE_POLL: Duration = Duration::from_millis(100);
/// Longest pause after failed log reads before trying again (the database restarts, a network blip).
pub const LIVE_RETRY: Duration = Duration::from_secs(1);
/// Most open streams per user (specs/03 §4): a dashboard with a few tabs needs a handful; each stream holds a task
/// and a buffer, so one user cannot open thousands.
pub const SSE_MAX_STREAMS_PER_SUB: usize = 16;

/// The broadcast side of the live events, shared by the tail task and the SSE handlers.
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<LoggedEvent>>,
    streams: Mutex<HashMap<String, usize>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self::new()
    }
}

/// Broadcasts each page's events.
struct Broadcast<'a>(&'a broadcast::Sender<Arc<LoggedEvent>>);

#[async_trait]
impl PageHandler for Broadcast<'_> {
    async fn handle(&mut self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, FollowError> {
        for event in page {
            // No receivers is not an error: nobody is watching right now.
            let _ = self.0.send(Arc::clone(event));
        }
        Ok(page.last().map_or(LogPosition::START, |e| e.position))
    }
}

impl LiveFeed {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(LIVE_BROADCAST_CAPACITY);
        Self {
            tx,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// A receiver of every event committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LoggedEvent>> {
        self.tx.subscribe()
    }

    /// Reserves one of the caller's [`SSE_MAX_STREAMS_PER_SUB`] stream slots; the slot is freed when dropped.
    ///
    /// # Errors
    /// `TooManyRequests` when the caller already has the maximum open.
    pub fn open_stream(self: &Arc<Self>, sub: &str) -> Result<StreamSlot, ApiError> {
        let mut streams = self.lock_streams();
        let open = streams.entry(sub.to_owned()).or_insert(0);
        if *open >= SSE_MAX_STREAMS_PER_SUB {
            return Err(ApiError::TooManyRequests {
                detail: format!(
                    "at most {SSE_MAX_STREAMS_PER_SUB} open streams per user; close one first"
                ),
                retry_after_s: 5,
            });
        }
        *open += 1;
        Ok(StreamSlot {
            feed: Arc::clone(self),
            sub: sub.to_owned(),
        })
    }

    fn lock_streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Counters stay consistent under a panic elsewhere: each update is a single statement.
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tail: broadcasts every event committed after the log's head when it starts (no replay), woken by
    /// `commits` (this process's commands) or the idle poll, until `stop` is cancelled.
    ///
    /// # Errors
    /// The log's head could not be read (the follower itself retries failed reads).
    pub async fn run(
        self: Arc<Self>,
        log: Arc<dyn EventLog>,
        commits: CommitSignal,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let from = log.head().await?;
        let mut follower = Follower::new(
            "live feed",
            log,
            from,
            Some(commits.subscribe()),
            FollowerConfig {
                page_size: MAX_LOG_PAGE,
                idle_poll: LIVE_POLL,
                error_backoff_max: LIVE_RETRY,
                lag_gauge: None,
            },
        );
        // The broadcast never stops the follower: it returns on `stop`.
        let _ = follower
            .run(&mut Broadcast(&self.tx), stop.cancelled_owned())
            .await;
        Ok(())
    }
}

/// One open SSE stream of a user; frees its slot when dropped.
pub struct StreamSlot {
    feed: Arc<LiveFeed>,
    sub: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.feed.lock_streams();
        if let Some(open) = streams.get_mut(&self.sub) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.sub);
            }
        }
    }
}
