// What the backtest pages say about a backtest, as pure functions of the API's data (tested without a DOM).
import type { Schemas } from "../api/client";
import { formatInstant } from "../format/time";
import type { Backtest } from "./queries";

/** "1,234": counts with thousands separators (counts are integers, never money). */
export function formatCount(value: number): string {
  return value.toLocaleString("en-US");
}

/** "1 fill", "2,000 fills". */
export function counted(value: number, noun: string): string {
  return `${formatCount(value)} ${noun}${value === 1 ? "" : "s"}`;
}

/** Where the bars came from, in one line. */
export function sourceLabel(source: Backtest["source"]): string {
  switch (source.kind) {
    case "csv":
      return `Uploaded CSV (${formatCount(source.bytes)} bytes)`;
    case "sim":
      return `Simulated prices (seed ${source.seed}, ${formatInstant(source.from)} to ${formatInstant(source.to)}, every ${source.step_s} s)`;
    case "observations":
      return "The agent's own observations (parity check)";
  }
}

/** A short name for the list's Source column. */
export function sourceKindLabel(source: Backtest["source"]): string {
  switch (source.kind) {
    case "csv":
      return "CSV upload";
    case "sim":
      return "Simulated";
    case "observations":
      return "Own observations";
  }
}

export interface Progress {
  done: number;
  total: number;
  /** 0..100 with one decimal, or null when the total is not known yet (0). */
  percent: number | null;
}

/** The runner's progress as the page shows it; null when the runner has not reported any yet. */
export function progressOf(backtest: Pick<Backtest, "progress">): Progress | null {
  const progress = backtest.progress;
  if (!progress) return null;
  const { bars_done: done, bars_total: total } = progress;
  const percent = total > 0 ? Math.min(100, Math.floor((done / total) * 1000) / 10) : null;
  return { done, total, percent };
}

export function progressText(progress: Progress): string {
  const of = `${formatCount(progress.done)} of ${formatCount(progress.total)} bars`;
  return progress.percent === null ? of : `${of} (${progress.percent}%)`;
}

/** "sma_crossover (fast 3, slow 8, qty 0.01)". */
export function strategyText(strategy: Schemas["StrategyConfig"]): string {
  const params = Object.entries(strategy.params ?? {}).map(([name, value]) => `${name} ${String(value)}`);
  return params.length > 0 ? `${strategy.kind} (${params.join(", ")})` : strategy.kind;
}

/**
 * The parity verdict (specs/06 §1) as the API serialises it. openapi.yaml states only `verdict`; the server adds
 * the sizes compared (equal), the first difference (differs) or the reason (void), read here defensively.
 */
export type Parity =
  | { verdict: "equal"; orders?: number; fills?: number; pnl_points?: number }
  | { verdict: "differs"; difference?: Difference }
  | { verdict: "void"; reason?: string };

export interface Difference {
  /** orders, fills, positions or pnl_points */
  sequence: string;
  /** 0-based; for a length difference, the shorter length */
  index: number;
  /** the field that differs, or "length" */
  field: string;
  paper: string;
  backtest: string;
}

export function parityOf(backtest: Backtest): Parity | null {
  const parity = backtest.result?.parity as Parity | undefined;
  return parity && typeof parity.verdict === "string" ? parity : null;
}

/** The verdict in words: a heading and the sentence under it. */
export function parityText(parity: Parity): { title: string; detail: string } {
  switch (parity.verdict) {
    case "equal": {
      const sizes =
        parity.orders !== undefined && parity.fills !== undefined && parity.pnl_points !== undefined
          ? `: ${counted(parity.orders, "order")}, ${counted(parity.fills, "fill")} and ${counted(parity.pnl_points, "PnL point")} match element by element`
          : "";
      return {
        title: "Parity: equal",
        detail: `The backtest reproduced the paper agent's trading record${sizes}.`,
      };
    }
    case "differs": {
      const d = parity.difference;
      let where = "the server did not say where";
      if (d && d.field === "length") {
        where = `${d.sequence}: the paper agent has ${d.paper} and the backtest ${d.backtest}`;
      } else if (d) {
        where = `${d.sequence}[${d.index}].${d.field}: paper ${d.paper}, backtest ${d.backtest}`;
      }
      return {
        title: "Parity: differs",
        detail: `The backtest did not reproduce the paper agent's trading record. First difference: ${where}.`,
      };
    }
    case "void":
      return {
        title: "Parity: void",
        detail: `Not compared: ${(parity.reason ?? "the server gave no reason").replace(/\.$/, "")}.`,
      };
  }
}
