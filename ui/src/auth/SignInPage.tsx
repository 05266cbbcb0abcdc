// Sign-in. With an identity provider (GET /api/v1/auth/config says `keycloak`): a button that starts the
// authorization code flow with PKCE there (oidc.ts); the provider sends the browser back to /sign-in/callback
// (OidcCallback). In dev mode: the one-time link `strom serve` prints (/sign-in#code=…, exchanged at
// POST /api/v1/auth/dev-sign-in). In both, a pasted JWT (`strom token`, or one from the provider), checked against
// GET /api/v1/me before it is kept.
import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { ApiError, api, unwrap } from "../api/client";
import { navigate } from "../router";
import { useAuthConfig } from "./config";
import { completeOidcSignIn, explainOidcError, startOidcSignIn, type OidcClient } from "./oidc";
import { normaliseToken, signIn, signOut, useSession } from "./session";

export function SignInPage({ onSignedIn }: { onSignedIn: () => void }) {
  const { notice } = useSession();
  const config = useAuthConfig();
  const oidc = config.data?.oidc ?? null;
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

  async function leaveForProvider(client: OidcClient) {
    setChecking(true);
    setProblem(null);
    try {
      await startOidcSignIn(client);
    } catch (error) {
      setProblem(`Could not reach the identity provider at ${client.issuer}: ${(error as Error).message}`);
      setChecking(false);
    }
  }

  const message = problem ?? notice;
  const pasteForm = (
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
          {oidc ? (
            <>An access token your identity provider issued for the STROM API.</>
          ) : (
            <>
              In dev mode, open the one-time link <code>strom serve</code> printed (<code>Dashboard: …</code>), or get
              a token with <code>strom token --sub demo --role trader</code> (the demo agent&apos;s owner) and paste it
              here.
            </>
          )}{" "}
          It is kept in this tab only (sessionStorage) and forgotten when the tab closes.
        </p>
        <button type="submit" disabled={checking}>
          {checking ? "Checking…" : "Sign in"}
        </button>
      </form>
  );
  return (
    <section className="sign-in" aria-labelledby={`${fieldId}-title`}>
      <h1 id={`${fieldId}-title`}>Sign in</h1>
      {message && (
        <p role="alert" id={problemId} className="error">
          {message}
        </p>
      )}
      {config.isPending ? (
        <p role="status">Asking the server how to sign in…</p>
      ) : oidc ? (
        <>
          <p>
            This server signs you in at your identity provider (<code>{oidc.issuer}</code>) and comes back here.
          </p>
          <button type="button" className="primary" disabled={checking} onClick={() => void leaveForProvider(oidc)}>
            {checking ? "Opening the identity provider…" : "Sign in with your identity provider"}
          </button>
          <details>
            <summary>Or paste an access token</summary>
            {pasteForm}
          </details>
        </>
      ) : (
        pasteForm
      )}
    </section>
  );
}

// One exchange per answer: React may run an effect twice (StrictMode), and a code is good once.
const exchanges = new Map<string, Promise<void>>();

/**
 * The page the identity provider sends the browser back to (`/sign-in/callback?code=…&state=…`): the code and state
 * leave the address bar at once, the code is exchanged for tokens (PKCE), and the access token is checked with
 * GET /api/v1/me before it is kept. On failure the sign-in page says why.
 */
export function OidcCallback() {
  const config = useAuthConfig();
  // The answer as it arrived, before the address bar is cleaned.
  const answer = useRef(window.location.href);
  useEffect(() => {
    if (window.location.search) window.history.replaceState(null, "", window.location.pathname);
  }, []);
  const oidc = config.data?.oidc ?? null;
  const failed = config.isError || (config.isSuccess && !oidc);
  useEffect(() => {
    if (failed) {
      signOut("This server does not sign in at an identity provider: use the sign-in page.");
      navigate("/sign-in", { replace: true });
      return;
    }
    if (!oidc) return;
    const url = answer.current;
    if (!exchanges.has(url)) {
      exchanges.set(
        url,
        completeOidcSignIn(oidc, url)
          .then(async ({ accessToken, idToken }) => {
            await checkToken(accessToken);
            signIn(accessToken, idToken);
          })
          .catch((error: unknown) => {
            signOut(error instanceof ApiError ? explain(error) : explainOidcError(error));
            navigate("/sign-in", { replace: true });
          }),
      );
    }
  }, [oidc, failed]);
  return (
    <section className="sign-in">
      <h1>Sign in</h1>
      <p role="status">Finishing the sign-in at the identity provider…</p>
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
    return `The API refused this token: ${error.message}.`;
  }
  if (error instanceof ApiError && error.status === 403) {
    return "The API knows this token but it carries no STROM role (viewer, trader or admin): ask your administrator for one.";
  }
  if (error instanceof ApiError) return `The API answered ${error.status}: ${error.message}`;
  return "Could not reach the STROM API. Is strom serve running?";
}
