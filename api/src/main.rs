//! The `strom` binary: one entry point per product role (see `strom --help`). Kept thin: each subcommand parses
//! its flags and calls into the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use strom_api::auth::{AuthMode, AuthSettings, DevKey, Role, DEFAULT_AUDIENCE, DEV_ISSUER};
use strom_api::startup::{Application, ServeConfig};
use strom_api::telemetry::{self, LogFormat};

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
    /// Run the API server (and, in later milestones, the background roles).
    Serve(ServeArgs),
    /// Mint a dev-mode JWT (HS256 with the local dev key) and print it, alone, on stdout.
    Token(TokenArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "STROM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Postgres URL of the event store and read models; unset = embedded memory store.
    #[arg(long, env = "STROM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// NATS URL (JetStream enabled); unset = embedded memory bus.
    #[arg(long, env = "STROM_NATS_URL")]
    nats_url: Option<String>,
    #[command(flatten)]
    auth: AuthArgs,
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

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role `{s}`; use viewer, trader or admin"))
}

fn main() -> ExitCode {
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

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => token(&args),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig {
        listen: args.listen,
        database_url: args.database_url,
        nats_url: args.nats_url,
        auth: args.auth.settings(),
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
