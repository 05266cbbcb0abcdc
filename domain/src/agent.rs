//! The Agent aggregate: an automated trader's lifecycle (stopped → running → stopped … → archived), its runs and
//! its orders. Besides its config, the state keeps exactly what the next run needs to be decided the same way
//! live and in a replay: the session, the last tick run in it, a bounded window of observed prices (kept across
//! sessions, as a backtest over the same observations keeps it; cleared when the strategy changes) with the strategy's
//! rolling sums over it (so a run decides in O(1), see `rolling`), and the trading [`Book`] (position, cash, the order
//! waiting for its fill, the day's opening equity).
//!
//! A run whose strategy signals records the order in the same commit (`AgentRunRecorded` then `OrderPlaced` or
//! `OrderRejected`), so no crash can separate a signal from its order. While an order waits for its fill the agent
//! places no other: a tick that comes due then is recorded as `skipped` (the settle barrier, specs/06 §3).

use std::collections::VecDeque;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::book::Book;
use crate::check::{self, RiskCode};
use crate::config::{
    AgentConfig, AgentConfigPatch, RiskLimits, Strategy, StrategySpec, SMA_SLOW_MAX,
};
use crate::decide;
use crate::decider::Decider;
use crate::error::{DomainError, ValidationError};
use crate::fill::{Fill, FillModel};
use crate::id::{validate_correlation_id, validate_text, validate_uuid, MAX_OWNER_CHARS};
use crate::market::{validate_price, Observation, ObservedPrice, Side};
use crate::order::{paper_order_id, OpenOrder};
use crate::schedule::TickSchedule;
use crate::symbol::Symbol;
use crate::time::{to_millis, to_seconds};

mod rolling;
use rolling::{Rolling, Step};

/// Most prices an agent keeps. The longest look-back any strategy has is the slowest SMA
/// (`SMA_SLOW_MAX` bars) plus the previous bar a crossover compares with; keeping more would only grow
/// every snapshot, keeping less would make such an agent hold forever.
pub const MAX_PRICE_WINDOW: usize = SMA_SLOW_MAX as usize + 1;
/// Longest stop reason, in characters: a sentence for the audit trail, not a log dump.
pub const MAX_STOP_REASON_CHARS: usize = 500;
/// Version of `AgentCreated`: "2" added `risk` and `seed` (see `upcast`).
pub const AGENT_CREATED_VERSION: &str = "2";

/// Lifecycle state. A new agent is `stopped`; `archived` is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    #[default]
    Stopped,
    Running,
    Archived,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Stopped => "stopped",
            AgentState::Running => "running",
            AgentState::Archived => "archived",
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    CreateAgent {
        agent_id: String,
        owner: String,
        config: AgentConfig,
        at: DateTime<Utc>,
    },
    UpdateAgentConfig {
        patch: AgentConfigPatch,
        at: DateTime<Utc>,
    },
    /// Starts a new session at `at` truncated to whole seconds.
    StartAgent {
        at: DateTime<Utc>,
    },
    StopAgent {
        at: DateTime<Utc>,
        reason: String,
    },
    ArchiveAgent {
        at: DateTime<Utc>,
    },
    /// Records tick `tick_no` of `session`, the run due at `scheduled_at`: not before the session started and after
    /// the agent's previous run (paper: the tick's slot on the session's schedule; backtest: the bar's close time,
    /// which may have gaps and fractions of a second). A signal places its order at `completed_at`, to fill under
    /// `fill_model`.
    RecordRun {
        session: u64,
        tick_no: u64,
        scheduled_at: DateTime<Utc>,
        started_at: DateTime<Utc>,
        completed_at: DateTime<Utc>,
        observation: Observation,
        fill_model: FillModel,
        correlation_id: String,
    },
    /// Fills the open order `order_id` at `at` (the execution role), priced from the order's own event.
    FillOrder {
        order_id: String,
        at: DateTime<Utc>,
    },
}

/// What a run concluded: `"observed"` (the strategy holds), `{"signalled": {"side", "qty", "order_id"}}` (the
/// order recorded in the same commit, placed or rejected), or `{"skipped": {"order_id"}}` (an earlier order had not
/// filled yet, so the strategy was not asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RunOutcome {
    /// The observation was recorded; the strategy holds (or has not seen enough prices yet).
    Observed,
    /// The strategy asks to trade `qty` on `side`; order `order_id` follows this event in the same commit.
    Signalled {
        side: Side,
        qty: Decimal,
        order_id: String,
    },
    /// Order `order_id` was still waiting for its fill: the price is observed (the window and the mark move on)
    /// but the strategy is not asked, so the agent never has two orders in flight.
    Skipped { order_id: String },
}

