// Text for times and durations on the agent page. Times stay as the API's UTC instants (the charts' axis is UTC
// too), cut to the second, with no time-zone arithmetic that could disagree with the charts.

/** "2026-12-02T12:39:24.002Z" as "2026-12-02 12:39:24". */
export function utcTime(rfc3339: string): string {
  return `${rfc3339.slice(0, 10)} ${rfc3339.slice(11, 19)}`;
}

/** Whole seconds as "45 s", "3 min 5 s", "2 h 0 min", "1 d 4 h". */
export function duration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  const days = Math.floor(s / 86_400);
  const hours = Math.floor((s % 86_400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${minutes} min`;
  if (minutes > 0) return `${minutes} min ${seconds} s`;
  return `${seconds} s`;
}

/** The (session, tick) an order id names: `<agent_id>-<session>-<tick_no>` (specs/03 §5). */
export function orderTick(orderId: string): string {
  const match = /-(\d+)-(\d+)$/.exec(orderId);
  return match ? `${match[1]}/${match[2]}` : orderId;
}
