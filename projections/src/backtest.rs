//! The backtest kernel: an agent config run over a series of observations in memory, through the same typed
//! `Agent::decide`/`evolve` as paper trading and the same trading fold as the agents projector (specs/06 §6).
//!
//! Per bar, strictly in this order: `RecordRun` (session 1, tick = bar number, every time = the bar's close time)
//! with its order, when it signals; `FillOrder` at the same time when the order was placed; each event applied to the
//! aggregate and folded by [`Recorder`]. No `CqrsFramework`, JSON or hashing on this path: events stay typed and
//! are handed to an [`EventSink`] (nothing kept by default; [`ExportSink`] writes a verifiable JSON-lines log).
//! The memory Agent's id is the backtest id, so order ids are `<backtest_id>-1-<bar_no>` as a paper agent's
//! are `<agent_id>-<session>-<tick_no>`.

use std::io::Write;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use strom_commands::log::{EventEnvelope, LogPosition};
use strom_domain::canonical::{chain_hash_text, jsonb_text, GENESIS_HASH};
use strom_domain::codec::encode;
use strom_domain::metrics::TraderMetrics;
use strom_domain::time::to_millis;
use strom_domain::{
    Agent, AgentCommand, AgentConfig, AgentEvent, BacktestSummary, Decider, EventMetadata,
    FillModel, Observation, RunOutcome, StromEvent, Symbol,
};
use uuid::Uuid;

use crate::fold::ProjectionError;
use crate::ledger::percent;
use crate::record::{Keep, Recorder, TradingRecord};

/// The correlation id of every run a backtest records (one per backtest would cost a string per bar).
pub const BACKTEST_CORRELATION_ID: &str = "backtest";

/// What to run: the config and the fill model every order fills with.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestSetup {
    /// Also the memory Agent's id.
    pub backtest_id: String,
    pub owner: String,
    pub config: AgentConfig,
    pub fill_model: FillModel,
}

/// A bar could not be run: which one and why. Nothing of the run is kept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bar {bar_no} ({at}): {reason}")]
pub struct BacktestError {
    /// 0 for the setup (creating and starting the agent).
    pub bar_no: u64,
    pub at: String,
    pub reason: String,
}

/// Where a backtest's events go as they are decided (the backtest's event store).
pub trait EventSink {
    /// Takes the `sequence`-th event of the backtest's Agent stream.
    ///
    /// # Errors
    /// The sink failed (e.g. a write); the backtest stops with it.
    fn record(&mut self, sequence: u64, event: &AgentEvent) -> Result<(), String>;
}

/// Keeps nothing: the trading record is the result.
impl EventSink for () {
    fn record(&mut self, _: u64, _: &AgentEvent) -> Result<(), String> {
        Ok(())
    }
}

/// Writes each event as a logged event line (`strom replay --export` format: envelope with position and hash-chain
/// link), so `strom replay --from FILE` verifies and folds a backtest like any exported log. `recorded_at` is the
/// event's bar time (a backtest reads no clock).
pub struct ExportSink<W: Write> {
    out: W,
    aggregate_id: String,
    prev_hash: String,
    metadata: serde_json::Value,
    at: DateTime<Utc>,
}

