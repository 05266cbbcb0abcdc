//! The return statistics behind Sharpe and Sortino, in `f64`: the one place the domain computes with floats
//! (specs/06 §8). They are ratios of returns, not money, prices or quantities; every input is an exact `Decimal`
//! difference or equity, and every "undefined" decision (a base ≤ 0, all returns equal, no negative return) is made
//! on those exact values, not on the floats.
//!
//! Why floats here: in `Decimal` each return is a 28-digit division and each square a 192-bit rescale, ~250 ns a
//! point — a quarter of a second for a million bars, longer than the backtest itself; in `f64` the same sums take a
//! few milliseconds, and their ~1e-15 relative error cannot move a 4 dp result except within ~1e-12 of a rounding
//! boundary. IEEE 754 fixes `+ − × ÷ √` to the bit and the sums run in point order, so the figures are the same on
//! every machine.

use rust_decimal::Decimal;

use super::is_positive;

/// `10^k` correctly rounded, for every `Decimal` scale `k`.
const POW10: [f64; 29] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28,
];

/// `d` in binary floating point: its integer mantissa, correctly rounded to `f64`, over `10^scale` (exact up to
/// scale 22, correctly rounded above). Written here rather than `Decimal::to_f64`, whose u128 division and
/// re-rounding per call cost more than the statistics it feeds.
pub(super) fn to_f64(d: Decimal) -> f64 {
    // The mantissa's 96 bits, little-endian after the flags. Every mantissa of ordinary money fits its low 64 bits,
    // whose conversion is an instruction where an `i128`'s is a library call (and LLVM turns a conversion through
    // `i64` of a known-small `i128` back into the library call); both round correctly to nearest, so the value is
    // the same.
    let bytes = d.serialize();
    let [_, _, _, _, l0, l1, l2, l3, m0, m1, m2, m3, h0, h1, h2, h3] = bytes;
    let magnitude = if [h0, h1, h2, h3] == [0; 4] {
        u64::from_le_bytes([l0, l1, l2, l3, m0, m1, m2, m3]) as f64
    } else {
        d.mantissa().unsigned_abs() as f64
    };
    // A negative zero converts to +0, as its `i128` mantissa 0 would.
    let signed = if d.is_sign_negative() && magnitude != 0.0 {
        -magnitude
    } else {
        magnitude
    };
    signed / POW10[d.scale() as usize]
}

/// A finite `f64` result as a `Decimal` (to be rounded); `None` for NaN, ±∞ or beyond `Decimal`'s range.
fn from_f64(x: f64) -> Option<Decimal> {
    if !x.is_finite() {
        return None;
    }
    Decimal::from_f64_retain(x)
}

/// The simple returns of the points, one per point: `r_1 = e_1 / starting_cash − 1`, `r_i = e_i / e_(i−1) − 1`,
/// each as `f64(e_i − e_(i−1)) / f64(e_(i−1))` with the difference exact (a return of exactly 0 stays 0).
pub(super) struct Returns {
    values: Vec<f64>,
    /// `Σr` and `Σ min(r, 0)²`, added as the returns came, in their order: the very sums `Iterator::sum` makes
    /// over `values` (which the Sharpe's deviations still take, around the mean).
    sum: f64,
    downside_ss: f64,
    /// Every `f64` return is the same: no deviation (exactly 0), whatever the rounding of their mean.
    all_equal: bool,
    /// Some return is negative (exactly: the sign of an exact difference).
    any_negative: bool,
}

/// `Iterator::sum`'s neutral element for `f64` (the sum of nothing), which its sums start from.
fn empty_sum() -> f64 {
    std::iter::empty::<f64>().sum()
}

/// [`Returns`] as the points go by.
pub(super) struct ReturnsWalk {
    /// `None` once a base was ≤ 0 or a difference overflowed: no returns then.
    values: Option<Vec<f64>>,
    sum: f64,
    downside_ss: f64,
    all_equal: bool,
    base: Decimal,
    base_f64: f64,
    /// `base > 0`; the returns end at the next point otherwise.
    base_positive: bool,
    any_negative: bool,
}

impl ReturnsWalk {
    pub(super) fn new(start: Decimal, points: usize) -> Self {
        Self {
            values: is_positive(start).then(|| Vec::with_capacity(points)),
            sum: empty_sum(),
            downside_ss: empty_sum(),
            all_equal: true,
            base: start,
            base_f64: to_f64(start),
            base_positive: true,
            any_negative: false,
        }
    }

