//! `Decimal` comparisons for the paths that run once per bar (the trading fold, the trader metrics): exact, and
//! without rust_decimal's general comparison (which aligns the scales of its operands first) when both operands
//! have the same scale, as amounts of one market mostly do.

use std::cmp::Ordering;

use rust_decimal::Decimal;

/// `a` compared with `b`, exactly as `Decimal`'s `Ord`: at one scale the values are the mantissas times the same
/// power of ten, so the mantissas compare as the values do (a negative zero's mantissa is 0, as its value).
#[inline]
pub fn cmp(a: Decimal, b: Decimal) -> Ordering {
    if a.scale() == b.scale() {
        a.mantissa().cmp(&b.mantissa())
    } else {
        a.cmp(&b)
    }
}

/// `a > b`, as [`cmp`].
#[inline]
pub fn gt(a: Decimal, b: Decimal) -> bool {
    cmp(a, b) == Ordering::Greater
}

/// The larger of `a` and `b` (`b` when equal, as `Ord::max`), as [`cmp`].
#[inline]
pub fn max(a: Decimal, b: Decimal) -> Decimal {
    if gt(a, b) {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{prop_assert_eq, proptest};
    use rust_decimal_macros::dec;

    use super::*;

    fn any(m: i128, scale: u32) -> Decimal {
        Decimal::from_i128_with_scale(m % (1i128 << 96), scale % 29)
    }

    #[test]
    fn zeros_of_either_sign_and_any_scale_are_equal() {
        let negative_zero = Decimal::from_parts(0, 0, 0, true, 2);
        assert_eq!(cmp(negative_zero, Decimal::ZERO), Ordering::Equal);
        assert_eq!(cmp(negative_zero, dec!(0.00)), Ordering::Equal);
        assert_eq!(cmp(dec!(1.50), dec!(1.5)), Ordering::Equal);
        assert!(gt(dec!(-1.49), dec!(-1.50)));
        assert_eq!(max(dec!(2.0), dec!(2)).scale(), 0);
    }

    proptest! {
        #[test]
        fn compares_as_decimal_does(a in proptest::num::i128::ANY, b in proptest::num::i128::ANY, sa in 0u32..40, sb in 0u32..40, same_scale: bool) {
            let x = any(a, sa);
            let y = any(b, if same_scale { sa } else { sb });
            prop_assert_eq!(cmp(x, y), x.cmp(&y));
            prop_assert_eq!(gt(x, y), x > y);
            prop_assert_eq!(max(x, y).serialize(), x.max(y).serialize());
        }
    }
}
