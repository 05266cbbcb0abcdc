import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App, makeQueryClient } from "../../App";
import { resetSessionForTests, signIn } from "../../auth/session";
import { agent, json, mockApi, problem, TOKEN, type Handler } from "../../test/api";
import {
  AGENT_ID,
  fullSummary,
  metrics,
  order,
  page,
  pnlPoint,
  rejectedOrder,
  run,
  trade,
} from "../../test/agentDetail";
import type { AgentChartsProps } from "./AgentCharts";
import { AgentPage, agentIdOf, UNDEFINED_METRIC } from "./AgentPage";

// jsdom has no canvas: the charts are replaced by what they were given.
vi.mock("./AgentCharts", () => ({
  default: (props: AgentChartsProps) => (
    <p data-testid="charts">
      {props.price.length} prices, {props.equity.length} equity points, {props.drawdown.length} drawdown points,{" "}
      markers {props.markers.map((marker) => marker.text).join("")}
    </p>
  ),
}));

const A = `/api/v1/agents/${AGENT_ID}`;

function me(role: "viewer" | "trader" | "admin") {
  return () => json(200, { sub: "demo", roles: [role], role, auth_mode: "dev", telegram_links: 0 });
}

/** An open event stream that sends nothing (the page's live updates have their own tests). */
function quietStream() {
  return new Response(new ReadableStream({ start() {} }), {
    status: 200,
    headers: { "content-type": "text/event-stream" },
  });
}

function routes(overrides: Record<string, Handler> = {}): Record<string, Handler> {
  return {
    "GET /api/v1/me": me("trader"),
    [`GET ${A}`]: () => json(200, agent()),
    [`GET ${A}/stream`]: quietStream,
    [`GET ${A}/summary`]: () => json(200, fullSummary()),
    [`GET ${A}/pnl`]: () => json(200, page([pnlPoint(1), pnlPoint(2), pnlPoint(3)])),
    [`GET ${A}/runs`]: () => json(200, page([run(3), run(2), run(1)])),
    [`GET ${A}/trades`]: () => json(200, page([trade(2)])),
    [`GET ${A}/orders`]: (request) =>
      new URL(request.url).searchParams.get("status") === "rejected"
        ? json(200, page([rejectedOrder(3)]))
        : json(200, page([rejectedOrder(3), order(2)])),
    ...overrides,
  };
}

function renderPage({ role }: { role?: "viewer" | "trader" } = {}) {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  // Known before the first render, so "no buttons" cannot pass only because /me has not answered yet.
  if (role) client.setQueryData(["me"], { sub: "demo", roles: [role], role, auth_mode: "dev", telegram_links: 0 });
  return render(
    <QueryClientProvider client={client}>
      <AgentPage agentId={AGENT_ID} />
    </QueryClientProvider>,
  );
}

function section(name: string | RegExp) {
  return screen.getByRole("region", { name });
}

