//! The Backtest aggregate: a request to run an agent config over historical or simulated prices, and its
//! outcome. The run itself happens outside (it drives the same Agent aggregate, orders included, over a memory
//! store); this aggregate records what was asked, that it ran, and the summary it produced.

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;
use crate::decider::Decider;
use crate::error::{DomainError, ValidationError};
use crate::fill::FillModel;
use crate::id::{validate_text, validate_uuid, MAX_OWNER_CHARS};
use crate::time::to_millis;

/// Most bars a simulated source may produce: 10 million one-minute bars are 19 years; a typo like a 1-second step over
/// a century is refused instead of filling memory (`strom backtest` and `POST /api/v1/backtests` alike).
pub const MAX_SIM_BARS: u64 = 10_000_000;
/// Bar length of a simulated source that names none.
pub const DEFAULT_SIM_STEP_S: u32 = 60;
/// Longest simulated bar: one day.
pub const MAX_SIM_STEP_S: u32 = 86_400;
/// Longest failure message kept in the event: enough for an error chain, not a log.
pub const MAX_ERROR_CHARS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BacktestState {
    #[default]
    Requested,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl BacktestState {
    pub fn as_str(self) -> &'static str {
        match self {
            BacktestState::Requested => "requested",
            BacktestState::Running => "running",
            BacktestState::Completed => "completed",
            BacktestState::Failed => "failed",
            BacktestState::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BacktestState::Completed | BacktestState::Failed | BacktestState::Cancelled
        )
    }
}

impl fmt::Display for BacktestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the observations come from. Never a server-side path: a CSV is uploaded with the request and kept beside
/// the log (its size and SHA-256 recorded here, specs/06 §7), a simulated range is regenerated from its seed, and the
/// observations of a paper agent are read from that agent's own stream when the backtest runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BacktestSource {
    /// An uploaded CSV of bars (specs/06 §5), `bytes` long with lower-hex SHA-256 `sha256`.
    Csv { bytes: u64, sha256: String },
    /// `PricePath::new(seed)` bars of `step_s` seconds; the first closes at `from + step_s`, the last at or before
    /// `to`.
    Sim {
        seed: u64,
        #[serde(with = "crate::time::rfc3339_millis")]
        from: DateTime<Utc>,
        #[serde(with = "crate::time::rfc3339_millis")]
        to: DateTime<Utc>,
        step_s: u32,
    },
    /// The observations (runs) paper agent `agent_id` recorded: the parity backtest (specs/06 §1).
    Observations { agent_id: String },
}

impl BacktestSource {
    /// The number of bars a simulated range makes (`None` for other sources).
    pub fn sim_bars(&self) -> Option<u64> {
        match self {
            BacktestSource::Sim {
                from, to, step_s, ..
            } if *step_s > 0 => {
                let span_s = to.timestamp() - from.timestamp();
                Some(u64::try_from(span_s / i64::from(*step_s)).unwrap_or(0))
            }
            _ => None,
        }
    }

    fn validated(self) -> Result<Self, ValidationError> {
        let bars = self.sim_bars();
        match self {
            BacktestSource::Csv { bytes, sha256 } => {
                if bytes == 0 {
                    return Err(ValidationError::new("source.data", "must not be empty"));
                }
                let hex = sha256.len() == 64
                    && sha256
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !hex {
                    return Err(ValidationError::new(
                        "source.sha256",
                        "must be 64 lower-case hex digits",
                    ));
                }
                Ok(BacktestSource::Csv { bytes, sha256 })
            }
            BacktestSource::Sim {
                seed,
                from,
                to,
                step_s,
            } => {
                let (from, to) = (to_millis(from), to_millis(to));
                if from >= to {
                    return Err(ValidationError::new(
                        "source.to",
                        "must be after source.from",
                    ));
                }
                if !(1..=MAX_SIM_STEP_S).contains(&step_s) {
                    return Err(ValidationError::new(
                        "source.step_s",
                        format!("must be between 1 and {MAX_SIM_STEP_S}"),
                    ));
                }
                match bars {
                    Some(0) | None => Err(ValidationError::new(
                        "source.to",
                        format!("source.from .. source.to holds no whole bar of {step_s} s"),
                    )),
                    Some(n) if n > MAX_SIM_BARS => Err(ValidationError::new(
                        "source.to",
                        format!("the range makes {n} bars of {step_s} s; at most {MAX_SIM_BARS} are allowed"),
                    )),
                    Some(_) => Ok(BacktestSource::Sim {
                        seed,
                        from,
                        to,
                        step_s,
                    }),
                }
            }
            BacktestSource::Observations { agent_id } => {
                validate_uuid("source.agent_id", &agent_id)?;
                Ok(BacktestSource::Observations { agent_id })
            }
        }
    }
}

