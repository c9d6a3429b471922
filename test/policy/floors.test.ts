import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyFloors, clampToFloor, heldToLiveTenant, loosenings } from "../../src/policy/floors.js";
import type { CompilerInputIn } from "../../src/policy/input.js";
import { mergeSettings, type Settings } from "../../src/policy/settings.js";

const tenant: Settings = {
  tokens: { perMinute: { limit: 1000, per: "key", estimatePromptTokens: true }, quota: { limit: 1_000_000, period: "Monthly", per: "project" } },
  requests: { rate: { calls: 100, renewalPeriodSeconds: 60 } },
  contentSafety: { shieldPrompt: true, categories: { Hate: 2 } },
  prompt: { maxBytes: 65536 },
  correlationId: {},
  headers: { stripSecrets: {} },
  metrics: { tokens: { dimensions: ["project", "key"] } },
  semanticCache: { enabled: false },
};

const paths = (scope: unknown) => loosenings(tenant, scope).map((l) => l.path);

describe("tenant controls are floors", () => {
  it("tightening is fine; every way of loosening is named by its field", () => {
    expect(paths({ tokens: { perMinute: { limit: 500 }, quota: { limit: 10, period: "Yearly" } }, requests: { rate: { calls: 50, renewalPeriodSeconds: 60 } }, contentSafety: { categories: { Hate: 0, Violence: 2 }, blocklists: ["x"] } })).toEqual([]);
    expect(paths({ prompt: { maxBytes: 1024 }, metrics: { tokens: { dimensions: ["project", "key", "model"] } }, semanticCache: { enabled: false } })).toEqual([]);
    expect(paths({ tokens: { perMinute: { enabled: false } } })).toEqual(["tokens.perMinute.enabled"]);
    expect(paths({ tokens: { perMinute: { limit: 1001, estimatePromptTokens: false } } })).toEqual(["tokens.perMinute.limit", "tokens.perMinute.estimatePromptTokens"]);
    expect(paths({ tokens: { quota: { per: "key" } } })).toEqual(["tokens.quota.per"]);
    expect(paths({ tokens: { quota: { period: "Daily" } } })).toEqual(["tokens.quota.period"]);
    expect(paths({ requests: { rate: { calls: 101 } } })).toEqual(["requests.rate.calls"]);
    expect(paths({ requests: { rate: { calls: 100, renewalPeriodSeconds: 30 } } })).toEqual(["requests.rate.renewalPeriodSeconds"]);
    expect(paths({ requests: { rate: { calls: 50, renewalPeriodSeconds: 30 } } })).toEqual([]);
    expect(paths({ contentSafety: { enabled: false } })).toEqual(["contentSafety.enabled"]);
    expect(paths({ contentSafety: { shieldPrompt: false, outputType: "EightSeverityLevels", categories: { Hate: 3, Sexual: 5 } } })).toEqual([
      "contentSafety.shieldPrompt",
      "contentSafety.outputType",
      "contentSafety.categories.Hate",
      "contentSafety.categories.Sexual",
    ]);
    expect(paths({ prompt: { maxBytes: null } })).toEqual(["prompt.maxBytes"]);
    expect(paths({ prompt: { maxBytes: 65537 } })).toEqual(["prompt.maxBytes"]);
    expect(paths({ correlationId: { enabled: false }, headers: { stripSecrets: { enabled: false } } })).toEqual(["correlationId.enabled", "headers.stripSecrets.enabled"]);
    expect(paths({ metrics: { tokens: { dimensions: ["model"], namespace: "elsewhere" } } })).toEqual(["metrics.tokens.dimensions", "metrics.tokens.namespace"]);
    expect(paths({ semanticCache: { scoreThreshold: 0.1 } })).toEqual(["semanticCache.enabled"]);
    // Failover is availability, not a guardrail; allow-lists and required headers only narrow.
    expect(paths({ failover: { enabled: false }, regions: { allowed: ["anywhere"] }, headers: { required: [{ name: "x-team" }] } })).toEqual([]);
  });

  it("a control the tenant does not set, or switched off, is no floor", () => {
    expect(loosenings({}, { tokens: { perMinute: { enabled: false } }, contentSafety: { enabled: false } })).toEqual([]);
    expect(loosenings({ tokens: { perMinute: { enabled: false, limit: 10 } } }, { tokens: { perMinute: { limit: 1_000_000 } } })).toEqual([]);
    expect(loosenings(undefined, { tokens: { perMinute: { limit: 5 } } })).toEqual([]);
  });

  it("clamping undoes exactly the loosenings, and the input is unchanged when nothing loosens", () => {
    const loose = { tokens: { perMinute: { limit: 5000, per: "key" as const, enabled: false } }, contentSafety: { categories: { Hate: 6, Violence: 1 } }, prompt: { maxBytes: null } };
    expect(clampToFloor(tenant, loose)).toEqual({ tokens: { perMinute: { limit: 1000, per: "key" } }, contentSafety: { categories: { Hate: 2, Violence: 1 } }, prompt: { maxBytes: 65536 } });
    expect(loose.tokens.perMinute.limit).toBe(5000); // not mutated
    const input: CompilerInputIn = { tenantId: "t", settings: tenant, projects: [{ id: "prj_a", name: "a", settings: { tokens: { perMinute: { limit: 10 } } }, models: [] }] };
    expect(applyFloors(input)).toBe(input);
    const loosened = applyFloors({ ...input, projects: [{ id: "prj_a", name: "a", settings: { tokens: { perMinute: { limit: 9999 } } }, models: [{ id: "m", name: "m", provider: "openai", backends: [], settings: { contentSafety: { enabled: false } } } as never] }] });
    expect(loosened.projects[0]!.settings).toEqual({ tokens: { perMinute: { limit: 1000 } } });
    expect(loosened.projects[0]!.models![0]!.settings).toEqual({ contentSafety: {} });
  });

  it("whatever a project or model sets, the merged limits after clamping are never looser than the tenant's", () => {
    const limit = fc.integer({ min: 1, max: 10_000 });
    const scope = fc.record(
      {
        tokens: fc.record({ perMinute: fc.record({ enabled: fc.boolean(), limit, per: fc.constantFrom("key" as const, "project" as const) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
        contentSafety: fc.record({ enabled: fc.boolean(), categories: fc.record({ Hate: fc.integer({ min: 0, max: 7 }), Violence: fc.integer({ min: 0, max: 7 }) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
        prompt: fc.record({ maxBytes: fc.option(limit, { nil: null }) }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(limit, scope, scope, (t, project, model) => {
        const ten: Settings = { tokens: { perMinute: { limit: t } }, contentSafety: { categories: { Hate: 3 } }, prompt: { maxBytes: t } };
        const eff = mergeSettings(ten, clampToFloor(ten, project) as Settings, clampToFloor(ten, model) as never);
        expect(eff["tokens.perMinute"]?.value.limit).toBeLessThanOrEqual(t);
        expect(eff.contentSafety?.value.categories.find((c) => c.name === "Hate")?.threshold).toBeLessThanOrEqual(3);
        expect(eff.contentSafety?.value.categories.find((c) => c.name === "Violence")?.threshold).toBeLessThanOrEqual(4);
        expect(eff["prompt.maxBytes"]?.value).toBeLessThanOrEqual(t);
      }),
      { numRuns: 300 },
    );
  });
});

describe("a rollback's tenant settings are the target's held to the live tenant's floors (heldToLiveTenant)", () => {
  it("keeps the target's tightenings, clamps what loosens a live floor, intersects allow-lists and takes live-only controls", () => {
    const target: Settings = {
      tokens: { perMinute: { limit: 5000 }, quota: { limit: 10, period: "Yearly" } },
      regions: { allowed: ["eastus", "westeurope"] },
      models: { allowed: ["gpt-4o"] },
      headers: { required: [{ name: "x-team", values: ["a", "b"] }] },
      failover: { retry: { enabled: false } },
    };
    const live: Settings = {
      tokens: { perMinute: { limit: 1000, estimatePromptTokens: true } },
      regions: { allowed: ["westeurope", "northeurope"] },
      contentSafety: { categories: { Hate: 2 } },
      headers: { required: [{ name: "X-Team", values: ["b", "c"] }, { name: "x-cost-center" }] },
    };
    expect(heldToLiveTenant(target, live)).toEqual({
      // a limit the live tenant lowered: clamped, with the live fields the target leaves unset
      tokens: { perMinute: { limit: 1000, estimatePromptTokens: true }, quota: { limit: 10, period: "Yearly" } },
      // an allow-list: the intersection
      regions: { allowed: ["westeurope"] },
      // a control only the target sets: kept (the tenant's own tightening then)
      models: { allowed: ["gpt-4o"] },
      // a control only the live tenant sets: taken from live
      contentSafety: { categories: { Hate: 2 } },
      headers: { required: [{ name: "x-team", values: ["b"] }, { name: "x-cost-center" }] },
      failover: { retry: { enabled: false } },
    });
    // The effective settings are never looser than the live tenant's.
    const eff = mergeSettings(heldToLiveTenant(target, live));
    expect(eff["tokens.perMinute"]?.value.limit).toBe(1000);
    expect(eff["regions.allowed"]?.value).toEqual(["westeurope"]);
    expect(eff.contentSafety?.value.categories.find((c) => c.name === "Hate")?.threshold).toBe(2);
  });

  it("a tighter target is the target (a rollback may tighten); a control switched off at the target stays on when live has it in force", () => {
    const target: Settings = { tokens: { perMinute: { limit: 1000 } }, contentSafety: { enabled: false }, semanticCache: { scoreThreshold: 0.1 } };
    const live: Settings = { tokens: { perMinute: { limit: 2000 } }, contentSafety: { shieldPrompt: true }, semanticCache: { enabled: false } };
    const held = heldToLiveTenant(target, live)!;
    expect(held.tokens).toEqual({ perMinute: { limit: 1000 } });
    expect(held.contentSafety).toEqual({ shieldPrompt: true });
    expect(mergeSettings(held).semanticCache).toBeUndefined();
    // A control the live tenant switched off holds nothing: the target's stays.
    expect(heldToLiveTenant({ prompt: { maxBytes: 1024 }, correlationId: {} }, { prompt: { maxBytes: 4096 }, correlationId: { enabled: false } })).toEqual({ prompt: { maxBytes: 1024 }, correlationId: {} });
    expect(heldToLiveTenant(target, undefined)).toBe(target);
    expect(heldToLiveTenant(undefined, live)).toBe(live);
  });
});
