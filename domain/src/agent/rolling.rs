//! The strategy, evaluated incrementally: what the Agent keeps between runs so that a run decides its signal in O(1)
//! without allocating, with exactly the result of the definition in [`crate::decide`] over the window plus the new
//! price (specs/06 §2).
//!
//! The state is the strategy's rolling sums over the window's latest prices (`sma_crossover`: the last `fast` and the
//! last `slow`; `mean_reversion`: the last `window`) and the definition's comparison at the latest price (the
//! "previous bar" of the next run). A run adds the new price to each sum and subtracts the one leaving it, which the
//! window tells.
//!
//! # Exactness
//!
//! The definition sums `Decimal`s, and `Decimal` addition and multiplication silently round once a result needs more
//! than 96 bits of mantissa, so a rolling `Decimal` sum could drift from the re-summed one. The sums are therefore kept
//! as exact integers: `i128` mantissas at one common scale (the largest scale of the prices they cover; never lower,
//! it only drops when they are recomputed), with checked arithmetic. An exact integer sum cannot drift, and it tells
//! exactly when the definition's own arithmetic is exact too:
//!
//! - Every price is positive (a run refuses any other; a sum covering one is not kept), so every partial sum of the
//!   definition's fold is at most the whole sum, at a scale at most the common one. When the whole sum's mantissa at
//!   the common scale is below 2^96, no step of the fold can round or overflow: the definition's sum is exact.
//! - Likewise its products (`sum × n`, `price × n × 100`, `sum × (100 ± threshold)`) are exact when the product of
//!   the mantissas is below 2^96 and the scales add up to at most 28; their values are then the exact ones, and
//!   comparing them compares exact values, which the `i128` comparison does too.
//!
//! Whenever any of that cannot be shown (an `i128` operation overflows, a bound is exceeded — which includes every
//! case where the definition rounds or gives no signal because a sum or product is beyond `Decimal` range), the run
//! asks the definition itself over the window, so the overflow rule and every rounding are the definition's by
//! construction. Rather than checking after each `Decimal` operation whether it rounded, this keeps the fast path
//! pure integer arithmetic and its proof to the two bullets above; the fallback only runs on prices with close to 28
//! significant digits or near `Decimal::MAX`.

use std::cmp::Ordering;
use std::collections::VecDeque;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Strategy;
use crate::decide::{self, Signal, Zone};
use crate::decimal::POW10;

/// Every `Decimal` mantissa is below this in magnitude (96 bits); an exact result must be too.
const MANTISSA_LIMIT: i128 = 1 << 96;
/// The largest `Decimal` scale.
const MAX_SCALE: u32 = 28;

/// The rolling state of the agent's strategy (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Rolling {
    /// Scale of the sums: each is Σ mantissa(p) × 10^(scale − scale(p)) over its prices, i.e. its value × 10^scale.
    /// At least the scale of every price they cover.
    scale: u32,
    /// Sum of the last `fast` window prices (`sma_crossover`; 0 otherwise), or of all of them while fewer.
    #[serde(with = "i128_text")]
    short: i128,
    /// Sum of the last `slow` (`sma_crossover`) or `window` (`mean_reversion`) window prices, or of all while fewer.
    #[serde(with = "i128_text")]
    long: i128,
    /// Whether `short` and `long` hold those sums; `false` while they cannot be kept exactly (a price that is not
    /// positive, or beyond `i128`): runs then ask the definition, and every recorded run tries to recompute them.
    tracked: bool,
    /// What the definition compares at the latest price over the last `slow`/`window` prices (`sma_crossover`: fast
    /// vs slow average; `mean_reversion`: the zone), `None` when it gives no comparison (a sum or product beyond
    /// `Decimal` range). Set once the window holds that many prices; the next run's "previous bar".
    last: Option<Mark>,
}

