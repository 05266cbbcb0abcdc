//! Building and running the HTTP server (zero2prod's `Application::build`, mini-redis's `run(listener, shutdown)`):
//! `build` binds the listener so tests can ask for port 0 and read `port()`; `run_until_stopped` takes the shutdown
//! future as an argument.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::auth::{AuthSettings, Authenticator};
use crate::{observability, problem::ApiError, routes, telemetry};

/// How long a graceful shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections a lazily-connected Postgres pool opens at most for API reads; enough for 2 cores.
const PG_POOL_MAX: u32 = 16;

/// Everything `strom serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub database_url: Option<String>,
    pub nats_url: Option<String>,
    pub auth: AuthSettings,
}

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

/// State shared by handlers.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub deps: Dependencies,
    pub metrics: PrometheusHandle,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Connects (lazily) to the configured services and binds the listener.
    ///
    /// # Errors
    /// The listen address is invalid or taken, the auth key cannot be loaded, or a service URL is malformed.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let deps = connect(&config).await?;
        if deps.is_embedded() {
            tracing::warn!(
                "EMBEDDED MODE: STROM_DATABASE_URL and STROM_NATS_URL are unset; state lives in memory and is lost on exit"
            );
        }
        let auth = Arc::new(
            Authenticator::new(config.auth.clone()).context("Failed to set up authentication")?,
        );
        let state = AppState {
            auth,
            deps,
            metrics: telemetry::metrics_handle(),
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("Failed to listen on {}", config.listen))?;
        Ok(Self {
            listener,
            router: router(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded by `SHUTDOWN_GRACE`).
    ///
    /// # Errors
    /// The server fails to accept connections.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "listening");
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutdown requested; finishing in-flight requests");
            let _ = stopping_tx.send(());
        });
        let grace = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            result = serve => result.context("HTTP server failed")?,
            () = grace => tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; stopping anyway"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn connect(config: &ServeConfig) -> anyhow::Result<Dependencies> {
    let postgres = match &config.database_url {
        Some(url) => Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(PG_POOL_MAX)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy(url)
                .context("STROM_DATABASE_URL is not a valid Postgres URL")?,
        ),
        None => None,
    };
    let nats = match &config.nats_url {
        Some(url) => Some(
            async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(url.as_str())
                .await
                .context("STROM_NATS_URL is not a valid NATS URL")?,
        ),
        None => None,
    };
    Ok(Dependencies { postgres, nats })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/api/v1/me", get(routes::me::me))
        .route_layer(axum::middleware::from_fn(observability::label_route))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(observability::correlate))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_to_problem,
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

fn panic_to_problem(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}