/// What a finished run produced. Counts are totals over the run; amounts are at the last bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestSummary {
    pub bars: u64,
    pub orders: u64,
    pub fills: u64,
    pub final_cash: Decimal,
    pub final_position: Decimal,
    pub final_equity: Decimal,
    pub pnl: Decimal,
    pub return_pct: Decimal,
}

// Built once and consumed at once (commands) or stored as JSON (events); boxing the request would only add
// an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BacktestCommand {
    RequestBacktest {
        backtest_id: String,
        owner: String,
        /// The agent whose config was snapshotted into `config`, if the request named one.
        agent_id: Option<String>,
        /// The agent config to run, as it was when requested.
        config: AgentConfig,
        source: BacktestSource,
        /// Slippage and fee every simulated order fills with (the parity rule needs the paper agent's).
        fill_model: FillModel,
        at: DateTime<Utc>,
    },
    StartBacktest {
        at: DateTime<Utc>,
    },
    CompleteBacktest {
        summary: BacktestSummary,
        at: DateTime<Utc>,
    },
    FailBacktest {
        error: String,
        at: DateTime<Utc>,
    },
    CancelBacktest {
        at: DateTime<Utc>,
    },
}

/// Unknown fields in a stored payload are an error, never silently dropped.
#[allow(clippy::large_enum_variant)] // see BacktestCommand
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum BacktestEvent {
    BacktestRequested {
        backtest_id: String,
        owner: String,
        /// `null` when the request carried a config of its own.
        agent_id: Option<String>,
        config: AgentConfig,
        source: BacktestSource,
        fill_model: FillModel,
        #[serde(with = "crate::time::rfc3339_millis")]
        requested_at: DateTime<Utc>,
    },
    BacktestStarted {
        #[serde(with = "crate::time::rfc3339_millis")]
        started_at: DateTime<Utc>,
    },
    BacktestCompleted {
        summary: BacktestSummary,
        #[serde(with = "crate::time::rfc3339_millis")]
        completed_at: DateTime<Utc>,
    },
    BacktestFailed {
        error: String,
        #[serde(with = "crate::time::rfc3339_millis")]
        failed_at: DateTime<Utc>,
    },
    BacktestCancelled {
        #[serde(with = "crate::time::rfc3339_millis")]
        cancelled_at: DateTime<Utc>,
    },
}

impl BacktestEvent {
    /// Every event type with the version current code writes (specs/04 §2).
    pub const VERSIONS: &'static [(&'static str, &'static str)] = &[
        ("BacktestRequested", "1"),
        ("BacktestStarted", "1"),
        ("BacktestCompleted", "1"),
        ("BacktestFailed", "1"),
        ("BacktestCancelled", "1"),
    ];

    /// The variant name (`event_type`).
    pub fn name(&self) -> &'static str {
        match self {
            BacktestEvent::BacktestRequested { .. } => "BacktestRequested",
            BacktestEvent::BacktestStarted { .. } => "BacktestStarted",
            BacktestEvent::BacktestCompleted { .. } => "BacktestCompleted",
            BacktestEvent::BacktestFailed { .. } => "BacktestFailed",
            BacktestEvent::BacktestCancelled { .. } => "BacktestCancelled",
        }
    }

    /// The version this event is written with.
    pub fn version(&self) -> &'static str {
        "1"
    }
}

impl DomainEvent for BacktestEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        self.version().to_owned()
    }
}