impl RunOutcome {
    /// `"observed"`, `"signalled"` or `"skipped"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunOutcome::Observed => "observed",
            RunOutcome::Signalled { .. } => "signalled",
            RunOutcome::Skipped { .. } => "skipped",
        }
    }
}

/// Unknown fields in a stored payload are an error, never silently dropped (upcasters only add fields,
/// so `AgentCreated` v1 still reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum AgentEvent {
    AgentCreated {
        agent_id: String,
        owner: String,
        name: String,
        symbol: Symbol,
        strategy: StrategySpec,
        frequency_s: u32,
        risk: RiskLimits,
        starting_cash: Decimal,
        seed: u64,
        #[serde(with = "crate::time::rfc3339_millis")]
        created_at: DateTime<Utc>,
    },
    /// Carries the whole new config, field for field as `AgentCreated` does.
    AgentConfigUpdated {
        name: String,
        symbol: Symbol,
        strategy: StrategySpec,
        frequency_s: u32,
        risk: RiskLimits,
        starting_cash: Decimal,
        seed: u64,
        #[serde(with = "crate::time::rfc3339_millis")]
        updated_at: DateTime<Utc>,
    },
    AgentStarted {
        session: u64,
        #[serde(with = "crate::time::rfc3339_millis")]
        started_at: DateTime<Utc>,
        frequency_s: u32,
    },
    AgentStopped {
        session: u64,
        #[serde(with = "crate::time::rfc3339_millis")]
        stopped_at: DateTime<Utc>,
        reason: String,
    },
    AgentArchived {
        #[serde(with = "crate::time::rfc3339_millis")]
        archived_at: DateTime<Utc>,
    },
    AgentRunRecorded {
        session: u64,
        tick_no: u64,
        #[serde(with = "crate::time::rfc3339_millis")]
        scheduled_at: DateTime<Utc>,
        #[serde(with = "crate::time::rfc3339_millis")]
        started_at: DateTime<Utc>,
        #[serde(with = "crate::time::rfc3339_millis")]
        completed_at: DateTime<Utc>,
        observation: Observation,
        outcome: RunOutcome,
        correlation_id: String,
    },
    /// The order a run signalled passed every risk rule and waits for its fill, which is priced from this event
    /// alone: `observation` and `fill_model`.
    OrderPlaced {
        order_id: String,
        symbol: Symbol,
        side: Side,
        qty: Decimal,
        observation: ObservedPrice,
        fill_model: FillModel,
        #[serde(with = "crate::time::rfc3339_millis")]
        placed_at: DateTime<Utc>,
    },
    /// A risk rule refused the order a run signalled: the first failing rule's code and a sentence with its numbers
    /// (at most 200 characters). It carries what `OrderPlaced` would, so the refusal can be audited.
    OrderRejected {
        order_id: String,
        symbol: Symbol,
        side: Side,
        qty: Decimal,
        observation: ObservedPrice,
        fill_model: FillModel,
        reason_code: RiskCode,
        reason: String,
        #[serde(with = "crate::time::rfc3339_millis")]
        rejected_at: DateTime<Utc>,
    },
    /// The open order filled, whole: `price` and `fee` from its `OrderPlaced` by the fill model (specs/06 §3).
    OrderFilled {
        order_id: String,
        side: Side,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        #[serde(with = "crate::time::rfc3339_millis")]
        filled_at: DateTime<Utc>,
    },
}

