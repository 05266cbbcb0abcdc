//! Trader metrics over one run's equity curve and closed trades (specs/06 §8): returns, CAGR, Sharpe, Sortino,
//! Calmar, drawdown, trade statistics, exposure and SQN. Used by backtests and by a paper agent's summary. Pure:
//! the caller hands in the points and trades it recorded; nothing here reads a clock.
//!
//! Money is `Decimal`, computed with checked operations; so is every metric but two. Anything undefined (a division
//! by zero, too few points or trades, an overflow, a CAGR over less than 30 days) is `None` (`null` in JSON), never a
//! panic and never a made-up number. Ratios and percentages are rounded to 4 dp, half to even.
//!
//! Sharpe and Sortino are the exception: statistics of one simple return per point, they are computed in `f64` from
//! exact `Decimal` equity differences, in [`returns`] (the one place the domain uses floats; why is written there).
//!
//! Roots and non-whole powers come from rust_decimal's `maths` feature (`checked_ln`, `checked_powd`), nothing
//! numeric is hand-written beyond the formulas. Square roots are `checked_powd(0.5)` (e^(½·ln x) in the library's
//! 192-bit arithmetic, good to ~25 significant digits), not `MathematicalOps::sqrt`: that one asserts after 1,000
//! iterations when its Babylonian step oscillates in the last digit (rust_decimal 1.43, paupino/rust-decimal#721,
//! e.g. `400.00000000000000000000000003`), which would panic on an ordinary-looking variance.

use chrono::{DateTime, Utc};
use rust_decimal::prelude::{MathematicalOps, RoundingStrategy};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

mod returns;

use returns::ReturnsWalk;

/// Seconds in a year of 365.25 days: the annualization unit of CAGR, Sharpe and Sortino.
pub const YEAR_S: Decimal = Decimal::from_parts(31_557_600, 0, 0, false, 0);

/// The shortest span, first point to last, that a CAGR is computed over (30 days). Compounding a few hours' return
/// to a year gives numbers like 5e28 %, which say nothing.
pub const MIN_CAGR_SPAN_S: i64 = 30 * 86_400;

/// Decimal places of every ratio, percentage and average.
pub const DP: u32 = 4;

const HALF: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

/// The account at one bar (backtest) or run (paper agent), after that bar's fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquityPoint {
    pub at: DateTime<Utc>,
    /// `cash + position_qty × mark_price`.
    pub equity: Decimal,
    pub position_qty: Decimal,
    pub mark_price: Decimal,
}

/// One closing (sell) fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosedTrade {
    pub at: DateTime<Utc>,
    /// The fill's realized PnL less that fill's fee (the caller computes it; buy fees are not in it).
    pub pnl: Decimal,
}

/// What a run recorded. `points` are in time order, one per bar or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MetricsInput<'a> {
    pub starting_cash: Decimal,
    pub points: &'a [EquityPoint],
    pub closed_trades: &'a [ClosedTrade],
    /// Fills of the run, buys and sells; passed through.
    pub fills: u64,
    /// Every fee paid; passed through.
    pub fees: Decimal,
}

/// A run's metrics (specs/06 §8). `None` (JSON `null`) where undefined. Percentages are in percent (`12.5` is
/// 12.5 %); ratios, percentages and averages are rounded to 4 dp, half to even; other amounts are exact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraderMetrics {
    /// `(last equity − starting_cash) / starting_cash × 100`.
    pub total_return_pct: Option<Decimal>,
    /// `(last mark / first mark − 1) × 100`.
    pub buy_and_hold_return_pct: Option<Decimal>,
    /// `((last equity / starting_cash)^(YEAR_S / span_s) − 1) × 100`; `None` under [`MIN_CAGR_SPAN_S`].
    pub cagr_pct: Option<Decimal>,
    /// `mean(r) / sample_stdev(r) × √periods_per_year` over the simple returns, risk-free rate 0.
    pub sharpe: Option<Decimal>,
    /// `mean(r) / √(Σ min(r, 0)² / n) × √periods_per_year`.
    pub sortino: Option<Decimal>,
    /// `cagr_pct / max_drawdown_pct`.
    pub calmar: Option<Decimal>,
    /// The largest fall of equity below its running peak (which starts at `starting_cash`), % of that peak.
    pub max_drawdown_pct: Option<Decimal>,
    /// The longest time, whole seconds, from the last point at a peak to the first point back at or above it, or
    /// to the last point if it never was.
    pub max_drawdown_duration_s: Option<i64>,
    /// The largest fall of equity below its running peak, money (not necessarily the same fall as the %).
    pub max_drawdown: Option<Decimal>,
    /// Gross profit / gross loss over closed trades; `None` without a losing trade.
    pub profit_factor: Option<Decimal>,
    /// Mean closed-trade PnL, money.
    pub expectancy: Option<Decimal>,
    /// Winning (PnL > 0) closed trades, % of all closed trades.
    pub win_rate_pct: Option<Decimal>,
    /// Mean PnL of the winning trades (> 0).
    pub avg_win: Option<Decimal>,
    /// Mean PnL of the losing trades, negative (the sign is kept).
    pub avg_loss: Option<Decimal>,
    pub best_trade: Option<Decimal>,
    pub worst_trade: Option<Decimal>,
    /// Points holding a position (`position_qty > 0`), % of all points.
    pub exposure_pct: Option<Decimal>,
    /// Closed trades.
    pub trades: u64,
    pub fills: u64,
    pub fees: Decimal,
    /// System quality number: `√n × mean(pnl) / sample_stdev(pnl)` over closed trades.
    pub sqn: Option<Decimal>,
}

