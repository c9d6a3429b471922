/**
 * Key exemptions' tiers and the 40-tier cap of a project's gateway document (ADR 007, ADR 008): an open
 * key exemption, or an exemption tier a key's subscription is still on, holds a place against the cap, and
 * the compiler input never offers a project more tiers than its document holds.
 */
import { describe, expect, it } from "vitest";
import { profilesInUse, roomForExemption, type KeyDoc } from "../../src/domain/keys/documents.js";
import { withPublishedExemptionTiers } from "../../src/domain/keys/profiles.js";
import type { CompilerInputIn } from "../../src/policy/index.js";
import { MAX_PROJECT_KEY_TIERS } from "../../src/policy/input.js";

const key = (id: string, tokensPerMinute: number | undefined, extra: Partial<KeyDoc> = {}): KeyDoc =>
  ({ id, projectId: "p1", scopes: {}, limits: tokensPerMinute === undefined ? {} : { tokensPerMinute }, shares: [], status: "active", gateway: { desiredGen: 1, syncedGen: 1 }, ...extra }) as unknown as KeyDoc;
const heldTier = (id: string) => ({ id, tier: { id, description: "exemption tier of p1", limits: { tokensPerMinute: 1000 } } }) as unknown as NonNullable<KeyDoc["gateway"]["publishedExemptionTier"]>;

describe("key exemptions hold places among their project's key tiers", () => {
  const fillers = Array.from({ length: MAX_PROJECT_KEY_TIERS - 1 }, (_, i) => key(`k${i}`, 1000 + i));
  const exempted = key("x", undefined);

  it("an open key exemption takes the last place: no new profile, no other key exemption", async () => {
    const docs = { listAll: async () => [...fillers, exempted], exemptedKeys: async () => new Set(["x"]) };
    expect(await profilesInUse(docs, "t", key("new", 5000))).toBe(MAX_PROJECT_KEY_TIERS);
    expect(await profilesInUse(docs, "t", key("new", 1000))).toBeUndefined();
    await expect(roomForExemption(docs, "t", "p1", "k0")).rejects.toMatchObject({ error: { kind: "conflict", reason: "key_profiles_exhausted" } });
    // The exempted key's own place: another exemption of it needs no more.
    await expect(roomForExemption(docs, "t", "p1", "x")).resolves.toBeUndefined();
    // Without it there is room for one, either way.
    const none = { listAll: async () => [...fillers, exempted], exemptedKeys: async () => new Set<string>() };
    expect(await profilesInUse(none, "t", key("new", 5000))).toBeUndefined();
    await expect(roomForExemption(none, "t", "p1", "k0")).resolves.toBeUndefined();
  });

  it("an exemption tier a key's subscription is still on holds its place after the exemption ended", async () => {
    const moving = key("x", undefined, { gateway: { desiredGen: 2, syncedGen: 1, publishedExemptionTier: heldTier("zzzz_xheld") } as unknown as KeyDoc["gateway"] });
    const docs = { listAll: async () => [...fillers, moving], exemptedKeys: async () => new Set<string>() };
    expect(await profilesInUse(docs, "t", key("new", 5000))).toBe(MAX_PROJECT_KEY_TIERS);
  });

  it("the compiler input never offers a project a 41st tier: a new exemption tier gives way to the held one", () => {
    const profiles = fillers.map((k) => `kp_${k.id}`);
    const input = {
      keyTiers: [...profiles.map((id) => ({ id, limits: {} })), { id: "zzzz_xnew", limits: { tokensPerMinute: 2000 } }],
      projects: [{ id: "p1", keyTiers: [...profiles, "zzzz_xnew"].sort(), sharedKeyTiers: [] }],
      virtualKeys: [{ id: "x", projectId: "p1", tier: "zzzz_xnew" }],
    } as unknown as CompilerInputIn;
    const moving = key("x", undefined, { gateway: { desiredGen: 2, syncedGen: 1, publishedExemptionTier: heldTier("zzzz_xheld") } as unknown as KeyDoc["gateway"] });
    const out = withPublishedExemptionTiers(input, new Map([["p1", [...fillers, moving]]]));
    const p1 = out.projects.find((p) => p.id === "p1")!;
    expect(p1.keyTiers).toHaveLength(MAX_PROJECT_KEY_TIERS);
    expect(p1.keyTiers).toContain("zzzz_xheld");
    expect(p1.keyTiers).not.toContain("zzzz_xnew");
    expect(out.keyTiers!.map((t) => t.id)).not.toContain("zzzz_xnew");
    // The key stays where its subscription is until there is room for the new tier.
    expect(out.virtualKeys).toEqual([]);
  });
});
