//! The background roles of `strom serve` beside the API and the projector (specs/01 §2): the scheduler, the runtime
//! worker, the execution role, the backtest runner and the market simulator (and the relay, when events go to NATS). Which ones run is chosen with
//! `STROM_ROLES`; a deployment can run the API in one process and the workers in others.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use strom_commands::bus::sim_publisher::SimPublisher;
use strom_commands::bus::Bus;
use strom_commands::execution::{execution_config, Execution};
use strom_commands::lease::Singleton;
use strom_commands::market::SimMarket;
use strom_commands::relay::{relay_config, Relay};
use strom_commands::runtime::{RuntimeConfig, RuntimeWorker};
use strom_commands::scheduler::{system_clock, Scheduler, SchedulerConfig};
use strom_commands::service::CommandServices;
use strom_commands::store::EventStore;
use strom_domain::FillModel;
use strom_sim::SimFeed;

use strom_projections::backtests::BacktestStore;

use crate::backtests::{BacktestRunner, RunnerConfig, BACKTEST_ROLE};
use crate::roles::Roles;

/// A background role `strom serve` can run (the API and the projectors always run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Emits AgentTick for running agents (one active per database, advisory lock).
    Scheduler,
    /// Consumes ticks and records runs (and the orders their signals place).
    Runtime,
    /// Fills placed orders on paper (one active per database, advisory lock).
    Execution,
    /// Publishes committed events to JetStream (one active per database).
    Relay,
    /// Publishes simulated prices (market data and the latest-price board).
    Sim,
    /// Runs requested backtests (one active per database, advisory lock).
    Backtest,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Scheduler,
        Role::Runtime,
        Role::Execution,
        Role::Relay,
        Role::Sim,
        Role::Backtest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Scheduler => "scheduler",
            Role::Runtime => "runtime",
            Role::Execution => "execution",
            Role::Relay => "relay",
            Role::Sim => "sim",
            Role::Backtest => crate::backtests::BACKTEST_ROLE,
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "scheduler" => Ok(Role::Scheduler),
            "runtime" => Ok(Role::Runtime),
            "execution" => Ok(Role::Execution),
            "relay" => Ok(Role::Relay),
            "sim" => Ok(Role::Sim),
            "backtest" => Ok(Role::Backtest),
            // Always on in `serve`; accepted so the spec's full list (specs/01 §2) is valid input.
            "api" | "projector" => Err(String::new()),
            other => Err(format!(
                "unknown role `{other}`; use scheduler, runtime, execution, relay, sim, backtest (api and projector always run)"
            )),
        }
    }
}