/// Every metric of `input` (specs/06 §8): its points through a [`MetricsWalk`].
pub fn compute(input: &MetricsInput) -> TraderMetrics {
    let mut walk = MetricsWalk::new(input.starting_cash, input.points.len());
    for p in input.points {
        walk.point(p);
    }
    walk.finish(input.closed_trades, input.fills, input.fees)
}

/// The metrics of a series taken one point at a time, in time order: [`compute`] without the slice, for a caller
/// that makes the points as it goes and need not keep them (a long backtest keeps 8 bytes a point, the returns, instead
/// of the whole point). One pass: the returns, the drawdown and the exposure as each point comes; the first and the
/// latest point's time, equity and mark for the rest.
pub struct MetricsWalk {
    start: Decimal,
    points: usize,
    /// The first point's time and mark.
    first: Option<(DateTime<Utc>, Decimal)>,
    /// The latest point's time, equity and mark.
    last: Option<(DateTime<Utc>, Decimal, Decimal)>,
    returns: ReturnsWalk,
    /// From the first point on.
    drawdown: Option<DrawdownWalk>,
    /// Points holding a position (`position_qty > 0`).
    held: usize,
}

impl MetricsWalk {
    /// A walk from `starting_cash`, with room for `points` returns.
    pub fn new(starting_cash: Decimal, points: usize) -> Self {
        Self {
            start: starting_cash,
            points: 0,
            first: None,
            last: None,
            returns: ReturnsWalk::new(starting_cash, points),
            drawdown: None,
            held: 0,
        }
    }

    /// The next point.
    pub fn point(&mut self, p: &EquityPoint) {
        // Bit-equal to the point before, as most are while the position is flat: nothing to compare.
        let repeat = self.last.is_some_and(|(_, e, _)| same(e, p.equity));
        self.returns.point(p.equity, repeat);
        self.drawdown
            .get_or_insert_with(|| DrawdownWalk::new(self.start, p.at))
            .point(p, repeat);
        self.held += usize::from(is_positive(p.position_qty));
        self.first.get_or_insert((p.at, p.mark_price));
        self.last = Some((p.at, p.equity, p.mark_price));
        self.points += 1;
    }

    /// The metrics of the points so far, with the run's closed trades, and its `fills` and `fees` passed through.
    pub fn finish(self, closed_trades: &[ClosedTrade], fills: u64, fees: Decimal) -> TraderMetrics {
        let start = self.start;
        let returns = self.returns.finish();
        let drawdown = match (self.drawdown, self.last) {
            (Some(walk), Some((last_at, ..))) => walk.finish(last_at),
            _ => Drawdown {
                money: None,
                pct: None,
                duration_s: None,
            },
        };
        let ends = self.first.zip(self.last);
        let per_year = ends.and_then(|((first_at, _), (last_at, ..))| {
            periods_per_year(first_at, last_at, self.points)
        });
        let cagr = ends.and_then(|((first_at, _), (last_at, equity, _))| {
            cagr_pct(start, first_at, last_at, equity)
        });
        let trades = TradeStats::of(closed_trades);
        TraderMetrics {
            total_return_pct: self
                .last
                .and_then(|(_, equity, _)| percent(equity.checked_sub(start)?, start))
                .map(round),
            buy_and_hold_return_pct: ends
                .and_then(|((_, first_mark), (.., last_mark))| {
                    percent(last_mark.checked_sub(first_mark)?, first_mark)
                })
                .map(round),
            cagr_pct: cagr.map(round),
            sharpe: returns
                .as_ref()
                .zip(per_year)
                .and_then(|(r, per_year)| r.sharpe(per_year))
                .map(round),
            sortino: returns
                .as_ref()
                .zip(per_year)
                .and_then(|(r, per_year)| r.sortino(per_year))
                .map(round),
            calmar: cagr
                .zip(drawdown.pct)
                .and_then(|(cagr, dd)| ratio(cagr, dd))
                .map(round),
            max_drawdown_pct: drawdown.pct.map(round),
            max_drawdown_duration_s: drawdown.duration_s,
            max_drawdown: drawdown.money,
            profit_factor: trades.profit_factor.map(round),
            expectancy: trades.mean.map(round),
            win_rate_pct: trades.win_rate_pct.map(round),
            avg_win: trades.avg_win.map(round),
            avg_loss: trades.avg_loss.map(round),
            best_trade: trades.best,
            worst_trade: trades.worst,
            exposure_pct: percent(Decimal::from(self.held), Decimal::from(self.points)).map(round),
            trades: closed_trades.len() as u64,
            fills,
            fees,
            sqn: trades.sqn.map(round),
        }
    }
}

fn round(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(DP, RoundingStrategy::MidpointNearestEven)
}

/// `num / den`; `None` when `den` is 0 or the quotient overflows.
fn ratio(num: Decimal, den: Decimal) -> Option<Decimal> {
    if den.is_zero() {
        return None;
    }
    num.checked_div(den)
}

