import { act, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Countdown, formatCountdown } from "./Countdown";

describe("next-tick countdown", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2026-12-02T12:00:02Z"));
  });
  afterEach(() => vi.useRealTimers());

  it("counts down to next_tick_at each second on the clock, then says it is due, once", () => {
    const onDue = vi.fn();
    render(<Countdown target="2026-12-02T12:00:10Z" onDue={onDue} />);
    expect(screen.getByText("in 8 s")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(1000));
    expect(screen.getByText("in 7 s")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(6000));
    expect(screen.getByText("in 1 s")).toBeInTheDocument();
    expect(onDue).not.toHaveBeenCalled();
    act(() => vi.advanceTimersByTime(1000));
    expect(screen.getByText("due now")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(5000));
    expect(onDue).toHaveBeenCalledTimes(1);
  });

  it("starts over for a new target", () => {
    const onDue = vi.fn();
    const { rerender } = render(<Countdown target="2026-12-02T12:00:01Z" onDue={onDue} />);
    expect(screen.getByText("due now")).toBeInTheDocument();
    expect(onDue).toHaveBeenCalledTimes(1);
    rerender(<Countdown target="2026-12-02T12:01:05Z" onDue={onDue} />);
    expect(screen.getByText("in 1 min 03 s")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(63_000));
    expect(onDue).toHaveBeenCalledTimes(2);
  });

  it("formats seconds, minutes and hours", () => {
    expect(formatCountdown(8000)).toBe("in 8 s");
    expect(formatCountdown(7001)).toBe("in 8 s");
    expect(formatCountdown(0)).toBe("due now");
    expect(formatCountdown(-3000)).toBe("due now");
    expect(formatCountdown(125_000)).toBe("in 2 min 05 s");
    expect(formatCountdown(86_400_000)).toBe("in 24 h 00 min");
  });
});
