// The agent page's resources, one TanStack Query hook each, all keyed under ["agents", id] so one invalidation (a
// stream message, a command) refreshes the whole page. The summary's hook is the agents list's (../queries).
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, unwrap, type Agent, type Schemas } from "../../api/client";

export type OrderStatus = Schemas["OrderStatus"];

/** Rows per page of the runs, orders and trades tables: a screenful. */
export const TABLE_PAGE_SIZE = 20;

/**
 * Points the charts ask for (`max_points`): about one per two pixels of the widest chart (1280 px), thinned
 * evenly by the API over the agent's whole history.
 */
export const CHART_MAX_POINTS = 600;

/**
 * Fills and rejections the price chart marks: the newest this many of each (the API's largest page). Older ones
 * are in the tables.
 */
export const CHART_MARKERS_LIMIT = 200;

export function agentKey(agentId: string) {
  return ["agents", agentId] as const;
}

export function useAgent(agentId: string) {
  return useQuery({
    queryKey: agentKey(agentId),
    queryFn: async ({ signal }) =>
      unwrap(await api.GET("/api/v1/agents/{id}", { params: { path: { id: agentId } }, signal })),
  });
}

/** Newest first, a page at a time (`cursor` undefined for the first page). */
export function useAgentRuns(agentId: string, cursor: string | undefined) {
  return useQuery({
    queryKey: [...agentKey(agentId), "runs", cursor ?? null],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/runs", {
          params: { path: { id: agentId }, query: { limit: TABLE_PAGE_SIZE, cursor } },
          signal,
        }),
      ),
    placeholderData: keepPreviousData,
  });
}

/** Newest first, a page at a time, optionally only one status. */
export function useAgentOrders(
  agentId: string,
  cursor: string | undefined,
  status: OrderStatus | undefined,
  limit = TABLE_PAGE_SIZE,
) {
  return useQuery({
    queryKey: [...agentKey(agentId), "orders", status ?? "all", limit, cursor ?? null],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/orders", {
          params: { path: { id: agentId }, query: { limit, cursor, status } },
          signal,
        }),
      ),
    placeholderData: keepPreviousData,
  });
}

/** Newest first, a page at a time. */
export function useAgentTrades(agentId: string, cursor: string | undefined, limit = TABLE_PAGE_SIZE) {
  return useQuery({
    queryKey: [...agentKey(agentId), "trades", limit, cursor ?? null],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/trades", {
          params: { path: { id: agentId }, query: { limit, cursor } },
          signal,
        }),
      ),
    placeholderData: keepPreviousData,
  });
}

/** The whole history's PnL points (one per run), thinned by the API to at most CHART_MAX_POINTS, oldest first. */
export function useAgentPnl(agentId: string) {
  return useQuery({
    queryKey: [...agentKey(agentId), "pnl", CHART_MAX_POINTS],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/pnl", {
          params: { path: { id: agentId }, query: { max_points: CHART_MAX_POINTS } },
          signal,
        }),
      ),
  });
}

export type AgentCommand = "start" | "stop" | "archive";

/**
 * Start, stop or archive. Each press sends a fresh Idempotency-Key, so a retry the browser or a proxy makes of the
 * same request is answered once (specs/03 §1). The answer is the agent after the command: it replaces the cached
 * agent at once, and the agents list is marked stale. The rest of the page comes with the command's stream message.
 */
export function useAgentCommand(agentId: string) {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: async (command: AgentCommand): Promise<Agent> => {
      const options = {
        params: { path: { id: agentId }, header: { "Idempotency-Key": idempotencyKey() } },
      };
      switch (command) {
        case "start":
          return unwrap(await api.POST("/api/v1/agents/{id}/start", options));
        case "stop":
          return unwrap(await api.POST("/api/v1/agents/{id}/stop", options));
        case "archive":
          return unwrap(await api.POST("/api/v1/agents/{id}/archive", options));
      }
    },
    onSuccess: (agent) => {
      queryClient.setQueryData(agentKey(agentId), agent);
      void queryClient.invalidateQueries({ queryKey: ["agents"], exact: true });
    },
  });
}

/**
 * 128 random bits as hex. Not crypto.randomUUID: that exists only in secure contexts, and the dashboard may be
 * served over plain HTTP on a LAN address.
 */
export function idempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Changes a stopped agent's config (PATCH: the fields sent replace the agent's; `risk` whole). */
export function useUpdateAgent(agentId: string) {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: async (patch: Schemas["AgentConfigPatch"]) =>
      unwrap(await api.PATCH("/api/v1/agents/{id}", { params: { path: { id: agentId } }, body: patch })),
    onSuccess: (agent) => {
      queryClient.setQueryData(agentKey(agentId), agent);
      void queryClient.invalidateQueries({ queryKey: ["agents"], exact: true });
    },
  });
}

/**
 * Paging by the API's opaque cursors: the cursors of the pages walked so far, so "Newer" goes back without the
 * API needing a backward cursor. `reset` returns to the first page (a new filter).
 */
export function useCursorPages() {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  return {
    cursor: cursors[cursors.length - 1],
    page: cursors.length,
    older: (next: string) => setCursors((walked) => [...walked, next]),
    newer: () => setCursors((walked) => (walked.length > 1 ? walked.slice(0, -1) : walked)),
    reset: () => setCursors([undefined]),
  };
}