impl AgentEvent {
    /// Every event type with the version current code writes (specs/04 §2); older stored versions are upcast.
    pub const VERSIONS: &'static [(&'static str, &'static str)] = &[
        ("AgentCreated", AGENT_CREATED_VERSION),
        ("AgentConfigUpdated", "1"),
        ("AgentStarted", "1"),
        ("AgentStopped", "1"),
        ("AgentArchived", "1"),
        ("AgentRunRecorded", "1"),
        ("OrderPlaced", "1"),
        ("OrderRejected", "1"),
        ("OrderFilled", "1"),
    ];

    /// The variant name (`event_type`).
    pub fn name(&self) -> &'static str {
        match self {
            AgentEvent::AgentCreated { .. } => "AgentCreated",
            AgentEvent::AgentConfigUpdated { .. } => "AgentConfigUpdated",
            AgentEvent::AgentStarted { .. } => "AgentStarted",
            AgentEvent::AgentStopped { .. } => "AgentStopped",
            AgentEvent::AgentArchived { .. } => "AgentArchived",
            AgentEvent::AgentRunRecorded { .. } => "AgentRunRecorded",
            AgentEvent::OrderPlaced { .. } => "OrderPlaced",
            AgentEvent::OrderRejected { .. } => "OrderRejected",
            AgentEvent::OrderFilled { .. } => "OrderFilled",
        }
    }

    /// The version this event is written with.
    pub fn version(&self) -> &'static str {
        match self {
            AgentEvent::AgentCreated { .. } => AGENT_CREATED_VERSION,
            _ => "1",
        }
    }

    /// The whole config an `AgentCreated` or `AgentConfigUpdated` records; `None` for other events.
    pub fn config(&self) -> Option<AgentConfig> {
        let (name, symbol, strategy, frequency_s, risk, starting_cash, seed) = match self {
            AgentEvent::AgentCreated {
                name,
                symbol,
                strategy,
                frequency_s,
                risk,
                starting_cash,
                seed,
                ..
            }
            | AgentEvent::AgentConfigUpdated {
                name,
                symbol,
                strategy,
                frequency_s,
                risk,
                starting_cash,
                seed,
                ..
            } => (
                name,
                symbol,
                strategy,
                frequency_s,
                risk,
                starting_cash,
                seed,
            ),
            _ => return None,
        };
        Some(AgentConfig {
            name: name.clone(),
            symbol: symbol.clone(),
            strategy: strategy.clone(),
            frequency_s: *frequency_s,
            risk: risk.clone(),
            starting_cash: *starting_cash,
            seed: *seed,
        })
    }
}

impl DomainEvent for AgentEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        self.version().to_owned()
    }
}

/// Why an Agent command was refused. Serializes as `{"code": "<code()>", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum AgentError {
    #[error("agent already exists (state {state})")]
    AgentAlreadyExists { state: AgentState },
    #[error("agent not found")]
    AgentNotFound,
    #[error("agent is running; stop it first")]
    AgentRunning { state: AgentState },
    #[error("agent is already running")]
    AgentAlreadyRunning { state: AgentState },
    #[error("agent is archived")]
    AgentArchived { state: AgentState },
    #[error("agent is not running in that session (state {state}, current session {session})")]
    AgentNotRunning { state: AgentState, session: u64 },
    #[error("tick {tick_no} of session {session} was already run (last run tick {last_tick_no})")]
    TickAlreadyRun {
        session: u64,
        tick_no: u64,
        last_tick_no: u64,
    },
    #[error("order {order_id} is not open (already filled, rejected, or not this agent's)")]
    OrderNotOpen { order_id: String },
    #[error("invalid {0}")]
    ValidationFailed(ValidationError),
}

impl From<ValidationError> for AgentError {
    fn from(e: ValidationError) -> Self {
        AgentError::ValidationFailed(e)
    }
}

impl DomainError for AgentError {
    fn all_codes() -> &'static [&'static str] {
        &[
            "agent_already_exists",
            "agent_not_found",
            "agent_running",
            "agent_already_running",
            "agent_archived",
            "agent_not_running",
            "tick_already_run",
            "order_not_open",
            "validation_failed",
        ]
    }

    fn code(&self) -> &'static str {
        match self {
            AgentError::AgentAlreadyExists { .. } => "agent_already_exists",
            AgentError::AgentNotFound => "agent_not_found",
            AgentError::AgentRunning { .. } => "agent_running",
            AgentError::AgentAlreadyRunning { .. } => "agent_already_running",
            AgentError::AgentArchived { .. } => "agent_archived",
            AgentError::AgentNotRunning { .. } => "agent_not_running",
            AgentError::TickAlreadyRun { .. } => "tick_already_run",
            AgentError::OrderNotOpen { .. } => "order_not_open",
            AgentError::ValidationFailed(_) => "validation_failed",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            AgentError::ValidationFailed(e) => Some(&e.field),
            _ => None,
        }
    }

    fn current_state(&self) -> Option<&'static str> {
        match self {
            AgentError::AgentAlreadyExists { state }
            | AgentError::AgentRunning { state }
            | AgentError::AgentAlreadyRunning { state }
            | AgentError::AgentArchived { state }
            | AgentError::AgentNotRunning { state, .. } => Some(state.as_str()),
            _ => None,
        }
    }
}

