// One query hook per resource (TanStack Query over the typed client).
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";

/** Agents per page: the API's default page size; "Show more" fetches the next one. */
export const AGENTS_PAGE_SIZE = 50;

/** The signed-in user's agents (an admin's: everyone's), newest first, a page at a time. */
export function useAgents() {
  return useInfiniteQuery({
    queryKey: ["agents"],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam, signal }) =>
      unwrap(
        await api.GET("/api/v1/agents", {
          params: { query: { limit: AGENTS_PAGE_SIZE, cursor: pageParam } },
          signal,
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
}

/** One agent's equity, PnL and return (GET /api/v1/agents/{id}/summary). */
export function useAgentSummary(agentId: string) {
  return useQuery({
    queryKey: ["agents", agentId, "summary"],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/summary", {
          params: { path: { id: agentId } },
          signal,
        }),
      ),
  });
}
