//! Deterministic agent scenarios driven through the real `Agent` aggregate and a real event store (memory or
//! Postgres): the source of the recorded streams in `replay-fixtures/`, of test logs, and of benchmark logs. Every
//! input (times, prices, ids, correlation ids) is derived from the step, so two runs give the same events (only the
//! store's `event_id`s differ).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use strom_commands::service::{AggregateService, CommandContext, CommandError};
use strom_commands::store::{EventStore, MemoryEventStore};
use strom_domain::config::{AgentConfig, AgentConfigPatch, RiskLimits, StrategySpec};
use strom_domain::{Agent, AgentCommand, AgentError, AgentEvent, Observation, Symbol};

/// The first instant of every scenario.
pub fn scenario_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_341_600, 0).unwrap_or_default() // 2026-11-22T10:00:00Z
}

/// A memory event store whose `recorded_at` advances one millisecond per append from [`scenario_start`], so
/// recorded streams do not depend on the wall clock.
pub fn deterministic_memory_store() -> MemoryEventStore {
    let tick = Arc::new(AtomicI64::new(0));
    MemoryEventStore::with_clock(Arc::new(move || {
        scenario_start() + TimeDelta::milliseconds(tick.fetch_add(1, Ordering::Relaxed))
    }))
}

/// Drives commands for one agent through the command service.
pub struct AgentDriver<'a> {
    agents: &'a AggregateService<Agent>,
    agent_id: String,
    /// Counter for correlation ids.
    step: u64,
}

fn at(offset_ms: i64) -> DateTime<Utc> {
    scenario_start() + TimeDelta::milliseconds(offset_ms)
}

/// A config for scenarios: `strategy` as JSON, cash and frequency as given.
pub fn config(
    name: &str,
    symbol: &str,
    strategy: serde_json::Value,
    frequency_s: u32,
    starting_cash: Decimal,
    seed: u64,
) -> AgentConfig {
    AgentConfig {
        name: name.to_owned(),
        symbol: Symbol::parse(symbol).unwrap_or_else(|e| panic!("scenario symbol {symbol}: {e}")),
        strategy: serde_json::from_value::<StrategySpec>(strategy).unwrap_or_default(),
        frequency_s,
        risk: RiskLimits {
            max_position_qty: Decimal::TEN,
            max_order_qty: Decimal::TWO,
            max_notional: Decimal::from(100_000),
            max_daily_loss: None,
        },
        starting_cash,
        seed,
    }
}

impl<'a> AgentDriver<'a> {
    /// A driver for `agent_id`.
    pub fn new(agents: &'a AggregateService<Agent>, agent_id: &str) -> Self {
        Self {
            agents,
            agent_id: agent_id.to_owned(),
            step: 0,
        }
    }

    async fn send(
        &mut self,
        actor: &str,
        command: AgentCommand,
    ) -> Result<Vec<AgentEvent>, CommandError<AgentError>> {
        self.step += 1;
        let ctx = CommandContext::new(
            format!(
                "{}-{}",
                &self.agent_id[..8.min(self.agent_id.len())],
                self.step
            ),
            actor,
        );
        self.agents
            .execute(&self.agent_id, || command.clone(), &ctx)
            .await
            .map(|executed| executed.events)
    }

    /// `CreateAgent` at `t0 + at_ms`.
    ///
    /// # Errors
    /// The aggregate refused or the store failed.
    pub async fn create(
        &mut self,
        owner: &str,
        config: AgentConfig,
        at_ms: i64,
    ) -> Result<(), CommandError<AgentError>> {
        let command = AgentCommand::CreateAgent {
            agent_id: self.agent_id.clone(),
            owner: owner.to_owned(),
            config,
            at: at(at_ms),
        };
        self.send(owner, command).await.map(drop)
    }

    /// `UpdateAgentConfig`.
    ///
    /// # Errors
    /// The aggregate refused or the store failed.
    pub async fn update(
        &mut self,
        patch: AgentConfigPatch,
        at_ms: i64,
    ) -> Result<(), CommandError<AgentError>> {
        let command = AgentCommand::UpdateAgentConfig {
            patch,
            at: at(at_ms),
        };
        self.send("owner", command).await.map(drop)
    }

    /// `StartAgent`.
    ///
    /// # Errors
    /// The aggregate refused or the store failed.
    pub async fn start(&mut self, at_ms: i64) -> Result<(), CommandError<AgentError>> {
        self.send("owner", AgentCommand::StartAgent { at: at(at_ms) })
            .await
            .map(drop)
    }

    /// `StopAgent`.
    ///
    /// # Errors
    /// The aggregate refused or the store failed.
    pub async fn stop(&mut self, at_ms: i64, reason: &str) -> Result<(), CommandError<AgentError>> {
        let command = AgentCommand::StopAgent {
            at: at(at_ms),
            reason: reason.to_owned(),
        };
        self.send("owner", command).await.map(drop)
    }

