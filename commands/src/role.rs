//! A singleton role that follows the global log — the relay and the execution role: one active instance at a time
//! (the lease of [`crate::lease`]), others standing by to take over when it dies. The active instance follows the log
//! ([`Follower`]) after its checkpoint (named as the role), hands each page to the role's [`RoleHandler`], then saves
//! the checkpoint through the lease, so a save succeeds only while the lease is held. A crash between handling a page
//! and saving its checkpoint hands the same page to the next active instance: every handler's effect is idempotent
//! (the relay's messages are deduplicated by id, the execution role's fills refused as `order_not_open`).
//!
//! [`ActiveRole`] exposes the two halves of a step ([`ActiveRole::handle_next_page`],
//! [`ActiveRole::commit_checkpoint`]) so tests can stop between them, like a crash would.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::lease::{Lease, LeaseError, Singleton, LEASE_CHECK};
use crate::log::{
    CheckpointStore, CommitSignal, EventLog, FollowError, Follower, FollowerConfig, LogItem,
    LogPosition, PageHandler, StoreError,
};

/// What a role does with the pages of the log it follows.
#[async_trait]
pub trait RoleHandler: Send + Sync + 'static {
    /// What the role reads: typed events or stored envelopes.
    type Item: LogItem;

    /// Acts on `page` (events after the checkpoint, in log order). Must be idempotent: after a crash or a failover the
    /// same page comes again.
    ///
    /// # Errors
    /// Why the page could not be handled now; it is read and handled again after a backoff.
    async fn handle(&self, page: &[Self::Item]) -> Result<(), RoleError>;
}

/// Names of one role: its lease and checkpoint name, and its two gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleNames {
    /// The lease role (`<role>:<nats_prefix>`) and the checkpoint name.
    pub role: &'static str,
    /// Gauge: 1 while this process's instance is the active one, else 0.
    pub active_gauge: &'static str,
    /// Gauge: committed events after the active instance's checkpoint (capped, see [`crate::log::LAG_COUNT_CAP`]).
    pub lag_gauge: &'static str,
}

/// Tunables of one role; each role names its own defaults, tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    /// Events per page, i.e. between two checkpoint saves (capped by the log at
    /// [`MAX_LOG_PAGE`](crate::log::MAX_LOG_PAGE)).
    pub page_size: usize,
    /// Idle pause between reads when no commit of this process wakes the role sooner.
    pub poll_interval: Duration,
    /// Standby's pause between attempts to take the lease, also after losing it.
    pub leader_retry: Duration,
    /// Longest pause between retries of a failing page.
    pub error_backoff_max: Duration,
}

/// What a role instance is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleState {
    /// Not (yet) holding the lease: waiting for the active instance to go away.
    Standby,
    /// Holding the lease and following the log.
    Active,
    /// [`LeasedRole::run`] returned.
    Stopped,
}