/// Who the agent is and what it is configured to do; absent until `AgentCreated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    agent_id: String,
    owner: String,
    config: AgentConfig,
    /// `config.strategy`, typed, so a run never parses JSON.
    strategy: Strategy,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Position, cash and the open order; opened with the starting cash at creation.
    book: Book,
    profile: Option<Profile>,
    state: AgentState,
    /// Current (running) or last session; 0 before the first start.
    session: u64,
    session_started_at: Option<DateTime<Utc>>,
    /// The frequency the current session ticks at, fixed when it started.
    session_frequency_s: u32,
    /// Last tick run in the current session; 0 before the first.
    last_tick_no: u64,
    /// `scheduled_at` of the agent's latest run (any session): runs are recorded in time order.
    last_run_at: Option<DateTime<Utc>>,
    /// The latest observed prices, oldest first, across sessions (a stop does not forget the market, and a
    /// backtest over the same observations sees one unbroken series); cleared when the strategy changes.
    /// At most `strategy.required_window()` (≤ [`MAX_PRICE_WINDOW`]) of them.
    window: VecDeque<Decimal>,
    /// The strategy's rolling sums over `window` and its latest comparison, so a run decides in O(1) exactly as
    /// [`decide::signal`] over the window would; reset with the window.
    rolling: Rolling,
}

impl Agent {
    pub fn exists(&self) -> bool {
        self.profile.is_some()
    }
    pub fn agent_id(&self) -> Option<&str> {
        self.profile.as_ref().map(|p| p.agent_id.as_str())
    }
    pub fn owner(&self) -> Option<&str> {
        self.profile.as_ref().map(|p| p.owner.as_str())
    }
    pub fn config(&self) -> Option<&AgentConfig> {
        self.profile.as_ref().map(|p| &p.config)
    }
    pub fn strategy(&self) -> Option<&Strategy> {
        self.profile.as_ref().map(|p| &p.strategy)
    }
    pub fn state(&self) -> AgentState {
        self.state
    }
    pub fn session(&self) -> u64 {
        self.session
    }
    pub fn session_started_at(&self) -> Option<DateTime<Utc>> {
        self.session_started_at
    }
    pub fn last_tick_no(&self) -> u64 {
        self.last_tick_no
    }
    pub fn window(&self) -> &VecDeque<Decimal> {
        &self.window
    }
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// The schedule of the current (or, once stopped, the last) session; `None` before the first start.
    pub fn schedule(&self) -> Option<TickSchedule> {
        Some(TickSchedule::new(
            self.session_started_at?,
            self.session_frequency_s,
        ))
    }

    /// When tick `tick_no` (1-based) of the current (or last) session is due ([`TickSchedule::due_at`]). `None`
    /// before the first start, for tick 0, or past the representable range.
    pub fn tick_scheduled_at(&self, tick_no: u64) -> Option<DateTime<Utc>> {
        self.schedule()?.due_at(tick_no)
    }

    fn profile(&self) -> Result<&Profile, AgentError> {
        self.profile.as_ref().ok_or(AgentError::AgentNotFound)
    }

    /// Refuses commands that need a stopped agent (update, start, archive).
    fn require_stopped(
        &self,
        running: impl FnOnce(AgentState) -> AgentError,
    ) -> Result<(), AgentError> {
        match self.state {
            AgentState::Stopped => Ok(()),
            AgentState::Running => Err(running(self.state)),
            AgentState::Archived => Err(AgentError::AgentArchived { state: self.state }),
        }
    }

    fn create(
        &self,
        agent_id: String,
        owner: String,
        config: AgentConfig,
        at: DateTime<Utc>,
    ) -> Result<AgentEvent, AgentError> {
        if self.exists() {
            return Err(AgentError::AgentAlreadyExists { state: self.state });
        }
        validate_uuid("agent_id", &agent_id)?;
        validate_text("owner", &owner, MAX_OWNER_CHARS)?;
        let (config, _) = config.normalized()?;
        Ok(AgentEvent::AgentCreated {
            agent_id,
            owner,
            name: config.name,
            symbol: config.symbol,
            strategy: config.strategy,
            frequency_s: config.frequency_s,
            risk: config.risk,
            starting_cash: config.starting_cash,
            seed: config.seed,
            created_at: to_millis(at),
        })
    }

