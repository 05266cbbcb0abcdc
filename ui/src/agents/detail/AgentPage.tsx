// The agent page (/agents/<id>): what the agent is and does now (status, countdown, commands), its results (summary
// and trader metrics from GET …/summary), its charts, and its runs, orders and trades. One SSE stream keeps it live.
import { lazy, Suspense, useMemo, useState, type MouseEvent, type ReactNode } from "react";
import { ApiError, type Agent, type AgentSummary, type Schemas } from "../../api/client";
import { canCommand, useMe } from "../../auth/me";
import { Money } from "../../money/Money";
import { followLink, navigate } from "../../router";
import { strategyLabel } from "../AgentsPage";
import { useAgentSummary } from "../queries";
import { AgentEditor } from "./AgentEditor";
import { OrdersTable, RunsTable, TradesTable } from "./AgentTables";
import { buildMarkers, drawdownSeries, equitySeries, priceSeries } from "./chartData";
import { formatCountdown, useNow } from "../Countdown";
import { duration } from "./format";
import { CHART_MARKERS_LIMIT, useAgent, useAgentCommand, useAgentOrders, useAgentPnl, useAgentTrades, type AgentCommand } from "./queries";
import { useAgentStream } from "./stream";

// The chart library is most of this page's weight: it loads with the page, not with the dashboard.
const AgentCharts = lazy(() => import("./AgentCharts"));

/** What "—" means for a trader metric the API leaves null (specs/06 §8: too few points or trades, no loss, …). */
export const UNDEFINED_METRIC = "not defined: too few points/trades";

/** The id in /agents/<uuid>, or null for any other path (/agents/new is not an agent). */
export function agentIdOf(path: string): string | null {
  const match = /^\/agents\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/?$/i.exec(path);
  return match ? match[1]!.toLowerCase() : null;
}

export function AgentPage({ agentId }: { agentId: string }) {
  useAgentStream(agentId);
  const agent = useAgent(agentId);

  if (agent.isPending) {
    return (
      <p role="status" aria-live="polite">
        Loading the agent…
      </p>
    );
  }
  if (agent.isError) {
    const missing = agent.error instanceof ApiError && agent.error.status === 404;
    return (
      <section aria-labelledby="agent-title">
        <BackLink />
        <h1 id="agent-title">{missing ? "No such agent" : "Agent"}</h1>
        <div role="alert" className="error">
          <p>
            {missing
              ? "There is no agent with this id that you can see."
              : `Could not load the agent: ${agent.error.message}`}
          </p>
          {!missing && (
            <button type="button" onClick={() => void agent.refetch()}>
              Try again
            </button>
          )}
        </div>
      </section>
    );
  }
  return <AgentView agent={agent.data} />;
}

function AgentView({ agent }: { agent: Agent }) {
  const summary = useAgentSummary(agent.agent_id);
  return (
    <article className="agent" aria-labelledby="agent-title">
      <BackLink />
      <AgentHeader agent={agent} />
      <AgentEditor agent={agent} />
      <section aria-labelledby="summary-title">
        <h2 id="summary-title">Position and results</h2>
        {summary.isPending && <p role="status">Loading the summary…</p>}
        {summary.isError && (
          <p role="alert" className="error">
            Could not load the summary: {summary.error.message}
          </p>
        )}
        {summary.data && <SummaryFigures summary={summary.data} />}
      </section>
      <ChartsSection agent={agent} />
      {summary.data && <MetricsTable metrics={summary.data.metrics} />}
      <RunsTable agentId={agent.agent_id} />
      <OrdersTable agentId={agent.agent_id} />
      <TradesTable agentId={agent.agent_id} />
    </article>
  );
}

function BackLink() {
  const back = (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate("/agents");
  };
  return (
    <p className="crumb">
      <a href="/agents" onClick={back}>
        ← Agents
      </a>
    </p>
  );
}

function AgentHeader({ agent }: { agent: Agent }) {
  return (
    <header className="agent-head">
      <h1 id="agent-title">{agent.name}</h1>
      <dl className="facts">
        <div>
          <dt>Status</dt>
          <dd>
            <span className={`status status-${agent.status}`}>{agent.status}</span>
          </dd>
        </div>
        <div>
          <dt>Symbol</dt>
          <dd>{agent.symbol}</dd>
        </div>
        <div>
          <dt>Strategy</dt>
          <dd>{strategyLabel(agent)}</dd>
        </div>
        <div>
          <dt>Runs</dt>
          <dd>
            every {duration(agent.frequency_s)} · {agent.runs_count} so far
          </dd>
        </div>
        {agent.status === "running" && agent.next_tick_at && (
          <div>
            <dt>Next run</dt>
            <dd>
              <NextRun at={agent.next_tick_at} />
            </dd>
          </div>
        )}
      </dl>
      <AgentActions agent={agent} />
      <p className="audit-link">
        <a href={`/agents/${agent.agent_id}/audit`} onClick={followLink(`/agents/${agent.agent_id}/audit`)}>
          Audit
        </a>{" "}
        <span className="muted">(every event with its correlation id, and the hash-chain check)</span>
      </p>
    </header>
  );
}

