// Times as the dashboard shows them: the API's UTC instants (every chart's axis is UTC too), cut to the second, with
// no time-zone arithmetic that could disagree with the charts or guess a locale.

/** "2026-12-02T12:39:24.002Z" as "2026-12-02 12:39:24": dense table cells, whose column says UTC. */
export function utcTime(rfc3339: string): string {
  return `${rfc3339.slice(0, 10)} ${rfc3339.slice(11, 19)}`;
}

/** "2026-12-02 12:00:08 UTC" for any RFC 3339 instant (an offset is converted), "—" for none: running text. */
export function formatInstant(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${utcTime(date.toISOString())} UTC`;
}
