//! Decide what a strategy wants to do given the latest prices (oldest first, the newest last).
//! Pure and exact: averages are compared by cross-multiplying sums, so no division ever rounds a signal
//! one way on one machine and the other way elsewhere. Long-only: `Sell` means "close the long", never
//! "go short"; a sell with nothing held is left to the risk check to refuse, with a recorded reason.
//!
//! These functions are the definition. The Agent evaluates them incrementally from rolling sums (`agent::rolling`),
//! with the same result at every bar, and falls back to them where it cannot show that.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Strategy;
use crate::market::Side;

/// What a strategy says after looking at the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Buy,
    Sell,
    Hold,
}

impl Signal {
    /// The order side this signal asks for, if any.
    pub fn side(self) -> Option<Side> {
        match self {
            Signal::Buy => Some(Side::Buy),
            Signal::Sell => Some(Side::Sell),
            Signal::Hold => None,
        }
    }
}

/// Runs `strategy` over `window`. A window shorter than [`Strategy::required_window`] gives `Hold`.
pub fn signal(strategy: &Strategy, window: &[Decimal]) -> Signal {
    match strategy {
        Strategy::Hold => hold(window),
        Strategy::SmaCrossover(p) => sma_crossover(window, p.fast as usize, p.slow as usize),
        Strategy::MeanReversion(p) => mean_reversion(window, p.window as usize, p.threshold_pct),
    }
}

/// Never trades.
pub fn hold(_window: &[Decimal]) -> Signal {
    Signal::Hold
}

/// `Buy` on the bar where the `fast`-bar average moves from at-or-below to strictly above the `slow`-bar
/// average; `Sell` on the bar where it moves from at-or-above to strictly below. Needs `slow + 1` prices.
/// Invalid lengths (`fast == 0`, `fast >= slow`) and unrepresentable sums give `Hold`.
pub fn sma_crossover(window: &[Decimal], fast: usize, slow: usize) -> Signal {
    if fast == 0 || fast >= slow || window.len() < slow + 1 {
        return Signal::Hold;
    }
    let recent = &window[window.len() - (slow + 1)..];
    crossover(
        fast_minus_slow(&recent[..slow], fast),
        fast_minus_slow(&recent[1..], fast),
    )
}

/// The crossover rule over the comparisons of the previous and the current bar (`None`: beyond Decimal range).
pub(crate) fn crossover(previous: Option<Ordering>, current: Option<Ordering>) -> Signal {
    match (previous, current) {
        (Some(prev), Some(cur)) if prev.is_le() && cur.is_gt() => Signal::Buy,
        (Some(prev), Some(cur)) if prev.is_ge() && cur.is_lt() => Signal::Sell,
        _ => Signal::Hold,
    }
}

/// Compares the average of the last `fast` prices with the average of all of `prices`, exactly:
/// sum_fast / fast vs sum_slow / slow  ⇔  sum_fast × slow vs sum_slow × fast.
pub(crate) fn fast_minus_slow(prices: &[Decimal], fast: usize) -> Option<Ordering> {
    let slow = prices.len();
    let fast_sum = sum(&prices[slow - fast..])?;
    let slow_sum = sum(prices)?;
    let lhs = fast_sum.checked_mul(Decimal::from(slow))?;
    let rhs = slow_sum.checked_mul(Decimal::from(fast))?;
    Some(lhs.cmp(&rhs))
}

/// Edge-triggered bands around the `len`-bar average (which includes the newest price):
/// `Buy` when the price enters the zone more than `threshold_pct` percent below the average, `Sell` when
/// it enters the zone more than `threshold_pct` above it. Staying in a zone does not repeat the signal.
/// Needs `len + 1` prices; too few, `len < 2`, or unrepresentable sums give `Hold`.
pub fn mean_reversion(window: &[Decimal], len: usize, threshold_pct: Decimal) -> Signal {
    if len < 2 || window.len() < len + 1 {
        return Signal::Hold;
    }
    let recent = &window[window.len() - (len + 1)..];
    reversion(
        band_zone(&recent[..len], threshold_pct),
        band_zone(&recent[1..], threshold_pct),
    )
}

