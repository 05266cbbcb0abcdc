import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { App, makeQueryClient } from "../App";
import { apiCalls, json, mockApi, problem, TOKEN } from "../test/api";
import { ID_TOKEN_KEY, resetSessionForTests, signIn, TOKEN_KEY } from "./session";

// The provider round trip itself runs in the browser tests (ui/e2e/oidc.e2e.ts, against a real OpenID provider);
// here the flow around it: what the pages do with the configuration, the answer and the tokens.
vi.mock("./oidc", async (original) => ({
  ...(await original<typeof import("./oidc")>()),
  startOidcSignIn: vi.fn(async () => undefined),
  completeOidcSignIn: vi.fn(),
  endOidcSession: vi.fn(async () => undefined),
}));
const oidc = await import("./oidc");

const CLIENT = {
  issuer: "http://127.0.0.1:8180/realms/strom",
  client_id: "strom-dashboard",
  scope: "openid",
  redirect_path: "/sign-in/callback",
};
const KEYCLOAK = { "GET /api/v1/auth/config": () => json(200, { mode: "keycloak", oidc: CLIENT }) };
const ME = { sub: "kc-alice", roles: ["trader"], role: "trader", auth_mode: "keycloak", telegram_links: 0 };
const ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJrYy1hbGljZSJ9.aWQ";

function renderApp() {
  return render(<App client={makeQueryClient()} />);
}

describe("sign-in at an identity provider", () => {
  beforeEach(() => {
    resetSessionForTests();
    vi.mocked(oidc.startOidcSignIn).mockClear();
    vi.mocked(oidc.completeOidcSignIn).mockReset();
    vi.mocked(oidc.endOidcSession).mockClear();
    window.history.replaceState(null, "", "/sign-in");
  });

  it("offers the identity provider's sign-in and leaves for it as the configured client", async () => {
    mockApi(KEYCLOAK);
    renderApp();
    await userEvent.click(await screen.findByRole("button", { name: "Sign in with your identity provider" }));
    expect(oidc.startOidcSignIn).toHaveBeenCalledWith(CLIENT);
    expect(screen.getByText(CLIENT.issuer)).toBeInTheDocument();
  });

  it("offers no provider in dev mode", async () => {
    mockApi({});
    renderApp();
    expect(await screen.findByLabelText("Access token")).toBeVisible();
    expect(screen.queryByRole("button", { name: "Sign in with your identity provider" })).toBeNull();
  });

  it("finishes the sign-in on the way back: code out of the address bar, token checked and kept, agents shown", async () => {
    const answer = "/sign-in/callback?code=abc123&state=st4te&iss=x";
    vi.mocked(oidc.completeOidcSignIn).mockImplementation(async () => {
      // The code and state are out of the address bar before the exchange finishes.
      expect(window.location.search).toBe("");
      return { accessToken: TOKEN, idToken: ID_TOKEN };
    });
    const fetchMock = mockApi({
      ...KEYCLOAK,
      "GET /api/v1/me": (request) =>
        request.headers.get("authorization") === `Bearer ${TOKEN}`
          ? json(200, ME)
          : problem(401, "unauthenticated", "missing token"),
      "GET /api/v1/agents": () => json(200, { items: [], next_cursor: null }),
    });
    window.history.replaceState(null, "", answer);
    renderApp();

    expect(await screen.findByRole("heading", { name: "Agents" })).toBeInTheDocument();
    expect(window.location.pathname).toBe("/agents");
    expect(oidc.completeOidcSignIn).toHaveBeenCalledTimes(1);
    expect(oidc.completeOidcSignIn).toHaveBeenCalledWith(CLIENT, `${window.location.origin}${answer}`);
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(TOKEN);
    expect(sessionStorage.getItem(ID_TOKEN_KEY)).toBe(ID_TOKEN);
    expect(apiCalls(fetchMock).some((r) => new URL(r.url).pathname === "/api/v1/me")).toBe(true);
  });

  it("says why when the provider refused, keeping nothing", async () => {
    vi.mocked(oidc.completeOidcSignIn).mockRejectedValue(
      Object.assign(new Error("access_denied"), { error: "access_denied", error_description: "user cancelled" }),
    );
    mockApi(KEYCLOAK);
    window.history.replaceState(null, "", "/sign-in/callback?error=access_denied&state=st4te");
    renderApp();

    expect(await screen.findByRole("alert")).toHaveTextContent("The identity provider refused the sign-in: user cancelled.");
    await waitFor(() => expect(window.location.pathname).toBe("/sign-in"));
    expect(window.location.search).toBe("");
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it("keeps no token the API refuses", async () => {
    vi.mocked(oidc.completeOidcSignIn).mockResolvedValue({ accessToken: TOKEN, idToken: ID_TOKEN });
    mockApi({ ...KEYCLOAK, "GET /api/v1/me": () => problem(401, "unauthenticated", "token issuer is not trusted") });
    window.history.replaceState(null, "", "/sign-in/callback?code=c0de&state=s");
    renderApp();

    expect(await screen.findByRole("alert")).toHaveTextContent("The API refused this token: token issuer is not trusted.");
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(sessionStorage.getItem(ID_TOKEN_KEY)).toBeNull();
  });

  it("signs out at the provider too, with the session's ID token", async () => {
    signIn(TOKEN, ID_TOKEN);
    window.history.replaceState(null, "", "/agents");
    mockApi({ ...KEYCLOAK, "GET /api/v1/agents": () => json(200, { items: [], next_cursor: null }) });
    renderApp();
    await userEvent.click(await screen.findByRole("button", { name: "Sign out" }));

    expect(await screen.findByRole("button", { name: "Sign in with your identity provider" })).toBeInTheDocument();
    await waitFor(() => expect(oidc.endOidcSession).toHaveBeenCalledWith(CLIENT, ID_TOKEN));
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(sessionStorage.getItem(ID_TOKEN_KEY)).toBeNull();
  });
});
