//! `strom serve`: the product — the HTTP API, the projector and the background roles of `STROM_ROLES` in one
//! process, until Ctrl-C or SIGTERM.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rust_decimal::Decimal;
use strom_domain::FillModel;

use super::auth::AuthArgs;
use crate::background::{self, BackgroundConfig, Role};
use crate::demo::DEMO_OWNER;
use crate::startup::{Application, ServeConfig, DEFAULT_AGENT_SEED};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "STROM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Postgres URL of the event store and read models; unset = embedded memory store.
    #[arg(long, env = "STROM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Postgres schema to use (the only search_path entry); unset = the server's default (public).
    #[arg(long, env = "STROM_DATABASE_SCHEMA")]
    database_schema: Option<String>,
    /// Apply pending database migrations at startup. Without it, `serve` refuses to start while migrations are
    /// pending and asks for `strom migrate`.
    #[arg(long, env = "STROM_MIGRATE")]
    migrate: bool,
    /// NATS URL (JetStream enabled); unset = embedded memory bus.
    #[arg(long, env = "STROM_NATS_URL")]
    nats_url: Option<String>,
    /// Prefix of NATS subjects, streams, the price bucket and Valkey keys.
    #[arg(long, env = "STROM_NATS_PREFIX", default_value = "strom")]
    nats_prefix: String,
    /// Valkey/Redis URL for Idempotency-Key records shared by all API processes; unset = in-process memory.
    #[arg(long, env = "STROM_VALKEY_URL", hide_env_values = true)]
    valkey_url: Option<String>,
    /// Seed of the simulated market, also recorded in agents created without one.
    #[arg(long, env = "STROM_SIM_SEED", default_value_t = DEFAULT_AGENT_SEED)]
    sim_seed: u64,
    /// Background roles to run beside the API and the projector: scheduler, runtime, execution, relay, sim
    /// (comma-separated; `api` and `projector` are accepted and always run).
    #[arg(long, env = "STROM_ROLES", default_value = "api,scheduler,runtime,execution,projector,relay,sim,backtest",
          value_parser = background::parse_roles)]
    roles: BTreeSet<Role>,
    /// Paper fills move against the order by this many basis points (decimal, 0 ≤ bps < 10000); recorded on every
    /// order the runtime places.
    #[arg(long, env = "STROM_FILL_SLIPPAGE_BPS", default_value = "0", value_parser = bps)]
    fill_slippage_bps: Decimal,
    /// Paper fills pay this fee, in basis points of the filled notional (decimal, 0 ≤ bps < 10000).
    #[arg(long, env = "STROM_FILL_FEE_BPS", default_value = "0", value_parser = bps)]
    fill_fee_bps: Decimal,
    /// Symbols the simulator publishes prices for (comma-separated).
    #[arg(
        long,
        env = "STROM_SIM_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC-USD,ETH-USD,SOL-USD"
    )]
    sim_symbols: Vec<String>,
    /// Seconds between simulated prices.
    #[arg(long, env = "STROM_SIM_INTERVAL_S", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    sim_interval_s: u32,
    /// Create a stopped demo agent for the dev user `demo` at startup if it does not exist (`make run` does).
    #[arg(long, env = "STROM_DEMO_AGENT")]
    demo_agent: bool,
    /// Directory of the built dashboard (ui/dist, made by `make ui`), served at `/` and at every non-API path;
    /// relative to the working directory. When it has no index.html, the server still starts, logs how to build
    /// it, and `/` says so.
    #[arg(long, env = "STROM_UI_DIR", default_value = strom_api::routes::ui::DEFAULT_UI_DIR)]
    ui_dir: PathBuf,
    /// The dashboard's OpenID Connect client at the identity provider (JWKS mode): a public client with the
    /// authorization code flow and PKCE, redirecting to http://<this server>/sign-in/callback
    /// (deploy/keycloak/strom-realm.json has it).
    #[arg(long, env = "STROM_DASHBOARD_CLIENT_ID", default_value = strom_api::routes::auth_config::DEFAULT_DASHBOARD_CLIENT_ID)]
    dashboard_client_id: String,
    #[command(flatten)]
    auth: AuthArgs,
}

impl ServeArgs {
    fn config(self) -> anyhow::Result<ServeConfig> {
        Ok(ServeConfig {
            listen: self.listen,
            database_url: self.database_url,
            database_schema: self.database_schema,
            migrate: self.migrate,
            nats_url: self.nats_url,
            prefix: self.nats_prefix.clone(),
            valkey_url: self.valkey_url,
            auth: self.auth.settings()?,
            default_seed: self.sim_seed,
            background: BackgroundConfig {
                roles: self.roles,
                sim_seed: self.sim_seed,
                sim_symbols: self.sim_symbols,
                sim_interval_s: self.sim_interval_s,
                fill_model: FillModel {
                    slippage_bps: self.fill_slippage_bps,
                    fee_bps: self.fill_fee_bps,
                },
                pg_options: None,
                prefix: self.nats_prefix,
            },
            demo_agent: self.demo_agent,
            ui_dir: self.ui_dir,
            dashboard_client_id: self.dashboard_client_id,
        })
    }
}

/// A basis-point setting: a decimal in [0, 10000).
fn bps(text: &str) -> Result<Decimal, String> {
    let value: Decimal = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a decimal number of basis points"))?;
    FillModel {
        slippage_bps: value,
        fee_bps: Decimal::ZERO,
    }
    .validate()
    .map_err(|e| e.reason)?;
    Ok(value)
}

/// Builds the application and serves until `shutdown` resolves.
///
/// # Errors
/// See [`Application::build`] and [`Application::run_until_stopped`].
pub async fn serve(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = args.config()?;
    let issuer = config.auth.issuer.clone().unwrap_or_default();
    let app = Application::build(config).await?;
    // stdout, not the log: a person opens it (a dev link's code is good once, for 15 minutes). A closed stdout
    // (`| head`) must not stop the server, so the write's error is ignored rather than panicking as `println!` would.
    let _ = match app.dev_sign_in_link() {
        Some(link) => writeln!(
            std::io::stdout().lock(),
            "Dashboard: {link}\n  (one-time sign-in link for the dev user `{DEMO_OWNER}`, good once for 15 minutes; \
             afterwards: `strom token --sub {DEMO_OWNER} --role trader` and paste the token)"
        ),
        None => writeln!(
            std::io::stdout().lock(),
            "Dashboard: {}\n  (sign-in at the identity provider {issuer})",
            app.dashboard_url()
        ),
    };
    app.run_until_stopped(shutdown).await
}
