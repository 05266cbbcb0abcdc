import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { makeQueryClient } from "../App";
import { resetSessionForTests, signIn } from "../auth/session";
import { json, mockApi, problem, TOKEN } from "../test/api";
import { TelegramPage } from "./TelegramPage";

function renderPage() {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  return render(
    <QueryClientProvider client={client}>
      <TelegramPage />
    </QueryClientProvider>,
  );
}

const LINK = { chat_id: 424242, telegram_username: "alice_tg", linked_at: "2026-12-02T12:00:00Z" };

describe("Telegram page", () => {
  beforeEach(() => {
    resetSessionForTests();
    signIn(TOKEN);
  });

  it("creates a one-time code and shows the command to send the bot, with its expiry", async () => {
    const expires = new Date(Date.now() + 10 * 60_000).toISOString();
    let created = 0;
    mockApi({
      "GET /api/v1/telegram/links": () => json(200, { items: [] }),
      "POST /api/v1/telegram/link-codes": () => {
        created += 1;
        return json(201, { code: "K7QX2MPA", expires_at: expires, bot_command: "/link K7QX2MPA" });
      },
    });
    renderPage();
    expect(await screen.findByText(/No chat is linked yet/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Create a link code" }));

    expect(await screen.findByText("/link K7QX2MPA")).toBeInTheDocument();
    expect(screen.getByText(/It works once and expires in (9|10) min/)).toBeInTheDocument();
    expect(created).toBe(1);
    expect(screen.getByRole("button", { name: "Create another code" })).toBeEnabled();
  });

  it("says an expired code is spent", async () => {
    mockApi({
      "GET /api/v1/telegram/links": () => json(200, { items: [] }),
      "POST /api/v1/telegram/link-codes": () =>
        json(201, { code: "K7QX2MPA", expires_at: new Date(Date.now() - 1000).toISOString(), bot_command: "/link K7QX2MPA" }),
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Create a link code" }));
    expect(await screen.findByText("This code has expired: create another one.")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Copy" })).toBeDisabled();
  });

  it("explains the rate limit on codes", async () => {
    mockApi({
      "GET /api/v1/telegram/links": () => json(200, { items: [] }),
      "POST /api/v1/telegram/link-codes": () => problem(429, "rate_limited", "at most 5 link codes per 10 minutes"),
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Create a link code" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "Too many link codes in a short time: at most 5 link codes per 10 minutes.",
    );
  });

  it("lists the linked chats and unlinks one", async () => {
    let links = [LINK, { chat_id: -100123, telegram_username: null, linked_at: "2026-12-02T12:05:00Z" }];
    const deleted: string[] = [];
    mockApi({
      "GET /api/v1/telegram/links": () => json(200, { items: links }),
      "DELETE /api/v1/telegram/links/424242": () => {
        deleted.push("424242");
        links = links.filter((link) => link.chat_id !== 424242);
        return new Response(null, { status: 204 });
      },
    });
    renderPage();
    const row = (await screen.findByRole("rowheader", { name: "@alice_tg" })).closest("tr")!;
    expect(within(row).getByText("424242")).toBeInTheDocument();
    expect(within(row).getByText("2026-12-02 12:00:00 UTC")).toBeInTheDocument();
    expect(screen.getByRole("rowheader", { name: "chat -100123" })).toBeInTheDocument();

    await userEvent.click(screen.getByRole("button", { name: "Unlink @alice_tg" }));
    await waitFor(() => expect(screen.queryByRole("rowheader", { name: "@alice_tg" })).not.toBeInTheDocument());
    expect(deleted).toEqual(["424242"]);
    expect(screen.getByRole("rowheader", { name: "chat -100123" })).toBeInTheDocument();
  });

  it("shows why the list cannot be read, with a retry", async () => {
    let calls = 0;
    mockApi({
      "GET /api/v1/telegram/links": () =>
        ++calls === 1 ? problem(503, "unavailable", "the database does not answer") : json(200, { items: [LINK] }),
    });
    renderPage();
    expect(await screen.findByRole("alert")).toHaveTextContent("the database does not answer");
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByRole("rowheader", { name: "@alice_tg" })).toBeInTheDocument();
  });
});
