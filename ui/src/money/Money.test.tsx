import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { Money, signOf } from "./Money";

describe("Money", () => {
  it("shows the API's decimal string character for character", () => {
    // Each of these would change if it went through a float: trailing zeros, 0.1 + 0.2, more than 17 digits.
    for (const value of ["10000.00000000", "0.30000000000000000001", "12345678901234567890.123456789", "-0.0001"]) {
      const { unmount } = render(<Money value={value} />);
      expect(screen.getByText(value).textContent).toBe(value);
      unmount();
    }
  });

  it("appends a suffix without touching the number", () => {
    render(<Money value="-3.1400" suffix="%" signed />);
    const shown = screen.getByText("-3.1400%");
    expect(shown).toHaveClass("negative");
  });

  it("shows a dash, labelled, when the API has no value", () => {
    render(<Money value={null} />);
    expect(screen.getByLabelText("not available")).toHaveTextContent("—");
  });

  it("reads the sign from the text, with negative zero as zero", () => {
    expect(signOf("-0.0001")).toBe("negative");
    expect(signOf("-0.0000")).toBe("zero");
    expect(signOf("0")).toBe("zero");
    expect(signOf("12.5")).toBe("positive");
  });
});
