// The countdown to a running agent's next tick, from the API's `next_tick_at`. One shared one-second clock drives
// every countdown on the page (not one timer per row); nothing is polled. When the target passes, `onDue` runs
// once per target, so the row can read the agent again and get the following one.
import { useEffect, useRef, useSyncExternalStore } from "react";

/** How often the countdown text changes: it shows whole seconds. */
export const CLOCK_TICK_MS = 1000;

const listeners = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | undefined;
let now = Date.now();

function subscribe(listener: () => void) {
  if (listeners.size === 0) {
    now = Date.now();
    timer = setInterval(() => {
      now = Date.now();
      listeners.forEach((notify) => notify());
    }, CLOCK_TICK_MS);
  }
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) clearInterval(timer);
  };
}

/** The current time in ms, updated each second while a component uses it. */
export function useNow(): number {
  return useSyncExternalStore(subscribe, snapshot);
}

function snapshot(): number {
  // Before the first subscriber starts the clock, a stale `now` would show a wrong first frame; refreshing it only
  // when a tick has passed keeps consecutive reads equal, as useSyncExternalStore requires.
  if (listeners.size === 0 && Math.abs(Date.now() - now) >= CLOCK_TICK_MS) now = Date.now();
  return now;
}

/** "in 8 s", "in 2 min 05 s", "in 3 h 07 min"; "due now" once the target has passed. */
export function formatCountdown(remainingMs: number): string {
  const total = Math.ceil(remainingMs / 1000);
  if (total <= 0) return "due now";
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) return `in ${hours} h ${String(minutes).padStart(2, "0")} min`;
  if (minutes > 0) return `in ${minutes} min ${String(seconds).padStart(2, "0")} s`;
  return `in ${seconds} s`;
}

export function Countdown({ target, onDue }: { target: string; onDue?: () => void }) {
  const current = useNow();
  const due = Date.parse(target);
  const remaining = due - current;
  const fired = useRef<string | null>(null);

  useEffect(() => {
    if (remaining <= 0 && fired.current !== target) {
      fired.current = target;
      onDue?.();
    }
  }, [remaining, target, onDue]);

  return (
    <span className="countdown muted">
      next tick <time dateTime={target}>{formatCountdown(remaining)}</time>
    </span>
  );
}
