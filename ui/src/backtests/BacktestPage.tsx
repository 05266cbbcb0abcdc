// One backtest (GET /api/v1/backtests/{id}): its progress while requested or running (fetched again every second
// until it finishes: the API has no live stream for backtests), a cancel button for traders, and once completed the
// parity verdict (for an agent's own observations), the summary, the trader metrics, the equity and drawdown charts
// and the orders and trades; a failed backtest shows its error.
import { lazy, Suspense, useState, type ReactNode } from "react";
import { ApiError, type Schemas } from "../api/client";
import { useCanTrade } from "../auth/me";
import { Money } from "../money/Money";
import { OrderCells, OrderHeads, TradeCells, TradeHeads } from "../trading/cells";
import { followLink } from "../router";
import { formatCount, parityOf, parityText, progressOf, progressText, sourceLabel, strategyText, type Parity } from "./format";
import { formatInstant } from "../format/time";
import { isUnfinished, useBacktest, useCancelBacktest, type Backtest } from "./queries";
import { useBacktestsStream } from "./stream";

// lightweight-charts is most of this page's weight: loaded when a result is shown, not with the app.
const BacktestCharts = lazy(() => import("./BacktestCharts"));

type Metrics = Schemas["TraderMetrics"];
type Order = Schemas["Order"];
type Trade = Schemas["Trade"];

export function BacktestPage({ id }: { id: string }) {
  const backtest = useBacktest(id);
  useBacktestsStream();
  return (
    <section aria-labelledby="backtest-title" className="backtest">
      <p className="crumbs">
        <a href="/backtests" onClick={followLink("/backtests")}>
          Backtests
        </a>
      </p>
      {backtest.isPending ? (
        <>
          <h1 id="backtest-title">Backtest</h1>
          <p role="status" aria-live="polite">
            Loading the backtest…
          </p>
        </>
      ) : backtest.isError ? (
        <>
          <h1 id="backtest-title">Backtest</h1>
          <div role="alert" className="error">
            {backtest.error instanceof ApiError && backtest.error.status === 404 ? (
              <p>There is no such backtest, or it is not yours.</p>
            ) : (
              <>
                <p>Could not load the backtest: {backtest.error.message}</p>
                <button type="button" onClick={() => void backtest.refetch()}>
                  Try again
                </button>
              </>
            )}
          </div>
        </>
      ) : (
        <BacktestView backtest={backtest.data} />
      )}
    </section>
  );
}

function BacktestView({ backtest }: { backtest: Backtest }) {
  const parity = parityOf(backtest);
  return (
    <>
      <div className="page-head">
        <h1 id="backtest-title">
          Backtest of {backtest.config.name}{" "}
          <span className={`status status-${backtest.status}`}>{backtest.status}</span>
        </h1>
      </div>
      {isUnfinished(backtest.status) && <Running backtest={backtest} />}
      {backtest.status === "failed" && (
        <div role="alert" className="banner banner-bad">
          <h2>The backtest failed</h2>
          <p>{backtest.error ?? "The runner gave no reason."}</p>
        </div>
      )}
      {backtest.status === "cancelled" && (
        <p className="banner">Cancelled at {formatInstant(backtest.cancelled_at)}: no result.</p>
      )}
      {parity && <ParityVerdict parity={parity} />}
      {backtest.status === "completed" && backtest.source.kind === "observations" && !parity && (
        <p className="banner">The server sent no parity verdict for this backtest.</p>
      )}
      <About backtest={backtest} />
      {backtest.summary && <Summary backtest={backtest} summary={backtest.summary} />}
      {backtest.result && <Result result={backtest.result} />}
    </>
  );
}