/// `part / whole × 100`; `None` unless `whole > 0`.
fn percent(part: Decimal, whole: Decimal) -> Option<Decimal> {
    if whole <= Decimal::ZERO {
        return None;
    }
    part.checked_div(whole)?.checked_mul(Decimal::ONE_HUNDRED)
}

/// `base ^ exp` for `base > 0`: rust_decimal's `checked_powd` (exact for a whole exponent, e^(exp·ln base)
/// otherwise). `checked_powd` takes the logarithm unchecked, so it is checked first.
fn pow(base: Decimal, exp: Decimal) -> Option<Decimal> {
    if base <= Decimal::ZERO {
        return None;
    }
    base.checked_ln()?;
    base.checked_powd(exp)
}

/// `√x` for `x ≥ 0`, as `x^0.5` (see the module doc for why not `sqrt`).
fn sqrt(x: Decimal) -> Option<Decimal> {
    if x.is_zero() {
        return Some(Decimal::ZERO);
    }
    pow(x, HALF)
}

fn sum(xs: impl IntoIterator<Item = Decimal>) -> Option<Decimal> {
    xs.into_iter()
        .try_fold(Decimal::ZERO, |acc, x| acc.checked_add(x))
}

fn sum_of_squares(xs: impl IntoIterator<Item = Decimal>) -> Option<Decimal> {
    xs.into_iter()
        .try_fold(Decimal::ZERO, |acc, x| acc.checked_add(x.checked_mul(x)?))
}

/// The mean; `None` for no values.
fn mean(xs: &[Decimal]) -> Option<Decimal> {
    ratio(sum(xs.iter().copied())?, Decimal::from(xs.len()))
}

/// `√(Σ (x − mean)² / (n − 1))`; `None` under 2 values.
fn sample_stdev(xs: &[Decimal], mean: Decimal) -> Option<Decimal> {
    if xs.len() < 2 {
        return None;
    }
    let deviations = xs
        .iter()
        .map(|x| x.checked_sub(mean))
        .collect::<Option<Vec<_>>>()?;
    let ss = sum_of_squares(deviations)?;
    sqrt(ratio(ss, Decimal::from(xs.len() - 1))?)
}

/// Seconds from `from` to `to`, to the millisecond.
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> Decimal {
    Decimal::new((to - from).num_milliseconds(), 3)
}

/// `a` and `b` are the same `Decimal` to the bit (so equal; equal values with other scales are not the same): a
/// check that costs no comparison, for series where most points repeat the one before.
fn same(a: Decimal, b: Decimal) -> bool {
    a.serialize() == b.serialize()
}

/// `d > 0` from its sign and zero bits.
fn is_positive(d: Decimal) -> bool {
    !d.is_zero() && d.is_sign_positive()
}

/// `YEAR_S / mean interval` over `points` points from `first_at` to `last_at`, the mean interval being
/// `span_s / (points − 1)`; `None` under 2 points or a span ≤ 0.
fn periods_per_year(
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    points: usize,
) -> Option<Decimal> {
    let span = seconds(first_at, last_at);
    if points < 2 || span <= Decimal::ZERO {
        return None;
    }
    ratio(YEAR_S.checked_mul(Decimal::from(points - 1))?, span)
}

/// Unrounded CAGR in percent, from `start` to the last point's `equity`.
fn cagr_pct(
    start: Decimal,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    equity: Decimal,
) -> Option<Decimal> {
    if (last_at - first_at).num_seconds() < MIN_CAGR_SPAN_S || start <= Decimal::ZERO {
        return None;
    }
    let growth = equity.checked_div(start)?;
    if growth < Decimal::ZERO {
        return None;
    }
    let annual = if growth.is_zero() {
        Decimal::ZERO
    } else {
        pow(growth, ratio(YEAR_S, seconds(first_at, last_at))?)?
    };
    annual
        .checked_sub(Decimal::ONE)?
        .checked_mul(Decimal::ONE_HUNDRED)
}

/// Drawdowns against the running peak of equity, which starts at `starting_cash` at the first point's time.
struct Drawdown {
    money: Option<Decimal>,
    /// Unrounded.
    pct: Option<Decimal>,
    duration_s: Option<i64>,
}

/// [`Drawdown`] as the points go by.
struct DrawdownWalk {
    peak: Decimal,
    /// The last point at the peak (the first point's time before any).
    peak_at: DateTime<Utc>,
    below: bool,
    money: Option<Decimal>,
    /// The fall with the largest % so far and its peak, divided once at the end: `f/p > f'/p'` is compared as
    /// `f·p' > f'·p` (peaks are positive), exact and without a division per point. Every peak is ≥ starting_cash,
    /// so a positive starting_cash makes every % defined.
    largest: Option<(Decimal, Decimal)>,
    duration_s: i64,
}

impl DrawdownWalk {
    fn new(start: Decimal, first_at: DateTime<Utc>) -> Self {
        Self {
            peak: start,
            peak_at: first_at,
            below: false,
            money: Some(Decimal::ZERO),
            largest: is_positive(start).then_some((Decimal::ZERO, start)),
            duration_s: 0,
        }
    }

