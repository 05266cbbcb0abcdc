// Sign-in at an identity provider in a real browser (issue 10, acceptance 2): a real OpenID provider on 127.0.0.1
// (oidcProvider.ts: oidc-provider, configured like Keycloak's `strom-dashboard` client) and a real `strom serve` in
// JWKS mode that verifies the provider's RS256 tokens through its JWKS URL. The dashboard signs people in with the
// authorization code flow and PKCE, keeps the token out of every URL, shows a viewer no command buttons, and ends
// the provider's session on sign-out. The tests share the servers and run in order (vitest.config.ts: bail).
import type { Browser, Page, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, newPage, PHONE, screenshot } from "./browser";
import { startIdentityProvider, type IdentityProvider } from "./oidcProvider";
import { startStrom, type Strom } from "./strom";

/** The provider's users and their realm roles (Keycloak's realm_access.roles). */
const USERS = { "kc-alice": ["trader", "default-roles-strom"], "kc-vic": ["viewer"] };

let idp: IdentityProvider;
let strom: Strom;
let browser: Browser;
/** kc-alice's tab. */
let alice: Page;

beforeAll(async () => {
  idp = await startIdentityProvider(USERS);
  strom = await startStrom({ issuer: idp.issuer, jwksUrl: idp.jwksUrl });
  idp.serveDashboard(strom.base);
  browser = await launchChromium();
  alice = await userPage();
});

afterAll(async () => {
  await browser?.close().catch((error: unknown) => console.error("closing Chromium failed:", error));
  await strom?.stop();
  await idp?.stop();
});

/** A fresh browser context: its own cookies (the provider's session) and sessionStorage. */
async function userPage(): Promise<Page> {
  const page = await newPage(browser);
  // The provider's development pages import a web font; nothing here reaches the internet.
  await page.context().route(/^https:\/\/fonts\.googleapis\.com\//, (route) => route.abort());
  return page;
}

/** From the dashboard's sign-in page through the provider's login form, back to the agents page. */
async function signIn(page: Page, login: string): Promise<Request[]> {
  const authorizationRequests: Request[] = [];
  page.on("request", (request) => {
    if (request.url().startsWith(`${idp.issuer}/auth`)) authorizationRequests.push(request);
  });
  await page.goto(`${strom.base}/`);
  await page.getByRole("button", { name: "Sign in with your identity provider" }).click();
  await page.waitForURL((url) => url.origin === idp.issuer);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password: the development login form takes any");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("heading", { name: "Agents", level: 1 }).waitFor();
  return authorizationRequests;
}

/** Who the API says the tab's token belongs to, and the token's JOSE header. */
async function whoAmI(page: Page) {
  return page.evaluate(async () => {
    const token = sessionStorage.getItem("strom.token") ?? "";
    const response = await fetch("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
    const header = JSON.parse(atob(token.split(".")[0]!.replace(/-/g, "+").replace(/_/g, "/"))) as { alg: string };
    return { status: response.status, me: (await response.json()) as Record<string, unknown>, alg: header.alg };
  });
}

describe("sign-in at an identity provider", () => {
  it("tells the dashboard where to sign in, and lets it fetch from the provider", async () => {
    const response = await fetch(`${strom.base}/api/v1/auth/config`);
    expect(await response.json()).toEqual({
      mode: "keycloak",
      oidc: { issuer: idp.issuer, client_id: "strom-dashboard", scope: "openid", redirect_path: "/sign-in/callback" },
    });
    const page = await fetch(`${strom.base}/sign-in`);
    expect(page.headers.get("content-security-policy")).toContain(`connect-src 'self' ${idp.issuer}`);
  });

  it("signs a trader in with the authorization code flow and PKCE, the token out of every URL", async () => {
    await alice.goto(`${strom.base}/`);
    await alice.getByRole("button", { name: "Sign in with your identity provider" }).waitFor();
    await screenshot(alice, "oidc-sign-in");
    await screenshot(alice, "oidc-sign-in-phone", PHONE);

    const authorizations = await signIn(alice, "kc-alice");
    const authorization = new URL(authorizations[0]!.url());
    expect(authorization.searchParams.get("client_id")).toBe("strom-dashboard");
    expect(authorization.searchParams.get("response_type")).toBe("code");
    expect(authorization.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorization.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorization.searchParams.get("redirect_uri")).toBe(`${strom.base}/sign-in/callback`);

    // Back on the dashboard: no code, state or token in the address bar, and the tab holds the provider's token.
    expect(new URL(alice.url()).pathname).toBe("/agents");
    expect(new URL(alice.url()).search).toBe("");
    const { status, me, alg } = await whoAmI(alice);
    expect(status).toBe(200);
    expect(alg).toBe("RS256");
    expect(me).toMatchObject({ sub: "kc-alice", role: "trader", auth_mode: "keycloak" });
    // Nothing lasting: no token in localStorage or in a cookie (the only cookies are the provider's session ones:
    // cookies are per host, not per port, so the provider's on 127.0.0.1 show up here too).
    expect(await alice.evaluate(() => localStorage.length)).toBe(0);
    const token = await alice.evaluate(() => sessionStorage.getItem("strom.token"));
    const cookies = await alice.context().cookies(strom.base);
    expect(cookies.filter((cookie) => cookie.value.includes(token!.split(".")[1]!))).toEqual([]);
    expect(cookies.map((cookie) => cookie.name).filter((name) => !name.startsWith("_session"))).toEqual([]);
    await alice.getByText("You have no agents yet.").waitFor();
    await screenshot(alice, "oidc-agents");
  });

  it("lets the trader act with that token (the API verifies it through the JWKS)", async () => {
    await alice.getByRole("link", { name: "New agent" }).click();
    await alice.getByLabel("Name").fill("kc-alice-hold");
    await alice.getByLabel("Strategy", { exact: true }).selectOption("hold");
    await alice.getByRole("button", { name: "Create agent" }).click();
    await alice.getByRole("heading", { name: "kc-alice-hold", level: 1 }).waitFor();
    const owner = await alice.evaluate(async () => {
      const token = sessionStorage.getItem("strom.token");
      const agents = await fetch("/api/v1/agents", { headers: { authorization: `Bearer ${token}` } });
      return ((await agents.json()) as { items: { owner: string; name: string }[] }).items;
    });
    expect(owner).toEqual([expect.objectContaining({ owner: "kc-alice", name: "kc-alice-hold" })]);
  });

  it("shows a viewer no button it cannot use", async () => {
    const vic = await userPage();
    await signIn(vic, "kc-vic");
    expect((await whoAmI(vic)).me).toMatchObject({ sub: "kc-vic", role: "viewer", auth_mode: "keycloak" });
    await vic.getByText("You have no agents yet.").waitFor();
    expect(await vic.getByRole("link", { name: "New agent" }).count()).toBe(0);
    await vic.context().close();
  });

  it("signs out at the provider too: the next sign-in asks for the login again", async () => {
    await alice.getByRole("button", { name: "Sign out" }).click();
    await alice.waitForURL((url) => url.origin === idp.issuer);
    await alice.getByRole("button", { name: "Yes, sign me out" }).click();
    await alice.waitForURL(`${strom.base}/sign-in`);
    expect(await alice.evaluate(() => sessionStorage.getItem("strom.token"))).toBeNull();

    await alice.getByRole("button", { name: "Sign in with your identity provider" }).click();
    await alice.waitForURL((url) => url.origin === idp.issuer);
    await alice.locator('input[name="login"]').waitFor();
  });
});
