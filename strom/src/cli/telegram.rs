//! `strom telegram`: the Telegram bot as its own process (teloxide, long polling). It talks to the REST API only.

use std::future::Future;

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
    /// The bot token from BotFather. A secret: set it in the environment, not on the command line.
    #[arg(long, env = "STROM_TELEGRAM_TOKEN", hide_env_values = true)]
    telegram_token: String,
    /// The bot's service credential for the API (a token with role telegram-bot; in dev mode
    /// `strom token --sub telegram-bot --role telegram-bot`). A secret, like the bot token.
    #[arg(long, env = "STROM_TELEGRAM_SERVICE_TOKEN", hide_env_values = true)]
    service_token: String,
}

/// Runs the bot until `shutdown`.
///
/// # Errors
/// The bot token is refused by the Bot API, or the clients cannot be built.
pub async fn telegram(
    args: TelegramArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.telegram_token.trim().is_empty(),
        "STROM_TELEGRAM_TOKEN is empty; get a token from @BotFather"
    );
    tracing::info!(api_url = %args.api_url, telegram_api_url = ?args.telegram_api_url, "starting the Telegram bot");
    strom_telegram::bot::run(
        strom_telegram::bot::Config {
            telegram_token: args.telegram_token.trim().to_owned(),
            telegram_api_url: args.telegram_api_url,
            api_url: args.api_url,
            service_token: args.service_token.trim().to_owned(),
        },
        shutdown,
    )
    .await
    .context("The Telegram bot stopped with an error")
}
