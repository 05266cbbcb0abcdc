//! `strom parity <agent_id>`: the parity rule checked for one paper agent (specs/06 §1). Its events are read from
//! the event store; its observations are backtested in memory with its config and fill model; the two trading
//! records are compared element by element ([`strom_projections::parity`]).

use std::io::Write;

use anyhow::Context;
use clap::Args;
use sqlx::PgPool;
use strom_commands::store::EventStore;
use strom_domain::{Agent, AgentEvent, StromEvent};
use strom_projections::parity::{check_agent, Parity};

use super::database::DatabaseArgs;

/// Connections `strom parity` and `strom replay --export-observations` need: one reader.
const CONNECTIONS: u32 = 1;

#[derive(Args)]
#[command(
    after_help = "Exit status: 0 equal, 1 differs, void (the agent skipped runs behind an unfilled order, \
    changed its config after its first run or used several fill models) or an error."
)]
pub struct ParityArgs {
    /// The paper agent's id.
    agent_id: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Every event of agent `agent_id`, in order.
///
/// # Errors
/// Not a UUID, or the store cannot be read.
pub async fn agent_events(pool: &PgPool, agent_id: &str) -> anyhow::Result<Vec<AgentEvent>> {
    strom_domain::id::validate_uuid("agent_id", agent_id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let events = EventStore::postgres(pool.clone())
        .events_after::<Agent>(agent_id, 0)
        .await
        .with_context(|| format!("Failed to read agent {agent_id}'s events"))?;
    anyhow::ensure!(
        !events.is_empty(),
        "agent {agent_id} not found in the event store"
    );
    Ok(events
        .into_iter()
        .filter_map(|(_, event)| match event {
            StromEvent::Agent(event) => Some(event),
            StromEvent::Backtest(_) => None,
        })
        .collect())
}

/// Prints the verdict.
///
/// # Errors
/// The agent cannot be read or backtested, or parity does not hold (differs or void).
pub async fn parity(args: ParityArgs) -> anyhow::Result<()> {
    let pool = args.database.connect("parity", CONNECTIONS).await?;
    let events = agent_events(&pool, &args.agent_id).await?;
    let report = check_agent(&args.agent_id, &events)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "agent {}: {} observations backtested with its config ({}) and fill model (slippage {} bps, fee {} bps)",
            report.agent_id,
            report.observations,
            report.config.strategy.kind.as_str(),
            report.fill_model.slippage_bps,
            report.fill_model.fee_bps
        )?;
        writeln!(out, "parity: {}", report.parity)?;
    }
    out.flush()?;
    match report.parity {
        Parity::Equal { .. } => Ok(()),
        Parity::Differs { .. } => {
            anyhow::bail!("parity does not hold for agent {}", report.agent_id)
        }
        Parity::Void { .. } => anyhow::bail!("parity is void for agent {}", report.agent_id),
    }
}
