//! The `strom` binary: one entry point per product role (see `strom --help`). Kept thin: each subcommand parses
//! its flags and calls into the library crates.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Parser, Subcommand};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use strom_api::auth::{AuthMode, AuthSettings, DevKey, Role, DEFAULT_AUDIENCE, DEV_ISSUER};
use strom_api::startup::{Application, ServeConfig};
use strom_api::telemetry::{self, LogFormat};
use strom_commands::bus::nats::NatsBus;
use strom_commands::bus::sim_publisher::SimPublisher;
use strom_commands::bus::{validate_price_key, Bus, Subjects};
use strom_commands::relay::{Relay, RelayConfig};
use strom_commands::store::{pg_connect_options, MIGRATOR};
use strom_sim::{PricePath, SimFeed};

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "STROM: an event-sourced trading ledger for automated strategies",
    long_about = "STROM: an event-sourced trading ledger for automated strategies.\n\n\
        Every setting can come from a flag or from the STROM_* environment variable shown beside it.\n\
        With no STROM_DATABASE_URL / STROM_NATS_URL, STROM runs embedded on in-memory adapters (state is lost on exit)."
)]
struct Cli {
    /// A file of `STROM_*=value` lines (dotenv syntax) read before anything else; variables already set in the
    /// environment win over it, and flags win over both.
    #[arg(long, env = "STROM_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `strom_api=debug,info`).
    #[arg(long, env = "STROM_LOG", default_value = "info", global = true)]
    log: String,
    /// Log line format.
    #[arg(
        long,
        env = "STROM_LOG_FORMAT",
        value_enum,
        default_value = "json",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the product: the API, the projector and the background roles (scheduler, runtime, relay, sim).
    Serve(ServeArgs),
    /// Mint a dev-mode JWT (HS256 with the local dev key) and print it, alone, on stdout.
    Token(TokenArgs),
    /// Run the deterministic market simulator alone: publish prices on NATS until stopped, or (--print, --csv)
    /// write them out without any bus.
    Sim(SimArgs),
    /// Audit and repair from the event log: rebuild read models (--rebuild), verify hash chains and read models
    /// (--verify), export the log (--export FILE), or replay an exported file without a database (--from FILE).
    Replay(strom_projections::replay::ReplayArgs),
    /// Apply the database migrations that STROM_DATABASE_URL (schema STROM_DATABASE_SCHEMA) lacks, and print them.
    /// Safe to run any number of times.
    Migrate(MigrateArgs),
    /// Run the outbox relay alone: publish committed events from Postgres to JetStream until stopped (one active
    /// relay per NATS prefix; start more as standbys).
    Relay(RelayArgs),
}

#[derive(Args)]
struct MigrateArgs {
    /// Postgres URL to migrate.
    #[arg(long, env = "STROM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Schema to migrate (created if missing); default: the connection's search_path.
    #[arg(long, env = "STROM_DATABASE_SCHEMA")]
    database_schema: Option<String>,
}

#[derive(Args)]
struct RelayArgs {
    #[command(flatten)]
    database: MigrateArgs,
    /// NATS URL (JetStream enabled) to publish on.
    #[arg(long, env = "STROM_NATS_URL")]
    nats_url: Option<String>,
    /// Prefix of the subjects and streams.
    #[arg(long, env = "STROM_NATS_PREFIX", default_value = "strom")]
    nats_prefix: String,
}

#[derive(Args)]
struct ServeArgs {
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
    #[arg(long, env = "STROM_SIM_SEED", default_value_t = strom_api::startup::DEFAULT_AGENT_SEED)]
    sim_seed: u64,
    /// Background roles to run beside the API and the projector: scheduler, runtime, relay, sim (comma-separated;
    /// `api` and `projector` are accepted and always run).
    #[arg(long, env = "STROM_ROLES", default_value = "api,scheduler,runtime,projector,relay,sim",
          value_parser = parse_roles)]
    roles: std::collections::BTreeSet<strom_api::background::Role>,
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
    #[command(flatten)]
    auth: AuthArgs,
}

fn parse_roles(
    list: &str,
) -> Result<std::collections::BTreeSet<strom_api::background::Role>, String> {
    strom_api::background::parse_roles(list)
}

