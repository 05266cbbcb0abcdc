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

/** What every mocked server answers unless a test says otherwise: dev-mode sign-in. */
const DEFAULT_ROUTES: Record<string, Handler> = {
  "GET /api/v1/auth/config": () => json(200, { mode: "dev", oidc: null }),
};

/** The calls a test made, without the sign-in page's question how to sign in (GET /api/v1/auth/config). */
export function apiCalls(fetchMock: ReturnType<typeof mockApi>): Request[] {
  return fetchMock.mock.calls
    .map(([input]) => input as Request)
    .filter((request) => new URL(request.url).pathname !== "/api/v1/auth/config");
}

/** Replaces fetch; returns the mock so tests can read the requests it got. Unknown routes are a 404 problem. */
export function mockApi(routes: Record<string, Handler>) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
    const request = input instanceof Request ? input : new Request(input);
    const url = new URL(request.url);
    const handler = routes[`${request.method} ${url.pathname}`] ?? DEFAULT_ROUTES[`${request.method} ${url.pathname}`];
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

/** GET /api/v1/me for a user with this role. */
export function me(role: "viewer" | "trader" | "admin" = "trader") {
  return { sub: "demo", roles: [role], role, auth_mode: "dev", telegram_links: 0 };
}

/** One PnL point (one run), as GET …/pnl lists them. */
export function pnlPoint(tickNo: number, equity: string) {
  return {
    session: 1,
    tick_no: tickNo,
    at: `2026-12-02T12:00:${String(tickNo * 2).padStart(2, "0")}Z`,
    mark_price: "64012.50",
    position_qty: "0",
    cash: equity,
    equity,
    realized_pnl: "0",
    unrealized_pnl: "0",
    fees: "0",
    pnl: "0",
  };
}

/** GET /api/v1/strategies as the domain's catalogue serves it (numbers as strings, null where unbounded). */
export function strategies() {
  return {
    items: [
      { kind: "hold", description: "Never trades; records an observation each tick (the default).", params: [] },
      {
        kind: "sma_crossover",
        description: "Buys when the fast simple moving average crosses above the slow one, sells when it crosses below.",
        params: [
          { name: "fast", type: "integer", default: "10", min: "1", max: "500", description: "bars in the fast average" },
          {
            name: "slow",
            type: "integer",
            default: "30",
            min: "2",
            max: "2000",
            description: "bars in the slow average; must exceed fast",
          },
          { name: "qty", type: "decimal", default: "1", min: null, max: null, description: "units per order; > 0" },
        ],
      },
    ],
  };
}

/**
 * A server-sent event stream a test feeds: `response()` is the 200 text/event-stream answer (one per connection;
 * a new one replaces the last), `send` frames a message on it as the server does, `end` closes it.
 */
export function liveStream() {
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  const encoder = new TextEncoder();
  return {
    response(): Response {
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          controller = c;
          c.enqueue(encoder.encode(": keep-alive\n\n"));
        },
      });
      return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
    },
    send(event: string, data: unknown, id?: string) {
      const lines = [`event: ${event}`, ...(id ? [`id: ${id}`] : []), `data: ${JSON.stringify(data)}`];
      controller!.enqueue(encoder.encode(`${lines.join("\n")}\n\n`));
    },
    end() {
      controller?.close();
    },
    /** Whether a client has opened the stream. */
    connected(): boolean {
      return controller !== undefined;
    },
  };
}
