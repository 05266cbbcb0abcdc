//! The one way to follow the global log: read the page after a position, hand it to a [`PageHandler`], move on;
//! when caught up, wait for a commit of this process ([`super::CommitSignal`]) or the idle poll; after a failure,
//! back off (doubling, bounded) and read the same page again — a page is never skipped. The projectors, the relay,
//! the scheduler and the live feed all run on it; each keeps only what its handler does with a page.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{EventEnvelope, EventLog, LogPosition, LoggedEvent, StoreError, MAX_LOG_PAGE};

/// Most events counted for a lag gauge. Counting is O(lag), so it is capped: a follower 100,000 events behind is
/// "far behind" for any alert, and a sample then costs one bounded index scan (Postgres) or ten page reads (memory).
pub const LAG_COUNT_CAP: u64 = 100_000;
/// First pause after a failed page (database or bus unreachable); doubled on each further failure up to
/// [`FOLLOWER_ERROR_BACKOFF_MAX`]. Short, since most failures are a reconnect that takes milliseconds.
pub const FOLLOWER_ERROR_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between retries while a dependency stays down: recovery is noticed within 5 s, while a long outage
/// costs one failed attempt (and one warning line) per 5 s.
pub const FOLLOWER_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How one follower reads. Each role names its own values (with their reasons) and tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerConfig {
    /// Events per page (capped by the log at [`MAX_LOG_PAGE`]).
    pub page_size: usize,
    /// Pause between reads once caught up, when no commit of this process wakes the follower sooner.
    pub idle_poll: Duration,
    /// Longest pause between retries of a failing page.
    pub error_backoff_max: Duration,
    /// Gauge set to the follower's backlog ([`EventLog::backlog`]) after each page, with its labels; `None` = no
    /// gauge. Sampled only after a full page (a short page means caught up, lag 0), so it costs nothing when idle.
    pub lag_gauge: Option<(&'static str, Vec<(&'static str, String)>)>,
}

