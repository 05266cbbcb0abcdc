// One query hook per resource (TanStack Query over the typed client).
import {
  useInfiniteQuery,
  useMutation,
  useQuery,
  useQueryClient,
  type InfiniteData,
  type QueryClient,
} from "@tanstack/react-query";
import { api, unwrap, type Agent, type Schemas } from "../api/client";

/** Agents per page: the API's default page size; "Show more" fetches the next one. */
export const AGENTS_PAGE_SIZE = 50;

/**
 * PnL points behind one row's sparkline: `max_points` thins the whole series on the server (first and last kept,
 * specs/03-apis.md §5), so a row costs one small response however long the agent has run. 48 points fill the
 * 6-rem line without visible steps.
 */
export const SPARKLINE_POINTS = 48;

const AGENTS_KEY = ["agents"] as const;

/** The signed-in user's agents (an admin's: everyone's), newest first, a page at a time. */
export function useAgents() {
  return useInfiniteQuery({
    queryKey: AGENTS_KEY,
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

/** One agent's equity, PnL and return (GET /api/v1/agents/{id}/summary); `enabled` false until the row is seen. */
export function useAgentSummary(agentId: string, enabled = true) {
  return useQuery({
    queryKey: ["agents", agentId, "summary"],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/summary", {
          params: { path: { id: agentId } },
          signal,
        }),
      ),
    enabled,
  });
}

/** One agent's PnL series thinned to `maxPoints` (GET /api/v1/agents/{id}/pnl?max_points=…), oldest first. */
export function useAgentPnl(agentId: string, maxPoints: number, enabled = true) {
  return useQuery({
    queryKey: ["agents", agentId, "pnl", { maxPoints }],
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/agents/{id}/pnl", {
          params: { path: { id: agentId }, query: { max_points: maxPoints } },
          signal,
        }),
      ),
    enabled,
  });
}

/** The predefined strategies and their parameters (GET /api/v1/strategies); the catalogue never changes at runtime. */
export function useStrategies() {
  return useQuery({
    queryKey: ["strategies"],
    queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/strategies", { signal })),
    staleTime: Infinity,
  });
}

/** Puts an agent's fresh view (a command's answer, or a GET) in its place in the cached list. */
export function replaceAgent(client: QueryClient, fresh: Agent) {
  client.setQueryData<InfiniteData<Schemas["AgentPage"]>>(AGENTS_KEY, (data) =>
    data
      ? {
          ...data,
          pages: data.pages.map((page) => ({
            ...page,
            items: page.items.map((item) => (item.agent_id === fresh.agent_id ? fresh : item)),
          })),
        }
      : data,
  );
}

/**
 * A row's summary and sparkline are read again after a tick added runs, but at most this often: an agent ticking
 * every second would otherwise cost two more requests a second per row on screen.
 */
export const FIGURES_REFRESH_MS = 10_000;

/**
 * Reads one agent again (GET /api/v1/agents/{id}) into the list, after its next tick was due; when it has run since,
 * its summary and PnL points too (when older than FIGURES_REFRESH_MS).
 */
export function useRefreshAgent() {
  const client = useQueryClient();
  return async (agent: Agent) => {
    const result = await api.GET("/api/v1/agents/{id}", { params: { path: { id: agent.agent_id } } });
    if (!result.data) return;
    replaceAgent(client, result.data);
    if (result.data.runs_count === agent.runs_count) return;
    await client.invalidateQueries({
      queryKey: ["agents", agent.agent_id],
      predicate: (query) =>
        query.queryKey.length > 2 && Date.now() - query.state.dataUpdatedAt >= FIGURES_REFRESH_MS,
    });
  };
}

export type AgentAction = "start" | "stop";

/** Start or stop one agent (POST /api/v1/agents/{id}/start|stop); the answer replaces the agent in the list. */
export function useAgentAction(agentId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (action: AgentAction) =>
      unwrap(
        action === "start"
          ? await api.POST("/api/v1/agents/{id}/start", { params: { path: { id: agentId } } })
          : // No body: the API records the reason "user" (StopRequest's default).
            await api.POST("/api/v1/agents/{id}/stop", { params: { path: { id: agentId } } }),
      ),
    onSuccess: (agent) => replaceAgent(client, agent),
  });
}

export type CreateAgentRequest = Schemas["CreateAgentRequest"];

/** POST /api/v1/agents with an Idempotency-Key, so a retry after a lost answer cannot create a second agent. */
export function useCreateAgent() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ body, key }: { body: CreateAgentRequest; key: string }) =>
      unwrap(await api.POST("/api/v1/agents", { body, headers: { "Idempotency-Key": key } })),
    // The list (not the summaries under the same prefix) is read again when the user goes back to it.
    onSuccess: () => client.invalidateQueries({ queryKey: AGENTS_KEY, exact: true }),
  });
}
