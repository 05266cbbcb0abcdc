// The agents page: the signed-in user's agents with status, next-tick countdown, symbol, strategy, equity, PnL,
// return and an equity sparkline; a trader (or admin) also gets "New agent" and start / stop per agent. The list
// comes from GET /api/v1/agents a page at a time; a row's summary and PnL points are fetched once it comes on screen,
// so a long list costs requests only for the rows a person looks at.
import { useRef } from "react";
import type { Agent } from "../api/client";
import { useCanTrade } from "../auth/me";
import { Money } from "../money/Money";
import { followLink } from "../router";
import { Countdown } from "./Countdown";
import { useOnScreen } from "./onScreen";
import {
  SPARKLINE_POINTS,
  useAgentAction,
  useAgentPnl,
  useAgentSummary,
  useAgents,
  useRefreshAgent,
} from "./queries";
import { Sparkline } from "./Sparkline";

export function AgentsPage() {
  const canTrade = useCanTrade();
  return (
    <section aria-labelledby="agents-title">
      <div className="page-head">
        <h1 id="agents-title">Agents</h1>
        {canTrade && (
          <a className="button" href="/agents/new" onClick={followLink("/agents/new")}>
            New agent
          </a>
        )}
      </div>
      <AgentList canTrade={canTrade} />
    </section>
  );
}

function AgentList({ canTrade }: { canTrade: boolean }) {
  const agents = useAgents();

  if (agents.isPending) {
    return (
      <p role="status" aria-live="polite">
        Loading agents…
      </p>
    );
  }
  if (agents.isError) {
    return (
      <div role="alert" className="error">
        <p>Could not load your agents: {agents.error.message}</p>
        <button type="button" onClick={() => void agents.refetch()}>
          Try again
        </button>
      </div>
    );
  }
  const items = agents.data.pages.flatMap((page) => page.items);
  if (items.length === 0) {
    return (
      <p className="empty">
        You have no agents yet.{" "}
        {canTrade ? "Create one with New agent." : "Your role (viewer) can read agents but not create them."}
      </p>
    );
  }
  return (
    <>
      <table className="agents">
        <caption>Your agents, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Status</th>
            <th scope="col">Symbol</th>
            <th scope="col">Strategy</th>
            <th scope="col" className="num">Equity</th>
            <th scope="col" className="num">PnL</th>
            <th scope="col" className="num">Return</th>
            <th scope="col">Equity trend</th>
            {canTrade && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {items.map((agent) => (
            <AgentRow key={agent.agent_id} agent={agent} canTrade={canTrade} />
          ))}
        </tbody>
      </table>
      {agents.hasNextPage && (
        <button
          type="button"
          onClick={() => void agents.fetchNextPage()}
          disabled={agents.isFetchingNextPage}
        >
          {agents.isFetchingNextPage ? "Loading more agents…" : "Show more agents"}
        </button>
      )}
    </>
  );
}

function AgentRow({ agent, canTrade }: { agent: Agent; canTrade: boolean }) {
  const row = useRef<HTMLTableRowElement>(null);
  const { visible, seen } = useOnScreen(row);
  const summary = useAgentSummary(agent.agent_id, seen);
  const pnl = useAgentPnl(agent.agent_id, SPARKLINE_POINTS, seen);
  const refresh = useRefreshAgent();
  const figures = summary.data;
  const missing = summary.isPending ? "loading" : "not available";
  const path = `/agents/${agent.agent_id}`;
  return (
    <tr ref={row}>
      <th scope="row" data-label="Name">
        <a href={path} onClick={followLink(path)}>
          {agent.name}
        </a>
      </th>
      <td data-label="Status">
        <span className="status-cell">
          <span className={`status status-${agent.status}`}>{agent.status}</span>
          {/* Off screen nothing ticks; a row scrolled back into view picks up the countdown where it is. */}
          {visible && agent.status === "running" && agent.next_tick_at && (
            <Countdown target={agent.next_tick_at} onDue={() => void refresh(agent)} />
          )}
        </span>
      </td>
      <td data-label="Symbol">{agent.symbol}</td>
      <td data-label="Strategy">{strategyLabel(agent)}</td>
      <td data-label="Equity" className="num">
        {figures ? <Money value={figures.equity} /> : <Pending what={missing} />}
      </td>
      <td data-label="PnL" className="num">
        {figures ? <Money value={figures.pnl} signed /> : <Pending what={missing} />}
      </td>
      <td data-label="Return" className="num">
        {figures ? <Money value={figures.return_pct} suffix="%" signed /> : <Pending what={missing} />}
      </td>
      <td data-label="Equity trend">
        {pnl.data ? (
          <Sparkline points={pnl.data.items} />
        ) : (
          <Pending what={pnl.isPending ? "loading" : "not available"} />
        )}
      </td>
      {canTrade && (
        <td data-label="Actions">
          <StartStop agent={agent} />
        </td>
      )}
    </tr>
  );
}

/** Start for a stopped agent, stop for a running one (an archived agent has neither); the error stays on the row. */
function StartStop({ agent }: { agent: Agent }) {
  const action = useAgentAction(agent.agent_id);
  if (agent.status === "archived") return null;
  const verb = agent.status === "running" ? "stop" : "start";
  const label = verb === "stop" ? "Stop" : "Start";
  return (
    <div className="row-actions">
      <button
        type="button"
        className={verb === "stop" ? "secondary" : undefined}
        aria-label={`${label} ${agent.name}`}
        disabled={action.isPending}
        onClick={() => action.mutate(verb)}
      >
        {action.isPending ? (verb === "stop" ? "Stopping…" : "Starting…") : label}
      </button>
      {action.isError && (
        <p role="alert" className="error row-error">
          Could not {action.variables ?? verb}: {action.error.message}
        </p>
      )}
    </div>
  );
}

function Pending({ what }: { what: string }) {
  return (
    <span className="muted" aria-label={what}>
      {what === "loading" ? "…" : "—"}
    </span>
  );
}

/** "sma_crossover (fast 3, slow 8)": the kind and its parameters as the API gives them. */
export function strategyLabel(agent: Agent): string {
  const params = Object.entries(agent.strategy.params ?? {}).map(([name, value]) => `${name} ${String(value)}`);
  return params.length > 0 ? `${agent.strategy.kind} (${params.join(", ")})` : agent.strategy.kind;
}
