// The agent page's three charts on lightweight-charts (v5): the observed price with fill and rejection markers,
// equity against the starting cash, and the drawdown. Loaded lazily (the library is most of the page's weight) and
// kept apart from the page so page tests can replace it: jsdom has no canvas. The data comes shaped (chartData.ts).
import {
  AreaSeries,
  BaselineSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  LineSeries,
  type DeepPartial,
  type IChartApi,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type LogicalRange,
  type SeriesType,
  type Time,
  type TimeChartOptions,
} from "lightweight-charts";
import { useEffect, useRef, useState } from "react";
import { MARKER_COLORS, type ChartMarker, type ChartPoint } from "./chartData";

export interface AgentChartsProps {
  symbol: string;
  /** The agent's starting cash (the API's decimal): the equity chart's baseline. */
  startingCash: string;
  price: ChartPoint[];
  equity: ChartPoint[];
  drawdown: ChartPoint[];
  markers: ChartMarker[];
}

export default function AgentCharts({ symbol, startingCash, price, equity, drawdown, markers }: AgentChartsProps) {
  const [group] = useState(syncGroup);
  const buys = markers.filter((marker) => marker.shape === "arrowUp").length;
  const sells = markers.filter((marker) => marker.shape === "arrowDown").length;
  const rejections = markers.length - buys - sells;
  const span = price.length > 0 ? `${utcLabel(price[0]!.time)} to ${utcLabel(price[price.length - 1]!.time)}` : "";
  return (
    <div className="charts">
      <figure>
        <figcaption>Price observed by each run, {symbol}</figcaption>
        <TimeChart
          kind="line"
          data={price}
          markers={markers}
          group={group}
          className="chart chart-price"
          label={
            price.length > 0
              ? `Price chart: ${price.length} runs from ${span}; ${buys} buy fills, ${sells} sell fills, ` +
                `${rejections} rejected signals marked.`
              : "Price chart: no runs yet."
          }
        />
        <ul className="legend" aria-label="Markers">
          <li>
            <span style={{ color: MARKER_COLORS.buy }} aria-hidden="true">▲ B</span> buy fill
          </li>
          <li>
            <span style={{ color: MARKER_COLORS.sell }} aria-hidden="true">▼ S</span> sell fill
          </li>
          <li>
            <span style={{ color: MARKER_COLORS.rejected }} aria-hidden="true">■ R</span> signal rejected by risk
          </li>
        </ul>
      </figure>
      <figure>
        <figcaption>Equity (above or below the starting cash, {startingCash})</figcaption>
        <TimeChart
          kind="baseline"
          data={equity}
          baseValue={Number(startingCash)}
          group={group}
          className="chart chart-equity"
          label={equity.length > 0 ? `Equity chart: ${equity.length} points from ${span}.` : "Equity chart: no runs yet."}
        />
      </figure>
      <figure>
        <figcaption>Drawdown from the running peak (%)</figcaption>
        <TimeChart
          kind="area"
          data={drawdown}
          group={group}
          className="chart chart-drawdown"
          percent
          label={
            drawdown.length > 0
              ? `Drawdown chart: deepest ${Math.min(...drawdown.map((point) => point.value)).toFixed(2)} % ` +
                `over the points shown.`
              : "Drawdown chart: no runs yet."
          }
        />
      </figure>
      <p className="hint">
        Times in UTC. Drag or pinch to look closer; the charts move together.{" "}
        <button type="button" className="link inline" onClick={() => group.showAll()}>
          Show the whole history
        </button>
      </p>
      <p className="hint attribution">
        Charts: TradingView Lightweight Charts™, Copyright © TradingView, Inc.{" "}
        <a href="https://www.tradingview.com/" target="_blank" rel="noopener noreferrer">
          tradingview.com
        </a>
      </p>
    </div>
  );
}

interface TimeChartProps {
  kind: "line" | "baseline" | "area";
  data: ChartPoint[];
  markers?: ChartMarker[];
  baseValue?: number;
  percent?: boolean;
  group: SyncGroup;
  className: string;
  label: string;
}