    fn update_config(
        &self,
        patch: &AgentConfigPatch,
        at: DateTime<Utc>,
    ) -> Result<AgentEvent, AgentError> {
        let profile = self.profile()?;
        self.require_stopped(|state| AgentError::AgentRunning { state })?;
        patch.validate()?;
        let (config, _) = patch.apply_to(&profile.config).normalized()?;
        if self.session > 0 {
            // Positions and PnL are kept per agent, in one symbol, from the starting cash: changing either
            // after the agent has traded would silently rewrite its history.
            if config.symbol != profile.config.symbol {
                return Err(ValidationError::new(
                    "symbol",
                    "cannot change once the agent has been started",
                )
                .into());
            }
            if config.starting_cash != profile.config.starting_cash {
                return Err(ValidationError::new(
                    "starting_cash",
                    "cannot change once the agent has been started",
                )
                .into());
            }
        }
        Ok(AgentEvent::AgentConfigUpdated {
            name: config.name,
            symbol: config.symbol,
            strategy: config.strategy,
            frequency_s: config.frequency_s,
            risk: config.risk,
            starting_cash: config.starting_cash,
            seed: config.seed,
            updated_at: to_millis(at),
        })
    }

    fn start(&self, at: DateTime<Utc>) -> Result<AgentEvent, AgentError> {
        let profile = self.profile()?;
        self.require_stopped(|state| AgentError::AgentAlreadyRunning { state })?;
        Ok(AgentEvent::AgentStarted {
            session: self.session + 1,
            // The API truncates too; doing it here as well keeps every tick time exact whoever calls.
            started_at: to_seconds(at),
            frequency_s: profile.config.frequency_s,
        })
    }

    fn stop(&self, at: DateTime<Utc>, reason: String) -> Result<AgentEvent, AgentError> {
        self.profile()?;
        match self.state {
            AgentState::Running => {}
            AgentState::Stopped => {
                return Err(AgentError::AgentNotRunning {
                    state: self.state,
                    session: self.session,
                })
            }
            AgentState::Archived => return Err(AgentError::AgentArchived { state: self.state }),
        }
        validate_text("reason", &reason, MAX_STOP_REASON_CHARS)?;
        Ok(AgentEvent::AgentStopped {
            session: self.session,
            stopped_at: to_millis(at),
            reason,
        })
    }

    fn archive(&self, at: DateTime<Utc>) -> Result<AgentEvent, AgentError> {
        self.profile()?;
        self.require_stopped(|state| AgentError::AgentRunning { state })?;
        Ok(AgentEvent::AgentArchived {
            archived_at: to_millis(at),
        })
    }

    #[allow(clippy::too_many_arguments)] // the fields of one command, destructured once
    fn record_run(
        &self,
        session: u64,
        tick_no: u64,
        scheduled_at: DateTime<Utc>,
        started_at: DateTime<Utc>,
        completed_at: DateTime<Utc>,
        observation: Observation,
        fill_model: FillModel,
        correlation_id: String,
        events: &mut Vec<AgentEvent>,
    ) -> Result<Option<Step>, AgentError> {
        let profile = self.profile()?;
        if self.state != AgentState::Running || session != self.session {
            return Err(AgentError::AgentNotRunning {
                state: self.state,
                session: self.session,
            });
        }
        if tick_no == 0 {
            return Err(ValidationError::new("tick_no", "ticks are numbered from 1").into());
        }
        if tick_no <= self.last_tick_no {
            return Err(AgentError::TickAlreadyRun {
                session,
                tick_no,
                last_tick_no: self.last_tick_no,
            });
        }
        self.validate_run(
            profile,
            scheduled_at,
            started_at,
            completed_at,
            &observation,
        )?;
        validate_correlation_id(&correlation_id)?;
        fill_model.validate()?;
        let observation = Observation {
            observed_at: to_millis(observation.observed_at),
            ..observation
        };
        let completed_at = to_millis(completed_at);
        let mut step = None;
        let (outcome, ticket) = match self.book.open_order() {
            Some(open) => (
                RunOutcome::Skipped {
                    order_id: open.order_id.clone(),
                },
                None,
            ),
            None => match self.signal(profile, observation.price, &mut step) {
                None => (RunOutcome::Observed, None),
                Some((side, qty)) => {
                    let order = Ticket {
                        order_id: paper_order_id(&profile.agent_id, session, tick_no),
                        side,
                        qty,
                        observation: observation.observed_price(),
                        fill_model,
                    };
                    let outcome = RunOutcome::Signalled {
                        side,
                        qty,
                        order_id: order.order_id.clone(),
                    };
                    (outcome, Some(order))
                }
            },
        };
        // Each event is written straight into `events` (an event is 240 bytes: a temporary would be copied again).
        let first = events.len();
        events.push(AgentEvent::AgentRunRecorded {
            session,
            tick_no,
            scheduled_at: to_millis(scheduled_at),
            started_at: to_millis(started_at),
            completed_at,
            observation,
            outcome,
            correlation_id,
        });
        if let Some(order) = ticket {
            match self.decide_order(profile, order, scheduled_at, completed_at) {
                Ok(order) => events.push(order),
                Err(e) => {
                    events.truncate(first);
                    return Err(e);
                }
            }
        }
        Ok(step)
    }

