import { describe, expect, it } from "vitest";
import { subscriptionDisplayName } from "../../src/domain/keys/subscription.js";

describe("a key's subscription display name", () => {
  it("fits APIM's 100 characters and always keeps the key id", () => {
    const id = "key_0123456789abcdefghij";
    expect(subscriptionDisplayName("ci", id)).toBe(`ci (${id})`);
    const long = subscriptionDisplayName("x".repeat(300), id);
    expect(long.length).toBeLessThanOrEqual(100);
    expect(long.endsWith(` (${id})`)).toBe(true);
    expect(long).toContain("…");
  });

  it("never splits a surrogate pair when it shortens a name", () => {
    const id = "key_0123456789abcdefghij";
    for (let pad = 0; pad < 4; pad++) {
      const name = `${"a".repeat(70 + pad)}${"😀".repeat(20)}`;
      const shown = subscriptionDisplayName(name, id);
      expect(shown.length).toBeLessThanOrEqual(100);
      expect(shown).toBe(shown.toWellFormed());
      expect(shown.endsWith(` (${id})`)).toBe(true);
    }
  });
});
