import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyFloors, clampToFloor, loosenings } from "../../src/policy/floors.js";
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
