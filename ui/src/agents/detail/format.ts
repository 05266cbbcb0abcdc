// Text for durations and order ticks on the agent page (times: format/time.ts).

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
