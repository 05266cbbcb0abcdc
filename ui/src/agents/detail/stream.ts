// The agent page's one live subscription: GET /api/v1/agents/{id}/stream (specs/03 §4) over fetch-event-source,
// which can send the Authorization header (EventSource cannot). A message says something was committed; the page
// refetches its read endpoints (the server keeps no replay, and Last-Event-ID is ignored), a few messages at a time.
// Nothing polls: between messages the page is quiet.
import { fetchEventSource } from "@microsoft/fetch-event-source";
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { SESSION_ENDED, type Agent, type Schemas } from "../../api/client";
import { currentToken, signOut } from "../../auth/session";
import { agentKey } from "./queries";

export type AgentStreamMessage = Schemas["AgentStreamMessage"];

/**
 * Messages are coalesced for this long before the page refetches: a fill brings OrderPlaced, OrderFilled and the
 * run in a burst, which should cost one refetch, and a person cannot tell 250 ms.
 */
export const REFRESH_DELAY_MS = 250;
/** First wait before reconnecting; doubled after each failure up to RETRY_MAX_MS, back to this once connected. */
export const RETRY_FIRST_MS = 1000;
/** The longest wait between reconnection attempts (a server restart, a laptop waking up). */
export const RETRY_MAX_MS = 30_000;

/** An answer no retry will change (401, 403, 404): the stream stops. */
class StreamRefused extends Error {}

/** A retriable failure that says how long to wait (429 with Retry-After). */
class StreamBusy extends Error {
  constructor(readonly retryAfterMs: number) {
    super("too many open streams");
  }
}

export function retryDelayMs(failures: number): number {
  return Math.min(RETRY_FIRST_MS * 2 ** Math.max(0, failures - 1), RETRY_MAX_MS);
}

export interface StreamHandlers {
  onMessage: (message: AgentStreamMessage) => void;
  /** Connected again after a drop: messages may have been missed. */
  onReconnect: () => void;
}

/**
 * Opens the stream until `signal` aborts, reconnecting with backoff after errors and after the server closes it
 * (it disconnects a client that falls behind). A 401 signs out as the API client does (back to sign-in).
 */
export function openAgentStream(agentId: string, handlers: StreamHandlers, signal: AbortSignal): void {
  const token = currentToken();
  let failures = 0;
  let connected = false;
  fetchEventSource(`${window.location.origin}/api/v1/agents/${encodeURIComponent(agentId)}/stream`, {
    signal,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    // Read at call time, as the API client does, so tests can replace globalThis.fetch.
    fetch: (input, init) => globalThis.fetch(input, init),
    async onopen(response) {
      if (response.ok && response.headers.get("content-type")?.startsWith("text/event-stream")) {
        if (connected) handlers.onReconnect();
        connected = true;
        failures = 0;
        return;
      }
      if (response.status === 401) {
        if (currentToken()) signOut(SESSION_ENDED);
        throw new StreamRefused("unauthenticated");
      }
      if (response.status === 403 || response.status === 404) throw new StreamRefused(`HTTP ${response.status}`);
      const retryAfter = Number(response.headers.get("retry-after"));
      if (response.status === 429 && retryAfter > 0) throw new StreamBusy(retryAfter * 1000);
      throw new Error(`the stream answered HTTP ${response.status}`);
    },
    onmessage(event) {
      if (!event.data) return;
      let message: AgentStreamMessage;
      try {
        message = JSON.parse(event.data) as AgentStreamMessage;
      } catch {
        return; // Not a message of specs/03 §4; the next one will do.
      }
      handlers.onMessage(message);
    },
    onclose() {
      // The server ended the stream: throwing hands it to onerror, which reconnects.
      throw new Error("the stream was closed by the server");
    },
    onerror(error: unknown) {
      if (error instanceof StreamRefused) throw error; // stops fetchEventSource
      failures += 1;
      const wait = retryDelayMs(failures);
      return error instanceof StreamBusy ? Math.max(wait, error.retryAfterMs) : wait;
    },
    // Closed while the tab is hidden, reopened (and the page refetched) when it shows: a background tab holds
    // none of the user's 16 streams.
    openWhenHidden: false,
  }).catch(() => {
    // A refused stream: the page shows what its queries say (404, or sign-in after a 401).
  });
}

/** The parts of the page under ["agents", id]: the agent itself, and the third element of every other key. */
export type PagePart = "agent" | "summary" | "runs" | "pnl" | "orders" | "trades";

/**
 * What an event can change (specs/04 §2): a run moves the agent (last run, count), its runs, its PnL points and
 * the summary; an order event its orders (and a fill its trades) and the summary's counts and position. Any other
 * event (started, stopped, config changed, archived) refreshes the whole page.
 */
export function partsChangedBy(eventType: string): readonly PagePart[] | "all" {
  switch (eventType) {
    case "AgentRunRecorded":
      return ["agent", "runs", "pnl", "summary"];
    case "OrderPlaced":
    case "OrderRejected":
      return ["orders", "summary"];
    case "OrderFilled":
      return ["orders", "trades", "summary"];
    default:
      return "all";
  }
}

function partOf(queryKey: readonly unknown[]): string {
  return queryKey.length <= 2 ? "agent" : String(queryKey[2]);
}

/**
 * What a message does to the page: the agent's status and countdown target at once (they come with the message),
 * then, after REFRESH_DELAY_MS gathering any messages that follow, one refetch of the parts they changed. A
 * reconnection refetches everything (messages may have been missed). Returns the handlers and a cancel for the
 * pending refetch.
 */
export function streamRefresher(queryClient: QueryClient, agentId: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: Set<string> | "all" = new Set();
  const refresh = (parts: readonly PagePart[] | "all") => {
    if (parts === "all" || pending === "all") pending = "all";
    else for (const part of parts) pending.add(part);
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      const due = pending;
      timer = undefined;
      pending = new Set();
      void queryClient.invalidateQueries({
        queryKey: agentKey(agentId),
        predicate: (query) => due === "all" || due.has(partOf(query.queryKey)),
      });
    }, REFRESH_DELAY_MS);
  };
  const handlers: StreamHandlers = {
    onMessage(message) {
      queryClient.setQueryData<Agent>(agentKey(agentId), (agent) =>
        agent ? { ...agent, status: message.status, next_tick_at: message.next_tick_at } : agent,
      );
      refresh(partsChangedBy(message.envelope.event_type));
    },
    onReconnect: () => refresh("all"),
  };
  return { handlers, cancel: () => clearTimeout(timer) };
}

/** The page's stream: open while the page is shown, closed when it unmounts or shows another agent. */
export function useAgentStream(agentId: string) {
  const queryClient = useQueryClient();
  useEffect(() => {
    const controller = new AbortController();
    const refresher = streamRefresher(queryClient, agentId);
    openAgentStream(agentId, refresher.handlers, controller.signal);
    return () => {
      controller.abort();
      refresher.cancel();
    };
  }, [agentId, queryClient]);
}
