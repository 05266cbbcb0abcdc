// The equity and drawdown charts of a backtest (lightweight-charts v5, which draws on a canvas). Kept apart so the
// page loads it lazily (the library is most of its weight) and tests replace it (jsdom has no canvas); the data it
// plots comes from the pure functions of series.ts.
import { AreaSeries, createChart, LineSeries, type UTCTimestamp } from "lightweight-charts";
import { useEffect, useMemo, useRef } from "react";
import { drawdownSeries, equitySeries, type ChartPoint, type EquityPoint } from "./series";

export default function BacktestCharts({ points }: { points: readonly EquityPoint[] }) {
  // The query cache keeps `points` the same object until the data changes, so the charts are drawn once.
  const equity = useMemo(() => equitySeries(points), [points]);
  const drawdown = useMemo(() => drawdownSeries(points), [points]);
  return (
    <div className="charts">
      <figure>
        <figcaption>Equity</figcaption>
        <Chart kind="equity" data={equity} label="Chart of the equity after each bar" />
      </figure>
      <figure>
        <figcaption>Drawdown from the running peak (%)</figcaption>
        <Chart kind="drawdown" data={drawdown} label="Chart of the drawdown from the running peak after each bar" />
      </figure>
    </div>
  );
}

function Chart({ kind, data, label }: { kind: "equity" | "drawdown"; data: ChartPoint[]; label: string }) {
  const container = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const style = getComputedStyle(element);
    const colour = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
    const chart = createChart(element, {
      autoSize: true,
      layout: {
        background: { color: "transparent" },
        textColor: colour("--muted", "#59636e"),
        attributionLogo: true,
      },
      grid: {
        vertLines: { color: colour("--line", "#d0d7de") },
        horzLines: { color: colour("--line", "#d0d7de") },
      },
      timeScale: { timeVisible: true, secondsVisible: false },
      handleScroll: false,
      handleScale: false,
    });
    const points = data.map((point) => ({ time: point.time as UTCTimestamp, value: point.value }));
    if (kind === "equity") {
      const series = chart.addSeries(LineSeries, { color: colour("--accent", "#1f4e79"), lineWidth: 2 });
      series.setData(points);
    } else {
      const negative = colour("--neg", "#a40e26");
      const series = chart.addSeries(AreaSeries, {
        lineColor: negative,
        topColor: `${negative}10`,
        bottomColor: `${negative}60`,
        lineWidth: 1,
        priceFormat: { type: "custom", formatter: (value: number) => `${value.toFixed(2)}%`, minMove: 0.0001 },
      });
      series.setData(points);
    }
    chart.timeScale().fitContent();
    return () => chart.remove();
  }, [kind, data]);

  return <div ref={container} className="chart" role="img" aria-label={label} />;
}
