//! `Decimal` comparisons for the paths that run once per bar (the trading fold, the trader metrics): exact, and
//! without rust_decimal's general comparison (which aligns the scales of its operands in a wide buffer) when both
//! mantissas at a common scale fit an `i128`, as amounts of one market do (a whole starting cash against an equity
//! in cents, say).

use std::cmp::Ordering;

use rust_decimal::Decimal;

/// 10^k for every k an `i128` holds (every `Decimal` scale difference, and the rolling strategy sums' rescaling).
pub(crate) const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut k = 1;
    while k < table.len() {
        table[k] = table[k - 1] * 10;
        k += 1;
    }
    table
};

/// `mantissa × 10^k`, or `None` beyond `i128` (`k` ≤ 28, a difference of scales).
fn scaled(mantissa: i128, k: u32) -> Option<i128> {
    let factor = POW10[k as usize];
    match i64::try_from(mantissa) {
        // |mantissa| < 2^63 and 10^k ≤ 10^18 < 2^60: the product fits an i128, no check needed.
        Ok(m) if k <= 18 => Some(i128::from(m) * factor),
        _ => mantissa.checked_mul(factor),
    }
}

/// `a` compared with `b`, exactly as `Decimal`'s `Ord`: with both mantissas at the larger scale (exact integers,
/// each the value times the same power of ten) the mantissas compare as the values do; a negative zero's mantissa
/// is 0, as its value. Falls back to `Ord` when a mantissa at that scale is beyond `i128`.
#[inline]
pub fn cmp(a: Decimal, b: Decimal) -> Ordering {
    if a.scale() == b.scale() {
        a.mantissa().cmp(&b.mantissa())
    } else {
        cmp_scales(a, b)
    }
}

/// [`cmp`] of operands with different scales, out of line so the common same-scale case inlines.
fn cmp_scales(a: Decimal, b: Decimal) -> Ordering {
    let (sa, sb) = (a.scale(), b.scale());
    let aligned = if sa < sb {
        scaled(a.mantissa(), sb - sa).map(|ma| (ma, b.mantissa()))
    } else {
        scaled(b.mantissa(), sa - sb).map(|mb| (a.mantissa(), mb))
    };
    match aligned {
        Some((ma, mb)) => ma.cmp(&mb),
        None => a.cmp(&b),
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
        assert!(gt(dec!(1000000.01), dec!(1000000)));
        assert!(!gt(dec!(999999.99), dec!(1000000)));
        // Beyond i128 at the common scale: Ord decides.
        assert!(gt(Decimal::MAX, Decimal::new(1, 28)));
        assert!(!gt(Decimal::MIN, Decimal::new(-1, 28)));
    }

    proptest! {
        #[test]
        fn compares_as_decimal_does(
            a in proptest::num::i128::ANY,
            b in proptest::num::i128::ANY,
            sa in 0u32..40,
            sb in 0u32..40,
            same_scale: bool,
            // Mantissas of amounts (up to 10^12, either sign), which align without `Ord`.
            small: bool,
        ) {
            let (a, b) = if small { (a % 1_000_000_000_000, b % 1_000_000_000_000) } else { (a, b) };
            let x = any(a, sa);
            let y = any(b, if same_scale { sa } else { sb });
            prop_assert_eq!(cmp(x, y), x.cmp(&y));
            prop_assert_eq!(gt(x, y), x > y);
            prop_assert_eq!(max(x, y).serialize(), x.max(y).serialize());
        }
    }
}
