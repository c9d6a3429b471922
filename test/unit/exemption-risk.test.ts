import { describe, expect, it } from "vitest";
import { notLooser, riskOf } from "../../src/domain/exemptions/policy.js";
import { DEFAULT_HIGH_RISK } from "../../src/domain/exemptions/schema.js";
import { mergeSettings, type Settings } from "../../src/policy/settings.js";

const P = { level: "project" as const, projectId: "prj_00000000000000000001" };
/** What is in force at project level, and for each model given. */
const inForce = (tenant: Settings, project: Settings = {}, models: Settings[] = []) => [mergeSettings(tenant, project), ...models.map((m) => mergeSettings(tenant, project, m as never))];

describe("exemption risk by effect", () => {
  it("breadth: the tenant and a control switched off for a project are high risk; a model or a key never", () => {
    expect(riskOf({ control: "tokens.quota", scope: { level: "tenant" }, relaxation: { kind: "limit", value: 2 } }, DEFAULT_HIGH_RISK, []).risk).toBe("high");
    expect(riskOf({ control: "semanticCache", scope: P, relaxation: { kind: "off" } }, DEFAULT_HIGH_RISK, []).risk).toBe("high");
    const model = { level: "model" as const, projectId: P.projectId, modelId: "mdl_00000000000000000001" };
    expect(riskOf({ control: "contentSafety", scope: model, relaxation: { kind: "off" } }, DEFAULT_HIGH_RISK, [])).toEqual({ risk: "standard", why: "it applies to one model" });
    const key = { level: "key" as const, projectId: P.projectId, keyId: "key_00000000000000000001" };
    expect(riskOf({ control: "tokens.perMinute", scope: key, relaxation: { kind: "limit", value: 1e9 } }, DEFAULT_HIGH_RISK, inForce({ tokens: { perMinute: { limit: 10 } } })).risk).toBe("standard");
  });

  it("limits: at least limitFactor times the limit in force at the project (project over tenant); nothing to raise is standard", () => {
    const settings = inForce({ tokens: { perMinute: { limit: 1000 } }, requests: { rate: { calls: 60 } } }, { tokens: { perMinute: { limit: 200 } } });
    const limit = (control: "tokens.perMinute" | "requests.rate" | "tokens.quota" | "prompt.maxBytes", value: number) => riskOf({ control, scope: P, relaxation: { kind: "limit", value } }, DEFAULT_HIGH_RISK, settings);
    expect(limit("tokens.perMinute", 1999).risk).toBe("standard");
    expect(limit("tokens.perMinute", 2000)).toEqual({ risk: "high", why: "2000 is at least 10 times the tokens.perMinute limit in force (200)" });
    expect(limit("requests.rate", 599).risk).toBe("standard");
    expect(limit("requests.rate", 600).risk).toBe("high");
    expect(limit("tokens.quota", 1e12).why).toBe("tokens.quota is not configured in the project, so the exemption changes nothing there");
    expect(riskOf({ control: "prompt.maxBytes", scope: P, relaxation: { kind: "limit", value: 10_240 } }, DEFAULT_HIGH_RISK, inForce({ prompt: { maxBytes: 1024 } })).risk).toBe("high");
    expect(riskOf({ control: "tokens.perMinute", scope: P, relaxation: { kind: "limit", value: 2000 } }, { ...DEFAULT_HIGH_RISK, limitFactor: 11 }, settings).risk).toBe("standard");
  });

  it("limits set only on a model count: the exemption raises the model's too, so the lowest in force is the measure", () => {
    const modelOnly = inForce({}, {}, [{ tokens: { perMinute: { limit: 1000 } } }, {}]);
    expect(riskOf({ control: "tokens.perMinute", scope: P, relaxation: { kind: "limit", value: 1_000_000 } }, DEFAULT_HIGH_RISK, modelOnly)).toEqual({ risk: "high", why: "1000000 is at least 10 times the tokens.perMinute limit in force (1000)" });
    const cs = inForce({}, {}, [{ contentSafety: { enabled: true } }]);
    expect(riskOf({ control: "contentSafety", scope: P, relaxation: { kind: "thresholds", categories: { Hate: 6, Sexual: 6, SelfHarm: 6, Violence: 6 } } }, DEFAULT_HIGH_RISK, cs).risk).toBe("high");
  });

  it("thresholds: high only when every category would block at thresholdLevel or above", () => {
    const settings = inForce({ contentSafety: { enabled: true, categories: { Hate: 2 } } });
    const raise = (categories: Record<string, number>, rules = DEFAULT_HIGH_RISK) => riskOf({ control: "contentSafety", scope: P, relaxation: { kind: "thresholds", categories } }, rules, settings).risk;
    expect(raise({ Hate: 6 })).toBe("standard");
    expect(raise({ Hate: 6, Sexual: 6, SelfHarm: 6 })).toBe("standard"); // Violence stays at the default 4
    expect(raise({ Hate: 6, Sexual: 6, SelfHarm: 6, Violence: 7 })).toBe("high");
    expect(raise({ Hate: 6, Sexual: 6, SelfHarm: 6, Violence: 7 }, { ...DEFAULT_HIGH_RISK, thresholdLevel: 7 })).toBe("standard");
    expect(riskOf({ control: "contentSafety", scope: P, relaxation: { kind: "thresholds", categories: { Hate: 7, Sexual: 7, SelfHarm: 7, Violence: 7 } } }, DEFAULT_HIGH_RISK, inForce({})).risk).toBe("standard");
  });

  it("allow-lists: more than allowValues values the project does not already admit", () => {
    const settings = inForce({ regions: { allowed: ["westeurope", "northeurope"] } });
    const allow = (values: string[]) => riskOf({ control: "regions.allowed", scope: P, relaxation: { kind: "allow", values } }, DEFAULT_HIGH_RISK, settings);
    expect(allow(["westeurope", "northeurope", "a1", "a2", "a3", "a4", "a5"]).risk).toBe("standard");
    expect(allow(["a1", "a2", "a3", "a4", "a5", "a6"])).toEqual({ risk: "high", why: "it adds 6 values to regions.allowed (more than 5)" });
    // The same value twice is one value; a list nobody restricts is not widened at all.
    expect(allow(["a1", "a1", "a2", "a2", "a3", "a3", "a4"]).risk).toBe("standard");
    expect(riskOf({ control: "regions.allowed", scope: P, relaxation: { kind: "allow", values: ["a1", "a2", "a3", "a4", "a5", "a6"] } }, DEFAULT_HIGH_RISK, inForce({})).risk).toBe("standard");
  });
});

