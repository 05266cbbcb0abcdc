//! What handlers share ([`AppState`]): the services a process runs on, put together by the `strom` binary and
//! handed to [`crate::router`].

use std::sync::Arc;

use axum::extract::FromRef;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use strom_commands::bus::Bus;
use strom_commands::service::CommandServices;
use strom_commands::store::Clock;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::idempotency::IdempotencyStore;
use crate::live::LiveFeed;
use crate::reads::Reads;

/// The external services this process talks to; `None` means the embedded (memory) adapter is used instead.
#[derive(Clone, Default)]
pub struct Dependencies {
    pub postgres: Option<sqlx::PgPool>,
    pub nats: Option<async_nats::Client>,
}

impl Dependencies {
    pub fn is_embedded(&self) -> bool {
        self.postgres.is_none() && self.nats.is_none()
    }
}

/// Settings handlers read.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub default_seed: u64,
    /// The paper fill model (`STROM_FILL_*`): a backtest request without `fill_model` gets it.
    pub fill_model: strom_domain::FillModel,
    /// The built dashboard (`--ui-dir` / `STROM_UI_DIR`), served at the paths the API does not route ([`crate::routes::ui`]).
    pub ui_dir: std::path::PathBuf,
    /// The dashboard's OpenID Connect client id at the identity provider (JWKS mode), told to the dashboard by
    /// `GET /api/v1/auth/config`.
    pub dashboard_client_id: String,
}

/// State shared by handlers.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub deps: Dependencies,
    pub metrics: PrometheusHandle,
    pub commands: Arc<CommandServices>,
    pub reads: Reads,
    /// The backtests read model and the runner's artifacts (the uploaded CSVs, progress, results).
    pub backtests: Arc<dyn strom_projections::backtests::BacktestStore>,
    pub bus: Arc<dyn Bus>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub live: Arc<LiveFeed>,
    pub clock: Clock,
    pub settings: Arc<ApiSettings>,
    /// The one-time sign-in codes `strom serve` prints in dev mode ([`crate::dev_sign_in`]).
    pub dev_sign_in: Arc<crate::dev_sign_in::DevSignIn>,
    /// Telegram link codes and linked chats ([`crate::telegram`]).
    pub links: Arc<crate::telegram::LinkStore>,
    /// Cancelled when the process stops: long-lived responses (SSE) end with it.
    pub stop: CancellationToken,
}

impl AppState {
    /// The wall clock (injected so tests can control it).
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}