function About({ backtest }: { backtest: Backtest }) {
  const { config, fill_model: fill } = backtest;
  return (
    <dl className="facts">
      <Fact term="Agent">
        {config.name} ({config.symbol}, {strategyText(config.strategy)})
      </Fact>
      <Fact term="Starting cash">
        <Money value={config.starting_cash} />
      </Fact>
      <Fact term="Source">{sourceLabel(backtest.source)}</Fact>
      <Fact term="Fill model">
        slippage {fill.slippage_bps} bps, fee {fill.fee_bps} bps
      </Fact>
      <Fact term="Requested">
        <time dateTime={backtest.requested_at}>{formatInstant(backtest.requested_at)}</time>
      </Fact>
      {backtest.started_at && <Fact term="Started">{formatInstant(backtest.started_at)}</Fact>}
      {backtest.completed_at && <Fact term="Completed">{formatInstant(backtest.completed_at)}</Fact>}
      {backtest.failed_at && <Fact term="Failed">{formatInstant(backtest.failed_at)}</Fact>}
      {backtest.attempts > 1 && <Fact term="Attempts">{backtest.attempts} (a runner was taken over)</Fact>}
    </dl>
  );
}

function Fact({ term, children }: { term: string; children: ReactNode }) {
  return (
    <div>
      <dt>{term}</dt>
      <dd>{children}</dd>
    </div>
  );
}

function Running({ backtest }: { backtest: Backtest }) {
  const canTrade = useCanTrade();
  const cancel = useCancelBacktest(backtest.backtest_id);
  const progress = progressOf(backtest);
  const text = progress
    ? progressText(progress)
    : backtest.status === "requested"
      ? "Waiting for a runner to take it."
      : "Starting: no progress reported yet.";
  return (
    <div className="running">
      <label htmlFor="backtest-progress">Progress</label>
      <progress
        id="backtest-progress"
        value={progress && progress.percent !== null ? progress.done : undefined}
        max={progress && progress.total > 0 ? progress.total : undefined}
        aria-valuetext={text}
      />
      <p aria-live="polite" className="hint">
        {text}
      </p>
      {canTrade && (
        <button type="button" className="danger" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
          {cancel.isPending ? "Cancelling…" : "Cancel backtest"}
        </button>
      )}
      {cancel.isError && (
        <p role="alert" className="error">
          {cancel.error instanceof ApiError && cancel.error.status === 409
            ? "It had already finished."
            : `Could not cancel: ${cancel.error.message}`}
        </p>
      )}
    </div>
  );
}

function ParityVerdict({ parity }: { parity: Parity }) {
  const { title, detail } = parityText(parity);
  const tone = parity.verdict === "equal" ? "good" : parity.verdict === "differs" ? "bad" : "warn";
  return (
    <section className={`banner banner-${tone} parity`} aria-labelledby="parity-title">
      <h2 id="parity-title">{title}</h2>
      <p>{detail}</p>
    </section>
  );
}

function Summary({ backtest, summary }: { backtest: Backtest; summary: Schemas["BacktestSummary"] }) {
  return (
    <section aria-labelledby="summary-title">
      <h2 id="summary-title">Summary</h2>
      <dl className="facts figures">
        <Fact term="Bars">{formatCount(summary.bars)}</Fact>
        <Fact term="Orders">{formatCount(summary.orders)}</Fact>
        <Fact term="Fills">{formatCount(summary.fills)}</Fact>
        {backtest.result && <Fact term="Rejected orders">{formatCount(backtest.result.rejected_orders)}</Fact>}
        <Fact term="Final cash">
          <Money value={summary.final_cash} />
        </Fact>
        <Fact term="Final position">
          <Money value={summary.final_position} /> {backtest.config.symbol}
        </Fact>
        <Fact term="Final equity">
          <Money value={summary.final_equity} />
        </Fact>
        <Fact term="PnL">
          <Money value={summary.pnl} signed />
        </Fact>
        <Fact term="Return">
          <Money value={summary.return_pct} suffix="%" signed />
        </Fact>
        {backtest.result && (
          <Fact term="Max drawdown">
            <Money value={backtest.result.max_drawdown_pct} suffix="%" />
          </Fact>
        )}
      </dl>
    </section>
  );
}

