//! The agents' paper trading as read models (tables `orders`, `trades`, `positions`, `pnl_points`, specs/02 §3),
//! folded from the same Agent stream as the agent rows: `OrderPlaced`, `OrderRejected`, `OrderFilled` and
//! `AgentRunRecorded` (each run values the position at its observed price and adds a PnL point).
//!
//! Pure like [`crate::fold`]: every value comes from the typed events, money through the domain's own settlement
//! ([`strom_domain::settle`]), so the read side's position is the write side's to the last digit. An agent's trading
//! state is its [`Book`]: the `positions` row (the whole fold state of the agent's trading) and its open order (at most
//! one, the settle barrier of specs/01 §3.2), which its fill turns into a trade.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use strom_domain::decimal::gt;
use strom_domain::fill::Fill;
use strom_domain::settle::{apply_fill, mark_to_market, Position};
use strom_domain::{AgentEvent, Side};

use crate::fold::{EventAt, ProjectionError};
use crate::ledger::percent;
pub use crate::ledger::{Book, OrderRow, PnlRow, PositionRow, TradeRow};

/// What one event did to the trading tables (besides the book, which the caller keeps).
#[derive(Debug, Clone, PartialEq)]
pub enum Traded {
    /// Nothing (not a trading event, or already applied).
    Nothing,
    /// The book changed (its position row is to be written).
    Book,
    /// An order was placed: its new `orders` row is the book's open order (a caller that keeps rows copies it from
    /// there; one that does not pays for no copy).
    Placed,
    /// An order was rejected (a new `orders` row).
    Rejected(Box<OrderRow>),
    /// The open order filled: its final row, and the trade ([`Filled::trade`], built only by a caller that keeps it).
    Fill(Box<OrderRow>, Filled),
    /// A run valued the position: its PnL point is the book's position row at this mark
    /// ([`PositionRow::pnl_point`]), built only by a caller that keeps it.
    Pnl(RunMark),
}

/// A fill's figures, which with its order's final row make its `trades` row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Filled {
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    /// `qty × price`.
    pub notional: Decimal,
    pub realized_pnl: Decimal,
    pub filled_at: DateTime<Utc>,
    /// Global-log position of the `OrderFilled` event.
    pub global_position: i64,
}

impl Filled {
    /// The `trades` row of this fill of `order` (an order fills once, whole: the trade id is the order id).
    pub fn trade(&self, order: &OrderRow) -> TradeRow {
        TradeRow {
            trade_id: order.order_id.clone(),
            order_id: order.order_id.clone(),
            agent_id: order.agent_id.clone(),
            owner: order.owner.clone(),
            symbol: order.symbol.clone(),
            side: self.side.as_str().to_owned(),
            qty: self.qty,
            price: self.price,
            fee: self.fee,
            notional: self.notional,
            realized_pnl: self.realized_pnl,
            filled_at: self.filled_at,
            global_position: self.global_position,
        }
    }
}

/// The keys of the PnL point a run left: which run, and the price and instant it was marked at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunMark {
    pub session: i64,
    pub tick_no: i64,
    /// The instant of the observed price (the run's completion is wall-clock time, which a backtest over the same
    /// observations cannot have).
    pub at: DateTime<Utc>,
    pub mark_price: Decimal,
}

