import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { json, liveStream, mockApi, problem, TOKEN } from "../test/api";
import { BACKTEST_ID, backtest, me } from "../test/backtests";
import { BacktestsPage } from "./BacktestsPage";

const RUNNING = "b7000000-0000-4000-8000-000000000002";

function renderPage() {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  return render(
    <QueryClientProvider client={client}>
      <BacktestsPage />
    </QueryClientProvider>,
  );
}

/** A listed backtest: the listing has no progress and no result (specs/03 §3). */
function listed(overrides: Record<string, unknown> = {}) {
  return backtest({ attempts: 0, progress: null, result: null, ...overrides });
}

/** The paths of the single-backtest requests the page made (not its stream). */
function detailPaths(fetchMock: { mock: { calls: unknown[][] } }): string[] {
  return fetchMock.mock.calls
    .map(([request]) => new URL(request instanceof Request ? request.url : String(request)).pathname)
    .filter((path) => path.startsWith("/api/v1/backtests/") && path !== "/api/v1/backtests/stream");
}

describe("backtests page", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });

  it("says it is loading until the list arrives", async () => {
    let answer: (response: Response) => void = () => {};
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      "GET /api/v1/backtests": () => new Promise<Response>((resolve) => (answer = resolve)),
    });
    renderPage();
    expect(await screen.findByRole("status")).toHaveTextContent("Loading backtests…");
    answer(json(200, { items: [], next_cursor: null }));
    expect(await screen.findByText(/You have no backtests yet/)).toBeInTheDocument();
    expect(screen.queryByRole("status")).not.toBeInTheDocument();
  });

  it("says when there are no backtests", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      "GET /api/v1/backtests": () => json(200, { items: [], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findByText(/You have no backtests yet/)).toBeInTheDocument();
    expect(screen.queryByRole("table")).not.toBeInTheDocument();
  });

  it("shows the API's problem and lets the user try again", async () => {
    let calls = 0;
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      "GET /api/v1/backtests": () =>
        ++calls === 1
          ? problem(503, "unavailable", "the database does not answer")
          : json(200, { items: [], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findByRole("alert")).toHaveTextContent("the database does not answer");
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByText(/You have no backtests yet/)).toBeInTheDocument();
  });

  it("lists each backtest with status, source, requested time, bars and return", async () => {
    const fetchMock = mockApi({
      "GET /api/v1/me": () => json(200, me()),
      "GET /api/v1/backtests": () =>
        json(200, {
          items: [
            listed(),
            listed({
              backtest_id: "b7000000-0000-4000-8000-000000000003",
              config: { ...backtest().config, name: "eth-csv", symbol: "ETH-USD" },
              source: { kind: "csv", bytes: 2048, sha256: "a".repeat(64) },
              status: "failed",
              summary: null,
              error: "line 7, column 5 (close): \"abc\" is not a decimal",
            }),
          ],
          next_cursor: null,
        }),
    });
    renderPage();
    const done = (await screen.findByRole("link", { name: "demo-sma-3-8" })).closest("tr")!;
    expect(screen.getByRole("link", { name: "demo-sma-3-8" })).toHaveAttribute("href", `/backtests/${BACKTEST_ID}`);
    expect(within(done).getByText("completed")).toBeInTheDocument();
    expect(within(done).getByText("Simulated")).toBeInTheDocument();
    expect(within(done).getByText("2026-12-02 12:00:00 UTC")).toBeInTheDocument();
    expect(within(done).getByText("1,440")).toBeInTheDocument();
    expect(within(done).getByText("0.1235%")).toHaveClass("positive");

    const failed = screen.getByRole("link", { name: "eth-csv" }).closest("tr")!;
    expect(within(failed).getByText("failed")).toBeInTheDocument();
    expect(within(failed).getByText("CSV upload")).toBeInTheDocument();
    expect(within(failed).getAllByLabelText("not available")).toHaveLength(2);
    // Backtests are not fetched one by one: their live state comes over the stream.
    expect(detailPaths(fetchMock)).toEqual([]);
  });

  it("shows a running backtest's progress, which the listing lacks, from the backtests stream", async () => {
    const stream = liveStream();
    const running = { backtest_id: RUNNING, status: "running", summary: null, completed_at: null };
    let lists = 0;
    const fetchMock = mockApi({
      "GET /api/v1/me": () => json(200, me()),
      "GET /api/v1/backtests": () => {
        lists += 1;
        return json(200, { items: [listed(lists === 1 ? running : { backtest_id: RUNNING })], next_cursor: null });
      },
      "GET /api/v1/backtests/stream": () => stream.response(),
    });
    renderPage();
    const row = (await screen.findByRole("link", { name: "demo-sma-3-8" })).closest("tr")!;
    expect(within(row).getByText("running")).toBeInTheDocument();
    await waitFor(() => expect(stream.connected()).toBe(true));

    stream.send("backtest", backtest({ ...running, result: null, progress: { bars_done: 250, bars_total: 1000 } }));
    const bar = await screen.findByRole("progressbar", { name: "Progress of demo-sma-3-8" });
    expect(bar).toHaveAttribute("value", "250");
    expect(bar).toHaveAttribute("max", "1000");
    expect(screen.getByText("250 of 1,000 bars (25%)")).toBeInTheDocument();

    // Finished: the row says so, and the list is fetched again (once).
    stream.send("backtest", backtest({ backtest_id: RUNNING, result: null }), crypto.randomUUID());
    expect(await within(row).findByText("completed")).toBeInTheDocument();
    await waitFor(() => expect(lists).toBe(2));
    expect(detailPaths(fetchMock)).toEqual([]);
  });

  it("shows a backtest requested elsewhere (another tab) when the stream first mentions it", async () => {
    const stream = liveStream();
    let lists = 0;
    const other = { backtest_id: RUNNING, status: "requested", summary: null, completed_at: null, config: { ...backtest().config, name: "from-another-tab" } };
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      "GET /api/v1/backtests": () => {
        lists += 1;
        return json(200, { items: lists === 1 ? [listed()] : [listed(other), listed()], next_cursor: null });
      },
      "GET /api/v1/backtests/stream": () => stream.response(),
    });
    renderPage();
    await screen.findByRole("link", { name: "demo-sma-3-8" });
    await waitFor(() => expect(stream.connected()).toBe(true));
    stream.send("backtest", backtest({ ...other, result: null }), crypto.randomUUID());
    expect(await screen.findByRole("link", { name: "from-another-tab" })).toBeInTheDocument();
    expect(lists).toBe(2);
  });

  it("offers a trader the new-backtest button", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me("trader")),
      "GET /api/v1/backtests": () => json(200, { items: [], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findByRole("link", { name: "New backtest" })).toHaveAttribute("href", "/backtests/new");
  });

  it("hides the new-backtest button from a viewer", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me("viewer")),
      "GET /api/v1/backtests": () => json(200, { items: [listed()], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findByRole("link", { name: "demo-sma-3-8" })).toBeInTheDocument();
    expect(screen.queryByRole("link", { name: "New backtest" })).not.toBeInTheDocument();
  });

  it("fetches the next page with the cursor the API gave", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      "GET /api/v1/backtests": (request) =>
        new URL(request.url).searchParams.get("cursor") === "62317c31"
          ? json(200, {
              items: [listed({ backtest_id: "b7000000-0000-4000-8000-000000000009", config: { ...backtest().config, name: "older" } })],
              next_cursor: null,
            })
          : json(200, { items: [listed()], next_cursor: "62317c31" }),
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Show more backtests" }));
    expect(await screen.findByRole("link", { name: "older" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Show more backtests" })).not.toBeInTheDocument();
  });
});