impl<W: Write> ExportSink<W> {
    pub fn new(out: W, backtest_id: &str) -> Self {
        Self {
            out,
            aggregate_id: backtest_id.to_owned(),
            prev_hash: GENESIS_HASH.to_owned(),
            metadata: serde_json::to_value(EventMetadata::new(BACKTEST_CORRELATION_ID, "backtest"))
                .unwrap_or_default(),
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// The writer, to flush and close.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> EventSink for ExportSink<W> {
    fn record(&mut self, sequence: u64, event: &AgentEvent) -> Result<(), String> {
        let event = StromEvent::Agent(event.clone());
        let payload = encode(&event);
        let hash = chain_hash_text(
            &self.prev_hash,
            Agent::TYPE,
            &self.aggregate_id,
            sequence,
            event.event_type(),
            event.event_version(),
            &jsonb_text(&payload),
        );
        if let Some(at) = event_time(&event) {
            self.at = at;
        }
        let envelope = EventEnvelope {
            position: LogPosition {
                tx_id: sequence,
                global_position: i64::try_from(sequence).unwrap_or(i64::MAX),
            },
            event_id: Uuid::new_v4(),
            aggregate_type: Agent::TYPE.to_owned(),
            aggregate_id: self.aggregate_id.clone(),
            sequence,
            event_type: event.event_type().to_owned(),
            event_version: event.event_version().to_owned(),
            payload,
            metadata: self.metadata.clone(),
            recorded_at: self.at,
            hash: hash.clone(),
        };
        self.prev_hash = hash;
        let line = envelope.to_json().map_err(|e| e.to_string())?;
        self.out
            .write_all(&line)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| format!("cannot write the export: {e}"))
    }
}

fn event_time(event: &StromEvent) -> Option<DateTime<Utc>> {
    match event {
        StromEvent::Agent(AgentEvent::AgentCreated { created_at, .. }) => Some(*created_at),
        StromEvent::Agent(AgentEvent::AgentStarted { started_at, .. }) => Some(*started_at),
        StromEvent::Agent(AgentEvent::AgentRunRecorded { completed_at, .. }) => Some(*completed_at),
        StromEvent::Agent(AgentEvent::OrderFilled { filled_at, .. }) => Some(*filled_at),
        _ => None,
    }
}

/// A backtest in progress: feed it bars with [`Backtester::bar`], then [`Backtester::finish`].
pub struct Backtester<S: EventSink = ()> {
    id: String,
    symbol: Symbol,
    fill_model: FillModel,
    starting_cash: Decimal,
    agent: Agent,
    sequence: u64,
    bars: u64,
    last_close: Option<Decimal>,
    recorder: Recorder,
    sink: S,
    /// [`BACKTEST_CORRELATION_ID`], handed to each run and taken back from its event: one string for the whole
    /// backtest instead of one per bar.
    correlation_id: String,
    /// The events of the command being run ([`Decider::execute_into`]): one buffer for the whole backtest instead
    /// of one per command.
    events: Vec<AgentEvent>,
}

/// What a finished backtest produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestResult {
    pub summary: BacktestSummary,
    pub rejected_orders: u64,
    /// Largest peak-to-trough fall of equity over the PnL points, % of the peak (4 dp).
    pub max_drawdown_pct: Decimal,
    /// What traders compare (specs/06 §8); `None` only if the backtest never created its agent.
    pub metrics: Option<TraderMetrics>,
    #[serde(skip)]
    pub record: TradingRecord,
    /// The equity series thinned for a stored result as the bars went (`Keep::Report`; otherwise
    /// [`crate::backtests::report`] thins `record.equity`).
    #[serde(skip)]
    pub series: Option<Vec<crate::walk::EquityPoint>>,
}

impl<S: EventSink> Backtester<S> {
    /// Creates the memory Agent `setup.backtest_id` and starts its one session at `first_at` (the first bar's time).
    ///
    /// # Errors
    /// The config does not validate, or the sink fails.
    pub fn start(
        setup: BacktestSetup,
        first_at: DateTime<Utc>,
        sink: S,
    ) -> Result<Self, BacktestError> {
        let mut this = Self {
            symbol: setup.config.symbol.clone(),
            fill_model: setup.fill_model,
            starting_cash: setup.config.starting_cash,
            agent: Agent::default(),
            sequence: 0,
            bars: 0,
            last_close: None,
            recorder: Recorder::new(),
            sink,
            id: setup.backtest_id.clone(),
            correlation_id: String::new(),
            events: Vec::with_capacity(2),
        };
        this.command(
            AgentCommand::CreateAgent {
                agent_id: setup.backtest_id,
                owner: setup.owner,
                config: setup.config,
                at: first_at,
            },
            first_at,
        )?;
        this.command(AgentCommand::StartAgent { at: first_at }, first_at)?;
        Ok(this)
    }

    /// Runs the next bar: the observation `price` at close time `at`.
    ///
    /// # Errors
    /// The bar is refused (e.g. not after the previous one) or its events do not fold; the backtest cannot go on.
    pub fn bar(&mut self, at: DateTime<Utc>, price: Decimal) -> Result<(), BacktestError> {
        let bar_no = self.bars + 1;
        if self.correlation_id.is_empty() {
            BACKTEST_CORRELATION_ID.clone_into(&mut self.correlation_id);
        }
        let run = AgentCommand::RecordRun {
            session: 1,
            tick_no: bar_no,
            scheduled_at: at,
            started_at: at,
            completed_at: at,
            observation: Observation {
                symbol: self.symbol.clone(),
                price,
                observed_at: at,
            },
            fill_model: self.fill_model.clone(),
            correlation_id: std::mem::take(&mut self.correlation_id),
        };
        self.bars = bar_no;
        let placed = self.command(run, at)?;
        if let Some(order_id) = placed {
            self.command(AgentCommand::FillOrder { order_id, at }, at)?;
        }
        self.last_close = Some(price);
        Ok(())
    }

