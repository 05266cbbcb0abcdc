// The signed-in session: the bearer token (pasted, from the dev link or from the identity provider), kept in
// sessionStorage (gone when the tab closes; never in a URL), the provider's ID token for ending its session on
// sign-out, and the message the sign-in page shows after the API refused the token. Components read it with
// useSession().
import { useSyncExternalStore } from "react";

export const TOKEN_KEY = "strom.token";
export const ID_TOKEN_KEY = "strom.id_token";

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

export function signIn(token: string, idToken: string | null = null) {
  sessionStorage.setItem(TOKEN_KEY, token);
  if (idToken) sessionStorage.setItem(ID_TOKEN_KEY, idToken);
  else sessionStorage.removeItem(ID_TOKEN_KEY);
  notice = null;
  changed();
}

/** Forgets the token; `why` is shown on the sign-in page (e.g. after a 401). */
export function signOut(why: string | null = null) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ID_TOKEN_KEY);
  notice = why;
  changed();
}

export function currentToken(): string | null {
  return snapshot.token;
}

/** The identity provider's ID token of this session (null in dev mode), read before signing out. */
export function currentIdToken(): string | null {
  return sessionStorage.getItem(ID_TOKEN_KEY);
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