/** Counts down each second in the browser (the page's one shared clock, worded as on the agents list); each stream
 * message brings the next target. */
function NextRun({ at }: { at: string }) {
  const now = useNow();
  return (
    <span role="timer" className="num" title={`${at} (UTC)`}>
      {formatCountdown(Date.parse(at) - now)}
    </span>
  );
}

const VERBS: Record<AgentCommand, { label: string; busy: string }> = {
  start: { label: "Start", busy: "Starting…" },
  stop: { label: "Stop", busy: "Stopping…" },
  archive: { label: "Archive", busy: "Archiving…" },
};

/** Start / stop / archive, for traders and admins only (a viewer sees none). Archive only once stopped. */
function AgentActions({ agent }: { agent: Agent }) {
  const me = useMe();
  const command = useAgentCommand(agent.agent_id);
  const [confirmingArchive, setConfirmingArchive] = useState(false);
  if (!canCommand(me.data?.role) || agent.status === "archived") return null;

  const run = (which: AgentCommand) => {
    setConfirmingArchive(false);
    command.mutate(which);
  };
  const busy = command.isPending;
  const label = (which: AgentCommand) =>
    busy && command.variables === which ? VERBS[which].busy : VERBS[which].label;
  return (
    <div className="actions">
      {agent.status === "running" && (
        <button type="button" onClick={() => run("stop")} disabled={busy}>
          {label("stop")}
        </button>
      )}
      {agent.status === "stopped" && (
        <button type="button" onClick={() => run("start")} disabled={busy}>
          {label("start")}
        </button>
      )}
      {agent.status === "stopped" && !confirmingArchive && (
        <button type="button" className="secondary" onClick={() => setConfirmingArchive(true)} disabled={busy}>
          {label("archive")}
        </button>
      )}
      {confirmingArchive && (
        <div role="group" aria-label="Confirm archiving" className="confirm">
          <span>Archive {agent.name}? An archived agent cannot be started again.</span>
          <button type="button" className="danger" onClick={() => run("archive")}>
            Archive for good
          </button>
          <button type="button" className="secondary" onClick={() => setConfirmingArchive(false)}>
            Cancel
          </button>
        </div>
      )}
      {command.isError && (
        <p role="alert" className="error">
          Could not {command.variables ?? "change"} the agent: {command.error.message}
        </p>
      )}
    </div>
  );
}

