import { describe, expect, it } from "vitest";
import type { Schemas } from "../../api/client";
import { order, pnlPoint, rejectedOrder, trade } from "../../test/agentDetail";
import {
  buildMarkers,
  drawdownSeries,
  equitySeries,
  MARKER_COLORS,
  nearestTime,
  priceSeries,
  toChartTime,
  type ChartTime,
} from "./chartData";

const points = (list: Record<string, unknown>[]) => list as unknown as Schemas["PnlPoint"][];
const trades = (list: Record<string, unknown>[]) => list as unknown as Schemas["Trade"][];
const orders = (list: Record<string, unknown>[]) => list as unknown as Schemas["Order"][];
const t = (rfc3339: string) => toChartTime(rfc3339);

describe("chart series", () => {
  it("plots each run's observed price (the PnL point's mark price) at its second", () => {
    const series = priceSeries(
      points([pnlPoint(1, { mark_price: "64012.50" }), pnlPoint(2, { mark_price: "64020.125" })]),
    );
    expect(series).toEqual([
      { time: t("2026-12-02T12:00:02Z"), value: 64012.5 },
      { time: t("2026-12-02T12:00:04Z"), value: 64020.125 },
    ]);
  });

  it("keeps the later of two points in the same second, so times strictly increase", () => {
    const series = equitySeries(
      points([
        pnlPoint(1, { at: "2026-12-02T12:00:02.100Z", equity: "10000" }),
        pnlPoint(2, { at: "2026-12-02T12:00:02.900Z", equity: "10001.5" }),
        pnlPoint(3, { at: "2026-12-02T12:00:03.000Z", equity: "10002" }),
      ]),
    );
    expect(series.map((point) => point.value)).toEqual([10001.5, 10002]);
    expect(series[0]!.time).toBeLessThan(series[1]!.time);
  });

  it("measures drawdown from the running peak, which starts at the starting cash", () => {
    const series = drawdownSeries(
      points([
        pnlPoint(1, { equity: "9900" }), // already 1 % under the starting cash
        pnlPoint(2, { equity: "11000" }), // a new peak
        pnlPoint(3, { equity: "9900" }), // 10 % under it
      ]),
      "10000",
    );
    expect(series.map((point) => point.value)).toEqual([-1, 0, -10]);
    expect(Object.is(series[1]!.value, 0)).toBe(true); // not -0, which an axis label would show as "-0.00"
  });
});

describe("nearestTime", () => {
  const times = [10, 20, 30] as ChartTime[];
  it("finds the nearest point, the earlier on a tie, and clamps at both ends", () => {
    expect(nearestTime(times, 14 as ChartTime)).toBe(10);
    expect(nearestTime(times, 15 as ChartTime)).toBe(10);
    expect(nearestTime(times, 16 as ChartTime)).toBe(20);
    expect(nearestTime(times, 5 as ChartTime)).toBe(10);
    expect(nearestTime(times, 99 as ChartTime)).toBe(30);
    expect(nearestTime([], 10 as ChartTime)).toBeUndefined();
  });
});

describe("buildMarkers", () => {
  const times = [1, 2, 3, 4].map((tick) => t(pnlPoint(tick).at));

  it("marks buys, sells and rejected signals each their own way", () => {
    const markers = buildMarkers(
      trades([trade(2, { side: "sell" }), trade(1, { side: "buy" })]),
      orders([rejectedOrder(3)]),
      times,
    );
    expect(markers).toEqual([
      {
        id: expect.stringContaining("fill-"),
        time: times[0],
        position: "belowBar",
        shape: "arrowUp",
        color: MARKER_COLORS.buy,
        text: "B",
      },
      {
        id: expect.stringContaining("fill-"),
        time: times[1],
        position: "aboveBar",
        shape: "arrowDown",
        color: MARKER_COLORS.sell,
        text: "S",
      },
      {
        id: expect.stringContaining("rejected-"),
        time: times[2],
        position: "inBar",
        shape: "square",
        color: MARKER_COLORS.rejected,
        text: "R",
      },
    ]);
    expect(new Set(markers.map((marker) => `${marker.shape} ${marker.color}`)).size).toBe(3);
  });

  it("puts a fill on the nearest point of a thinned series", () => {
    const thinned = [times[0]!, times[3]!]; // ticks 1 and 4 kept
    const markers = buildMarkers(trades([trade(2), trade(3, { side: "sell" })]), [], thinned);
    expect(markers.map((marker) => marker.time)).toEqual([thinned[0], thinned[1]]);
  });

  it("comes sorted by time (the API lists newest first), fills before rejections on one point", () => {
    const markers = buildMarkers(
      trades([trade(4), trade(3, { side: "sell" }), trade(1)]),
      orders([rejectedOrder(4), rejectedOrder(2)]),
      times,
    );
    expect(markers.map((marker) => `${marker.time - times[0]!}:${marker.text}`)).toEqual([
      "0:B",
      "2:R",
      "4:S",
      "6:B",
      "6:R",
    ]);
  });

  it("marks only rejected orders, and nothing without points to sit on", () => {
    expect(buildMarkers([], orders([order(1), order(2, { status: "accepted" })]), times)).toEqual([]);
    expect(buildMarkers(trades([trade(1)]), orders([rejectedOrder(1)]), [])).toEqual([]);
  });
});
