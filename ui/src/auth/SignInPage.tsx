// Sign-in by pasted token (dev mode): the user pastes the JWT `strom token` prints; it is checked against
// GET /api/v1/me before it is kept. OIDC and the one-time link come later.
import { useId, useState, type FormEvent } from "react";
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
          In dev mode, get one with <code>strom token --sub demo --role trader</code> (the demo agent&apos;s owner).
          It is kept in this tab only (sessionStorage) and forgotten when the tab closes.
        </p>
        <button type="submit" disabled={checking}>
          {checking ? "Checking…" : "Sign in"}
        </button>
      </form>
    </section>
  );
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
