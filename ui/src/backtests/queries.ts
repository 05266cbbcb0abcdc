// One query hook per resource (TanStack Query over the typed client): the backtests list, one backtest, and the
// two commands. Their live state (status, progress) comes over the backtests stream (stream.ts), never by polling.
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, unwrap, type Schemas } from "../api/client";

export type Backtest = Schemas["Backtest"];
export type BacktestRequest = Schemas["BacktestRequest"];
export type BacktestStatus = Schemas["BacktestStatus"];

/** Backtests per page (the API's default page size); "Show more" fetches the next one. */
export const BACKTESTS_PAGE_SIZE = 50;

/** Requested or running: the states whose detail changes without the user doing anything. */
export function isUnfinished(status: BacktestStatus): boolean {
  return status === "requested" || status === "running";
}

export const backtestKeys = {
  list: ["backtests", "list"] as const,
  one: (id: string) => ["backtests", "one", id] as const,
};

/** The signed-in user's backtests (an admin's: everyone's), newest first, a page at a time. */
export function useBacktests() {
  return useInfiniteQuery({
    queryKey: backtestKeys.list,
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam, signal }) =>
      unwrap(
        await api.GET("/api/v1/backtests", {
          params: { query: { limit: BACKTESTS_PAGE_SIZE, cursor: pageParam } },
          signal,
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
}

/**
 * One backtest with its progress and result. The backtests stream (stream.ts) keeps its status and progress
 * current and has it fetched again once it finished. `enabled: false` reads the cache only.
 */
export function useBacktest(id: string, { enabled = true }: { enabled?: boolean } = {}) {
  return useQuery({
    queryKey: backtestKeys.one(id),
    queryFn: async ({ signal }) =>
      unwrap(await api.GET("/api/v1/backtests/{id}", { params: { path: { id } }, signal })),
    enabled,
  });
}

/** The largest request body the API takes for POST /api/v1/backtests (specs/05 §6): 16 MiB. */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

/** The request as the bytes sent: JSON, UTF-8. */
export function encodeRequest(body: BacktestRequest): { text: string; bytes: number } {
  const text = JSON.stringify(body);
  return { text, bytes: new TextEncoder().encode(text).length };
}

/** Thrown before sending a request the API would refuse as too large (413). */
export class TooLargeError extends Error {
  constructor(readonly bytes: number) {
    super(
      `With the CSV inline the request would be ${exactBytes(bytes)}, over the API's limit of 16 MiB ` +
        `(${exactBytes(MAX_REQUEST_BYTES)}). ` +
        "Backtest bigger files with strom backtest --csv.",
    );
    this.name = "TooLargeError";
  }
}

/** POST /api/v1/backtests; the size is checked before anything is sent. */
export function useRequestBacktest() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (body: BacktestRequest): Promise<Backtest> => {
      const { text, bytes } = encodeRequest(body);
      if (bytes > MAX_REQUEST_BYTES) throw new TooLargeError(bytes);
      return unwrap(await api.POST("/api/v1/backtests", { body, bodySerializer: () => text }));
    },
    onSuccess: (backtest) => {
      client.setQueryData(backtestKeys.one(backtest.backtest_id), backtest);
      void client.invalidateQueries({ queryKey: backtestKeys.list });
    },
  });
}

/** POST /api/v1/backtests/{id}/cancel; a 409 (it finished meanwhile) fetches it again. */
export function useCancelBacktest(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (): Promise<Backtest> =>
      unwrap(await api.POST("/api/v1/backtests/{id}/cancel", { params: { path: { id } } })),
    onSuccess: (backtest) => {
      client.setQueryData(backtestKeys.one(id), backtest);
      void client.invalidateQueries({ queryKey: backtestKeys.list });
    },
    onError: (error) => {
      if (error instanceof ApiError && error.status === 409) {
        void client.invalidateQueries({ queryKey: backtestKeys.one(id) });
      }
    },
  });
}

/** "16 MiB", "1.5 MiB", "900 KiB", "12 bytes": sizes as people read them (binary units, as the limit is stated). */
export function formatBytes(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  if (mib >= 1) return `${trim(mib)} MiB`;
  const kib = bytes / 1024;
  if (kib >= 1) return `${trim(kib)} KiB`;
  return `${bytes} bytes`;
}

/** "16,777,217 bytes": exact, for messages about the limit. */
export function exactBytes(bytes: number): string {
  return `${bytes.toLocaleString("en-US")} bytes`;
}

function trim(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}
