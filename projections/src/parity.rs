//! The parity rule (specs/06 §1): "equal" or the first differing element between a paper agent's trading record and a
//! backtest's ([`crate::record`], both folded by the same trading fold over typed Agent events), and the check of one
//! paper agent against a backtest of its own observations. Ids, session/tick numbering and wall-clock times are left
//! out of the comparison, nothing else.

use std::fmt;

use serde::Serialize;
use strom_domain::{AgentConfig, AgentEvent, FillModel};

use crate::ledger::{OrderRow, PnlRow, TradeRow};
use crate::record::{observations, PositionAfterFill, TradingRecord};

/// What [`check_agent`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParityReport {
    pub agent_id: String,
    /// The observations backtested (the agent's runs).
    pub observations: usize,
    /// The config and fill model the backtest ran with (the agent's, from its events).
    pub config: AgentConfig,
    pub fill_model: FillModel,
    #[serde(flatten)]
    pub parity: Parity,
}

/// Why [`check_agent`] could not compare.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParityError {
    #[error("agent {0} has no events")]
    NotFound(String),
    #[error("agent {0} has no runs yet: nothing to compare")]
    NoRuns(String),
    #[error("the agent's events do not fold: {0}")]
    Fold(String),
    #[error("the backtest failed: {0}")]
    Backtest(String),
}

/// The parity rule checked for one paper agent (specs/06 §1): its trading record from its own events, against a
/// backtest of its config and fill model over its observations.
///
/// # Errors
/// No events or runs, a stream that does not fold, or a backtest that fails.
pub fn check_agent(agent_id: &str, events: &[AgentEvent]) -> Result<ParityReport, ParityError> {
    if events.is_empty() {
        return Err(ParityError::NotFound(agent_id.to_owned()));
    }
    let paper =
        TradingRecord::of_stream(agent_id, events).map_err(|e| ParityError::Fold(e.to_string()))?;
    let observed = observations(events);
    // The config the runs were recorded under: the latest one before the first run (a later change voids parity).
    let config = events
        .iter()
        .take_while(|e| !matches!(e, AgentEvent::AgentRunRecorded { .. }))
        .filter_map(AgentEvent::config)
        .last()
        .ok_or_else(|| ParityError::NotFound(agent_id.to_owned()))?;
    if observed.is_empty() {
        return Err(ParityError::NoRuns(agent_id.to_owned()));
    }
    let fill_model = paper.fill_models.first().cloned().unwrap_or_default();
    let (owner, backtest_id) = (
        events.iter().find_map(|e| match e {
            AgentEvent::AgentCreated { owner, .. } => Some(owner.clone()),
            _ => None,
        }),
        uuid::Uuid::new_v4().to_string(),
    );
    let setup = crate::backtest::BacktestSetup {
        backtest_id,
        owner: owner.unwrap_or_default(),
        config: config.clone(),
        fill_model: fill_model.clone(),
    };
    let backtest = crate::backtest::run(setup, observed.iter().copied())
        .map_err(|e| ParityError::Backtest(e.to_string()))?;
    Ok(ParityReport {
        agent_id: agent_id.to_owned(),
        observations: observed.len(),
        config,
        fill_model,
        parity: compare(&paper, &backtest.record),
    })
}

/// The first element where two trading records differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `orders`, `fills`, `positions` or `pnl_points`.
    pub sequence: &'static str,
    /// 0-based element index; for a length difference, the shorter length.
    pub index: usize,
    /// The field that differs, or `length`.
    pub field: &'static str,
    pub paper: String,
    pub backtest: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field == "length" {
            write!(
                f,
                "{}: the paper agent has {} and the backtest {}",
                self.sequence, self.paper, self.backtest
            )
        } else {
            write!(
                f,
                "{}[{}].{}: paper {} vs backtest {}",
                self.sequence, self.index, self.field, self.paper, self.backtest
            )
        }
    }
}

/// The verdict of specs/06 §1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Parity {
    /// Every element equal; the sizes compared.
    Equal {
        orders: usize,
        fills: usize,
        pnl_points: usize,
    },
    /// The first differing element.
    Differs { difference: Difference },
    /// The paper agent's record cannot be reproduced by a backtest, and why (nothing was compared).
    Void { reason: String },
}

impl fmt::Display for Parity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parity::Equal {
                orders,
                fills,
                pnl_points,
            } => write!(
                f,
                "equal: {orders} orders, {fills} fills and {pnl_points} PnL points match element by element"
            ),
            Parity::Differs { difference } => write!(f, "differs at {difference}"),
            Parity::Void { reason } => write!(f, "void: {reason}"),
        }
    }
}

