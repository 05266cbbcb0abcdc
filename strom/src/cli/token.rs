//! `strom token`: mint a dev-mode JWT with the local dev key and print it, alone, on stdout.

use anyhow::Context;
use clap::Args;
use strom_api::auth::{DevKey, Role, TELEGRAM_BOT_ROLE};

use super::auth::AuthArgs;

#[derive(Args)]
pub struct TokenArgs {
    /// Subject (user id) the token speaks for.
    #[arg(long)]
    sub: String,
    /// Role to grant: viewer, trader or admin, or the Telegram bot's service role telegram-bot (repeat for several).
    #[arg(long = "role", value_parser = parse_role, required = true)]
    roles: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    ttl_s: u64,
    #[command(flatten)]
    auth: AuthArgs,
}

fn parse_role(s: &str) -> Result<String, String> {
    if Role::parse(s).is_some() || s == TELEGRAM_BOT_ROLE {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "unknown role `{s}`; use viewer, trader, admin or {TELEGRAM_BOT_ROLE}"
        ))
    }
}

/// Prints the token.
///
/// # Errors
/// JWKS mode is configured (tokens come from the identity provider then), or the dev key cannot be loaded.
pub fn token(args: &TokenArgs) -> anyhow::Result<()> {
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
        key.mint_named(
            &args.sub,
            &args.roles.iter().map(String::as_str).collect::<Vec<_>>(),
            now_s,
            args.ttl_s,
            &args.auth.audience
        )?
    );
    Ok(())
}
