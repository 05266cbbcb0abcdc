//! The demo agent `make run` offers: created at startup (if it does not exist yet) for the dev user `demo`, stopped,
//! ready to start from the API or the dashboard.

use anyhow::Context;
use chrono::Utc;
use strom_commands::service::{CommandContext, CommandError, CommandServices};
use strom_domain::{AgentCommand, AgentConfig, AgentError, RiskLimits, StrategySpec};

/// Fixed id, so restarts on the same database find the same demo agent instead of creating another.
pub const DEMO_AGENT_ID: &str = "d3e00000-0000-4000-8000-000000000001";
/// The dev user that owns it (`strom token --sub demo --role trader`).
pub const DEMO_OWNER: &str = "demo";

/// Creates the demo agent unless it exists.
///
/// # Errors
/// The store failed, or the demo config is refused (a bug: it is validated in tests).
pub async fn ensure_demo_agent(commands: &CommandServices, seed: u64) -> anyhow::Result<()> {
    let config = demo_config(seed)?;
    let ctx = CommandContext::system("demo", "demo-agent");
    let at = Utc::now();
    let result = commands
        .agents
        .execute(
            DEMO_AGENT_ID,
            || AgentCommand::CreateAgent {
                agent_id: DEMO_AGENT_ID.to_owned(),
                owner: DEMO_OWNER.to_owned(),
                config: config.clone(),
                at,
            },
            &ctx,
        )
        .await;
    match result {
        Ok(_) | Err(CommandError::Rejected(AgentError::AgentAlreadyExists { .. })) => {}
        Err(e) => return Err(anyhow::Error::new(e).context("Failed to create the demo agent")),
    }
    tracing::info!(
        agent_id = DEMO_AGENT_ID,
        owner = DEMO_OWNER,
        "demo agent ready: start it with POST /api/v1/agents/{DEMO_AGENT_ID}/start using a token from \
         `strom token --sub {DEMO_OWNER} --role trader`"
    );
    Ok(())
}

fn demo_config(seed: u64) -> anyhow::Result<AgentConfig> {
    let strategy: StrategySpec = serde_json::from_value(serde_json::json!({
        "kind": "sma_crossover", "params": {"fast": 5, "slow": 20, "qty": "1"}
    }))
    .context("demo strategy")?;
    let starting_cash = rust_decimal::Decimal::from(10_000);
    Ok(AgentConfig {
        name: "demo-sma-5-20".to_owned(),
        symbol: strom_domain::Symbol::parse("BTC-USD").context("demo symbol")?,
        strategy,
        frequency_s: 5,
        risk: RiskLimits::for_starting_cash(starting_cash),
        starting_cash,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_commands::store::EventStore;

    #[tokio::test]
    async fn the_demo_agent_is_created_once_and_valid() {
        let commands = CommandServices::new(&EventStore::memory());
        ensure_demo_agent(&commands, 42).await.unwrap();
        ensure_demo_agent(&commands, 42).await.unwrap();
        let (_, sequence) = commands.agents.load(DEMO_AGENT_ID).await.unwrap();
        assert_eq!(sequence, 1, "created once");
    }
}
