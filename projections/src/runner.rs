//! The projector runner: follows the global log ([`strom_commands::log::Follower`]) after its checkpoint, hands each
//! page to its sink (which folds it and commits rows + checkpoint atomically) and records how far it got.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use strom_commands::log::{
    CommitSignal, EventLog, FollowError, Follower, FollowerConfig, LogPosition, LoggedEvent,
    PageHandler, StoreError, FOLLOWER_ERROR_BACKOFF_MAX,
};
use tokio::sync::watch;

use crate::sink::{ProjectionSink, SinkError};

/// Events per page (specs/01 §3.1): one transaction per page keeps the commit cost amortised while holding the
/// lock that serializes the projector's writers for only a few milliseconds.
pub const PROJECTOR_BATCH: usize = 1_000;
/// Pause between reads once caught up (specs/01 §3.1): new events show up within 100 ms at one cheap indexed
/// query per poll (at once for commits of this process).
pub const PROJECTOR_IDLE_POLL: Duration = Duration::from_millis(100);

/// Gauge: events in the log after the projector's checkpoint (label `projector`).
pub const LAG_METRIC: &str = "strom_projector_lag_events";
/// Gauge: `global_position` of the projector's checkpoint (label `projector`).
pub const LAST_POSITION_METRIC: &str = "strom_projector_last_position";

/// Follows the global log into one sink. See the module docs.
pub struct Projector {
    name: String,
    log: Arc<dyn EventLog>,
    sink: Arc<dyn ProjectionSink>,
    commits: Option<CommitSignal>,
    /// The checkpoint after each page, for read-your-writes waits.
    progress: watch::Sender<LogPosition>,
    /// The checkpoint after the last page (saves a read per page; the sink re-checks it in its transaction).
    last: Mutex<Option<LogPosition>>,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Hands pages to the sink and records the progress.
struct SinkFeed<'a>(&'a Projector);

#[async_trait]
impl PageHandler for SinkFeed<'_> {
    async fn handle(&mut self, page: &[Arc<LoggedEvent>]) -> Result<LogPosition, FollowError> {
        match self.0.sink.apply_page(page).await {
            Ok(applied) => {
                self.0.record(applied);
                Ok(applied)
            }
            Err(e) => {
                // Re-read the checkpoint next time: the failure may have been a concurrent rebuild.
                *self.0.cached() = None;
                Err(FollowError::Retry(Box::new(e)))
            }
        }
    }
}

impl Projector {
    /// A projector named `name` (its checkpoint and metric label, e.g. [`AGENTS_PROJECTOR`](crate::AGENTS_PROJECTOR))
    /// reading `log` into `sink`.
    pub fn new(
        name: impl Into<String>,
        log: Arc<dyn EventLog>,
        sink: Arc<dyn ProjectionSink>,
    ) -> Self {
        Self {
            name: name.into(),
            log,
            sink,
            commits: None,
            progress: watch::Sender::new(LogPosition::START),
            last: Mutex::new(None),
        }
    }

    /// Reads at once after each commit signalled on `commits` (this process's commands) instead of at the next poll.
    #[must_use]
    pub fn woken_by(mut self, commits: &CommitSignal) -> Self {
        self.commits = Some(commits.clone());
        self
    }

    /// The projector's checkpoint, updated after each page: a reader waiting for its own write re-reads when it moves
    /// instead of polling.
    pub fn progress(&self) -> watch::Receiver<LogPosition> {
        self.progress.subscribe()
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<LogPosition>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn follower(&self) -> Result<Follower, SinkError> {
        let cached = *self.cached();
        let from = match cached {
            Some(position) => position,
            None => self.sink.checkpoint().await?,
        };
        Ok(Follower::new(
            format!("projector {}", self.name),
            Arc::clone(&self.log),
            from,
            self.commits.as_ref().map(CommitSignal::subscribe),
            FollowerConfig {
                page_size: PROJECTOR_BATCH,
                idle_poll: PROJECTOR_IDLE_POLL,
                error_backoff_max: FOLLOWER_ERROR_BACKOFF_MAX,
                lag_gauge: Some((LAG_METRIC, vec![("projector", self.name.clone())])),
            },
        ))
    }

    /// Projects one page; returns how many events it read (0 = caught up for now).
    ///
    /// # Errors
    /// The log or the sink failed, or an event could not be folded; nothing of the page was written.
    pub async fn step(&self) -> Result<usize, SinkError> {
        let mut follower = self.follower().await?;
        let read = follower
            .step(&mut SinkFeed(self), 1)
            .await
            .map_err(sink_error)?;
        if read == 0 {
            self.record(follower.position());
        }
        Ok(read)
    }

    fn record(&self, position: LogPosition) {
        *self.cached() = Some(position);
        self.progress
            .send_if_modified(|p| std::mem::replace(p, position) != position);
        metrics::gauge!(LAST_POSITION_METRIC, "projector" => self.name.clone())
            .set(position.global_position as f64);
    }

    /// Projects pages until the log has nothing more for now; returns the number of events read.
    ///
    /// # Errors
    /// As [`Projector::step`].
    pub async fn catch_up(&self) -> Result<u64, SinkError> {
        let mut total = 0;
        loop {
            let n = self.step().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }

    /// Runs until `shutdown` resolves: pages back to back while behind, an idle wait when caught up, a backoff after
    /// an error (logged; the page is retried, never skipped). Shutdown mid-page drops its transaction, which rolls
    /// back.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        tracing::info!(projector = %self.name, "projector started");
        let mut follower = loop {
            match self.follower().await {
                Ok(follower) => break follower,
                Err(e) => {
                    tracing::error!(projector = %self.name, error = %e, "projector cannot read its checkpoint; retrying");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(FOLLOWER_ERROR_BACKOFF_MAX) => {}
                    }
                }
            }
        };
        // The feed's handler never stops the follower, so `run` only returns on shutdown.
        let _ = follower.run(&mut SinkFeed(&self), shutdown).await;
        tracing::info!(projector = %self.name, "projector stopped");
    }
}

/// The sink's own error back out of the follower.
fn sink_error(e: FollowError) -> SinkError {
    let (FollowError::Retry(inner) | FollowError::Stop(inner)) = e;
    match inner.downcast::<SinkError>() {
        Ok(sink) => *sink,
        Err(other) => match other.downcast::<StoreError>() {
            Ok(store) => SinkError::Store(*store),
            // Unreachable: the follower's own failures are `StoreError`s and the feed's are `SinkError`s.
            Err(other) => SinkError::Store(StoreError::InvalidConnection(other.to_string())),
        },
    }
}
