//! Check a proposed order against an agent's risk limits before it exists. Rules run in a fixed order and
//! the first failure wins, so the same inputs always give the same recorded reason (specs/06 §3).

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::RiskLimits;
use crate::fill::Fill;
use crate::market::Side;

/// Longest `OrderRejected.reason`, in characters (specs/04): a sentence with its numbers, never a dump.
pub const MAX_REJECT_REASON_CHARS: usize = 200;

/// Why a risk rule refused an order; recorded as `reason_code` on `OrderRejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCode {
    /// The order is larger than `max_order_qty`.
    MaxOrderQtyExceeded,
    /// A sell for more than is held (STROM is long-only).
    InsufficientPosition,
    /// A buy after the agent lost more than `max_daily_loss` since the UTC day's first run.
    MaxDailyLossExceeded,
    /// After the buy the position would exceed `max_position_qty`.
    MaxPositionQtyExceeded,
    /// After the buy the position's value at the order price would exceed `max_notional`.
    MaxNotionalExceeded,
    /// The buy plus its fee costs more than the cash available.
    InsufficientCash,
}

impl RiskCode {
    /// Every code, in the order the rules run.
    pub const ALL: [RiskCode; 6] = [
        RiskCode::MaxOrderQtyExceeded,
        RiskCode::InsufficientPosition,
        RiskCode::MaxDailyLossExceeded,
        RiskCode::MaxPositionQtyExceeded,
        RiskCode::MaxNotionalExceeded,
        RiskCode::InsufficientCash,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskCode::MaxOrderQtyExceeded => "max_order_qty_exceeded",
            RiskCode::InsufficientPosition => "insufficient_position",
            RiskCode::MaxDailyLossExceeded => "max_daily_loss_exceeded",
            RiskCode::MaxPositionQtyExceeded => "max_position_qty_exceeded",
            RiskCode::MaxNotionalExceeded => "max_notional_exceeded",
            RiskCode::InsufficientCash => "insufficient_cash",
        }
    }
}

impl fmt::Display for RiskCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused order: a stable code and a sentence with the numbers that broke the rule (at most
/// [`MAX_REJECT_REASON_CHARS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskViolation {
    pub code: RiskCode,
    pub reason: String,
}

impl RiskViolation {
    fn new(code: RiskCode, reason: String) -> Self {
        Self {
            code,
            reason: bounded(reason),
        }
    }
}

