import { QueryClientProvider } from "@tanstack/react-query";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { agent, json, mockApi, problem, TOKEN, type Handler } from "../test/api";
import { BACKTEST_ID, backtest, me } from "../test/backtests";
import { fieldOf, NewBacktestPage, simBars, utcInstant } from "./NewBacktestPage";
import { MAX_REQUEST_BYTES } from "./queries";

const AGENT = "d3e00000-0000-4000-8000-000000000001";
const CSV = "ts,open,high,low,close,volume\n2026-01-01T00:01:00.000Z,100,101,99,100.5,3\n";

function renderPage() {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  return render(
    <QueryClientProvider client={client}>
      <NewBacktestPage />
    </QueryClientProvider>,
  );
}

/** The API with one agent; POST /api/v1/backtests answers `post` (202 by default) and keeps the bodies it got. */
function api(post?: Handler) {
  const bodies: unknown[] = [];
  const fetchMock = mockApi({
    "GET /api/v1/me": () => json(200, me()),
    "GET /api/v1/agents": () => json(200, { items: [agent()], next_cursor: null }),
    "POST /api/v1/backtests": async (request) => {
      bodies.push(JSON.parse(await request.clone().text()));
      return post ? post(request) : json(202, backtest({ status: "requested", summary: null, result: null }));
    },
  });
  return { bodies, fetchMock };
}

async function chooseAgent() {
  await userEvent.selectOptions(await screen.findByLabelText("Agent"), AGENT);
}

async function start() {
  await userEvent.click(screen.getByRole("button", { name: "Start backtest" }));
}

