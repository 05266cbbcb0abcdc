//! Fill a market order the way the paper simulator and backtests both do: at the price observed when the
//! order was decided, moved against the trader by `slippage_bps`, paying `fee_bps` of the notional.
//! Both are zero by default; the model used is recorded on the order, every field explicit, so every fill can be
//! recomputed from the order alone.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::market::Side;

/// Basis points per whole (1 bp = 0.01 %).
pub const BPS_PER_UNIT: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// Slippage and fee, in basis points (fractions allowed: 7.5 bps is a common exchange fee). Both fields are
/// required when read: a stored order without `fee_bps` is an error, never a silent 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillModel {
    /// How far the fill moves against the order: buys pay more, sells receive less. In [0, 10000).
    pub slippage_bps: Decimal,
    /// Fee on the filled notional. In [0, 10000).
    pub fee_bps: Decimal,
}

impl FillModel {
    /// # Errors
    /// A [`ValidationError`] on `fill_model.slippage_bps` / `fill_model.fee_bps` outside [0, 10000):
    /// 100 % slippage would fill a sell at zero.
    #[inline]
    pub fn validate(&self) -> Result<(), ValidationError> {
        // No fees, no slippage: the common case, with nothing to compare.
        if self.slippage_bps.is_zero() && self.fee_bps.is_zero() {
            return Ok(());
        }
        self.validate_rates()
    }

    fn validate_rates(&self) -> Result<(), ValidationError> {
        for (field, value) in [
            ("fill_model.slippage_bps", self.slippage_bps),
            ("fill_model.fee_bps", self.fee_bps),
        ] {
            if !value.is_zero() && (value.is_sign_negative() || value >= BPS_PER_UNIT) {
                return Err(ValidationError::new(
                    field,
                    format!("must be in [0, 10000) basis points (got {value})"),
                ));
            }
        }
        Ok(())
    }
}

/// One execution: `qty` units on `side` at `price`, paying `fee` in the quote currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
}

impl Fill {
    /// `price × qty`, before the fee; `None` if it does not fit a Decimal.
    pub fn notional(&self) -> Option<Decimal> {
        self.price.checked_mul(self.qty)
    }
}

/// The arithmetic does not fit a Decimal (about 7.9 × 10^28): the inputs are absurd, not the market.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("fill arithmetic overflows a decimal")]
pub struct FillOverflow;

/// How a market order for `qty` on `side` fills against `observed_price` under `model`.
///
/// # Errors
/// [`FillOverflow`] if price, notional or fee do not fit a Decimal.
pub fn market_order(
    model: &FillModel,
    side: Side,
    qty: Decimal,
    observed_price: Decimal,
) -> Result<Fill, FillOverflow> {
    // No slippage and an observed price whose mantissa times 10⁴ fits 96 bits: `price × 10000 / 10000` is exact, so
    // it is the observed price; normalized, any representation of a value is the same. This spares two of the three
    // 96-bit divisions of every order.
    let price = if model.slippage_bps.is_zero()
        && observed_price.mantissa().unsigned_abs() < EXACT_TIMES_BPS
    {
        observed_price
    } else {
        observed_price
            .checked_mul(slipped(model, side)?)
            .and_then(|p| p.checked_div(BPS_PER_UNIT))
            .ok_or(FillOverflow)?
    };
    let notional = price.checked_mul(qty).ok_or(FillOverflow)?;
    // No fee: `notional × 0 / 10000` is a zero, which normalizes to 0 (scale 0, positive).
    let fee = if model.fee_bps.is_zero() {
        Decimal::ZERO
    } else {
        notional
            .checked_mul(model.fee_bps)
            .and_then(|f| f.checked_div(BPS_PER_UNIT))
            .ok_or(FillOverflow)?
    };
    Ok(Fill {
        side,
        qty,
        price: price.normalize(),
        fee: fee.normalize(),
    })
}

/// `10000 ± slippage_bps`: what `side` pays (buy) or receives (sell) per 10000 of the observed price.
fn slipped(model: &FillModel, side: Side) -> Result<Decimal, FillOverflow> {
    match side {
        Side::Buy => BPS_PER_UNIT.checked_add(model.slippage_bps),
        Side::Sell => BPS_PER_UNIT.checked_sub(model.slippage_bps),
    }
    .ok_or(FillOverflow)
}

