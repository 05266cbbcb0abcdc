//! The Order aggregate: a market order decided on one observation. Placing runs the risk check (a refused
//! order is still recorded, with its reason); filling prices the order with the fill model over the
//! observation recorded when it was placed, never a newer price.

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::check::{self, RiskCode};
use crate::config::RiskLimits;
use crate::decider::Decider;
use crate::error::{DomainError, ValidationError};
use crate::fill::{self, Fill, FillModel};
use crate::id::{validate_order_id, validate_text, validate_uuid, MAX_OWNER_CHARS};
use crate::market::{validate_price, ObservedPrice, Side};
use crate::symbol::Symbol;
use crate::time::to_millis;

/// Longest cancel reason, in characters.
pub const MAX_CANCEL_REASON_CHARS: usize = 500;

/// The id of the order a paper-trading agent places on tick `tick_no` of `session`: derived, so a
/// redelivered tick finds the order already exists instead of placing a second one.
pub fn paper_order_id(agent_id: &str, session: u64, tick_no: u64) -> String {
    format!("{agent_id}-{session}-{tick_no}")
}

/// The id of the order a backtest places on bar `bar_no`.
pub fn backtest_order_id(backtest_id: &str, bar_no: u64) -> String {
    format!("{backtest_id}-{bar_no}")
}

/// `accepted` is the open state; the other three are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    #[default]
    Accepted,
    Rejected,
    Filled,
    Cancelled,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Accepted => "accepted",
            OrderState::Rejected => "rejected",
            OrderState::Filled => "filled",
            OrderState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the risk check needs to know about the agent when the order is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskContext {
    pub position_qty: Decimal,
    pub cash: Decimal,
    pub limits: RiskLimits,
}

// Commands are built once and consumed by `handle` at once; boxing PlaceOrder would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum OrderCommand {
    PlaceOrder {
        order_id: String,
        agent_id: String,
        owner: String,
        symbol: Symbol,
        side: Side,
        qty: Decimal,
        observation: ObservedPrice,
        risk_context: RiskContext,
        /// Slippage and fee the order will fill with; recorded on the order (zero by default).
        fill_model: FillModel,
        at: DateTime<Utc>,
    },
    FillOrder {
        at: DateTime<Utc>,
    },
    CancelOrder {
        at: DateTime<Utc>,
        reason: String,
    },
}

/// Unknown fields in a stored payload are an error, never silently dropped (an upcaster must add or
/// rename them first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum OrderEvent {
    OrderPlaced {
        order_id: String,
        agent_id: String,
        owner: String,
        symbol: Symbol,
        side: Side,
        qty: Decimal,
        observation: ObservedPrice,
        risk_context: RiskContext,
        fill_model: FillModel,
        #[serde(with = "crate::time::rfc3339_millis")]
        placed_at: DateTime<Utc>,
    },
    /// A risk rule refused the order; it carries everything `OrderPlaced` would, so the refusal can be
    /// audited and shown like any order.
    OrderRejected {
        order_id: String,
        agent_id: String,
        owner: String,
        symbol: Symbol,
        side: Side,
        qty: Decimal,
        observation: ObservedPrice,
        risk_context: RiskContext,
        fill_model: FillModel,
        reason_code: RiskCode,
        reason: String,
        #[serde(with = "crate::time::rfc3339_millis")]
        rejected_at: DateTime<Utc>,
    },
    OrderFilled {
        price: Decimal,
        qty: Decimal,
        fee: Decimal,
        #[serde(with = "crate::time::rfc3339_millis")]
        filled_at: DateTime<Utc>,
    },
    OrderCancelled {
        reason: String,
        #[serde(with = "crate::time::rfc3339_millis")]
        cancelled_at: DateTime<Utc>,
    },
}

impl OrderEvent {
    /// Every event type with the version current code writes (specs/04 §2).
    pub const VERSIONS: &'static [(&'static str, &'static str)] = &[
        ("OrderPlaced", "1"),
        ("OrderRejected", "1"),
        ("OrderFilled", "1"),
        ("OrderCancelled", "1"),
    ];

    /// The variant name (`event_type`).
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::OrderPlaced { .. } => "OrderPlaced",
            OrderEvent::OrderRejected { .. } => "OrderRejected",
            OrderEvent::OrderFilled { .. } => "OrderFilled",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
        }
    }

    /// The version this event is written with.
    pub fn version(&self) -> &'static str {
        "1"
    }
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        self.version().to_owned()
    }
}

