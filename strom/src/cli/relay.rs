//! `strom relay`: the outbox relay alone, publishing committed events from Postgres to JetStream until stopped.

use std::future::Future;
use std::sync::Arc;

use clap::Args;
use strom_commands::relay::{relay_config, Relay};

use super::database::DatabaseArgs;

/// Connections of `strom relay`: the log reader's (the lock has a dedicated one of its own) plus one for the lag
/// sample, which may overlap a page read.
const RELAY_POOL_CONNECTIONS: u32 = 2;

#[derive(Args)]
pub struct RelayArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// NATS URL (JetStream enabled) to publish on.
    #[arg(long, env = "STROM_NATS_URL")]
    nats_url: Option<String>,
    /// Prefix of the subjects and streams.
    #[arg(long, env = "STROM_NATS_PREFIX", default_value = "strom")]
    nats_prefix: String,
}

/// Relays until `shutdown` resolves.
///
/// # Errors
/// No NATS URL, an unreachable database or NATS, or JetStream refuses the streams.
pub async fn relay(args: RelayArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let Some(url) = args.nats_url else {
        anyhow::bail!("strom relay publishes to NATS: set STROM_NATS_URL (or --nats-url) to a NATS server with JetStream");
    };
    let pool = args
        .database
        .connect("relay", RELAY_POOL_CONNECTIONS)
        .await?;
    let bus = super::nats::connect(&url, args.nats_prefix).await?;
    let relay = Relay::postgres(pool, Arc::new(bus), relay_config());
    tracing::info!("relay running until Ctrl-C or SIGTERM");
    relay.run(shutdown).await;
    Ok(())
}
