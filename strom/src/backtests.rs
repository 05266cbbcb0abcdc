//! The `backtest` role: runs the backtests `POST /api/v1/backtests` requested (specs/01 §3.3, specs/06 §7). One active
//! instance per deployment (the lease of `strom_commands::lease`); it takes the oldest unfinished backtest of table
//! `backtests`, sends `StartBacktest`, runs the kernel (`strom_projections::backtest`) on a blocking thread and ends
//! with the result stored and `CompleteBacktest`, or `FailBacktest` with the reason.
//!
//! While a run goes on, every [`CHECK_EVERY`] the role writes its progress, looks for `BacktestCancelled` (then stops
//! the run) and confirms its lease (a lost lease stops the run and sends nothing more). A backtest found `running`
//! that this instance is not running was left by a runner that died or lost its lease: it is run again from the
//! start (a run is deterministic), unless it has been begun [`MAX_ATTEMPTS`] times already — then it fails with that
//! reason, so a backtest that kills its runner cannot kill every runner after it. Nothing stays `running` forever.
//! Between a lost lease and the next instance's takeover two runs of one backtest may overlap for about a lease
//! check; both store the same result and the aggregate accepts one `CompleteBacktest`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use strom_commands::lease::{Lease, Singleton, LEADER_RETRY, LEASE_CHECK};
use strom_commands::service::{CommandContext, CommandError, CommandServices};
use strom_commands::store::Clock;
use strom_domain::backtest::{BacktestRequest, MAX_ERROR_CHARS};
use strom_domain::{Agent, AgentEvent, BacktestCommand, BacktestSource, BacktestState};
use strom_projections::backtest::{BacktestResult, BacktestSetup, Backtester};
use strom_projections::backtests::{report, BacktestProgress, BacktestStore};
use strom_projections::parity::{compare, Parity};
use strom_projections::record::{observations, Keep, TradingRecord};
use strom_sim::PricePath;

/// The role's lease name (and `STROM_ROLES` entry).
pub const BACKTEST_ROLE: &str = "backtest";
/// Runs of one backtest before it is failed instead of run again: the first, and one after a crash or takeover.
pub const MAX_ATTEMPTS: u32 = 2;
/// How often a run writes its progress, looks for a cancellation and confirms the lease: a cancel takes effect
/// within a second, for three cheap round trips per second of run.
pub const CHECK_EVERY: Duration = LEASE_CHECK;
/// Pause between looks for new backtests when there is none: a request starts within a second.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// Bars between two looks at the stop flag and the progress counter on the run thread: rare enough to cost nothing.
const BARS_PER_CHECK: u64 = 4_096;
/// Gauge: 1 while this process's backtest runner is the active one.
const ACTIVE_GAUGE: &str = "strom_backtest_runner_active";

/// Tunables (tests shorten them).
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub idle_poll: Duration,
    pub leader_retry: Duration,
    pub check_every: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            idle_poll: IDLE_POLL,
            leader_retry: LEADER_RETRY,
            check_every: CHECK_EVERY,
        }
    }
}

/// One instance of the role.
pub struct BacktestRunner {
    commands: Arc<CommandServices>,
    backtests: Arc<dyn BacktestStore>,
    singleton: Singleton,
    clock: Clock,
    config: RunnerConfig,
}

/// How a step of the active instance ended.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A backtest was taken (run, failed or found finished): look for the next at once.
    Worked,
    /// Nothing to do now.
    Idle,
    /// The process is stopping.
    Shutdown,
    /// The lease is (or may be) lost: stand by.
    LeaseLost,
}

/// Why a run thread stopped without a result.
enum Stopped {
    /// The stop flag was set (cancel, shutdown or lost lease).
    Asked,
    /// The bars or the kernel failed: the backtest fails with this.
    Failed(String),
}

/// A backtest's bars, produced as the run consumes them (a simulated range or a CSV is never held whole).
type Bars = Box<dyn Iterator<Item = Result<(DateTime<Utc>, Decimal), String>> + Send>;