    /// The next point, whose equity is `repeat`ed from the point before or not.
    fn point(&mut self, p: &EquityPoint, repeat: bool) {
        if repeat {
            // Still at the peak (whose last point moves on), or the same fall below it.
            if !self.below {
                self.peak_at = p.at;
            }
            return;
        }
        if !crate::decimal::gt(self.peak, p.equity) {
            if self.below {
                // Points are in time order: a fall lasts longest at the point that ends it.
                self.duration_s = self.duration_s.max((p.at - self.peak_at).num_seconds());
                self.below = false;
            }
            (self.peak, self.peak_at) = (p.equity, p.at);
            return;
        }
        self.below = true;
        let fall = self.peak.checked_sub(p.equity);
        self.money = self.money.zip(fall).map(|(m, f)| crate::decimal::max(m, f));
        self.largest = self
            .largest
            .zip(fall)
            .and_then(|(largest, fall)| larger_fall(largest, (fall, self.peak)));
    }

    fn finish(mut self, last_at: DateTime<Utc>) -> Drawdown {
        if self.below {
            // Still below the peak at the last point.
            self.duration_s = self.duration_s.max((last_at - self.peak_at).num_seconds());
        }
        Drawdown {
            money: self.money,
            pct: self.largest.and_then(|(fall, peak)| percent(fall, peak)),
            duration_s: Some(self.duration_s),
        }
    }
}

/// Of two (fall, peak) pairs, the one whose fall is the larger % of its peak (the first on a tie); `None` when a %
/// is beyond `Decimal`.
fn larger_fall(a: (Decimal, Decimal), b: (Decimal, Decimal)) -> Option<(Decimal, Decimal)> {
    // Of the same peak (bit for bit, as most falls below one peak are), the larger fall is the larger %: no
    // product to make.
    if same(a.1, b.1) {
        return Some(if crate::decimal::gt(b.0, a.0) { b } else { a });
    }
    let b_larger = match (b.0.checked_mul(a.1), a.0.checked_mul(b.1)) {
        (Some(left), Some(right)) => crate::decimal::gt(left, right),
        _ => percent(b.0, b.1)? > percent(a.0, a.1)?,
    };
    Some(if b_larger { b } else { a })
}

/// Closed-trade statistics, unrounded.
struct TradeStats {
    mean: Option<Decimal>,
    profit_factor: Option<Decimal>,
    win_rate_pct: Option<Decimal>,
    avg_win: Option<Decimal>,
    avg_loss: Option<Decimal>,
    best: Option<Decimal>,
    worst: Option<Decimal>,
    sqn: Option<Decimal>,
}

