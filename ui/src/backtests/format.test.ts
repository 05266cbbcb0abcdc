import { describe, expect, it } from "vitest";
import { backtest } from "../test/backtests";
import { durationText } from "./BacktestPage";
import { parityOf, parityText, progressOf, progressText, sourceLabel } from "./format";
import { encodeRequest, formatBytes, MAX_REQUEST_BYTES } from "./queries";

describe("backtest wording", () => {
  it("says each parity verdict", () => {
    expect(parityText({ verdict: "equal", orders: 1, fills: 1, pnl_points: 2000 })).toEqual({
      title: "Parity: equal",
      detail:
        "The backtest reproduced the paper agent's trading record: 1 order, 1 fill and 2,000 PnL points match element by element.",
    });
    expect(
      parityText({
        verdict: "differs",
        difference: { sequence: "orders", index: 4, field: "length", paper: "5", backtest: "4" },
      }).detail,
    ).toBe(
      "The backtest did not reproduce the paper agent's trading record. First difference: orders: the paper agent has 5 and the backtest 4.",
    );
    expect(parityText({ verdict: "void", reason: "2 run(s) were skipped." }).detail).toBe(
      "Not compared: 2 run(s) were skipped.",
    );
    expect(parityText({ verdict: "void" }).detail).toBe("Not compared: the server gave no reason.");
  });

  it("reads the verdict only where the result has one", () => {
    expect(parityOf(backtest() as never)).toBeNull();
    expect(parityOf(backtest({ result: null }) as never)).toBeNull();
  });

  it("gives progress in bars and percent, without a percent while the total is unknown", () => {
    const progress = progressOf({ progress: { bars_done: 1, bars_total: 3 } });
    expect(progress).toEqual({ done: 1, total: 3, percent: 33.3 });
    expect(progressText(progress!)).toBe("1 of 3 bars (33.3%)");
    expect(progressText(progressOf({ progress: { bars_done: 0, bars_total: 0 } })!)).toBe("0 of 0 bars");
    expect(progressOf({ progress: null })).toBeNull();
  });

  it("names the source", () => {
    expect(sourceLabel({ kind: "csv", bytes: 123456, sha256: "0".repeat(64) })).toBe("Uploaded CSV (123,456 bytes)");
    expect(
      sourceLabel({ kind: "sim", seed: 7, from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z", step_s: 60 }),
    ).toBe("Simulated prices (seed 7, 2026-01-01 00:00:00 UTC to 2026-01-02 00:00:00 UTC, every 60 s)");
    expect(sourceLabel({ kind: "observations", agent_id: "x" })).toBe("The agent's own observations (parity check)");
  });

  it("shows durations with a unit", () => {
    expect(durationText(45)).toBe("45 s");
    expect(durationText(5400)).toBe("5,400 s (1.5 h)");
  });

  it("measures the request as the UTF-8 bytes sent", () => {
    const { bytes } = encodeRequest({ source: { kind: "csv", data: "é\n" } });
    expect(bytes).toBe(JSON.stringify({ source: { kind: "csv", data: "é\n" } }).length + 1);
    expect(formatBytes(MAX_REQUEST_BYTES)).toBe("16 MiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
  });
});