    /// `OrderPlaced`, or `OrderRejected` with the first failing risk rule, for `order` signalled on the run at
    /// `scheduled_at`: priced as it would fill, checked against the book as that run leaves it.
    fn decide_order(
        &self,
        profile: &Profile,
        order: Ticket,
        scheduled_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<AgentEvent, AgentError> {
        let quote = crate::fill::market_order(
            &order.fill_model,
            order.side,
            order.qty,
            order.observation.price,
        )
        .map_err(|_| {
            ValidationError::new("observation.price", "order value is beyond decimal range")
        })?;
        let context = self
            .book
            .risk_context(scheduled_at, order.observation.price);
        let Ticket {
            order_id,
            side,
            qty,
            observation,
            fill_model,
        } = order;
        let symbol = profile.config.symbol.clone();
        Ok(match check::risk(&profile.config.risk, &context, &quote) {
            Ok(()) => AgentEvent::OrderPlaced {
                order_id,
                symbol,
                side,
                qty,
                observation,
                fill_model,
                placed_at: at,
            },
            Err(violation) => AgentEvent::OrderRejected {
                order_id,
                symbol,
                side,
                qty,
                observation,
                fill_model,
                reason_code: violation.code,
                reason: violation.reason,
                rejected_at: at,
            },
        })
    }

    /// Fills the open order `order_id`: its own fill model over its own observation, settled into the book.
    fn fill_order(&self, order_id: String, at: DateTime<Utc>) -> Result<AgentEvent, AgentError> {
        self.profile()?;
        let open = self
            .book
            .open_order()
            .filter(|open| open.order_id == order_id)
            .ok_or(AgentError::OrderNotOpen { order_id })?;
        let fill = open
            .quote()
            .map_err(|_| ValidationError::new("order_id", "fill value is beyond decimal range"))?;
        // Placing checked this fill against the same book, so only a hand-made store gets here.
        self.book
            .settled(&fill)
            .map_err(|e| ValidationError::new("order_id", format!("fill does not settle: {e}")))?;
        Ok(AgentEvent::OrderFilled {
            order_id: open.order_id.clone(),
            side: fill.side,
            qty: fill.qty,
            price: fill.price,
            fee: fill.fee,
            // A fill is never before its order, whatever the filling process's clock says.
            filled_at: to_millis(at).max(open.placed_at),
        })
    }

    fn validate_run(
        &self,
        profile: &Profile,
        scheduled_at: DateTime<Utc>,
        started_at: DateTime<Utc>,
        completed_at: DateTime<Utc>,
        observation: &Observation,
    ) -> Result<(), ValidationError> {
        let fmt = |t: &DateTime<Utc>| crate::time::format_millis(t);
        if let Some(session_start) = self.session_started_at.filter(|s| scheduled_at < *s) {
            return Err(ValidationError::new(
                "scheduled_at",
                format!(
                    "{} is before session {} started at {}",
                    fmt(&scheduled_at),
                    self.session,
                    fmt(&session_start)
                ),
            ));
        }
        if let Some(last) = self
            .last_run_at
            .filter(|last| to_millis(scheduled_at) <= *last)
        {
            return Err(ValidationError::new(
                "scheduled_at",
                format!(
                    "{} is not after the previous run's {}; runs are recorded in time order",
                    fmt(&scheduled_at),
                    fmt(&last)
                ),
            ));
        }
        if completed_at < started_at {
            return Err(ValidationError::new(
                "completed_at",
                "must not be before started_at",
            ));
        }
        if observation.symbol != profile.config.symbol {
            return Err(ValidationError::new(
                "observation.symbol",
                format!(
                    "agent trades {}, not {}",
                    profile.config.symbol, observation.symbol
                ),
            ));
        }
        validate_price(observation.price).map_err(|e| e.within("observation"))
    }

    /// Runs the strategy over the window plus the new price: the side and qty it asks to trade, if any. From the
    /// rolling state in O(1); from [`decide::signal`] over the window when that cannot be shown exact (prices near
    /// `Decimal`'s limits, see `rolling`), which gives the same answer by definition.
    /// `step` receives what the rolling state computed, for recording this price without computing it again.
    fn signal(
        &self,
        profile: &Profile,
        price: Decimal,
        step: &mut Option<Step>,
    ) -> Option<(Side, Decimal)> {
        let needed = profile.strategy.required_window();
        let (Some(qty), true) = (profile.strategy.qty(), needed > 0) else {
            return None;
        };
        let signal = match self.rolling.signal(&profile.strategy, &self.window, price) {
            Some((signal, computed)) => {
                *step = computed;
                signal
            }
            None => decide::signal(&profile.strategy, &self.prices_with(price, needed)),
        };
        signal.side().map(|side| (side, qty))
    }

    /// The latest `needed − 1` prices of the window followed by `price`: what [`decide::signal`] looks at.
    fn prices_with(&self, price: Decimal, needed: usize) -> Vec<Decimal> {
        let keep = self.window.len().min(needed.saturating_sub(1));
        let mut prices: Vec<Decimal> = Vec::with_capacity(keep + 1);
        prices.extend(self.window.iter().skip(self.window.len() - keep));
        prices.push(price);
        prices
    }

    fn apply_config(&mut self, config: AgentConfig) {
        let Some(profile) = self.profile.as_mut() else {
            debug_assert!(false, "config for an agent that was never created");
            return;
        };
        let strategy = resolve_recorded(&config.strategy);
        if strategy != profile.strategy {
            // Prices kept for another strategy would make the new one signal on bars it never watched.
            self.window.clear();
            self.rolling = Rolling::default();
        }
        profile.strategy = strategy;
        profile.config = config;
    }

    fn apply_run(
        &mut self,
        session: u64,
        tick_no: u64,
        scheduled_at: DateTime<Utc>,
        price: Decimal,
        step: Option<Step>,
    ) {
        debug_assert_eq!(
            self.state,
            AgentState::Running,
            "runs only happen while running"
        );
        debug_assert_eq!(
            session, self.session,
            "a run belongs to the current session"
        );
        debug_assert!(
            tick_no > self.last_tick_no,
            "tick numbers increase within a session"
        );
        self.last_tick_no = tick_no;
        self.last_run_at = Some(scheduled_at);
        self.book.record_run(scheduled_at, price);
        let Some(strategy) = self.profile.as_ref().map(|p| &p.strategy) else {
            return;
        };
        let keep = strategy.required_window().min(MAX_PRICE_WINDOW);
        if keep == 0 {
            self.window.clear();
            self.rolling = Rolling::default();
            return;
        }
        self.rolling
            .record(strategy, &mut self.window, price, step, |window| {
                while window.len() >= keep {
                    window.pop_front();
                }
                window.push_back(price);
            });
    }
}

/// The typed strategy of a recorded (hence once validated) spec.
fn resolve_recorded(spec: &StrategySpec) -> Strategy {
    let strategy = spec.resolve();
    debug_assert!(
        strategy.is_ok(),
        "recorded strategy must be valid: {strategy:?}"
    );
    // A recorded strategy that no longer validates can only come from a hand-edited event store;
    // holding is the one choice that cannot trade on it.
    strategy.unwrap_or_default()
}

/// An order as a run decides it, before risk.
struct Ticket {
    order_id: String,
    side: Side,
    qty: Decimal,
    observation: ObservedPrice,
    fill_model: FillModel,
}

impl Decider for Agent {
    const TYPE: &'static str = "Agent";
    /// 2: the book (position, cash, open order, day) joined the state. 3: `last_run_at` and the strategy's rolling
    /// sums (`rolling`). 4: the book's day is a day number, not a date.
    const STATE_VERSION: u32 = 4;
    type Command = AgentCommand;
    type Event = AgentEvent;
    type Error = AgentError;