    /// The next point, whose equity is `repeat`ed from the point before (so its return is 0) or not.
    pub(super) fn point(&mut self, equity: Decimal, repeat: bool) {
        // A base ≤ 0 ends the returns once a point follows it (the last point's equity is no base).
        if !self.base_positive {
            self.values = None;
        }
        let Some(values) = self.values.as_mut() else {
            return;
        };
        let difference = if repeat {
            Some(Decimal::ZERO)
        } else {
            equity.checked_sub(self.base)
        };
        let Some(difference) = difference else {
            self.values = None;
            return;
        };
        let r = if difference.is_zero() {
            0.0
        } else {
            self.any_negative |= difference.is_sign_negative();
            let r = to_f64(difference) / self.base_f64;
            (self.base, self.base_f64) = (equity, to_f64(equity));
            self.base_positive = is_positive(equity);
            r
        };
        if let Some(&previous) = values.last() {
            self.all_equal &= previous == r;
        }
        values.push(r);
        self.sum += r;
        self.downside_ss += r.min(0.0) * r.min(0.0);
    }

    pub(super) fn finish(self) -> Option<Returns> {
        Some(Returns {
            values: self.values?,
            sum: self.sum,
            downside_ss: self.downside_ss,
            all_equal: self.all_equal,
            any_negative: self.any_negative,
        })
    }
}

impl Returns {
    /// `Σr / n`; `None` for no returns.
    fn mean(&self) -> Option<f64> {
        (!self.values.is_empty()).then(|| self.sum / self.values.len() as f64)
    }

    /// `mean(r) / sample_stdev(r) × √periods_per_year`; `None` under 2 returns or when they are all equal.
    pub(super) fn sharpe(&self, per_year: Decimal) -> Option<Decimal> {
        let n = self.values.len();
        if n < 2 || self.all_equal {
            return None;
        }
        let mean = self.mean()?;
        let ss: f64 = self.values.iter().map(|r| (r - mean) * (r - mean)).sum();
        let stdev = (ss / (n - 1) as f64).sqrt();
        from_f64(mean / stdev * to_f64(per_year).sqrt())
    }

    /// `mean(r) / √(Σ min(r, 0)² / n) × √periods_per_year`; `None` under 2 returns or without a negative one.
    pub(super) fn sortino(&self, per_year: Decimal) -> Option<Decimal> {
        let n = self.values.len();
        if n < 2 || !self.any_negative {
            return None;
        }
        let mean = self.mean()?;
        let deviation = (self.downside_ss / n as f64).sqrt();
        from_f64(mean / deviation * to_f64(per_year).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The sums made as the returns come are those `Iterator::sum` makes over them, bit for bit, and
        /// `all_equal` is that of every neighbouring pair.
        #[test]
        fn the_walked_sums_are_the_iterator_sums(
            equities in prop::collection::vec(prop_oneof![Just(0i64), 1i64..1_000_000_000], 1..200),
        ) {
            let mut walk = ReturnsWalk::new(Decimal::new(500_000_000, 2), equities.len());
            let mut equity = 500_000_000;
            for &cents in &equities {
                // A 0 repeats the equity before (a flat point).
                let repeat = cents == 0;
                if !repeat {
                    equity = cents;
                }
                walk.point(Decimal::new(equity, 2), repeat);
            }
            let returns = walk.finish().expect("every base is positive");
            let sum: f64 = returns.values.iter().sum();
            let downside: f64 = returns.values.iter().map(|r| r.min(0.0) * r.min(0.0)).sum();
            prop_assert_eq!(returns.sum.to_bits(), sum.to_bits());
            prop_assert_eq!(returns.downside_ss.to_bits(), downside.to_bits());
            prop_assert_eq!(returns.all_equal, returns.values.windows(2).all(|w| w[0] == w[1]));
        }

        /// The conversion through the low 64 bits is the `i128` mantissa's, bit for bit (negative zero included).
        #[test]
        fn to_f64_is_the_mantissa_over_the_power_of_ten(
            mantissa in prop_oneof![-(1i128 << 96) + 1..(1i128 << 96), -(1i128 << 64)..(1i128 << 64), Just(0i128)],
            scale in 0u32..=28,
            negative_zero in any::<bool>(),
        ) {
            let mut d = Decimal::from_i128_with_scale(mantissa, scale);
            if mantissa == 0 && negative_zero {
                d.set_sign_negative(true);
            }
            let expected = d.mantissa() as f64 / POW10[scale as usize];
            prop_assert_eq!(to_f64(d).to_bits(), expected.to_bits(), "{}", d);
        }
    }
}
