// A real OpenID provider on 127.0.0.1 for the browser tests: oidc-provider (a certified OpenID Connect
// implementation; no Keycloak server can run here), configured like the `strom-dashboard` client of
// deploy/keycloak/strom-realm.json — a public client (no secret), authorization code flow only, PKCE S256 required,
// redirect to the dashboard's /sign-in/callback, sign-out back to /sign-in — and issuing what Keycloak issues for
// it: RS256 JWT access tokens (keys at its JWKS URL) with `aud` strom-api (the client's audience mapper) and the
// user's realm roles in `realm_access.roles` (the realm-roles mapper). People sign in on its development login
// form (any password); consent is not asked, as Keycloak does not for this client.
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Provider, { type KoaContextWithOIDC } from "oidc-provider";

/** The audience the API requires (STROM_AUTH_AUDIENCE's default). */
const AUDIENCE = "strom-api";
/** The resource indicator the API's tokens are issued for (oidc-provider needs an absolute URI; `aud` is AUDIENCE). */
const RESOURCE = "urn:strom:api";

export interface IdentityProvider {
  /** The issuer: `iss` of its tokens, and where the discovery document is (`/.well-known/openid-configuration`). */
  issuer: string;
  jwksUrl: string;
  /** Registers the `strom-dashboard` client for the dashboard at `origin`; until then every request is 503. */
  serveDashboard(origin: string): void;
  stop(): Promise<void>;
}

/**
 * Starts the provider on a free port of 127.0.0.1 with `users` (login → realm roles); a login not in `users`
 * signs in with no role. The dashboard's client comes with `serveDashboard` (its redirect URIs need the port of
 * the strom server, which needs the issuer first).
 */
export async function startIdentityProvider(users: Record<string, string[]>): Promise<IdentityProvider> {
  const server: Server = createServer((_request, response) => {
    response.writeHead(503).end("the strom-dashboard client is not registered yet");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const serveDashboard = (dashboardOrigin: string) => {
    server.removeAllListeners("request");
    server.on("request", provider(issuer, dashboardOrigin, users).callback());
  };
  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    serveDashboard,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

function provider(issuer: string, dashboardOrigin: string, users: Record<string, string[]>): Provider {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: "jwk" }), kid: "e2e-rs256", alg: "RS256", use: "sig" };

  return new Provider(issuer, {
    clients: [
      {
        client_id: "strom-dashboard",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: [`${dashboardOrigin}/sign-in/callback`],
        post_logout_redirect_uris: [`${dashboardOrigin}/sign-in`],
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: ["e2e-only-cookie-key"] },
    // The browser calls the token endpoint from the dashboard's origin (Keycloak: the client's web origins).
    clientBasedCORS: (_ctx: KoaContextWithOIDC, origin: string) => origin === dashboardOrigin,
    ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Grant: 3600, Session: 3600 },
    // Public clients must use PKCE (S256: the only method oidc-provider offers), as the realm's client demands.
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // The dashboard names no resource: its tokens are for the API (Keycloak's audience mapper does the same).
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: "openid",
          audience: AUDIENCE,
          accessTokenFormat: "jwt",
          accessTokenTTL: 3600,
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
    findAccount: (_ctx: KoaContextWithOIDC, accountId: string) => ({
      accountId,
      claims: () => ({ sub: accountId, preferred_username: accountId }),
    }),
    extraTokenClaims: (_ctx: KoaContextWithOIDC, token) =>
      "accountId" in token && token.accountId
        ? { realm_access: { roles: users[token.accountId] ?? [] } }
        : undefined,
    // No consent screen for the dashboard, like Keycloak's client (consentRequired false): the grant is made here.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { client, session, provider: p } = ctx.oidc;
      if (!client || !session?.accountId) return undefined;
      const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId);
      if (grantId) return p.Grant.find(grantId);
      const grant = new p.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope("openid");
      grant.addResourceScope(RESOURCE, "openid");
      await grant.save();
      return grant;
    },
  });
}
