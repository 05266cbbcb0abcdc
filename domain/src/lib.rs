//! STROM's pure core: aggregates (Agent, Backtest), their commands and events, value types and the
//! deterministic trading functions. Nothing here does I/O, reads a clock or draws unseeded randomness:
//! time, ids and observations arrive as inputs, so a backtest and a live run differ only in what feeds it.
//!
//! State modules are nouns (`agent` with its `order`s and `book`, `backtest`, `config`, `market`, `symbol`); the pure trading
//! functions live in modules named for what they do: `decide` (strategy signals), `check` (risk), `fill`
//! (the fill model) and `settle` (positions and PnL). `decider` is the kernel contract every aggregate implements
//! (`decide`/`evolve`), `event` the log's typed event; `schedule` the one tick-schedule formula;
//! `metrics` a run's trader metrics (returns, Sharpe, drawdown, trade statistics); `decimal` the exact same-scale
//! `Decimal` comparison the per-bar paths use. `codec` (with
//! `upcast`) is the JSON edge of the event log and `canonical` its hash chain.

pub mod agent;
pub mod backtest;
pub mod book;
pub mod canonical;
pub mod check;
pub mod codec;
pub mod config;
pub mod decide;
pub mod decider;
pub mod decimal;
pub mod error;
pub mod event;
pub mod fill;
pub mod id;
pub mod market;
pub mod metrics;
pub mod order;
pub mod schedule;
pub mod settle;
pub mod symbol;
pub mod time;
pub mod upcast;

pub use agent::{Agent, AgentCommand, AgentError, AgentEvent, AgentState, RunOutcome};
pub use backtest::{
    Backtest, BacktestCommand, BacktestError, BacktestEvent, BacktestSource, BacktestState,
    BacktestSummary,
};
pub use book::Book;
pub use check::{RiskCode, RiskContext};
pub use codec::{DecodeError, EventMetadata};
pub use config::{
    AgentConfig, AgentConfigPatch, NewAgent, RiskLimits, Strategy, StrategyKind, StrategySpec,
};
pub use decider::Decider;
pub use error::{DomainError, ErrorKind, ValidationError};
pub use event::{Logged, StromEvent};
pub use fill::FillModel;
pub use market::{Observation, ObservedPrice, Side};
pub use order::{OpenOrder, OrderStatus};
pub use schedule::TickSchedule;
pub use symbol::Symbol;