    /// Decides and applies `command` ([`Decider::execute_into`]) and folds its events; the id of the order it
    /// placed, if any.
    fn command(
        &mut self,
        command: AgentCommand,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, BacktestError> {
        let mut events = std::mem::take(&mut self.events);
        let folded = self
            .agent
            .execute_into(command, &mut events)
            .map_err(|e| self.error(at, e))
            .and_then(|()| self.fold(&mut events, at));
        events.clear();
        self.events = events;
        folded
    }

    /// Folds the events `command` decided into the record and the sink, in place (an event is a few hundred bytes:
    /// it is not moved again); the placed order's id and the run's correlation id are taken out of them.
    fn fold(
        &mut self,
        events: &mut [AgentEvent],
        at: DateTime<Utc>,
    ) -> Result<Option<String>, BacktestError> {
        let mut placed = None;
        for event in events {
            self.sequence += 1;
            self.recorder
                .apply(&self.id, self.sequence, event)
                .map_err(|e: ProjectionError| self.error(at, e))?;
            self.sink
                .record(self.sequence, event)
                .map_err(|e| self.error(at, e))?;
            match event {
                AgentEvent::OrderPlaced { order_id, .. } => placed = Some(std::mem::take(order_id)),
                AgentEvent::AgentRunRecorded {
                    outcome: RunOutcome::Skipped { order_id },
                    ..
                } => {
                    // Every order fills before the next bar; a skip means the kernel broke its own rule.
                    return Err(
                        self.error(at, format!("bar skipped behind unfilled order {order_id}"))
                    );
                }
                AgentEvent::AgentRunRecorded { correlation_id, .. } => {
                    std::mem::swap(&mut self.correlation_id, correlation_id);
                }
                _ => {}
            }
        }
        Ok(placed)
    }

    fn error(&self, at: DateTime<Utc>, reason: impl ToString) -> BacktestError {
        BacktestError {
            bar_no: self.bars,
            at: strom_domain::time::format_millis(&to_millis(at)),
            reason: reason.to_string(),
        }
    }

    /// Keeps `keep` of the `bars` bars to come (before the first bar; exactly that many for [`Keep::Report`]): what
    /// a stored result shows ([`Keep::Report`]) or nothing but the metrics ([`Keep::Metrics`]) for a run that
    /// compares nothing; by default, everything (a parity comparison).
    pub fn keep(&mut self, keep: Keep, bars: usize) {
        self.recorder.keep(keep, bars);
    }

    /// Bars run so far.
    pub fn bars(&self) -> u64 {
        self.bars
    }

    /// The summary and the trading record, and the sink back.
    pub fn finish(self) -> (BacktestResult, S) {
        let (record, metrics, series) = self.recorder.finish_and_metrics();
        // The counts are the position row's (the record may keep no rows: `Keep::Metrics`).
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let (cash, qty, placed, rejected, fills, max_drawdown_pct) =
            record.position.as_ref().map_or(
                (self.starting_cash, Decimal::ZERO, 0, 0, 0, Decimal::ZERO),
                |p| {
                    let (placed, rejected) = (count(p.orders_placed), count(p.orders_rejected));
                    (
                        p.cash,
                        p.qty,
                        placed,
                        rejected,
                        count(p.trades),
                        p.max_drawdown_pct,
                    )
                },
            );
        let last_close = self.last_close.unwrap_or_default();
        let final_equity = qty
            .checked_mul(last_close)
            .and_then(|v| v.checked_add(cash))
            .unwrap_or(cash);
        let pnl = final_equity - self.starting_cash;
        let summary = BacktestSummary {
            bars: self.bars,
            orders: placed + rejected,
            fills,
            final_cash: cash,
            final_position: qty,
            final_equity,
            pnl,
            return_pct: percent(pnl, self.starting_cash, 4),
        };
        (
            BacktestResult {
                summary,
                rejected_orders: rejected,
                max_drawdown_pct,
                metrics,
                record,
                series,
            },
            self.sink,
        )
    }
}

/// Runs `setup` over `bars` (close time, close price) with nothing kept but the result.
///
/// # Errors
/// As [`Backtester::bar`]; an empty series is an error too.
pub fn run(
    setup: BacktestSetup,
    bars: impl IntoIterator<Item = (DateTime<Utc>, Decimal)>,
) -> Result<BacktestResult, BacktestError> {
    let mut bars = bars.into_iter();
    let Some((first_at, first_price)) = bars.next() else {
        return Err(BacktestError {
            bar_no: 0,
            at: String::new(),
            reason: "no bars to run".to_owned(),
        });
    };
    let mut backtester = Backtester::start(setup, first_at, ())?;
    backtester.bar(first_at, first_price)?;
    for (at, price) in bars {
        backtester.bar(at, price)?;
    }
    Ok(backtester.finish().0)
}

#[cfg(test)]
mod tests;