/// Mantissas below this times 10⁴ (`BPS_PER_UNIT`) still fit a `Decimal`'s 96 bits.
const EXACT_TIMES_BPS: u128 = (1 << 96) / 10_000;

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn model(slippage_bps: Decimal, fee_bps: Decimal) -> FillModel {
        FillModel {
            slippage_bps,
            fee_bps,
        }
    }

    #[test]
    fn by_default_a_market_order_fills_at_the_observed_price_without_fee() {
        let fill = market_order(&FillModel::default(), Side::Buy, dec!(2), dec!(101.25)).unwrap();
        assert_eq!(
            fill,
            Fill {
                side: Side::Buy,
                qty: dec!(2),
                price: dec!(101.25),
                fee: dec!(0)
            }
        );
        assert_eq!(fill.notional(), Some(dec!(202.50)));
    }

    #[test]
    fn slippage_moves_buys_up_and_sells_down() {
        let m = model(dec!(10), dec!(0));
        assert_eq!(
            market_order(&m, Side::Buy, dec!(1), dec!(100))
                .unwrap()
                .price,
            dec!(100.1)
        );
        assert_eq!(
            market_order(&m, Side::Sell, dec!(1), dec!(100))
                .unwrap()
                .price,
            dec!(99.9)
        );
    }

    #[test]
    fn the_fee_is_fee_bps_of_the_filled_notional() {
        let m = model(dec!(10), dec!(7.5));
        let fill = market_order(&m, Side::Buy, dec!(3), dec!(100)).unwrap();
        // 3 × 100.1 = 300.3; × 7.5 / 10000 = 0.2252250
        assert_eq!(fill.fee, dec!(0.225225));
    }

    #[test]
    fn a_zero_qty_fills_nothing_and_costs_nothing() {
        let fill = market_order(&model(dec!(5), dec!(5)), Side::Buy, dec!(0), dec!(100)).unwrap();
        assert_eq!(fill.fee, dec!(0));
        assert_eq!(fill.notional(), Some(dec!(0)));
    }

    #[test]
    fn fill_prices_are_normalized_so_events_do_not_grow_trailing_zeros() {
        let fill =
            market_order(&model(dec!(0), dec!(0)), Side::Buy, dec!(1), dec!(100.50)).unwrap();
        assert_eq!(fill.price.to_string(), "100.5");
    }

    #[test]
    fn absurd_inputs_overflow_instead_of_panicking() {
        let m = model(dec!(10), dec!(10));
        assert_eq!(
            market_order(&m, Side::Buy, dec!(1), Decimal::MAX),
            Err(FillOverflow)
        );
        assert_eq!(
            market_order(&m, Side::Buy, Decimal::MAX, dec!(2)),
            Err(FillOverflow)
        );
    }

    #[test]
    fn fill_model_bounds_are_checked() {
        assert!(model(dec!(0), dec!(9999.99)).validate().is_ok());
        assert_eq!(
            model(dec!(10000), dec!(0)).validate().unwrap_err().field,
            "fill_model.slippage_bps"
        );
        assert_eq!(
            model(dec!(0), dec!(-1)).validate().unwrap_err().field,
            "fill_model.fee_bps"
        );
    }

    #[test]
    fn a_missing_fill_model_field_is_an_error_not_zero() {
        let missing = serde_json::from_str::<FillModel>(r#"{"fee_bps": "7.5"}"#).unwrap_err();
        assert!(missing.to_string().contains("slippage_bps"), "{missing}");
        let m: FillModel =
            serde_json::from_str(r#"{"slippage_bps": "0", "fee_bps": "7.5"}"#).unwrap();
        assert_eq!(m, model(dec!(0), dec!(7.5)));
    }

    /// The general formula the fast paths of [`market_order`] must agree with, bit for bit.
    fn market_order_by_the_formula(
        model: &FillModel,
        side: Side,
        qty: Decimal,
        observed_price: Decimal,
    ) -> Result<Fill, FillOverflow> {
        let factor = slipped(model, side)?;
        let price = observed_price
            .checked_mul(factor)
            .and_then(|p| p.checked_div(BPS_PER_UNIT))
            .ok_or(FillOverflow)?;
        let fee = price
            .checked_mul(qty)
            .and_then(|n| n.checked_mul(model.fee_bps))
            .and_then(|f| f.checked_div(BPS_PER_UNIT))
            .ok_or(FillOverflow)?;
        Ok(Fill {
            side,
            qty,
            price: price.normalize(),
            fee: fee.normalize(),
        })
    }

    fn bits(fill: &Result<Fill, FillOverflow>) -> Option<([u8; 16], [u8; 16], [u8; 16])> {
        fill.as_ref()
            .ok()
            .map(|f| (f.qty.serialize(), f.price.serialize(), f.fee.serialize()))
    }

    fn any_decimal() -> impl proptest::strategy::Strategy<Value = Decimal> {
        use proptest::prelude::*;
        prop_oneof![
            (0i64..10_000_000_000, 0u32..=10).prop_map(|(m, s)| Decimal::new(m, s)),
            (0i128..(1i128 << 96), 0u32..=28)
                .prop_map(|(m, s)| Decimal::from_i128_with_scale(m, s)),
        ]
    }

    proptest::proptest! {
        #[test]
        fn the_fast_paths_fill_as_the_formula(
            slippage in proptest::prop_oneof![proptest::strategy::Just(0i64), 0i64..10_000],
            slippage_scale in 0u32..=3,
            fee in proptest::prop_oneof![proptest::strategy::Just(0i64), 0i64..10_000],
            fee_scale in 0u32..=3,
            buy in proptest::bool::ANY,
            qty in any_decimal(),
            price in any_decimal(),
        ) {
            let model = model(Decimal::new(slippage, slippage_scale), Decimal::new(fee, fee_scale));
            let side = if buy { Side::Buy } else { Side::Sell };
            let fast = market_order(&model, side, qty, price);
            let formula = market_order_by_the_formula(&model, side, qty, price);
            proptest::prop_assert_eq!(bits(&fast), bits(&formula), "{:?} vs {:?}", fast, formula);
        }
    }
}
