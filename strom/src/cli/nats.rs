//! The JetStream connection of the subcommands that publish on their own (`strom sim`, `strom relay`).

use anyhow::Context;
use strom_commands::bus::nats::NatsBus;
use strom_commands::bus::{Bus, Subjects};

/// Connects to NATS at `url` and makes sure the streams and the price bucket of `prefix` exist.
///
/// # Errors
/// The prefix is invalid, NATS does not answer, or JetStream refuses the topology.
pub async fn connect(url: &str, prefix: String) -> anyhow::Result<NatsBus> {
    let subjects = Subjects::new(prefix).context("Invalid STROM_NATS_PREFIX")?;
    let bus = NatsBus::connect(url, subjects)
        .await
        .with_context(|| format!("Failed to connect to NATS at {url}"))?;
    bus.ensure_topology()
        .await
        .context("Failed to create the JetStream streams and price bucket")?;
    Ok(bus)
}
