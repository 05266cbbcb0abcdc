// The audit page's resources: the agent's own events (oldest first, a page at a time) and its hash-chain check.
// Keyed under ["agents", id] like the agent page's, so one invalidation refreshes both pages.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";
import { agentKey } from "../agents/detail/queries";

export type EventEnvelope = Schemas["EventEnvelope"];
export type ChainCheck = Schemas["ChainCheck"];

/** Events per page of the timeline: a screenful, and a quarter of the API's largest page. */
export const EVENTS_PAGE_SIZE = 50;

/** Oldest first (by sequence), a page at a time (`cursor` undefined for the first page). */
export function useAgentEvents(agentId: string, cursor: string | undefined) {
  return useQuery({
    queryKey: [...agentKey(agentId), "events", cursor ?? null],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/events", {
          params: { path: { id: agentId }, query: { limit: EVENTS_PAGE_SIZE, cursor } },
          signal,
        }),
      ),
    placeholderData: keepPreviousData,
  });
}

/** The chain recomputed from genesis by the server (the replay CLI's verifier); asked again on "Check again". */
export function useAgentChain(agentId: string) {
  return useQuery({
    queryKey: [...agentKey(agentId), "chain"],
    queryFn: async ({ signal }) =>
      unwrap(await api.GET("/api/v1/agents/{id}/chain", { params: { path: { id: agentId } }, signal })),
  });
}
