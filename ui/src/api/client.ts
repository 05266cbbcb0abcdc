// The one typed client of the STROM API (openapi-fetch over the types generated from specs/openapi.yaml). It adds
// the signed-in token to every request, and a 401 from any endpoint signs the user out with a message, which sends
// them back to the sign-in page.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";
import { currentToken, signOut } from "../auth/session";

export type Schemas = components["schemas"];
export type Agent = Schemas["Agent"];
export type AgentSummary = Schemas["AgentSummary"];
export type Problem = Schemas["Problem"];

export const SESSION_ENDED = "The API refused your token (expired or invalid): sign in again.";

/** An answer other than 2xx, with the problem+json body when the API sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Partial<Problem> | undefined,
  ) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.name = "ApiError";
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = currentToken();
    if (token) request.headers.set("authorization", `Bearer ${token}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401 && currentToken()) signOut(SESSION_ENDED);
    return response;
  },
};

export const api = createClient<paths>({
  // The API is on the origin that served the app (`strom serve`, or Vite's dev proxy).
  baseUrl: window.location.origin,
  // Read at call time, so tests can replace globalThis.fetch.
  fetch: (request) => globalThis.fetch(request),
});
api.use(auth);

/** The data of an openapi-fetch result, or throws its error as an ApiError (TanStack Query shows it). */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data !== undefined) return result.data;
  throw new ApiError(result.response.status, result.error as Partial<Problem> | undefined);
}