/// Why an Order command was refused. Serializes as `{"code": "<code()>", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum OrderError {
    #[error("order already exists (state {state})")]
    OrderAlreadyExists { state: OrderState },
    #[error("order not found")]
    OrderNotFound,
    #[error("order is already filled")]
    OrderAlreadyFilled { state: OrderState },
    #[error("order is not open (state {state})")]
    OrderNotOpen { state: OrderState },
    #[error("invalid {0}")]
    ValidationFailed(ValidationError),
}

impl From<ValidationError> for OrderError {
    fn from(e: ValidationError) -> Self {
        OrderError::ValidationFailed(e)
    }
}

impl DomainError for OrderError {
    fn all_codes() -> &'static [&'static str] {
        &[
            "order_already_exists",
            "order_not_found",
            "order_already_filled",
            "order_not_open",
            "validation_failed",
        ]
    }

    fn code(&self) -> &'static str {
        match self {
            OrderError::OrderAlreadyExists { .. } => "order_already_exists",
            OrderError::OrderNotFound => "order_not_found",
            OrderError::OrderAlreadyFilled { .. } => "order_already_filled",
            OrderError::OrderNotOpen { .. } => "order_not_open",
            OrderError::ValidationFailed(_) => "validation_failed",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            OrderError::ValidationFailed(e) => Some(&e.field),
            _ => None,
        }
    }

    fn current_state(&self) -> Option<&'static str> {
        match self {
            OrderError::OrderAlreadyExists { state }
            | OrderError::OrderAlreadyFilled { state }
            | OrderError::OrderNotOpen { state } => Some(state.as_str()),
            _ => None,
        }
    }
}

/// The order as placed (or rejected): everything a fill needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTicket {
    pub order_id: String,
    pub agent_id: String,
    pub owner: String,
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Decimal,
    pub observation: ObservedPrice,
    pub fill_model: FillModel,
}

impl OrderTicket {
    /// The fill this order gets: the fill model over the recorded observation.
    fn quote(&self) -> Option<Fill> {
        fill::market_order(
            &self.fill_model,
            self.side,
            self.qty,
            self.observation.price,
        )
        .ok()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    ticket: Option<OrderTicket>,
    state: OrderState,
    fill: Option<Fill>,
}

impl Order {
    pub fn exists(&self) -> bool {
        self.ticket.is_some()
    }
    pub fn ticket(&self) -> Option<&OrderTicket> {
        self.ticket.as_ref()
    }
    pub fn state(&self) -> OrderState {
        self.state
    }
    pub fn fill(&self) -> Option<&Fill> {
        self.fill.as_ref()
    }

    fn place(
        &self,
        ticket: OrderTicket,
        risk_context: RiskContext,
        at: DateTime<Utc>,
    ) -> Result<OrderEvent, OrderError> {
        if self.exists() {
            return Err(OrderError::OrderAlreadyExists { state: self.state });
        }
        validate_ticket(&ticket, &risk_context)?;
        let quote = ticket
            .quote()
            .ok_or_else(|| ValidationError::new("qty", "order value is beyond decimal range"))?;
        let ticket = OrderTicket {
            observation: ObservedPrice {
                observed_at: to_millis(ticket.observation.observed_at),
                ..ticket.observation
            },
            ..ticket
        };
        let at = to_millis(at);
        let verdict = check::risk(
            &risk_context.limits,
            risk_context.position_qty,
            risk_context.cash,
            &quote,
        );
        let OrderTicket {
            order_id,
            agent_id,
            owner,
            symbol,
            side,
            qty,
            observation,
            fill_model,
        } = ticket;
        Ok(match verdict {
            Ok(()) => OrderEvent::OrderPlaced {
                order_id,
                agent_id,
                owner,
                symbol,
                side,
                qty,
                observation,
                risk_context,
                fill_model,
                placed_at: at,
            },
            Err(violation) => OrderEvent::OrderRejected {
                order_id,
                agent_id,
                owner,
                symbol,
                side,
                qty,
                observation,
                risk_context,
                fill_model,
                reason_code: violation.code,
                reason: violation.reason,
                rejected_at: at,
            },
        })
    }

    fn open_ticket(&self) -> Result<&OrderTicket, OrderError> {
        let ticket = self.ticket.as_ref().ok_or(OrderError::OrderNotFound)?;
        match self.state {
            OrderState::Accepted => Ok(ticket),
            OrderState::Filled => Err(OrderError::OrderAlreadyFilled { state: self.state }),
            OrderState::Rejected | OrderState::Cancelled => {
                Err(OrderError::OrderNotOpen { state: self.state })
            }
        }
    }

