//! The simulated price path: multi-scale value noise around a per-symbol base price.
//!
//! For each scale (2 s … 10 days) a hashed value in ±amplitude is drawn at every multiple of the scale's period
//! ("knot") and linearly interpolated between knots; the scales are summed into a basis-point offset around the
//! symbol's base price. Everything is integer or `Decimal` arithmetic, so the result is identical on every machine.
//! The noise is hand-written because no crate offers seeded O(1) random access to a price path in `Decimal`.

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use thiserror::Error;

use crate::noise::{mix, signed_unit, symbol_key};

/// One noise scale: knots every `period_s` seconds, values within ±`amplitude_bps` of the base price, drawn from the
/// hash stream `salt` (fixed per scale, so adding a scale leaves the others' draws as they were).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub period_s: i64,
    pub amplitude_bps: i64,
    pub salt: u64,
}

/// The scales summed into the path. Fine scales give strategies crossings to trade on (the 2-second one makes an agent
/// ticking every second see the price turn every few seconds, as a real quote does); coarse ones give trends lasting
/// hours to days. The amplitudes add up to 1,358 bps, so a price never leaves ±13.58 % of its base and is always
/// positive. Every period is a multiple of the first (2 s): between two knots of the finest scale the path is linear,
/// which lets `bars` find exact highs and lows from those knots alone.
pub const SCALES: [Scale; 6] = [
    Scale {
        period_s: 2,
        amplitude_bps: 3,
        salt: 5,
    },
    Scale {
        period_s: 60,
        amplitude_bps: 5,
        salt: 0,
    },
    Scale {
        period_s: 900,
        amplitude_bps: 20,
        salt: 1,
    },
    Scale {
        period_s: 14_400,
        amplitude_bps: 80,
        salt: 2,
    },
    Scale {
        period_s: 86_400,
        amplitude_bps: 250,
        salt: 3,
    },
    Scale {
        period_s: 864_000,
        amplitude_bps: 1_000,
        salt: 4,
    },
];

/// Spacing of the finest knots: the path is linear between multiples of this.
const KNOT_S: i64 = SCALES[0].period_s;
/// Least common multiple of all periods (the longest one, as each period divides the next). Interpolations are
/// summed over this common denominator and divided once, so the offset is exactly monotone between knots.
const COMMON_PERIOD_S: i64 = SCALES[SCALES.len() - 1].period_s;
/// Offsets are computed in millionths of a basis point: fine enough that the final rounding to cents is the only
/// visible rounding, small enough that every product fits an i128 (largest term ≈ 1e19).
const MICRO: i128 = 1_000_000;
/// 1 = 10,000 bps, in the same micro units as the offset.
const ONE_IN_MICRO_BPS: i128 = 10_000 * MICRO;
/// Digits after the point in every simulated price (cents).
const PRICE_DP: u32 = 2;
/// Base prices are spread over 50.00 ..= 5,000.00 (in cents): the range of typical crypto and stock quotes, wide
/// enough that symbols look different, low enough that `Decimal` never gets near its 28 digits.
const BASE_MIN_CENTS: u64 = 5_000;
const BASE_MAX_CENTS: u64 = 500_000;
/// Bar volumes are spread over 1 ..= 1,000 units.
const VOLUME_MAX: u64 = 1_000;

/// Domain tags keep the draws for different purposes independent of each other.
const TAG_BASE: u64 = 0xBA5E;
const TAG_NOISE: u64 = 0x0015E;
const TAG_VOLUME: u64 = 0x0A1;

const _: () = {
    let mut i = 1;
    while i < SCALES.len() {
        assert!(SCALES[i].period_s % SCALES[i - 1].period_s == 0);
        i += 1;
    }
};

/// Why a bar series could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SimError {
    #[error("bar step must be at least 1 second, got 0")]
    ZeroStep,
    #[error("bar times from {from_unix_s} to {to_unix_s} (Unix seconds) plus one step are beyond the representable time range")]
    OutOfRange { from_unix_s: i64, to_unix_s: i64 },
}

/// A deterministic market: the price of any symbol at any second, as a pure function of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricePath {
    seed: u64,
}

