// A small equity line for one agent: an inline SVG polyline of its thinned PnL points. Plotting needs numbers, so
// equity is converted with Number() for the drawing only; the label quotes the API's strings.
import type { Schemas } from "../api/client";

const WIDTH = 96;
const HEIGHT = 24;
/** Room for the stroke, so the line's extremes are not clipped. */
const PAD = 1.5;

export function Sparkline({ points }: { points: Schemas["PnlPoint"][] }) {
  const first = points[0];
  const last = points[points.length - 1];
  if (!first || !last) {
    return (
      <span className="muted" aria-label="no runs yet">
        —
      </span>
    );
  }
  const values = points.map((point) => Number(point.equity));
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const step = values.length > 1 ? (WIDTH - 2 * PAD) / (values.length - 1) : 0;
  const coords = values
    .map((value, index) => {
      const x = PAD + index * step;
      // A flat series sits in the middle.
      const y = high === low ? HEIGHT / 2 : PAD + (1 - (value - low) / span) * (HEIGHT - 2 * PAD);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
  const trend = values[values.length - 1]! >= values[0]! ? "positive" : "negative";
  return (
    <svg
      className={`sparkline ${trend}`}
      width={WIDTH}
      height={HEIGHT}
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      role="img"
      aria-label={`Equity from ${first.equity} to ${last.equity} over ${points.length} points`}
    >
      <polyline points={coords} fill="none" stroke="currentColor" strokeWidth="1.5" strokeLinejoin="round" />
    </svg>
  );
}
