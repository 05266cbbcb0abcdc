import { describe, expect, it } from "vitest";
import { TOKEN } from "../test/api";
import { currentToken, normaliseToken, signIn, signOut, TOKEN_KEY } from "./session";

describe("session", () => {
  it("takes a pasted token with whitespace and a Bearer prefix", () => {
    expect(normaliseToken(`  Bearer ${TOKEN}\n`)).toBe(TOKEN);
    expect(normaliseToken(`${TOKEN}\n`)).toBe(TOKEN);
  });

  it("refuses what cannot be a JWT", () => {
    expect(normaliseToken("")).toBeNull();
    expect(normaliseToken("hello")).toBeNull();
    expect(normaliseToken("a.b.c d")).toBeNull();
  });

  it("keeps the token in sessionStorage only, never in the URL", () => {
    signIn(TOKEN);
    expect(sessionStorage.getItem(TOKEN_KEY)).toBe(TOKEN);
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(window.location.href).not.toContain(TOKEN);
    expect(currentToken()).toBe(TOKEN);
  });

  it("forgets the token on sign-out", () => {
    signIn(TOKEN);
    signOut("bye");
    expect(sessionStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(currentToken()).toBeNull();
  });
});
