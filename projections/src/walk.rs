//! What a backtest computes as its runs go instead of keeping every point and row: the trader metrics
//! ([`TraderMetricsWalk`]) and what a stored result shows — the equity series thinned for a chart ([`SeriesWalk`]) and
//! the first [`MAX_RESULT_ROWS`] orders and fills (kept by the recorder, `record::Keep::Report`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use strom_domain::metrics::{self, ClosedTrade, MetricsWalk, TraderMetrics};

use crate::ledger::{fills, percent, revalue_last, PositionRow};
use crate::queries::{thinned, Thinned};

/// Most points of the equity/drawdown series a result keeps: a chart is at most a few thousand pixels wide, and 1000
/// points of JSON are ~100 KB.
pub const MAX_SERIES_POINTS: usize = 1_000;
/// Most orders (and most trades) a result keeps, the first ones in run order: ~5 MB of JSON at most; the summary
/// counts them all and `orders_truncated`/`trades_truncated` say when the lists stop short.
pub const MAX_RESULT_ROWS: usize = 10_000;

/// One point of a result's equity series with its drawdown from the running peak (peak starting at starting_cash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EquityPoint {
    #[serde(with = "strom_domain::time::rfc3339_millis")]
    pub at: DateTime<Utc>,
    pub equity: Decimal,
    /// `(peak − equity) / peak × 100`, 4 dp (half to even); 0 at a new peak.
    pub drawdown_pct: Decimal,
}

/// A result's equity series as its points come, oldest first: every point moves the running peak (from the
/// starting cash), and the points [`thinned`] keeps of all `points` (first, last, evenly between) are kept with their
/// drawdown % (a division only for those).
pub struct SeriesWalk {
    keep: std::iter::Peekable<Thinned>,
    index: usize,
    peak: Decimal,
    series: Vec<EquityPoint>,
}

impl SeriesWalk {
    /// A walk over `points` points (exactly that many must come) from `starting_cash`.
    pub fn new(points: usize, starting_cash: Decimal) -> Self {
        Self {
            keep: thinned(points, MAX_SERIES_POINTS).peekable(),
            index: 0,
            peak: starting_cash,
            series: Vec::with_capacity(points.min(MAX_SERIES_POINTS)),
        }
    }

    /// The next point.
    pub fn point(&mut self, p: &metrics::EquityPoint) {
        self.peak = self.peak.max(p.equity);
        if self.keep.next_if_eq(&self.index).is_some() {
            let drawdown_pct = if self.peak > Decimal::ZERO {
                percent(self.peak - p.equity, self.peak, 4)
            } else {
                Decimal::ZERO
            };
            self.series.push(EquityPoint {
                at: p.at,
                equity: p.equity,
                drawdown_pct,
            });
        }
        self.index += 1;
    }

    /// The kept points.
    pub fn finish(self) -> Vec<EquityPoint> {
        self.series
    }
}

/// [`crate::ledger::trader_metrics`] over PnL points handed over one at a time and not kept (a long backtest): each
/// point goes through the metrics' walk (and a result's thinned series, [`SeriesWalk`], when asked for) once the next
/// one comes, the last one revalued at the end.
#[derive(Default)]
pub struct TraderMetricsWalk {
    /// Made at the second point, when the first joins it: by then the starting cash is the agent's for good (it
    /// changes only before the first run).
    walks: Option<(MetricsWalk, Option<SeriesWalk>)>,
    /// The latest point, not walked yet: it may be the last.
    pending: Option<metrics::EquityPoint>,
    /// Points expected.
    points: usize,
    /// Whether to make the thinned series too.
    series: bool,
}

impl TraderMetricsWalk {
    /// A walk of `points` points (the returns' room; the series' thinning, when `series`, needs exactly that many).
    pub fn new(points: usize, series: bool) -> Self {
        Self {
            walks: None,
            pending: None,
            points,
            series,
        }
    }

    /// The next PnL point of the agent or backtest whose position is now `position`.
    pub fn point(&mut self, position: &PositionRow, point: metrics::EquityPoint) {
        if let Some(previous) = self.pending.replace(point) {
            self.walk(position, &previous);
        }
    }

    /// Takes `point` through the walks, made at the first.
    fn walk(&mut self, position: &PositionRow, point: &metrics::EquityPoint) {
        let (points, series, start) = (self.points, self.series, position.starting_cash);
        let (metrics, series) = self.walks.get_or_insert_with(|| {
            (
                MetricsWalk::new(start, points),
                series.then(|| SeriesWalk::new(points, start)),
            )
        });
        metrics.point(point);
        if let Some(series) = series {
            series.point(point);
        }
    }

    /// The metrics, as [`crate::ledger::trader_metrics`] gives them over the same points and trades, and the thinned
    /// series when asked for.
    pub fn finish(
        mut self,
        position: &PositionRow,
        closed_trades: &[ClosedTrade],
    ) -> (TraderMetrics, Option<Vec<EquityPoint>>) {
        if let Some(mut last) = self.pending.take() {
            revalue_last(position, &mut last);
            self.walk(position, &last);
        }
        let series = self.series;
        let (metrics, series) = self.walks.unwrap_or_else(|| {
            let start = position.starting_cash;
            (
                MetricsWalk::new(start, 0),
                series.then(|| SeriesWalk::new(0, start)),
            )
        });
        (
            metrics.finish(closed_trades, fills(position), position.fees),
            series.map(SeriesWalk::finish),
        )
    }
}