#[derive(Args)]
struct AuthArgs {
    /// JWKS URL to verify RS256 tokens against (Keycloak: <realm url>/protocol/openid-connect/certs).
    /// Unset = dev mode: HS256 with the key in --dev-key-file.
    #[arg(long, env = "STROM_AUTH_JWKS_URL")]
    jwks_url: Option<String>,
    /// Required `iss` claim. Default: none in JWKS mode, `strom-dev` in dev mode.
    #[arg(long, env = "STROM_AUTH_ISSUER")]
    issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "STROM_AUTH_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    audience: String,
    /// Dev-mode signing key file; created with a random key on first use.
    #[arg(
        long,
        env = "STROM_AUTH_DEV_KEY_FILE",
        default_value = ".strom/dev-jwt.key"
    )]
    dev_key_file: PathBuf,
}

impl AuthArgs {
    fn settings(&self) -> AuthSettings {
        match &self.jwks_url {
            Some(url) => AuthSettings {
                mode: AuthMode::Jwks { url: url.clone() },
                audience: self.audience.clone(),
                issuer: self.issuer.clone(),
            },
            None => AuthSettings {
                mode: AuthMode::Dev {
                    key_file: self.dev_key_file.clone(),
                },
                audience: self.audience.clone(),
                issuer: Some(self.issuer.clone().unwrap_or_else(|| DEV_ISSUER.to_owned())),
            },
        }
    }
}

#[derive(Args)]
struct TokenArgs {
    /// Subject (user id) the token speaks for.
    #[arg(long)]
    sub: String,
    /// Role to grant: viewer, trader or admin (repeat for several).
    #[arg(long = "role", value_parser = parse_role, required = true)]
    roles: Vec<Role>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    ttl_s: u64,
    #[command(flatten)]
    auth: AuthArgs,
}

/// Most prices (--print) or bars (--csv) one run produces: 10 million one-minute bars are 19 years, about 500 MB of
/// CSV, far beyond the 1M-bar benchmark workload, yet a typo like `--count 1000000000000` is refused.
const MAX_SIM_COUNT: u64 = 10_000_000;
/// Bars written by --csv are one minute long, the format backtests read.
const CSV_BAR_S: u32 = 60;

#[derive(Args)]
struct SimArgs {
    /// Symbols to simulate, comma-separated (--csv takes exactly one).
    #[arg(
        long,
        alias = "symbol",
        value_delimiter = ',',
        default_value = "BTC-USD"
    )]
    symbols: Vec<String>,
    /// Seconds between prices; published prices fall on whole multiples of it in Unix time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    interval_s: u32,
    /// Seed of the price path: the same seed gives the same prices on every machine, and it is recorded in each
    /// PriceObserved.
    #[arg(long, env = "STROM_SIM_SEED", default_value_t = 42)]
    seed: u64,
    /// NATS URL (JetStream enabled) to publish on. Required unless --print or --csv.
    #[arg(long, env = "STROM_NATS_URL")]
    nats_url: Option<String>,
    /// Prefix of the subjects, streams and KV bucket.
    #[arg(long, env = "STROM_NATS_PREFIX", default_value = "strom")]
    nats_prefix: String,
    /// Print --count prices per symbol from --from, every --interval-s seconds, as CSV (at,symbol,price) on
    /// stdout, and exit. Needs no NATS.
    #[arg(long, requires = "from", conflicts_with = "csv")]
    print: bool,
    /// Write --count one-minute bars of the symbol from --from to FILE as CSV (ts,open,high,low,close,volume;
    /// ts in Unix seconds), and exit. Needs no NATS.
    #[arg(long, value_name = "FILE", requires = "from")]
    csv: Option<PathBuf>,
    /// First instant for --print / --csv, RFC 3339 (e.g. 2026-01-01T00:00:00Z); fractions of a second are dropped.
    #[arg(long, value_parser = parse_rfc3339)]
    from: Option<DateTime<Utc>>,
    /// How many prices per symbol (--print) or bars (--csv).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SIM_COUNT))]
    count: u64,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-01-01T00:00:00Z ({e})"))
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role `{s}`; use viewer, trader or admin"))
}