    fn decide(&self, command: AgentCommand) -> Result<Vec<AgentEvent>, AgentError> {
        let mut events = Vec::with_capacity(2);
        self.decided(command, &mut events)?;
        Ok(events)
    }

    /// Decides and applies as `decide` then `evolve` would, except that a run's strategy sums and comparison,
    /// computed once to decide it, are handed to applying its `AgentRunRecorded` instead of being computed again.
    fn execute_into(
        &mut self,
        command: AgentCommand,
        events: &mut Vec<AgentEvent>,
    ) -> Result<(), AgentError> {
        let first = events.len();
        let mut step = self.decided(command, events)?;
        for event in &events[first..] {
            self.apply_event(event, step.take());
        }
        Ok(())
    }

    fn evolve(&mut self, event: &AgentEvent) {
        self.apply_event(event, None);
    }
}

impl Agent {
    /// Appends the events `command` decides to `events` (nothing on an error); the strategy's [`Step`] when a run
    /// computed one (see [`Decider::execute`]).
    fn decided(
        &self,
        command: AgentCommand,
        events: &mut Vec<AgentEvent>,
    ) -> Result<Option<Step>, AgentError> {
        let event = match command {
            AgentCommand::RecordRun {
                session,
                tick_no,
                scheduled_at,
                started_at,
                completed_at,
                observation,
                fill_model,
                correlation_id,
            } => {
                return self.record_run(
                    session,
                    tick_no,
                    scheduled_at,
                    started_at,
                    completed_at,
                    observation,
                    fill_model,
                    correlation_id,
                    events,
                )
            }
            AgentCommand::FillOrder { order_id, at } => self.fill_order(order_id, at)?,
            AgentCommand::CreateAgent {
                agent_id,
                owner,
                config,
                at,
            } => self.create(agent_id, owner, config, at)?,
            AgentCommand::UpdateAgentConfig { patch, at } => self.update_config(&patch, at)?,
            AgentCommand::StartAgent { at } => self.start(at)?,
            AgentCommand::StopAgent { at, reason } => self.stop(at, reason)?,
            AgentCommand::ArchiveAgent { at } => self.archive(at)?,
        };
        events.push(event);
        Ok(None)
    }