describe("a project or model relaxation that relaxes nothing (notLooser)", () => {
  it("a limit at or below the lowest in force, thresholds at or below every filter's, values every list holds; anything looser somewhere passes", () => {
    // The project holds 800 a minute; one model 300 of its own; a model with none takes the project's.
    const limits = inForce({ tokens: { perMinute: { limit: 1000 } } }, { tokens: { perMinute: { limit: 800 } } }, [{ tokens: { perMinute: { limit: 300 } } }, {}]);
    const limit = (value: number) => notLooser({ control: "tokens.perMinute", relaxation: { kind: "limit", value } }, limits);
    expect(limit(300)).toBe("300 is not above the tokens.perMinute limit in force (300, the lowest in the project)");
    expect(limit(100)).toBeDefined();
    expect(limit(301)).toBeUndefined();
    // Configured nowhere: riskOf's latent case, not this one.
    expect(notLooser({ control: "tokens.quota", relaxation: { kind: "limit", value: 1 } }, limits)).toBeUndefined();

    const cs = inForce({ contentSafety: { enabled: true, categories: { Hate: 2, Violence: 4 } } });
    const thresholds = (categories: Record<string, number>) => notLooser({ control: "contentSafety", relaxation: { kind: "thresholds", categories } }, cs);
    expect(thresholds({ Hate: 2, Violence: 3 })).toBe("no category's threshold is above the one in force");
    expect(thresholds({ Hate: 3 })).toBeUndefined();

    const regions = inForce({ regions: { allowed: ["westeurope", "northeurope"] } }, {}, [{ regions: { allowed: ["westeurope"] } }]);
    const allow = (values: string[]) => notLooser({ control: "regions.allowed", relaxation: { kind: "allow", values } }, regions);
    expect(allow(["westeurope"])).toBe("every value is already allowed by regions.allowed");
    // northeurope is new for the model that allows only westeurope.
    expect(allow(["northeurope"])).toBeUndefined();
    // Switching a control off always relaxes it.
    expect(notLooser({ control: "tokens.perMinute", relaxation: { kind: "off" } }, limits)).toBeUndefined();
  });
});
