// The browser tests (ui/e2e/*.e2e.ts): Node, not jsdom; a real `strom serve` and Debian's Chromium driven by
// playwright-core. Kept out of the unit run (vite.config.ts includes only src/**/*.test.*); `npm run e2e` or
// `make ui-e2e` runs them (scripts/ui.sh e2e).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: fileURLToPath(new URL("..", import.meta.url)),
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    // One server and one browser for the whole scenario: the tests of a file run in order and share them.
    fileParallelism: false,
    // A test waits for real ticks (1 s apart) and fills: its own waits are bounded below these, with messages.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // A failed step leaves the ones after it nothing to build on; stop at the first failure.
    bail: 1,
  },
});