impl Default for Rolling {
    /// An empty window: every sum 0, exactly.
    fn default() -> Self {
        Self {
            scale: 0,
            short: 0,
            long: 0,
            tracked: true,
            last: None,
        }
    }
}

/// A comparison as the state keeps it: fast vs slow average, or the price's zone (below, inside, above the bands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mark {
    Less,
    Equal,
    Greater,
}

impl From<Ordering> for Mark {
    fn from(ordering: Ordering) -> Self {
        match ordering {
            Ordering::Less => Mark::Less,
            Ordering::Equal => Mark::Equal,
            Ordering::Greater => Mark::Greater,
        }
    }
}

impl From<Mark> for Ordering {
    fn from(mark: Mark) -> Self {
        match mark {
            Mark::Less => Ordering::Less,
            Mark::Equal => Ordering::Equal,
            Mark::Greater => Ordering::Greater,
        }
    }
}

impl From<Zone> for Mark {
    fn from(zone: Zone) -> Self {
        match zone {
            Zone::Below => Mark::Less,
            Zone::Inside => Mark::Equal,
            Zone::Above => Mark::Greater,
        }
    }
}

impl From<Mark> for Zone {
    fn from(mark: Mark) -> Self {
        match mark {
            Mark::Less => Zone::Below,
            Mark::Equal => Zone::Inside,
            Mark::Greater => Zone::Above,
        }
    }
}

/// How many of the latest prices each sum covers, `(short, long)`; `None` for `hold` and for lengths the definition
/// never signals on (left to it).
fn spans(strategy: &Strategy) -> Option<(usize, usize)> {
    match strategy {
        Strategy::Hold => None,
        Strategy::SmaCrossover(p) => {
            let (fast, slow) = (p.fast as usize, p.slow as usize);
            (fast > 0 && fast < slow).then_some((fast, slow))
        }
        Strategy::MeanReversion(p) => {
            let len = p.window as usize;
            (len >= 2).then_some((0, len))
        }
    }
}

/// Sums at a common scale, as [`Rolling`] keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sums {
    scale: u32,
    short: i128,
    long: i128,
}

#[inline]
fn fits(value: i128) -> bool {
    value.unsigned_abs() < MANTISSA_LIMIT.unsigned_abs()
}

/// `price > 0`, from its zero and sign bits (no `Decimal` comparison).
#[inline]
fn positive(price: Decimal) -> bool {
    !price.is_zero() && price.is_sign_positive()
}

/// `a × b`, or `None` beyond `i128`; operands that fit an `i64` (every sum and factor of ordinary prices) multiply
/// without the checked 128-bit multiplication, whose product cannot overflow then.
#[inline]
fn mul(a: i128, b: i128) -> Option<i128> {
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(a), Ok(b)) => Some(i128::from(a) * i128::from(b)),
        _ => a.checked_mul(b),
    }
}

/// `value × 10^k`, or `None` beyond `i128`.
#[inline]
fn upscale(value: i128, k: u32) -> Option<i128> {
    match k {
        0 => Some(value),
        _ => mul(value, *POW10.get(k as usize)?),
    }
}

/// `price`'s mantissa at `scale` (≥ its own), or `None` beyond `i128`.
#[inline]
fn mantissa_at(price: Decimal, scale: u32) -> Option<i128> {
    upscale(price.mantissa(), scale.checked_sub(price.scale())?)
}

/// `sum` (over the last `len` prices of `window`, at the scale `rescale` below `scale`) once `incoming` (at `scale`)
/// joins it and the price leaving it, if any, leaves: at `scale`, or `None` beyond `i128`.
#[inline(always)]
fn roll(
    sum: i128,
    len: usize,
    window: &VecDeque<Decimal>,
    rescale: u32,
    incoming: i128,
    scale: u32,
) -> Option<i128> {
    if len == 0 {
        return Some(0);
    }
    let sum = upscale(sum, rescale)?.checked_add(incoming)?;
    match window.len().checked_sub(len) {
        Some(leaving) => sum.checked_sub(mantissa_at(*window.get(leaving)?, scale)?),
        None => Some(sum),
    }
}

