// Sign-in at an identity provider (JWKS mode, e.g. Keycloak's `strom-dashboard` client): the authorization code flow
// with PKCE, done by oidc-client-ts (loaded only when a server uses it, so dev mode's first page stays small).
// The state and the code verifier wait in sessionStorage during the round trip; the tokens go nowhere but the
// session (session.ts): oidc-client-ts's own user store is kept in memory.
import type { UserManager } from "oidc-client-ts";
import type { Schemas } from "../api/client";

export type OidcClient = Schemas["OidcClient"];

/** What a completed sign-in yields: the API's bearer token, and the ID token that ends the provider's session. */
export interface OidcTokens {
  accessToken: string;
  idToken: string | null;
}

async function manager(client: OidcClient): Promise<UserManager> {
  const { UserManager, WebStorageStateStore, InMemoryWebStorage } = await import("oidc-client-ts");
  const origin = window.location.origin;
  return new UserManager({
    authority: client.issuer,
    client_id: client.client_id,
    redirect_uri: `${origin}${client.redirect_path}`,
    post_logout_redirect_uri: `${origin}/sign-in`,
    response_type: "code",
    scope: client.scope,
    stateStore: new WebStorageStateStore({ store: window.sessionStorage }),
    userStore: new WebStorageStateStore({ store: new InMemoryWebStorage() }),
    // No refresh tokens, no hidden iframes: an expired token leads back to sign-in (specs/05 §1).
    automaticSilentRenew: false,
    monitorSession: false,
    loadUserInfo: false,
  });
}

/** Leaves for the provider's sign-in page; the browser comes back at the client's redirect path. */
export async function startOidcSignIn(client: OidcClient): Promise<void> {
  await (await manager(client)).signinRedirect();
}

/**
 * Finishes a sign-in on the redirect page: checks the state, exchanges the code (with the PKCE verifier) at the
 * token endpoint. Throws with the provider's reason when the provider said no or the answer does not fit.
 */
export async function completeOidcSignIn(client: OidcClient, url: string): Promise<OidcTokens> {
  const user = await (await manager(client)).signinRedirectCallback(url);
  return { accessToken: user.access_token, idToken: user.id_token ?? null };
}

/** Ends the session at the provider too, which sends the browser back to /sign-in. */
export async function endOidcSession(client: OidcClient, idToken: string | null): Promise<void> {
  await (await manager(client)).signoutRedirect(idToken ? { id_token_hint: idToken } : {});
}

/** A person-readable reason for a failed sign-in at the provider. */
export function explainOidcError(error: unknown): string {
  const e = error as { error?: string | null; error_description?: string | null; message?: string };
  if (e?.error === "access_denied") {
    return `The identity provider refused the sign-in${e.error_description ? `: ${e.error_description}` : ""}.`;
  }
  if (e?.error) return `The identity provider answered ${e.error}${e.error_description ? `: ${e.error_description}` : ""}.`;
  if (/state/i.test(e?.message ?? "")) {
    return "This sign-in answer does not belong to a sign-in started in this tab (or it was used already). Sign in again.";
  }
  return `Signing in at the identity provider failed: ${e?.message ?? String(error)}. Try again.`;
}
