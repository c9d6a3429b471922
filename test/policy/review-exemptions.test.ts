import { describe, expect, it } from "vitest";
import { compile } from "../../src/policy/compile.js";
import { applyExemptions, type ActiveExemption } from "../../src/policy/exemptions.js";
import type { CompilerInputIn } from "../../src/policy/input.js";
import { MI, model, project, tenant } from "./fixtures.js";

const P1 = "prj_0000000000000000000a";
const M1 = "mdl_0000000000000000000a";
const KEY = "key_0000000000000000000k";
const be = { backends: [{ id: "b1", url: "https://aoai-eus.openai.azure.com/openai", region: "eastus", auth: MI }] };
const ex = (id: string, e: Omit<ActiveExemption, "id">): ActiveExemption => ({ id, ...e });

const xmlOf = (input: CompilerInputIn) =>
  compile(input)
    .artifacts.filter((a) => "xml" in a)
    .map((a) => (a as { xml: string }).xml)
    .join("\n");

describe("review: exemptions only relax", () => {
  it("a threshold exemption on a category nobody sets (default 4) must not lower it", () => {
    const base = tenant([project(P1, [model(M1, "gpt-4o", be)], {})], { settings: { contentSafety: { categories: { Hate: 4 } } } });
    const out = applyExemptions(base, [ex("exm_a", { control: "contentSafety", scope: { level: "project", projectId: P1 }, relaxation: { kind: "thresholds", categories: { SelfHarm: 2 } } })]);
    const cats = (out.projects[0]!.settings as { contentSafety?: { categories?: Record<string, number> } } | undefined)?.contentSafety?.categories ?? {};
    // default threshold is 4: an "exemption" to 2 tightens
    expect(cats.SelfHarm ?? 4).toBeGreaterThanOrEqual(4);
  });

  it("a key exemption below the project's per-key limit must not tighten the key", () => {
    const base = tenant([project(P1, [model(M1, "gpt-4o", be)], {})], {
      settings: { tokens: { perMinute: { limit: 10_000, per: "key" } } },
      virtualKeys: [{ id: KEY, projectId: P1 }],
    });
    const out = applyExemptions(base, [ex("exm_k", { control: "tokens.perMinute", scope: { level: "key", projectId: P1, keyId: KEY }, relaxation: { kind: "limit", value: 2_000 } })]);
    const xml = xmlOf(out);
    // the key's effective limit must stay >= 10000
    expect(xml).not.toContain('tokens-per-minute="2000"');
  });
});

describe("review: a key exemption does not widen past what was approved", () => {
  it("a key on a profile above the project's per-key limit gets the approved value, not the profile's", () => {
    const base = tenant([project(P1, [model(M1, "gpt-4o", be)], { keyTiers: ["gold"] })], {
      settings: { tokens: { perMinute: { limit: 1_000, per: "key" } } },
      keyTiers: [{ id: "gold", limits: { tokensPerMinute: 50_000 } }],
      virtualKeys: [{ id: KEY, projectId: P1, tier: "gold" }],
    });
    const out = applyExemptions(base, [ex("exm_k", { control: "tokens.perMinute", scope: { level: "key", projectId: P1, keyId: KEY }, relaxation: { kind: "limit", value: 2_000 } })]);
    const tier = (out.keyTiers ?? []).find((t) => t.id.startsWith("zzzz_x"));
    expect(tier?.limits.tokensPerMinute).toBe(2_000);
  });
});
