import { QueryClientProvider } from "@tanstack/react-query";
import { renderHook } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makeQueryClient } from "../../App";
import { SESSION_ENDED } from "../../api/client";
import { currentToken, resetSessionForTests, signIn, useSession } from "../../auth/session";
import { agent, problem, TOKEN } from "../../test/api";
import { AGENT_ID } from "../../test/agentDetail";
import { retryDelayMs, RETRY_FIRST_MS, RETRY_MAX_MS } from "../../api/sse";
import { openAgentStream, partsChangedBy, REFRESH_DELAY_MS, useAgentStream } from "./stream";

const STREAM = `/api/v1/agents/${AGENT_ID}/stream`;

/** The `id:` of the frames: the event's sequence in the agent's stream. */
let sequence = 0;

/** One SSE message of GET …/stream (specs/03 §4), as the server frames it. */
function frame(eventType: string, status = "running", nextTickAt: string | null = "2026-12-02T12:00:12Z") {
  const data = {
    envelope: { event_id: crypto.randomUUID(), aggregate_id: AGENT_ID, event_type: eventType, payload: {} },
    status,
    next_tick_at: nextTickAt,
    position: {},
    pnl_point: null,
  };
  sequence += 1;
  return `event: ${eventType}\nid: ${sequence}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A 200 event stream that sends `text` and then stays open (or ends, when `end`). */
function eventStream(text: string, { end = false } = {}) {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(`: keep-alive\n\n${text}`));
      if (end) controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}

/** Replaces fetch for the stream only: each call takes the next answer. */
function mockStream(...answers: (() => Response)[]) {
  let calls = 0;
  const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.pathname !== STREAM) return problem(404, "not_found", url.pathname);
    const answer = answers[Math.min(calls, answers.length - 1)]!;
    calls += 1;
    return answer();
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

describe("the agent stream", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("asks for the event stream with the bearer token (EventSource could not)", async () => {
    const fetchMock = mockStream(() => eventStream(""));
    const controller = new AbortController();
    openAgentStream(AGENT_ID, { onMessage: () => {}, onReconnect: () => {} }, controller.signal);
    await vi.waitFor(() => expect(fetchMock).toHaveBeenCalled());
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe(`${window.location.origin}${STREAM}`);
    expect(init.headers).toMatchObject({ authorization: `Bearer ${TOKEN}`, accept: "text/event-stream" });
    controller.abort();
  });

  it("invalidates the page's queries a moment after a message, for what that event changes", async () => {
    mockStream(() => eventStream(frame("AgentRunRecorded")));
    const client = makeQueryClient();
    const keys = {
      agent: ["agents", AGENT_ID],
      runs: ["agents", AGENT_ID, "runs", null],
      pnl: ["agents", AGENT_ID, "pnl", 600],
      summary: ["agents", AGENT_ID, "summary"],
      orders: ["agents", AGENT_ID, "orders", "all", 20, null],
      trades: ["agents", AGENT_ID, "trades", 20, null],
      list: ["agents"],
    };
    client.setQueryData(keys.agent, agent({ next_tick_at: "2026-12-02T12:00:10Z" }));
    for (const key of Object.values(keys).slice(1)) client.setQueryData(key, { items: [] });
    const invalidate = vi.spyOn(client, "invalidateQueries");

    const { unmount } = renderHook(() => useAgentStream(AGENT_ID), {
      wrapper: ({ children }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>,
    });

    // The status and countdown target come with the message, at once.
    await vi.waitFor(() =>
      expect(client.getQueryData<{ next_tick_at: string }>(keys.agent)?.next_tick_at).toBe("2026-12-02T12:00:12Z"),
    );
    await vi.waitFor(() => expect(invalidate).toHaveBeenCalledTimes(1), { timeout: REFRESH_DELAY_MS + 1000 });
    const invalidated = (key: readonly unknown[]) => client.getQueryState(key)?.isInvalidated;
    expect(invalidated(keys.agent)).toBe(true);
    expect(invalidated(keys.runs)).toBe(true);
    expect(invalidated(keys.pnl)).toBe(true);
    expect(invalidated(keys.summary)).toBe(true);
    expect(invalidated(keys.orders)).toBe(false);
    expect(invalidated(keys.trades)).toBe(false);
    expect(invalidated(keys.list)).toBe(false);
    unmount();
  });

  it("refetches once for a burst of messages", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    mockStream(() => eventStream(frame("OrderPlaced") + frame("OrderFilled") + frame("AgentRunRecorded")));
    const client = makeQueryClient();
    const invalidate = vi.spyOn(client, "invalidateQueries");
    const { unmount } = renderHook(() => useAgentStream(AGENT_ID), {
      wrapper: ({ children }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>,
    });
    await vi.advanceTimersByTimeAsync(REFRESH_DELAY_MS - 1);
    expect(invalidate).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(invalidate).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(REFRESH_DELAY_MS * 4);
    expect(invalidate).toHaveBeenCalledTimes(1);
    unmount();
  });

  it("closes the stream when the page goes", async () => {
    let signal: AbortSignal | undefined;
    vi.stubGlobal(
      "fetch",
      vi.fn(async (_input: RequestInfo | URL, init?: RequestInit) => {
        signal = init?.signal ?? undefined;
        return eventStream("");
      }),
    );
    const client = makeQueryClient();
    const { unmount } = renderHook(() => useAgentStream(AGENT_ID), {
      wrapper: ({ children }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>,
    });
    await vi.waitFor(() => expect(signal).toBeDefined());
    expect(signal!.aborted).toBe(false);
    unmount();
    expect(signal!.aborted).toBe(true);
  });

  it("reconnects with backoff when the server ends the stream, and says so to refetch", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const fetchMock = mockStream(
      () => eventStream(frame("AgentRunRecorded"), { end: true }),
      () => problem(503, "unavailable", "restarting"),
      () => eventStream(""),
    );
    const onReconnect = vi.fn();
    const onMessage = vi.fn();
    const controller = new AbortController();
    openAgentStream(AGENT_ID, { onMessage, onReconnect }, controller.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(onMessage).toHaveBeenCalledTimes(1);
    expect(fetchMock).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(RETRY_FIRST_MS); // closed: first retry after 1 s, answered 503
    expect(fetchMock).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(RETRY_FIRST_MS); // the second retry waits 2 s
    expect(fetchMock).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(RETRY_FIRST_MS);
    expect(fetchMock).toHaveBeenCalledTimes(3);
    expect(onReconnect).toHaveBeenCalledTimes(1);
    // Each reconnection says where it left off, so the server replays what was missed (specs/03 §4).
    const headersOf = (call: number) => (fetchMock.mock.calls[call] as unknown[])[1] as { headers: Record<string, string> };
    expect(headersOf(2).headers["last-event-id"]).toBe(String(sequence));
    controller.abort();
  });

  it("signs out on a 401 and stops, as the API client does", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const fetchMock = mockStream(() => problem(401, "unauthenticated", "token expired"));
    const { result } = renderHook(() => useSession());
    openAgentStream(AGENT_ID, { onMessage: () => {}, onReconnect: () => {} }, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(currentToken()).toBeNull();
    expect(result.current.notice).toBe(SESSION_ENDED);
    await vi.advanceTimersByTimeAsync(RETRY_MAX_MS * 2);
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it("stops on a 404 (no such agent) without retrying", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const fetchMock = mockStream(() => problem(404, "agent_not_found", "no such agent"));
    openAgentStream(AGENT_ID, { onMessage: () => {}, onReconnect: () => {} }, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(RETRY_MAX_MS * 2);
    expect(fetchMock).toHaveBeenCalledTimes(1);
    expect(currentToken()).toBe(TOKEN);
  });

  it("doubles the wait after each failure, up to a ceiling", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(retryDelayMs)).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });

  it("knows what each event changes", () => {
    expect(partsChangedBy("AgentRunRecorded")).toEqual(["agent", "runs", "pnl", "summary"]);
    expect(partsChangedBy("OrderRejected")).toEqual(["orders", "summary"]);
    expect(partsChangedBy("OrderFilled")).toEqual(["orders", "trades", "summary"]);
    expect(partsChangedBy("AgentStopped")).toBe("all");
  });
});
