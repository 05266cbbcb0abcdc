//! Building and running the HTTP server (zero2prod's `Application::build`, mini-redis's `run(listener, shutdown)`):
//! `build` binds the listener so tests can ask for port 0 and read `port()`; `run_until_stopped` takes the shutdown
//! future as an argument.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use chrono::Utc;
use strom_api::auth::{AuthSettings, Authenticator, Role as AuthRole};
use strom_api::dev_sign_in::DevSignIn;
use strom_api::live::LiveFeed;
use strom_api::state::{ApiSettings, AppState, Dependencies};
use strom_api::{idempotency, router};
use strom_commands::bus::memory::MemoryBus;
use strom_commands::bus::nats::NatsBus;
use strom_commands::bus::{Bus, Subjects};
use strom_commands::service::CommandServices;
use strom_commands::store::EventStore;
use strom_domain::FillModel;
use tokio::net::TcpListener;

use crate::background::{BackgroundConfig, Role};
use crate::roles::Roles;
use crate::{demo, migrations, projector, telemetry};

/// How long a graceful shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections the Postgres pool opens at most (commands, reads, projector, live feed): enough for 2 cores.
const PG_POOL_MAX: u32 = 16;
/// How long a request waits for a pooled Postgres connection before failing with 503.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Seed recorded in agents created without one (`STROM_SIM_SEED`'s default).
pub const DEFAULT_AGENT_SEED: u64 = 42;
/// Subject / key prefix when none is configured (`STROM_NATS_PREFIX`).
pub const DEFAULT_PREFIX: &str = "strom";

/// Everything `strom serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    /// Postgres URL; `None` = embedded memory store.
    pub database_url: Option<String>,
    /// Schema for the search_path (`STROM_DATABASE_SCHEMA`; tests use one per test).
    pub database_schema: Option<String>,
    /// Apply pending migrations at startup instead of refusing to start (`--migrate`).
    pub migrate: bool,
    pub nats_url: Option<String>,
    /// Prefix of NATS subjects, streams and Valkey keys (`STROM_NATS_PREFIX`).
    pub prefix: String,
    /// Valkey/Redis URL for idempotency records; `None` = memory LRU.
    pub valkey_url: Option<String>,
    pub auth: AuthSettings,
    /// Seed given to agents created without one (`STROM_SIM_SEED`).
    pub default_seed: u64,
    /// The background roles (scheduler, runtime, relay, sim) and their settings.
    pub background: BackgroundConfig,
    /// Create the demo agent at startup (owner `demo`) if it does not exist (`make run`).
    pub demo_agent: bool,
    /// The built dashboard, served at the paths the API does not route (`STROM_UI_DIR`).
    pub ui_dir: PathBuf,
    /// The dashboard's OIDC client id at the identity provider (`STROM_DASHBOARD_CLIENT_ID`; JWKS mode).
    pub dashboard_client_id: String,
}

impl ServeConfig {
    /// Embedded mode (everything in memory) on `listen`.
    pub fn new(listen: impl Into<String>, auth: AuthSettings) -> Self {
        Self {
            listen: listen.into(),
            database_url: None,
            database_schema: None,
            migrate: false,
            nats_url: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            valkey_url: None,
            auth,
            default_seed: DEFAULT_AGENT_SEED,
            background: BackgroundConfig {
                roles: Default::default(),
                sim_seed: DEFAULT_AGENT_SEED,
                sim_symbols: DEFAULT_SIM_SYMBOLS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                sim_interval_s: 1,
                fill_model: FillModel::default(),
                pg_options: None,
                prefix: DEFAULT_PREFIX.to_owned(),
            },
            demo_agent: false,
            ui_dir: PathBuf::from(strom_api::routes::ui::DEFAULT_UI_DIR),
            dashboard_client_id: strom_api::routes::auth_config::DEFAULT_DASHBOARD_CLIENT_ID
                .to_owned(),
        }
    }
}

/// Says at startup whether `/` will show the dashboard, or how to build it: a missing build is no reason to fail.
fn log_dashboard(dir: &Path) {
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    if strom_api::routes::ui::is_built(dir) {
        tracing::info!(dir = %shown.display(), "serving the dashboard at /");
    } else {
        tracing::warn!(
            dir = %shown.display(),
            "dashboard not built (no index.html in {}): `/` says so; {}",
            shown.display(),
            strom_api::routes::ui::BUILD_HINT
        );
    }
}

