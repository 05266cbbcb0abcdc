// The audit page's route, apart from the page itself so the shell can pick the page without loading it.

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

/** The id in /agents/<uuid>/audit, or null for any other path. */
export function auditAgentIdOf(path: string): string | null {
  const match = new RegExp(`^/agents/(${UUID})/audit/?$`, "i").exec(path);
  return match ? match[1]!.toLowerCase() : null;
}
