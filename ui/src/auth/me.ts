// Who is signed in (GET /api/v1/me): the role decides which controls a page offers (specs/05: a viewer reads, a
// trader also commands). The API enforces roles either way; hiding a button only spares a 403.
import { useQuery } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";

export type Role = Schemas["Me"]["role"];

export function useMe() {
  return useQuery({
    queryKey: ["me"],
    queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/me", { signal })),
    // The role lives in the token, which does not change while signed in.
    staleTime: Infinity,
  });
}

/** Whether a role may start, stop, archive and change agents (trader and admin, specs/05 §3). */
export function canCommand(role: Role | undefined): boolean {
  return role === "trader" || role === "admin";
}
