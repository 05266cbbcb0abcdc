//! `strom telegram`: the Telegram bot as its own process (teloxide, long polling). It talks to the REST API only.

use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct TelegramArgs {
    /// The STROM API the bot calls.
    #[arg(long, env = "STROM_API_URL", default_value = "http://127.0.0.1:8080")]
    api_url: String,
    /// Another Telegram Bot API server (a local `telegram-bot-api`, or a test's); unset = Telegram's.
    #[arg(long, env = "STROM_TELEGRAM_API_URL")]
    telegram_api_url: Option<String>,
    /// The bot token from BotFather. A secret: set it in the environment, not on the command line. Unset: read
    /// from OpenBao (`bot_token` of secret/strom/telegram) when STROM_BAO_ADDR is set.
    #[arg(long, env = "STROM_TELEGRAM_TOKEN", hide_env_values = true)]
    telegram_token: Option<String>,
    /// The bot's service credential for the API (a token with role telegram-bot; in dev mode
    /// `strom token --sub telegram-bot --role telegram-bot`). A secret, like the bot token; unset: OpenBao's
    /// `service_token` when STROM_BAO_ADDR is set.
    #[arg(long, env = "STROM_TELEGRAM_SERVICE_TOKEN", hide_env_values = true)]
    service_token: Option<String>,
    /// OpenBao to read the secrets the environment does not give from (KV v2, secret/strom/telegram).
    #[arg(long, env = "STROM_BAO_ADDR")]
    bao_addr: Option<String>,
    /// File holding the OpenBao token.
    #[arg(long, env = "STROM_BAO_TOKEN_FILE")]
    bao_token_file: Option<PathBuf>,
    /// Where the chats' `/notify` subscriptions are kept, so a restart of the bot keeps them (and sends what
    /// happened meanwhile). Relative to the working directory.
    #[arg(
        long,
        env = "STROM_TELEGRAM_STATE_FILE",
        default_value = ".strom/telegram-notifications.json"
    )]
    state_file: PathBuf,
}

/// The bot token and the service credential: from the environment, else from OpenBao.
async fn secrets(args: &TelegramArgs) -> anyhow::Result<(String, String)> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (token, service) = (given(&args.telegram_token), given(&args.service_token));
    if let (Some(token), Some(service)) = (&token, &service) {
        return Ok((token.clone(), service.clone()));
    }
    let Some(addr) = &args.bao_addr else {
        anyhow::bail!(
            "set STROM_TELEGRAM_TOKEN (from @BotFather) and STROM_TELEGRAM_SERVICE_TOKEN (a telegram-bot token), \
             or STROM_BAO_ADDR and STROM_BAO_TOKEN_FILE to read them from OpenBao"
        );
    };
    let file = args
        .bao_token_file
        .as_ref()
        .context("STROM_BAO_ADDR is set but STROM_BAO_TOKEN_FILE is not")?;
    let bao_token = std::fs::read_to_string(file)
        .with_context(|| format!("Failed to read the OpenBao token file {}", file.display()))?;
    let read =
        strom_telegram::secrets::read_bao(addr, bao_token.trim(), &["bot_token", "service_token"])
            .await?;
    let token = token
        .or_else(|| read[0].clone())
        .context("no bot token: neither STROM_TELEGRAM_TOKEN nor `bot_token` in OpenBao's secret/strom/telegram")?;
    let service = service.or_else(|| read[1].clone()).context(
        "no service credential: neither STROM_TELEGRAM_SERVICE_TOKEN nor `service_token` in OpenBao's secret/strom/telegram",
    )?;
    tracing::info!(bao_addr = %addr, "telegram secrets read from OpenBao");
    Ok((token, service))
}

/// Runs the bot until `shutdown`.
///
/// # Errors
/// A secret is missing, the bot token is refused by the Bot API, or the clients cannot be built.
pub async fn telegram(
    args: TelegramArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (telegram_token, service_token) = secrets(&args).await?;
    tracing::info!(api_url = %args.api_url, telegram_api_url = ?args.telegram_api_url, "starting the Telegram bot");
    strom_telegram::bot::run(
        strom_telegram::bot::Config {
            telegram_token,
            telegram_api_url: args.telegram_api_url,
            api_url: args.api_url,
            service_token,
            state_file: Some(args.state_file),
        },
        shutdown,
    )
    .await
    .context("The Telegram bot stopped with an error")
}