/// Symbols the simulator publishes when none are configured (`STROM_SIM_SYMBOLS`).
pub const DEFAULT_SIM_SYMBOLS: &[&str] = &["BTC-USD", "ETH-USD", "SOL-USD"];

/// What tests and the other roles reach into: the write side, the bus and the event log this server uses.
#[derive(Clone)]
pub struct Handles {
    pub commands: Arc<CommandServices>,
    pub bus: Arc<dyn Bus>,
    pub store: EventStore,
    /// The backtests read model and the backtest runner's artifacts.
    pub backtests: Arc<dyn strom_projections::backtests::BacktestStore>,
    /// The one-time dev sign-in codes the API redeems (`strom serve` prints one at startup in dev mode).
    pub dev_sign_in: Arc<DevSignIn>,
}

pub struct Application {
    /// Tokens are dev tokens (no identity provider): `dev_sign_in_link` has something to print.
    dev_mode: bool,
    listener: TcpListener,
    router: Router,
    roles: Roles,
    handles: Handles,
}

impl Application {
    /// Connects to the configured services (or sets up their memory adapters), starts the background roles and
    /// binds the listener.
    ///
    /// # Errors
    /// The listen address is invalid or taken, the auth key cannot be loaded, a service URL is malformed, Valkey
    /// does not answer, or the database has pending migrations (and `migrate` is off).
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let deps = connect(&config).await?;
        log_dashboard(&config.ui_dir);
        if deps.is_embedded() {
            tracing::warn!(
                "EMBEDDED MODE: STROM_DATABASE_URL and STROM_NATS_URL are unset; state lives in memory and is lost on exit"
            );
        }
        let store = match &deps.postgres {
            Some(pool) => {
                migrations::ensure_current(pool, config.migrate).await?;
                EventStore::postgres(pool.clone())
            }
            None => {
                tracing::warn!("EMBEDDED MODE: event store in memory, state is lost on exit");
                EventStore::memory()
            }
        };
        let bus = bus(&config, &deps).await?;
        let auth = Arc::new(
            Authenticator::new(config.auth.clone()).context("Failed to set up authentication")?,
        );
        let idempotency = idempotency::connect(config.valkey_url.as_deref(), &config.prefix)
            .await
            .context("Failed to connect to the idempotency store (STROM_VALKEY_URL)")?;
        let commands = Arc::new(CommandServices::new(&store));
        let live = Arc::new(LiveFeed::new());
        let mut roles = Roles::new();
        let feed = Arc::clone(&live);
        let (tail_log, commits) = (store.log(), store.commits().clone());
        roles.spawn("live-feed", move |stop| feed.run(tail_log, commits, stop));
        let (reads, backtests) = projector::start(&store, &mut roles);
        let background = background_config(&config)?;
        crate::background::spawn(&background, &bus, &commands, &backtests, &mut roles).await?;
        if config.demo_agent {
            demo::ensure_demo_agent(&commands, config.default_seed).await?;
        }
        let dev_sign_in = Arc::new(DevSignIn::default());
        let dev_mode = auth.is_dev();
        let links = Arc::new(strom_api::telegram::LinkStore::new(deps.postgres.clone()));
        let state = AppState {
            links,
            auth,
            deps,
            metrics: telemetry::metrics_handle(),
            commands: Arc::clone(&commands),
            reads,
            bus: Arc::clone(&bus),
            idempotency,
            live,
            clock: Arc::new(Utc::now),
            backtests: Arc::clone(&backtests),
            settings: Arc::new(ApiSettings {
                default_seed: config.default_seed,
                fill_model: background.fill_model.clone(),
                ui_dir: config.ui_dir.clone(),
                dashboard_client_id: config.dashboard_client_id.clone(),
            }),
            dev_sign_in: Arc::clone(&dev_sign_in),
            stop: roles.stop_token(),
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("Failed to listen on {}", config.listen))?;
        Ok(Self {
            dev_mode,
            listener,
            router: router(state),
            roles,
            handles: Handles {
                commands,
                bus,
                store,
                backtests,
                dev_sign_in,
            },
        })
    }

    /// The services this server runs on (tests drive the write side directly with them).
    pub fn handles(&self) -> Handles {
        self.handles.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// In dev mode, a new one-time link that signs the dev user `demo` (role trader) in to the dashboard
    /// ([`DevSignIn`]): `http://<listen address>/sign-in#code=…` (an unspecified address shown as 127.0.0.1).
    /// `None` when tokens come from an identity provider.
    pub fn dev_sign_in_link(&self) -> Option<String> {
        if !self.dev_mode {
            return None;
        }
        let code = self.handles.dev_sign_in.issue(
            crate::demo::DEMO_OWNER,
            &[AuthRole::Trader],
            Utc::now(),
        );
        Some(format!("{}sign-in#code={code}", self.dashboard_url()))
    }

    /// `http://<listen address>/`, where a browser opens the dashboard (an unspecified listen address as
    /// 127.0.0.1).
    pub fn dashboard_url(&self) -> String {
        let mut addr = self.local_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}/")
    }

    /// Serves until `shutdown` resolves (or a background role ends, which is a failure), then stops the roles and
    /// lets in-flight requests finish (bounded by `SHUTDOWN_GRACE`).
    ///
    /// # Errors
    /// The server fails to accept connections, or a role ended on its own.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "listening");
        let Self {
            listener,
            router,
            mut roles,
            ..
        } = self;
        let stop = roles.stop_token();
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server_stop = stop.clone();
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown => tracing::info!("shutdown requested; finishing in-flight requests"),
                () = server_stop.cancelled() => {}
            }
            // Ends the SSE streams, which would otherwise hold the graceful shutdown open.
            server_stop.cancel();
            let _ = stopping_tx.send(());
        });
        let grace = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let server = async {
            tokio::select! {
                result = serve => result.context("HTTP server failed"),
                () = grace => {
                    tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; stopping anyway");
                    Ok(())
                }
            }
        };
        let role_failure = async {
            loop {
                let (name, result) = roles.first_exit().await;
                match result {
                    // Roles end when the stop token is cancelled, which the shutdown does.
                    Ok(()) if stop.is_cancelled() => continue,
                    Ok(()) => break anyhow::anyhow!("role {name} stopped on its own"),
                    Err(e) => break e.context(format!("role {name} failed")),
                }
            }
        };
        let outcome = tokio::select! {
            result = server => result,
            failure = role_failure => {
                stop.cancel();
                Err(failure)
            }
        };
        roles.stop().await;
        tracing::info!("stopped");
        outcome
    }
}

