//! Paper trading on Postgres + NATS: tick-to-fill latency with 1,000 agents ticking every second, and the fills per
//! second the execution role sustains.
//!
//! Live: 1,000 agents on an sma 1/2 crossover (a signal at most turns of the simulated price), every second, with the
//! scheduler, one runtime worker and the execution role of `strom serve` running in this process on the system clock
//! for [`LIVE_SECONDS`]. Tick-to-fill is, per order, the fill's commit minus the run's (both the `recorded_at` the
//! database stamps, so one clock): from the signal recorded to the fill committed, over every order of the run.
//!
//! Drain: [`DRAIN_ORDERS`] agents each with one placed order and no execution running (an outage's backlog); then one
//! execution instance starts and the time until every order has filled gives the sustained fills/s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use strom_commands::bus::Bus;
use strom_commands::execution::{execution_config, Execution, EXECUTION_ROLE};
use strom_commands::lease::Singleton;
use strom_commands::log::{EventLog, LogPosition, LoggedEvent, MAX_LOG_PAGE};
use strom_commands::market::SimMarket;
use strom_commands::runtime::{RuntimeConfig, RuntimeWorker};
use strom_commands::scheduler::{system_clock, Scheduler, SchedulerConfig, SCHEDULER_ROLE};
use strom_commands::service::{AggregateService, CommandContext};
use strom_commands::store::EventStore;
use strom_domain::{Agent, AgentCommand, AgentConfig, AgentEvent, FillModel, Observation, Symbol};
use strom_tests::nats::TestNats;
use tokio_util::sync::CancellationToken;

use crate::report::Report;
use crate::{nats_url, scratch, BenchResult, Plan};

/// Agents ticking every second in the live phase (the brief's tick-to-fill workload).
pub const LIVE_AGENTS: usize = 1_000;
/// Seconds the live phase runs.
pub const LIVE_SECONDS: u64 = 30;
/// Open orders the drain phase fills.
pub const DRAIN_ORDERS: usize = 5_000;
/// Connections of the trading schema: the runtime's concurrent ticks, the execution's concurrent fills, the
/// scheduler, the projector-free log reads and setup.
const TRADING_CONNECTIONS: u32 = 40;
/// Commands in flight while setting agents up.
const SETUP_CONCURRENCY: usize = 32;
/// The simulated market's seed.
const SEED: u64 = 42;
const SYMBOLS: [&str; 3] = ["BTC-USD", "ETH-USD", "SOL-USD"];

/// Runs both phases, prints their rows and keeps their figures.
pub async fn trading(url: &str, plan: &Plan, report: &mut Report) -> BenchResult<()> {
    let (agents, seconds) = if plan.quick {
        (LIVE_AGENTS / 10, LIVE_SECONDS / 3)
    } else {
        (LIVE_AGENTS, LIVE_SECONDS)
    };
    println!(
        "paper trading on postgres+nats: {agents} agents (sma 1/2, every second) for {seconds} s with the scheduler, \
         one runtime worker and the execution role; then {} open orders drained by one execution instance",
        drain_orders(plan)
    );
    live(url, agents, seconds, report).await?;
    drain(url, drain_orders(plan), report).await
}

fn drain_orders(plan: &Plan) -> usize {
    if plan.quick {
        DRAIN_ORDERS / 10
    } else {
        DRAIN_ORDERS
    }
}

fn fill_model() -> FillModel {
    FillModel {
        slippage_bps: "2.5".parse().unwrap_or_default(),
        fee_bps: "10".parse().unwrap_or_default(),
    }
}

fn config(symbol: &str) -> BenchResult<AgentConfig> {
    Ok(serde_json::from_value(serde_json::json!({
        "name": "bench trader", "symbol": symbol,
        "strategy": {"kind": "sma_crossover", "params": {"fast": 1, "slow": 2, "qty": "0.01"}},
        "frequency_s": 1,
        "risk": {"max_position_qty": "1", "max_order_qty": "1", "max_notional": "1000000", "max_daily_loss": null},
        "starting_cash": "100000", "seed": SEED
    }))?)
}

