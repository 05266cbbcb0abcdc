// Staleness check: src/api/schema.d.ts must be exactly what openapi-typescript makes of specs/openapi.yaml now.
// When it fails, run `npm --prefix ui run gen:api` and commit the result.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";

const ui = resolve(__dirname, "../..");

it("schema.d.ts is generated from the current specs/openapi.yaml", () => {
  const dir = mkdtempSync(join(tmpdir(), "strom-ui-schema-"));
  try {
    const fresh = join(dir, "schema.d.ts");
    const cli = join(ui, "node_modules", ".bin", "openapi-typescript");
    execFileSync(cli, [resolve(ui, "../specs/openapi.yaml"), "-o", fresh], { cwd: ui, stdio: "pipe" });
    const committed = readFileSync(join(ui, "src/api/schema.d.ts"), "utf8");
    expect(committed, "src/api/schema.d.ts is stale: run `npm --prefix ui run gen:api` and commit it").toBe(
      readFileSync(fresh, "utf8"),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