/// Why a Backtest command was refused. Serializes as `{"code": "<code()>", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum BacktestError {
    #[error("backtest already exists (state {state})")]
    BacktestAlreadyExists { state: BacktestState },
    #[error("backtest not found")]
    BacktestNotFound,
    #[error("backtest is not waiting to start (state {state})")]
    BacktestNotRequested { state: BacktestState },
    #[error("backtest is not running (state {state})")]
    BacktestNotRunning { state: BacktestState },
    #[error("backtest is already finished (state {state})")]
    BacktestFinished { state: BacktestState },
    #[error("invalid {0}")]
    ValidationFailed(ValidationError),
}

impl From<ValidationError> for BacktestError {
    fn from(e: ValidationError) -> Self {
        BacktestError::ValidationFailed(e)
    }
}

impl DomainError for BacktestError {
    fn all_codes() -> &'static [&'static str] {
        &[
            "backtest_already_exists",
            "backtest_not_found",
            "backtest_not_requested",
            "backtest_not_running",
            "backtest_finished",
            "validation_failed",
        ]
    }

    fn code(&self) -> &'static str {
        match self {
            BacktestError::BacktestAlreadyExists { .. } => "backtest_already_exists",
            BacktestError::BacktestNotFound => "backtest_not_found",
            BacktestError::BacktestNotRequested { .. } => "backtest_not_requested",
            BacktestError::BacktestNotRunning { .. } => "backtest_not_running",
            BacktestError::BacktestFinished { .. } => "backtest_finished",
            BacktestError::ValidationFailed(_) => "validation_failed",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            BacktestError::ValidationFailed(e) => Some(&e.field),
            _ => None,
        }
    }

    fn current_state(&self) -> Option<&'static str> {
        match self {
            BacktestError::BacktestAlreadyExists { state }
            | BacktestError::BacktestNotRequested { state }
            | BacktestError::BacktestNotRunning { state }
            | BacktestError::BacktestFinished { state } => Some(state.as_str()),
            _ => None,
        }
    }
}

/// What was asked for; absent until `BacktestRequested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestRequest {
    pub backtest_id: String,
    pub owner: String,
    pub agent_id: Option<String>,
    pub config: AgentConfig,
    pub source: BacktestSource,
    pub fill_model: FillModel,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backtest {
    request: Option<BacktestRequest>,
    state: BacktestState,
    summary: Option<BacktestSummary>,
}

impl Backtest {
    pub fn exists(&self) -> bool {
        self.request.is_some()
    }
    pub fn request(&self) -> Option<&BacktestRequest> {
        self.request.as_ref()
    }
    pub fn state(&self) -> BacktestState {
        self.state
    }
    pub fn summary(&self) -> Option<&BacktestSummary> {
        self.summary.as_ref()
    }

    fn require(&self) -> Result<BacktestState, BacktestError> {
        if self.exists() {
            Ok(self.state)
        } else {
            Err(BacktestError::BacktestNotFound)
        }
    }

    fn require_running(&self) -> Result<(), BacktestError> {
        match self.require()? {
            BacktestState::Running => Ok(()),
            state => Err(BacktestError::BacktestNotRunning { state }),
        }
    }

    fn request_backtest(
        &self,
        request: BacktestRequest,
        at: DateTime<Utc>,
    ) -> Result<BacktestEvent, BacktestError> {
        if self.exists() {
            return Err(BacktestError::BacktestAlreadyExists { state: self.state });
        }
        let BacktestRequest {
            backtest_id,
            owner,
            agent_id,
            config,
            source,
            fill_model,
        } = request;
        validate_uuid("backtest_id", &backtest_id)?;
        validate_text("owner", &owner, MAX_OWNER_CHARS)?;
        if let Some(agent_id) = &agent_id {
            validate_uuid("agent_id", agent_id)?;
        }
        let (config, _) = config.normalized().map_err(|e| e.within("config"))?;
        fill_model.validate()?;
        Ok(BacktestEvent::BacktestRequested {
            backtest_id,
            owner,
            agent_id,
            config,
            source: source.validated()?,
            fill_model,
            requested_at: to_millis(at),
        })
    }