/// Creates `count` agents and starts each at `at`; returns their ids.
async fn create_agents(
    agents: &AggregateService<Agent>,
    count: usize,
    at: DateTime<Utc>,
) -> BenchResult<Vec<String>> {
    let ids: Vec<String> = (0..count)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let ctx = CommandContext::new("bench-trading", "bench");
    let configs: Vec<AgentConfig> = SYMBOLS
        .iter()
        .map(|s| config(s))
        .collect::<Result<_, _>>()?;
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let (ctx, config) = (&ctx, &configs[i % SYMBOLS.len()]);
            async move {
                agents
                    .execute(
                        id,
                        || AgentCommand::CreateAgent {
                            agent_id: id.clone(),
                            owner: "bench".into(),
                            config: config.clone(),
                            at,
                        },
                        ctx,
                    )
                    .await?;
                agents
                    .execute(id, || AgentCommand::StartAgent { at }, ctx)
                    .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    Ok(ids)
}

/// Every event of the log.
async fn whole_log(log: &dyn EventLog) -> BenchResult<Vec<Arc<LoggedEvent>>> {
    let mut events = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let page = log.read_after(after, MAX_LOG_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(events);
        };
        after = last.position;
        events.extend(page);
    }
}

async fn live(url: &str, count: usize, seconds: u64, report: &mut Report) -> BenchResult<()> {
    let scratch = scratch(url, "trading_live", TRADING_CONNECTIONS, true).await?;
    let nats = TestNats::at(&nats_url(), "benchtrade");
    let bus: Arc<dyn Bus> = Arc::new(nats.try_connect().await.map_err(|e| e.to_string())?);
    bus.ensure_topology().await?;
    let store = EventStore::postgres(scratch.pool.clone());
    let agents = Arc::new(AggregateService::<Agent>::new(store.clone()));
    let options = (*scratch.pool.connect_options()).clone();
    let singleton = |role: &str| Singleton::postgres(options.clone(), role, nats.prefix());

    let start = strom_domain::time::to_seconds(Utc::now() + chrono::TimeDelta::seconds(1));
    let ids = create_agents(&agents, count, start).await?;
    let stop = CancellationToken::new();
    let scheduler = Scheduler::new(
        store.log(),
        Arc::clone(&bus),
        singleton(SCHEDULER_ROLE),
        system_clock(),
        SchedulerConfig::default(),
    );
    let worker = RuntimeWorker::new(
        Arc::clone(&bus),
        Arc::clone(&agents),
        Arc::new(SimMarket::new(SEED)),
        system_clock(),
        RuntimeConfig {
            fill_model: fill_model(),
            ..RuntimeConfig::default()
        },
    );
    let execution = Arc::new(Execution::over(
        &store,
        Arc::clone(&agents),
        system_clock(),
        singleton(EXECUTION_ROLE),
        execution_config(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    let token = stop.clone();
    tasks.spawn(async move { scheduler.run(token.cancelled_owned()).await });
    let token = stop.clone();
    tasks.spawn(async move {
        if let Err(e) = worker.run(token.cancelled_owned()).await {
            eprintln!("runtime worker failed: {e}");
        }
    });
    let (running, token) = (Arc::clone(&execution), stop.clone());
    tasks.spawn(async move { running.run(token.cancelled_owned()).await });
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    let elapsed = began.elapsed().as_secs_f64();

    let events = whole_log(store.log().as_ref()).await?;
    let mut placed: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    let (mut runs, mut skipped, mut rejected) = (0u64, 0u64, 0u64);
    let mut latencies = Vec::new();
    for event in &events {
        match event.event.as_agent() {
            Some(AgentEvent::AgentRunRecorded { outcome, .. }) => {
                runs += 1;
                if matches!(outcome, strom_domain::RunOutcome::Skipped { .. }) {
                    skipped += 1;
                }
            }
            Some(AgentEvent::OrderPlaced { order_id, .. }) => {
                placed.insert(order_id, event.recorded_at);
            }
            Some(AgentEvent::OrderRejected { .. }) => rejected += 1,
            Some(AgentEvent::OrderFilled { order_id, .. }) => {
                if let Some(at) = placed.get(order_id.as_str()) {
                    latencies.push((event.recorded_at - *at).to_std().unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    drop(ids);
    let fills = latencies.len();
    if fills == 0 {
        report.missing(
            "tick-to-fill latency p99, 1,000 agents at 1 s",
            "ms",
            "postgres+nats",
            "no order filled",
        );
        nats.delete().await;
        return Err("the live phase filled no order".into());
    }
    let (p50, p99) = (percentile_ms(&latencies, 50), percentile_ms(&latencies, 99));
    println!(
        "  live: {runs} runs ({skipped} skipped while an order waited), {} orders placed, {rejected} rejected, {fills} \
         fills in {elapsed:.1} s ({:.0} fills/s); tick-to-fill p50 {p50:.1} ms, p99 {p99:.1} ms (goal p99 ≤ 20 ms)",
        placed.len(),
        fills as f64 / elapsed
    );
    let agents_label = format!("{count} agents at 1 s");
    report.record(
        &format!("tick-to-fill latency p50, {agents_label}"),
        p50,
        "ms",
        "postgres+nats",
    );
    report.record(
        &format!("tick-to-fill latency p99, {agents_label}"),
        p99,
        "ms",
        "postgres+nats",
    );
    report.record(
        &format!("fills/s while {agents_label} trade"),
        fills as f64 / elapsed,
        "fills/s",
        "postgres+nats",
    );
    report.record(
        &format!("runs skipped by the settle barrier, {agents_label}"),
        skipped as f64,
        "runs",
        "postgres+nats",
    );
    nats.delete().await;
    Ok(())
}

async fn drain(url: &str, orders: usize, report: &mut Report) -> BenchResult<()> {
    let scratch = scratch(url, "trading_drain", TRADING_CONNECTIONS, true).await?;
    let store = EventStore::postgres(scratch.pool.clone());
    let agents = Arc::new(AggregateService::<Agent>::new(store.clone()));
    let t0: DateTime<Utc> = "2027-01-15T08:00:00Z".parse()?;
    let ids = create_agents(&agents, orders, t0).await?;
    // Three runs each: 100, 100, 101 crosses up and places a buy.
    let ctx = CommandContext::new("bench-drain", "system:runtime");
    let agents = agents.as_ref();
    futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let (ctx, symbol) = (&ctx, SYMBOLS[i % SYMBOLS.len()]);
            async move {
                for (tick, price) in [(1u64, 100), (2, 100), (3, 101)] {
                    let at = t0 + chrono::TimeDelta::seconds(tick as i64 - 1);
                    let observation = Observation {
                        symbol: Symbol::parse(symbol)?,
                        price: price.into(),
                        observed_at: at,
                    };
                    agents
                        .execute(
                            id,
                            || AgentCommand::RecordRun {
                                session: 1,
                                tick_no: tick,
                                scheduled_at: at,
                                started_at: at,
                                completed_at: at,
                                observation: observation.clone(),
                                fill_model: fill_model(),
                                correlation_id: format!("drain-{tick}"),
                            },
                            ctx,
                        )
                        .await?;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;

    // A fresh service, as after a restart: the fills load each agent from its snapshot-less history of 5 events.
    let fresh = Arc::new(AggregateService::<Agent>::new(store.clone()));
    let execution = Arc::new(Execution::over(
        &store,
        fresh,
        system_clock(),
        Singleton::postgres(
            (*scratch.pool.connect_options()).clone(),
            EXECUTION_ROLE,
            "benchdrain",
        ),
        execution_config(),
    ));
    let stop = CancellationToken::new();
    let (running, token) = (Arc::clone(&execution), stop.clone());
    let began = Instant::now();
    let task = tokio::spawn(async move { running.run(token.cancelled_owned()).await });
    let deadline = Duration::from_secs(600);
    while execution.stats().filled < orders as u64 {
        if began.elapsed() > deadline {
            stop.cancel();
            return Err(format!(
                "the drain filled {} of {orders} orders in {deadline:?}",
                execution.stats().filled
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = began.elapsed().as_secs_f64();
    stop.cancel();
    task.await?;
    let rate = orders as f64 / elapsed;
    println!("  drain: {orders} open orders filled in {elapsed:.2} s: {rate:.0} fills/s sustained");
    report.record(
        "fills/s sustained (draining an execution backlog)",
        rate,
        "fills/s",
        "postgres",
    );
    Ok(())
}

/// The nearest-rank `p`th percentile of `samples`, in milliseconds.
fn percentile_ms(samples: &[Duration], p: usize) -> f64 {
    crate::latency::percentile(samples, p).as_secs_f64() * 1e3
}
