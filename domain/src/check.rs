//! Check a proposed order against an agent's risk limits before it exists. Rules run in a fixed order and
//! the first failure wins, so the same inputs always give the same recorded reason.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::RiskLimits;
use crate::fill::Fill;
use crate::market::Side;

/// Why a risk rule refused an order; recorded as `reason_code` on `OrderRejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCode {
    /// The order is for zero or fewer units.
    OrderQtyNotPositive,
    /// The order is larger than `max_order_qty`.
    MaxOrderQtyExceeded,
    /// A sell for more than is held (STROM is long-only).
    InsufficientPosition,
    /// After the buy the position would exceed `max_position_qty`.
    MaxPositionQtyExceeded,
    /// After the buy the position's value at the order price would exceed `max_notional`.
    MaxNotionalExceeded,
    /// The buy plus its fee costs more than the cash available.
    InsufficientCash,
}

impl RiskCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskCode::OrderQtyNotPositive => "order_qty_not_positive",
            RiskCode::MaxOrderQtyExceeded => "max_order_qty_exceeded",
            RiskCode::InsufficientPosition => "insufficient_position",
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

/// A refused order: a stable code and a sentence with the numbers that broke the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskViolation {
    pub code: RiskCode,
    pub reason: String,
}

impl RiskViolation {
    fn new(code: RiskCode, reason: String) -> Self {
        Self { code, reason }
    }
}

/// Checks `order` (as it would fill: price and fee from the fill model) against `limits`, given the
/// position held and the cash available. Rules, first failure wins: qty > 0; qty ≤ max_order_qty;
/// a sell ≤ the position; for buys, position + qty ≤ max_position_qty, (position + qty) × price ≤
/// max_notional, and qty × price + fee ≤ cash. Each limit is inclusive: exactly at the limit passes.
/// Amounts too large for a Decimal count as over the limit.
///
/// # Errors
/// The first [`RiskViolation`].
pub fn risk(
    limits: &RiskLimits,
    position_qty: Decimal,
    cash: Decimal,
    order: &Fill,
) -> Result<(), RiskViolation> {
    let qty = order.qty;
    if qty <= Decimal::ZERO {
        return Err(RiskViolation::new(
            RiskCode::OrderQtyNotPositive,
            format!("order qty {qty} is not > 0"),
        ));
    }
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
        Side::Sell => check_sell(position_qty, qty),
        Side::Buy => check_buy(limits, position_qty, cash, order),
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
    position_qty: Decimal,
    cash: Decimal,
    order: &Fill,
) -> Result<(), RiskViolation> {
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
                "cost {} (incl. fee {}) exceeds cash {cash}",
                show(cost),
                order.fee
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

    fn code(result: Result<(), RiskViolation>) -> RiskCode {
        result.unwrap_err().code
    }

    #[test]
    fn an_order_within_every_limit_passes() {
        assert_eq!(
            risk(
                &limits(),
                dec!(0),
                dec!(1000),
                &order(Side::Buy, dec!(1), dec!(100), dec!(0))
            ),
            Ok(())
        );
    }

    #[test]
    fn a_zero_qty_order_is_refused() {
        let result = risk(
            &limits(),
            dec!(5),
            dec!(1000),
            &order(Side::Sell, dec!(0), dec!(100), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::OrderQtyNotPositive);
        let negative = risk(
            &limits(),
            dec!(5),
            dec!(1000),
            &order(Side::Buy, dec!(-1), dec!(100), dec!(0)),
        );
        assert_eq!(code(negative), RiskCode::OrderQtyNotPositive);
    }

    #[test]
    fn an_order_exactly_at_max_order_qty_passes_and_above_it_is_refused() {
        let at = order(Side::Buy, dec!(4), dec!(1), dec!(0));
        assert_eq!(risk(&limits(), dec!(0), dec!(1000), &at), Ok(()));
        let above = order(Side::Buy, dec!(4.0001), dec!(1), dec!(0));
        let violation = risk(&limits(), dec!(0), dec!(1000), &above).unwrap_err();
        assert_eq!(violation.code, RiskCode::MaxOrderQtyExceeded);
        assert_eq!(violation.reason, "order qty 4.0001 exceeds max_order_qty 4");
    }

    #[test]
    fn max_order_qty_applies_to_sells_too() {
        let result = risk(
            &limits(),
            dec!(10),
            dec!(0),
            &order(Side::Sell, dec!(5), dec!(1), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::MaxOrderQtyExceeded);
    }

    #[test]
    fn selling_more_than_held_is_refused() {
        let result = risk(
            &limits(),
            dec!(2),
            dec!(0),
            &order(Side::Sell, dec!(3), dec!(100), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::InsufficientPosition);
        let flat = risk(
            &limits(),
            dec!(0),
            dec!(0),
            &order(Side::Sell, dec!(1), dec!(100), dec!(0)),
        );
        assert_eq!(code(flat), RiskCode::InsufficientPosition);
    }

    #[test]
    fn selling_exactly_the_position_passes_without_cash() {
        let result = risk(
            &limits(),
            dec!(3),
            dec!(0),
            &order(Side::Sell, dec!(3), dec!(100), dec!(1)),
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn buying_up_to_max_position_qty_passes_and_beyond_is_refused() {
        let at = risk(
            &limits(),
            dec!(7),
            dec!(1000),
            &order(Side::Buy, dec!(3), dec!(10), dec!(0)),
        );
        assert_eq!(at, Ok(()));
        let beyond = risk(
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
        let at = risk(
            &limits(),
            dec!(6),
            dec!(5000),
            &order(Side::Buy, dec!(4), dec!(100), dec!(0)),
        );
        assert_eq!(at, Ok(()));
        let over = risk(
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
        let exact = risk(
            &limits(),
            dec!(0),
            dec!(101),
            &order(Side::Buy, dec!(1), dec!(100), dec!(1)),
        );
        assert_eq!(exact, Ok(()));
        let short = risk(
            &limits(),
            dec!(0),
            dec!(100.99),
            &order(Side::Buy, dec!(1), dec!(100), dec!(1)),
        );
        assert_eq!(code(short), RiskCode::InsufficientCash);
    }

    #[test]
    fn a_buy_with_no_cash_is_refused() {
        let result = risk(
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
        let result = risk(
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
        let result = risk(
            &huge,
            dec!(1),
            Decimal::MAX,
            &order(Side::Buy, Decimal::MAX, dec!(2), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::MaxPositionQtyExceeded);
        let result = risk(
            &huge,
            dec!(0),
            Decimal::MAX,
            &order(Side::Buy, Decimal::MAX, dec!(2), dec!(0)),
        );
        assert_eq!(code(result), RiskCode::MaxNotionalExceeded);
    }

    #[test]
    fn risk_codes_serialize_as_their_names() {
        for code in [
            RiskCode::OrderQtyNotPositive,
            RiskCode::MaxOrderQtyExceeded,
            RiskCode::InsufficientPosition,
            RiskCode::MaxPositionQtyExceeded,
            RiskCode::MaxNotionalExceeded,
            RiskCode::InsufficientCash,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
    }
}
