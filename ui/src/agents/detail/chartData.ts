// What the agent page's charts draw, shaped from API data by pure functions (tested without a canvas). Charts are
// the one place decimals become floats: a canvas plots numbers, and a pixel cannot show the 17th digit. Every
// figure a person reads as text stays the API's string (Money).
import type { SeriesMarkerBar, UTCTimestamp } from "lightweight-charts";
import type { Schemas } from "../../api/client";

type PnlPoint = Schemas["PnlPoint"];
type Trade = Schemas["Trade"];
type Order = Schemas["Order"];

/** Seconds since the epoch, UTC (lightweight-charts' time type; a type import, so no chart code loads here). */
export type ChartTime = UTCTimestamp;

export interface ChartPoint {
  time: ChartTime;
  value: number;
}

/** A marker as lightweight-charts' createSeriesMarkers takes it, placed by bar (above, below, in). */
export type ChartMarker = SeriesMarkerBar<ChartTime> & { id: string; text: string };

/** Colours that read on the light and the dark background alike; the legend under the chart names them. */
export const MARKER_COLORS = { buy: "#1a7f37", sell: "#cf222e", rejected: "#bf8700" } as const;

/** An RFC 3339 UTC time as whole seconds: the chart's time axis has one point per second at most. */
export function toChartTime(rfc3339: string): ChartTime {
  return Math.floor(Date.parse(rfc3339) / 1000) as ChartTime;
}

/**
 * One value per PnL point, in time order with strictly increasing times (lightweight-charts refuses anything
 * else): points come oldest first, and of two in the same second the later one is kept.
 */
function series(points: readonly PnlPoint[], value: (point: PnlPoint) => number): ChartPoint[] {
  const out: ChartPoint[] = [];
  for (const point of points) {
    const shaped = { time: toChartTime(point.at), value: value(point) };
    const last = out[out.length - 1];
    if (last && shaped.time <= last.time) out[out.length - 1] = { ...shaped, time: last.time };
    else out.push(shaped);
  }
  return out;
}

/**
 * The price each run observed. A PnL point is one run marked at its observed price (specs/03 §5), and
 * `GET …/pnl?max_points` gives the agent's whole history thinned in one answer, where `…/runs` pages 200 at a time.
 */
export function priceSeries(points: readonly PnlPoint[]): ChartPoint[] {
  return series(points, (point) => Number(point.mark_price));
}

export function equitySeries(points: readonly PnlPoint[]): ChartPoint[] {
  return series(points, (point) => Number(point.equity));
}

/**
 * Drawdown in % (≤ 0, so the chart falls below zero): the fall of equity from its running peak, the peak starting
 * at starting_cash as the summary's max_drawdown does (specs/03 §5). Over thinned points a peak between two kept
 * points is missed; the summary's figure is the exact one.
 */
export function drawdownSeries(points: readonly PnlPoint[], startingCash: string): ChartPoint[] {
  let peak = Number(startingCash);
  return series(points, (point) => {
    const equity = Number(point.equity);
    peak = Math.max(peak, equity);
    return peak > equity ? ((equity - peak) / peak) * 100 : 0;
  });
}

/** The time in `times` (ascending) nearest to `time`; the earlier one on a tie. */
export function nearestTime(times: readonly ChartTime[], time: ChartTime): ChartTime | undefined {
  let low = 0;
  let high = times.length - 1;
  if (high < 0) return undefined;
  while (low < high) {
    const middle = (low + high) >> 1;
    if ((times[middle] as number) < time) low = middle + 1;
    else high = middle;
  }
  const after = times[low] as ChartTime;
  const before = low > 0 ? (times[low - 1] as ChartTime) : undefined;
  if (before !== undefined && time - before <= after - time) return before;
  return after;
}

/**
 * The price chart's markers: an arrow up under the bar for each buy fill, down above it for each sell, and a
 * square in the bar for each signal risk rejected. Each sits on the chart's point nearest to when it happened (a
 * fill comes a moment after its run; a thinned series may not hold that run), and they come sorted by time as the
 * library wants. With no points to sit on there are no markers.
 */
export function buildMarkers(
  trades: readonly Trade[],
  rejected: readonly Order[],
  times: readonly ChartTime[],
): ChartMarker[] {
  const markers: ChartMarker[] = [];
  for (const trade of trades) {
    const time = nearestTime(times, toChartTime(trade.filled_at));
    if (time === undefined) continue;
    const buy = trade.side === "buy";
    markers.push({
      id: `fill-${trade.trade_id}`,
      time,
      position: buy ? "belowBar" : "aboveBar",
      shape: buy ? "arrowUp" : "arrowDown",
      color: buy ? MARKER_COLORS.buy : MARKER_COLORS.sell,
      text: buy ? "B" : "S",
    });
  }
  for (const order of rejected) {
    if (order.status !== "rejected") continue;
    const time = nearestTime(times, toChartTime(order.created_at));
    if (time === undefined) continue;
    markers.push({
      id: `rejected-${order.order_id}`,
      time,
      position: "inBar",
      shape: "square",
      color: MARKER_COLORS.rejected,
      text: "R",
    });
  }
  // Stable: markers on the same point keep fills before rejections, each list in the order given.
  return markers.sort((a, b) => a.time - b.time);
}