/// One OHLCV bar. `ts` is the bar's close time: the instant its `close` is observed, which is what a backtest turns
/// into the observation (`price = close`, `observed_at = ts`). Millisecond precision (what the CSV form carries).
/// A generated bar over `[start, start + step)` has `ts = start + step`, `open` = the price at `start` and `close` =
/// the price at `start + step`, so its close equals the next bar's open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
}

impl PricePath {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The symbol's price at `t_unix_s`, rounded to cents (banker's rounding), always > 0. O(1): two hashes per scale.
    pub fn price_at(&self, symbol: impl AsRef<str>, t_unix_s: i64) -> Decimal {
        let key = symbol_key(self.seed, symbol.as_ref());
        price_for_key(key, t_unix_s)
    }

    /// The symbol's base price: the centre its path moves around.
    pub fn base_price(&self, symbol: impl AsRef<str>) -> Decimal {
        let key = symbol_key(self.seed, symbol.as_ref());
        Decimal::new(base_cents(key) as i64, PRICE_DP)
    }

    /// Bars starting at `from`, `from + step_s`, … while the start is `< to`; each bar's `ts` is its end
    /// (start + `step_s`), see [`Bar`].
    ///
    /// # Errors
    /// `step_s` is 0, or `from` or `to + step_s` is beyond what `DateTime<Utc>` represents.
    pub fn bars(
        &self,
        symbol: impl AsRef<str>,
        from_unix_s: i64,
        to_unix_s: i64,
        step_s: u32,
    ) -> Result<Bars, SimError> {
        if step_s == 0 {
            return Err(SimError::ZeroStep);
        }
        let representable = |t: i64| DateTime::from_timestamp(t, 0).is_some();
        let last_end = to_unix_s.checked_add(i64::from(step_s));
        if !representable(from_unix_s) || !last_end.is_some_and(representable) {
            return Err(SimError::OutOfRange {
                from_unix_s,
                to_unix_s,
            });
        }
        Ok(Bars {
            key: symbol_key(self.seed, symbol.as_ref()),
            next_start: from_unix_s,
            to_unix_s,
            step_s: i64::from(step_s),
        })
    }
}

fn base_cents(key: u64) -> u64 {
    BASE_MIN_CENTS + mix(key, TAG_BASE) % (BASE_MAX_CENTS - BASE_MIN_CENTS + 1)
}

fn price_for_key(key: u64, t_unix_s: i64) -> Decimal {
    let offset = offset_micro_bps(key, t_unix_s);
    debug_assert!(
        offset.abs() < ONE_IN_MICRO_BPS,
        "offset stays within ±100 %"
    );
    let scaled = i128::from(base_cents(key)) * (ONE_IN_MICRO_BPS + offset);
    // `scaled` is cents × 1e10 (10,000 bps × 1e6): 2 + 10 decimal places.
    let price = Decimal::from_i128_with_scale(scaled, PRICE_DP + 10)
        .round_dp_with_strategy(PRICE_DP, RoundingStrategy::MidpointNearestEven);
    debug_assert!(price > Decimal::ZERO);
    price
}

/// Sum over scales of the interpolated knot values, in micro-bps, divided once (floor) so it is monotone between
/// knots of the finest scale.
fn offset_micro_bps(key: u64, t: i64) -> i128 {
    let mut numerator: i128 = 0;
    for scale in &SCALES {
        let scale_key = mix(key, TAG_NOISE ^ scale.salt);
        let amplitude = i128::from(scale.amplitude_bps) * MICRO;
        let bucket = t.div_euclid(scale.period_s);
        let into = i128::from(t.rem_euclid(scale.period_s));
        let period = i128::from(scale.period_s);
        // Buckets are hashed as their two's-complement bits: negative times work like any other.
        let v0 = signed_unit(mix(scale_key, bucket as u64), amplitude);
        let v1 = signed_unit(mix(scale_key, bucket.wrapping_add(1) as u64), amplitude);
        let weight = i128::from(COMMON_PERIOD_S / scale.period_s);
        numerator += (v0 * (period - into) + v1 * into) * weight;
    }
    numerator.div_euclid(i128::from(COMMON_PERIOD_S))
}

/// Iterator over bars; see [`PricePath::bars`].
#[derive(Debug, Clone)]
pub struct Bars {
    key: u64,
    next_start: i64,
    to_unix_s: i64,
    step_s: i64,
}

impl Iterator for Bars {
    type Item = Bar;