/// Parses a `STROM_ROLES` list: comma-separated role names; `api` and `projector` are accepted and ignored.
///
/// # Errors
/// An unknown role, named in the message.
pub fn parse_roles(list: &str) -> Result<BTreeSet<Role>, String> {
    let mut roles = BTreeSet::new();
    for name in list.split(',').filter(|s| !s.trim().is_empty()) {
        match name.parse::<Role>() {
            Ok(role) => {
                roles.insert(role);
            }
            Err(e) if e.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(roles)
}

/// What the background roles need to know.
#[derive(Debug, Clone)]
pub struct BackgroundConfig {
    pub roles: BTreeSet<Role>,
    /// Seed of the simulated market; the runtime observes the same price path the simulator publishes.
    pub sim_seed: u64,
    pub sim_symbols: Vec<String>,
    pub sim_interval_s: u32,
    /// Slippage and fee of paper fills (`STROM_FILL_SLIPPAGE_BPS`, `STROM_FILL_FEE_BPS`): the runtime records it on
    /// every order it places, and the execution role fills each order with the model recorded on it.
    pub fill_model: FillModel,
    /// Postgres connection settings for the leader locks (None = memory backend: one process, no lock).
    pub pg_options: Option<sqlx::postgres::PgConnectOptions>,
    pub prefix: String,
}

/// Starts the configured roles.
///
/// # Errors
/// A role cannot be set up (bad simulator settings, the bus refuses the price board).
pub async fn spawn(
    config: &BackgroundConfig,
    bus: &Arc<dyn Bus>,
    commands: &Arc<CommandServices>,
    backtests: &Arc<dyn BacktestStore>,
    roles: &mut Roles,
) -> anyhow::Result<()> {
    let store = commands.store();
    let singleton = |role: &str| match &config.pg_options {
        Some(options) => Singleton::postgres(options.clone(), role, &config.prefix),
        None => Singleton::Single,
    };
    if config.roles.contains(&Role::Sim) {
        let feed = SimFeed::new(
            config.sim_seed,
            config.sim_symbols.clone(),
            config.sim_interval_s,
        )
        .context("Invalid simulator settings (STROM_SIM_SYMBOLS / STROM_SIM_INTERVAL_S)")?;
        let publisher = SimPublisher::new(Arc::clone(bus), feed)
            .await
            .context("Failed to open the price board")?;
        roles.spawn("sim", move |stop| async move {
            publisher.run(stop.cancelled_owned()).await;
            Ok(())
        });
    }
    if config.roles.contains(&Role::Scheduler) {
        let scheduler = Scheduler::new(
            store.log(),
            Arc::clone(bus),
            singleton(strom_commands::scheduler::SCHEDULER_ROLE),
            system_clock(),
            SchedulerConfig::default(),
        );
        roles.spawn("scheduler", move |stop| async move {
            scheduler.run(stop.cancelled_owned()).await;
            Ok(())
        });
    }
    if config.roles.contains(&Role::Runtime) {
        let worker = RuntimeWorker::new(
            Arc::clone(bus),
            Arc::clone(&commands.agents),
            Arc::new(SimMarket::new(config.sim_seed)),
            system_clock(),
            RuntimeConfig {
                fill_model: config.fill_model.clone(),
                ..RuntimeConfig::default()
            },
        );
        roles.spawn("runtime", move |stop| async move {
            worker
                .run(stop.cancelled_owned())
                .await
                .context("runtime worker")
        });
    }
    if config.roles.contains(&Role::Execution) {
        let execution = Execution::over(
            store,
            Arc::clone(&commands.agents),
            system_clock(),
            singleton(strom_commands::execution::EXECUTION_ROLE),
            execution_config(),
        );
        roles.spawn("execution", move |stop| async move {
            execution.run(stop.cancelled_owned()).await;
            Ok(())
        });
    }
    if config.roles.contains(&Role::Relay) {
        spawn_relay(store, bus, roles);
    }
    if config.roles.contains(&Role::Backtest) {
        let runner = BacktestRunner::new(
            Arc::clone(commands),
            Arc::clone(backtests),
            singleton(BACKTEST_ROLE),
            system_clock(),
            RunnerConfig::default(),
        );
        roles.spawn("backtest", move |stop| async move {
            runner.run(stop.cancelled_owned()).await;
            Ok(())
        });
    }
    Ok(())
}

fn spawn_relay(store: &EventStore, bus: &Arc<dyn Bus>, roles: &mut Roles) {
    match store {
        EventStore::Postgres(pg) => {
            let relay = Relay::postgres(pg.pool().clone(), Arc::clone(bus), relay_config())
                .woken_by(store.commits());
            roles.spawn("relay", move |stop| async move {
                relay.run(stop.cancelled_owned()).await;
                Ok(())
            });
        }
        // Embedded mode is one process: nothing else reads its memory bus, so publishing every event there would
        // only hold a second copy of the log in memory.
        EventStore::Memory(_) => {
            tracing::info!(
                "relay role skipped in embedded mode: no other process reads the memory bus"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_the_spec_list_and_unknown_ones_are_named() {
        let all =
            parse_roles("api,scheduler,runtime,execution,projector,relay,sim,backtest").unwrap();
        assert_eq!(all, Role::ALL.into_iter().collect());
        assert_eq!(
            parse_roles("runtime").unwrap(),
            [Role::Runtime].into_iter().collect()
        );
        assert!(parse_roles("schedular")
            .unwrap_err()
            .contains("unknown role `schedular`"));
    }
}