/// `d`, or a plain 0 when it is zero: Postgres keeps `0.00` but reads it back as `0`, so a zero with a scale would
/// make a live row differ from its rebuild.
fn z(d: Decimal) -> Decimal {
    if d.is_zero() {
        Decimal::ZERO
    } else {
        d
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn inconsistent(at: EventAt<'_>, reason: impl Into<String>) -> ProjectionError {
    ProjectionError::Inconsistent {
        aggregate_type: "Agent".to_owned(),
        aggregate_id: at.aggregate_id.to_owned(),
        sequence: at.sequence,
        reason: reason.into(),
    }
}

fn overflow(at: EventAt<'_>) -> ProjectionError {
    inconsistent(at, "position arithmetic overflows a decimal")
}

impl PositionRow {
    /// Flat, holding `starting_cash`.
    fn opening(
        agent_id: &str,
        owner: &str,
        symbol: &str,
        starting_cash: Decimal,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            owner: owner.to_owned(),
            symbol: symbol.to_owned(),
            qty: Decimal::ZERO,
            cost_basis: Decimal::ZERO,
            avg_price: Decimal::ZERO,
            cash: starting_cash,
            starting_cash,
            realized_pnl: Decimal::ZERO,
            fees: Decimal::ZERO,
            mark_price: None,
            unrealized_pnl: Decimal::ZERO,
            equity: starting_cash,
            pnl: Decimal::ZERO,
            orders_placed: 0,
            orders_rejected: 0,
            trades: 0,
            closing_trades: 0,
            winning_trades: 0,
            peak_equity: starting_cash,
            max_drawdown: Decimal::ZERO,
            max_drawdown_pct: Decimal::ZERO,
            updated_at: at,
            version: 0,
        }
    }

    /// Takes `position` and values it at the mark (the fill price when there was no run yet).
    /// All or nothing: `None` (an amount overflows a Decimal) leaves the row as it was.
    fn set(&mut self, position: &Position, mark: Decimal) -> Option<()> {
        let (unrealized_pnl, equity, pnl) = valued(position, mark)?;
        self.qty = z(position.qty);
        self.cost_basis = z(position.cost_basis);
        self.avg_price = z(position.avg_price());
        self.cash = z(position.cash);
        self.realized_pnl = z(position.realized_pnl);
        self.fees = z(position.fees);
        self.unrealized_pnl = z(unrealized_pnl);
        self.equity = z(equity);
        self.pnl = z(pnl);
        Some(())
    }

    /// Values the unchanged position at a new mark (a run): only the mark-dependent figures move, so the average
    /// price (a division) is not recomputed on every run. All or nothing, as [`Self::set`].
    fn revalue(&mut self, mark: Decimal) -> Option<()> {
        let (unrealized_pnl, equity, pnl) = valued(&self.position(), mark)?;
        self.unrealized_pnl = z(unrealized_pnl);
        self.equity = z(equity);
        self.pnl = z(pnl);
        Some(())
    }

    /// The PnL point of the run that returned `mark` (`Traded::Pnl`), read from this row as that run left it.
    pub fn pnl_point(&self, mark: RunMark) -> PnlRow {
        PnlRow {
            agent_id: self.agent_id.clone(),
            session: mark.session,
            tick_no: mark.tick_no,
            at: mark.at,
            mark_price: mark.mark_price,
            position_qty: self.qty,
            cash: self.cash,
            equity: self.equity,
            realized_pnl: self.realized_pnl,
            unrealized_pnl: self.unrealized_pnl,
            fees: self.fees,
            pnl: self.pnl,
        }
    }
}

/// `(unrealized_pnl, equity, pnl)` of `position` at `mark` (specs/06 §4); `None` on a Decimal overflow.
fn valued(position: &Position, mark: Decimal) -> Option<(Decimal, Decimal, Decimal)> {
    let valuation = mark_to_market(position, mark).ok()?;
    let pnl = position
        .realized_pnl
        .checked_add(valuation.unrealized_pnl)?
        .checked_sub(position.fees)?;
    Some((valuation.unrealized_pnl, valuation.equity, pnl))
}

/// The book's [`Book::drawdown_bar`], computed when it is missing: `max_drawdown_pct × peak_equity / 100` from the
/// mantissas, exact, or `None` when that does not fit a `Decimal` (96 bits, scale 28).
fn drawdown_bar(book: &mut Book) -> Option<Decimal> {
    if book.drawdown_bar.is_none() {
        let (max, peak) = (book.position.max_drawdown_pct, book.position.peak_equity);
        let product = max.mantissa().checked_mul(peak.mantissa())?;
        let scale = max.scale() + peak.scale() + 2;
        book.drawdown_bar = (scale <= 28 && product.unsigned_abs() < 1 << 96)
            .then(|| Decimal::from_i128_with_scale(product, scale));
    }
    book.drawdown_bar
}

/// Folds one Agent event into the agent's book in `books` (by agent id; none until its `AgentCreated`). An event
/// the book already reflects (`sequence <= version`) changes nothing.
///
/// # Errors
/// The event cannot follow the book (a fill of an order that is not open, a trading event before `AgentCreated`,
/// a sell of more than is held); the book is unchanged then.
pub fn apply_trading(
    books: &mut BTreeMap<String, Book>,
    at: EventAt<'_>,
    global_position: i64,
    event: &AgentEvent,
) -> Result<Traded, ProjectionError> {
    match books.get_mut(at.aggregate_id) {
        Some(book) => apply_to_book(book, at, global_position, event),
        None => {
            books.insert(at.aggregate_id.to_owned(), created(at, event)?);
            Ok(Traded::Book)
        }
    }
}

/// The book an agent's first event opens: its `AgentCreated`, anything else is an error.
///
/// # Errors
/// `event` is not an `AgentCreated`.
pub fn created(at: EventAt<'_>, event: &AgentEvent) -> Result<Book, ProjectionError> {
    let (
        AgentEvent::AgentCreated {
            agent_id,
            owner,
            created_at,
            ..
        },
        Some(config),
    ) = (event, event.config())
    else {
        return Err(inconsistent(
            at,
            format!("{} for an agent that was never created", event.name()),
        ));
    };
    let mut position = PositionRow::opening(
        agent_id,
        owner,
        config.symbol.as_str(),
        config.starting_cash,
        *created_at,
    );
    position.version = signed(at.sequence);
    Ok(Book::new(position, None))
}

/// Folds one Agent event into the agent's existing `book`, as [`apply_trading`] does.
///
/// # Errors
/// As [`apply_trading`]; the book is unchanged then.
pub fn apply_to_book(
    book: &mut Book,
    at: EventAt<'_>,
    global_position: i64,
    event: &AgentEvent,
) -> Result<Traded, ProjectionError> {
    if signed(at.sequence) <= book.position.version {
        return Ok(Traded::Nothing);
    }
    // `apply_to` checks everything that can fail before it changes the book, so an error leaves it as it was
    // without a copy per event.
    let traded = apply_to(book, at, global_position, event)?;
    book.position.version = signed(at.sequence);
    Ok(traded)
}

fn apply_to(
    book: &mut Book,
    at: EventAt<'_>,
    global_position: i64,
    event: &AgentEvent,
) -> Result<Traded, ProjectionError> {
    let position = &mut book.position;
    match event {
        AgentEvent::AgentCreated { .. } => {
            Err(inconsistent(at, "AgentCreated for an existing agent"))
        }
        AgentEvent::AgentConfigUpdated { updated_at, .. } => {
            if let Some(config) = event.config() {
                position.symbol = config.symbol.to_string();
                // As the write side's book: an agent that never ran opens again with the (maybe new) cash.
                if position.mark_price.is_none() && position.trades == 0 {
                    *position = PositionRow {
                        version: position.version,
                        orders_placed: position.orders_placed,
                        orders_rejected: position.orders_rejected,
                        ..PositionRow::opening(
                            &position.agent_id,
                            &position.owner,
                            config.symbol.as_str(),
                            config.starting_cash,
                            *updated_at,
                        )
                    };
                }
                position.updated_at = *updated_at;
            }
            Ok(Traded::Book)
        }
        AgentEvent::AgentStarted { .. }
        | AgentEvent::AgentStopped { .. }
        | AgentEvent::AgentArchived { .. } => Ok(Traded::Book),
        AgentEvent::AgentRunRecorded {
            session,
            tick_no,
            completed_at,
            observation,
            ..
        } => {
            let mark = observation.price;
            // Flat, the valuation does not depend on the mark (0 × mark): once valued, a run changes only the mark.
            if !(position.qty.is_zero() && position.mark_price.is_some()) {
                position.revalue(mark).ok_or_else(|| overflow(at))?;
            }
            position.mark_price = Some(mark);
            let mark = RunMark {
                session: signed(*session),
                tick_no: signed(*tick_no),
                at: observation.observed_at,
                mark_price: mark,
            };
            position.updated_at = *completed_at;
            // The drawdown figures only move with the equity (compared bit for bit: no `Decimal` comparison on the
            // runs of a flat position; an equal value written otherwise just updates them again, to the same).
            if book
                .drawdown_seen
                .is_some_and(|seen| seen.serialize() == position.equity.serialize())
            {
                return Ok(Traded::Pnl(mark));
            }
            book.drawdown_seen = Some(position.equity);
            if gt(position.equity, position.peak_equity) {
                position.peak_equity = position.equity;
                book.drawdown_bar = None;
            }
            let fall = z(position.peak_equity - position.equity);
            if gt(fall, position.max_drawdown) {
                position.max_drawdown = fall;
            }
            // The division only when the fall can beat the largest % so far (a rebuild and a backtest run this for
            // every run): rounding is monotone and the maximum has 4 places, so round(fall/peak·100) > max needs
            // fall > max·peak/100, a bar computed exactly once per peak and maximum (where it cannot be, every fall
            // is divided).
            if !fall.is_zero() && drawdown_bar(book).is_none_or(|bar| gt(fall, bar)) {
                let position = &mut book.position;
                let fall_pct = z(percent(fall, position.peak_equity, 4));
                if gt(fall_pct, position.max_drawdown_pct) {
                    position.max_drawdown_pct = fall_pct;
                    book.drawdown_bar = None;
                }
            }
            Ok(Traded::Pnl(mark))
        }
        AgentEvent::OrderPlaced {
            order_id,
            symbol,
            side,
            qty,
            observation,
            fill_model,
            placed_at,
        } => {
            if let Some(open) = &book.open_order {
                return Err(inconsistent(
                    at,
                    format!("OrderPlaced {order_id} while {} is open", open.order_id),
                ));
            }
            position.orders_placed += 1;
            position.updated_at = *placed_at;
            let row = OrderRow {
                order_id: order_id.clone(),
                agent_id: position.agent_id.clone(),
                owner: position.owner.clone(),
                symbol: symbol.as_str().to_owned(),
                side: side.as_str().to_owned(),
                qty: *qty,
                status: "accepted".to_owned(),
                observed_price: observation.price,
                observed_at: observation.observed_at,
                slippage_bps: z(fill_model.slippage_bps),
                fee_bps: z(fill_model.fee_bps),
                reason_code: None,
                reason: None,
                fill_price: None,
                fill_qty: None,
                fee: None,
                created_at: *placed_at,
                filled_at: None,
                updated_at: *placed_at,
                version: signed(at.sequence),
            };
            book.open_order = Some(row);
            Ok(Traded::Placed)
        }
        AgentEvent::OrderRejected {
            order_id,
            symbol,
            side,
            qty,
            observation,
            fill_model,
            reason_code,
            reason,
            rejected_at,
        } => {
            position.orders_rejected += 1;
            position.updated_at = *rejected_at;
            Ok(Traded::Rejected(Box::new(OrderRow {
                order_id: order_id.clone(),
                agent_id: position.agent_id.clone(),
                owner: position.owner.clone(),
                symbol: symbol.as_str().to_owned(),
                side: side.as_str().to_owned(),
                qty: *qty,
                status: "rejected".to_owned(),
                observed_price: observation.price,
                observed_at: observation.observed_at,
                slippage_bps: z(fill_model.slippage_bps),
                fee_bps: z(fill_model.fee_bps),
                reason_code: Some(reason_code.as_str().to_owned()),
                reason: Some(reason.clone()),
                fill_price: None,
                fill_qty: None,
                fee: None,
                created_at: *rejected_at,
                filled_at: None,
                updated_at: *rejected_at,
                version: signed(at.sequence),
            })))
        }
        AgentEvent::OrderFilled {
            order_id,
            side,
            qty,
            price,
            fee,
            filled_at,
        } => {
            if book
                .open_order
                .as_ref()
                .is_none_or(|o| &o.order_id != order_id)
            {
                return Err(inconsistent(
                    at,
                    format!("OrderFilled {order_id}, which is not open"),
                ));
            }
            let fill = Fill {
                side: *side,
                qty: *qty,
                price: *price,
                fee: *fee,
            };
            let notional = fill.notional().ok_or_else(|| overflow(at))?;
            let before = position.position();
            let after = apply_fill(&before, &fill).map_err(|e| inconsistent(at, e.to_string()))?;
            let mark = position.mark_price.unwrap_or(*price);
            position.set(&after, mark).ok_or_else(|| overflow(at))?;
            let Some(mut order) = book.open_order.take() else {
                return Err(inconsistent(at, "the open order vanished"));
            };
            let realized = z(after.realized_pnl - before.realized_pnl);
            position.trades += 1;
            if *side == Side::Sell {
                position.closing_trades += 1;
                if realized - *fee > Decimal::ZERO {
                    position.winning_trades += 1;
                }
            }
            position.updated_at = *filled_at;
            // "accepted" → "filled" in the row's own buffer (no allocation per fill).
            order.status.clear();
            order.status.push_str("filled");
            order.fill_price = Some(*price);
            order.fill_qty = Some(*qty);
            order.fee = Some(z(*fee));
            order.filled_at = Some(*filled_at);
            order.updated_at = *filled_at;
            order.version = signed(at.sequence);
            let filled = Filled {
                side: *side,
                qty: *qty,
                price: *price,
                fee: z(*fee),
                notional: z(notional),
                realized_pnl: realized,
                filled_at: *filled_at,
                global_position,
            };
            Ok(Traded::Fill(Box::new(order), filled))
        }
    }
}

pub mod view;

/// Folds `event` (an Agent event; others are `Nothing`) into its agent's book in `books`.
///
/// # Errors
/// As [`apply_trading`]; `books` is unchanged then.
pub fn fold_trading(
    books: &mut BTreeMap<String, Book>,
    event: &strom_commands::log::LoggedEvent,
) -> Result<Traded, ProjectionError> {
    let Some(agent_event) = event.event.as_agent() else {
        return Ok(Traded::Nothing);
    };
    let at = EventAt {
        aggregate_id: &event.aggregate_id,
        sequence: event.sequence,
        global_position: event.position.global_position,
    };
    apply_trading(books, at, event.position.global_position, agent_event)
}
