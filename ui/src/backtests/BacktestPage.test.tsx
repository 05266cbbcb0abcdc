import { QueryClientProvider } from "@tanstack/react-query";
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { json, liveStream, mockApi, problem, TOKEN } from "../test/api";
import { BACKTEST_ID, backtest, me, metrics, result } from "../test/backtests";
import { BacktestPage } from "./BacktestPage";

// lightweight-charts draws on a canvas, which jsdom lacks: the charts component is replaced (its data shaping is
// tested in series.test.ts).
vi.mock("./BacktestCharts", () => ({
  default: ({ points }: { points: unknown[] }) => <p data-testid="charts">charts of {points.length} points</p>,
}));

const PATH = `/api/v1/backtests/${BACKTEST_ID}`;

function renderPage() {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  return render(
    <QueryClientProvider client={client}>
      <BacktestPage id={BACKTEST_ID} />
    </QueryClientProvider>,
  );
}

function running(done: number, total = 1000) {
  return backtest({
    status: "running",
    completed_at: null,
    summary: null,
    result: null,
    progress: { bars_done: done, bars_total: total },
  });
}

function observations(parity: Record<string, unknown>) {
  return backtest({
    source: { kind: "observations", agent_id: "d3e00000-0000-4000-8000-000000000001" },
    result: result({ parity }),
  });
}

