import { describe, expect, it } from "vitest";
import { formatInstant, utcTime } from "./time";

describe("times", () => {
  it("cuts an API instant to the second, in UTC", () => {
    expect(utcTime("2026-12-02T12:39:24.002Z")).toBe("2026-12-02 12:39:24");
  });

  it("writes any instant in UTC with its zone, and none as a dash", () => {
    expect(formatInstant("2026-12-02T13:00:08.123+01:00")).toBe("2026-12-02 12:00:08 UTC");
    expect(formatInstant(null)).toBe("—");
    expect(formatInstant("not a time")).toBe("not a time");
  });
});
