import { describe, expect, it } from "vitest";
import { drawdownSeries, equitySeries } from "./series";

const points = [
  { at: "2026-01-01T00:01:00Z", equity: "10000", drawdown_pct: "0" },
  { at: "2026-01-01T00:02:00.000Z", equity: "9950.5", drawdown_pct: "0.4950" },
  { at: "2026-01-01T00:03:00Z", equity: "10012.345678901234567", drawdown_pct: "0" },
];

describe("chart data", () => {
  it("plots equity against whole UTC seconds", () => {
    expect(equitySeries(points)).toEqual([
      { time: Date.UTC(2026, 0, 1, 0, 1) / 1000, value: 10000 },
      { time: Date.UTC(2026, 0, 1, 0, 2) / 1000, value: 9950.5 },
      { time: Date.UTC(2026, 0, 1, 0, 3) / 1000, value: 10012.345678901234 },
    ]);
  });

  it("plots the drawdown below zero", () => {
    expect(drawdownSeries(points).map((point) => point.value)).toEqual([0, -0.495, 0]);
  });

  it("keeps times strictly increasing: bars within one second become its last one", () => {
    const series = equitySeries([
      { at: "2026-01-01T00:00:01.100Z", equity: "1", drawdown_pct: "0" },
      { at: "2026-01-01T00:00:01.900Z", equity: "2", drawdown_pct: "0" },
      { at: "2026-01-01T00:00:02.000Z", equity: "3", drawdown_pct: "0" },
    ]);
    const start = Date.UTC(2026, 0, 1) / 1000;
    expect(series).toEqual([
      { time: start + 1, value: 2 },
      { time: start + 2, value: 3 },
    ]);
  });

  it("leaves out points it cannot read, and points out of order", () => {
    const series = equitySeries([
      { at: "2026-01-01T00:00:05Z", equity: "5", drawdown_pct: "0" },
      { at: "not a time", equity: "6", drawdown_pct: "0" },
      { at: "2026-01-01T00:00:06Z", equity: "abc", drawdown_pct: "0" },
      { at: "2026-01-01T00:00:04Z", equity: "4", drawdown_pct: "0" },
      { at: "2026-01-01T00:00:07Z", equity: "7", drawdown_pct: "0" },
    ]);
    expect(series.map((point) => point.value)).toEqual([5, 7]);
  });

  it("has nothing to plot without points", () => {
    expect(equitySeries([])).toEqual([]);
    expect(drawdownSeries([])).toEqual([]);
  });
});
