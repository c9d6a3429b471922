import { gatewayNames } from "../../src/policy/names.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compile } from "../../src/policy/compile.js";
import { applyExemptions, exemptionUnsupported, EXEMPTION_TIER_PREFIX, type ActiveExemption } from "../../src/policy/exemptions.js";
import type { CompilerInputIn } from "../../src/policy/input.js";
import { artifactRef, type GatewayArtifact } from "../../src/ports/gateway.js";
import { CompilerModelSettings, CompilerSettings, ModelSettings, Settings } from "../../src/policy/settings.js";
import { MI, model, project, tenant } from "./fixtures.js";

const P1 = "prj_0000000000000000000a";
const P2 = "prj_0000000000000000000b";
const M1 = "mdl_0000000000000000000a";
const M2 = "mdl_0000000000000000000b";
const KEY = "key_0000000000000000000k";
const OTHER_KEY = "key_0000000000000000000z";

const M3 = "mdl_0000000000000000000c";
const M4 = "mdl_0000000000000000000d";
const be = (id: string) => ({ backends: [{ id, url: "https://aoai-eus.openai.azure.com/openai", region: "eastus", auth: MI }] });
const weu = (id: string) => ({ id, url: "https://aoai-weu.openai.azure.com/openai", region: "westeurope", auth: MI });

/**
 * Two projects, both with content safety, per-key limits and allow-lists, so shared artifacts exist
 * beyond the exempted scope: westeurope backends and o3 are outside the tenant's allow-lists.
 */