impl Sums {
    /// The sums over the last `short`/`long` of `window`, recomputed at the smallest common scale; `None` if one of
    /// those prices is not positive or a sum is beyond `i128`.
    fn of(window: &VecDeque<Decimal>, (short, long): (usize, usize)) -> Option<Sums> {
        let n = window.len();
        let covered = window.range(n.saturating_sub(long)..);
        let mut scale = 0;
        for price in covered.clone() {
            if !positive(*price) {
                return None;
            }
            scale = scale.max(price.scale());
        }
        let sum = |from: usize| {
            window.range(from..).try_fold(0i128, |sum, price| {
                sum.checked_add(mantissa_at(*price, scale)?)
            })
        };
        let short = if short == 0 {
            0
        } else {
            sum(n.saturating_sub(short))?
        };
        Some(Sums {
            scale,
            short,
            long: sum(n.saturating_sub(long))?,
        })
    }

    /// What the definition compares over the prices these sums cover (the newest being `newest`), when that is
    /// provably exact, hence equal to the exact comparison computed here; `None` when it cannot be shown.
    fn mark(&self, strategy: &Strategy, newest: Decimal) -> Option<Mark> {
        if !fits(self.short) || !fits(self.long) || self.scale > MAX_SCALE {
            return None;
        }
        match strategy {
            Strategy::Hold => None,
            Strategy::SmaCrossover(p) => {
                // sum_fast × slow vs sum_slow × fast, each product exact when it fits.
                let lhs = mul(self.short, i128::from(p.slow))?;
                let rhs = mul(self.long, i128::from(p.fast))?;
                (fits(lhs) && fits(rhs)).then(|| lhs.cmp(&rhs).into())
            }
            Strategy::MeanReversion(p) => {
                // price × window × 100 vs sum × (100 ∓ threshold), each operation exact when it fits.
                let threshold = p.threshold_pct;
                let threshold_scale = threshold.scale();
                let hundred = upscale(100, threshold_scale)?;
                let low_factor = hundred.checked_sub(threshold.mantissa())?;
                let high_factor = hundred.checked_add(threshold.mantissa())?;
                let scaled_price = mul(mul(newest.mantissa(), i128::from(p.window))?, 100)?;
                let product_scale = self.scale + threshold_scale;
                let low = mul(self.long, low_factor)?;
                let high = mul(self.long, high_factor)?;
                let exact = [hundred, low_factor, high_factor, scaled_price, low, high]
                    .into_iter()
                    .all(fits)
                    && product_scale <= MAX_SCALE;
                if !exact {
                    return None;
                }
                let scaled_price =
                    upscale(scaled_price, product_scale.checked_sub(newest.scale())?)?;
                Some(if scaled_price < low {
                    Mark::Less
                } else if scaled_price > high {
                    Mark::Greater
                } else {
                    Mark::Equal
                })
            }
        }
    }
}

/// What one run's price does to the rolling state, as deciding the run computed it: the sums once the price joins
/// the window and the comparison at it. Recording that run's price ([`Rolling::record`]) takes it instead of computing
/// both again; it is a pure function of the state, the window, the strategy and the price, so either way the state
/// is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    sums: Sums,
    mark: Mark,
}

impl Rolling {
    /// The sums once `price` joins `window` (which the sums cover now), or `None` when they cannot be kept exactly.
    fn advanced(
        &self,
        (short, long): (usize, usize),
        window: &VecDeque<Decimal>,
        price: Decimal,
    ) -> Option<Sums> {
        if !self.tracked || !positive(price) {
            return None;
        }
        let scale = self.scale.max(price.scale());
        let rescale = scale - self.scale;
        let incoming = mantissa_at(price, scale)?;
        Some(Sums {
            scale,
            short: roll(self.short, short, window, rescale, incoming, scale)?,
            long: roll(self.long, long, window, rescale, incoming, scale)?,
        })
    }