    fn fill_order(&self, at: DateTime<Utc>) -> Result<OrderEvent, OrderError> {
        let ticket = self.open_ticket()?;
        // Placing already computed this quote from the same inputs, so only a tampered store gets here.
        let quote = ticket
            .quote()
            .ok_or_else(|| ValidationError::new("qty", "order value is beyond decimal range"))?;
        Ok(OrderEvent::OrderFilled {
            price: quote.price,
            qty: quote.qty,
            fee: quote.fee,
            filled_at: to_millis(at),
        })
    }

    fn cancel(&self, at: DateTime<Utc>, reason: String) -> Result<OrderEvent, OrderError> {
        if !self.exists() {
            return Err(OrderError::OrderNotFound);
        }
        if self.state != OrderState::Accepted {
            return Err(OrderError::OrderNotOpen { state: self.state });
        }
        validate_text("reason", &reason, MAX_CANCEL_REASON_CHARS)?;
        Ok(OrderEvent::OrderCancelled {
            reason,
            cancelled_at: to_millis(at),
        })
    }
}

fn validate_ticket(
    ticket: &OrderTicket,
    risk_context: &RiskContext,
) -> Result<(), ValidationError> {
    validate_uuid("agent_id", &ticket.agent_id)?;
    validate_order_id(&ticket.order_id, &ticket.agent_id)?;
    validate_text("owner", &ticket.owner, MAX_OWNER_CHARS)?;
    if ticket.qty <= Decimal::ZERO {
        return Err(ValidationError::new(
            "qty",
            format!("must be > 0 (got {})", ticket.qty),
        ));
    }
    validate_price(ticket.observation.price).map_err(|e| e.within("observation"))?;
    ticket.fill_model.validate()?;
    if risk_context.position_qty < Decimal::ZERO {
        return Err(ValidationError::new(
            "risk_context.position_qty",
            "must be >= 0 (long-only)",
        ));
    }
    risk_context.limits.validate().map_err(|e| ValidationError {
        field: e.field.replacen("risk.", "risk_context.limits.", 1),
        reason: e.reason,
    })
}

impl Decider for Order {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let event = match command {
            OrderCommand::PlaceOrder {
                order_id,
                agent_id,
                owner,
                symbol,
                side,
                qty,
                observation,
                risk_context,
                fill_model,
                at,
            } => {
                let ticket = OrderTicket {
                    order_id,
                    agent_id,
                    owner,
                    symbol,
                    side,
                    qty,
                    observation,
                    fill_model,
                };
                self.place(ticket, risk_context, at)?
            }
            OrderCommand::FillOrder { at } => self.fill_order(at)?,
            OrderCommand::CancelOrder { at, reason } => self.cancel(at, reason)?,
        };
        Ok(vec![event])
    }

    fn evolve(&mut self, event: &OrderEvent) {
        // A placed order is open; a rejected one is final. Both record the same ticket.
        let placed_state = if matches!(event, OrderEvent::OrderRejected { .. }) {
            OrderState::Rejected
        } else {
            OrderState::Accepted
        };
        match event {
            OrderEvent::OrderPlaced {
                order_id,
                agent_id,
                owner,
                symbol,
                side,
                qty,
                observation,
                fill_model,
                ..
            }
            | OrderEvent::OrderRejected {
                order_id,
                agent_id,
                owner,
                symbol,
                side,
                qty,
                observation,
                fill_model,
                ..
            } => {
                debug_assert!(self.ticket.is_none(), "an order is placed once");
                self.ticket = Some(OrderTicket {
                    order_id: order_id.clone(),
                    agent_id: agent_id.clone(),
                    owner: owner.clone(),
                    symbol: symbol.clone(),
                    side: *side,
                    qty: *qty,
                    observation: observation.clone(),
                    fill_model: fill_model.clone(),
                });
                self.state = placed_state;
            }
            OrderEvent::OrderFilled {
                price, qty, fee, ..
            } => {
                debug_assert_eq!(self.state, OrderState::Accepted, "only an open order fills");
                let Some(ticket) = self.ticket.as_ref() else {
                    debug_assert!(false, "fill of an order that was never placed");
                    return;
                };
                debug_assert_eq!(*qty, ticket.qty, "orders fill whole");
                self.fill = Some(Fill {
                    side: ticket.side,
                    qty: *qty,
                    price: *price,
                    fee: *fee,
                });
                self.state = OrderState::Filled;
            }
            OrderEvent::OrderCancelled { .. } => {
                debug_assert_eq!(
                    self.state,
                    OrderState::Accepted,
                    "only an open order is cancelled"
                );
                self.state = OrderState::Cancelled;
            }
        }
    }
}

crate::cqrs_aggregate!(Order);

#[cfg(test)]
mod tests;
