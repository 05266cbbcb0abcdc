// The signed-in session: the pasted token, kept in sessionStorage (gone when the tab closes; never in a URL), and
// the message the sign-in page shows after the API refused the token. Components read it with useSession().
import { useSyncExternalStore } from "react";

export const TOKEN_KEY = "strom.token";

export interface Session {
  token: string | null;
  /** Why the user was sent back to sign-in (a 401), shown once on the sign-in page. */
  notice: string | null;
}

type Listener = () => void;
const listeners = new Set<Listener>();
let notice: string | null = null;
let snapshot: Session = read();

function read(): Session {
  return { token: sessionStorage.getItem(TOKEN_KEY), notice };
}

function changed() {
  snapshot = read();
  listeners.forEach((listener) => listener());
}

/**
 * What a person pastes, as a bearer token: surrounding whitespace and a leading "Bearer " dropped.
 * Returns null when nothing that could be a JWT (three dot-separated base64url parts) is left.
 */
export function normaliseToken(pasted: string): string | null {
  const token = pasted.trim().replace(/^bearer\s+/i, "").trim();
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token) ? token : null;
}

export function signIn(token: string) {
  sessionStorage.setItem(TOKEN_KEY, token);
  notice = null;
  changed();
}

/** Forgets the token; `why` is shown on the sign-in page (e.g. after a 401). */
export function signOut(why: string | null = null) {
  sessionStorage.removeItem(TOKEN_KEY);
  notice = why;
  changed();
}

export function currentToken(): string | null {
  return snapshot.token;
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useSession(): Session {
  return useSyncExternalStore(subscribe, () => snapshot);
}

/** Tests start from a clean session. */
export function resetSessionForTests() {
  sessionStorage.clear();
  notice = null;
  changed();
}