    /// `ArchiveAgent`.
    ///
    /// # Errors
    /// The aggregate refused or the store failed.
    pub async fn archive(&mut self, at_ms: i64) -> Result<(), CommandError<AgentError>> {
        self.send("owner", AgentCommand::ArchiveAgent { at: at(at_ms) })
            .await
            .map(drop)
    }

    /// Sends a `RecordRun` (made by [`run_command`]) as the runtime worker would; returns the id of the order the
    /// run placed, if it placed one (a rejected order is not open, so it is not returned).
    ///
    /// # Errors
    /// The aggregate refused or the store failed.
    pub async fn run(
        &mut self,
        record_run: AgentCommand,
    ) -> Result<Option<String>, CommandError<AgentError>> {
        let events = self.send("system:runtime", record_run).await?;
        Ok(events.into_iter().find_map(|event| match event {
            AgentEvent::OrderPlaced { order_id, .. } => Some(order_id),
            _ => None,
        }))
    }

    /// Sends `FillOrder` for `order_id` at `t0 + at_ms`, as the execution role would.
    ///
    /// # Errors
    /// The aggregate refused or the store failed.
    pub async fn fill(
        &mut self,
        order_id: &str,
        at_ms: i64,
    ) -> Result<(), CommandError<AgentError>> {
        let command = AgentCommand::FillOrder {
            order_id: order_id.to_owned(),
            at: at(at_ms),
        };
        self.send("system:execution", command).await.map(drop)
    }
}

/// `RecordRun` of tick `tick_no` of `session` of agent `agent_id`, which started at `t0 + session_start_ms` (whole
/// seconds) with `frequency_s`; the run starts `late_ms` after its slot and takes 5 ms. Sent by [`AgentDriver::run`],
/// or decided on an `Agent` state directly (the bench builds long histories with `decide`/`evolve`).
#[allow(clippy::too_many_arguments)] // one run's inputs
pub fn run_command(
    agent_id: &str,
    session: u64,
    session_start_ms: i64,
    frequency_s: u32,
    tick_no: u64,
    symbol: &str,
    price: Decimal,
    late_ms: i64,
) -> AgentCommand {
    run_command_with_fills(
        agent_id,
        session,
        session_start_ms,
        frequency_s,
        tick_no,
        symbol,
        price,
        late_ms,
        strom_domain::FillModel::default(),
    )
}

/// [`run_command`] with the fill model the runtime records on the run's order.
#[allow(clippy::too_many_arguments)] // one run's inputs
pub fn run_command_with_fills(
    agent_id: &str,
    session: u64,
    session_start_ms: i64,
    frequency_s: u32,
    tick_no: u64,
    symbol: &str,
    price: Decimal,
    late_ms: i64,
    fill_model: strom_domain::FillModel,
) -> AgentCommand {
    let slot_ms =
        session_start_ms + i64::try_from(tick_no - 1).unwrap_or(0) * i64::from(frequency_s) * 1_000;
    AgentCommand::RecordRun {
        session,
        tick_no,
        scheduled_at: at(slot_ms),
        started_at: at(slot_ms + late_ms),
        completed_at: at(slot_ms + late_ms + 5),
        observation: Observation {
            symbol: Symbol::parse(symbol)
                .unwrap_or_else(|e| panic!("scenario symbol {symbol}: {e}")),
            price,
            observed_at: at(slot_ms - 250),
        },
        fill_model,
        correlation_id: format!("tick-{}-{session}-{tick_no}", &agent_id[..8]),
    }
}

/// Agent ids of [`two_agents`].
pub const TWO_AGENTS_IDS: [&str; 2] = [
    "0b5e4a52-6a6f-4e0b-9d7e-0f2f8a3c9b10",
    "7d1f3c2a-9e8b-4c6d-8a5f-1e2d3c4b5a69",
];

