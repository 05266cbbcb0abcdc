//! The read side as handlers see it: [`AgentQueries`] (strom-projections) over the read models of this process's
//! store (Postgres tables, or memory in embedded mode). The projector that keeps them current is started by the
//! `strom` binary, not here.

use std::sync::Arc;
use std::time::Duration;

use strom_commands::log::LogPosition;
use strom_projections::{AgentQueries, AgentRow, QueryError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::problem::ApiError;

/// How long a command's answer waits for the read model to show the command (read-your-writes: a GET right after a
/// command sees it). The projector of this process is woken by the commit and applies it within one page
/// transaction, milliseconds; past this bound the answer folds the events the read model lacks itself.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// Query handle on the read models.
#[derive(Clone)]
pub struct Reads {
    queries: Arc<dyn AgentQueries>,
    /// The checkpoint of the projector keeping them current.
    progress: watch::Receiver<LogPosition>,
}

impl Reads {
    /// Reads through `queries`, kept current by the projector whose checkpoint `progress` follows.
    pub fn new(queries: Arc<dyn AgentQueries>, progress: watch::Receiver<LogPosition>) -> Self {
        Self { queries, progress }
    }

    /// The agent's row as soon as the read model holds `version` of it (or later), waiting at most
    /// [`READ_YOUR_WRITES_WAIT`] (re-reading whenever the projector's checkpoint moves); after that, the row as it is
    /// (behind, or `None`).
    ///
    /// # Errors
    /// 503 when the read model fails.
    pub async fn agent_row_at(&self, id: &str, version: u64) -> Result<Option<AgentRow>, ApiError> {
        let deadline = Instant::now() + READ_YOUR_WRITES_WAIT;
        let mut progress = self.progress.clone();
        loop {
            let row = self.queries.get_agent_row(id).await.map_err(query_error)?;
            if row.as_ref().is_some_and(|r| r.version >= version) || Instant::now() >= deadline {
                return Ok(row);
            }
            tokio::select! {
                moved = progress.changed() => if moved.is_err() {
                    return Ok(row);
                },
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    pub fn queries(&self) -> &dyn AgentQueries {
        self.queries.as_ref()
    }
}

/// 404 `agent_not_found`: the answer for a missing agent and for another user's alike (specs/05 §4).
pub fn agent_not_found() -> ApiError {
    ApiError::Missing {
        code: "agent_not_found",
        detail: "no such agent".into(),
    }
}

/// specs/03 §2: a bad limit or cursor is 400 `bad_request`; a failing store 503.
pub fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::InvalidLimit(_)
        | QueryError::InvalidPnlLimit(_)
        | QueryError::BadParameter(_)
        | QueryError::BadCursor => ApiError::BadRequest(e.to_string()),
        QueryError::Unavailable(detail) => ApiError::Unavailable(detail),
    }
}
