//! The projector runner: reads the global log after its checkpoint in pages, hands each page to its sink (which
//! folds it and commits rows + checkpoint atomically), publishes how far it got, and polls when caught up.
//!
//! Also the read-your-writes hooks: [`ProjectorHandle::wait_until`] (in-process, by log position) and
//! [`wait_for_agent_version`] (any process, by the agent's version), both bounded by a timeout.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use strom_commands::store::{EventLog, LogPosition, MemoryEventRepository, StoreError};
use tokio::sync::watch;

use crate::page::QueryError;
use crate::queries::AgentQueries;
use crate::sink::{ProjectionSink, SinkError};
use crate::view::AgentView;

/// Events per page (specs/01 §3.1): one transaction per page keeps the commit cost amortised while holding the
/// lock that serializes the projector's writers for only a few milliseconds.
pub const PROJECTOR_BATCH: usize = 1_000;
/// Pause between reads once caught up (specs/01 §3.1): new events show up within 100 ms at one cheap indexed
/// query per poll.
pub const PROJECTOR_IDLE_POLL: Duration = Duration::from_millis(100);
/// Pause after a failed page before trying again: long enough not to hammer a database that is down, short
/// enough to recover quickly after a restart.
pub const PROJECTOR_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Most events counted for the lag gauge: counting stops there so a projector far behind (a fresh deployment over
/// a long log) does not scan the whole log after every page. The gauge then reads "at least this many".
pub const LAG_COUNT_CAP: u64 = 100_000;
/// Poll interval of [`wait_for_agent_version`]: a read-your-writes wait is normally one or two projector pages.
pub const READ_YOUR_WRITES_POLL: Duration = Duration::from_millis(10);

/// Gauge: events in the log after the projector's checkpoint (label `projector`).
pub const LAG_METRIC: &str = "strom_projector_lag_events";
/// Gauge: `global_position` of the projector's checkpoint (label `projector`).
pub const LAST_POSITION_METRIC: &str = "strom_projector_last_position";

/// Counts events after a position, for the lag gauge.
#[async_trait]
pub trait LogBacklog: Send + Sync {
    /// Visible events strictly after `after`, counting at most `cap`.
    ///
    /// # Errors
    /// The log could not be read.
    async fn backlog(&self, after: LogPosition, cap: u64) -> Result<u64, StoreError>;
}

const BACKLOG_SQL: &str = "
SELECT count(*) FROM (
  SELECT 1 FROM events e
   WHERE e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
     AND (e.tx_id, e.global_position) > ($1::text::xid8, $2)
   LIMIT $3) t";

#[async_trait]
impl LogBacklog for PgPool {
    async fn backlog(&self, after: LogPosition, cap: u64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(BACKLOG_SQL)
            .bind(after.tx_id.to_string())
            .bind(after.global_position)
            .bind(i64::try_from(cap).unwrap_or(i64::MAX))
            .fetch_one(self)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[async_trait]
impl LogBacklog for MemoryEventRepository {
    async fn backlog(&self, after: LogPosition, cap: u64) -> Result<u64, StoreError> {
        let mut count = 0;
        let mut position = after;
        while count < cap {
            let page = self
                .read_after(position, usize::try_from(cap - count).unwrap_or(usize::MAX))
                .await?;
            let Some(last) = page.last() else { break };
            position = last.position;
            count += page.len() as u64;
        }
        Ok(count.min(cap))
    }
}

/// Follows the global log into one sink. See the module docs.
pub struct Projector {
    name: String,
    log: Arc<dyn EventLog>,
    backlog: Arc<dyn LogBacklog>,
    sink: Arc<dyn ProjectionSink>,
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

impl Projector {
    /// A projector named `name` (its checkpoint and metric label, e.g. [`AGENTS_PROJECTOR`](crate::AGENTS_PROJECTOR))
    /// reading `log` into `sink`.
    pub fn new(
        name: impl Into<String>,
        log: Arc<dyn EventLog>,
        backlog: Arc<dyn LogBacklog>,
        sink: Arc<dyn ProjectionSink>,
    ) -> Self {
        Self {
            name: name.into(),
            log,
            backlog,
            sink,
            progress: watch::channel(LogPosition::START).0,
            last: Mutex::new(None),
        }
    }

    /// A handle that sees the projector's progress (for read-your-writes waits).
    pub fn handle(&self) -> ProjectorHandle {
        ProjectorHandle {
            rx: self.progress.subscribe(),
        }
    }

    fn cached(&self) -> Option<LogPosition> {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Projects one page; returns how many events it read (0 = caught up for now).
    ///
    /// # Errors
    /// The log or the sink failed, or an event could not be folded; nothing of the page was written.
    pub async fn step(&self) -> Result<usize, SinkError> {
        let checkpoint = match self.cached() {
            Some(position) => position,
            None => self.sink.checkpoint().await?,
        };
        let page = self.log.read_after(checkpoint, PROJECTOR_BATCH).await?;
        if page.is_empty() {
            self.record(checkpoint, 0);
            return Ok(0);
        }
        let applied = self.sink.apply_page(&page).await?;
        let lag = if page.len() < PROJECTOR_BATCH {
            0
        } else {
            self.backlog.backlog(applied, LAG_COUNT_CAP).await?
        };
        self.record(applied, lag);
        Ok(page.len())
    }

    fn record(&self, position: LogPosition, lag: u64) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(position);
        self.progress.send_if_modified(|p| {
            let changed = *p != position;
            *p = position;
            changed
        });
        let label = [("projector", self.name.clone())];
        metrics::gauge!(LAG_METRIC, &label).set(lag as f64);
        metrics::gauge!(LAST_POSITION_METRIC, &label).set(position.global_position as f64);
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

    /// Runs until `shutdown` resolves: pages back to back while behind, a poll every [`PROJECTOR_IDLE_POLL`] when
    /// caught up, [`PROJECTOR_ERROR_BACKOFF`] after an error (logged; the page is retried, never skipped).
    /// Shutdown mid-page drops its transaction, which rolls back.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        tracing::info!(projector = %self.name, "projector started");
        loop {
            let pause = tokio::select! {
                () = &mut shutdown => break,
                result = self.step() => match result {
                    Ok(0) => PROJECTOR_IDLE_POLL,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::error!(projector = %self.name, error = %e, "projector page failed; retrying");
                        // Re-read the checkpoint next time: the failure may have been a concurrent rebuild.
                        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                        PROJECTOR_ERROR_BACKOFF
                    }
                },
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(projector = %self.name, "projector stopped");
    }
}

/// Sees a running projector's checkpoint.
#[derive(Debug, Clone)]
pub struct ProjectorHandle {
    rx: watch::Receiver<LogPosition>,
}

impl ProjectorHandle {
    /// The checkpoint after the projector's last page.
    pub fn position(&self) -> LogPosition {
        *self.rx.borrow()
    }

    /// Waits until the projector has applied every event up to `position`; `false` if `timeout` passed first (or
    /// the projector is gone).
    pub async fn wait_until(&self, position: LogPosition, timeout: Duration) -> bool {
        let mut rx = self.rx.clone();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Read-your-writes for the API: the agent as soon as its projected `version` is at least `min_version` (the
/// aggregate's sequence after the caller's command), or whatever the projection has when `timeout` passes (`None`
/// if it has no such agent yet). Works whichever process runs the projector.
///
/// # Errors
/// The read model could not be read.
pub async fn wait_for_agent_version(
    queries: &dyn AgentQueries,
    agent_id: &str,
    min_version: u64,
    timeout: Duration,
) -> Result<Option<AgentView>, QueryError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let agent = queries.get_agent(agent_id).await?;
        let fresh = agent.as_ref().is_some_and(|a| a.version >= min_version);
        if fresh || tokio::time::Instant::now() >= deadline {
            return Ok(agent);
        }
        tokio::time::sleep(READ_YOUR_WRITES_POLL).await;
    }
}
