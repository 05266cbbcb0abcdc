//! The rows of projector `agents` (tables `agents` and `agent_runs`, specs/02 §3; the trading rows are in
//! [`crate::ledger`]) and the in-memory read model
//! that holds them. A row is the whole fold state of its key: the Postgres projector loads a row, applies events
//! and writes it back, so nothing may live outside the row.
//!
//! Rows serialize losslessly (timestamps with every digit they have, decimals with their scale): that form is the
//! canonical dump that live tables, rebuilds and golden files are compared in ([`AgentRow::dump_line`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strom_commands::log::{jsonb_text, LogPosition};
use strom_domain::{AgentState, Side};

use crate::ledger::{Book, OrderRow, PnlRow, PositionRow, TradeRow};

/// One agent, as table `agents` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRow {
    /// The aggregate id.
    pub agent_id: String,
    /// JWT `sub` of the creator.
    pub owner: String,
    pub name: String,
    pub symbol: String,
    /// `{"kind": …, "params": {…}}` as recorded.
    pub strategy: Value,
    pub frequency_s: u32,
    /// `{"max_position_qty", "max_order_qty", "max_notional", "max_daily_loss"}` (the last may be null).
    pub risk: Value,
    pub starting_cash: Decimal,
    pub seed: u64,
    pub status: AgentState,
    /// Current (running) or last session; 0 before the first start.
    pub session: u64,
    /// Start of the last session.
    pub started_at: Option<DateTime<Utc>>,
    /// Last stop (kept after a restart).
    pub stopped_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    /// Last tick run in the current session; `None` until its first run.
    pub last_tick_no: Option<u64>,
    /// `completed_at` of the latest run of any session.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Observed price of the latest run of any session.
    pub last_price: Option<Decimal>,
    /// While running: when the tick after the last run is due (`started_at + last_tick_no × frequency_s`, tick 1
    /// at `started_at`); `None` when not running.
    pub next_tick_at: Option<DateTime<Utc>>,
    /// Runs of all sessions.
    pub runs_count: u64,
    pub created_at: DateTime<Utc>,
    /// The time field of the last applied event.
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last applied event.
    pub version: u64,
}

/// `agent_runs.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcomeKind {
    /// The run recorded its observation; the strategy held.
    Observed,
    /// The strategy signalled an order (`order_id`), placed or rejected in the same commit.
    Signalled,
    /// An earlier order (`order_id`) was still waiting for its fill, so the strategy was not asked.
    Skipped,
}

impl RunOutcomeKind {
    /// The column text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observed => "observed",
            Self::Signalled => "signalled",
            Self::Skipped => "skipped",
        }
    }

    /// Parses the column text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "observed" => Some(Self::Observed),
            "signalled" => Some(Self::Signalled),
            "skipped" => Some(Self::Skipped),
            _ => None,
        }
    }
}

/// One run, as table `agent_runs` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRow {
    pub agent_id: String,
    pub session: u64,
    pub tick_no: u64,
    pub scheduled_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// Observation symbol.
    pub symbol: String,
    /// Observed price.
    pub price: Decimal,
    pub observed_at: DateTime<Utc>,
    pub outcome: RunOutcomeKind,
    pub signal_side: Option<Side>,
    pub signal_qty: Option<Decimal>,
    /// The order placed for the signal.
    pub order_id: Option<String>,
    pub correlation_id: String,
    /// Global-log position of the `AgentRunRecorded` event.
    pub global_position: i64,
}

/// A run's place among its agent's runs: (session, tick_no). With `agent_id` before it, the primary key of
/// `agent_runs`.
pub type RunKey = (u64, u64);

impl RunRow {
    /// Its place among its agent's runs.
    pub fn key(&self) -> RunKey {
        (self.session, self.tick_no)
    }
}

/// Serializes `row` in the canonical dump form: Postgres's jsonb text (keys by length then bytes), lossless.
pub(crate) fn dump_line<T: Serialize>(row: &T) -> String {
    // A row holds only strings, numbers, bools, nulls and JSON values, so serializing it cannot fail.
    let value = serde_json::to_value(row).unwrap_or(Value::Null);
    jsonb_text(&value)
}

