// The backtests pages' live subscription: GET /api/v1/backtests/stream (specs/03 §4, opened by api/sse.ts). Each
// message is one backtest's whole state without its result (status, progress, summary); it goes straight into that
// backtest's cached detail, and when it says finished, the detail (now with its result) and the list are fetched
// once. A stream starts with every unfinished backtest's state, so a reconnection misses nothing; the pages refetch
// anyway, as after any drop. Nothing polls.
import { useQueryClient, type InfiniteData, type QueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { openEventStream, type StreamHandlers } from "../api/sse";
import { backtestKeys, isUnfinished, type Backtest } from "./queries";

/** What a message does to the cache: the backtest's state at once; its result and the list once it finished. */
export function backtestsRefresher(queryClient: QueryClient): StreamHandlers<Backtest> {
  return {
    onMessage(message) {
      const key = backtestKeys.one(message.backtest_id);
      // The stream never carries the result: keep the one fetched.
      queryClient.setQueryData<Backtest>(key, (cached) => ({ ...message, result: cached?.result ?? null }));
      if (!isUnfinished(message.status)) {
        void queryClient.invalidateQueries({ queryKey: key });
        void queryClient.invalidateQueries({ queryKey: backtestKeys.list });
      } else if (!listed(queryClient, message.backtest_id)) {
        // One the list (if it is loaded) does not show yet: requested in another tab.
        void queryClient.invalidateQueries({ queryKey: backtestKeys.list });
      }
    },
    onReconnect: () => void queryClient.invalidateQueries({ queryKey: ["backtests"] }),
  };
}

/** Whether the loaded list (any of its pages) has backtest `id`; true when no list is loaded (nothing to refresh). */
function listed(queryClient: QueryClient, id: string): boolean {
  const list = queryClient.getQueryData<InfiniteData<{ items: Backtest[] }>>(backtestKeys.list);
  return !list || list.pages.some((page) => page.items.some((backtest) => backtest.backtest_id === id));
}

/** The stream, open while a backtests page is shown. */
export function useBacktestsStream() {
  const queryClient = useQueryClient();
  useEffect(() => {
    const controller = new AbortController();
    openEventStream("/api/v1/backtests/stream", backtestsRefresher(queryClient), controller.signal);
    return () => controller.abort();
  }, [queryClient]);
}