function Result({ result }: { result: Schemas["BacktestResult"] }) {
  return (
    <>
      <MetricsTable metrics={result.metrics} />
      <section aria-labelledby="charts-title">
        <h2 id="charts-title">Equity and drawdown</h2>
        {result.equity.length === 0 ? (
          <p className="empty">No bars, so nothing to chart.</p>
        ) : (
          <Suspense fallback={<p role="status">Loading the charts…</p>}>
            <BacktestCharts points={result.equity} />
          </Suspense>
        )}
        <p className="hint">
          At most 1,000 points (the first, the last and evenly between): a chart, not an audit. The figures above are
          exact.
        </p>
      </section>
      <TradesTable trades={result.trades} truncated={result.trades_truncated} />
      <OrdersTable orders={result.orders} truncated={result.orders_truncated} />
    </>
  );
}

interface MetricRow {
  key: keyof Metrics;
  label: string;
  unit?: "%" | "money" | "seconds" | "count";
  signed?: boolean;
  /** Why the figure can be undefined (specs/06 §8). */
  undefinedWhen: string;
}

/** The trader metrics in the order traders read them, each with when it is undefined (specs/06 §8). */
export const METRIC_ROWS: MetricRow[] = [
  { key: "total_return_pct", label: "Total return", unit: "%", signed: true, undefinedWhen: "no bars" },
  { key: "buy_and_hold_return_pct", label: "Buy and hold return", unit: "%", signed: true, undefinedWhen: "no bars, or the first price is not above 0" },
  { key: "cagr_pct", label: "CAGR", unit: "%", signed: true, undefinedWhen: "the run spans less than 30 days (or equity fell below 0)" },
  { key: "sharpe", label: "Sharpe ratio", signed: true, undefinedWhen: "fewer than 2 returns, or every return equal (flat equity)" },
  { key: "sortino", label: "Sortino ratio", signed: true, undefinedWhen: "fewer than 2 returns, or no negative return" },
  { key: "calmar", label: "Calmar ratio", signed: true, undefinedWhen: "CAGR or the max drawdown is undefined, or the max drawdown is 0" },
  { key: "max_drawdown_pct", label: "Max drawdown", unit: "%", undefinedWhen: "no bars" },
  { key: "max_drawdown", label: "Max drawdown (money)", unit: "money", undefinedWhen: "no bars" },
  { key: "max_drawdown_duration_s", label: "Longest drawdown", unit: "seconds", undefinedWhen: "no bars" },
  { key: "exposure_pct", label: "Exposure (bars in a position)", unit: "%", undefinedWhen: "no bars" },
  { key: "trades", label: "Closed trades", unit: "count", undefinedWhen: "" },
  { key: "fills", label: "Fills", unit: "count", undefinedWhen: "" },
  { key: "win_rate_pct", label: "Win rate", unit: "%", undefinedWhen: "no closed trade" },
  { key: "profit_factor", label: "Profit factor", undefinedWhen: "no losing trade" },
  { key: "expectancy", label: "Expectancy (per trade)", unit: "money", signed: true, undefinedWhen: "no closed trade" },
  { key: "avg_win", label: "Average win", unit: "money", signed: true, undefinedWhen: "no winning trade" },
  { key: "avg_loss", label: "Average loss", unit: "money", signed: true, undefinedWhen: "no losing trade" },
  { key: "best_trade", label: "Best trade", unit: "money", signed: true, undefinedWhen: "no closed trade" },
  { key: "worst_trade", label: "Worst trade", unit: "money", signed: true, undefinedWhen: "no closed trade" },
  { key: "sqn", label: "SQN", signed: true, undefinedWhen: "fewer than 2 closed trades, or all with the same PnL" },
  { key: "fees", label: "Fees", unit: "money", undefinedWhen: "" },
];

/** "2592000 s (30 d)": a duration in whole seconds, with a readable unit beside. */
export function durationText(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const units: [number, string][] = [
    [86_400, "d"],
    [3_600, "h"],
    [60, "min"],
  ];
  const [size, name] = units.find(([size]) => seconds >= size) ?? [60, "min"];
  const amount = Math.round((seconds / size) * 10) / 10;
  return `${formatCount(seconds)} s (${amount} ${name})`;
}

