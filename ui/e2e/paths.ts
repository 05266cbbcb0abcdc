// Where the browser tests find the repository and leave their artefacts.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (ui/e2e/../..). */
export const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** Screenshots and the server's log: target/e2e-screenshots/ (ignored by git with the rest of /target). */
export const ARTEFACTS = join(REPO, "target", "e2e-screenshots");
mkdirSync(ARTEFACTS, { recursive: true });