impl TradeStats {
    fn of(trades: &[ClosedTrade]) -> Self {
        let pnls: Vec<Decimal> = trades.iter().map(|t| t.pnl).collect();
        let wins: Vec<Decimal> = pnls
            .iter()
            .copied()
            .filter(|p| *p > Decimal::ZERO)
            .collect();
        let losses: Vec<Decimal> = pnls
            .iter()
            .copied()
            .filter(|p| *p < Decimal::ZERO)
            .collect();
        let gross_profit = sum(wins.iter().copied());
        let gross_loss = sum(losses.iter().copied()).map(|l| -l);
        let average = mean(&pnls);
        Self {
            mean: average,
            profit_factor: gross_profit.zip(gross_loss).and_then(|(p, l)| ratio(p, l)),
            win_rate_pct: percent(Decimal::from(wins.len()), Decimal::from(pnls.len())),
            avg_win: mean(&wins),
            avg_loss: mean(&losses),
            best: pnls.iter().copied().max(),
            worst: pnls.iter().copied().min(),
            sqn: average.and_then(|mean| {
                let stdev = sample_stdev(&pnls, mean)?;
                let n = sqrt(Decimal::from(pnls.len()))?;
                n.checked_mul(ratio(mean, stdev)?)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn day(d: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(d)
    }

    fn point(
        at: DateTime<Utc>,
        equity: Decimal,
        position_qty: Decimal,
        mark_price: Decimal,
    ) -> EquityPoint {
        EquityPoint {
            at,
            equity,
            position_qty,
            mark_price,
        }
    }

    fn trade(at: DateTime<Utc>, pnl: Decimal) -> ClosedTrade {
        ClosedTrade { at, pnl }
    }

    /// Equity points at `days` with equities `equity`, flat (qty 0) at mark 100.
    fn curve(days: &[i64], equity: &[Decimal]) -> Vec<EquityPoint> {
        days.iter()
            .zip(equity)
            .map(|(d, e)| point(day(*d), *e, dec!(0), dec!(100)))
            .collect()
    }

    fn metrics(
        starting_cash: Decimal,
        points: &[EquityPoint],
        closed_trades: &[ClosedTrade],
    ) -> TraderMetrics {
        compute(&MetricsInput {
            starting_cash,
            points,
            closed_trades,
            fills: 0,
            fees: dec!(0),
        })
    }

    /// Worked by hand (the square roots, ln and e^x to 30 digits with a calculator, not with this code).
    ///
    /// starting_cash 1000, no fees, a point every 10 days:
    ///
    /// | day | bar                       | cash | qty | mark | equity | r_i                   |
    /// |-----|---------------------------|------|-----|------|--------|-----------------------|
    /// | 0   | buy 5 @ 100               | 500  | 5   | 100  | 1000   | 1000/1000 − 1 = 0     |
    /// | 10  | sell 5 @ 120: pnl +100    | 1100 | 0   | 120  | 1100   | 1100/1000 − 1 = 0.1   |
    /// | 20  | buy 10 @ 110              | 0    | 10  | 110  | 1100   | 0                     |
    /// | 30  | sell 10 @ 99: pnl −110    | 990  | 0   | 99   | 990    | 990/1100 − 1 = −0.1   |
    /// | 40  | buy 11 @ 90               | 0    | 11  | 90   | 990    | 0                     |
    /// | 50  | sell 11 @ 99: pnl +99     | 1089 | 0   | 99   | 1089   | 1089/990 − 1 = 0.1    |
    ///
    /// - total return = (1089 − 1000)/1000 × 100 = 8.9
    /// - buy and hold = (99/100 − 1) × 100 = −1
    /// - span = 50 days ≥ 30; CAGR = 1.089^(365.25/50) − 1 = 1.089^7.305 − 1;
    ///   ln 1.089 = 0.08525984395082341886, × 7.305 = 0.62282315006076507480, e^that = 1.86418350827076685058
    ///   → 86.418350827…% → 86.4184
    /// - returns 0, 0.1, 0, −0.1, 0, 0.1: n = 6, mean = 0.1/6 = 0.016666…;
    ///   Σ(r − mean)² = Σr² − n·mean² = 0.03 − 0.01/6 = 0.028333…; sample variance = /5 = 0.0056666…;
    ///   stdev = 0.07527726527090809950
    /// - periods per year = 31557600 s / (50 days / 5 = 864000 s) = 36.525; √36.525 = 6.04359164735672722801
    /// - Sharpe = 0.016666…/0.07527726527090809950 × 6.04359164735672722801 = 1.33807368125622597767 → 1.3381
    /// - downside deviation = √((−0.1)²/6) = √0.0016666… = 0.04082482904638630164;
    ///   Sortino = 0.016666…/0.04082482904638630164 × 6.04359164735672722801 = 2.46728595829506556206 → 2.4673
    /// - drawdown: peak 1000 (day 0), 1100 on day 10 and again on day 20 (the last point at the peak), 990 on days
    ///   30 and 40 (fall 110 = 10 % of 1100), 1089 on day 50 (fall 11, still below): max 110 money, 10 %, never
    ///   regained, so the duration is day 20 → day 50 = 30 × 86400 = 2592000 s
    /// - Calmar = 86.418350827…/10 = 8.6418350827… → 8.6418
    /// - trades +100, −110, +99: gross profit 199, gross loss 110, profit factor 199/110 = 1.80909… → 1.8091;
    ///   expectancy 89/3 = 29.6666… → 29.6667; win rate 2/3 × 100 = 66.6667; avg win 199/2 = 99.5; avg loss −110;
    ///   best 100, worst −110
    /// - SQN: deviations from 29.6666…: 70.333…, −139.666…, 69.333…; squares 4946.777…, 19506.777…, 4807.111…,
    ///   sum 29260.666…, /2 = 14630.333…, stdev 120.95591483401435269115; √3 = 1.73205080756887729353;
    ///   SQN = 1.73205080756887729353 × 29.6666…/120.95591483401435269115 = 0.42481737274601477443 → 0.4248
    /// - exposure: qty > 0 at 3 of 6 points = 50
    #[test]
    fn a_small_run_worked_by_hand() {
        let points = [
            point(day(0), dec!(1000), dec!(5), dec!(100)),
            point(day(10), dec!(1100), dec!(0), dec!(120)),
            point(day(20), dec!(1100), dec!(10), dec!(110)),
            point(day(30), dec!(990), dec!(0), dec!(99)),
            point(day(40), dec!(990), dec!(11), dec!(90)),
            point(day(50), dec!(1089), dec!(0), dec!(99)),
        ];
        let trades = [
            trade(day(10), dec!(100)),
            trade(day(30), dec!(-110)),
            trade(day(50), dec!(99)),
        ];
        let m = compute(&MetricsInput {
            starting_cash: dec!(1000),
            points: &points,
            closed_trades: &trades,
            fills: 6,
            fees: dec!(0),
        });
        assert_eq!(
            m,
            TraderMetrics {
                total_return_pct: Some(dec!(8.9)),
                buy_and_hold_return_pct: Some(dec!(-1)),
                cagr_pct: Some(dec!(86.4184)),
                sharpe: Some(dec!(1.3381)),
                sortino: Some(dec!(2.4673)),
                calmar: Some(dec!(8.6418)),
                max_drawdown_pct: Some(dec!(10)),
                max_drawdown_duration_s: Some(2_592_000),
                max_drawdown: Some(dec!(110)),
                profit_factor: Some(dec!(1.8091)),
                expectancy: Some(dec!(29.6667)),
                win_rate_pct: Some(dec!(66.6667)),
                avg_win: Some(dec!(99.5)),
                avg_loss: Some(dec!(-110)),
                best_trade: Some(dec!(100)),
                worst_trade: Some(dec!(-110)),
                exposure_pct: Some(dec!(50)),
                trades: 3,
                fills: 6,
                fees: dec!(0),
                sqn: Some(dec!(0.4248)),
            }
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["sharpe"], "1.3381");
        assert_eq!(serde_json::from_value::<TraderMetrics>(json).unwrap(), m);
    }

    #[test]
    fn no_points_and_no_trades_leave_every_metric_undefined() {
        let m = compute(&MetricsInput {
            starting_cash: dec!(1000),
            points: &[],
            closed_trades: &[],
            fills: 2,
            fees: dec!(1.5),
        });
        assert_eq!(
            m,
            TraderMetrics {
                total_return_pct: None,
                buy_and_hold_return_pct: None,
                cagr_pct: None,
                sharpe: None,
                sortino: None,
                calmar: None,
                max_drawdown_pct: None,
                max_drawdown_duration_s: None,
                max_drawdown: None,
                profit_factor: None,
                expectancy: None,
                win_rate_pct: None,
                avg_win: None,
                avg_loss: None,
                best_trade: None,
                worst_trade: None,
                exposure_pct: None,
                trades: 0,
                fills: 2,
                fees: dec!(1.5),
                sqn: None,
            }
        );
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["sharpe"].is_null());
        assert_eq!(json["fees"], "1.5");
    }

    #[test]
    fn one_point_has_returns_and_drawdown_but_no_series_statistics() {
        let points = [point(day(0), dec!(950), dec!(1), dec!(100))];
        let m = metrics(dec!(1000), &points, &[trade(day(0), dec!(-50))]);
        assert_eq!(m.total_return_pct, Some(dec!(-5)));
        assert_eq!(m.buy_and_hold_return_pct, Some(dec!(0)));
        assert_eq!(m.cagr_pct, None);
        assert_eq!(m.sharpe, None); // one return
        assert_eq!(m.sortino, None);
        assert_eq!(m.calmar, None);
        assert_eq!(m.max_drawdown, Some(dec!(50)));
        assert_eq!(m.max_drawdown_pct, Some(dec!(5)));
        assert_eq!(m.max_drawdown_duration_s, Some(0));
        assert_eq!(m.exposure_pct, Some(dec!(100)));
        assert_eq!(m.expectancy, Some(dec!(-50)));
        assert_eq!(m.win_rate_pct, Some(dec!(0)));
        assert_eq!(m.profit_factor, Some(dec!(0)));
        assert_eq!(m.avg_win, None);
        assert_eq!(m.sqn, None); // one trade
    }

    #[test]
    fn flat_equity_has_no_sharpe_sortino_or_calmar() {
        let points = curve(&[0, 30, 60, 90], &[dec!(1000); 4]);
        let m = metrics(dec!(1000), &points, &[]);
        assert_eq!(m.total_return_pct, Some(dec!(0)));
        assert_eq!(m.cagr_pct, Some(dec!(0)));
        assert_eq!(m.sharpe, None); // stdev 0
        assert_eq!(m.sortino, None); // no negative return
        assert_eq!(m.max_drawdown_pct, Some(dec!(0)));
        assert_eq!(m.max_drawdown_duration_s, Some(0));
        assert_eq!(m.calmar, None); // max drawdown 0
        assert_eq!(m.exposure_pct, Some(dec!(0)));
    }

    #[test]
    fn a_span_under_30_days_has_no_cagr_but_keeps_its_sharpe() {
        // 1000 → 1100 in a few seconds short of 30 days would compound to ~ 219 %; it is not reported.
        let short = [
            point(day(0), dec!(1000), dec!(0), dec!(100)),
            point(day(15), dec!(1050), dec!(0), dec!(100)),
            point(
                day(30) - chrono::Duration::seconds(1),
                dec!(1100),
                dec!(0),
                dec!(100),
            ),
        ];
        let m = metrics(dec!(1000), &short, &[]);
        assert_eq!(m.cagr_pct, None);
        assert_eq!(m.calmar, None);
        assert!(m.sharpe.is_some());
        assert_eq!(m.sortino, None); // no negative return
                                     // Exactly 30 days is enough: 1.1^(365.25/30) − 1 = 1.1^12.175 − 1 = 2.19039… (ln 1.1 = 0.0953101798,
                                     // × 12.175 = 1.1604014390, e^that = 3.1911…) → 219.1…%.
        let long = curve(&[0, 30], &[dec!(1000), dec!(1100)]);
        let cagr = metrics(dec!(1000), &long, &[]).cagr_pct.unwrap();
        assert!(cagr > dec!(219) && cagr < dec!(220), "{cagr}");
    }

    #[test]
    fn without_a_losing_trade_there_is_no_profit_factor_or_average_loss() {
        let trades = [
            trade(day(1), dec!(10)),
            trade(day(2), dec!(30)),
            trade(day(3), dec!(0)),
        ];
        let m = metrics(dec!(1000), &[], &trades);
        assert_eq!(m.profit_factor, None);
        assert_eq!(m.avg_loss, None);
        assert_eq!(m.avg_win, Some(dec!(20)));
        // A zero-PnL trade counts as a trade, not as a win.
        assert_eq!(m.win_rate_pct, Some(dec!(66.6667)));
        assert_eq!(m.expectancy, Some(dec!(13.3333)));
        assert_eq!(m.best_trade, Some(dec!(30)));
        assert_eq!(m.worst_trade, Some(dec!(0)));
        // mean 40/3, deviations −10/3, 50/3, −40/3: Σ² = (100 + 2500 + 1600)/9 = 466.66…, /2 = 233.33…,
        // stdev 15.275252316519466; SQN = √3 × 13.333…/15.2752523165 = 1.5118578920 → 1.5119
        assert_eq!(m.sqn, Some(dec!(1.5119)));
        let same = [trade(day(1), dec!(5)), trade(day(2), dec!(5))];
        assert_eq!(metrics(dec!(1000), &[], &same).sqn, None); // stdev 0
    }

    #[test]
    fn drawdown_money_and_percent_are_each_the_largest_and_duration_runs_from_the_last_peak() {
        // Peak 100 → 50 (fall 50 = 50 %), → 1000 (new peak), → 900 (fall 100 = 10 %).
        let points = curve(&[0, 1, 2], &[dec!(50), dec!(1000), dec!(900)]);
        let m = metrics(dec!(100), &points, &[]);
        assert_eq!(m.max_drawdown, Some(dec!(100)));
        assert_eq!(m.max_drawdown_pct, Some(dec!(50)));
        assert_eq!(m.max_drawdown_duration_s, Some(86_400));

        // 100 on day 0, below until regained on day 4 (4 days); peak 120 on day 5, 60 on day 6 (1 day, open).
        let points = curve(
            &[0, 1, 3, 4, 5, 6],
            &[
                dec!(100),
                dec!(90),
                dec!(95),
                dec!(100),
                dec!(120),
                dec!(60),
            ],
        );
        let m = metrics(dec!(100), &points, &[]);
        assert_eq!(m.max_drawdown_duration_s, Some(4 * 86_400));
        assert_eq!(m.max_drawdown, Some(dec!(60)));
        assert_eq!(m.max_drawdown_pct, Some(dec!(50)));
    }

    #[test]
    fn a_wiped_out_or_negative_account_gives_no_ratio_built_on_it() {
        let wiped = curve(&[0, 40], &[dec!(500), dec!(0)]);
        let m = metrics(dec!(1000), &wiped, &[]);
        assert_eq!(m.total_return_pct, Some(dec!(-100)));
        assert_eq!(m.cagr_pct, Some(dec!(-100)));
        assert_eq!(m.max_drawdown_pct, Some(dec!(100)));
        assert_eq!(m.calmar, Some(dec!(-1)));
        let negative = curve(&[0, 40, 80], &[dec!(500), dec!(-10), dec!(20)]);
        let m = metrics(dec!(1000), &negative, &[]);
        // CAGR looks at the ends only: 0.02^(365.25/80) − 1 = −0.99999998… → −100.0000 %.
        assert_eq!(m.cagr_pct, Some(dec!(-100)));
        assert_eq!(m.sharpe, None); // the return on −10 is undefined
        assert_eq!(m.sortino, None);
        assert_eq!(m.max_drawdown, Some(dec!(1010)));
        assert_eq!(m.max_drawdown_pct, Some(dec!(101)));
        // A negative growth has no real power.
        assert_eq!(metrics(dec!(1000), &negative[..2], &[]).cagr_pct, None);
        let no_cash = metrics(dec!(0), &wiped, &[]);
        assert_eq!(no_cash.total_return_pct, None);
        assert_eq!(no_cash.max_drawdown_pct, None);
        assert_eq!(no_cash.sharpe, None);
    }

    #[test]
    fn the_square_root_that_makes_rust_decimal_sqrt_panic_is_computed() {
        // `dec!(400.00000000000000000000000003).sqrt()` trips rust_decimal 1.43's circuit-breaker assert.
        let root = sqrt(dec!(400.00000000000000000000000003)).unwrap();
        assert_eq!(round(root), dec!(20));
        assert_eq!(round(sqrt(dec!(36.525)).unwrap()), dec!(6.0436));
        assert_eq!(sqrt(dec!(-1)), None);
    }

    #[test]
    fn extreme_amounts_give_none_not_a_panic() {
        let points = [
            point(day(0), Decimal::MAX, Decimal::MAX, Decimal::MAX),
            point(
                day(400),
                Decimal::MIN,
                Decimal::MAX,
                dec!(0.0000000000000000000000000001),
            ),
            point(day(800), Decimal::MAX, dec!(0), Decimal::MAX),
        ];
        let trades = [
            trade(day(0), Decimal::MAX),
            trade(day(1), Decimal::MAX),
            trade(day(2), Decimal::MIN),
        ];
        let m = metrics(dec!(0.0000000000000000000000000001), &points, &trades);
        assert_eq!(m.total_return_pct, None);
        assert_eq!(m.cagr_pct, None);
        assert_eq!(m.max_drawdown, None);
        assert_eq!(m.expectancy, None);
        assert_eq!(m.best_trade, Some(Decimal::MAX));
    }

    fn any_decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            Just(Decimal::ZERO),
            (-1_000_000i64..1_000_000, 0u32..=4).prop_map(|(m, s)| Decimal::new(m, s)),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<bool>(),
                0u32..=28
            )
                .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale)),
        ]
    }

    fn any_series() -> impl Strategy<Value = (Decimal, Vec<EquityPoint>, Vec<ClosedTrade>)> {
        let step = (
            prop_oneof![Just(0i64), 1i64..120, 0i64..100_000_000],
            any_decimal(),
            any_decimal(),
            any_decimal(),
        );
        (
            any_decimal(),
            prop::collection::vec(step, 0..12),
            prop::collection::vec(any_decimal(), 0..8),
        )
            .prop_map(|(start, steps, pnls)| {
                let mut at = day(0);
                let points = steps
                    .into_iter()
                    .map(|(gap, equity, qty, mark)| {
                        at += chrono::Duration::seconds(gap);
                        point(at, equity, qty, mark)
                    })
                    .collect();
                let trades = pnls.into_iter().map(|pnl| trade(day(0), pnl)).collect();
                (start, points, trades)
            })
    }

    /// Sharpe and Sortino in `Decimal` as the formulas read (the way this module computed them before they moved
    /// to `f64`), and the % drawdown with a division per point: references for the fast paths.
    fn reference(
        start: Decimal,
        points: &[EquityPoint],
    ) -> (Option<Decimal>, Option<Decimal>, Drawdown) {
        let mut base = start;
        let returns: Vec<Decimal> = points
            .iter()
            .map(|p| {
                let r = p.equity / base - Decimal::ONE;
                base = p.equity;
                r
            })
            .collect();
        let per_year =
            periods_per_year(points[0].at, points[points.len() - 1].at, points.len()).unwrap();
        let n = Decimal::from(returns.len());
        let mean = returns.iter().sum::<Decimal>() / n;
        let ss: Decimal = returns.iter().map(|r| (r - mean) * (r - mean)).sum();
        let sharpe = (!ss.is_zero())
            .then(|| mean / sqrt(ss / (n - Decimal::ONE)).unwrap() * sqrt(per_year).unwrap());
        let down: Decimal = returns
            .iter()
            .map(|r| (*r).min(Decimal::ZERO).powi(2))
            .sum();
        let sortino =
            (!down.is_zero()).then(|| mean / sqrt(down / n).unwrap() * sqrt(per_year).unwrap());
        let (mut peak, mut peak_at, mut below) = (start, points[0].at, false);
        let (mut pct, mut money, mut duration_s) = (Decimal::ZERO, Decimal::ZERO, 0);
        for p in points {
            if p.equity >= peak {
                if below {
                    duration_s = duration_s.max((p.at - peak_at).num_seconds());
                }
                (peak, peak_at, below) = (p.equity, p.at, false);
                continue;
            }
            below = true;
            duration_s = duration_s.max((p.at - peak_at).num_seconds());
            money = money.max(peak - p.equity);
            pct = pct.max((peak - p.equity) / peak * Decimal::ONE_HUNDRED);
        }
        let drawdown = Drawdown {
            money: Some(money),
            pct: Some(pct),
            duration_s: Some(duration_s),
        };
        (sharpe, sortino, drawdown)
    }

    /// Account-like series: a few thousand points of 2 dp equity moving by up to ±3 % or staying put.
    fn account_series() -> impl Strategy<Value = (Decimal, Vec<EquityPoint>)> {
        (
            1_000i64..100_000_000,
            prop::collection::vec(prop_oneof![Just(0i64), -300i64..300], 2..3000),
        )
            .prop_map(|(start_cents, moves)| {
                let start = Decimal::new(start_cents, 2);
                let mut equity = start;
                let points = moves
                    .into_iter()
                    .enumerate()
                    .map(|(i, bps)| {
                        let step = (equity * Decimal::new(bps, 4)).round_dp(2);
                        equity = (equity + step).max(dec!(0.01));
                        point(
                            day(0) + chrono::Duration::minutes(i as i64),
                            equity,
                            dec!(1),
                            dec!(100),
                        )
                    })
                    .collect();
                (start, points)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn compute_never_panics_and_rounds_to_4_dp((start, points, trades) in any_series()) {
            let m = metrics(start, &points, &trades);
            for x in [
                m.total_return_pct, m.buy_and_hold_return_pct, m.cagr_pct, m.sharpe, m.sortino, m.calmar,
                m.max_drawdown_pct, m.profit_factor, m.expectancy, m.win_rate_pct, m.avg_win, m.avg_loss,
                m.exposure_pct, m.sqn,
            ].into_iter().flatten() {
                prop_assert!(x.scale() <= DP, "{x}");
            }
            if let Some(dd) = m.max_drawdown {
                prop_assert!(dd >= Decimal::ZERO);
            }
            prop_assert_eq!(m.trades, trades.len() as u64);
        }

        /// The `f64` Sharpe and Sortino agree with the `Decimal` formulas to the 4th decimal (one unit of it, where
        /// the two land on either side of a rounding boundary), and the drawdowns are the per-point ones exactly.
        #[test]
        fn the_fast_paths_agree_with_the_formulas((start, points) in account_series()) {
            let m = metrics(start, &points, &[]);
            let (sharpe, sortino, drawdown) = reference(start, &points);
            for (name, fast, slow) in [("sharpe", m.sharpe, sharpe), ("sortino", m.sortino, sortino)] {
                match (fast, slow) {
                    (Some(fast), Some(slow)) => prop_assert!(
                        (fast - slow).abs() <= dec!(0.0001),
                        "{name}: {fast} vs {slow}"
                    ),
                    (fast, slow) => prop_assert_eq!(fast, slow.map(round), "{}", name),
                }
            }
            prop_assert_eq!(m.max_drawdown_pct, drawdown.pct.map(round));
            prop_assert_eq!(m.max_drawdown, drawdown.money);
            prop_assert_eq!(m.max_drawdown_duration_s, drawdown.duration_s);
        }

        #[test]
        fn the_library_powers_never_panic(base in any_decimal(), exp in any_decimal()) {
            let _ = pow(base, exp);
            if let Some(root) = sqrt(base) {
                prop_assert!(root >= Decimal::ZERO);
            }
        }
    }
}
