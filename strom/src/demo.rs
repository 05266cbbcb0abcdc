//! The demo agent `make run` offers: created at startup (if it does not exist yet) for the dev user `demo` and started,
//! so a newcomer sees it trade on the simulated market within a minute. An existing demo agent is left as it is (a
//! user who stopped it keeps it stopped).

use anyhow::Context;
use chrono::Utc;
use strom_commands::service::{CommandContext, CommandError, CommandServices};
use strom_domain::{AgentCommand, AgentConfig, AgentError, RiskLimits, StrategySpec};

/// Fixed id, so restarts on the same database find the same demo agent instead of creating another.
pub const DEMO_AGENT_ID: &str = "d3e00000-0000-4000-8000-000000000001";
/// The dev user that owns it (`strom token --sub demo --role trader`).
pub const DEMO_OWNER: &str = "demo";

/// Creates and starts the demo agent unless it exists.
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
        Ok(_) => {
            commands
                .agents
                .execute(
                    DEMO_AGENT_ID,
                    || AgentCommand::StartAgent { at: Utc::now() },
                    &ctx,
                )
                .await
                .context("Failed to start the demo agent")?;
            tracing::info!(
                agent_id = DEMO_AGENT_ID,
                owner = DEMO_OWNER,
                "demo agent created and started: watch it with a token from `strom token --sub {DEMO_OWNER} --role trader`"
            );
        }
        Err(CommandError::Rejected(AgentError::AgentAlreadyExists { state })) => {
            tracing::info!(agent_id = DEMO_AGENT_ID, owner = DEMO_OWNER, %state, "demo agent exists; left as it is");
        }
        Err(e) => return Err(anyhow::Error::new(e).context("Failed to create the demo agent")),
    }
    Ok(())
}

fn demo_config(seed: u64) -> anyhow::Result<AgentConfig> {
    let strategy: StrategySpec = serde_json::from_value(serde_json::json!({
        "kind": "sma_crossover", "params": {"fast": 3, "slow": 8, "qty": "1"}
    }))
    .context("demo strategy")?;
    let starting_cash = rust_decimal::Decimal::from(10_000);
    Ok(AgentConfig {
        name: "demo-sma-3-8".to_owned(),
        symbol: strom_domain::Symbol::parse("BTC-USD").context("demo symbol")?,
        strategy,
        frequency_s: 2,
        risk: RiskLimits::for_starting_cash(starting_cash),
        starting_cash,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_commands::store::EventStore;
    use strom_domain::AgentState;

    #[tokio::test]
    async fn the_demo_agent_is_created_and_started_once_and_a_stopped_one_stays_stopped() {
        let commands = CommandServices::new(&EventStore::memory());
        ensure_demo_agent(&commands, 42).await.unwrap();
        let (agent, sequence) = commands.agents.load(DEMO_AGENT_ID).await.unwrap();
        assert_eq!((agent.state(), sequence), (AgentState::Running, 2));
        let ctx = CommandContext::new("test", DEMO_OWNER);
        commands
            .agents
            .execute(
                DEMO_AGENT_ID,
                || AgentCommand::StopAgent {
                    at: Utc::now(),
                    reason: "user".into(),
                },
                &ctx,
            )
            .await
            .unwrap();
        ensure_demo_agent(&commands, 42).await.unwrap();
        let (agent, sequence) = commands.agents.load(DEMO_AGENT_ID).await.unwrap();
        assert_eq!((agent.state(), sequence), (AgentState::Stopped, 3));
    }
}