    /// `event` applied; `step` is the [`Step`] deciding it computed, for its `AgentRunRecorded`.
    fn apply_event(&mut self, event: &AgentEvent, step: Option<Step>) {
        match event {
            AgentEvent::AgentCreated {
                agent_id, owner, ..
            } => {
                debug_assert!(self.profile.is_none(), "an agent is created once");
                let Some(config) = event.config() else {
                    return;
                };
                self.book = Book::opening(config.starting_cash);
                self.profile = Some(Profile {
                    agent_id: agent_id.clone(),
                    owner: owner.clone(),
                    strategy: resolve_recorded(&config.strategy),
                    config,
                });
                self.state = AgentState::Stopped;
            }
            AgentEvent::AgentConfigUpdated { .. } => {
                debug_assert_eq!(
                    self.state,
                    AgentState::Stopped,
                    "config changes only while stopped"
                );
                if let Some(config) = event.config() {
                    if self.session == 0 {
                        // Never started, so never traded: the book opens with the (maybe new) starting cash.
                        self.book = Book::opening(config.starting_cash);
                    }
                    self.apply_config(config);
                }
            }
            AgentEvent::AgentStarted {
                session,
                started_at,
                frequency_s,
            } => {
                debug_assert_eq!(
                    self.state,
                    AgentState::Stopped,
                    "only a stopped agent starts"
                );
                debug_assert_eq!(
                    *session,
                    self.session + 1,
                    "sessions are numbered 1, 2, 3, …"
                );
                self.state = AgentState::Running;
                self.session = *session;
                self.session_started_at = Some(*started_at);
                self.session_frequency_s = *frequency_s;
                self.last_tick_no = 0;
            }
            AgentEvent::AgentStopped { session, .. } => {
                debug_assert_eq!(
                    self.state,
                    AgentState::Running,
                    "only a running agent stops"
                );
                debug_assert_eq!(*session, self.session, "the current session stops");
                self.state = AgentState::Stopped;
            }
            AgentEvent::AgentArchived { .. } => {
                debug_assert_eq!(
                    self.state,
                    AgentState::Stopped,
                    "only a stopped agent is archived"
                );
                self.state = AgentState::Archived;
            }
            AgentEvent::AgentRunRecorded {
                session,
                tick_no,
                scheduled_at,
                observation,
                ..
            } => self.apply_run(*session, *tick_no, *scheduled_at, observation.price, step),
            AgentEvent::OrderPlaced {
                order_id,
                side,
                qty,
                observation,
                fill_model,
                placed_at,
                ..
            } => self.book.place(OpenOrder {
                order_id: order_id.clone(),
                side: *side,
                qty: *qty,
                observation: observation.clone(),
                fill_model: fill_model.clone(),
                placed_at: *placed_at,
            }),
            AgentEvent::OrderRejected { .. } => {}
            AgentEvent::OrderFilled {
                side,
                qty,
                price,
                fee,
                ..
            } => self.book.fill(&Fill {
                side: *side,
                qty: *qty,
                price: *price,
                fee: *fee,
            }),
        }
    }
}

crate::cqrs_aggregate!(Agent);

#[cfg(test)]
mod tests;
