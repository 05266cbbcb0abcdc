// The countdown to a running agent's next run: `next_tick_at` from the API (computed at response time, refreshed by
// every stream message) against the browser's clock, redrawn each second. Only the clock ticks here; nothing polls.
import { useEffect, useState } from "react";

/** The redraw interval: the countdown shows whole seconds. */
const TICK_MS = 1000;

/**
 * Milliseconds left as "m:ss" (or "h:mm:ss" from an hour), rounded up so "0:01" shows until the second is over;
 * null once the moment has come (the run is due; its message will bring the next target).
 */
export function formatCountdown(remainingMs: number): string | null {
  if (!Number.isFinite(remainingMs) || remainingMs <= 0) return null;
  const total = Math.ceil(remainingMs / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** The time now, redrawn every second while `active`. */
export function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = window.setInterval(() => setNow(Date.now()), TICK_MS);
    return () => window.clearInterval(timer);
  }, [active]);
  return now;
}
