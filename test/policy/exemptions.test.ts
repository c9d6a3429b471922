import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compile } from "../../src/policy/compile.js";
import { applyExemptions, exemptionUnsupported, EXEMPTION_TIER_PREFIX, type ActiveExemption } from "../../src/policy/exemptions.js";
import type { CompilerInputIn } from "../../src/policy/input.js";
import { artifactRef, type GatewayArtifact } from "../../src/ports/gateway.js";
import { MI, model, project, tenant } from "./fixtures.js";

const P1 = "prj_0000000000000000000a";
const P2 = "prj_0000000000000000000b";
const M1 = "mdl_0000000000000000000a";
const M2 = "mdl_0000000000000000000b";
const KEY = "key_0000000000000000000k";
const OTHER_KEY = "key_0000000000000000000z";

const be = (id: string) => ({ backends: [{ id, url: "https://aoai-eus.openai.azure.com/openai", region: "eastus", auth: MI }] });

/** Two projects, both with content safety and per-key limits, so shared artifacts exist beyond the exempted scope. */
const BASE: CompilerInputIn = tenant(
  [
    project(P1, [model(M1, "gpt-4o", be("b1")), model(M2, "gpt-4o-mini", { ...be("b2"), settings: { contentSafety: { categories: { Hate: 2 } }, tokens: { perMinute: { limit: 500 } } } })], {
      keyTiers: ["gold"],
      settings: { prompt: { maxBytes: 65_536 } },
    }),
    project(P2, [model("mdl_0000000000000000000c", "gpt-4o", be("b3"))], { keyTiers: ["gold"] }),
  ],
  {
    settings: {
      contentSafety: { categories: { Hate: 4, Violence: 4 } },
      tokens: { perMinute: { limit: 1_000, per: "key" }, quota: { limit: 1_000_000, per: "project" } },
      requests: { rate: { calls: 60, per: "key" } },
      semanticCache: {},
      metrics: { tokens: {} },
    },
    keyTiers: [{ id: "gold", limits: { tokensPerMinute: 5_000 } }],
    virtualKeys: [
      { id: KEY, projectId: P1 },
      { id: OTHER_KEY, projectId: P1, tier: "gold" },
    ],
  },
);

const byRef = (artifacts: GatewayArtifact[]) => new Map(artifacts.map((a) => [artifactRef(a), JSON.stringify(a)]));
function changedRefs(before: CompilerInputIn, after: CompilerInputIn): string[] {
  const a = byRef(compile(before).artifacts);
  const b = byRef(compile(after).artifacts);
  return [...new Set([...a.keys(), ...b.keys()])].filter((r) => a.get(r) !== b.get(r)).sort();
}
const ex = (id: string, e: Omit<ActiveExemption, "id">): ActiveExemption => ({ id, ...e });