    /// The signal of `strategy` on `price` after `window`, from the state in O(1), and the [`Step`] it was computed
    /// from (for recording the same price); `None` when it cannot be shown exact (the caller asks the definition then).
    pub(super) fn signal(
        &self,
        strategy: &Strategy,
        window: &VecDeque<Decimal>,
        price: Decimal,
    ) -> Option<(Signal, Option<Step>)> {
        let spans = spans(strategy)?;
        if window.len() < spans.1 {
            // The definition needs `long + 1` prices: the window's and this one.
            return Some((Signal::Hold, None));
        }
        let sums = self.advanced(spans, window, price)?;
        let mark = sums.mark(strategy, price)?;
        Some((edge(strategy, self.last, mark), Some(Step { sums, mark })))
    }

    /// The state once a run's price is recorded. `window` is the window before it, `record` puts the price in.
    /// `step` is what [`Self::signal`] returned for this very state, window, strategy and price, if it was asked.
    pub(super) fn record(
        &mut self,
        strategy: &Strategy,
        window: &mut VecDeque<Decimal>,
        price: Decimal,
        step: Option<Step>,
        record: impl FnOnce(&mut VecDeque<Decimal>),
    ) {
        let Some(spans) = spans(strategy) else {
            record(window);
            *self = Self::default();
            return;
        };
        let (advanced, known_mark) = match step {
            Some(step) => {
                debug_assert_eq!(
                    Some(step.sums),
                    self.advanced(spans, window, price),
                    "a step is recorded on the state it was decided on"
                );
                (Some(step.sums), Some(step.mark))
            }
            None => (self.advanced(spans, window, price), None),
        };
        record(window);
        let (mut sums, fresh) = match advanced {
            Some(sums) => (Some(sums), false),
            None => (Sums::of(window, spans), true),
        };
        self.last = None;
        if window.len() >= spans.1 {
            let mut mark = known_mark.or_else(|| sums.and_then(|s| s.mark(strategy, price)));
            if mark.is_none() && !fresh {
                // Maybe only the scale is larger than the window needs now: recompute at its own.
                sums = Sums::of(window, spans);
                mark = sums.and_then(|s| s.mark(strategy, price));
            }
            self.last = match mark {
                Some(mark) => Some(mark),
                None => definition(strategy, window.make_contiguous(), spans.1),
            };
        }
        match sums {
            Some(sums) => {
                self.scale = sums.scale;
                self.short = sums.short;
                self.long = sums.long;
                self.tracked = true;
            }
            None => {
                self.scale = 0;
                self.short = 0;
                self.long = 0;
                self.tracked = false;
            }
        }
    }
}

/// The strategy's rule over the previous bar's comparison and the current one.
fn edge(strategy: &Strategy, previous: Option<Mark>, current: Mark) -> Signal {
    match strategy {
        Strategy::Hold => Signal::Hold,
        Strategy::SmaCrossover(_) => {
            decide::crossover(previous.map(Ordering::from), Some(current.into()))
        }
        Strategy::MeanReversion(_) => {
            decide::reversion(previous.map(Zone::from), Some(current.into()))
        }
    }
}

/// The definition's comparison over the last `long` of `prices` (at least that many).
fn definition(strategy: &Strategy, prices: &[Decimal], long: usize) -> Option<Mark> {
    let prices = &prices[prices.len() - long..];
    match strategy {
        Strategy::Hold => None,
        Strategy::SmaCrossover(p) => {
            decide::fast_minus_slow(prices, p.fast as usize).map(Mark::from)
        }
        Strategy::MeanReversion(p) => decide::band_zone(prices, p.threshold_pct).map(Mark::from),
    }
}

/// An `i128` as a decimal string: a JSON number that wide would not survive `serde_json::Value`.
mod i128_text {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &i128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i128, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(D::Error::custom)
    }
}