function SummaryFigures({ summary }: { summary: AgentSummary }) {
  const rows: [string, ReactNode][] = [
    ["Equity", <Money value={summary.equity} />],
    ["PnL", <Money value={summary.pnl} signed />],
    ["Return", <Money value={summary.return_pct} suffix="%" signed />],
    ["Realized PnL", <Money value={summary.realized_pnl} signed />],
    ["Unrealized PnL", <Money value={summary.unrealized_pnl} signed />],
    ["Fees", <Money value={summary.fees} />],
    ["Cash", <Money value={summary.cash} />],
    ["Starting cash", <Money value={summary.starting_cash} />],
    [`Position (${summary.symbol})`, <Money value={summary.position_qty} />],
    ["Average price", <Money value={summary.avg_price} />],
    ["Mark price", <Money value={summary.mark_price} />],
    ["Max drawdown", <Money value={summary.max_drawdown} />],
    ["Max drawdown %", <Money value={summary.max_drawdown_pct} suffix="%" />],
    ["Win rate", <Defined value={summary.win_rate} suffix="%" />],
    ["Orders placed", <span className="num">{summary.orders_placed}</span>],
    ["Orders rejected", <span className="num">{summary.orders_rejected}</span>],
    ["Fills", <span className="num">{summary.trades}</span>],
    ["Closing fills won", <span className="num">{`${summary.winning_trades} of ${summary.closing_trades}`}</span>],
  ];
  return (
    <dl className="figures">
      {rows.map(([name, value]) => (
        <div key={name}>
          <dt>{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A figure the API may leave undefined (null): "—" with what that means on hover and to a screen reader. */
function Defined({ value, suffix, signed }: { value: string | null; suffix?: string; signed?: boolean }) {
  if (value === null) {
    return (
      <span className="num muted" title={UNDEFINED_METRIC} aria-label={UNDEFINED_METRIC}>
        —
      </span>
    );
  }
  return <Money value={value} suffix={suffix} signed={signed} />;
}

type Metrics = Schemas["TraderMetrics"];

const METRICS: { name: string; show: (metrics: Metrics) => ReactNode }[] = [
  { name: "Total return", show: (m) => <Defined value={m.total_return_pct} suffix="%" signed /> },
  { name: "Buy and hold return", show: (m) => <Defined value={m.buy_and_hold_return_pct} suffix="%" signed /> },
  { name: "CAGR", show: (m) => <Defined value={m.cagr_pct} suffix="%" signed /> },
  { name: "Sharpe ratio", show: (m) => <Defined value={m.sharpe} /> },
  { name: "Sortino ratio", show: (m) => <Defined value={m.sortino} /> },
  { name: "Calmar ratio", show: (m) => <Defined value={m.calmar} /> },
  { name: "Max drawdown %", show: (m) => <Defined value={m.max_drawdown_pct} suffix="%" /> },
  { name: "Max drawdown", show: (m) => <Defined value={m.max_drawdown} /> },
  {
    name: "Longest drawdown",
    show: (m) =>
      m.max_drawdown_duration_s === null ? (
        <Defined value={null} />
      ) : (
        <span className="num" title={`${m.max_drawdown_duration_s} s`}>
          {duration(m.max_drawdown_duration_s)}
        </span>
      ),
  },
  { name: "Win rate", show: (m) => <Defined value={m.win_rate_pct} suffix="%" /> },
  { name: "Profit factor", show: (m) => <Defined value={m.profit_factor} /> },
  { name: "Expectancy per trade", show: (m) => <Defined value={m.expectancy} signed /> },
  { name: "Average win", show: (m) => <Defined value={m.avg_win} signed /> },
  { name: "Average loss", show: (m) => <Defined value={m.avg_loss} signed /> },
  { name: "Best trade", show: (m) => <Defined value={m.best_trade} signed /> },
  { name: "Worst trade", show: (m) => <Defined value={m.worst_trade} signed /> },
  { name: "Exposure", show: (m) => <Defined value={m.exposure_pct} suffix="%" /> },
  { name: "SQN", show: (m) => <Defined value={m.sqn} /> },
  { name: "Closed trades", show: (m) => <span className="num">{m.trades}</span> },
  { name: "Fills", show: (m) => <span className="num">{m.fills}</span> },
  { name: "Fees", show: (m) => <Money value={m.fees} /> },
];

function MetricsTable({ metrics }: { metrics: Metrics }) {
  return (
    <section aria-labelledby="metrics-title">
      <h2 id="metrics-title">Trader metrics</h2>
      <table className="metrics">
        <caption>Over all runs and closing fills; — where a figure is not defined yet (too few points or trades)</caption>
        <tbody>
          {METRICS.map(({ name, show }) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              <td className="num">{show(metrics)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function ChartsSection({ agent }: { agent: Agent }) {
  const pnl = useAgentPnl(agent.agent_id);
  const trades = useAgentTrades(agent.agent_id, undefined, CHART_MARKERS_LIMIT);
  const rejected = useAgentOrders(agent.agent_id, undefined, "rejected", CHART_MARKERS_LIMIT);
  const points = pnl.data?.items;
  const shaped = useMemo(() => {
    if (!points) return null;
    const price = priceSeries(points);
    return {
      price,
      equity: equitySeries(points),
      drawdown: drawdownSeries(points, agent.starting_cash),
      markers: buildMarkers(
        trades.data?.items ?? [],
        rejected.data?.items ?? [],
        price.map((point) => point.time),
      ),
    };
  }, [points, trades.data, rejected.data, agent.starting_cash]);

  return (
    <section aria-labelledby="charts-title">
      <h2 id="charts-title">Charts</h2>
      {pnl.isError && (
        <p role="alert" className="error">
          Could not load the PnL points: {pnl.error.message}
        </p>
      )}
      {!shaped && !pnl.isError && <p role="status">Loading the charts…</p>}
      {shaped && shaped.price.length === 0 && <p className="empty">No runs yet: the charts start with the first run.</p>}
      {shaped && shaped.price.length > 0 && (
        <Suspense fallback={<p role="status">Loading the charts…</p>}>
          <AgentCharts symbol={agent.symbol} startingCash={agent.starting_cash} {...shaped} />
        </Suspense>
      )}
    </section>
  );
}