impl BacktestRunner {
    pub fn new(
        commands: Arc<CommandServices>,
        backtests: Arc<dyn BacktestStore>,
        singleton: Singleton,
        clock: Clock,
        config: RunnerConfig,
    ) -> Self {
        metrics::describe_gauge!(
            ACTIVE_GAUGE,
            "1 while this process's backtest runner is the active one"
        );
        Self {
            commands,
            backtests,
            singleton,
            clock,
            config,
        }
    }

    /// Runs until `shutdown` resolves: stands by until it holds the lease, then runs backtest after backtest; a lost
    /// lease sends it back to standby. A run in progress at shutdown is stopped and left `running` for the next
    /// active instance to run again.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let Some(mut lease) = self
                .singleton
                .acquire(self.config.leader_retry, &mut shutdown)
                .await
            else {
                break;
            };
            metrics::gauge!(ACTIVE_GAUGE).set(1.0);
            tracing::info!(role = BACKTEST_ROLE, "active");
            let step = self.lead(&mut lease, &mut shutdown).await;
            metrics::gauge!(ACTIVE_GAUGE).set(0.0);
            lease.release().await;
            if step == Step::Shutdown {
                break;
            }
            tracing::warn!(role = BACKTEST_ROLE, "lost the lease; standing by");
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.leader_retry) => {}
            }
        }
        tracing::info!(role = BACKTEST_ROLE, "stopped");
    }

    async fn lead(
        &self,
        lease: &mut Lease,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Step {
        loop {
            if !lease.still_held().await {
                return Step::LeaseLost;
            }
            match self.step(lease, shutdown).await {
                Step::Worked => {}
                Step::Idle => tokio::select! {
                    () = &mut *shutdown => return Step::Shutdown,
                    () = tokio::time::sleep(self.config.idle_poll) => {}
                },
                end => return end,
            }
        }
    }

    /// Takes the oldest unfinished backtest, if any.
    async fn step(
        &self,
        lease: &mut Lease,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Step {
        let next = match self.backtests.unfinished_backtests(1).await {
            Ok(rows) => rows.into_iter().next(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the backtests to run");
                return Step::Idle;
            }
        };
        let Some(row) = next else { return Step::Idle };
        let id = row.backtest_id;
        let (backtest, _) = match self.commands.backtests.load(&id).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(backtest_id = %id, %error, "cannot load the backtest");
                return Step::Idle;
            }
        };
        let Some(request) = backtest.request().cloned() else {
            return Step::Idle;
        };
        match backtest.state() {
            BacktestState::Requested => {
                let start = BacktestCommand::StartBacktest { at: self.now() };
                if let Err(error) = self.send(&id, start).await {
                    tracing::warn!(backtest_id = %id, %error, "could not start the backtest");
                    return Step::Idle;
                }
            }
            BacktestState::Running => {
                let attempts = match self.backtests.artifacts(&id).await {
                    Ok(artifacts) => artifacts.map_or(0, |a| a.attempts),
                    Err(error) => {
                        tracing::warn!(backtest_id = %id, %error, "cannot read the backtest's attempts");
                        return Step::Idle;
                    }
                };
                if attempts >= MAX_ATTEMPTS {
                    self.fail(&id, format!(
                        "the backtest runner stopped {attempts} times while running this backtest (crash, restart or \
                         lost lease); it is not run again"
                    ))
                    .await;
                    return Step::Worked;
                }
                tracing::warn!(backtest_id = %id, attempts, "taking over a backtest left running; running it again");
            }
            // The read model is behind the aggregate: wait for it.
            _ => return Step::Idle,
        }
        self.run_one(&id, &request, lease, shutdown).await
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    async fn send(
        &self,
        id: &str,
        command: BacktestCommand,
    ) -> Result<(), CommandError<strom_domain::BacktestError>> {
        let ctx = CommandContext::system(BACKTEST_ROLE, id);
        self.commands
            .backtests
            .execute(id, || command.clone(), &ctx)
            .await
            .map(|_| ())
    }

    /// Fails `id` with `reason` (cut to what the event keeps). A refusal (cancelled meanwhile) is fine.
    async fn fail(&self, id: &str, reason: String) {
        let error: String = reason.chars().take(MAX_ERROR_CHARS).collect();
        tracing::info!(backtest_id = %id, %error, "backtest failed");
        let at = self.now();
        if let Err(e) = self
            .send(id, BacktestCommand::FailBacktest { error, at })
            .await
        {
            tracing::warn!(backtest_id = %id, error = %e, "could not record the failure");
        }
    }

    async fn run_one(
        &self,
        id: &str,
        request: &BacktestRequest,
        lease: &mut Lease,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Step {
        if let Err(error) = self.backtests.begin_attempt(id).await {
            tracing::warn!(backtest_id = %id, %error, "cannot count the attempt");
            return Step::Idle;
        }
        let (bars, total, paper) = match self.bars(id, request).await {
            Ok(loaded) => loaded,
            Err(reason) => {
                self.fail(id, reason).await;
                return Step::Worked;
            }
        };
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let setup = BacktestSetup {
            backtest_id: id.to_owned(),
            owner: request.owner.clone(),
            config: request.config.clone(),
            fill_model: request.fill_model.clone(),
        };
        // Only a parity comparison needs every PnL point whole; a result keeps what it shows (its series thinned as
        // the bars go, which needs their exact count, and its first rows).
        let keep = if paper.is_some() {
            Keep::Everything
        } else {
            Keep::Report
        };
        let bars_total = usize::try_from(total).unwrap_or(0);
        let task = tokio::task::spawn_blocking({
            let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
            move || drive(setup, bars, (keep, bars_total), &done, &stop)
        });
        tokio::pin!(task);
        let mut ended = None;
        let joined = loop {
            tokio::select! {
                joined = &mut task => break joined,
                () = &mut *shutdown, if ended.is_none() => {
                    stop.store(true, Ordering::Relaxed);
                    ended = Some(Step::Shutdown);
                }
                () = tokio::time::sleep(self.config.check_every), if ended.is_none() => {
                    ended = self.check(id, &done, total, lease).await;
                    if ended.is_some() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) => Err(Stopped::Failed(format!("the backtest thread failed: {e}"))),
        };
        match (outcome, ended) {
            (_, Some(Step::LeaseLost)) => Step::LeaseLost,
            (Ok(result), _) => {
                self.complete(id, request, &result, paper.as_ref()).await;
                Step::Worked
            }
            (Err(Stopped::Failed(reason)), _) => {
                self.fail(id, reason).await;
                Step::Worked
            }
            (Err(Stopped::Asked), Some(step)) => step,
            (Err(Stopped::Asked), None) => Step::Worked,
        }
    }

    /// One look while a run goes on: progress written, cancellation and lease checked. `Some` stops the run.
    async fn check(
        &self,
        id: &str,
        done: &AtomicU64,
        total: u64,
        lease: &mut Lease,
    ) -> Option<Step> {
        let progress = BacktestProgress {
            bars_done: done.load(Ordering::Relaxed),
            bars_total: total,
        };
        if let Err(error) = self.backtests.set_progress(id, progress).await {
            tracing::warn!(backtest_id = %id, %error, "cannot record the progress");
        }
        if !lease.still_held().await {
            return Some(Step::LeaseLost);
        }
        match self.commands.backtests.load(id).await {
            Ok((backtest, _)) if backtest.state() == BacktestState::Cancelled => {
                tracing::info!(backtest_id = %id, "backtest cancelled; stopping its run");
                Some(Step::Worked)
            }
            _ => None,
        }
    }

    /// Stores the report, then completes (a refusal means it was cancelled or completed meanwhile).
    async fn complete(
        &self,
        id: &str,
        request: &BacktestRequest,
        result: &BacktestResult,
        paper: Option<&TradingRecord>,
    ) {
        let bars = result.summary.bars;
        let progress = BacktestProgress {
            bars_done: bars,
            bars_total: bars,
        };
        if let Err(error) = self.backtests.set_progress(id, progress).await {
            tracing::warn!(backtest_id = %id, %error, "cannot record the progress");
        }
        let parity: Option<Parity> = paper.map(|paper| compare(paper, &result.record));
        let report = report(result, request.config.starting_cash, parity);
        let stored = match serde_json::to_value(&report) {
            Ok(json) => self
                .backtests
                .put_result(id, &json)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = stored {
            // Without its result a completed backtest would show nothing: leave it running for a later attempt.
            tracing::warn!(backtest_id = %id, %error, "cannot store the result");
            return;
        }
        if let Err(CommandError::Rejected(error)) = self
            .send(
                id,
                BacktestCommand::CompleteBacktest {
                    summary: result.summary.clone(),
                    at: self.now(),
                },
            )
            .await
        {
            tracing::info!(backtest_id = %id, %error, "result not recorded");
        }
    }

    /// The bars of the request's source, how many there are, and for an
    /// `observations` source the paper agent's trading record to compare with.
    async fn bars(
        &self,
        id: &str,
        request: &BacktestRequest,
    ) -> Result<(Bars, u64, Option<TradingRecord>), String> {
        match &request.source {
            BacktestSource::Sim {
                seed,
                from,
                to: _,
                step_s,
            } => {
                // Whole bars only: the last closes at or before `to`.
                let count = request.source.sim_bars().unwrap_or(0);
                let step = i64::from(*step_s);
                let end = from.timestamp() + i64::try_from(count).unwrap_or(0) * step;
                let bars = PricePath::new(*seed)
                    .bars(
                        request.config.symbol.as_str(),
                        from.timestamp(),
                        end,
                        *step_s,
                    )
                    .map_err(|e| format!("cannot simulate the range: {e}"))?
                    .closes()
                    .map(Ok);
                Ok((Box::new(bars), count, None))
            }
            BacktestSource::Csv { .. } => {
                let csv = self
                    .backtests
                    .input(id)
                    .await
                    .map_err(|e| format!("cannot read the uploaded CSV: {e}"))?
                    .ok_or("the uploaded CSV is missing (backtest_inputs has no row for it)")?;
                // Read whole before the run (at most the upload limit): the result's series needs the exact count,
                // and a bad row fails the backtest before any bar runs.
                let bars = strom_sim::read_bars(std::io::Cursor::new(csv))
                    .map(|bar| bar.map(|b| (b.ts, b.close)).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, String>>()?;
                let total = bars.len() as u64;
                Ok((Box::new(bars.into_iter().map(Ok)), total, None))
            }
            BacktestSource::Observations { agent_id } => {
                let events: Vec<AgentEvent> = self
                    .commands
                    .store()
                    .events_after::<Agent>(agent_id, 0)
                    .await
                    .map_err(|e| format!("cannot read agent {agent_id}'s events: {e}"))?
                    .into_iter()
                    .filter_map(|(_, event)| event.as_agent().cloned())
                    .collect();
                let observed = observations(&events);
                let paper = TradingRecord::of_stream(agent_id, &events)
                    .map_err(|e| format!("agent {agent_id}'s events do not fold: {e}"))?;
                let total = observed.len() as u64;
                Ok((Box::new(observed.into_iter().map(Ok)), total, Some(paper)))
            }
        }
    }
}

/// Runs every bar on this (blocking) thread, counting them in `done` and stopping when `stop` is set.
fn drive(
    setup: BacktestSetup,
    mut bars: Bars,
    (keep, total): (Keep, usize),
    done: &AtomicU64,
    stop: &AtomicBool,
) -> Result<BacktestResult, Stopped> {
    let Some(first) = bars.next() else {
        return Err(Stopped::Failed("the source has no bars".to_owned()));
    };
    let (first_at, first_price) = first.map_err(Stopped::Failed)?;
    let fail = |e: strom_projections::backtest::BacktestError| Stopped::Failed(e.to_string());
    let mut backtester = Backtester::start(setup, first_at, ()).map_err(fail)?;
    backtester.keep(keep, total);
    backtester.bar(first_at, first_price).map_err(fail)?;
    for bar in bars {
        let (at, price) = bar.map_err(Stopped::Failed)?;
        backtester.bar(at, price).map_err(fail)?;
        if backtester.bars().is_multiple_of(BARS_PER_CHECK) {
            done.store(backtester.bars(), Ordering::Relaxed);
            if stop.load(Ordering::Relaxed) {
                return Err(Stopped::Asked);
            }
        }
    }
    done.store(backtester.bars(), Ordering::Relaxed);
    Ok(backtester.finish().0)
}