/// The mean-reversion rule over the zones of the previous and the current bar (`None`: beyond Decimal range).
pub(crate) fn reversion(previous: Option<Zone>, current: Option<Zone>) -> Signal {
    match (previous, current) {
        (Some(prev), Some(Zone::Below)) if prev != Zone::Below => Signal::Buy,
        (Some(prev), Some(Zone::Above)) if prev != Zone::Above => Signal::Sell,
        _ => Signal::Hold,
    }
}

/// Where a price sits relative to the bands around its average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    Below,
    Inside,
    Above,
}

/// Where the last of `prices` sits relative to the bands of their average, without dividing:
/// p < avg × (1 − t/100)  ⇔  p × n × 100 < sum × (100 − t), and likewise above.
pub(crate) fn band_zone(prices: &[Decimal], threshold_pct: Decimal) -> Option<Zone> {
    let hundred = Decimal::ONE_HUNDRED;
    let price = *prices.last()?;
    let scaled_price = price
        .checked_mul(Decimal::from(prices.len()))?
        .checked_mul(hundred)?;
    let total = sum(prices)?;
    let low = total.checked_mul(hundred.checked_sub(threshold_pct)?)?;
    let high = total.checked_mul(hundred.checked_add(threshold_pct)?)?;
    Some(if scaled_price < low {
        Zone::Below
    } else if scaled_price > high {
        Zone::Above
    } else {
        Zone::Inside
    })
}

