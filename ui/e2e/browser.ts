// Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) driven by playwright-core: no browser download, ever.
// Headless, no sandbox (tests run as root in CI), nothing that phones home; every launch uses a fresh temporary
// profile, and every user a fresh context (its own sessionStorage and cookies).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { ARTEFACTS } from "./paths";

export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

/** What a single action or locator may take before it fails (a page answers in well under a second here). */
export const ACTION_TIMEOUT_MS = 15_000;

export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: apt-get install chromium (scripts/ensure-tools.sh does), or set CHROMIUM`);
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // A container's /dev/shm is often 64 MB, too small for a renderer: use /tmp instead.
      "--disable-dev-shm-usage",
    ],
  });
}

export async function newPage(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: DESKTOP, locale: "en-GB", timezoneId: "UTC" });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  return context.newPage();
}

/** A screenshot of what the viewport shows, as target/e2e-screenshots/<name>.png. */
export async function screenshot(page: Page, name: string, viewport = DESKTOP): Promise<void> {
  const before = page.viewportSize();
  if (before?.width !== viewport.width || before.height !== viewport.height) await page.setViewportSize(viewport);
  // Two frames: the layout at the new width, then what it triggers (a chart's ResizeObserver redraw).
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  await page.screenshot({ path: join(ARTEFACTS, `${name}.png`), animations: "disabled" });
  if (before && (before.width !== viewport.width || before.height !== viewport.height)) await page.setViewportSize(before);
}

/**
 * Polls `probe` until it returns a value other than undefined/false, or fails after `timeoutMs` saying what was
 * awaited and what `probe` last saw (plus `context()`, e.g. the server's log tail).
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  { timeoutMs = ACTION_TIMEOUT_MS, intervalMs = 250, context }: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (error) {
      last = error instanceof Error ? error.message : error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `waited ${timeoutMs / 1000} s for ${what}; last seen: ${String(last)}${context ? `\n${context()}` : ""}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
