//! The bot's secrets from OpenBao (specs/05 §6): KV v2 at `secret/strom/telegram`, fields `bot_token` and
//! `service_token`, read over OpenBao's HTTP API with the token in `STROM_BAO_TOKEN_FILE`.

use std::time::Duration;

use anyhow::Context;

/// The KV v2 read path of the bot's secrets (`bao kv put secret/strom/telegram bot_token=… service_token=…`).
pub const BAO_PATH: &str = "/v1/secret/data/strom/telegram";

/// The fields of `secret/strom/telegram` at OpenBao `addr`, read with `token`; a field that is not there is `None`.
///
/// # Errors
/// OpenBao does not answer, refuses the token, or has no such secret.
pub async fn read_bao(
    addr: &str,
    token: &str,
    fields: &[&str],
) -> anyhow::Result<Vec<Option<String>>> {
    let url = format!("{}{BAO_PATH}", addr.trim_end_matches('/'));
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(&url)
        .header("X-Vault-Token", token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("OpenBao at {addr} does not answer: {}", e.without_url()))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "OpenBao at {addr} answered {status} for secret/strom/telegram (is the secret there, and may the token read it?)"
    );
    let body: serde_json::Value = response
        .json()
        .await
        .context("OpenBao's answer is not JSON")?;
    Ok(fields
        .iter()
        .map(|f| body["data"]["data"][*f].as_str().map(str::to_owned))
        .collect())
}