describe("backtest page", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("says it is loading, then shows a completed backtest's summary, metrics, charts, trades and orders", async () => {
    let answer: (response: Response) => void = () => {};
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () => new Promise<Response>((resolve) => (answer = resolve)),
    });
    renderPage();
    expect(await screen.findByRole("status")).toHaveTextContent("Loading the backtest…");
    answer(json(200, backtest()));

    expect(await screen.findByRole("heading", { level: 1, name: /Backtest of demo-sma-3-8/ })).toHaveTextContent(
      "Backtest of demo-sma-3-8 completed",
    );
    const summary = screen.getByRole("region", { name: "Summary" });
    expect(within(summary).getByText("10012.345678901234567")).toBeInTheDocument();
    expect(within(summary).getByText("12.345678901234567")).toHaveClass("positive");
    expect(within(summary).getByText("0.1235%")).toBeInTheDocument();
    expect(within(summary).getByText("1,440")).toBeInTheDocument();

    expect(await screen.findByTestId("charts")).toHaveTextContent("charts of 3 points");

    const trades = screen.getByRole("region", { name: "Trades" });
    expect(within(trades).getByText("64044.50625")).toBeInTheDocument();

    const orders = screen.getByRole("region", { name: "Orders" });
    const rejected = within(orders).getByText("insufficient_cash").closest("tr")!;
    expect(rejected).toHaveTextContent("buying 0.01 at 64100.00 needs 641.00 but cash is 12.50");
    expect(within(rejected).getByText("rejected")).toBeInTheDocument();
    // A plain backtest (not of observations) has no parity verdict.
    expect(screen.queryByRole("region", { name: /Parity/ })).not.toBeInTheDocument();
  });

  it("shows an undefined metric as a dash that says why, and a defined one as the API's string", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () => json(200, backtest({ result: result({ metrics: metrics({ sharpe: null, profit_factor: "1.8091" }) }) })),
    });
    renderPage();
    const table = within(await screen.findByRole("table", { name: /Ratios and percentages/ }));
    const sharpe = table.getByRole("rowheader", { name: "Sharpe ratio" }).closest("tr")!;
    expect(within(sharpe).getByText("—")).toBeInTheDocument();
    expect(within(sharpe).getByTitle(/^Undefined: fewer than 2 returns, or every return equal/)).toBeInTheDocument();
    const cagr = table.getByRole("rowheader", { name: "CAGR" }).closest("tr")!;
    expect(within(cagr).getByText("—")).toBeInTheDocument();
    expect(within(cagr).getByText(/Undefined: the run spans less than 30 days/)).toBeInTheDocument();
    const pf = table.getByRole("rowheader", { name: "Profit factor" }).closest("tr")!;
    expect(within(pf).getByText("1.8091")).toBeInTheDocument();
    const duration = table.getByRole("rowheader", { name: "Longest drawdown" }).closest("tr")!;
    expect(duration).toHaveTextContent("2,592,000 s (30 d)");
  });

  it("shows parity equal with the sizes compared", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () => json(200, observations({ verdict: "equal", orders: 12, fills: 10, pnl_points: 1440 })),
    });
    renderPage();
    const parity = await screen.findByRole("region", { name: "Parity: equal" });
    expect(parity).toHaveTextContent(
      "The backtest reproduced the paper agent's trading record: 12 orders, 10 fills and 1,440 PnL points match element by element.",
    );
    expect(parity).toHaveClass("banner-good");
  });

  it("shows parity differs with the first difference", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () =>
        json(200, observations({
          verdict: "differs",
          difference: { sequence: "fills", index: 3, field: "price", paper: "64044.50", backtest: "64044.51" },
        })),
    });
    renderPage();
    const parity = await screen.findByRole("region", { name: "Parity: differs" });
    expect(parity).toHaveTextContent("First difference: fills[3].price: paper 64044.50, backtest 64044.51.");
    expect(parity).toHaveClass("banner-bad");
  });

  it("shows parity void with its reason", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () =>
        json(200, observations({ verdict: "void", reason: "the agent changed its config after its first run" })),
    });
    renderPage();
    const parity = await screen.findByRole("region", { name: "Parity: void" });
    expect(parity).toHaveTextContent("Not compared: the agent changed its config after its first run.");
  });

  it("shows a failed backtest's error", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () =>
        json(200, backtest({
          status: "failed",
          completed_at: null,
          failed_at: "2026-12-02T12:00:02Z",
          error: 'line 7, column 5 (close): "abc" is not a decimal',
          summary: null,
          result: null,
        })),
    });
    renderPage();
    expect(await screen.findByRole("alert")).toHaveTextContent('line 7, column 5 (close): "abc" is not a decimal');
    expect(screen.queryByRole("region", { name: "Summary" })).not.toBeInTheDocument();
  });

  it("says when there is no such backtest", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () => problem(404, "backtest_not_found", "no such backtest"),
    });
    renderPage();
    expect(await screen.findByRole("alert")).toHaveTextContent("There is no such backtest, or it is not yours.");
  });

  it("shows progress from the backtests stream, then fetches the result once it finished; never polls", async () => {
    vi.useFakeTimers();
    const stream = liveStream();
    const answers = [running(250), backtest()];
    let calls = 0;
    mockApi({
      "GET /api/v1/me": () => json(200, me()),
      [`GET ${PATH}`]: () => json(200, answers[Math.min(calls++, answers.length - 1)]),
      "GET /api/v1/backtests/stream": () => stream.response(),
    });
    renderPage();
    await act(() => vi.advanceTimersByTimeAsync(10));

    const bar = screen.getByRole("progressbar", { name: "Progress" });
    expect(bar).toHaveAttribute("value", "250");
    expect(bar).toHaveAttribute("max", "1000");
    expect(screen.getByText("250 of 1,000 bars (25%)")).toBeInTheDocument();
    expect(calls).toBe(1);

    // Progress arrives on the stream: shown at once, nothing fetched.
    await act(async () => {
      stream.send("backtest", running(500));
      await vi.advanceTimersByTimeAsync(10);
    });
    expect(screen.getByText("500 of 1,000 bars (50%)")).toBeInTheDocument();
    expect(calls).toBe(1);

    // Finished: the stream's message has no result, so the page fetches the backtest once more.
    await act(async () => {
      stream.send("backtest", { ...backtest(), result: null }, crypto.randomUUID());
      await vi.advanceTimersByTimeAsync(10);
    });
    expect(calls).toBe(2);
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("completed");
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    expect(screen.getByRole("region", { name: "Summary" })).toBeInTheDocument();

    await act(() => vi.advanceTimersByTimeAsync(60_000));
    expect(calls).toBe(2);
  });

  it("lets a trader cancel a running backtest", async () => {
    const cancelled = backtest({
      status: "cancelled",
      completed_at: null,
      cancelled_at: "2026-12-02T12:00:02Z",
      summary: null,
      result: null,
      progress: { bars_done: 300, bars_total: 1000 },
    });
    let cancels = 0;
    mockApi({
      "GET /api/v1/me": () => json(200, me("trader")),
      [`GET ${PATH}`]: () => json(200, cancels > 0 ? cancelled : running(300)),
      [`POST ${PATH}/cancel`]: () => {
        cancels++;
        return json(200, cancelled);
      },
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Cancel backtest" }));
    expect(await screen.findByText("Cancelled at 2026-12-02 12:00:02 UTC: no result.")).toBeInTheDocument();
    expect(cancels).toBe(1);
    expect(screen.queryByRole("button", { name: "Cancel backtest" })).not.toBeInTheDocument();
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
  });

  it("says so when the backtest finished before the cancel arrived", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me("trader")),
      [`GET ${PATH}`]: () => json(200, running(300)),
      [`POST ${PATH}/cancel`]: () => problem(409, "backtest_finished", "the backtest has finished"),
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Cancel backtest" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("It had already finished.");
  });

  it("shows a viewer the progress but no cancel button", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me("viewer")),
      [`GET ${PATH}`]: () => json(200, running(300)),
    });
    renderPage();
    expect(await screen.findByRole("progressbar", { name: "Progress" })).toBeInTheDocument();
    // /me has answered (viewer) by the time the page settles; the button never appears.
    await waitFor(() => expect(screen.getByText("300 of 1,000 bars (30%)")).toBeInTheDocument());
    expect(screen.queryByRole("button", { name: "Cancel backtest" })).not.toBeInTheDocument();
  });
});