/// Why a step of a role failed. Every failure is retried; losing the lease also sends the instance back to standby.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Reading the global log failed.
    #[error("could not read the event log: {0}")]
    Log(#[source] StoreError),
    /// The lease is (or may be) lost, or the checkpoint could not be used under it.
    #[error("lease: {0}")]
    Lease(#[source] LeaseError),
    /// The handler could not act on the page now.
    #[error("{0}")]
    Handler(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RoleError {
    /// Whether the instance must stop and stand by (its lease is or may be gone).
    pub fn lost_lease(&self) -> bool {
        matches!(self, Self::Lease(_))
    }

    fn into_follow(self) -> FollowError {
        if self.lost_lease() {
            FollowError::Stop(Box::new(self))
        } else {
            FollowError::Retry(Box::new(self))
        }
    }
}

/// Reads and failures of one instance since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleStats {
    /// Log reads (pages), empty ones included.
    pub reads: u64,
    /// Pages that failed and were retried.
    pub failures: u64,
}

/// One instance of a singleton role. Build with [`LeasedRole::new`], then [`run`](LeasedRole::run) it.
pub struct LeasedRole<H: RoleHandler> {
    handler: H,
    names: RoleNames,
    log: Arc<dyn EventLog>,
    /// Where the checkpoint lives when the lease has no connection of its own (memory).
    checkpoints: Arc<dyn CheckpointStore>,
    singleton: Singleton,
    config: RoleConfig,
    commits: Option<CommitSignal>,
    state: watch::Sender<RoleState>,
    reads: AtomicU64,
    failures: AtomicU64,
}

impl<H: RoleHandler> LeasedRole<H> {
    /// An instance of role `names.role` handing the pages of `log` to `handler`, active while it holds `singleton`;
    /// `checkpoints` keeps the checkpoint for a lease without a connection of its own ([`Singleton::Single`]).
    pub fn new(
        handler: H,
        names: RoleNames,
        log: Arc<dyn EventLog>,
        checkpoints: Arc<dyn CheckpointStore>,
        singleton: Singleton,
        config: RoleConfig,
    ) -> Self {
        metrics::describe_gauge!(
            names.active_gauge,
            format!("1 while this process's {} is the active one", names.role)
        );
        metrics::describe_gauge!(
            names.lag_gauge,
            format!(
                "Committed events after the {} checkpoint (capped)",
                names.role
            )
        );
        Self {
            handler,
            names,
            log,
            checkpoints,
            singleton,
            config,
            commits: None,
            state: watch::Sender::new(RoleState::Standby),
            reads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Reads at once after each commit signalled on `commits` (this process's commands) instead of at the next poll.
    #[must_use]
    pub fn woken_by(mut self, commits: &CommitSignal) -> Self {
        self.commits = Some(commits.clone());
        self
    }

    /// The role's handler (its own counters live there).
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Follows the instance's state changes.
    pub fn state(&self) -> watch::Receiver<RoleState> {
        self.state.subscribe()
    }

    /// This instance's reads and failures so far.
    pub fn role_stats(&self) -> RoleStats {
        RoleStats {
            reads: self.reads.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Tries once to become the active instance, loading the checkpoint. `None`: another instance is active.
    ///
    /// # Errors
    /// The lock or the checkpoint could not be reached.
    pub async fn try_activate(&self) -> Result<Option<ActiveRole<'_, H>>, RoleError> {
        let Some(lease) = self
            .singleton
            .try_acquire()
            .await
            .map_err(RoleError::Lease)?
        else {
            return Ok(None);
        };
        self.activate(lease).await.map(Some)
    }

    async fn activate(&self, mut lease: Lease) -> Result<ActiveRole<'_, H>, RoleError> {
        let checkpoint = lease
            .load_checkpoint(self.names.role, self.checkpoints.as_ref())
            .await
            .map_err(RoleError::Lease)?
            .unwrap_or_default();
        Ok(ActiveRole {
            role: self,
            lease,
            checkpoint,
            confirmed_at: Instant::now(),
        })
    }

    /// Runs until `shutdown` resolves: stands by until it holds the lease, then handles page after page, retrying
    /// failed pages with backoff and going back to standby if the lease is lost. Returns promptly on shutdown,
    /// dropping any page in flight (it was not checkpointed, so the next active instance handles it again).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let role = self.names.role;
        let mut try_at_once = true;
        loop {
            self.set_state(RoleState::Standby);
            if !try_at_once {
                // Leave the next attempt to the other instances first: losing a lease usually means this one is
                // unhealthy (its connection broke).
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(self.config.leader_retry) => {}
                }
            }
            let Some(lease) = self
                .singleton
                .acquire(self.config.leader_retry, &mut shutdown)
                .await
            else {
                break;
            };
            let mut active = match self.activate(lease).await {
                Ok(active) => active,
                Err(error) => {
                    tracing::warn!(role, %error, "could not load the checkpoint; standing by");
                    try_at_once = false;
                    continue;
                }
            };
            self.set_state(RoleState::Active);
            tracing::info!(role, checkpoint = ?active.checkpoint, "active");
            let lost = active.lead(&mut shutdown).await;
            active.release().await;
            let Some(error) = lost else { break };
            tracing::warn!(role, %error, "lost the lease; standing by");
            try_at_once = false;
        }
        self.set_state(RoleState::Stopped);
        tracing::info!(role, "stopped");
    }

    fn set_state(&self, state: RoleState) {
        metrics::gauge!(self.names.active_gauge).set(if state == RoleState::Active {
            1.0
        } else {
            0.0
        });
        self.state.send_replace(state);
    }

    fn follower(&self, from: LogPosition) -> Follower {
        Follower::new(
            self.names.role,
            Arc::clone(&self.log),
            from,
            self.commits.as_ref().map(CommitSignal::subscribe),
            FollowerConfig {
                page_size: self.config.page_size,
                idle_poll: self.config.poll_interval,
                error_backoff_max: self.config.error_backoff_max,
                lag_gauge: Some((self.names.lag_gauge, Vec::new())),
            },
        )
    }
}

/// An instance holding the lease: the single one allowed to act and move the checkpoint. Dropping it gives the lease
/// up (for Postgres, when the lock's connection closes).
pub struct ActiveRole<'r, H: RoleHandler> {
    role: &'r LeasedRole<H>,
    lease: Lease,
    checkpoint: LogPosition,
    confirmed_at: Instant,
}

/// A page handled, not yet checkpointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a handled page is only done once its checkpoint is committed"]
pub struct HandledPage {
    /// The position the page was read after.
    pub after: LogPosition,
    /// The last event's position: the checkpoint to commit.
    pub last: LogPosition,
    /// Events in the page.
    pub events: usize,
}

impl<H: RoleHandler> ActiveRole<'_, H> {
    /// The last committed checkpoint (where the next page starts).
    pub fn checkpoint(&self) -> LogPosition {
        self.checkpoint
    }

    /// Reads the next page after the checkpoint and handles it, without saving the checkpoint (a test hook:
    /// [`LeasedRole::run`] gets its pages from the follower). `None` when the log has nothing new.
    ///
    /// # Errors
    /// Reading the log or handling the page failed; nothing was checkpointed.
    pub async fn handle_next_page(&mut self) -> Result<Option<HandledPage>, RoleError> {
        let page = H::Item::read(
            self.role.log.as_ref(),
            self.checkpoint,
            self.role.config.page_size,
        )
        .await
        .map_err(RoleError::Log)?;
        self.role.reads.fetch_add(1, Ordering::Relaxed);
        self.handle_page(&page).await
    }

    async fn handle_page(&mut self, page: &[H::Item]) -> Result<Option<HandledPage>, RoleError> {
        let Some(last) = page.last().map(LogItem::position) else {
            return Ok(None);
        };
        self.role.handler.handle(page).await?;
        Ok(Some(HandledPage {
            after: self.checkpoint,
            last,
            events: page.len(),
        }))
    }

    /// Saves `page.last` as the checkpoint (under the lease). Never moves the checkpoint backwards.
    ///
    /// # Errors
    /// The save failed (for Postgres: the lease is lost); the checkpoint is unchanged.
    pub async fn commit_checkpoint(&mut self, page: HandledPage) -> Result<(), RoleError> {
        debug_assert!(
            page.after <= self.checkpoint,
            "a page read after {:?} cannot be committed at {:?}: events in between were not handled",
            page.after,
            self.checkpoint
        );
        if page.last <= self.checkpoint {
            return Ok(());
        }
        self.lease
            .save_checkpoint(
                self.role.names.role,
                page.last,
                self.role.checkpoints.as_ref(),
            )
            .await
            .map_err(RoleError::Lease)?;
        self.checkpoint = page.last;
        Ok(())
    }

    /// Gives the lease up now.
    pub async fn release(self) {
        self.lease.release().await;
    }

    /// Confirms the lease when [`LEASE_CHECK`] has passed since the last confirmation.
    async fn confirm_if_due(&mut self) -> Result<(), RoleError> {
        if self.confirmed_at.elapsed() >= LEASE_CHECK {
            self.lease.confirm().await.map_err(RoleError::Lease)?;
            self.confirmed_at = Instant::now();
        }
        Ok(())
    }

    /// Follows while the lease holds; returns why it stopped holding (`None`: shutdown).
    async fn lead(
        &mut self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<FollowError> {
        let mut follower = self.role.follower(self.checkpoint);
        follower.run(self, shutdown).await.err()
    }
}

#[async_trait]
impl<H: RoleHandler> PageHandler<H::Item> for ActiveRole<'_, H> {
    async fn handle(&mut self, page: &[H::Item]) -> Result<LogPosition, FollowError> {
        let role = self.role;
        role.reads.fetch_add(1, Ordering::Relaxed);
        let handled = async {
            self.confirm_if_due().await?;
            if let Some(handled) = self.handle_page(page).await? {
                self.commit_checkpoint(handled).await?;
            }
            Ok::<_, RoleError>(self.checkpoint)
        };
        handled.await.map_err(|error| {
            role.failures.fetch_add(1, Ordering::Relaxed);
            error.into_follow()
        })
    }

    async fn idle(&mut self) -> Result<(), FollowError> {
        self.role.reads.fetch_add(1, Ordering::Relaxed);
        self.confirm_if_due().await.map_err(RoleError::into_follow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lease_errors_lose_the_lease() {
        assert!(RoleError::Lease(LeaseError::TimedOut).lost_lease());
        assert!(
            !RoleError::Log(StoreError::InvalidConnection("x".into())).lost_lease(),
            "a failed read is retried under the same lease"
        );
        assert!(!RoleError::Handler("bus down".into()).lost_lease());
    }
}