impl AgentRow {
    /// The canonical dump line of this row (one line, no newline).
    pub fn dump_line(&self) -> String {
        dump_line(self)
    }
}

impl RunRow {
    /// The canonical dump line of this row (one line, no newline).
    pub fn dump_line(&self) -> String {
        dump_line(self)
    }
}

/// The read model of projector `agents` in memory, with the log position it reflects.
///
/// Iteration is by primary key (`BTreeMap`), so dumps and listings are deterministic. `by_created` indexes agents
/// newest first for paging (created_at never changes after creation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentsModel {
    /// By agent_id.
    pub agents: BTreeMap<String, AgentRow>,
    /// By agent_id, then by (session, tick_no): primary-key order. Per agent rather than one map keyed by the whole
    /// key, so adding a run compares two integers within its agent's runs instead of agent-id strings across every
    /// run so far (those comparisons and the node shifts were most of a million-run rebuild's time).
    pub runs: BTreeMap<String, BTreeMap<RunKey, RunRow>>,
    /// (created_at, agent_id) of every agent.
    pub(crate) by_created: BTreeSet<(DateTime<Utc>, String)>,
    /// Table `positions`, by agent_id.
    pub positions: BTreeMap<String, PositionRow>,
    /// Table `orders`, by agent_id then (created_at, order_id): the listing's order, newest last.
    pub orders: BTreeMap<String, BTreeMap<(DateTime<Utc>, String), OrderRow>>,
    /// Where each order is in `orders`: order_id → (agent_id, created_at).
    pub(crate) order_index: BTreeMap<String, (String, DateTime<Utc>)>,
    /// Table `trades`, by agent_id then (filled_at, trade_id): the listing's order.
    pub trades: BTreeMap<String, BTreeMap<(DateTime<Utc>, String), TradeRow>>,
    /// Table `pnl_points`, by agent_id then (session, tick_no).
    pub pnl_points: BTreeMap<String, BTreeMap<RunKey, PnlRow>>,
    /// The last log position folded in.
    pub checkpoint: LogPosition,
}

impl AgentsModel {
    /// An empty model at the start of the log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces an agent row.
    pub fn put_agent(&mut self, row: AgentRow) {
        if let Some(old) = self.agents.get(&row.agent_id) {
            self.by_created
                .remove(&(old.created_at, old.agent_id.clone()));
        }
        self.by_created
            .insert((row.created_at, row.agent_id.clone()));
        self.agents.insert(row.agent_id.clone(), row);
    }

    /// Inserts a run row (replacing one with the same key).
    pub fn put_run(&mut self, row: RunRow) {
        let key = row.key();
        match self.runs.get_mut(&row.agent_id) {
            Some(agent_runs) => {
                agent_runs.insert(key, row);
            }
            None => {
                self.runs
                    .insert(row.agent_id.clone(), BTreeMap::from([(key, row)]));
            }
        }
    }

    /// Inserts or replaces an order row (a fill replaces its placed row; `created_at` never changes).
    pub fn put_order(&mut self, row: OrderRow) {
        if let Some((agent_id, created_at)) = self.order_index.get(&row.order_id) {
            if let Some(orders) = self.orders.get_mut(agent_id) {
                orders.remove(&(*created_at, row.order_id.clone()));
            }
        }
        self.order_index
            .insert(row.order_id.clone(), (row.agent_id.clone(), row.created_at));
        self.orders
            .entry(row.agent_id.clone())
            .or_default()
            .insert((row.created_at, row.order_id.clone()), row);
    }

    /// One order by id.
    pub fn order(&self, order_id: &str) -> Option<&OrderRow> {
        let (agent_id, created_at) = self.order_index.get(order_id)?;
        self.orders
            .get(agent_id)?
            .get(&(*created_at, order_id.to_owned()))
    }

