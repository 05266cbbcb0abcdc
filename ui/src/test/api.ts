// Tests mock the API at the boundary: globalThis.fetch, answering by "METHOD /path" like the real server would.
import { vi } from "vitest";

export type Handler = (request: Request) => Response | Promise<Response>;

export function json(status: number, body: unknown): Response {
  const type = status >= 400 ? "application/problem+json" : "application/json";
  return new Response(JSON.stringify(body), { status, headers: { "content-type": type } });
}

export function problem(status: number, code: string, detail: string): Response {
  return json(status, { type: `https://strom.invalid/problems/${code}`, title: code, status, code, detail });
}

/** Replaces fetch; returns the mock so tests can read the requests it got. Unknown routes are a 404 problem. */
export function mockApi(routes: Record<string, Handler>) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
    const request = input instanceof Request ? input : new Request(input);
    const url = new URL(request.url);
    const handler = routes[`${request.method} ${url.pathname}`];
    return handler ? handler(request) : problem(404, "not_found", `no such endpoint: ${url.pathname}`);
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

/** A JWT-shaped string (the API is mocked, so its contents do not matter). */
export const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZW1vIn0.c2lnbmF0dXJl";

export function agent(overrides: Record<string, unknown> = {}) {
  return {
    agent_id: "d3e00000-0000-4000-8000-000000000001",
    owner: "demo",
    name: "demo-sma-3-8",
    symbol: "BTC-USD",
    strategy: { kind: "sma_crossover", params: { fast: 3, slow: 8, qty: "0.01" } },
    frequency_s: 2,
    risk: { max_position_qty: "1", max_order_qty: "1", max_notional: "10000", max_daily_loss: null },
    starting_cash: "10000",
    seed: 42,
    status: "running",
    session: 1,
    started_at: "2026-12-02T12:00:00Z",
    stopped_at: null,
    archived_at: null,
    next_tick_at: "2026-12-02T12:00:10Z",
    last_tick_no: 4,
    last_run_at: "2026-12-02T12:00:08Z",
    last_price: "64012.50",
    runs_count: 4,
    created_at: "2026-12-02T11:59:00Z",
    updated_at: "2026-12-02T12:00:08Z",
    version: 7,
    ...overrides,
  };
}

export function summary(overrides: Record<string, unknown> = {}) {
  return {
    agent_id: "d3e00000-0000-4000-8000-000000000001",
    symbol: "BTC-USD",
    starting_cash: "10000",
    cash: "9359.875",
    position_qty: "0.01",
    avg_price: "64012.50",
    mark_price: "64012.50",
    equity: "10000.000",
    realized_pnl: "0",
    unrealized_pnl: "0",
    fees: "0",
    pnl: "0.000",
    return_pct: "0.0000",
    ...overrides,
  };
}