fn main() -> ExitCode {
    if let Err(err) = load_config_file() {
        eprintln!("error: {err:#}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    telemetry::init_logging(&cli.log, cli.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")
        .and_then(|rt| rt.block_on(run(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads `--config FILE` / `STROM_CONFIG` into the environment before clap reads it, so every `STROM_*` setting can
/// come from the file. Existing variables are kept (the environment wins).
fn load_config_file() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let mut path = std::env::var_os("STROM_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        if arg == "--config" {
            path = args.next().map(PathBuf::from);
        } else if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(PathBuf::from(value));
        }
    }
    if let Some(path) = path {
        dotenvy::from_path(&path)
            .with_context(|| format!("Failed to read the config file {}", path.display()))?;
    }
    Ok(())
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => token(&args),
        Command::Sim(args) => sim(args).await,
        Command::Replay(args) => strom_projections::replay::run(args, shutdown_signal()).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Relay(args) => relay(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig {
        listen: args.listen,
        database_url: args.database_url,
        database_schema: args.database_schema,
        migrate: args.migrate,
        nats_url: args.nats_url,
        prefix: args.nats_prefix.clone(),
        valkey_url: args.valkey_url,
        auth: args.auth.settings(),
        default_seed: args.sim_seed,
        background: strom_api::background::BackgroundConfig {
            roles: args.roles,
            sim_seed: args.sim_seed,
            sim_symbols: args.sim_symbols,
            sim_interval_s: args.sim_interval_s,
            pg_options: None,
            prefix: args.nats_prefix.clone(),
        },
        demo_agent: args.demo_agent,
    };
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.auth.jwks_url.is_none(),
        "STROM_AUTH_JWKS_URL is set, so the server only accepts tokens from that identity provider; \
         get a token there (e.g. from Keycloak) or unset it to use dev mode"
    );
    let key = DevKey::load_or_create(&args.auth.dev_key_file)?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    println!(
        "{}",
        key.mint(
            &args.sub,
            &args.roles,
            now_s,
            args.ttl_s,
            &args.auth.audience
        )?
    );
    Ok(())
}

async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let feed = SimFeed::new(args.seed, args.symbols.clone(), args.interval_s)
        .context("Invalid simulator settings")?;
    match (args.print, &args.csv, args.from) {
        (true, _, Some(from)) => sim_print(&feed, from, args.count),
        (_, Some(file), Some(from)) => sim_csv(&feed, file, from, args.count),
        _ => sim_publish(args, feed).await,
    }
}

fn sim_print(feed: &SimFeed, from: DateTime<Utc>, count: u64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "at,symbol,price")?;
    let from_s = from.timestamp();
    for i in 0..count {
        let t = i64::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(i64::from(feed.interval_s())))
            .and_then(|offset| from_s.checked_add(offset))
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .context("--from + --count × --interval-s is beyond the representable time range")?;
        for observed in feed.observations_at(t) {
            let at = observed.at.to_rfc3339_opts(SecondsFormat::Secs, true);
            writeln!(out, "{at},{},{}", observed.symbol, observed.price)?;
        }
    }
    out.flush().context("Failed to write to stdout")
}

fn sim_csv(
    feed: &SimFeed,
    file: &std::path::Path,
    from: DateTime<Utc>,
    count: u64,
) -> anyhow::Result<()> {
    let [symbol] = feed.symbols() else {
        anyhow::bail!(
            "--csv writes the bars of one symbol; give exactly one with --symbol (got {})",
            feed.symbols().join(",")
        );
    };
    let from_s = from.timestamp();
    anyhow::ensure!(
        from_s % i64::from(CSV_BAR_S) == 0,
        "--from must be a whole minute for one-minute bars (got {from})"
    );
    let to_s = i64::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(i64::from(CSV_BAR_S)))
        .and_then(|span| from_s.checked_add(span))
        .context("--from + --count minutes is beyond the representable time range")?;
    let bars = PricePath::new(feed.seed()).bars(symbol, from_s, to_s, CSV_BAR_S)?;
    let out = std::fs::File::create(file)
        .with_context(|| format!("Failed to create {}", file.display()))?;
    let written = strom_sim::write_bars(out, bars)
        .with_context(|| format!("Failed to write bars to {}", file.display()))?;
    eprintln!(
        "wrote {written} one-minute bars of {symbol} (seed {}) to {}",
        feed.seed(),
        file.display()
    );
    Ok(())
}

async fn sim_publish(args: SimArgs, feed: SimFeed) -> anyhow::Result<()> {
    let Some(url) = args.nats_url else {
        anyhow::bail!(
            "strom sim publishes prices on NATS: set STROM_NATS_URL (or --nats-url) to a NATS server with \
             JetStream, or use --print / --csv to write prices without a bus. (In embedded mode, `strom serve` runs \
             the simulator itself.)"
        );
    };
    for symbol in feed.symbols() {
        validate_price_key(symbol).context("Invalid --symbols")?;
    }
    let subjects = Subjects::new(args.nats_prefix).context("Invalid STROM_NATS_PREFIX")?;
    let bus = NatsBus::connect(&url, subjects)
        .await
        .with_context(|| format!("Failed to connect to NATS at {url}"))?;
    bus.ensure_topology()
        .await
        .context("Failed to create the JetStream streams and price bucket")?;
    tracing::info!(
        symbols = ?feed.symbols(),
        interval_s = feed.interval_s(),
        seed = feed.seed(),
        "sim publishing prices until Ctrl-C or SIGTERM"
    );
    let publisher = SimPublisher::new(Arc::new(bus), feed)
        .await
        .context("Failed to open the price board")?;
    publisher.run(shutdown_signal()).await;
    tracing::info!("sim stopped");
    Ok(())
}

