// A real `strom serve` for the browser tests: embedded (no database, no NATS), on a free loopback port, with a
// throw-away dev key, the built dashboard and a simulator ticking every second. Started once per test file and
// always stopped (SIGTERM, then SIGKILL after STOP_WAIT_MS).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ARTEFACTS, REPO } from "./paths";

/** Start-up includes opening the listener and the embedded adapters only; the binary is built beforehand. */
const START_WAIT_MS = 30_000;
/** The server drains in-flight requests for a few seconds on SIGTERM; beyond this it is killed. */
const STOP_WAIT_MS = 10_000;

export interface Strom {
  /** http://127.0.0.1:<port> */
  base: string;
  /** The one-time dev sign-in link `strom serve` printed (`Dashboard: …`), for the user `demo`; dev mode only. */
  signInLink: string;
  /** A dev JWT from `strom token` with the same key. */
  token(sub: string, role: "viewer" | "trader" | "admin" | "telegram-bot"): Promise<string>;
  /** The last lines of the server's log, for failure messages. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

/** The strom binary: $STROM_BIN, else the debug build in $CARGO_TARGET_DIR (or ./target). */
export function stromBin(): string {
  const bin = process.env.STROM_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "debug", "strom");
  if (!existsSync(bin)) {
    throw new Error(`no strom binary at ${bin}: build it (cargo build -p strom --bin strom) or set STROM_BIN`);
  }
  return bin;
}

/** Tokens from an identity provider (JWKS mode) instead of dev mode: its issuer and its JWKS URL. */
export interface IdentityProviderAuth {
  issuer: string;
  jwksUrl: string;
}

export async function startStrom(identityProvider?: IdentityProviderAuth): Promise<Strom> {
  const bin = stromBin();
  const uiDir = join(REPO, "ui", "dist");
  if (!existsSync(join(uiDir, "index.html"))) throw new Error(`no built dashboard in ${uiDir}: run make ui`);
  const work = mkdtempSync(join(tmpdir(), "strom-e2e-"));
  const keyFile = join(work, "dev-jwt.key");
  const logFile = join(ARTEFACTS, identityProvider ? "strom-serve-oidc.log" : "strom-serve.log");
  // The embedded default: nothing from a full-stack environment may leak in (database, NATS, OIDC, roles, port).
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("STROM_")));
  const child = spawn(
    bin,
    [
      "serve",
      "--listen", "127.0.0.1:0",
      "--dev-key-file", keyFile,
      "--ui-dir", uiDir,
      "--sim-interval-s", "1",
      ...(identityProvider ? ["--jwks-url", identityProvider.jwksUrl, "--issuer", identityProvider.issuer] : []),
    ],
    { env: { ...env, STROM_LOG: "info" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const log = createWriteStream(logFile);
  child.stderr!.pipe(log);
  // Should the test process die without afterAll (a crash, Ctrl-C), the server goes with it.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.removeListener("exit", killOnExit);
    await terminate(child);
    log.end();
    rmSync(work, { recursive: true, force: true });
  };
  const logTail = (lines = 30) => tail(logFile, lines);

  let signInLink: string;
  try {
    signInLink = await dashboardLink(child, logTail);
  } catch (error) {
    await stop();
    throw error;
  }
  const base = new URL(signInLink).origin;
  return {
    base,
    signInLink,
    logTail,
    stop,
    token: async (sub, role) => {
      const { stdout } = await promisify(execFile)(bin, ["token", "--sub", sub, "--role", role, "--dev-key-file", keyFile], {
        env,
      });
      return stdout.trim();
    },
  };
}

/**
 * Reads stdout until `Dashboard: http://…/` (dev mode: `…/sign-in#code=…`, the one-time link); fails when the
 * server exits or takes too long.
 */
function dashboardLink(child: ChildProcess, logTail: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`strom serve ${why}; its log ends with:\n${logTail()}`));
    };
    const timer = setTimeout(() => fail(`printed no Dashboard link within ${START_WAIT_MS / 1000} s`), START_WAIT_MS);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      seen += chunk;
      const link = /^Dashboard: (http:\/\/\S+\/(?:sign-in#code=[0-9a-fA-F]+)?)\r?\n/m.exec(seen)?.[1];
      if (link) {
        clearTimeout(timer);
        resolve(link);
      }
    });
    child.once("exit", (code, signal) => fail(`exited during start-up (${signal ?? `status ${code}`})`));
    child.once("error", (error) => fail(`could not be started: ${error.message}`));
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_WAIT_MS);
  await exited;
  clearTimeout(timer);
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
