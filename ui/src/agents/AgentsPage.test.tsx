import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { agent, json, mockApi, problem, summary, TOKEN } from "../test/api";
import { AgentsPage, strategyLabel } from "./AgentsPage";

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
});