/// How long `strom migrate` / `strom relay` wait for a database connection before saying it is unreachable: long
/// enough for a Postgres that is still starting (compose), short enough that a wrong URL fails visibly.
const DATABASE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl MigrateArgs {
    /// A small pool on the configured database and schema.
    async fn connect(&self, command: &str, connections: u32) -> anyhow::Result<PgPool> {
        let Some(url) = &self.database_url else {
            anyhow::bail!(
                "strom {command} needs a database: set STROM_DATABASE_URL (or --database-url), e.g. \
                 postgres://postgres@127.0.0.1:5432/strom"
            );
        };
        let options = pg_connect_options(url, self.database_schema.as_deref())
            .context("Invalid STROM_DATABASE_URL / STROM_DATABASE_SCHEMA")?;
        let unreachable = || {
            format!(
                "Failed to connect to the database at {} (is Postgres running and the URL right?)",
                redact_url(url)
            )
        };
        // One direct connection first: it fails at once with the real reason (refused, auth, unknown database),
        // where a pool would retry until its timeout and report only that.
        let probe = tokio::time::timeout(
            DATABASE_CONNECT_TIMEOUT,
            PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {DATABASE_CONNECT_TIMEOUT:?}"))
        .and_then(|connected| connected.map_err(|e| anyhow::anyhow!("{e}")))
        .with_context(unreachable)?;
        probe.close().await.ok();
        Ok(PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(DATABASE_CONNECT_TIMEOUT)
            .connect_lazy_with(options))
    }
}

/// `url` without its password, for error messages.
fn redact_url(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (credentials, host) = rest.rsplit_once('@')?;
        let user = credentials.split(':').next().unwrap_or_default();
        Some(format!("{scheme}://{user}@{host}"))
    }) {
        Some(redacted) => redacted,
        None => url.to_owned(),
    }
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    if let Some(schema) = &args.database_schema {
        // Validate the name before it goes into SQL (pg_connect_options refuses anything needing quotes).
        pg_connect_options("postgres://localhost", Some(schema))
            .context("Invalid STROM_DATABASE_SCHEMA")?;
        let pool = MigrateArgs {
            database_url: args.database_url.clone(),
            database_schema: None,
        }
        .connect("migrate", 1)
        .await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&pool)
            .await
            .with_context(|| format!("Failed to create schema {schema}"))?;
        pool.close().await;
    }
    let pool = args.connect("migrate", 1).await?;
    let before = applied_migrations(&pool).await?;
    strom_commands::store::migrate(&pool)
        .await
        .context("Failed to apply the migrations")?;
    let applied: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !before.contains(&m.version))
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect();
    pool.close().await;
    if applied.is_empty() {
        println!("up to date");
    } else {
        println!("applied {}", applied.join(", "));
    }
    Ok(())
}

/// Versions already recorded in `_sqlx_migrations` (none if the table does not exist yet).
async fn applied_migrations(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .context("Failed to query the database")?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
        .context("Failed to read the applied migrations")
}

/// Connections of `strom relay`: the log reader's (the lock has a dedicated one of its own) plus one for the lag
/// sample, which may overlap a page read.
const RELAY_POOL_CONNECTIONS: u32 = 2;

async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    let Some(url) = args.nats_url else {
        anyhow::bail!("strom relay publishes to NATS: set STROM_NATS_URL (or --nats-url) to a NATS server with JetStream");
    };
    let pool = args
        .database
        .connect("relay", RELAY_POOL_CONNECTIONS)
        .await?;
    let subjects = Subjects::new(args.nats_prefix).context("Invalid STROM_NATS_PREFIX")?;
    let bus = NatsBus::connect(&url, subjects)
        .await
        .with_context(|| format!("Failed to connect to NATS at {url}"))?;
    bus.ensure_topology()
        .await
        .context("Failed to create the JetStream streams and price bucket")?;
    let relay = Relay::postgres(pool, Arc::new(bus), RelayConfig::default());
    tracing::info!("relay running until Ctrl-C or SIGTERM");
    relay.run(shutdown_signal()).await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