    fn start(&self, at: DateTime<Utc>) -> Result<BacktestEvent, BacktestError> {
        match self.require()? {
            BacktestState::Requested => Ok(BacktestEvent::BacktestStarted {
                started_at: to_millis(at),
            }),
            state => Err(BacktestError::BacktestNotRequested { state }),
        }
    }

    fn complete(
        &self,
        summary: BacktestSummary,
        at: DateTime<Utc>,
    ) -> Result<BacktestEvent, BacktestError> {
        self.require_running()?;
        if summary.fills > summary.orders {
            return Err(
                ValidationError::new("summary.fills", "cannot exceed summary.orders").into(),
            );
        }
        Ok(BacktestEvent::BacktestCompleted {
            summary,
            completed_at: to_millis(at),
        })
    }

    fn fail(&self, error: String, at: DateTime<Utc>) -> Result<BacktestEvent, BacktestError> {
        self.require_running()?;
        validate_text("error", &error, MAX_ERROR_CHARS)?;
        Ok(BacktestEvent::BacktestFailed {
            error,
            failed_at: to_millis(at),
        })
    }

    fn cancel(&self, at: DateTime<Utc>) -> Result<BacktestEvent, BacktestError> {
        match self.require()? {
            state if state.is_finished() => Err(BacktestError::BacktestFinished { state }),
            _ => Ok(BacktestEvent::BacktestCancelled {
                cancelled_at: to_millis(at),
            }),
        }
    }
}

impl Decider for Backtest {
    const TYPE: &'static str = "Backtest";
    type Command = BacktestCommand;
    type Event = BacktestEvent;
    type Error = BacktestError;

    fn decide(&self, command: BacktestCommand) -> Result<Vec<BacktestEvent>, BacktestError> {
        let event = match command {
            BacktestCommand::RequestBacktest {
                backtest_id,
                owner,
                agent_id,
                config,
                source,
                fill_model,
                at,
            } => self.request_backtest(
                BacktestRequest {
                    backtest_id,
                    owner,
                    agent_id,
                    config,
                    source,
                    fill_model,
                },
                at,
            )?,
            BacktestCommand::StartBacktest { at } => self.start(at)?,
            BacktestCommand::CompleteBacktest { summary, at } => self.complete(summary, at)?,
            BacktestCommand::FailBacktest { error, at } => self.fail(error, at)?,
            BacktestCommand::CancelBacktest { at } => self.cancel(at)?,
        };
        Ok(vec![event])
    }

    fn evolve(&mut self, event: &BacktestEvent) {
        match event {
            BacktestEvent::BacktestRequested {
                backtest_id,
                owner,
                agent_id,
                config,
                source,
                fill_model,
                requested_at: _,
            } => {
                debug_assert!(self.request.is_none(), "a backtest is requested once");
                self.request = Some(BacktestRequest {
                    backtest_id: backtest_id.clone(),
                    owner: owner.clone(),
                    agent_id: agent_id.clone(),
                    config: config.clone(),
                    source: source.clone(),
                    fill_model: fill_model.clone(),
                });
                self.state = BacktestState::Requested;
            }
            BacktestEvent::BacktestStarted { .. } => {
                debug_assert_eq!(
                    self.state,
                    BacktestState::Requested,
                    "only a requested backtest starts"
                );
                self.state = BacktestState::Running;
            }
            BacktestEvent::BacktestCompleted { summary, .. } => {
                debug_assert_eq!(
                    self.state,
                    BacktestState::Running,
                    "only a running backtest completes"
                );
                self.summary = Some(summary.clone());
                self.state = BacktestState::Completed;
            }
            BacktestEvent::BacktestFailed { .. } => {
                debug_assert_eq!(
                    self.state,
                    BacktestState::Running,
                    "only a running backtest fails"
                );
                self.state = BacktestState::Failed;
            }
            BacktestEvent::BacktestCancelled { .. } => {
                debug_assert!(
                    !self.state.is_finished(),
                    "a finished backtest cannot be cancelled"
                );
                self.state = BacktestState::Cancelled;
            }
        }
    }
}

crate::cqrs_aggregate!(Backtest);

#[cfg(test)]
mod tests;
