import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { App, makeQueryClient } from "../App";
import { agent, apiCalls, json, mockApi, problem, summary, TOKEN } from "../test/api";
import { resetSessionForTests, signIn, TOKEN_KEY } from "./session";

const ME = { sub: "demo", roles: ["trader"], role: "trader", auth_mode: "dev", telegram_links: 0 };

function renderApp() {
  return render(<App client={makeQueryClient()} />);
}

describe("sign-in flow", () => {
  beforeEach(() => {
    resetSessionForTests();
    window.history.replaceState(null, "", "/");
  });

  it("sends a signed-out visitor to the sign-in page", async () => {
    mockApi({});
    window.history.replaceState(null, "", "/agents/abc");
    renderApp();
    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeInTheDocument();
    await waitFor(() => expect(window.location.pathname).toBe("/sign-in"));
  });

  it("checks the pasted token with /me, keeps it in sessionStorage and opens the agents page", async () => {
    const fetchMock = mockApi({
      "GET /api/v1/me": (request) =>
        request.headers.get("authorization") === `Bearer ${TOKEN}`
          ? json(200, ME)
          : problem(401, "unauthenticated", "missing token"),
      "GET /api/v1/agents": () => json(200, { items: [agent()], next_cursor: null }),
      "GET /api/v1/agents/d3e00000-0000-4000-8000-000000000001/summary": () => json(200, summary()),
    });
    renderApp();
    await userEvent.type(await screen.findByLabelText("Access token"), `Bearer ${TOKEN}`);
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("heading", { name: "Agents" })).toBeInTheDocument();
    expect(window.location.pathname).toBe("/agents");
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(TOKEN);
    // The token travels in the header of every call, never in a URL.
    for (const request of apiCalls(fetchMock)) {
      expect(request.url).not.toContain(TOKEN);
      expect(request.headers.get("authorization")).toBe(`Bearer ${TOKEN}`);
    }
  });

  it("keeps a refused token out of storage and says why", async () => {
    mockApi({ "GET /api/v1/me": () => problem(401, "unauthenticated", "token expired") });
    renderApp();
    await userEvent.type(await screen.findByLabelText("Access token"), TOKEN);
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("alert")).toHaveTextContent(/refused this token/);
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(window.location.pathname).toBe("/sign-in");
  });

  it("refuses text that is not a token without calling the API", async () => {
    const fetchMock = mockApi({});
    renderApp();
    await userEvent.type(await screen.findByLabelText("Access token"), "not a token");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("alert")).toHaveTextContent(/not a token/);
    expect(apiCalls(fetchMock)).toHaveLength(0);
  });

  it("sends the user back to sign-in with a message when the API answers 401", async () => {
    signIn(TOKEN);
    window.history.replaceState(null, "", "/agents");
    mockApi({ "GET /api/v1/agents": () => problem(401, "unauthenticated", "token expired") });
    renderApp();

    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeInTheDocument();
    expect(screen.getByRole("alert")).toHaveTextContent(/refused your token/);
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    await waitFor(() => expect(window.location.pathname).toBe("/sign-in"));
  });

  it("signs out from the header", async () => {
    signIn(TOKEN);
    window.history.replaceState(null, "", "/agents");
    mockApi({ "GET /api/v1/agents": () => json(200, { items: [], next_cursor: null }) });
    renderApp();
    await userEvent.click(await screen.findByRole("button", { name: "Sign out" }));

    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeInTheDocument();
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it("signs in with the one-time link's code, removing it from the address bar", async () => {
    const code = "ab".repeat(32);
    const fetchMock = mockApi({
      "POST /api/v1/auth/dev-sign-in": () =>
        json(200, { token: TOKEN, sub: "demo", roles: ["trader"], expires_in_s: 3600 }),
      "GET /api/v1/agents": () => json(200, { items: [agent()], next_cursor: null }),
      "GET /api/v1/agents/d3e00000-0000-4000-8000-000000000001/summary": () => json(200, summary()),
    });
    window.history.replaceState(null, "", `/sign-in#code=${code}`);
    renderApp();

    expect(await screen.findByRole("heading", { name: "Agents" })).toBeInTheDocument();
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(TOKEN);
    expect(window.location.hash).toBe("");
    const redeemed = fetchMock.mock.calls.map(([input]) => input as Request).filter((r) => r.method === "POST");
    expect(redeemed).toHaveLength(1);
    expect(await redeemed[0]!.clone().json()).toEqual({ code });
  });

  it("says a used or expired link is spent and leaves no code behind", async () => {
    mockApi({ "POST /api/v1/auth/dev-sign-in": () => problem(401, "unauthenticated", "used") });
    window.history.replaceState(null, "", `/sign-in#code=${"cd".repeat(32)}`);
    renderApp();

    expect(await screen.findByRole("alert")).toHaveTextContent(/used already or has expired/);
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(window.location.hash).toBe("");
  });
});
