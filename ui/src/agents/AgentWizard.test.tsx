import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { App, makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { agent, json, me, mockApi, problem, strategies, TOKEN, type Handler } from "../test/api";

const NEW_ID = "5e1f0000-0000-4000-8000-00000000000a";

function renderWizard(routes: Record<string, Handler> = {}, role: "viewer" | "trader" = "trader") {
  const fetchMock = mockApi({
    "GET /api/v1/me": () => json(200, me(role)),
    "GET /api/v1/strategies": () => json(200, strategies()),
    ...routes,
  });
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  window.history.replaceState(null, "", "/agents/new");
  render(<App client={client} />);
  return fetchMock;
}

async function chooseSma() {
  await userEvent.selectOptions(await screen.findByLabelText("Strategy"), "sma_crossover");
}

function posted(fetchMock: ReturnType<typeof mockApi>) {
  return fetchMock.mock.calls.map(([request]) => request as Request).filter((request) => request.method === "POST");
}

describe("agent wizard", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });

  it("renders the chosen strategy's parameters from the catalogue, defaults prefilled, bounds stated", async () => {
    renderWizard();
    expect(await screen.findByRole("heading", { name: "New agent" })).toBeInTheDocument();
    expect(await screen.findByLabelText("Strategy")).toHaveValue("hold");
    expect(screen.getByText("This strategy has no parameters.")).toBeInTheDocument();

    await chooseSma();
    expect(screen.getByLabelText("fast")).toHaveValue("10");
    expect(screen.getByLabelText("fast")).toHaveAccessibleDescription(
      "bars in the fast average (a whole number from 1 to 500; default 10).",
    );
    expect(screen.getByLabelText("slow")).toHaveValue("30");
    expect(screen.getByLabelText("qty")).toHaveValue("1");
    expect(screen.getByLabelText("qty")).toHaveAccessibleDescription("units per order; > 0 (a decimal > 0; default 1).");
    expect(screen.getByLabelText("fast")).toHaveAttribute("inputmode", "numeric");
    expect(screen.getByLabelText("qty")).toHaveAttribute("inputmode", "decimal");
  });

  it("creates the agent with decimals as strings and an Idempotency-Key, then opens its page", async () => {
    const fetchMock = renderWizard({
      "POST /api/v1/agents": () => json(201, agent({ agent_id: NEW_ID, name: "btc-sma", status: "stopped" })),
    });
    await userEvent.type(await screen.findByLabelText("Name"), "btc-sma");
    await chooseSma();
    await userEvent.clear(screen.getByLabelText("qty"));
    await userEvent.type(screen.getByLabelText("qty"), "0.010");
    await userEvent.clear(screen.getByLabelText("Starting cash"));
    await userEvent.type(screen.getByLabelText("Starting cash"), "2500.50");
    await userEvent.type(screen.getByLabelText("Seed (optional)"), "7");
    await userEvent.click(screen.getByRole("button", { name: "Create agent" }));

    await waitFor(() => expect(window.location.pathname).toBe(`/agents/${NEW_ID}`));
    const [request] = posted(fetchMock);
    expect(request!.headers.get("idempotency-key")).toMatch(/^[0-9a-f]{32}$/);
    expect(await request!.json()).toEqual({
      name: "btc-sma",
      symbol: "BTC-USD",
      strategy: { kind: "sma_crossover", params: { fast: 10, slow: 30, qty: "0.010" } },
      frequency_s: 60,
      starting_cash: "2500.50",
      seed: 7,
    });
  });

  it("sends risk limits whole once one is changed, the notional cap defaulting to the starting cash", async () => {
    const fetchMock = renderWizard({ "POST /api/v1/agents": () => json(201, agent({ agent_id: NEW_ID })) });
    await userEvent.type(await screen.findByLabelText("Name"), "capped");
    await userEvent.type(screen.getByLabelText("Max daily loss (optional)"), "150");
    await userEvent.click(screen.getByRole("button", { name: "Create agent" }));
    await waitFor(() => expect(posted(fetchMock)).toHaveLength(1));
    const body = await posted(fetchMock)[0]!.json();
    expect(body.risk).toEqual({
      max_position_qty: "1",
      max_order_qty: "1",
      max_notional: "10000",
      max_daily_loss: "150",
    });
    expect(body.strategy).toEqual({ kind: "hold" });
  });

  it("shows a 422 at the field it names and moves the focus there", async () => {
    renderWizard({
      "POST /api/v1/agents": () =>
        json(422, {
          type: "https://strom.invalid/problems/validation_failed",
          title: "Unprocessable Entity",
          status: 422,
          code: "validation_failed",
          detail: "invalid strategy.params.slow: must be in 11..=2000 (got 5)",
          field: "/strategy/params/slow",
        }),
    });
    await userEvent.type(await screen.findByLabelText("Name"), "x");
    await chooseSma();
    await userEvent.clear(screen.getByLabelText("slow"));
    await userEvent.type(screen.getByLabelText("slow"), "5");
    await userEvent.click(screen.getByRole("button", { name: "Create agent" }));

    const slow = screen.getByLabelText("slow");
    await waitFor(() => expect(slow).toHaveAttribute("aria-invalid", "true"));
    expect(slow).toHaveAccessibleDescription(/invalid strategy\.params\.slow: must be in 11\.\.=2000 \(got 5\)/);
    expect(slow).toHaveFocus();
    expect(screen.getByLabelText("fast")).not.toHaveAttribute("aria-invalid");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(window.location.pathname).toBe("/agents/new");
  });

  it("shows other refusals at the top of the form", async () => {
    renderWizard({ "POST /api/v1/agents": () => problem(403, "forbidden", "the trader role is needed") });
    await userEvent.type(await screen.findByLabelText("Name"), "x");
    await userEvent.click(screen.getByRole("button", { name: "Create agent" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The API answered 403: the trader role is needed");
  });

  it("stops an empty required field or letters in a number before asking the API", async () => {
    const fetchMock = renderWizard();
    await chooseSma();
    await userEvent.clear(screen.getByLabelText("Tick every (seconds)"));
    await userEvent.type(screen.getByLabelText("Tick every (seconds)"), "1m");
    await userEvent.clear(screen.getByLabelText("qty"));
    await userEvent.type(screen.getByLabelText("qty"), "1,5");
    await userEvent.click(screen.getByRole("button", { name: "Create agent" }));

    expect(screen.getByLabelText("Name")).toHaveAccessibleDescription(/Required\./);
    expect(screen.getByLabelText("Name")).toHaveFocus();
    expect(screen.getByLabelText("Tick every (seconds)")).toHaveAccessibleDescription(/Enter a whole number/);
    expect(screen.getByLabelText("qty")).toHaveAccessibleDescription(/Enter a number such as 10 or 0\.5/);
    expect(posted(fetchMock)).toHaveLength(0);
  });

  it("tells a viewer they cannot create agents and shows no form", async () => {
    renderWizard({}, "viewer");
    expect(await screen.findByText(/Your role \(viewer\) can read agents but not create them/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Create agent" })).not.toBeInTheDocument();
  });

  it("is reached from the agents page's New agent link", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me("trader")),
      "GET /api/v1/strategies": () => json(200, strategies()),
      "GET /api/v1/agents": () => json(200, { items: [], next_cursor: null }),
    });
    window.history.replaceState(null, "", "/agents");
    render(<App client={makeQueryClient()} />);
    await userEvent.click(await screen.findByRole("link", { name: "New agent" }));
    expect(await screen.findByRole("heading", { name: "New agent" })).toBeInTheDocument();
    expect(window.location.pathname).toBe("/agents/new");
  });
});
