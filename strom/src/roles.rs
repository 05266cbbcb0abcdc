//! The background roles `strom serve` runs beside the HTTP API (specs/01 §2). Each role is a task that runs until
//! the shared stop token is cancelled; a role that ends on its own (error or not) stops the whole process, since a
//! silently dead projector or relay would leave the API serving stale or incomplete data.
//!
//! Every task of a `serve` process runs here (`Roles::spawn`): the live-event feed (SSE), projector `agents` (`projector`)
//! and the configured background roles — sim, scheduler, runtime, execution, relay (`background`).

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long `stop` waits for roles to finish their current batch after the stop token is cancelled.
pub const ROLE_STOP_GRACE: Duration = Duration::from_secs(10);

/// The running roles and the token that stops them.
pub struct Roles {
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    stop: CancellationToken,
}

impl Default for Roles {
    fn default() -> Self {
        Self::new()
    }
}

impl Roles {
    pub fn new() -> Self {
        Self {
            tasks: JoinSet::new(),
            stop: CancellationToken::new(),
        }
    }

    /// The token every role watches; cancelled when the process stops.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs the role `name`: `make` gets the stop token and returns the role's future.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let fut = make(self.stop.clone());
        self.tasks.spawn(async move {
            tracing::info!(role = name, "role started");
            (name, fut.await)
        });
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Resolves when the first role ends, with its name and result (never, if no role runs).
    pub async fn first_exit(&mut self) -> (&'static str, anyhow::Result<()>) {
        match self.tasks.join_next().await {
            Some(Ok(exit)) => exit,
            Some(Err(e)) => ("unknown", Err(anyhow::anyhow!("role task failed: {e}"))),
            None => std::future::pending().await,
        }
    }

    /// Cancels the stop token and waits (at most [`ROLE_STOP_GRACE`]) for every role to end.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let all = async {
            while let Some(joined) = self.tasks.join_next().await {
                match joined {
                    Ok((name, Ok(()))) => tracing::info!(role = name, "role stopped"),
                    Ok((name, Err(e))) => tracing::error!(role = name, error = ?e, "role failed"),
                    Err(e) => tracing::error!(error = %e, "role task failed"),
                }
            }
        };
        if tokio::time::timeout(ROLE_STOP_GRACE, all).await.is_err() {
            tracing::warn!("roles did not stop within {ROLE_STOP_GRACE:?}; abandoning them");
            self.tasks.abort_all();
        }
    }
}