fn sum(prices: &[Decimal]) -> Option<Decimal> {
    prices
        .iter()
        .try_fold(Decimal::ZERO, |acc, p| acc.checked_add(*p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MeanReversion, SmaCrossover};
    use rust_decimal_macros::dec;

    fn prices(values: &[i64]) -> Vec<Decimal> {
        values.iter().map(|&v| Decimal::from(v)).collect()
    }

    #[test]
    fn hold_never_trades() {
        assert_eq!(hold(&prices(&[1, 100, 1, 100])), Signal::Hold);
        assert_eq!(signal(&Strategy::Hold, &[]), Signal::Hold);
    }

    #[test]
    fn sma_crossover_buys_when_fast_crosses_above_slow() {
        // fast=1, slow=3: prev avg3(10,10,10)=10 vs 10 (equal), now avg3(10,10,13)=11 < 13.
        assert_eq!(sma_crossover(&prices(&[10, 10, 10, 13]), 1, 3), Signal::Buy);
    }

    #[test]
    fn sma_crossover_sells_when_fast_crosses_below_slow() {
        assert_eq!(sma_crossover(&prices(&[10, 10, 10, 7]), 1, 3), Signal::Sell);
    }

    #[test]
    fn sma_crossover_holds_while_fast_stays_above() {
        assert_eq!(sma_crossover(&prices(&[1, 2, 3, 4, 5]), 1, 3), Signal::Hold);
    }

    #[test]
    fn sma_crossover_holds_when_averages_touch_without_crossing() {
        // prev 12 > avg 11, now 11.5 = avg(11, 12, 11.5): touching is not a cross down…
        let touch = vec![dec!(10), dec!(11), dec!(12), dec!(11.5)];
        assert_eq!(sma_crossover(&touch, 1, 3), Signal::Hold);
        // …but leaving the touch downwards is.
        let mut leave = touch.clone();
        leave.push(dec!(11));
        assert_eq!(sma_crossover(&leave, 1, 3), Signal::Sell);
    }

    #[test]
    fn sma_crossover_needs_slow_plus_one_prices() {
        assert_eq!(sma_crossover(&prices(&[10, 10, 13]), 1, 3), Signal::Hold);
        assert_eq!(sma_crossover(&[], 1, 3), Signal::Hold);
    }

    #[test]
    fn sma_crossover_only_looks_at_the_latest_prices() {
        let mut window = prices(&[1000, 1, 1000, 1]);
        window.extend(prices(&[10, 10, 10, 13]));
        assert_eq!(sma_crossover(&window, 1, 3), Signal::Buy);
    }

    #[test]
    fn sma_crossover_with_invalid_lengths_holds() {
        let window = prices(&[10, 10, 10, 13]);
        assert_eq!(sma_crossover(&window, 0, 3), Signal::Hold);
        assert_eq!(sma_crossover(&window, 3, 3), Signal::Hold);
    }

    #[test]
    fn sma_crossover_is_exact_where_division_would_round() {
        // fast=2 avg of (1, 1.0000000000000000000000000002)/2 vs slow=3 avg including 1: a one-ulp cross.
        let tiny = dec!(0.0000000000000000000000000003);
        let window = vec![dec!(1), dec!(1), dec!(1), dec!(1) + tiny];
        assert_eq!(sma_crossover(&window, 2, 3), Signal::Buy);
    }

    #[test]
    fn sma_crossover_with_overflowing_prices_holds() {
        let window = vec![Decimal::MAX; 4];
        assert_eq!(sma_crossover(&window, 1, 3), Signal::Hold);
    }

    #[test]
    fn signal_dispatches_on_the_strategy() {
        let sma = Strategy::SmaCrossover(SmaCrossover {
            fast: 1,
            slow: 3,
            qty: dec!(1),
        });
        assert_eq!(signal(&sma, &prices(&[10, 10, 10, 13])), Signal::Buy);
        let mr = Strategy::MeanReversion(MeanReversion {
            window: 3,
            threshold_pct: dec!(10),
            qty: dec!(1),
        });
        assert_eq!(signal(&mr, &prices(&[100, 100, 100, 80])), Signal::Buy);
    }

    #[test]
    fn mean_reversion_buys_when_price_drops_below_the_lower_band() {
        // avg(100,100,80)=93.33; lower band at 10% = 84; 80 < 84 and 100 was inside.
        assert_eq!(
            mean_reversion(&prices(&[100, 100, 100, 80]), 3, dec!(10)),
            Signal::Buy
        );
    }

    #[test]
    fn mean_reversion_sells_when_price_rises_above_the_upper_band() {
        assert_eq!(
            mean_reversion(&prices(&[100, 100, 100, 125]), 3, dec!(10)),
            Signal::Sell
        );
    }

    #[test]
    fn mean_reversion_does_not_repeat_while_the_price_stays_below() {
        assert_eq!(
            mean_reversion(&prices(&[100, 100, 50, 40]), 3, dec!(10)),
            Signal::Hold
        );
    }

    #[test]
    fn mean_reversion_holds_exactly_on_the_band() {
        // Window 2 over (110, 90): sum 200, 10% lower band 90 exactly; on the band is not below it.
        assert_eq!(
            mean_reversion(&prices(&[100, 110, 90]), 2, dec!(10)),
            Signal::Hold
        );
        assert_eq!(
            mean_reversion(&prices(&[100, 110, 89]), 2, dec!(10)),
            Signal::Buy
        );
    }

    #[test]
    fn mean_reversion_needs_window_plus_one_prices() {
        assert_eq!(
            mean_reversion(&prices(&[100, 100, 80]), 3, dec!(10)),
            Signal::Hold
        );
        assert_eq!(
            mean_reversion(&prices(&[100, 80]), 1, dec!(10)),
            Signal::Hold
        );
    }

    #[test]
    fn mean_reversion_with_a_threshold_of_a_hundred_percent_never_buys() {
        assert_eq!(
            mean_reversion(&prices(&[100, 100, 100, 1]), 3, dec!(100)),
            Signal::Hold
        );
    }

    #[test]
    fn signals_map_to_sides() {
        assert_eq!(Signal::Buy.side(), Some(Side::Buy));
        assert_eq!(Signal::Sell.side(), Some(Side::Sell));
        assert_eq!(Signal::Hold.side(), None);
    }
}
