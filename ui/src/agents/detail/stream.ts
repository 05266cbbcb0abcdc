// The agent page's one live subscription: GET /api/v1/agents/{id}/stream (specs/03 §4, opened by api/sse.ts, which
// sends Last-Event-ID on a reconnection so the server replays what was missed). A message says something was
// committed; the page refetches its read endpoints, a few messages at a time. Nothing polls: between messages the
// page is quiet.
import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { type Agent, type Schemas } from "../../api/client";
import { openEventStream, type StreamHandlers as EventStreamHandlers } from "../../api/sse";
import { agentKey } from "./queries";

export type AgentStreamMessage = Schemas["AgentStreamMessage"];

/**
 * Messages are coalesced for this long before the page refetches: a fill brings OrderPlaced, OrderFilled and the
 * run in a burst, which should cost one refetch, and a person cannot tell 250 ms.
 */
export const REFRESH_DELAY_MS = 250;

export type StreamHandlers = EventStreamHandlers<AgentStreamMessage>;

/** Opens the agent's stream until `signal` aborts ([`openEventStream`]: backoff, 401 signs out). */
export function openAgentStream(agentId: string, handlers: StreamHandlers, signal: AbortSignal): void {
  openEventStream(`/api/v1/agents/${encodeURIComponent(agentId)}/stream`, handlers, signal);
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