/// Why a paper agent's record is outside the parity rule, if it is.
pub fn void_reason(paper: &TradingRecord) -> Option<String> {
    if paper.skipped_runs > 0 {
        return Some(format!(
            "{} run(s) were skipped while an order waited for its fill (the execution role was behind or down); a \
             backtest fills before the next bar, so its strategy sees those bars",
            paper.skipped_runs
        ));
    }
    if paper.config_changes_while_trading > 0 {
        return Some(
            "the agent's config changed after its first run; parity holds for observations recorded under one config"
                .to_owned(),
        );
    }
    if paper.fill_models.len() > 1 {
        return Some(format!(
            "its orders used {} different fill models; a backtest runs one",
            paper.fill_models.len()
        ));
    }
    None
}

/// Compares field by field, in order; decimals numerically (`1.0 == 1.00`), times as instants, strings exactly.
pub fn compare(paper: &TradingRecord, backtest: &TradingRecord) -> Parity {
    if let Some(reason) = void_reason(paper) {
        return Parity::Void { reason };
    }
    let first = first_difference("orders", &paper.orders, &backtest.orders, order_fields)
        .or_else(|| first_difference("fills", &paper.trades, &backtest.trades, fill_fields))
        .or_else(|| {
            first_difference(
                "positions",
                &paper.positions,
                &backtest.positions,
                position_fields,
            )
        })
        .or_else(|| first_difference("pnl_points", &paper.pnl, &backtest.pnl, pnl_fields));
    match first {
        Some(difference) => Parity::Differs { difference },
        None => Parity::Equal {
            orders: paper.orders.len(),
            fills: paper.trades.len(),
            pnl_points: paper.pnl.len(),
        },
    }
}

/// One compared field of two elements: its name and whether (and how) the values differ.
type FieldDiff = (&'static str, Option<(String, String)>);

fn diff<T: PartialEq + fmt::Debug>(name: &'static str, a: &T, b: &T) -> FieldDiff {
    (name, (a != b).then(|| (show(a), show(b))))
}

fn show<T: fmt::Debug>(v: &T) -> String {
    let text = format!("{v:?}");
    text.trim_matches('"').to_owned()
}

fn order_fields(a: &OrderRow, b: &OrderRow) -> Vec<FieldDiff> {
    vec![
        diff("side", &a.side, &b.side),
        diff("qty", &a.qty, &b.qty),
        diff("status", &a.status, &b.status),
        diff("reason_code", &a.reason_code, &b.reason_code),
        diff("observation.price", &a.observed_price, &b.observed_price),
        diff("observation.observed_at", &a.observed_at, &b.observed_at),
        diff("fill_model.slippage_bps", &a.slippage_bps, &b.slippage_bps),
        diff("fill_model.fee_bps", &a.fee_bps, &b.fee_bps),
    ]
}

fn fill_fields(a: &TradeRow, b: &TradeRow) -> Vec<FieldDiff> {
    vec![
        diff("price", &a.price, &b.price),
        diff("qty", &a.qty, &b.qty),
        diff("fee", &a.fee, &b.fee),
    ]
}

fn position_fields(a: &PositionAfterFill, b: &PositionAfterFill) -> Vec<FieldDiff> {
    vec![
        diff("qty", &a.qty, &b.qty),
        diff("avg_price", &a.avg_price, &b.avg_price),
        diff("cash", &a.cash, &b.cash),
        diff("realized_pnl", &a.realized_pnl, &b.realized_pnl),
        diff("fees", &a.fees, &b.fees),
    ]
}

fn pnl_fields(a: &PnlRow, b: &PnlRow) -> Vec<FieldDiff> {
    vec![
        diff("at", &a.at, &b.at),
        diff("mark_price", &a.mark_price, &b.mark_price),
        diff("position_qty", &a.position_qty, &b.position_qty),
        diff("cash", &a.cash, &b.cash),
        diff("equity", &a.equity, &b.equity),
        diff("realized_pnl", &a.realized_pnl, &b.realized_pnl),
        diff("unrealized_pnl", &a.unrealized_pnl, &b.unrealized_pnl),
        diff("fees", &a.fees, &b.fees),
        diff("pnl", &a.pnl, &b.pnl),
    ]
}

fn first_difference<T>(
    sequence: &'static str,
    paper: &[T],
    backtest: &[T],
    fields: impl Fn(&T, &T) -> Vec<FieldDiff>,
) -> Option<Difference> {
    for (index, (a, b)) in paper.iter().zip(backtest).enumerate() {
        if let Some((field, (p, q))) = fields(a, b)
            .into_iter()
            .find_map(|(name, d)| d.map(|d| (name, d)))
        {
            return Some(Difference {
                sequence,
                index,
                field,
                paper: p,
                backtest: q,
            });
        }
    }
    (paper.len() != backtest.len()).then(|| Difference {
        sequence,
        index: paper.len().min(backtest.len()),
        field: "length",
        paper: paper.len().to_string(),
        backtest: backtest.len().to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests;