/// The recorded scenario of `replay-fixtures/two-agents`: alice's SMA agent and bob's hold agent are created and
/// started; alice's runs cross (signals, whose orders fill), she stops, renames and re-times it, runs a second
/// session and stops; bob's agent runs, stops and is archived.
///
/// # Errors
/// A command was refused (a bug in the scenario) or the store failed.
pub async fn two_agents(agents: &AggregateService<Agent>) -> Result<(), CommandError<AgentError>> {
    let [a_id, b_id] = TWO_AGENTS_IDS;
    let mut a = AgentDriver::new(agents, a_id);
    let mut b = AgentDriver::new(agents, b_id);
    let sma = json!({"kind": "sma_crossover", "params": {"fast": 2, "slow": 3, "qty": "1"}});
    a.create(
        "alice",
        config(
            "btc trend",
            "BTC-USD",
            sma,
            60,
            Decimal::new(1_000_000, 2),
            7,
        ),
        0,
    )
    .await?;
    let hold = json!({"kind": "hold", "params": {}});
    b.create(
        "bob",
        config(
            "eth holder",
            "ETH-USD",
            hold,
            30,
            Decimal::new(500_000, 2),
            42,
        ),
        1_500,
    )
    .await?;
    a.start(10_000).await?;
    b.start(12_000).await?;
    // Up, up, then down: the fast SMA crosses the slow one both ways.
    let prices_a = ["100.00", "101.50", "103.25", "104.00", "99.75", "97.10"];
    for (i, price) in prices_a.iter().enumerate() {
        let price: Decimal = price.parse().unwrap_or_default();
        let tick = i as u64 + 1;
        let late_ms = 40 + i as i64;
        let placed = a
            .run(run_command(
                a_id, 1, 10_000, 60, tick, "BTC-USD", price, late_ms,
            ))
            .await?;
        if let Some(order_id) = placed {
            // Filled by the execution role 20 ms after the run completed.
            let slot_ms = 10_000 + i as i64 * 60_000;
            a.fill(&order_id, slot_ms + late_ms + 25).await?;
        }
        if i < 3 {
            let price_b = Decimal::new(250_000 + 125 * i as i64, 2);
            b.run(run_command(
                b_id, 1, 12_000, 30, tick, "ETH-USD", price_b, 15,
            ))
            .await?;
        }
    }
    a.stop(400_000, "manual stop").await?;
    let patch = AgentConfigPatch {
        name: Some("btc trend (slow)".into()),
        frequency_s: Some(120),
        ..AgentConfigPatch::default()
    };
    a.update(patch, 401_000).await?;
    a.start(402_000).await?;
    // A tick skipped after a restart (tick 2 never ran): tick numbers keep their schedule.
    let price = |text: &str| text.parse().unwrap_or_default();
    for (tick, text, late_ms) in [(1, "96.00", 12), (3, "98.40", 900)] {
        let placed = a
            .run(run_command(
                a_id,
                2,
                402_000,
                120,
                tick,
                "BTC-USD",
                price(text),
                late_ms,
            ))
            .await?;
        if let Some(order_id) = placed {
            let slot_ms = 402_000 + (tick as i64 - 1) * 120_000;
            a.fill(&order_id, slot_ms + late_ms + 25).await?;
        }
    }
    b.stop(700_000, "rebalancing").await?;
    b.archive(701_000).await?;
    a.stop(800_000, "end of test").await?;
    Ok(())
}

/// Runs [`two_agents`] on a fresh [`deterministic_memory_store`] and returns the store.
///
/// # Errors
/// As [`two_agents`].
pub async fn two_agents_in_memory() -> Result<MemoryEventStore, CommandError<AgentError>> {
    let store = deterministic_memory_store();
    two_agents(&AggregateService::new(EventStore::Memory(store.clone()))).await?;
    Ok(store)
}

/// Agent id of [`paper_trading`].
pub const PAPER_TRADING_ID: &str = "3c9e2f10-5b7a-4d21-9f3e-8a6b4c2d1e07";

/// The recorded scenario of `replay-fixtures/paper-trading`: carol's SMA(1/2) agent trades BTC-USD with a 5 bps
/// slippage and 10 bps fee fill model: a sell signalled with nothing held is rejected (`insufficient_position`), a buy
/// fills, a sell fills at a loss, a second buy and sell make a round trip, and she stops. Each order fills before the
/// next tick, so no run is skipped.
///
/// # Errors
/// A command was refused (a bug in the scenario) or the store failed.
pub async fn paper_trading(
    agents: &AggregateService<Agent>,
) -> Result<(), CommandError<AgentError>> {
    let id = PAPER_TRADING_ID;
    let mut agent = AgentDriver::new(agents, id);
    let sma = json!({"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.5"}});
    agent
        .create(
            "carol",
            config(
                "btc scalper",
                "BTC-USD",
                sma,
                10,
                Decimal::new(100_000, 2),
                3,
            ),
            0,
        )
        .await?;
    agent.start(5_000).await?;
    let fills = strom_domain::FillModel {
        slippage_bps: Decimal::from(5),
        fee_bps: Decimal::from(10),
    };
    let prices = [
        "100.00", "101.00", "99.00", "100.50", "102.00", "99.00", "100.50", "101.50", "100.80",
    ];
    for (i, price) in prices.iter().enumerate() {
        let tick = i as u64 + 1;
        let late_ms = 30 + i as i64;
        let run = run_command_with_fills(
            id,
            1,
            5_000,
            10,
            tick,
            "BTC-USD",
            price.parse().unwrap_or_default(),
            late_ms,
            fills.clone(),
        );
        if let Some(order_id) = agent.run(run).await? {
            let slot_ms = 5_000 + i as i64 * 10_000;
            agent.fill(&order_id, slot_ms + late_ms + 12).await?;
        }
    }
    agent.stop(120_000, "end of session").await?;
    Ok(())
}

/// Runs [`paper_trading`] on a fresh [`deterministic_memory_store`] and returns the store.
///
/// # Errors
/// As [`paper_trading`].
pub async fn paper_trading_in_memory() -> Result<MemoryEventStore, CommandError<AgentError>> {
    let store = deterministic_memory_store();
    paper_trading(&AggregateService::new(EventStore::Memory(store.clone()))).await?;
    Ok(store)
}