/// Why a handler could not take a page.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Worth trying again (the same page is read again after a backoff).
    #[error("{0}")]
    Retry(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The follower must stop (e.g. a singleton role lost its lease); [`Follower::run`] returns it.
    #[error("{0}")]
    Stop(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for FollowError {
    fn from(e: StoreError) -> Self {
        FollowError::Retry(Box::new(e))
    }
}

/// What a follower reads: typed events (folds, the scheduler, the live feed) or stored envelopes (the relay, which
/// publishes the stored form).
#[async_trait]
pub trait LogItem: Sized + Send + Sync + 'static {
    /// Up to `limit` items after `after`, in log order.
    async fn read(
        log: &dyn EventLog,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<Self>, StoreError>;

    /// The item's place in the log.
    fn position(&self) -> LogPosition;
}

#[async_trait]
impl LogItem for Arc<LoggedEvent> {
    async fn read(
        log: &dyn EventLog,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<Self>, StoreError> {
        log.read_after(after, limit).await
    }

    fn position(&self) -> LogPosition {
        self.position
    }
}

#[async_trait]
impl LogItem for EventEnvelope {
    async fn read(
        log: &dyn EventLog,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<Self>, StoreError> {
        log.read_envelopes_after(after, limit).await
    }

    fn position(&self) -> LogPosition {
        self.position
    }
}

/// What a follower does with each page.
#[async_trait]
pub trait PageHandler<T: LogItem = Arc<LoggedEvent>>: Send {
    /// Applies `page` (events strictly after the follower's position, in log order) and returns the position it now
    /// covers: normally the page's last event, or further when the handler's own checkpoint is ahead (a projector
    /// whose page another process already applied).
    ///
    /// # Errors
    /// [`FollowError::Retry`] to have the same page again later, [`FollowError::Stop`] to end the follower.
    async fn handle(&mut self, page: &[T]) -> Result<LogPosition, FollowError>;

    /// Called by [`Follower::run`] each time a read found nothing new, before it waits: a place for periodic duties
    /// (a singleton role confirms its lease here).
    ///
    /// # Errors
    /// As [`PageHandler::handle`].
    async fn idle(&mut self) -> Result<(), FollowError> {
        Ok(())
    }
}

/// Follows the log from a position. See the module docs.
pub struct Follower {
    name: String,
    log: Arc<dyn EventLog>,
    config: FollowerConfig,
    commits: Option<watch::Receiver<u64>>,
    position: LogPosition,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("name", &self.name)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower named `name` (for logs) reading `log` after `from`, woken early by `commits` (this process's
    /// commit signal) when given.
    pub fn new(
        name: impl Into<String>,
        log: Arc<dyn EventLog>,
        from: LogPosition,
        commits: Option<watch::Receiver<u64>>,
        config: FollowerConfig,
    ) -> Self {
        Self {
            name: name.into(),
            log,
            config,
            commits,
            position: from,
        }
    }

    /// The last position handled.
    pub fn position(&self) -> LogPosition {
        self.position
    }

    /// Moves the position (a handler's checkpoint read anew, a role that starts over).
    pub fn seek(&mut self, position: LogPosition) {
        self.position = position;
    }

    /// Reads and handles up to `max_pages` pages; returns how many events were handled (0 = caught up for now).
    ///
    /// # Errors
    /// The log could not be read or the handler refused a page; the position stays before that page.
    pub async fn step<T: LogItem>(
        &mut self,
        handler: &mut (dyn PageHandler<T> + '_),
        max_pages: usize,
    ) -> Result<usize, FollowError> {
        let mut handled = 0;
        for _ in 0..max_pages {
            let limit = self.config.page_size.min(MAX_LOG_PAGE);
            let page = T::read(self.log.as_ref(), self.position, limit).await?;
            if page.is_empty() {
                break;
            }
            let full = page.len() >= limit;
            self.position = handler.handle(&page).await?;
            handled += page.len();
            self.sample_lag(full).await;
            if !full {
                break;
            }
        }
        Ok(handled)
    }

    async fn sample_lag(&self, full_page: bool) {
        let Some((gauge, labels)) = &self.config.lag_gauge else {
            return;
        };
        let lag = if full_page {
            match self.log.backlog(self.position, LAG_COUNT_CAP).await {
                Ok(lag) => lag,
                Err(e) => {
                    tracing::debug!(follower = %self.name, error = %e, "lag sample failed");
                    return;
                }
            }
        } else {
            0
        };
        metrics::gauge!(*gauge, labels).set(lag as f64);
    }

    /// Follows until `stop` resolves: pages back to back while behind, an idle wait (a commit of this process or
    /// the idle poll) when caught up, a doubling backoff after a failure. Shutdown mid-page drops the page's work
    /// (the handler's transaction rolls back; nothing was checkpointed).
    ///
    /// # Errors
    /// The handler's [`FollowError::Stop`].
    pub async fn run<T: LogItem>(
        &mut self,
        handler: &mut (dyn PageHandler<T> + '_),
        stop: impl Future<Output = ()>,
    ) -> Result<(), FollowError> {
        tokio::pin!(stop);
        let mut backoff = FOLLOWER_ERROR_BACKOFF_MIN;
        loop {
            let pause = tokio::select! {
                () = &mut stop => return Ok(()),
                stepped = self.step(handler, 1) => match stepped {
                    Ok(0) => match handler.idle().await {
                        Ok(()) => {
                            backoff = FOLLOWER_ERROR_BACKOFF_MIN;
                            None
                        }
                        Err(FollowError::Stop(e)) => return Err(FollowError::Stop(e)),
                        Err(FollowError::Retry(e)) => {
                            tracing::warn!(follower = %self.name, error = %e, "idle duty failed");
                            None
                        }
                    },
                    Ok(_) => {
                        backoff = FOLLOWER_ERROR_BACKOFF_MIN;
                        continue;
                    }
                    Err(FollowError::Stop(e)) => return Err(FollowError::Stop(e)),
                    Err(FollowError::Retry(e)) => {
                        tracing::warn!(follower = %self.name, error = %e, retry_in = ?backoff, "log page failed; retrying it");
                        let pause = backoff;
                        backoff = (backoff * 2).min(self.config.error_backoff_max);
                        Some(pause)
                    }
                },
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = self.idle(pause) => {}
            }
        }
    }

    /// Waits `pause` after a failure, or, when idle, until a commit of this process or the idle poll.
    async fn idle(&mut self, pause: Option<Duration>) {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
            return;
        }
        let poll = tokio::time::sleep(self.config.idle_poll);
        match &mut self.commits {
            Some(commits) => tokio::select! {
                () = poll => {}
                changed = commits.changed() => if changed.is_err() {
                    // The signal's sender is gone (shutdown): fall back to the poll.
                    self.commits = None;
                },
            },
            None => poll.await,
        }
    }
}
