// The dashboard's live subscriptions (specs/03 §4) over fetch-event-source, which can send the Authorization header
// (EventSource cannot): open until aborted, reconnecting with backoff after errors and after the server closes a
// stream (it disconnects a client that falls behind), stopping for good on an answer no retry changes. A 401 signs
// out as the API client does (back to sign-in). Nothing polls: between messages a page is quiet.
import { fetchEventSource } from "@microsoft/fetch-event-source";
import { SESSION_ENDED } from "./client";
import { currentToken, signOut } from "../auth/session";

/** First wait before reconnecting; doubled after each failure up to RETRY_MAX_MS, back to this once connected. */
export const RETRY_FIRST_MS = 1000;
/** The longest wait between reconnection attempts (a server restart, a laptop waking up). */
export const RETRY_MAX_MS = 30_000;

/** An answer no retry will change (401, 403, 404): the stream stops. */
class StreamRefused extends Error {}

/** A retriable failure that says how long to wait (429 with Retry-After). */
class StreamBusy extends Error {
  constructor(readonly retryAfterMs: number) {
    super("too many open streams");
  }
}

export function retryDelayMs(failures: number): number {
  return Math.min(RETRY_FIRST_MS * 2 ** Math.max(0, failures - 1), RETRY_MAX_MS);
}

export interface StreamHandlers<T> {
  /** A message's data, parsed (a message whose data is not JSON is skipped). */
  onMessage: (message: T) => void;
  /** Connected again after a drop: messages may have been missed. */
  onReconnect: () => void;
}

/** Opens the stream at `path` (of this origin) until `signal` aborts. */
export function openEventStream<T>(path: string, handlers: StreamHandlers<T>, signal: AbortSignal): void {
  const token = currentToken();
  let failures = 0;
  let connected = false;
  fetchEventSource(`${window.location.origin}${path}`, {
    signal,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    // Read at call time, as the API client does, so tests can replace globalThis.fetch.
    fetch: (input, init) => globalThis.fetch(input, init),
    async onopen(response) {
      if (response.ok && response.headers.get("content-type")?.startsWith("text/event-stream")) {
        if (connected) handlers.onReconnect();
        connected = true;
        failures = 0;
        return;
      }
      if (response.status === 401) {
        if (currentToken()) signOut(SESSION_ENDED);
        throw new StreamRefused("unauthenticated");
      }
      if (response.status === 403 || response.status === 404) throw new StreamRefused(`HTTP ${response.status}`);
      const retryAfter = Number(response.headers.get("retry-after"));
      if (response.status === 429 && retryAfter > 0) throw new StreamBusy(retryAfter * 1000);
      throw new Error(`the stream answered HTTP ${response.status}`);
    },
    onmessage(event) {
      if (!event.data) return;
      let message: T;
      try {
        message = JSON.parse(event.data) as T;
      } catch {
        return; // Not a message of specs/03 §4; the next one will do.
      }
      handlers.onMessage(message);
    },
    onclose() {
      // The server ended the stream: throwing hands it to onerror, which reconnects.
      throw new Error("the stream was closed by the server");
    },
    onerror(error: unknown) {
      if (error instanceof StreamRefused) throw error; // stops fetchEventSource
      failures += 1;
      const wait = retryDelayMs(failures);
      return error instanceof StreamBusy ? Math.max(wait, error.retryAfterMs) : wait;
    },
    // Closed while the tab is hidden, reopened (and the page refetched) when it shows: a background tab holds
    // none of the user's 16 streams.
    openWhenHidden: false,
  }).catch(() => {
    // A refused stream: the page shows what its queries say (404, or sign-in after a 401).
  });
}
