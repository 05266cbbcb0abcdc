//! The read side as handlers see it: agents and runs from the read models (strom-projections), kept current by
//! the projector role this process runs.

use strom_commands::service::EventStoreBackend;

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::roles::Roles;
use crate::views::{AgentHistory, AgentView, Page};

/// Query handle on the read models.
#[derive(Clone)]
pub struct Reads {}

impl Reads {
    /// Opens the read models of `backend` and starts their projector in `roles`.
    ///
    /// # Errors
    /// The read models cannot be opened.
    pub async fn start(_backend: &EventStoreBackend, _roles: &mut Roles) -> anyhow::Result<Self> {
        Ok(Self {})
    }

    /// Wakes the projector after a command committed in this process.
    pub fn wake(&self) {}

    /// # Errors
    /// Not wired yet.
    pub async fn history(&self, _id: &str) -> Result<AgentHistory, ApiError> {
        Err(ApiError::Unavailable(
            "read models are not wired yet".into(),
        ))
    }

    /// # Errors
    /// Not wired yet.
    pub async fn get_agent(
        &self,
        _caller: &Caller,
        _id: &str,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<AgentView, ApiError> {
        Err(ApiError::Unavailable(
            "read models are not wired yet".into(),
        ))
    }

    /// # Errors
    /// Not wired yet.
    pub async fn list_agents(
        &self,
        _caller: &Caller,
        _query: &crate::routes::agents::ListQuery,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Page<AgentView>, ApiError> {
        Err(ApiError::Unavailable(
            "read models are not wired yet".into(),
        ))
    }

    /// # Errors
    /// Not wired yet.
    pub async fn list_runs(
        &self,
        _caller: &Caller,
        _id: &str,
        _query: &crate::routes::agents::ListQuery,
    ) -> Result<Page<serde_json::Value>, ApiError> {
        Err(ApiError::Unavailable(
            "read models are not wired yet".into(),
        ))
    }
}