describe("applyExemptions", () => {
  it("no exemptions: the same input, byte-identical artifacts", () => {
    expect(applyExemptions(BASE, [])).toBe(BASE);
    expect(JSON.stringify(compile(applyExemptions(BASE, [])))).toBe(JSON.stringify(compile(BASE)));
  });

  it("a project exemption changes only that project's API policy", () => {
    const e = ex("exm_1", { control: "contentSafety", scope: { level: "project", projectId: P1 }, relaxation: { kind: "thresholds", categories: { Hate: 6 } } });
    const after = applyExemptions(BASE, [e]);
    expect(changedRefs(BASE, after)).toEqual([`policy:api/aigov-${P1}`]);
    const api = compile(after).artifacts.find((a) => artifactRef(a) === `policy:api/aigov-${P1}`);
    expect(api && "xml" in api ? api.xml : "").toContain('name="Hate" threshold="6"');
    // M2's own stricter Hate threshold (2) is raised too: it lies inside the exempted project.
    expect(after.projects[0]!.models![1]!.settings).toMatchObject({ contentSafety: { categories: { Hate: 6 } } });
    // The input itself is not mutated.
    expect(BASE.projects[0]!.settings).toEqual({ prompt: { maxBytes: 65_536 } });
  });

  it("a model exemption changes only its project's API policy, and only that model's block", () => {
    const e = ex("exm_2", { control: "tokens.perMinute", scope: { level: "model", projectId: P1, modelId: M2 }, relaxation: { kind: "limit", value: 2_000 } });
    const after = applyExemptions(BASE, [e]);
    expect(changedRefs(BASE, after)).toEqual([`policy:api/aigov-${P1}`]);
    expect(after.projects[0]!.models![0]).toBe(BASE.projects[0]!.models![0]);
    expect(after.projects[1]).toBe(BASE.projects[1]);
  });

  it("switching a control off for a project switches it off for its models too", () => {
    const e = ex("exm_3", { control: "contentSafety", scope: { level: "project", projectId: P2 }, relaxation: { kind: "off" } });
    const after = applyExemptions(BASE, [e]);
    expect(changedRefs(BASE, after)).toEqual([`policy:api/aigov-${P2}`]);
    const api = compile(after).artifacts.find((a) => artifactRef(a) === `policy:api/aigov-${P2}`);
    expect(api && "xml" in api ? api.xml : "").not.toContain("llm-content-safety");
  });

  it("a key exemption adds one exemption tier for that key: the project's API policy and one new product, nothing else", () => {
    const e = ex("exm_4", { control: "tokens.perMinute", scope: { level: "key", projectId: P1, keyId: KEY }, relaxation: { kind: "limit", value: 3_000 } });
    const after = applyExemptions(BASE, [e]);
    const changed = changedRefs(BASE, after);
    // The project's API policy gets the tier's branch; the tier's product (and its policy, when the
    // compiler emits products) is new. Nothing of any other project, tier or key changes.
    expect(changed[0]).toBe(`policy:api/aigov-${P1}`);
    expect(changed.length).toBeGreaterThanOrEqual(2);
    for (const ref of changed.slice(1)) expect(ref).toMatch(new RegExp(`^(policy:product|product):?/?aigov-${P1}-${EXEMPTION_TIER_PREFIX}[0-9a-f]+$`));
    const tier = after.keyTiers!.find((t) => t.id.startsWith(EXEMPTION_TIER_PREFIX))!;
    expect(tier.limits).toEqual({ tokensPerMinute: 3_000 });
    expect(after.virtualKeys!.find((k) => k.id === KEY)!.tier).toBe(tier.id);
    // A second key with the same relaxation shares the tier: documents do not grow per key.
    const e2 = ex("exm_5", { control: "tokens.perMinute", scope: { level: "key", projectId: P1, keyId: "key_0000000000000000000m" }, relaxation: { kind: "limit", value: 3_000 } });
    const both = applyExemptions(BASE, [e, e2]);
    expect(both.keyTiers!.filter((t) => t.id.startsWith(EXEMPTION_TIER_PREFIX))).toHaveLength(1);
    expect(JSON.stringify(compile(both).artifacts)).toBe(JSON.stringify(compile(after).artifacts));
  });

  it("a key already in a tier keeps the tier's other limits and gets the higher value", () => {
    const e = ex("exm_6", { control: "requests.rate", scope: { level: "key", projectId: P1, keyId: OTHER_KEY }, relaxation: { kind: "limit", value: 600 } });
    const after = applyExemptions(BASE, [e]);
    const tier = after.keyTiers!.find((t) => t.id.startsWith(EXEMPTION_TIER_PREFIX))!;
    expect(tier.limits).toEqual({ tokensPerMinute: 5_000, requestRate: { calls: 600, renewalPeriodSeconds: 60 } });
  });

  it("a key exemption keeps the key's model scope and the projects that accept its tier", () => {
    const shared: CompilerInputIn = {
      ...BASE,
      keyTiers: [{ id: "gold", limits: { tokensPerMinute: 5_000 }, models: ["gpt-4o"] }],
      projects: BASE.projects.map((p) => (p.id === P2 ? { ...p, keyTiers: [], sharedKeyTiers: [{ projectId: P1, tierId: "gold" }] } : p)),
    };
    const e = ex("exm_9", { control: "tokens.perMinute", scope: { level: "key", projectId: P1, keyId: OTHER_KEY }, relaxation: { kind: "limit", value: 9_000 } });
    const after = applyExemptions(shared, [e]);
    const tier = after.keyTiers!.find((t) => t.id.startsWith(EXEMPTION_TIER_PREFIX))!;
    expect(tier.models).toEqual(["gpt-4o"]);
    expect(after.projects.find((p) => p.id === P2)!.sharedKeyTiers).toEqual([
      { projectId: P1, tierId: "gold" },
      { projectId: P1, tierId: tier.id },
    ]);
    const product = compile(after).artifacts.find((a) => a.kind === "product" && a.id === `aigov-${P1}-${tier.id}`);
    expect(product && product.kind === "product" ? product.apis : []).toEqual([`aigov-${P1}`, `aigov-${P2}`]);
  });

  it("a per-project (shared) counter is not relaxed for one key", () => {
    const e = ex("exm_7", { control: "tokens.quota", scope: { level: "key", projectId: P1, keyId: KEY }, relaxation: { kind: "limit", value: 9_000_000 } });
    expect(applyExemptions(BASE, [e])).toEqual(BASE);
  });

  it("a tenant exemption relaxes the tenant setting and every narrower setting that would undo it", () => {
    const e = ex("exm_8", { control: "prompt.maxBytes", scope: { level: "tenant" }, relaxation: { kind: "off" } });
    const after = applyExemptions(BASE, [e]);
    expect(after.projects[0]!.settings).toMatchObject({ prompt: { maxBytes: null } });
    const api = compile(after).artifacts.find((a) => artifactRef(a) === `policy:api/aigov-${P1}`);
    expect(api && "xml" in api ? api.xml : "").not.toMatch(/65536/);
  });

  it("refuses what cannot be relaxed at a scope", () => {
    expect(exemptionUnsupported("regions.allowed", "project", { kind: "off" })?.field).toBe("control");
    expect(exemptionUnsupported("semanticCache", "model", { kind: "off" })?.field).toBe("scope");
    expect(exemptionUnsupported("contentSafety", "key", { kind: "off" })?.field).toBe("scope");
    expect(exemptionUnsupported("failover", "project", { kind: "limit", value: 3 })?.field).toBe("relaxation");
    expect(exemptionUnsupported("tokens.perMinute", "key", { kind: "limit", value: 3 })).toBeUndefined();
  });

  it("property: any supported exemption changes artifacts only inside its scope", () => {
    const scopes = [
      { level: "project" as const, projectId: P1 },
      { level: "project" as const, projectId: P2 },
      { level: "model" as const, projectId: P1, modelId: M1 },
      { level: "model" as const, projectId: P1, modelId: M2 },
      { level: "key" as const, projectId: P1, keyId: KEY },
      { level: "key" as const, projectId: P1, keyId: OTHER_KEY },
    ];
    const controls = ["tokens.perMinute", "tokens.quota", "requests.rate", "contentSafety", "semanticCache", "prompt.maxBytes", "metrics.tokens", "failover"] as const;
    const relaxations = fc.oneof(
      fc.constant({ kind: "off" as const }),
      fc.integer({ min: 1, max: 10_000_000 }).map((value) => ({ kind: "limit" as const, value })),
      fc.constantFrom(2, 4, 6).map((t) => ({ kind: "thresholds" as const, categories: { Hate: t, Violence: t } })),
    );
    let applied = 0;
    fc.assert(
      fc.property(fc.constantFrom(...scopes), fc.constantFrom(...controls), relaxations, (scope, control, relaxation) => {
        if (exemptionUnsupported(control, scope.level, relaxation)) return;
        applied += 1;
        const after = applyExemptions(BASE, [{ id: "exm_p", control, scope, relaxation }]);
        const allowed = (ref: string) =>
          ref === `policy:api/aigov-${scope.projectId}` ||
          ref.includes(`aigov-${scope.projectId}-${EXEMPTION_TIER_PREFIX}`) ||
          // failover at model scope shapes that model's backends and pool
          (scope.level === "model" && (ref.includes(scope.modelId) || ref.startsWith(`backend:aigov-pool-${scope.projectId}-${scope.modelId}`))) ||
          (scope.level === "project" && ref.startsWith(`backend:aigov-pool-${scope.projectId}-`)) ||
          (scope.level === "project" && ref.startsWith("backend:aigov-be-") && control === "failover" && BASE.projects.find((p) => p.id === scope.projectId)!.models!.some((m) => ref.includes(m.backends[0]!.id)));
        for (const ref of changedRefs(BASE, after)) expect(allowed(ref), `${control} ${JSON.stringify(scope)} ${JSON.stringify(relaxation)} changed ${ref}`).toBe(true);
      }),
      { numRuns: 150, seed: 7 },
    );
    expect(applied).toBeGreaterThan(30);
  });
});