describe("new backtest form", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
    window.history.replaceState(null, "", "/backtests/new");
  });

  it("backtests an agent over its own observations (no agent_id: the API snapshots its config) and opens it", async () => {
    const { bodies } = api();
    renderPage();
    await chooseAgent();
    expect(screen.getByRole("radio", { name: "Its own observations" })).toBeChecked();
    await start();
    await waitFor(() => expect(window.location.pathname).toBe(`/backtests/${BACKTEST_ID}`));
    expect(bodies).toEqual([{ source: { kind: "observations", agent_id: AGENT } }]);
  });

  it("sends an uploaded CSV inline with the agent", async () => {
    const { bodies } = api();
    renderPage();
    await chooseAgent();
    await userEvent.click(screen.getByRole("radio", { name: "Uploaded CSV" }));
    await userEvent.upload(screen.getByLabelText("CSV file"), new File([CSV], "bars.csv", { type: "text/csv" }));
    expect(await screen.findByText(/bars\.csv: 74 bytes, read and ready to send/)).toBeInTheDocument();
    await start();
    await waitFor(() => expect(bodies).toHaveLength(1));
    expect(bodies[0]).toEqual({ agent_id: AGENT, source: { kind: "csv", data: CSV } });
  });

  it("sends a simulated range as UTC instants, with a fill model when one is given", async () => {
    const { bodies } = api();
    renderPage();
    await chooseAgent();
    await userEvent.click(screen.getByRole("radio", { name: "Simulated range" }));
    const seed = screen.getByLabelText("Seed");
    await userEvent.clear(seed);
    await userEvent.type(seed, "7");
    fireEvent.change(screen.getByLabelText("From (UTC)"), { target: { value: "2026-03-01T00:00" } });
    fireEvent.change(screen.getByLabelText("To (UTC)"), { target: { value: "2026-03-01T10:00" } });
    const step = screen.getByLabelText("Bar length (seconds)");
    await userEvent.clear(step);
    await userEvent.type(step, "300");
    expect(screen.getByText("120 bars.")).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText("Slippage (bps)"), "2.5");
    await userEvent.type(screen.getByLabelText("Fee (bps)"), "10");
    await start();
    await waitFor(() => expect(bodies).toHaveLength(1));
    expect(bodies[0]).toEqual({
      agent_id: AGENT,
      source: { kind: "sim", seed: 7, from: "2026-03-01T00:00:00Z", to: "2026-03-01T10:00:00Z", step_s: 300 },
      fill_model: { slippage_bps: "2.5", fee_bps: "10" },
    });
  });

  it("refuses a CSV over 16 MiB before reading or sending it", async () => {
    const { fetchMock } = api();
    renderPage();
    await chooseAgent();
    await userEvent.click(screen.getByRole("radio", { name: "Uploaded CSV" }));
    const big = new File(["ts,open,high,low,close,volume\n"], "huge.csv", { type: "text/csv" });
    Object.defineProperty(big, "size", { value: MAX_REQUEST_BYTES + 1 });
    await userEvent.upload(screen.getByLabelText("CSV file"), big);
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "huge.csv is 16 MiB (16,777,217 bytes): over the 16 MiB limit of one request to the API",
    );
    expect(screen.getByLabelText("CSV file")).toHaveAttribute("aria-invalid", "true");
    await start();
    expect(screen.getByLabelText("CSV file")).toHaveAccessibleDescription(/over the 16 MiB limit/);
    expect(fetchMock.mock.calls.some(([request]) => (request as Request).method === "POST")).toBe(false);
  });

  it("refuses a CSV whose request would exceed 16 MiB once inline (JSON escapes its line ends)", async () => {
    const { fetchMock } = api();
    renderPage();
    await chooseAgent();
    await userEvent.click(screen.getByRole("radio", { name: "Uploaded CSV" }));
    // Just under the limit as a file; every "\n" becomes two bytes in the JSON body.
    const text = "1\n".repeat(MAX_REQUEST_BYTES / 2 - 16);
    await userEvent.upload(screen.getByLabelText("CSV file"), new File([text], "lines.csv", { type: "text/csv" }));
    await screen.findByText(/lines\.csv: 16 MiB/);
    await start();
    expect(await screen.findByText(/With the CSV inline the request would be 25,165,[0-9]{3} bytes, over the API's limit of 16 MiB/)).toBeInTheDocument();
    expect(fetchMock.mock.calls.some(([request]) => (request as Request).method === "POST")).toBe(false);
  });

  it("shows the API's problem at the field it names", async () => {
    api(() =>
      json(422, {
        type: "https://strom.invalid/problems/validation_failed",
        title: "validation_failed",
        status: 422,
        code: "validation_failed",
        detail: "the range has 12000000 bars, more than 10000000",
        field: "/source/to",
      }),
    );
    renderPage();
    await chooseAgent();
    await userEvent.click(screen.getByRole("radio", { name: "Simulated range" }));
    await start();
    const to = screen.getByLabelText("To (UTC)");
    await waitFor(() => expect(to).toHaveAttribute("aria-invalid", "true"));
    expect(to).toHaveAccessibleDescription(/the range has 12000000 bars, more than 10000000/);
    expect(to).toHaveFocus();
    expect(window.location.pathname).toBe("/backtests/new");
  });

  it("shows an unknown agent at the agent field and other problems above the form", async () => {
    let calls = 0;
    api(() =>
      ++calls === 1
        ? problem(404, "agent_not_found", "no such agent")
        : problem(503, "unavailable", "the event store does not answer"),
    );
    renderPage();
    await chooseAgent();
    await start();
    await waitFor(() => expect(screen.getByLabelText("Agent")).toHaveAttribute("aria-invalid", "true"));
    expect(screen.getByLabelText("Agent")).toHaveAccessibleDescription(/does not know this agent/);
    await start();
    expect(await screen.findByText("The API answered 503: the event store does not answer")).toBeInTheDocument();
  });

  it("refuses a simulated range of more than 10,000,000 bars before sending it", async () => {
    const { fetchMock } = api();
    renderPage();
    await chooseAgent();
    await userEvent.click(screen.getByRole("radio", { name: "Simulated range" }));
    fireEvent.change(screen.getByLabelText("To (UTC)"), { target: { value: "2027-01-01T00:00" } });
    const step = screen.getByLabelText("Bar length (seconds)");
    await userEvent.clear(step);
    await userEvent.type(step, "1");
    await start();
    expect(screen.getByLabelText("To (UTC)")).toHaveAccessibleDescription(
      /That range makes 31,536,000 bars; the API runs at most 10,000,000/,
    );
    expect(fetchMock.mock.calls.some(([request]) => (request as Request).method === "POST")).toBe(false);
  });

  it("asks for an agent before sending anything", async () => {
    const { fetchMock } = api();
    renderPage();
    await screen.findByLabelText("Agent");
    await start();
    expect(screen.getByLabelText("Agent")).toHaveAccessibleDescription(/Choose the agent to backtest/);
    expect(fetchMock.mock.calls.some(([request]) => (request as Request).method === "POST")).toBe(false);
  });

  it("tells a viewer that a trader starts backtests, with no form", async () => {
    mockApi({
      "GET /api/v1/me": () => json(200, me("viewer")),
      "GET /api/v1/agents": () => json(200, { items: [agent()], next_cursor: null }),
    });
    renderPage();
    expect(await screen.findByText(/Your role is viewer/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Start backtest" })).not.toBeInTheDocument();
  });
});

describe("new backtest helpers", () => {
  it("reads a datetime-local value as UTC", () => {
    expect(utcInstant("2026-01-01T00:00")).toBe("2026-01-01T00:00:00Z");
    expect(utcInstant("2026-01-01T00:00:05")).toBe("2026-01-01T00:00:05Z");
    expect(utcInstant("")).toBeNull();
    expect(utcInstant("2026-13-01T00:00")).toBeNull();
  });

  it("counts the bars of a simulated range", () => {
    expect(simBars("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", 60)).toBe(1440);
    expect(simBars("2026-01-01T00:00:00Z", "2026-01-01T00:00:59Z", 60)).toBe(0);
    expect(simBars("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", 60)).toBeNull();
  });

  it("maps the API's field pointers to the form's fields", () => {
    expect(fieldOf("/source/to")).toBe("to");
    expect(fieldOf("/source/step_s")).toBe("step");
    expect(fieldOf("/fill_model/fee_bps")).toBe("fee");
    expect(fieldOf("/config/strategy/params/slow")).toBe("agent");
    expect(fieldOf("/nonsense")).toBeNull();
    expect(fieldOf(undefined)).toBeNull();
  });
});