function TimeChart({ kind, data, markers, baseValue = 0, percent = false, group, className, label }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const parts = useRef<{ series: ISeriesApi<SeriesType>; markers: ISeriesMarkersPluginApi<Time> } | null>(null);

  useEffect(() => {
    const container = box.current;
    if (!container) return;
    const chart = createChart(container, chartOptions());
    const colors = palette();
    const priceFormat = percent
      ? { type: "custom" as const, minMove: 0.0001, formatter: (value: number) => `${value.toFixed(2)} %` }
      : undefined;
    const series =
      kind === "line"
        ? chart.addSeries(LineSeries, { color: colors.accent, lineWidth: 2 })
        : kind === "baseline"
          ? chart.addSeries(BaselineSeries, {
              baseValue: { type: "price", price: baseValue },
              topLineColor: colors.pos,
              bottomLineColor: colors.neg,
            })
          : chart.addSeries(AreaSeries, {
              lineColor: colors.neg,
              topColor: "rgba(207, 34, 46, 0.05)",
              bottomColor: "rgba(207, 34, 46, 0.35)",
              invertFilledArea: true,
              ...(priceFormat ? { priceFormat } : {}),
            });
    parts.current = { series, markers: createSeriesMarkers(series, []) };
    const leave = group.join(chart, container);
    // Light or dark follows the OS, as the stylesheet does.
    const scheme = window.matchMedia?.("(prefers-color-scheme: dark)");
    const restyle = () => chart.applyOptions(chartOptions());
    scheme?.addEventListener("change", restyle);
    return () => {
      scheme?.removeEventListener("change", restyle);
      leave();
      parts.current = null;
      chart.remove();
    };
  }, [kind, baseValue, percent, group]);

  useEffect(() => {
    parts.current?.series.setData(data);
    group.dataChanged();
  }, [data, group]);

  useEffect(() => {
    parts.current?.markers.setMarkers(markers ?? []);
  }, [markers]);

  return <div ref={box} className={className} role="img" aria-label={label} />;
}

/** The page's colours (styles.css custom properties), read when a chart is made or the OS scheme changes. */
function palette() {
  const css = getComputedStyle(document.documentElement);
  const get = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  return {
    fg: get("--fg", "#1b1f24"),
    muted: get("--muted", "#59636e"),
    bg: get("--bg", "#ffffff"),
    line: get("--line", "#d0d7de"),
    accent: get("--accent", "#1f4e79"),
    pos: get("--pos", "#116329"),
    neg: get("--neg", "#a40e26"),
  };
}

/** Wide enough for "10000000.00" or "-100.00 %" in the axis font. */
const PRICE_SCALE_WIDTH_PX = 84;

function chartOptions(): DeepPartial<TimeChartOptions> {
  const colors = palette();
  return {
    // Follows the container's size (a ResizeObserver): the charts fit a 390 px phone and a 1280 px screen.
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: colors.bg },
      textColor: colors.muted,
      fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
      // The logo injects a <style> element, which the dashboard's Content-Security-Policy (no inline styles)
      // blocks; the attribution the licence asks for is a line under the charts instead.
      attributionLogo: false,
    },
    grid: { vertLines: { color: colors.line }, horzLines: { color: colors.line } },
    // One width for the three price scales, so their time axes line up under each other.
    rightPriceScale: { borderColor: colors.line, minimumWidth: PRICE_SCALE_WIDTH_PX },
    timeScale: { borderColor: colors.line, timeVisible: true, secondsVisible: true },
    localization: { timeFormatter: (time: Time) => `${utcLabel(time as number)} UTC` },
  };
}

/** Seconds since the epoch as "2026-12-02 12:00:08" (UTC). */
function utcLabel(seconds: number): string {
  const iso = new Date(seconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}

type SyncGroup = ReturnType<typeof syncGroup>;

/**
 * The charts scroll and zoom together (their points share times, so a logical range means the same runs on each),
 * and follow the newest data until the person moves one; "Show the whole history" lets go again.
 */
function syncGroup() {
  const charts = new Map<IChartApi, (range: LogicalRange | null) => void>();
  let moving = false;
  let held = false;
  const showAll = () => {
    held = false;
    for (const chart of charts.keys()) chart.timeScale().fitContent();
  };
  return {
    join(chart: IChartApi, container: HTMLElement) {
      const follow = (range: LogicalRange | null) => {
        if (moving || !range) return;
        moving = true;
        for (const other of charts.keys()) if (other !== chart) other.timeScale().setVisibleLogicalRange(range);
        moving = false;
      };
      const hold = () => (held = true);
      chart.timeScale().subscribeVisibleLogicalRangeChange(follow);
      container.addEventListener("pointerdown", hold);
      container.addEventListener("wheel", hold, { passive: true });
      charts.set(chart, follow);
      return () => {
        chart.timeScale().unsubscribeVisibleLogicalRangeChange(follow);
        container.removeEventListener("pointerdown", hold);
        container.removeEventListener("wheel", hold);
        charts.delete(chart);
      };
    },
    dataChanged() {
      if (!held) showAll();
    },
    showAll,
  };
}