    fn next(&mut self) -> Option<Bar> {
        if self.next_start >= self.to_unix_s {
            return None;
        }
        let start = self.next_start;
        let end = start.saturating_add(self.step_s);
        self.next_start = end;
        // `bars` checked that every end up to `to + step` is representable, so this never ends the iteration early.
        let close_time = DateTime::from_timestamp(end, 0)?;
        Some(bar(self.key, start, end, close_time))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = (self.to_unix_s.saturating_sub(self.next_start).max(0) as u64)
            .div_ceil(self.step_s as u64) as usize;
        (remaining, Some(remaining))
    }
}

impl Bars {
    /// Each bar's close time and close only: one price a bar instead of one per knot for the high and low (a
    /// backtest observes the close alone, so simulated sources load ~30× faster at one-minute bars).
    pub fn closes(self) -> Closes {
        Closes(self)
    }
}

/// Iterator over `(close time, close)` of [`Bars`]; see [`Bars::closes`].
#[derive(Debug, Clone)]
pub struct Closes(Bars);

impl Iterator for Closes {
    type Item = (DateTime<Utc>, Decimal);

    fn next(&mut self) -> Option<Self::Item> {
        let bars = &mut self.0;
        if bars.next_start >= bars.to_unix_s {
            return None;
        }
        let end = bars.next_start.saturating_add(bars.step_s);
        bars.next_start = end;
        Some((
            DateTime::from_timestamp(end, 0)?,
            price_for_key(bars.key, end),
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// The path is monotone between knots of the finest scale, so the extremes over `[start, end]` are at its ends or at a
/// knot.
fn bar(key: u64, start: i64, end: i64, close_time: DateTime<Utc>) -> Bar {
    let open = price_for_key(key, start);
    let close = price_for_key(key, end);
    let (mut high, mut low) = (open.max(close), open.min(close));
    let mut knot = (start.div_euclid(KNOT_S) + 1) * KNOT_S;
    while knot < end {
        let p = price_for_key(key, knot);
        high = high.max(p);
        low = low.min(p);
        knot += KNOT_S;
    }
    // Hashed on the start, as since the first version, so the volumes of a seed keep their values.
    let volume = 1 + mix(mix(key, TAG_VOLUME), start as u64) % VOLUME_MAX;
    Bar {
        ts: close_time,
        open,
        high,
        low,
        close,
        volume: Decimal::from(volume),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_the_bars_close_times_and_closes() {
        let path = PricePath::new(11);
        let bars = path.bars("ETH-USD", 999_960, 999_960 + 86_400, 60).unwrap();
        let closes: Vec<_> = bars.clone().closes().collect();
        let expected: Vec<_> = bars.map(|b| (b.ts, b.close)).collect();
        assert_eq!(closes.len(), 1440);
        assert_eq!(closes, expected);
    }

    #[test]
    fn bar_extremes_match_a_second_by_second_scan() {
        let path = PricePath::new(7);
        for bar in path
            .bars("BTC-USD", 1_000_000, 1_000_000 + 3_600, 300)
            .unwrap()
        {
            let end = bar.ts.timestamp();
            let prices: Vec<Decimal> = (end - 300..=end)
                .map(|t| path.price_at("BTC-USD", t))
                .collect();
            assert_eq!(bar.high, *prices.iter().max().unwrap(), "{bar:?}");
            assert_eq!(bar.low, *prices.iter().min().unwrap(), "{bar:?}");
        }
    }

    #[test]
    fn offsets_stay_within_the_sum_of_amplitudes() {
        let bound: i128 = SCALES
            .iter()
            .map(|s| i128::from(s.amplitude_bps))
            .sum::<i128>()
            * MICRO;
        for t in (-5_000_000..5_000_000).step_by(7_919) {
            assert!(offset_micro_bps(symbol_key(3, "X"), t).abs() <= bound);
        }
    }

    #[test]
    fn a_zero_step_is_rejected() {
        assert_eq!(
            PricePath::new(1).bars("X", 0, 10, 0).unwrap_err(),
            SimError::ZeroStep
        );
    }

    #[test]
    fn bar_times_beyond_the_representable_range_are_rejected() {
        let err = PricePath::new(1)
            .bars("X", 0, i64::MAX - 10, 60)
            .unwrap_err();
        assert!(matches!(err, SimError::OutOfRange { .. }), "{err}");
    }
}
