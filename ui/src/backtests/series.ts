// The chart data of a backtest's result: pure functions from the API's equity points to what lightweight-charts
// plots. Charts need numbers, so only here are the decimal strings turned into floats (a chart, not an audit: every
// figure shown as text stays the API's string).
import type { Schemas } from "../api/client";

export type EquityPoint = Schemas["BacktestEquityPoint"];

/** A point as lightweight-charts takes it: `time` in whole UTC seconds. */
export interface ChartPoint {
  time: number;
  value: number;
}

/**
 * The series in time order with one point per second: lightweight-charts needs strictly increasing times, and its
 * time scale counts whole seconds, so when bars share a second the last one stands for it. Points whose time or
 * value cannot be read are left out.
 */
function toSeries(points: readonly EquityPoint[], value: (point: EquityPoint) => number): ChartPoint[] {
  const series: ChartPoint[] = [];
  for (const point of points) {
    const ms = Date.parse(point.at);
    const v = value(point);
    if (Number.isNaN(ms) || !Number.isFinite(v)) continue;
    const time = Math.floor(ms / 1000);
    const last = series[series.length - 1];
    if (last && time < last.time) continue;
    if (last && time === last.time) last.value = v;
    else series.push({ time, value: v });
  }
  return series;
}

/** Equity (money) over time. */
export function equitySeries(points: readonly EquityPoint[]): ChartPoint[] {
  return toSeries(points, (point) => Number(point.equity));
}

/** Drawdown from the running peak, as a negative percentage so the area hangs below zero. */
export function drawdownSeries(points: readonly EquityPoint[]): ChartPoint[] {
  return toSeries(points, (point) => {
    const pct = Number(point.drawdown_pct);
    return pct === 0 ? 0 : -pct;
  });
}