    /// Inserts a trade row.
    pub fn put_trade(&mut self, row: TradeRow) {
        self.trades
            .entry(row.agent_id.clone())
            .or_default()
            .insert((row.filled_at, row.trade_id.clone()), row);
    }

    /// Inserts a PnL point.
    pub fn put_pnl(&mut self, row: PnlRow) {
        self.pnl_points
            .entry(row.agent_id.clone())
            .or_default()
            .insert(
                (
                    u64::try_from(row.session).unwrap_or(0),
                    u64::try_from(row.tick_no).unwrap_or(0),
                ),
                row,
            );
    }

    /// The agent's book (its position and open order), as the fold continues from it.
    pub fn book(&self, agent_id: &str) -> Option<Book> {
        let position = self.positions.get(agent_id)?.clone();
        // An agent places an order only when none is open (the settle barrier), so an open order is its newest.
        let open_order = self
            .orders
            .get(agent_id)
            .and_then(|orders| orders.values().next_back())
            .filter(|o| o.status == "accepted")
            .cloned();
        Some(Book::new(position, open_order))
    }

    /// Every run, in primary-key order.
    pub fn all_runs(&self) -> impl Iterator<Item = &RunRow> {
        self.runs.values().flat_map(BTreeMap::values)
    }

    /// How many runs there are.
    pub fn run_count(&self) -> usize {
        self.runs.values().map(BTreeMap::len).sum()
    }

    /// The canonical dump of the projector's tables.
    pub fn dump(&self) -> TableDump {
        let mut orders: Vec<&OrderRow> = self.orders.values().flat_map(BTreeMap::values).collect();
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        let mut trades: Vec<&TradeRow> = self.trades.values().flat_map(BTreeMap::values).collect();
        trades.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
        TableDump {
            agents: self.agents.values().map(AgentRow::dump_line).collect(),
            agent_runs: self.all_runs().map(RunRow::dump_line).collect(),
            orders: orders.into_iter().map(dump_line).collect(),
            trades: trades.into_iter().map(dump_line).collect(),
            positions: self.positions.values().map(dump_line).collect(),
            pnl_points: self
                .pnl_points
                .values()
                .flat_map(BTreeMap::values)
                .map(dump_line)
                .collect(),
        }
    }
}

/// The canonical dump of the tables of projector `agents`: per table, one line per row in primary-key order.
/// Two read models are equal exactly when their dumps are byte-equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDump {
    /// `agents`, ordered by agent_id.
    pub agents: Vec<String>,
    /// `agent_runs`, ordered by (agent_id, session, tick_no).
    pub agent_runs: Vec<String>,
    /// `orders`, ordered by order_id.
    pub orders: Vec<String>,
    /// `trades`, ordered by trade_id.
    pub trades: Vec<String>,
    /// `positions`, ordered by agent_id.
    pub positions: Vec<String>,
    /// `pnl_points`, ordered by (agent_id, session, tick_no).
    pub pnl_points: Vec<String>,
}

/// The tables of projector `agents`, in dump order.
pub const AGENTS_TABLES: [&str; 6] = [
    "agents",
    "agent_runs",
    "orders",
    "trades",
    "positions",
    "pnl_points",
];

impl TableDump {
    /// The lines of `table` (one of [`AGENTS_TABLES`]; empty for any other name).
    pub fn table(&self, table: &str) -> &[String] {
        match table {
            "agents" => &self.agents,
            "agent_runs" => &self.agent_runs,
            "orders" => &self.orders,
            "trades" => &self.trades,
            "positions" => &self.positions,
            "pnl_points" => &self.pnl_points,
            _ => &[],
        }
    }

    /// The lines of `table`, to fill (one of [`AGENTS_TABLES`]).
    pub fn table_mut(&mut self, table: &str) -> Option<&mut Vec<String>> {
        Some(match table {
            "agents" => &mut self.agents,
            "agent_runs" => &mut self.agent_runs,
            "orders" => &mut self.orders,
            "trades" => &mut self.trades,
            "positions" => &mut self.positions,
            "pnl_points" => &mut self.pnl_points,
            _ => return None,
        })
    }
}