describe("agent page", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("shows the agent's name, status, symbol and strategy", async () => {
    mockApi(routes());
    renderPage();
    expect(await screen.findByRole("heading", { level: 1, name: "demo-sma-3-8" })).toBeInTheDocument();
    const facts = screen.getByRole("banner");
    expect(within(facts).getByText("running")).toBeInTheDocument();
    expect(within(facts).getByText("BTC-USD")).toBeInTheDocument();
    expect(within(facts).getByText("sma_crossover (fast 3, slow 8, qty 0.01)")).toBeInTheDocument();
    expect(within(facts).getByText("every 2 s · 4 so far")).toBeInTheDocument();
  });

  it("shows the summary's money exactly as the API's strings", async () => {
    mockApi(
      routes({
        [`GET ${A}/summary`]: () =>
          json(
            200,
            fullSummary({
              equity: "10012.345678901234567",
              pnl: "-12.30",
              return_pct: "0.1235",
              realized_pnl: "1.50",
              unrealized_pnl: "-13.80",
              fees: "0.0640",
              cash: "9359.8750000",
              win_rate: "33.33",
            }),
          ),
      }),
    );
    renderPage();
    await screen.findByText("10012.345678901234567");
    const figures = section("Position and results");
    const figure = (name: string) => within(figures).getByText(name).nextElementSibling as HTMLElement;
    expect(figure("Equity")).toHaveTextContent(/^10012\.345678901234567$/);
    expect(within(figure("PnL")).getByText("-12.30")).toHaveClass("negative");
    expect(figure("Return")).toHaveTextContent(/^0\.1235%$/);
    expect(figure("Realized PnL")).toHaveTextContent(/^1\.50$/);
    expect(figure("Unrealized PnL")).toHaveTextContent(/^-13\.80$/);
    expect(figure("Fees")).toHaveTextContent(/^0\.0640$/);
    expect(figure("Cash")).toHaveTextContent(/^9359\.8750000$/);
    expect(figure("Win rate")).toHaveTextContent(/^33\.33%$/);
  });

  it("shows a trader metric the API leaves null as a dash that says why", async () => {
    mockApi(routes({ [`GET ${A}/summary`]: () => json(200, fullSummary({ metrics: metrics({ sharpe: "1.2345" }) })) }));
    renderPage();
    const table = await screen.findByRole("table", { name: /Over all runs/ });
    const value = (name: string) => within(within(table).getByRole("row", { name: new RegExp(`^${name}`) })).getByRole("cell");
    expect(value("Sharpe ratio")).toHaveTextContent(/^1\.2345$/);
    const sortino = within(value("Sortino ratio")).getByText("—");
    expect(sortino).toHaveAttribute("title", UNDEFINED_METRIC);
    expect(sortino).toHaveAccessibleName(UNDEFINED_METRIC);
    expect(within(value("CAGR")).getByTitle(UNDEFINED_METRIC)).toHaveTextContent("—");
    expect(value("Fees")).toHaveTextContent(/^0\.0640$/);
    expect(value("Longest drawdown")).toHaveTextContent("16 s");
    // The summary's win rate is null too with no closing trade.
    const figures = section("Position and results");
    expect(within(figures).getByText("Win rate").nextElementSibling).toContainElement(
      within(figures).getByTitle(UNDEFINED_METRIC),
    );
  });

  it("offers a viewer no commands", async () => {
    mockApi(routes({ "GET /api/v1/me": me("viewer"), [`GET ${A}`]: () => json(200, agent({ status: "stopped" })) }));
    renderPage({ role: "viewer" });
    await screen.findByText("10000.000");
    expect(await screen.findByText("stopped")).toBeInTheDocument();
    for (const name of ["Start", "Stop", "Archive"]) {
      expect(screen.queryByRole("button", { name })).not.toBeInTheDocument();
    }
    expect(screen.queryByText("Change settings")).not.toBeInTheDocument();
  });

  it("lets a trader stop a running agent, then start or archive it", async () => {
    let sent: Request | undefined;
    mockApi(
      routes({
        [`POST ${A}/stop`]: (request) => {
          sent = request;
          return json(200, agent({ status: "stopped", next_tick_at: null, version: 8 }));
        },
      }),
    );
    renderPage();
    const stop = await screen.findByRole("button", { name: "Stop" });
    expect(screen.queryByRole("button", { name: "Start" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Archive" })).not.toBeInTheDocument();
    await userEvent.click(stop);
    expect(await screen.findByRole("button", { name: "Start" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Archive" })).toBeInTheDocument();
    expect(within(screen.getByRole("banner")).getByText("stopped")).toBeInTheDocument();
    expect(sent?.headers.get("idempotency-key")).toMatch(/^[0-9a-f]{32}$/);
  });

  it("archives only after the trader confirms", async () => {
    const archive = vi.fn(() => json(200, agent({ status: "archived", next_tick_at: null })));
    mockApi(routes({ [`GET ${A}`]: () => json(200, agent({ status: "stopped", next_tick_at: null })), [`POST ${A}/archive`]: archive }));
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Archive" }));
    const confirm = screen.getByRole("group", { name: "Confirm archiving" });
    await userEvent.click(within(confirm).getByRole("button", { name: "Cancel" }));
    expect(archive).not.toHaveBeenCalled();
    await userEvent.click(screen.getByRole("button", { name: "Archive" }));
    await userEvent.click(screen.getByRole("button", { name: "Archive for good" }));
    expect(await within(screen.getByRole("banner")).findByText("archived")).toBeInTheDocument();
    expect(archive).toHaveBeenCalledTimes(1);
    expect(screen.queryByRole("button", { name: "Start" })).not.toBeInTheDocument();
  });

  it("shows why a command was refused", async () => {
    mockApi(
      routes({
        [`GET ${A}`]: () => json(200, agent({ status: "stopped", next_tick_at: null })),
        [`POST ${A}/start`]: () => problem(409, "agent_archived", "the agent is archived"),
      }),
    );
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Start" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Could not start the agent: the agent is archived");
  });

  it("counts down to the next run of a running agent", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-12-02T12:00:03.200Z"));
    mockApi(routes({ [`GET ${A}`]: () => json(200, agent({ next_tick_at: "2026-12-02T12:00:10Z" })) }));
    renderPage();
    expect(await screen.findByRole("timer")).toHaveTextContent("in 7 s");
  });

  it("hands the charts the price, equity and drawdown per PnL point and the fill and rejection markers", async () => {
    mockApi(routes());
    renderPage();
    expect(await screen.findByTestId("charts")).toHaveTextContent(
      "3 prices, 3 equity points, 3 drawdown points, markers BR",
    );
  });

  it("lists orders with the risk reason of rejected ones, and trades", async () => {
    mockApi(routes());
    renderPage();
    const orders = await screen.findByRole("table", { name: /^Orders, newest first/ });
    const rejected = within(orders).getByRole("row", { name: /^1\/3/ });
    expect(within(rejected).getByText("rejected")).toBeInTheDocument();
    expect(within(rejected).getByText("insufficient_position")).toBeInTheDocument();
    expect(within(rejected).getByText(/exceeds the position 0/)).toBeInTheDocument();
    const filled = within(orders).getByRole("row", { name: /^1\/2/ });
    expect(within(filled).getByText("0.0640125")).toBeInTheDocument();
    const trades = screen.getByRole("table", { name: /^Trades, newest first/ });
    expect(within(trades).getByText("640.1250")).toBeInTheDocument();
  });

  it("pages through runs, newest first, with the API's cursor", async () => {
    mockApi(
      routes({
        [`GET ${A}/runs`]: (request) =>
          new URL(request.url).searchParams.get("cursor") === "72317c317c3232"
            ? json(200, page([run(1)]))
            : json(200, page([run(3), run(2)], "72317c317c3232")),
      }),
    );
    renderPage();
    const runs = await screen.findByRole("table", { name: /^Runs, newest first: page 1/ });
    expect(within(runs).getAllByRole("row").map((row) => row.firstElementChild?.textContent)).toEqual([
      "Session/tick",
      "1/3",
      "1/2",
    ]);
    expect(screen.getByRole("button", { name: "Newer runs" })).toBeDisabled();
    await userEvent.click(screen.getByRole("button", { name: "Older runs" }));
    const older = await screen.findByRole("table", { name: /^Runs, newest first: page 2/ });
    expect(await within(older).findByRole("rowheader", { name: "1/1" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Older runs" })).toBeDisabled();
    await userEvent.click(screen.getByRole("button", { name: "Newer runs" }));
    expect(await screen.findByRole("table", { name: /^Runs, newest first: page 1/ })).toBeInTheDocument();
  });

  it("says when there is no such agent", async () => {
    mockApi(routes({ [`GET ${A}`]: () => problem(404, "agent_not_found", "no such agent") }));
    renderPage();
    expect(await screen.findByRole("heading", { name: "No such agent" })).toBeInTheDocument();
    expect(screen.getByRole("alert")).toHaveTextContent("There is no agent with this id that you can see.");
  });

  it("changes a stopped agent's settings with PATCH", async () => {
    let body: unknown;
    mockApi(
      routes({
        [`GET ${A}`]: () => json(200, agent({ status: "stopped", next_tick_at: null })),
        [`PATCH ${A}`]: async (request) => {
          body = await request.json();
          return json(200, agent({ status: "stopped", next_tick_at: null, name: "sma-5-8", version: 8 }));
        },
      }),
    );
    renderPage();
    await userEvent.click(await screen.findByText("Change settings"));
    const name = screen.getByLabelText("Name");
    await userEvent.clear(name);
    await userEvent.type(name, "sma-5-8");
    const fast = screen.getByLabelText("sma_crossover: fast");
    await userEvent.clear(fast);
    await userEvent.type(fast, "5");
    await userEvent.type(screen.getByLabelText("Daily loss limit (blank: none)"), "250.5");
    await userEvent.click(screen.getByRole("button", { name: "Save settings" }));
    expect(await screen.findByRole("heading", { level: 1, name: "sma-5-8" })).toBeInTheDocument();
    expect(body).toEqual({
      name: "sma-5-8",
      frequency_s: 2,
      strategy: { kind: "sma_crossover", params: { fast: 5, slow: 8, qty: "0.01" } },
      risk: { max_position_qty: "1", max_order_qty: "1", max_notional: "10000", max_daily_loss: "250.5" },
    });
    expect(screen.getByText("Saved.")).toBeInTheDocument();
  });
});

describe("the route", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });
  afterEach(() => {
    window.history.replaceState(null, "", "/");
  });

  it("shows this page at /agents/<id>", async () => {
    mockApi(routes());
    window.history.replaceState(null, "", `/agents/${AGENT_ID}`);
    const client = makeQueryClient();
    client.setDefaultOptions({ queries: { retry: false } });
    render(<App client={client} />);
    expect(await screen.findByRole("heading", { level: 1, name: "demo-sma-3-8" })).toBeInTheDocument();
    await userEvent.click(screen.getByRole("link", { name: "← Agents" }));
    expect(window.location.pathname).toBe("/agents");
    expect(await screen.findByRole("heading", { level: 1, name: "Agents" })).toBeInTheDocument();
  });
});

describe("agentIdOf", () => {
  it("takes the agent id from /agents/<uuid> and nothing else", () => {
    expect(agentIdOf(`/agents/${AGENT_ID}`)).toBe(AGENT_ID);
    expect(agentIdOf(`/agents/${AGENT_ID.toUpperCase()}/`)).toBe(AGENT_ID);
    expect(agentIdOf("/agents/new")).toBeNull();
    expect(agentIdOf("/agents")).toBeNull();
    expect(agentIdOf(`/agents/${AGENT_ID}/runs`)).toBeNull();
  });
});
