// The dashboard's shell: the query client, the header, and the page for the current path. Signed out, every page
// is the sign-in page (or, coming back from the identity provider, the page that finishes that sign-in); signed
// in, / goes to /agents.
import { QueryClient, QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useState, type ReactNode } from "react";
import { ApiError } from "./api/client";
import { AgentsPage } from "./agents/AgentsPage";
import { AgentWizard } from "./agents/AgentWizard";
import { AgentPage, agentIdOf } from "./agents/detail/AgentPage";
import { auditAgentIdOf } from "./audit/path";
import { authConfigQuery, CALLBACK_PATH } from "./auth/config";
import { endOidcSession } from "./auth/oidc";
import { OidcCallback, SignInPage } from "./auth/SignInPage";
import { currentIdToken, signOut, useSession } from "./auth/session";
import { followLink as follow, navigate, usePath } from "./router";

// The backtests pages load when first visited (they and their charts are not needed to sign in or list agents).
const BacktestsPage = lazy(() => import("./backtests/BacktestsPage").then((m) => ({ default: m.BacktestsPage })));
const NewBacktestPage = lazy(() => import("./backtests/NewBacktestPage").then((m) => ({ default: m.NewBacktestPage })));
const BacktestPage = lazy(() => import("./backtests/BacktestPage").then((m) => ({ default: m.BacktestPage })));
// So does the audit page (an occasional check, not the daily view), and the Telegram page (linking a chat).
const AuditPage = lazy(() => import("./audit/AuditPage").then((m) => ({ default: m.AuditPage })));
const TelegramPage = lazy(() => import("./telegram/TelegramPage").then((m) => ({ default: m.TelegramPage })));

export function makeQueryClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // A 4xx will not change by asking again; a network error or a 5xx might.
        retry: (failures, error) => !(error instanceof ApiError && error.status < 500) && failures < 2,
        refetchOnWindowFocus: true,
      },
    },
  });
}

export function App({ client }: { client?: QueryClient }) {
  const [queryClient] = useState(() => client ?? makeQueryClient());
  return (
    <QueryClientProvider client={queryClient}>
      <Shell />
    </QueryClientProvider>
  );
}

function Shell() {
  const { token } = useSession();
  const path = usePath();
  const signedIn = token !== null;
  const queryClient = useQueryClient();

  useEffect(() => {
    if (!signedIn && path !== "/sign-in" && path !== CALLBACK_PATH) navigate("/sign-in", { replace: true });
    if (signedIn && (path === "/" || path === "/sign-in" || path === CALLBACK_PATH)) {
      navigate("/agents", { replace: true });
    }
  }, [signedIn, path]);

  /** Forgets the token; signed in at an identity provider, also ends the session there (it sends the browser back). */
  async function signOutEverywhere() {
    const idToken = currentIdToken();
    signOut();
    if (!idToken) return;
    const { oidc } = await queryClient.ensureQueryData(authConfigQuery);
    if (oidc) await endOidcSession(oidc, idToken);
  }

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">STROM</span>
        {signedIn && (
          <nav aria-label="Main">
            <a href="/agents" aria-current={path === "/agents" ? "page" : undefined} onClick={follow("/agents")}>
              Agents
            </a>
            <a
              href="/backtests"
              aria-current={path.startsWith("/backtests") ? "page" : undefined}
              onClick={follow("/backtests")}
            >
              Backtests
            </a>
            <a
              href="/telegram"
              aria-current={path === "/telegram" ? "page" : undefined}
              onClick={follow("/telegram")}
            >
              Telegram
            </a>
          </nav>
        )}
        {signedIn && (
          <button type="button" className="link" onClick={() => void signOutEverywhere().catch(() => undefined)}>
            Sign out
          </button>
        )}
      </header>
      <main id="main">
        {signedIn ? (
          <Page path={path} />
        ) : path === CALLBACK_PATH ? (
          <OidcCallback />
        ) : (
          <SignInPage onSignedIn={() => navigate("/agents")} />
        )}
      </main>
    </>
  );
}

function Page({ path }: { path: string }) {
  if (path === "/agents" || path === "/" || path === "/sign-in") return <AgentsPage />;
  // Before any /agents/<id> route: "new" is not an agent id.
  if (path === "/agents/new") return <AgentWizard />;
  // Before the agent page: /agents/<id>/audit is not /agents/<id>.
  const audited = auditAgentIdOf(path);
  if (audited) return <Loads><AuditPage key={audited} agentId={audited} /></Loads>;
  const agentId = agentIdOf(path);
  if (agentId) return <AgentPage key={agentId} agentId={agentId} />;
  if (path === "/backtests") return <Loads><BacktestsPage /></Loads>;
  if (path === "/telegram") return <Loads><TelegramPage /></Loads>;
  // Before /backtests/<id>: "new" is not a backtest id.
  if (path === "/backtests/new") return <Loads><NewBacktestPage /></Loads>;
  const backtest = /^\/backtests\/([^/]+)$/.exec(path);
  if (backtest?.[1]) return <Loads><BacktestPage key={backtest[1]} id={backtest[1]} /></Loads>;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing lives at <code>{path}</code> yet. <a href="/agents" onClick={follow("/agents")}>Go to your agents</a>.
      </p>
    </section>
  );
}

/** A page loaded on first visit (React.lazy), with a status line meanwhile. */
function Loads({ children }: { children: ReactNode }) {
  return <Suspense fallback={<p role="status">Loading the page…</p>}>{children}</Suspense>;
}
