import { describe, expect, it } from "vitest";
import { CompilerModelSettings, CompilerSettings, CONTROL_IDS, CONTROLS, mergeSettings, ModelSettings, Settings } from "../../src/policy/settings.js";

const S = (s: unknown) => Settings.parse(s);
const M = (s: unknown) => ModelSettings.parse(s);

describe("mergeSettings precedence", () => {
  it("values: the most specific scope that sets a field wins, field by field", () => {
    const eff = mergeSettings(
      S({ tokens: { perMinute: { limit: 1000, estimatePromptTokens: true } } }),
      S({ tokens: { perMinute: { limit: 5000 } } }),
      M({ tokens: { perMinute: { per: "project" } } }),
    );
    expect(eff["tokens.perMinute"]).toEqual({
      value: { limit: 5000, per: "project", estimatePromptTokens: true },
      scope: "model",
      sources: ["tenant", "project", "model"],
    });
  });

  it("a project may raise a tenant value; a model may override its project", () => {
    expect(mergeSettings(S({ requests: { rate: { calls: 10 } } }), S({ requests: { rate: { calls: 100 } } }))["requests.rate"]?.value.calls).toBe(100);
    const eff = mergeSettings(S({ tokens: { quota: { limit: 10 } } }), S({ tokens: { quota: { limit: 20 } } }), M({ tokens: { quota: { limit: 5 } } }));
    expect(eff["tokens.quota"]?.value.limit).toBe(5);
    expect(eff["tokens.quota"]?.scope).toBe("model");
  });

  it("enabled:false switches a control off below, and a lower scope can switch it back on", () => {
    const tenant = S({ contentSafety: { shieldPrompt: true } });
    expect(mergeSettings(tenant, S({ contentSafety: { enabled: false } }))["contentSafety"]).toBeUndefined();
    const back = mergeSettings(tenant, S({ contentSafety: { enabled: false } }), M({ contentSafety: { enabled: true } }));
    expect(back.contentSafety?.value.shieldPrompt).toBe(true);
  });

  it("allow-list exemptions (compiler input only) are unioned in after the intersection, at project and model scope", () => {
    const tenant = S({ regions: { allowed: ["eastus", "swedencentral"] }, models: { allowed: ["gpt-4o"] } });
    const project = CompilerSettings.parse({ regions: { allowed: ["swedencentral"] }, exempt: { "regions.allowed": { add: ["westeurope"] }, "models.allowed": { add: ["o3"] } } });
    const model = CompilerModelSettings.parse({ regions: { allowed: ["eastus"] }, exempt: { "regions.allowed": { add: ["norwayeast"] } } });
    // tenant ∩ project ∩ model = [] — then the project's and the model's exemptions.
    expect(mergeSettings(tenant, project, model)["regions.allowed"]).toEqual({ value: ["norwayeast", "westeurope"], scope: "model", sources: ["tenant", "project", "model"] });
    expect(mergeSettings(tenant, project)["regions.allowed"]?.value).toEqual(["swedencentral", "westeurope"]);
    expect(mergeSettings(tenant, project)["models.allowed"]).toEqual({ value: ["gpt-4o", "o3"], scope: "project", sources: ["tenant", "project"] });
    // off lifts the restriction inside the scope; with no list anywhere there is nothing to widen.
    expect(mergeSettings(tenant, CompilerSettings.parse({ exempt: { "regions.allowed": { off: true } } }))["regions.allowed"]).toBeUndefined();
    expect(mergeSettings(undefined, project)["dataClass.allowed"]).toBeUndefined();
    expect(mergeSettings(S({}), CompilerSettings.parse({ exempt: { "dataClass.allowed": { add: ["internal"] } } }))["dataClass.allowed"]).toBeUndefined();
    // Users cannot write it: the tenant, project and model settings schemas refuse the field.
    expect(Settings.safeParse({ exempt: {} }).success).toBe(false);
    expect(ModelSettings.safeParse({ exempt: {} }).success).toBe(false);
  });

  it("an empty control object enables the control with defaults", () => {
    expect(mergeSettings(S({ correlationId: {} })).correlationId?.value).toEqual({ header: "x-correlation-id" });
    expect(mergeSettings(S({ headers: { stripSecrets: {} } }))["headers.stripSecrets"]?.value).toEqual({ extra: [] });
  });

  it("a limit without a number anywhere is off", () => {
    expect(mergeSettings(S({ tokens: { perMinute: { per: "key" } } }))["tokens.perMinute"]).toBeUndefined();
  });

  it("allow-lists intersect: lower scopes only narrow; unset = no restriction; [] = nothing", () => {
    const eff = mergeSettings(S({ regions: { allowed: ["eastus", "swedencentral", "westeurope"] } }), S({}), M({ regions: { allowed: ["westeurope", "swedencentral", "brazilsouth"] } }));
    expect(eff["regions.allowed"]).toEqual({ value: ["swedencentral", "westeurope"], scope: "model", sources: ["tenant", "model"] });
    expect(mergeSettings(S({}), S({}))["regions.allowed"]).toBeUndefined();
    expect(mergeSettings(S({ models: { allowed: ["gpt-4o"] } }), S({ models: { allowed: [] } }))["models.allowed"]?.value).toEqual([]);
  });

  it("requirement lists union; a header's allowed values intersect", () => {
    const eff = mergeSettings(
      S({ headers: { required: [{ name: "X-Env", values: ["dev", "test", "prod"] }] } }),
      S({ headers: { required: [{ name: "x-env", values: ["prod", "dev", "qa"] }, { name: "X-Team" }] } }),
    );
    expect(eff["headers.required"]?.value).toEqual([{ name: "x-env", values: ["dev", "prod"] }, { name: "x-team" }]);
    // Values compare ignoring case, as the gateway compares them; none in common leaves none (nothing passes).
    const folded = mergeSettings(S({ headers: { required: [{ name: "x-env", values: ["Prod", "dev"] }] } }), S({ headers: { required: [{ name: "x-env", values: ["prod"] }] } }));
    expect(folded["headers.required"]?.value).toEqual([{ name: "x-env", values: ["Prod"] }]);
    const disjoint = mergeSettings(S({ headers: { required: [{ name: "x-env", values: ["prod"] }] } }), S({ headers: { required: [{ name: "x-env", values: ["dev"] }] } }));
    expect(disjoint["headers.required"]?.value).toEqual([{ name: "x-env", values: [] }]);
  });

  it("content-safety categories merge per category and blocklists union", () => {
    const eff = mergeSettings(
      S({ contentSafety: { categories: { Hate: 2 }, blocklists: ["b", "a"] } }),
      S({ contentSafety: { blocklists: ["c"] } }),
      M({ contentSafety: { categories: { Violence: 6 }, blocklists: ["a"] } }),
    );
    expect(eff.contentSafety?.value.categories).toEqual([
      { name: "Hate", threshold: 2 },
      { name: "SelfHarm", threshold: 4 },
      { name: "Sexual", threshold: 4 },
      { name: "Violence", threshold: 6 },
    ]);
    expect(eff.contentSafety?.value.blocklists).toEqual(["a", "b", "c"]);
  });

  it("null removes a higher scope's scalar", () => {
    expect(mergeSettings(S({ prompt: { maxBytes: 1000 } }), S({ prompt: { maxBytes: null } }))["prompt.maxBytes"]).toBeUndefined();
    expect(mergeSettings(S({ prompt: { maxBytes: 1000 } }), S({}))["prompt.maxBytes"]?.value).toBe(1000);
  });

  it("failover: circuit breaker fields merge down to the model; retry is tenant/project only", () => {
    const eff = mergeSettings(S({ failover: { retry: { count: 2 } } }), S({ failover: { circuitBreaker: { failureCount: 5 } } }), M({ failover: { circuitBreaker: { tripDuration: "PT5M" } } }));
    expect(eff.failover?.value.circuitBreaker).toMatchObject({ failureCount: 5, tripDuration: "PT5M", failureInterval: "PT1M" });
    expect(eff.failover?.value.retry).toEqual({ enabled: true, count: 2 });
    expect(ModelSettings.safeParse({ failover: { retry: { count: 2 } } }).success).toBe(false);
  });
});

describe("control catalog", () => {
  it("every control id is catalogued, and the model schema accepts exactly the model-scope controls", () => {
    expect(Object.keys(CONTROLS).sort()).toEqual([...CONTROL_IDS].sort());
    expect(ModelSettings.safeParse({ semanticCache: {} }).success).toBe(false);
    expect(ModelSettings.safeParse({ models: { allowed: ["x"] } }).success).toBe(false);
    expect(ModelSettings.safeParse({ headers: { required: [] } }).success).toBe(false);
    expect(ModelSettings.safeParse({ tokens: { perMinute: { limit: 1 } }, contentSafety: {}, regions: { allowed: [] }, dataClass: { allowed: [] }, failover: {} }).success).toBe(true);
    for (const id of CONTROL_IDS) {
      const top = id.split(".")[0]!;
      expect(top in ModelSettings.shape, id).toBe(CONTROLS[id].scopes.includes("model"));
    }
  });

  it("rejects unknown fields (strict schemas)", () => {
    expect(Settings.safeParse({ tokens: { perMinute: { limit: 1, burst: 2 } } }).success).toBe(false);
    expect(Settings.safeParse({ unknown: true }).success).toBe(false);
  });
});
