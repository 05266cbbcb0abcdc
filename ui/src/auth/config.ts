// How this server signs people in (GET /api/v1/auth/config, no token needed): dev mode (the one-time link or a
// pasted `strom token`), or an identity provider's OpenID Connect client. Asked once per page load.
import { queryOptions, useQuery } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";

/** The path the identity provider sends the browser back to (OidcClient.redirect_path, a dashboard page). */
export const CALLBACK_PATH = "/sign-in/callback";

export const authConfigQuery = queryOptions({
  queryKey: ["auth-config"],
  queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/auth/config", { signal })),
  staleTime: Infinity,
});

export function useAuthConfig() {
  return useQuery(authConfigQuery);
}
