// Money, quantities and percentages exactly as the API sends them: decimal strings, shown character for character
// and never parsed to a float (a float cannot hold "0.1" or a 20-digit balance). The sign is read from the text.

export function signOf(decimal: string): "negative" | "positive" | "zero" {
  if (decimal.startsWith("-")) return /[1-9]/.test(decimal) ? "negative" : "zero";
  return /[1-9]/.test(decimal) ? "positive" : "zero";
}

interface Props {
  /** A decimal string from the API, or null when the API has none yet. */
  value: string | null | undefined;
  /** Appended after the number, e.g. "%". */
  suffix?: string;
  /** Colour the value by its sign (PnL, returns). */
  signed?: boolean;
}

export function Money({ value, suffix = "", signed = false }: Props) {
  if (value === null || value === undefined) {
    return <span className="num muted" aria-label="not available">—</span>;
  }
  const className = signed ? `num ${signOf(value)}` : "num";
  return (
    <span className={className}>
      {value}
      {suffix}
    </span>
  );
}
