import { QueryClientProvider } from "@tanstack/react-query";
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { agent, json, me, mockApi, pnlPoint, problem, summary, TOKEN, type Handler } from "../test/api";
import { AgentsPage, strategyLabel } from "./AgentsPage";
import { resetOnScreenForTests } from "./onScreen";
import { FIGURES_REFRESH_MS, SPARKLINE_POINTS } from "./queries";

const ID = "d3e00000-0000-4000-8000-000000000001";
const OTHER = "0b7c0000-0000-4000-8000-000000000002";

function renderPage() {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  return render(
    <QueryClientProvider client={client}>
      <AgentsPage />
    </QueryClientProvider>,
  );
}

describe("agents page", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });

  it("says it is loading until the list arrives", async () => {
    let answer: (response: Response) => void = () => {};
    mockApi({ "GET /api/v1/agents": () => new Promise<Response>((resolve) => (answer = resolve)) });
    renderPage();
    expect(await screen.findByRole("status")).toHaveTextContent("Loading agents…");
    answer(json(200, { items: [], next_cursor: null }));
    expect(await screen.findByText(/You have no agents yet/)).toBeInTheDocument();
    expect(screen.queryByRole("status")).not.toBeInTheDocument();
  });

  it("says when there are no agents", async () => {
    mockApi({ "GET /api/v1/agents": () => json(200, { items: [], next_cursor: null }) });
    renderPage();
    expect(await screen.findByText(/You have no agents yet/)).toBeInTheDocument();
    expect(screen.queryByRole("table")).not.toBeInTheDocument();
  });

  it("shows the API's problem and lets the user try again", async () => {
    let calls = 0;
    mockApi({
      "GET /api/v1/agents": () =>
        ++calls === 1
          ? problem(503, "unavailable", "the database does not answer")
          : json(200, { items: [], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findByRole("alert")).toHaveTextContent("the database does not answer");
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByText(/You have no agents yet/)).toBeInTheDocument();
  });

  it("lists each agent with status, symbol, strategy and the summary's money as sent", async () => {
    mockApi({
      "GET /api/v1/agents": () =>
        json(200, {
          items: [
            agent(),
            agent({
              agent_id: OTHER,
              name: "eth-hold",
              symbol: "ETH-USD",
              status: "stopped",
              strategy: { kind: "hold", params: {} },
            }),
          ],
          next_cursor: null,
        }),
      [`GET /api/v1/agents/${ID}/summary`]: () =>
        json(200, summary({ equity: "10012.345678901234567", pnl: "12.345678901234567", return_pct: "0.1235" })),
      [`GET /api/v1/agents/${OTHER}/summary`]: () =>
        json(200, summary({ agent_id: OTHER, equity: "9990.10", pnl: "-9.90", return_pct: "-0.0990" })),
    });
    renderPage();

    const demo = (await screen.findByRole("rowheader", { name: "demo-sma-3-8" })).closest("tr")!;
    expect(within(demo).getByText("running")).toBeInTheDocument();
    expect(within(demo).getByText("BTC-USD")).toBeInTheDocument();
    expect(within(demo).getByText("sma_crossover (fast 3, slow 8, qty 0.01)")).toBeInTheDocument();
    expect(await within(demo).findByText("10012.345678901234567")).toBeInTheDocument();
    expect(within(demo).getByText("12.345678901234567")).toHaveClass("positive");
    expect(within(demo).getByText("0.1235%")).toBeInTheDocument();

    const eth = screen.getByRole("rowheader", { name: "eth-hold" }).closest("tr")!;
    expect(within(eth).getByText("stopped")).toBeInTheDocument();
    expect(within(eth).getByText("hold")).toBeInTheDocument();
    expect(await within(eth).findByText("9990.10")).toBeInTheDocument();
    expect(within(eth).getByText("-9.90")).toHaveClass("negative");
    expect(within(eth).getByText("-0.0990%")).toBeInTheDocument();
  });

  it("shows a dash for figures whose summary cannot be read", async () => {
    mockApi({
      "GET /api/v1/agents": () => json(200, { items: [agent()], next_cursor: null }),
      [`GET /api/v1/agents/${ID}/summary`]: () => problem(404, "agent_not_found", "no such agent"),
      [`GET /api/v1/agents/${ID}/pnl`]: () => json(200, { items: [], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findAllByLabelText("not available")).toHaveLength(3);
    expect(await screen.findByLabelText("no runs yet")).toBeInTheDocument();
  });

  it("fetches the next page with the cursor the API gave", async () => {
    const fetchMock = mockApi({
      "GET /api/v1/agents": (request) =>
        new URL(request.url).searchParams.get("cursor") === "6167656e74737c31"
          ? json(200, { items: [agent({ agent_id: OTHER, name: "older" })], next_cursor: null })
          : json(200, { items: [agent()], next_cursor: "6167656e74737c31" }),
      [`GET /api/v1/agents/${ID}/summary`]: () => json(200, summary()),
      [`GET /api/v1/agents/${OTHER}/summary`]: () => json(200, summary({ agent_id: OTHER })),
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Show more agents" }));
    expect(await screen.findByRole("rowheader", { name: "older" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Show more agents" })).not.toBeInTheDocument();
    expect(fetchMock).toHaveBeenCalled();
  });

  it("labels a strategy by its kind and parameters", () => {
    expect(strategyLabel(agent() as never)).toBe("sma_crossover (fast 3, slow 8, qty 0.01)");
  });

  it("draws each agent's equity from a thinned PnL series and links its name to its page", async () => {
    const fetchMock = mockApi({
      "GET /api/v1/agents": () => json(200, { items: [agent()], next_cursor: null }),
      [`GET /api/v1/agents/${ID}/summary`]: () => json(200, summary()),
      [`GET /api/v1/agents/${ID}/pnl`]: () =>
        json(200, { items: [pnlPoint(1, "10000"), pnlPoint(2, "9990.5"), pnlPoint(3, "10012.25")], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findByRole("img", { name: "Equity from 10000 to 10012.25 over 3 points" })).toBeInTheDocument();
    const pnlUrl = fetchMock.mock.calls
      .map(([request]) => new URL((request as Request).url))
      .find((url) => url.pathname.endsWith("/pnl"))!;
    expect(pnlUrl.searchParams.get("max_points")).toBe(String(SPARKLINE_POINTS));
    expect(screen.getByRole("link", { name: "demo-sma-3-8" })).toHaveAttribute("href", `/agents/${ID}`);
  });
});

describe("agents page actions", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });

  function routes(role: "viewer" | "trader", extra: Record<string, Handler> = {}) {
    return mockApi({
      "GET /api/v1/me": () => json(200, me(role)),
      "GET /api/v1/agents": () =>
        json(200, {
          items: [agent(), agent({ agent_id: OTHER, name: "eth-hold", status: "stopped", next_tick_at: null })],
          next_cursor: null,
        }),
      [`GET /api/v1/agents/${ID}/summary`]: () => json(200, summary()),
      [`GET /api/v1/agents/${OTHER}/summary`]: () => json(200, summary({ agent_id: OTHER })),
      ...extra,
    });
  }

  it("shows a viewer no New agent, start or stop", async () => {
    const fetchMock = routes("viewer");
    renderPage();
    await screen.findByRole("rowheader", { name: "demo-sma-3-8" });
    await waitFor(() =>
      expect(fetchMock.mock.calls.some(([r]) => new URL((r as Request).url).pathname === "/api/v1/me")).toBe(true),
    );
    // Let the /me answer render before looking for what it would have shown.
    await act(async () => {});
    expect(screen.queryByRole("link", { name: "New agent" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /^(Start|Stop) / })).not.toBeInTheDocument();
    expect(screen.queryByRole("columnheader", { name: "Actions" })).not.toBeInTheDocument();
  });

  it("offers a trader New agent, stop for a running agent and start for a stopped one", async () => {
    routes("trader");
    renderPage();
    expect(await screen.findByRole("link", { name: "New agent" })).toHaveAttribute("href", "/agents/new");
    expect(await screen.findByRole("button", { name: "Stop demo-sma-3-8" })).toBeEnabled();
    expect(screen.getByRole("button", { name: "Start eth-hold" })).toBeEnabled();
  });

  it("starts an agent with POST …/start, disabled while it waits, and shows the answer in the row", async () => {
    let answer: (response: Response) => void = () => {};
    const fetchMock = routes("trader", {
      [`POST /api/v1/agents/${OTHER}/start`]: () => new Promise<Response>((resolve) => (answer = resolve)),
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Start eth-hold" }));
    expect(screen.getByRole("button", { name: "Start eth-hold" })).toBeDisabled();
    expect(screen.getByRole("button", { name: "Start eth-hold" })).toHaveTextContent("Starting…");
    const started = fetchMock.mock.calls.map(([r]) => r as Request).find((r) => r.method === "POST")!;
    expect(new URL(started.url).pathname).toBe(`/api/v1/agents/${OTHER}/start`);

    answer(json(200, agent({ agent_id: OTHER, name: "eth-hold", status: "running", next_tick_at: "2099-01-01T00:00:00Z" })));
    const row = (await screen.findByRole("button", { name: "Stop eth-hold" })).closest("tr")!;
    expect(within(row).getByText("running")).toBeInTheDocument();
  });

  it("stops an agent with POST …/stop and shows a refusal on that row only", async () => {
    const fetchMock = routes("trader", {
      [`POST /api/v1/agents/${ID}/stop`]: () => problem(409, "agent_not_running", "the agent is not running"),
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Stop demo-sma-3-8" }));
    const row = screen.getByRole("rowheader", { name: "demo-sma-3-8" }).closest("tr")!;
    expect(await within(row).findByRole("alert")).toHaveTextContent("Could not stop: the agent is not running");
    expect(screen.getAllByRole("alert")).toHaveLength(1);
    expect(within(row).getByRole("button", { name: "Stop demo-sma-3-8" })).toBeEnabled();
    const posts = fetchMock.mock.calls.map(([r]) => r as Request).filter((r) => r.method === "POST");
    expect(posts.map((r) => new URL(r.url).pathname)).toEqual([`/api/v1/agents/${ID}/stop`]);
  });
});

describe("agents page countdown", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
    // Only the clock is fake: promises and the test library's own timeouts run as usual.
    vi.useFakeTimers({ toFake: ["Date", "setInterval", "clearInterval"] });
    vi.setSystemTime(new Date("2026-12-02T12:00:07Z"));
  });
  afterEach(() => vi.useRealTimers());

  it("counts down to next_tick_at and reads the agent once when it passes", async () => {
    let reads = 0;
    mockApi({
      "GET /api/v1/agents": () => json(200, { items: [agent()], next_cursor: null }),
      [`GET /api/v1/agents/${ID}`]: () => {
        reads += 1;
        return json(200, agent({ next_tick_at: "2026-12-02T12:00:12Z", last_tick_no: 5 }));
      },
    });
    renderPage();
    expect(await screen.findByText("in 3 s")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(1000));
    expect(screen.getByText("in 2 s")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(2000));
    // Due at 12:00:10: read once, and the next target (12:00:12) is 2 s away.
    expect(await screen.findByText("in 2 s")).toBeInTheDocument();
    expect(reads).toBe(1);
  });
});

describe("agents page figures after a tick", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
    vi.useFakeTimers({ toFake: ["Date", "setInterval", "clearInterval"] });
    vi.setSystemTime(new Date("2026-12-02T12:00:07Z"));
  });
  afterEach(() => vi.useRealTimers());

  it("reads the summary again when the agent has run since, at most every FIGURES_REFRESH_MS", async () => {
    let summaries = 0;
    mockApi({
      "GET /api/v1/agents": () =>
        json(200, { items: [agent({ next_tick_at: "2026-12-02T12:00:20Z", runs_count: 4 })], next_cursor: null }),
      [`GET /api/v1/agents/${ID}`]: () =>
        json(200, agent({ next_tick_at: "2026-12-02T12:00:22Z", runs_count: 5 })),
      [`GET /api/v1/agents/${ID}/summary`]: () =>
        json(200, summary({ equity: ++summaries === 1 ? "10000.000" : "10001.500" })),
    });
    renderPage();
    expect(await screen.findByText("10000.000")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(FIGURES_REFRESH_MS + 3000));
    expect(await screen.findByText("10001.500")).toBeInTheDocument();
    expect(summaries).toBe(2);
  });
});

describe("agents page with many rows", () => {
  let intersect: (target: Element) => void = () => {};

  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
    resetOnScreenForTests();
    vi.stubGlobal(
      "IntersectionObserver",
      class {
        constructor(private readonly report: IntersectionObserverCallback) {
          intersect = (target) =>
            this.report([{ target, isIntersecting: true } as IntersectionObserverEntry], this as never);
        }
        observe() {}
        unobserve() {}
        disconnect() {}
      },
    );
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    resetOnScreenForTests();
  });

  it("fetches summaries and PnL only for rows that come on screen", async () => {
    const items = Array.from({ length: 50 }, (_, i) =>
      agent({
        agent_id: `d3e00000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        name: `agent-${i}`,
        status: "stopped",
        next_tick_at: null,
      }),
    );
    const fetchMock = mockApi({
      "GET /api/v1/agents": () => json(200, { items, next_cursor: "6167656e74737c31" }),
      [`GET /api/v1/agents/${items[3]!.agent_id}/summary`]: () => json(200, summary({ equity: "777.77" })),
    });
    renderPage();
    const row = (await screen.findByRole("rowheader", { name: "agent-3" })).closest("tr")!;
    const figures = () =>
      fetchMock.mock.calls.map(([r]) => new URL((r as Request).url).pathname).filter((p) => p !== "/api/v1/agents" && p !== "/api/v1/me");
    expect(figures()).toEqual([]);

    act(() => intersect(row));
    // Scrolled past in a blink: not yet; after SEEN_AFTER_MS on screen: this row's figures, and only its.
    expect(figures()).toEqual([]);
    expect(await within(row).findByText("777.77")).toBeInTheDocument();
    expect(figures().sort()).toEqual([
      `/api/v1/agents/${items[3]!.agent_id}/pnl`,
      `/api/v1/agents/${items[3]!.agent_id}/summary`,
    ]);
  });
});
