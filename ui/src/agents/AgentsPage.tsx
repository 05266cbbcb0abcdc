// The agents page (read-only): the signed-in user's agents with status, symbol, strategy, equity, PnL and return.
// The list comes from GET /api/v1/agents; equity, PnL and return from each agent's summary.
import type { Agent } from "../api/client";
import { Money } from "../money/Money";
import { useAgentSummary, useAgents } from "./queries";

export function AgentsPage() {
  return (
    <section aria-labelledby="agents-title">
      <h1 id="agents-title">Agents</h1>
      <AgentList />
    </section>
  );
}

function AgentList() {
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
        You have no agents yet. Create one with <code>POST /api/v1/agents</code> (see{" "}
        <a href="/api/v1/docs">the API docs</a>); the dashboard&apos;s wizard comes later.
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
          </tr>
        </thead>
        <tbody>
          {items.map((agent) => (
            <AgentRow key={agent.agent_id} agent={agent} />
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

function AgentRow({ agent }: { agent: Agent }) {
  const summary = useAgentSummary(agent.agent_id);
  const figures = summary.data;
  const missing = summary.isPending ? "loading" : "not available";
  return (
    <tr>
      <th scope="row" data-label="Name">
        {agent.name}
      </th>
      <td data-label="Status">
        <span className={`status status-${agent.status}`}>{agent.status}</span>
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
    </tr>
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
