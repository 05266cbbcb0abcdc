import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { App, makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { agent, json, mockApi, problem, TOKEN, type Handler } from "../test/api";
import { AGENT_ID, page } from "../test/agentDetail";
import { AuditPage, payloadSummary } from "./AuditPage";
import { auditAgentIdOf } from "./path";

const A = `/api/v1/agents/${AGENT_ID}`;
const HEAD = "ab".repeat(32);

function envelope(sequence: number, eventType: string, correlationId: string, inner: Record<string, unknown> = {}) {
  return {
    position: { tx_id: 100 + sequence, global_position: sequence },
    event_id: `e0000000-0000-4000-8000-${String(sequence).padStart(12, "0")}`,
    aggregate_type: "Agent",
    aggregate_id: AGENT_ID,
    sequence,
    event_type: eventType,
    event_version: "1",
    payload: { [eventType]: inner },
    metadata: { correlation_id: correlationId, actor: sequence <= 2 ? "demo" : "runtime" },
    recorded_at: `2026-12-02T12:00:0${sequence}.000Z`,
    hash: sequence === 3 ? HEAD : "cd".repeat(32),
  };
}

const FIRST_PAGE = [
  envelope(1, "AgentCreated", "create-1", { name: "demo-sma-3-8", symbol: "BTC-USD" }),
  envelope(2, "AgentStarted", "start-1", { session: 1, frequency_s: 2 }),
];
const SECOND_PAGE = [envelope(3, "AgentRunRecorded", "tick-1", { session: 1, tick_no: 1 })];

function verified() {
  return {
    aggregate_type: "Agent",
    aggregate_id: AGENT_ID,
    verified: true,
    events: 3,
    head_hash: HEAD,
    problems: [],
    problems_truncated: false,
  };
}

function routes(overrides: Record<string, Handler> = {}): Record<string, Handler> {
  return {
    "GET /api/v1/me": () => json(200, { sub: "demo", roles: ["viewer"], role: "viewer", auth_mode: "dev", telegram_links: 0 }),
    [`GET ${A}`]: () => json(200, agent()),
    [`GET ${A}/chain`]: () => json(200, verified()),
    [`GET ${A}/events`]: (request) =>
      new URL(request.url).searchParams.get("cursor") === "c2"
        ? json(200, page(SECOND_PAGE))
        : json(200, page(FIRST_PAGE, "c2")),
    ...overrides,
  };
}

function testClient() {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  return client;
}

function renderPage() {
  return render(
    <QueryClientProvider client={testClient()}>
      <AuditPage agentId={AGENT_ID} />
    </QueryClientProvider>,
  );
}

describe("audit page", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });

  it("takes its agent id from /agents/<id>/audit only", () => {
    expect(auditAgentIdOf(`/agents/${AGENT_ID.toUpperCase()}/audit`)).toBe(AGENT_ID);
    expect(auditAgentIdOf(`/agents/${AGENT_ID}`)).toBeNull();
    expect(auditAgentIdOf("/agents/new/audit")).toBeNull();
  });

  it("shows a verified chain with its event count and head hash", async () => {
    mockApi(routes());
    renderPage();
    const verdict = await screen.findByText(/Chain verified: 3 events from genesis/);
    expect(verdict.closest("[role=status]")).toHaveTextContent(HEAD);
    expect(screen.getByRole("heading", { level: 1, name: "Audit: demo-sma-3-8" })).toBeInTheDocument();
  });

  it("shows a broken chain's problems with their sequences", async () => {
    mockApi(
      routes({
        [`GET ${A}/chain`]: () =>
          json(200, {
            ...verified(),
            verified: false,
            problems: [
              {
                sequence: 2,
                problem: "altered_event",
                detail: `altered event: Agent/${AGENT_ID} sequence 2 does not match its hash (edited or forged)`,
              },
            ],
          }),
      }),
    );
    renderPage();
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Chain broken: 1 problem in 3 events");
    expect(within(alert).getByText("Sequence 2")).toBeInTheDocument();
    expect(alert).toHaveTextContent(`altered event: Agent/${AGENT_ID} sequence 2`);
    expect(screen.queryByText(/Chain verified/)).not.toBeInTheDocument();
  });

  it("lists events in sequence order with their correlation ids and actors, and pages through them", async () => {
    const user = userEvent.setup();
    mockApi(routes());
    renderPage();
    const table = await screen.findByRole("table", { name: /Events, oldest first: page 1/ });
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((row) => within(row).getByRole("rowheader").textContent)).toEqual(["1", "2"]);
    expect(rows[0]).toHaveTextContent("AgentCreated");
    expect(within(rows[0]!).getByText("create-1")).toBeInTheDocument();
    expect(within(rows[1]!).getByText("start-1")).toBeInTheDocument();
    expect(rows[1]).toHaveTextContent("demo");

    await user.click(screen.getByRole("button", { name: "Newer events" }));
    const next = await screen.findByRole("table", { name: /page 2/ });
    expect(within(next).getByText("tick-1")).toBeInTheDocument();
    expect(within(next).getByText("runtime")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Newer events" })).toBeDisabled();

    await user.click(screen.getByRole("button", { name: "Older events" }));
    expect(await screen.findByRole("table", { name: /page 1/ })).toHaveTextContent("create-1");
  });

  it("expands a row to the payload JSON", async () => {
    const user = userEvent.setup();
    mockApi(routes());
    renderPage();
    const toggle = await screen.findByRole("button", { name: "Payload of event 1" });
    expect(toggle).toHaveTextContent("name demo-sma-3-8 · symbol BTC-USD");
    expect(toggle).toHaveAttribute("aria-expanded", "false");
    await user.click(toggle);
    expect(toggle).toHaveAttribute("aria-expanded", "true");
    expect(screen.getByText(/"AgentCreated": \{/)).toBeInTheDocument();
    await user.click(toggle);
    expect(screen.queryByText(/"AgentCreated": \{/)).not.toBeInTheDocument();
  });

  it("says when there are no events, and when the agent is not visible", async () => {
    mockApi(routes({ [`GET ${A}/events`]: () => json(200, page([])) }));
    const { unmount } = renderPage();
    expect(await screen.findByText("No events yet.")).toBeInTheDocument();
    unmount();

    mockApi(
      routes({
        [`GET ${A}`]: () => problem(404, "agent_not_found", "no such agent"),
        [`GET ${A}/chain`]: () => problem(404, "agent_not_found", "no such agent"),
        [`GET ${A}/events`]: () => problem(404, "agent_not_found", "no such agent"),
      }),
    );
    renderPage();
    expect(await screen.findByText("There is no agent with this id that you can see.")).toBeInTheDocument();
  });

  it("shows an error when the chain check fails", async () => {
    mockApi(routes({ [`GET ${A}/chain`]: () => problem(503, "unavailable", "event store down") }));
    renderPage();
    expect(await screen.findByText(/Could not check the hash chain: event store down/)).toBeInTheDocument();
  });

  it("summarises a payload's telling fields, leaving out the agent id and instants", () => {
    expect(payloadSummary({ AgentStopped: { reason: "user", stopped_at: "2026-12-02T12:00:00Z" } })).toBe("reason user");
    expect(
      payloadSummary({
        OrderFilled: { agent_id: AGENT_ID, fee: "0.5", fill_price: "100", order_id: `${AGENT_ID}-1-9`, qty: "1" },
      }),
    ).toBe("qty 1 · fill_price 100 · fee 0.5");
    expect(payloadSummary({ OrderPlaced: { order_id: `${AGENT_ID}-2-7`, side: "buy" } })).toBe("side buy · order 2/7");
    expect(payloadSummary({ AgentRunRecorded: { correlation_id: "tick-1", session: 1, tick_no: 1 } })).toBe(
      "session 1 · tick_no 1",
    );
    expect(payloadSummary({ X: { id: "x".repeat(40) } })).toBe(`id ${"x".repeat(23)}…`);
    expect(payloadSummary(null)).toBe("");
  });

  it("is reached from the agent page's Audit link", async () => {
    const user = userEvent.setup();
    mockApi({
      ...routes(),
      [`GET ${A}/stream`]: () =>
        new Response(new ReadableStream({ start() {} }), {
          status: 200,
          headers: { "content-type": "text/event-stream" },
        }),
      [`GET ${A}/summary`]: () => json(404, {}),
    });
    window.history.pushState(null, "", `/agents/${AGENT_ID}`);
    render(<App client={testClient()} />);
    await user.click(await screen.findByRole("link", { name: "Audit" }));
    expect(window.location.pathname).toBe(`/agents/${AGENT_ID}/audit`);
    expect(await screen.findByText(/Chain verified/)).toBeInTheDocument();
    window.history.pushState(null, "", "/");
  });
});
