// Who the signed-in user is (GET /api/v1/me), for what the pages offer: a viewer reads, a trader or an admin also
// creates, starts, stops, archives and changes agents (specs/05-security.md §3). The API enforces the roles; this
// only hides buttons that would answer 403.
import { useQuery } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";
import { useSession } from "./session";

export type Role = Schemas["Me"]["role"];

export function useMe() {
  const { token } = useSession();
  return useQuery({
    // Keyed by the token: another sign-in is another user.
    queryKey: ["me", token],
    queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/me", { signal })),
    enabled: token !== null,
    staleTime: 5 * 60_000,
  });
}

/** Whether a role may command agents (trader and admin). */
export function canCommand(role: Role | undefined): boolean {
  return role === "trader" || role === "admin";
}

/** True once /me says trader or admin; false while it loads or when it fails (no button a viewer cannot use). */
export function useCanTrade(): boolean {
  return canCommand(useMe().data?.role);
}