/// `reason` cut to [`MAX_REJECT_REASON_CHARS`] characters, ending in `…` when cut (only numbers near the
/// `Decimal` range make a sentence that long).
fn bounded(reason: String) -> String {
    if reason.chars().count() <= MAX_REJECT_REASON_CHARS {
        return reason;
    }
    let mut cut: String = reason.chars().take(MAX_REJECT_REASON_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// What the agent holds when an order is decided, from its own (write-side) book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskContext {
    pub position_qty: Decimal,
    pub cash: Decimal,
    /// Equity at the UTC day's first run minus equity now (both marked at the run's price); negative for a gain.
    pub daily_loss: Decimal,
}

/// Checks `order` (as it would fill: price and fee from the fill model, qty > 0) against `limits`, given the
/// agent's `context`. Rules, first failure wins: qty ≤ max_order_qty; a sell ≤ the position; for buys,
/// daily loss ≤ max_daily_loss (when set), position + qty ≤ max_position_qty, (position + qty) × price ≤
/// max_notional, and qty × price + fee ≤ cash. Each limit is inclusive: exactly at the limit passes. Amounts too
/// large for a Decimal count as over the limit.
///
/// # Errors
/// The first [`RiskViolation`].
pub fn risk(limits: &RiskLimits, context: &RiskContext, order: &Fill) -> Result<(), RiskViolation> {
    let qty = order.qty;
    if qty > limits.max_order_qty {
        return Err(RiskViolation::new(
            RiskCode::MaxOrderQtyExceeded,
            format!(
                "order qty {qty} exceeds max_order_qty {}",
                limits.max_order_qty
            ),
        ));
    }
    match order.side {
        Side::Sell => check_sell(context.position_qty, qty),
        Side::Buy => check_buy(limits, context, order),
    }
}

fn check_sell(position_qty: Decimal, qty: Decimal) -> Result<(), RiskViolation> {
    if qty > position_qty {
        return Err(RiskViolation::new(
            RiskCode::InsufficientPosition,
            format!("sell qty {qty} exceeds position {position_qty} (long-only)"),
        ));
    }
    Ok(())
}

fn check_buy(
    limits: &RiskLimits,
    context: &RiskContext,
    order: &Fill,
) -> Result<(), RiskViolation> {
    let RiskContext {
        position_qty,
        cash,
        daily_loss,
    } = *context;
    if let Some(max_daily_loss) = limits.max_daily_loss {
        if daily_loss > max_daily_loss {
            return Err(RiskViolation::new(
                RiskCode::MaxDailyLossExceeded,
                format!(
                    "loss {} since the UTC day's first run exceeds max_daily_loss {max_daily_loss}",
                    daily_loss.normalize()
                ),
            ));
        }
    }
    let after = position_qty.checked_add(order.qty);
    if after.is_none_or(|after| after > limits.max_position_qty) {
        return Err(RiskViolation::new(
            RiskCode::MaxPositionQtyExceeded,
            format!(
                "position {position_qty} + {} would exceed max_position_qty {}",
                order.qty, limits.max_position_qty
            ),
        ));
    }
    let exposure = after.and_then(|after| after.checked_mul(order.price));
    if exposure.is_none_or(|exposure| exposure > limits.max_notional) {
        return Err(RiskViolation::new(
            RiskCode::MaxNotionalExceeded,
            format!(
                "position value {} at {} would exceed max_notional {}",
                show(exposure),
                order.price,
                limits.max_notional
            ),
        ));
    }
    let cost = order.notional().and_then(|n| n.checked_add(order.fee));
    if cost.is_none_or(|cost| cost > cash) {
        return Err(RiskViolation::new(
            RiskCode::InsufficientCash,
            format!(
                "cost {} (incl. fee {}) exceeds cash {}",
                show(cost),
                order.fee,
                cash.normalize()
            ),
        ));
    }
    Ok(())
}

fn show(amount: Option<Decimal>) -> String {
    amount.map_or_else(
        || "beyond decimal range".to_owned(),
        |a| a.normalize().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn limits() -> RiskLimits {
        RiskLimits {
            max_position_qty: dec!(10),
            max_order_qty: dec!(4),
            max_notional: dec!(1000),
            max_daily_loss: None,
        }
    }

    fn order(side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Fill {
        Fill {
            side,
            qty,
            price,
            fee,
        }
    }

    /// The risk check with no loss on the day.
    fn check(
        limits: &RiskLimits,
        position_qty: Decimal,
        cash: Decimal,
        order: &Fill,
    ) -> Result<(), RiskViolation> {
        let context = RiskContext {
            position_qty,
            cash,
            daily_loss: Decimal::ZERO,
        };
        risk(limits, &context, order)
    }

    fn code(result: Result<(), RiskViolation>) -> RiskCode {
        result.unwrap_err().code
    }

    #[test]
    fn an_order_within_every_limit_passes() {
        assert_eq!(
            check(
                &limits(),
                dec!(0),
                dec!(1000),
                &order(Side::Buy, dec!(1), dec!(100), dec!(0))
            ),
            Ok(())
        );
    }

    #[test]
    fn an_order_exactly_at_max_order_qty_passes_and_above_it_is_refused() {
        let at = order(Side::Buy, dec!(4), dec!(1), dec!(0));
        assert_eq!(check(&limits(), dec!(0), dec!(1000), &at), Ok(()));
        let above = order(Side::Buy, dec!(4.0001), dec!(1), dec!(0));
        let violation = check(&limits(), dec!(0), dec!(1000), &above).unwrap_err();
        assert_eq!(violation.code, RiskCode::MaxOrderQtyExceeded);
        assert_eq!(violation.reason, "order qty 4.0001 exceeds max_order_qty 4");
    }

    #[test]
    fn max_order_qty_applies_to_sells_too() {
        let result = check(
            &limits(),
            dec!(10),
            dec!(0),
            &order(Side::Sell, dec!(5), dec!(1), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::MaxOrderQtyExceeded);
    }

    #[test]
    fn selling_more_than_held_is_refused() {
        let result = check(
            &limits(),
            dec!(2),
            dec!(0),
            &order(Side::Sell, dec!(3), dec!(100), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::InsufficientPosition);
        let flat = check(
            &limits(),
            dec!(0),
            dec!(0),
            &order(Side::Sell, dec!(1), dec!(100), dec!(0)),
        );
        assert_eq!(code(flat), RiskCode::InsufficientPosition);
    }

    #[test]
    fn selling_exactly_the_position_passes_without_cash() {
        let result = check(
            &limits(),
            dec!(3),
            dec!(0),
            &order(Side::Sell, dec!(3), dec!(100), dec!(1)),
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn buying_up_to_max_position_qty_passes_and_beyond_is_refused() {
        let at = check(
            &limits(),
            dec!(7),
            dec!(1000),
            &order(Side::Buy, dec!(3), dec!(10), dec!(0)),
        );
        assert_eq!(at, Ok(()));
        let beyond = check(
            &limits(),
            dec!(8),
            dec!(1000),
            &order(Side::Buy, dec!(3), dec!(10), dec!(0)),
        );
        assert_eq!(code(beyond), RiskCode::MaxPositionQtyExceeded);
    }

    #[test]
    fn max_notional_caps_the_position_value_after_the_buy() {
        // (6 + 4) × 100 = 1000: exactly at the cap.
        let at = check(
            &limits(),
            dec!(6),
            dec!(5000),
            &order(Side::Buy, dec!(4), dec!(100), dec!(0)),
        );
        assert_eq!(at, Ok(()));
        let over = check(
            &limits(),
            dec!(6),
            dec!(5000),
            &order(Side::Buy, dec!(4), dec!(100.01), dec!(0)),
        );
        let violation = over.unwrap_err();
        assert_eq!(violation.code, RiskCode::MaxNotionalExceeded);
        assert_eq!(
            violation.reason,
            "position value 1000.1 at 100.01 would exceed max_notional 1000"
        );
    }

    #[test]
    fn the_fee_counts_against_cash() {
        let exact = check(
            &limits(),
            dec!(0),
            dec!(101),
            &order(Side::Buy, dec!(1), dec!(100), dec!(1)),
        );
        assert_eq!(exact, Ok(()));
        let short = check(
            &limits(),
            dec!(0),
            dec!(100.99),
            &order(Side::Buy, dec!(1), dec!(100), dec!(1)),
        );
        assert_eq!(code(short), RiskCode::InsufficientCash);
    }

    #[test]
    fn a_buy_with_no_cash_is_refused() {
        let result = check(
            &limits(),
            dec!(0),
            dec!(0),
            &order(Side::Buy, dec!(1), dec!(1), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::InsufficientCash);
    }

    #[test]
    fn the_first_failing_rule_wins() {
        // Over max_order_qty, max_position_qty, max_notional and cash at once: order size is checked first.
        let result = check(
            &limits(),
            dec!(9),
            dec!(0),
            &order(Side::Buy, dec!(5), dec!(1000), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::MaxOrderQtyExceeded);
    }

    #[test]
    fn amounts_beyond_decimal_range_count_as_over_the_limit() {
        let huge = RiskLimits {
            max_position_qty: Decimal::MAX,
            max_order_qty: Decimal::MAX,
            max_notional: Decimal::MAX,
            max_daily_loss: None,
        };
        let result = check(
            &huge,
            dec!(1),
            Decimal::MAX,
            &order(Side::Buy, Decimal::MAX, dec!(2), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::MaxPositionQtyExceeded);
        let result = check(
            &huge,
            dec!(0),
            Decimal::MAX,
            &order(Side::Buy, Decimal::MAX, dec!(2), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::MaxNotionalExceeded);
    }

    #[test]
    fn risk_codes_serialize_as_their_names() {
        for code in RiskCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }

    #[test]
    fn a_buy_after_losing_more_than_max_daily_loss_is_refused_and_at_the_limit_passes() {
        let capped = RiskLimits {
            max_daily_loss: Some(dec!(50)),
            ..limits()
        };
        let buy = order(Side::Buy, dec!(1), dec!(100), dec!(0));
        let at_limit = RiskContext {
            position_qty: dec!(0),
            cash: dec!(1000),
            daily_loss: dec!(50),
        };
        assert_eq!(risk(&capped, &at_limit, &buy), Ok(()));
        let beyond = RiskContext {
            daily_loss: dec!(50.01),
            ..at_limit
        };
        let violation = risk(&capped, &beyond, &buy).unwrap_err();
        assert_eq!(violation.code, RiskCode::MaxDailyLossExceeded);
        assert_eq!(
            violation.reason,
            "loss 50.01 since the UTC day's first run exceeds max_daily_loss 50"
        );
        // Without a limit any loss passes, and a sell is never held back by the day's loss.
        assert_eq!(risk(&limits(), &beyond, &buy), Ok(()));
        let sell = order(Side::Sell, dec!(1), dec!(100), dec!(0));
        let holding = RiskContext {
            position_qty: dec!(1),
            ..beyond
        };
        assert_eq!(risk(&capped, &holding, &sell), Ok(()));
    }

    #[test]
    fn a_reason_is_never_longer_than_its_bound() {
        let huge = RiskLimits {
            max_position_qty: Decimal::MAX,
            max_order_qty: Decimal::MAX,
            max_notional: Decimal::MAX,
            max_daily_loss: Some(Decimal::new(1, 28)),
        };
        let context = RiskContext {
            position_qty: Decimal::MAX,
            cash: Decimal::MAX,
            daily_loss: Decimal::MAX,
        };
        for reason in [
            check(
                &huge,
                Decimal::MAX,
                Decimal::new(1, 28),
                &order(Side::Buy, Decimal::MAX, Decimal::MAX, Decimal::MAX),
            ),
            risk(
                &huge,
                &context,
                &order(Side::Buy, Decimal::MAX, Decimal::MAX, Decimal::MAX),
            ),
            check(
                &huge,
                Decimal::new(1, 28),
                Decimal::new(1, 28),
                &order(Side::Sell, Decimal::MAX, Decimal::MAX, Decimal::MAX),
            ),
        ] {
            let reason = reason.unwrap_err().reason;
            assert!(
                reason.chars().count() <= MAX_REJECT_REASON_CHARS,
                "{reason}"
            );
        }
        let long = bounded("x".repeat(300));
        assert_eq!(long.chars().count(), MAX_REJECT_REASON_CHARS);
        assert!(long.ends_with('…'));
        assert_eq!(bounded("short".to_owned()), "short");
    }
}
