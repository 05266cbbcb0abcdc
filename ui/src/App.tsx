// The dashboard's shell: the query client, the header, and the page for the current path. Signed out, every page
// is the sign-in page; signed in, / goes to /agents.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useEffect, useState, type MouseEvent } from "react";
import { ApiError } from "./api/client";
import { AgentsPage } from "./agents/AgentsPage";
import { AgentPage, agentIdOf } from "./agents/detail/AgentPage";
import { SignInPage } from "./auth/SignInPage";
import { signOut, useSession } from "./auth/session";
import { navigate, usePath } from "./router";

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

  useEffect(() => {
    if (!signedIn && path !== "/sign-in") navigate("/sign-in", { replace: true });
    if (signedIn && (path === "/" || path === "/sign-in")) navigate("/agents", { replace: true });
  }, [signedIn, path]);

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
          </nav>
        )}
        {signedIn && (
          <button type="button" className="link" onClick={() => signOut()}>
            Sign out
          </button>
        )}
      </header>
      <main id="main">{signedIn ? <Page path={path} /> : <SignInPage onSignedIn={() => navigate("/agents")} />}</main>
    </>
  );
}

function Page({ path }: { path: string }) {
  if (path === "/agents" || path === "/" || path === "/sign-in") return <AgentsPage />;
  const agentId = agentIdOf(path);
  if (agentId) return <AgentPage key={agentId} agentId={agentId} />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing lives at <code>{path}</code> yet. <a href="/agents" onClick={follow("/agents")}>Go to your agents</a>.
      </p>
    </section>
  );
}

/** A link's click handled in the page (no reload); a modified click still opens a new tab. */
function follow(path: string) {
  return (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(path);
  };
}
