// /telegram: link a Telegram chat to the signed-in user (a one-time code to send the STROM bot), see the linked
// chats, unlink one. The bot acts only for a linked person, only on that person's agents, and only within that
// person's role (specs/05 §5); everything else in a chat gets one line saying how to link.
import { useState } from "react";
import { ApiError } from "../api/client";
import { formatCountdown, useNow } from "../agents/Countdown";
import { formatInstant } from "../format/time";
import { useCreateLinkCode, useTelegramLinks, useUnlink, type LinkCode, type TelegramLink } from "./queries";

export function TelegramPage() {
  return (
    <section aria-labelledby="telegram-title" className="telegram">
      <h1 id="telegram-title">Telegram</h1>
      <p>
        Link a Telegram chat to your account to ask the STROM bot about your agents (<code>/agents</code>,{" "}
        <code>/pnl</code>, <code>/trades</code>, <code>/daily</code>) and, as a trader, to start and stop them. The bot
        acts only for you, only on your agents and only within your role; a chat that is not linked gets nothing but
        how to link.
      </p>
      <NewCode />
      <Links />
    </section>
  );
}

function NewCode() {
  const create = useCreateLinkCode();
  const [copied, setCopied] = useState(false);
  const code = create.data;
  return (
    <section aria-labelledby="telegram-link-title">
      <h2 id="telegram-link-title">Link a chat</h2>
      <button
        type="button"
        className="primary"
        disabled={create.isPending}
        onClick={() => {
          setCopied(false);
          create.mutate();
        }}
      >
        {create.isPending ? "Creating a code…" : code ? "Create another code" : "Create a link code"}
      </button>
      {create.isError && (
        <p role="alert" className="error">
          {explain(create.error)}
        </p>
      )}
      {code && !create.isPending && (
        <CodeShown
          code={code}
          copied={copied}
          onCopy={() =>
            void navigator.clipboard
              ?.writeText(code.bot_command)
              .then(() => setCopied(true))
              .catch(() => setCopied(false))
          }
        />
      )}
    </section>
  );
}

function CodeShown({ code, copied, onCopy }: { code: LinkCode; copied: boolean; onCopy: () => void }) {
  const now = useNow();
  const remaining = Date.parse(code.expires_at) - now;
  const expired = remaining <= 0;
  return (
    <div className="link-code" aria-live="polite">
      <p>
        Send this to the STROM bot in a private chat with it (or in a group, to link that group: the bot then obeys
        only you there):
      </p>
      <p>
        <code className="command">{code.bot_command}</code>{" "}
        <button type="button" onClick={onCopy} disabled={expired}>
          {copied ? "Copied" : "Copy"}
        </button>
      </p>
      <p className="hint">
        {expired ? (
          <>This code has expired: create another one.</>
        ) : (
          <>
            It works once and expires {formatCountdown(remaining)} (at {formatInstant(code.expires_at)}). It is shown
            only now: STROM keeps only its hash.
          </>
        )}
      </p>
    </div>
  );
}

function Links() {
  const links = useTelegramLinks();
  const unlink = useUnlink();
  return (
    <section aria-labelledby="telegram-links-title">
      <h2 id="telegram-links-title">Linked chats</h2>
      {links.isPending ? (
        <p role="status">Loading your linked chats…</p>
      ) : links.isError ? (
        <div role="alert" className="error">
          <p>{explain(links.error)}</p>
          <button type="button" onClick={() => void links.refetch()}>
            Try again
          </button>
        </div>
      ) : links.data.length === 0 ? (
        <p>No chat is linked yet. This list is read again when you come back to this tab from Telegram.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Chat</th>
              <th scope="col">Chat id</th>
              <th scope="col">Linked</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {links.data.map((link) => (
              <LinkRow
                key={link.chat_id}
                link={link}
                unlinking={unlink.isPending && unlink.variables === link.chat_id}
                onUnlink={() => unlink.mutate(link.chat_id)}
              />
            ))}
          </tbody>
        </table>
      )}
      {unlink.isError && (
        <p role="alert" className="error">
          {explain(unlink.error)}
        </p>
      )}
    </section>
  );
}

function LinkRow({ link, unlinking, onUnlink }: { link: TelegramLink; unlinking: boolean; onUnlink: () => void }) {
  const name = link.telegram_username ? `@${link.telegram_username}` : `chat ${link.chat_id}`;
  return (
    <tr>
      <th scope="row" data-label="Chat">
        {name}
      </th>
      <td data-label="Chat id" className="num">
        {link.chat_id}
      </td>
      <td data-label="Linked">
        <time dateTime={link.linked_at}>{formatInstant(link.linked_at)}</time>
      </td>
      <td data-label="Actions">
        <button type="button" onClick={onUnlink} disabled={unlinking} aria-label={`Unlink ${name}`}>
          {unlinking ? "Unlinking…" : "Unlink"}
        </button>
      </td>
    </tr>
  );
}

function explain(error: unknown): string {
  if (error instanceof ApiError && error.status === 429) {
    return `Too many link codes in a short time: ${error.message}. Wait a few minutes, or use the code you have.`;
  }
  if (error instanceof ApiError) return `The API answered ${error.status}: ${error.message}`;
  return "Could not reach the STROM API.";
}