const BASE: CompilerInputIn = tenant(
  [
    project(
      P1,
      [
        model(M1, "gpt-4o", { backends: [...be("b1").backends, weu("b1w")] }),
        model(M2, "gpt-4o-mini", { backends: [...be("b2").backends, weu("b2w")], settings: { contentSafety: { categories: { Hate: 2 } }, tokens: { perMinute: { limit: 500 } }, regions: { allowed: ["eastus"] } } }),
      ],
      {
        keyTiers: ["gold"],
        settings: { prompt: { maxBytes: 65_536 } },
      },
    ),
    project(P2, [model(M3, "gpt-4o", { backends: [...be("b3").backends, weu("b3w")] }), model(M4, "o3", be("b4"))], { keyTiers: ["gold"] }),
  ],
  {
    settings: {
      models: { allowed: ["gpt-4o", "gpt-4o-mini"] },
      regions: { allowed: ["eastus", "swedencentral"] },
      dataClass: { allowed: ["public"] },
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

/** The fixtures' tenant ("contoso") prefixes every artifact id. */
const K = gatewayNames("contoso").prefix;

const byRef = (artifacts: GatewayArtifact[]) => new Map(artifacts.map((a) => [artifactRef(a), JSON.stringify(a)]));
function changedRefs(before: CompilerInputIn, after: CompilerInputIn): string[] {
  const a = byRef(compile(before).artifacts);
  const b = byRef(compile(after).artifacts);
  return [...new Set([...a.keys(), ...b.keys()])].filter((r) => a.get(r) !== b.get(r)).sort();
}
const ex = (id: string, e: Omit<ActiveExemption, "id">): ActiveExemption => ({ id, ...e });
const apiXml = (input: CompilerInputIn, projectId: string) => {
  const api = compile(input).artifacts.find((a) => artifactRef(a) === `policy:api/${K}-${projectId}`);
  return api && "xml" in api ? api.xml : "";
};
const pool = (input: CompilerInputIn, projectId: string, modelId: string) => {
  const p = compile(input).artifacts.find((a) => a.kind === "backend" && a.id === `${K}-pool-${projectId}-${modelId}`);
  return p && p.kind === "backend" && p.type === "Pool" ? p.services.map((s) => s.id) : undefined;
};

describe("applyExemptions", () => {
  it("no exemptions: the same input, byte-identical artifacts", () => {
    expect(applyExemptions(BASE, [])).toBe(BASE);
    expect(JSON.stringify(compile(applyExemptions(BASE, [])))).toBe(JSON.stringify(compile(BASE)));
  });

  it("a project exemption changes only that project's API policy", () => {
    const e = ex("exm_1", { control: "contentSafety", scope: { level: "project", projectId: P1 }, relaxation: { kind: "thresholds", categories: { Hate: 6 } } });
    const after = applyExemptions(BASE, [e]);
    expect(changedRefs(BASE, after)).toEqual([`policy:api/${K}-${P1}`]);
    const api = compile(after).artifacts.find((a) => artifactRef(a) === `policy:api/${K}-${P1}`);
    expect(api && "xml" in api ? api.xml : "").toContain('name="Hate" threshold="6"');
    // M2's own stricter Hate threshold (2) is raised too: it lies inside the exempted project.
    expect(after.projects[0]!.models![1]!.settings).toMatchObject({ contentSafety: { categories: { Hate: 6 } } });
    // The input itself is not mutated.
    expect(BASE.projects[0]!.settings).toEqual({ prompt: { maxBytes: 65_536 } });
  });

  it("on the four-level scale an odd threshold takes effect as the level below it (stricter), instead of making the project fail to compile", () => {
    const e = ex("exm_odd", { control: "contentSafety", scope: { level: "project", projectId: P1 }, relaxation: { kind: "thresholds", categories: { Hate: 5 } } });
    const api = (input: CompilerInputIn) => compile(applyExemptions(input, [e])).artifacts.find((a) => artifactRef(a) === `policy:api/${K}-${P1}`);
    const four = api(BASE);
    expect(four && "xml" in four ? four.xml : "").toContain('name="Hate" threshold="4"');
    // On the eight-level scale 5 is a level of its own.
    const eight = { ...BASE, settings: { ...BASE.settings, contentSafety: { ...(BASE.settings as { contentSafety?: object }).contentSafety, outputType: "EightSeverityLevels" as const } } } as CompilerInputIn;
    const onEight = api(eight);
    expect(onEight && "xml" in onEight ? onEight.xml : "").toContain('name="Hate" threshold="5"');
  });

  it("a rate is approved per its scope's window: a narrower scope counting over a shorter window gets the same rate, not the same count", () => {
    // The tenant: 60 calls per 60 s. Project P1: 10 per 10 s (the same rate, over a shorter window).
    const input = { ...BASE, projects: BASE.projects.map((p) => (p.id === P1 ? { ...p, settings: { ...p.settings, requests: { rate: { calls: 10, renewalPeriodSeconds: 10, per: "key" as const } } } } : p)) } as CompilerInputIn;
    const e = ex("exm_rate", { control: "requests.rate", scope: { level: "tenant" }, relaxation: { kind: "limit", value: 600 } });
    const after = applyExemptions(input, [e]);
    // 600 per 60 s is 10 a second: P1 counts 100 per its 10 s (not 600 per 10 s, six times the approved rate).
    expect((after.settings as { requests: { rate: object } }).requests.rate).toMatchObject({ calls: 600 });
    expect((after.projects.find((p) => p.id === P1)!.settings as { requests: { rate: object } }).requests.rate).toEqual({ calls: 100, renewalPeriodSeconds: 10, per: "key" });
    const api = compile(after).artifacts.find((a) => artifactRef(a) === `policy:api/${K}-${P1}`);
    expect(api && "xml" in api ? api.xml : "").toMatch(/calls="100" renewal-period="10"/);
  });

  it("raised thresholds of a control nobody configured at the scope or above do not switch it on there; narrower settings are still raised", () => {
    const { contentSafety: _cs, ...tenantSettings } = BASE.settings as Record<string, unknown>;
    const input = { ...BASE, settings: tenantSettings } as CompilerInputIn;
    const e = ex("exm_unset", { control: "contentSafety", scope: { level: "project", projectId: P1 }, relaxation: { kind: "thresholds", categories: { Hate: 6 } } });
    const after = applyExemptions(input, [e]);
    const p1 = after.projects.find((p) => p.id === P1)!;
    expect((p1.settings as Record<string, unknown>).contentSafety).toBeUndefined();
    // M2 sets its own (stricter) Hate threshold: that is raised, as inside any exempted scope.
    expect(p1.models![1]!.settings).toMatchObject({ contentSafety: { categories: { Hate: 6 } } });
    expect(p1.models![0]!.settings ?? {}).not.toHaveProperty("contentSafety");
  });

  it("a model exemption changes only its project's API policy, and only that model's block", () => {
    const e = ex("exm_2", { control: "tokens.perMinute", scope: { level: "model", projectId: P1, modelId: M2 }, relaxation: { kind: "limit", value: 2_000 } });
    const after = applyExemptions(BASE, [e]);
    expect(changedRefs(BASE, after)).toEqual([`policy:api/${K}-${P1}`]);
    expect(after.projects[0]!.models![0]).toBe(BASE.projects[0]!.models![0]);
    expect(after.projects[1]).toBe(BASE.projects[1]);
  });

  it("switching a control off for a project switches it off for its models too", () => {
    const e = ex("exm_3", { control: "contentSafety", scope: { level: "project", projectId: P2 }, relaxation: { kind: "off" } });
    const after = applyExemptions(BASE, [e]);
    expect(changedRefs(BASE, after)).toEqual([`policy:api/${K}-${P2}`]);
    const api = compile(after).artifacts.find((a) => artifactRef(a) === `policy:api/${K}-${P2}`);
    expect(api && "xml" in api ? api.xml : "").not.toContain("llm-content-safety");
  });

  it("a key exemption adds one exemption tier for that key: the project's API policy and one new product, nothing else", () => {
    const e = ex("exm_4", { control: "tokens.perMinute", scope: { level: "key", projectId: P1, keyId: KEY }, relaxation: { kind: "limit", value: 3_000 } });
    const after = applyExemptions(BASE, [e]);
    const changed = changedRefs(BASE, after);
    // The project's API policy gets the tier's branch; the tier's product (and its policy, when the
    // compiler emits products) is new. Nothing of any other project, tier or key changes.
    expect(changed[0]).toBe(`policy:api/${K}-${P1}`);
    expect(changed.length).toBeGreaterThanOrEqual(2);
    for (const ref of changed.slice(1)) expect(ref).toMatch(new RegExp(`^(policy:product|product):?/?${K}-${P1}-${EXEMPTION_TIER_PREFIX}[0-9a-f]+$`));
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
    const product = compile(after).artifacts.find((a) => a.kind === "product" && a.id === `${K}-${P1}-${tier.id}`);
    expect(product && product.kind === "product" ? product.apis : []).toEqual([`${K}-${P1}`, `${K}-${P2}`]);
  });

  it("a key exemption relaxes only the limit it names: the tier's content safety, tool and agent grants stay", () => {
    const strict: CompilerInputIn = {
      ...BASE,
      keyTiers: [{ id: "gold", limits: { tokensPerMinute: 5_000 }, contentSafety: "high", tools: ["server:search"], agents: ["agt_aaaaaaaaaaaaaaaaaaaa"] }],
    };
    const e = ex("exm_10", { control: "tokens.perMinute", scope: { level: "key", projectId: P1, keyId: OTHER_KEY }, relaxation: { kind: "limit", value: 9_000 } });
    const tier = applyExemptions(strict, [e]).keyTiers!.find((t) => t.id.startsWith(EXEMPTION_TIER_PREFIX))!;
    expect(tier).toMatchObject({ limits: { tokensPerMinute: 9_000 }, contentSafety: "high", tools: ["server:search"], agents: ["agt_aaaaaaaaaaaaaaaaaaaa"] });
    // At the gateway: the key's extra content-safety check applies to the exemption tier as it did to its own.
    const policy = compile(applyExemptions(strict, [e])).artifacts.find((a) => a.kind === "policy" && a.scope.type === "api" && a.scope.apiId === `${K}-${P1}`);
    expect(policy && policy.kind === "policy" ? policy.xml : "").toContain(tier.id);
  });

  it("a per-project (shared) counter is not relaxed for one key", () => {
    const e = ex("exm_7", { control: "tokens.quota", scope: { level: "key", projectId: P1, keyId: KEY }, relaxation: { kind: "limit", value: 9_000_000 } });
    expect(applyExemptions(BASE, [e])).toEqual(BASE);
  });

  it("a tenant exemption relaxes the tenant setting and every narrower setting that would undo it", () => {
    const e = ex("exm_8", { control: "prompt.maxBytes", scope: { level: "tenant" }, relaxation: { kind: "off" } });
    const after = applyExemptions(BASE, [e]);
    expect(after.projects[0]!.settings).toMatchObject({ prompt: { maxBytes: null } });
    const api = compile(after).artifacts.find((a) => artifactRef(a) === `policy:api/${K}-${P1}`);
    expect(api && "xml" in api ? api.xml : "").not.toMatch(/65536/);
  });

  it("an exemption only relaxes: a limit, a threshold or a prompt size below what is in force at its scope changes nothing", () => {
    const pm = (control: ActiveExemption["control"], relaxation: ActiveExemption["relaxation"], scope: ActiveExemption["scope"] = { level: "project", projectId: P1 }) => ex("exm_low", { control, scope, relaxation });
    // The tenant's 1,000 tokens a minute per key is in force in P1 (P1 sets none itself): 500 would tighten it.
    expect(changedRefs(BASE, applyExemptions(BASE, [pm("tokens.perMinute", { kind: "limit", value: 500 })]))).toEqual([]);
    // M2 sets its own 500: a model exemption to 400 leaves it; to 800 raises it.
    expect(changedRefs(BASE, applyExemptions(BASE, [pm("tokens.perMinute", { kind: "limit", value: 400 }, { level: "model", projectId: P1, modelId: M2 })]))).toEqual([]);
    const raised = applyExemptions(BASE, [pm("tokens.perMinute", { kind: "limit", value: 800 }, { level: "model", projectId: P1, modelId: M2 })]);
    expect(raised.projects[0]!.models![1]!.settings).toMatchObject({ tokens: { perMinute: { limit: 800 } } });
    // Hate is 4 in the tenant: a threshold of 2 would block more; Violence 6 is a relaxation and is set.
    const cs = applyExemptions(BASE, [pm("contentSafety", { kind: "thresholds", categories: { Hate: 2, Violence: 6 } })]);
    expect((cs.projects[0]!.settings as { contentSafety?: { categories?: object } }).contentSafety?.categories).toEqual({ Violence: 6 });
    // P1's own 64 KiB prompt limit: 1 KiB would tighten it.
    expect(changedRefs(BASE, applyExemptions(BASE, [pm("prompt.maxBytes", { kind: "limit", value: 1024 })]))).toEqual([]);
  });

  it("two exemptions of one limit at one scope add up to the larger, in whichever order they are listed", () => {
    const a = ex("exm_a", { control: "tokens.perMinute", scope: { level: "project", projectId: P1 }, relaxation: { kind: "limit", value: 8_000 } });
    const b = ex("exm_b", { control: "tokens.perMinute", scope: { level: "project", projectId: P1 }, relaxation: { kind: "limit", value: 3_000 } });
    for (const active of [[a, b], [b, a]]) {
      expect((applyExemptions(BASE, active).projects[0]!.settings as { tokens?: { perMinute?: object } }).tokens?.perMinute).toEqual({ limit: 8_000 });
      expect(apiXml(applyExemptions(BASE, active), P1)).toContain('tokens-per-minute="8000"');
    }
  });

  describe("allow-list exemptions", () => {
    it("a project region exemption adds the region to the project's effective list, for every model in it, and nothing else", () => {
      const e = ex("exm_r1", { control: "regions.allowed", scope: { level: "project", projectId: P1 }, relaxation: { kind: "allow", values: ["westeurope"] } });
      const after = applyExemptions(BASE, [e]);
      expect(changedRefs(BASE, after)).toEqual(
        [`backend:${K}-be-b1w`, `backend:${K}-be-b2w`, `backend:${K}-pool-${P1}-${M1}`, `backend:${K}-pool-${P1}-${M2}`].sort(),
      );
      expect(pool(BASE, P1, M1)).toEqual([`/backends/${K}-be-b1`]);
      expect(pool(after, P1, M1)).toEqual([`/backends/${K}-be-b1`, `/backends/${K}-be-b1w`]);
      // "The normal effective list plus these values": M2 narrows to eastus itself, and still gets
      // westeurope, because the exemption is applied after the intersection.
      expect(pool(after, P1, M2)).toEqual([`/backends/${K}-be-b2`, `/backends/${K}-be-b2w`]);
      // Only the scope's exempt entry is written; the models and the other project are untouched.
      expect(after.projects[0]!.settings).toEqual({ prompt: { maxBytes: 65_536 }, exempt: { "regions.allowed": { add: ["westeurope"] } } });
      expect(after.projects[0]!.models).toBe(BASE.projects[0]!.models);
      expect(after.projects[1]).toBe(BASE.projects[1]);
      expect(pool(after, P2, M3)).toEqual([`/backends/${K}-be-b3`]);
    });

    it("a model region exemption widens that model only", () => {
      const e = ex("exm_r2", { control: "regions.allowed", scope: { level: "model", projectId: P2, modelId: M3 }, relaxation: { kind: "allow", values: ["westeurope"] } });
      const after = applyExemptions(BASE, [e]);
      expect(changedRefs(BASE, after)).toEqual([`backend:${K}-be-b3w`, `backend:${K}-pool-${P2}-${M3}`]);
      expect(after.projects[1]!.models![0]!.settings).toEqual({ exempt: { "regions.allowed": { add: ["westeurope"] } } });
    });

    it("a models.allowed exemption makes a model routable in that project", () => {
      const e = ex("exm_m1", { control: "models.allowed", scope: { level: "project", projectId: P2 }, relaxation: { kind: "allow", values: ["o3"] } });
      const after = applyExemptions(BASE, [e]);
      expect(apiXml(BASE, P2)).toContain('<set-variable name="aigov-models" value="gpt-4o"/>');
      expect(apiXml(after, P2)).toContain('<set-variable name="aigov-models" value="gpt-4o|o3"/>');
      expect(changedRefs(BASE, after)).toEqual([`backend:${K}-be-b4`, `backend:${K}-pool-${P2}-${M4}`, `policy:api/${K}-${P2}`]);
    });

    it("a dataClass.allowed exemption adds the class to the model's header check", () => {
      const e = ex("exm_d1", { control: "dataClass.allowed", scope: { level: "model", projectId: P1, modelId: M1 }, relaxation: { kind: "allow", values: ["internal"] } });
      const after = applyExemptions(BASE, [e]);
      expect(changedRefs(BASE, after)).toEqual([`policy:api/${K}-${P1}`]);
      const xml = apiXml(after, P1);
      expect(xml).toContain('<set-variable name="aigov-data-classes" value="internal|public"/>');
      // M2 keeps its public-only check: the blocks differ now.
      expect(xml).toContain('<set-variable name="aigov-data-classes" value="public"/>');
      expect(xml.match(/name="aigov-data-classes"/g)).toHaveLength(2);
    });

    it("off lifts the restriction inside the scope; exemptions of one control and scope add up", () => {
      const off = applyExemptions(BASE, [ex("exm_o", { control: "regions.allowed", scope: { level: "project", projectId: P1 }, relaxation: { kind: "off" } })]);
      expect(pool(off, P1, M2)).toEqual([`/backends/${K}-be-b2`, `/backends/${K}-be-b2w`]);
      const two = applyExemptions(BASE, [
        ex("exm_b", { control: "dataClass.allowed", scope: { level: "project", projectId: P1 }, relaxation: { kind: "allow", values: ["secret", "internal"] } }),
        ex("exm_a", { control: "dataClass.allowed", scope: { level: "project", projectId: P1 }, relaxation: { kind: "allow", values: ["internal", "confidential"] } }),
      ]);
      expect(two.projects[0]!.settings).toMatchObject({ exempt: { "dataClass.allowed": { add: ["confidential", "internal", "secret"] } } });
    });

    it("without a restriction there is nothing to widen: the artifacts stay the baseline", () => {
      const open: CompilerInputIn = { ...BASE, settings: { ...BASE.settings, regions: {} } };
      const after = applyExemptions(open, [ex("exm_n", { control: "regions.allowed", scope: { level: "project", projectId: P2 }, relaxation: { kind: "allow", values: ["westeurope"] } })]);
      expect(changedRefs(open, after)).toEqual([]);
    });

    it("explains the widened list with the exempted scope", () => {
      const e = ex("exm_r3", { control: "regions.allowed", scope: { level: "model", projectId: P2, modelId: M3 }, relaxation: { kind: "allow", values: ["westeurope"] } });
      const entry = compile(applyExemptions(BASE, [e])).explain.find((x) => x.ref === `backend:${K}-pool-${P2}-${M3}` && x.control === "regions.allowed");
      expect(entry?.scope).toEqual({ level: "model", projectId: P2, modelId: M3 });
      expect(entry?.note).toBe("regions eastus, swedencentral, westeurope");
    });

    it("refuses unsupported scopes, relaxations and values", () => {
      const allow = (values: string[]) => ({ kind: "allow" as const, values });
      expect(exemptionUnsupported("regions.allowed", "project", allow(["westeurope"]))).toBeUndefined();
      expect(exemptionUnsupported("regions.allowed", "model", { kind: "off" })).toBeUndefined();
      expect(exemptionUnsupported("dataClass.allowed", "model", allow(["internal"]))).toBeUndefined();
      expect(exemptionUnsupported("models.allowed", "project", allow(["o3"]))).toBeUndefined();
      expect(exemptionUnsupported("regions.allowed", "tenant", allow(["westeurope"]))?.field).toBe("scope");
      expect(exemptionUnsupported("regions.allowed", "key", allow(["westeurope"]))?.field).toBe("scope");
      expect(exemptionUnsupported("models.allowed", "model", allow(["o3"]))?.field).toBe("scope");
      expect(exemptionUnsupported("regions.allowed", "project", { kind: "limit", value: 3 })?.field).toBe("relaxation");
      expect(exemptionUnsupported("regions.allowed", "project", allow(["West Europe"]))?.field).toBe("relaxation");
      expect(exemptionUnsupported("dataClass.allowed", "project", allow(["Internal"]))?.field).toBe("relaxation");
      expect(exemptionUnsupported("contentSafety", "project", allow(["x"]))?.field).toBe("relaxation");
      expect(exemptionUnsupported("headers.required", "project", { kind: "off" })?.field).toBe("control");
      // Unsupported exemptions are ignored by applyExemptions too (fail closed: the baseline).
      expect(applyExemptions(BASE, [ex("exm_t", { control: "regions.allowed", scope: { level: "tenant" }, relaxation: allow(["westeurope"]) })])).toEqual(BASE);
    });

    it("the exempt entry is compiler input only: the settings users write reject it, the tenant's too", () => {
      const entry = { exempt: { "regions.allowed": { add: ["westeurope"] } } };
      expect(Settings.safeParse(entry).success).toBe(false);
      expect(ModelSettings.safeParse(entry).success).toBe(false);
      expect(CompilerSettings.safeParse(entry).success).toBe(true);
      expect(CompilerModelSettings.safeParse(entry).success).toBe(true);
      expect(CompilerModelSettings.safeParse({ exempt: { "models.allowed": { add: ["o3"] } } }).success).toBe(false);
      expect(CompilerSettings.safeParse({ exempt: { "regions.allowed": { add: ["West Europe"] } } }).success).toBe(false);
      expect(() => compile({ ...BASE, settings: { ...BASE.settings, ...entry } as never })).toThrow(/invalid compiler input/);
    });
  });

  it("refuses what cannot be relaxed at a scope", () => {
    expect(exemptionUnsupported("regions.allowed", "project", { kind: "limit", value: 1 })?.field).toBe("relaxation");
    expect(exemptionUnsupported("headers.required", "project", { kind: "off" })?.field).toBe("control");
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
    const controls = [
      "tokens.perMinute",
      "tokens.quota",
      "requests.rate",
      "contentSafety",
      "semanticCache",
      "prompt.maxBytes",
      "metrics.tokens",
      "failover",
      "models.allowed",
      "regions.allowed",
      "dataClass.allowed",
    ] as const;
    const relaxations = fc.oneof(
      fc.constant({ kind: "off" as const }),
      fc.integer({ min: 1, max: 10_000_000 }).map((value) => ({ kind: "limit" as const, value })),
      fc.constantFrom(2, 4, 6).map((t) => ({ kind: "thresholds" as const, categories: { Hate: t, Violence: t } })),
      // Values valid for every allow-list: regions, model names (o3 is outside the tenant's list) and data classes.
      fc.subarray(["westeurope", "o3", "gpt-4o", "internal", "eastus"], { minLength: 1 }).map((values) => ({ kind: "allow" as const, values })),
    );
    let applied = 0;
    let widened = 0;
    fc.assert(
      fc.property(fc.constantFrom(...scopes), fc.constantFrom(...controls), relaxations, (scope, control, relaxation) => {
        if (exemptionUnsupported(control, scope.level, relaxation)) return;
        applied += 1;
        const after = applyExemptions(BASE, [{ id: "exm_p", control, scope, relaxation }]);
        // The models inside the scope: their pools and single backends are the scope's too (failover
        // shapes them; an allow-list exemption adds backends, pools or whole models).
        const inScope = BASE.projects.find((p) => p.id === scope.projectId)!.models!.filter((m) => scope.level === "project" || (scope.level === "model" && m.id === scope.modelId));
        const allowed = (ref: string) =>
          ref === `policy:api/${K}-${scope.projectId}` ||
          ref.includes(`${K}-${scope.projectId}-${EXEMPTION_TIER_PREFIX}`) ||
          inScope.some((m) => ref === `backend:${K}-pool-${scope.projectId}-${m.id}` || m.backends.some((b) => ref === `backend:${K}-be-${b.id}`));
        const changed = changedRefs(BASE, after);
        for (const ref of changed) expect(allowed(ref), `${control} ${JSON.stringify(scope)} ${JSON.stringify(relaxation)} changed ${ref}`).toBe(true);
        if (changed.length && relaxation.kind === "allow") widened += 1;
      }),
      { numRuns: 250, seed: 7 },
    );
    expect(applied).toBeGreaterThan(30);
    // The allow-list generators do reach changes (not only no-ops).
    expect(widened).toBeGreaterThan(3);
  });
});