async fn connect(config: &ServeConfig) -> anyhow::Result<Dependencies> {
    let postgres = match &config.database_url {
        Some(url) => {
            let options =
                strom_commands::store::pg_connect_options(url, config.database_schema.as_deref())
                    .context("Invalid STROM_DATABASE_URL / STROM_DATABASE_SCHEMA")?;
            Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(PG_POOL_MAX)
                    .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options),
            )
        }
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

/// The background roles' settings completed from the serve config: its prefix, the relay dropped without NATS,
/// and the Postgres options for the leader locks.
fn background_config(config: &ServeConfig) -> anyhow::Result<BackgroundConfig> {
    let mut background = config.background.clone();
    background.prefix.clone_from(&config.prefix);
    if config.nats_url.is_none() && background.roles.remove(&Role::Relay) {
        tracing::info!(
            "relay role skipped: no STROM_NATS_URL, so there is no JetStream to publish to"
        );
    }
    if let Some(url) = &config.database_url {
        background.pg_options = Some(
            strom_commands::store::pg_connect_options(url, config.database_schema.as_deref())
                .context("Invalid STROM_DATABASE_URL / STROM_DATABASE_SCHEMA")?,
        );
    }
    Ok(background)
}

/// The message bus: JetStream when NATS is configured, the memory bus otherwise (its topology made here, since
/// nothing else creates it in embedded mode).
async fn bus(config: &ServeConfig, deps: &Dependencies) -> anyhow::Result<Arc<dyn Bus>> {
    let subjects = Subjects::new(config.prefix.clone()).context("Invalid STROM_NATS_PREFIX")?;
    Ok(match &deps.nats {
        Some(client) => {
            let bus = NatsBus::new(client.clone(), subjects);
            bus.ensure_topology().await.context(
                "Failed to set up the JetStream streams on STROM_NATS_URL (is JetStream enabled: nats-server -js?)",
            )?;
            Arc::new(bus)
        }
        None => {
            tracing::warn!("EMBEDDED MODE: bus in memory, state is lost on exit");
            let bus = MemoryBus::new(subjects);
            bus.ensure_topology()
                .await
                .context("Failed to set up the memory bus")?;
            Arc::new(bus)
        }
    })
}
