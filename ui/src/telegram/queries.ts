// The Telegram links of the signed-in user (specs/03 §3, specs/05 §5): one-time link codes, the linked chats, unlink.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, unwrap, type Schemas } from "../api/client";

export type LinkCode = Schemas["LinkCode"];
export type TelegramLink = Schemas["TelegramLink"];

const LINKS_KEY = ["telegram", "links"] as const;

/**
 * The linked chats. A chat is linked in Telegram, not here: the list is asked again when the tab comes back into
 * view (TanStack Query's refetch on focus), so coming back from the bot shows the new link. Nothing polls.
 */
export function useTelegramLinks() {
  return useQuery({
    queryKey: LINKS_KEY,
    queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/telegram/links", { signal })).items,
  });
}

/** A new one-time code (shown once: only its hash is kept). */
export function useCreateLinkCode() {
  return useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/telegram/link-codes")),
  });
}

export function useUnlink() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: async (chatId: number) => {
      const { error, response } = await api.DELETE("/api/v1/telegram/links/{chat_id}", {
        params: { path: { chat_id: chatId } },
      });
      // 404: already unlinked (from the chat with /unlink, or another tab): the list catches up either way.
      if (error && response.status !== 404) throw new ApiError(response.status, error);
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey: LINKS_KEY }),
  });
}