function MetricsTable({ metrics }: { metrics: Metrics }) {
  return (
    <section aria-labelledby="metrics-title">
      <h2 id="metrics-title">Trader metrics</h2>
      <table className="metrics">
        <caption className="hint">
          Ratios and percentages rounded to 4 places; money exact. A dash is a figure that is undefined for this run
          (hover or focus it for why).
        </caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col" className="num">
              Value
            </th>
          </tr>
        </thead>
        <tbody>
          {METRIC_ROWS.map((row) => (
            <tr key={row.key}>
              <th scope="row">{row.label}</th>
              <td className="num">
                <MetricValue row={row} value={metrics[row.key]} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function MetricValue({ row, value }: { row: MetricRow; value: string | number | null | undefined }) {
  if (value === null || value === undefined) {
    const why = `Undefined: ${row.undefinedWhen || "not given"}`;
    return (
      <span className="muted undefined" title={why} tabIndex={0}>
        <span aria-hidden="true">—</span>
        <span className="visually-hidden">{why}</span>
      </span>
    );
  }
  if (typeof value === "number") {
    return <>{row.unit === "seconds" ? durationText(value) : formatCount(value)}</>;
  }
  return <Money value={value} suffix={row.unit === "%" ? "%" : ""} signed={row.signed} />;
}

/** Rows shown at first, and added by each "Show more". */
const ROWS_STEP = 100;

function TradesTable({ trades, truncated }: { trades: Trade[]; truncated: boolean }) {
  const [shown, setShown] = useState(ROWS_STEP);
  return (
    <section aria-labelledby="trades-title">
      <h2 id="trades-title">Trades</h2>
      {trades.length === 0 ? (
        <p className="empty">No trades: no order filled.</p>
      ) : (
        <div className="scroll">
          <table className="rows">
            <caption className="hint">
              {formatCount(trades.length)} fills in run order{truncated ? " (the first 10,000; there were more)" : ""}
            </caption>
            <thead>
              <tr>
                <th scope="col">Filled</th>
                <TradeHeads />
              </tr>
            </thead>
            <tbody>
              {trades.slice(0, shown).map((trade) => (
                <tr key={trade.trade_id}>
                  <td>{formatInstant(trade.filled_at)}</td>
                  <TradeCells trade={trade} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ShowMore shown={shown} total={trades.length} what="trades" onMore={() => setShown(shown + ROWS_STEP)} />
    </section>
  );
}

function OrdersTable({ orders, truncated }: { orders: Order[]; truncated: boolean }) {
  const [shown, setShown] = useState(ROWS_STEP);
  const [onlyRejected, setOnlyRejected] = useState(false);
  const rejected = orders.filter((order) => order.status === "rejected").length;
  const visible = onlyRejected ? orders.filter((order) => order.status === "rejected") : orders;
  return (
    <section aria-labelledby="orders-title">
      <h2 id="orders-title">Orders</h2>
      {orders.length === 0 ? (
        <p className="empty">No orders: the strategy never signalled.</p>
      ) : (
        <>
          {rejected > 0 && (
            <label className="inline">
              <input type="checkbox" checked={onlyRejected} onChange={(event) => setOnlyRejected(event.target.checked)} />{" "}
              Only the {formatCount(rejected)} rejected
            </label>
          )}
          <div className="scroll">
            <table className="rows">
              <caption className="hint">
                {formatCount(orders.length)} orders in run order{truncated ? " (the first 10,000; there were more)" : ""}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Bar</th>
                  <OrderHeads />
                </tr>
              </thead>
              <tbody>
                {visible.slice(0, shown).map((order) => (
                  <tr key={order.order_id}>
                    <td>{formatInstant(order.observation.observed_at)}</td>
                    <OrderCells order={order} />
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <ShowMore shown={shown} total={visible.length} what="orders" onMore={() => setShown(shown + ROWS_STEP)} />
        </>
      )}
    </section>
  );
}

function ShowMore({ shown, total, what, onMore }: { shown: number; total: number; what: string; onMore: () => void }) {
  if (shown >= total) return null;
  return (
    <button type="button" className="secondary" onClick={onMore}>
      Show {Math.min(ROWS_STEP, total - shown)} more {what} ({formatCount(total - shown)} not shown)
    </button>
  );
}
