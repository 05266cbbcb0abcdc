// Sign-in in dev mode: the one-time link `strom serve` prints (/sign-in#code=…, exchanged at
// POST /api/v1/auth/dev-sign-in), or a pasted JWT from `strom token`, checked against GET /api/v1/me before it is
// kept. OIDC comes later.
import { useEffect, useId, useState, type FormEvent } from "react";
import { ApiError, api, unwrap } from "../api/client";
import { normaliseToken, signIn, useSession } from "./session";

export function SignInPage({ onSignedIn }: { onSignedIn: () => void }) {
  const { notice } = useSession();
  const [pasted, setPasted] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);
  const fieldId = useId();
  const hintId = useId();
  const problemId = useId();

  useEffect(() => {
    const code = linkCode(window.location.hash);
    if (!code) return;
    // Out of the address bar (and the history) at once: the code is a credential, good once.
    window.history.replaceState(null, "", window.location.pathname);
    setChecking(true);
    redeem(code)
      .then((token) => {
        signIn(token);
        onSignedIn();
      })
      .catch((error: unknown) => setProblem(explainLink(error)))
      .finally(() => setChecking(false));
  }, [onSignedIn]);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const token = normaliseToken(pasted);
    if (!token) {
      setProblem("That is not a token: paste the whole line strom token printed (three parts separated by dots).");
      return;
    }
    setChecking(true);
    setProblem(null);
    try {
      await checkToken(token);
      signIn(token);
      onSignedIn();
    } catch (error) {
      setProblem(explain(error));
    } finally {
      setChecking(false);
    }
  }

  const message = problem ?? notice;
  return (
    <section className="sign-in" aria-labelledby={`${fieldId}-title`}>
      <h1 id={`${fieldId}-title`}>Sign in</h1>
      {message && (
        <p role="alert" id={problemId} className="error">
          {message}
        </p>
      )}
      <form onSubmit={(event) => void submit(event)}>
        <label htmlFor={fieldId}>Access token</label>
        <textarea
          id={fieldId}
          name="token"
          rows={4}
          value={pasted}
          onChange={(event) => setPasted(event.target.value)}
          aria-describedby={message ? `${hintId} ${problemId}` : hintId}
          aria-invalid={problem ? true : undefined}
          autoComplete="off"
          spellCheck={false}
          required
        />
        <p id={hintId} className="hint">
          In dev mode, open the one-time link <code>strom serve</code> printed (<code>Dashboard: …</code>), or get a
          token with <code>strom token --sub demo --role trader</code> (the demo agent&apos;s owner) and paste it here.
          It is kept in this tab only (sessionStorage) and forgotten when the tab closes.
        </p>
        <button type="submit" disabled={checking}>
          {checking ? "Checking…" : "Sign in"}
        </button>
      </form>
    </section>
  );
}

/** The code of a one-time sign-in link's fragment (`#code=<hex>`), if that is what the fragment holds. */
export function linkCode(hash: string): string | null {
  const match = /^#code=([0-9A-Fa-f]{16,128})$/.exec(hash);
  return match?.[1] ?? null;
}

/** Exchanges a one-time code for a dev token; throws when it is refused. */
async function redeem(code: string): Promise<string> {
  return unwrap(await api.POST("/api/v1/auth/dev-sign-in", { body: { code } })).token;
}

function explainLink(error: unknown): string {
  if (error instanceof ApiError && error.status === 401) {
    return "This sign-in link was used already or has expired (links work once, for 15 minutes). Restart strom serve for a new one, or paste a token from strom token.";
  }
  if (error instanceof ApiError && error.status === 404) {
    return "This server does not use dev sign-in links: sign in with your identity provider's token.";
  }
  return explain(error);
}

/** Asks the API who the token belongs to; throws when it is refused. Sent explicitly: it is not stored yet. */
async function checkToken(token: string) {
  unwrap(await api.GET("/api/v1/me", { headers: { authorization: `Bearer ${token}` } }));
}

function explain(error: unknown): string {
  if (error instanceof ApiError && error.status === 401) {
    return "The API refused this token (expired, or signed with another key). Get a new one with strom token.";
  }
  if (error instanceof ApiError) return `The API answered ${error.status}: ${error.message}`;
  return "Could not reach the STROM API. Is strom serve running?";
}
