import { describe, expect, it } from "vitest";
import { formatCountdown } from "./countdown";
import { duration, orderTick, utcTime } from "./format";

describe("formatCountdown", () => {
  it("shows minutes and seconds, rounding up so the last second still shows 0:01", () => {
    expect(formatCountdown(7000)).toBe("0:07");
    expect(formatCountdown(6001)).toBe("0:07");
    expect(formatCountdown(1)).toBe("0:01");
    expect(formatCountdown(65_000)).toBe("1:05");
    expect(formatCountdown(600_000)).toBe("10:00");
  });

  it("adds hours from an hour on", () => {
    expect(formatCountdown(3_600_000)).toBe("1:00:00");
    expect(formatCountdown(86_399_000)).toBe("23:59:59");
  });

  it("is null once the run is due (or the time is unreadable)", () => {
    expect(formatCountdown(0)).toBeNull();
    expect(formatCountdown(-1500)).toBeNull();
    expect(formatCountdown(Number.NaN)).toBeNull();
  });
});

describe("page text", () => {
  it("cuts an API time to the second, in UTC as sent", () => {
    expect(utcTime("2026-12-02T12:39:24.002Z")).toBe("2026-12-02 12:39:24");
  });

  it("says a duration in its largest units", () => {
    expect(duration(2)).toBe("2 s");
    expect(duration(342)).toBe("5 min 42 s");
    expect(duration(7200)).toBe("2 h 0 min");
    expect(duration(100_000)).toBe("1 d 3 h");
  });

  it("names an order by its session and tick", () => {
    expect(orderTick("d3e00000-0000-4000-8000-000000000001-2-15")).toBe("2/15");
  });
});
