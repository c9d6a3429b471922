import { gatewayNames } from "../../src/policy/names.js";
import { describe, expect, it } from "vitest";
import { compile, CONSUMPTION_POLICY_SIZE_LIMIT_BYTES, POLICY_SIZE_LIMIT_BYTES, type CompileResult } from "../../src/policy/compile.js";
import { type PolicyCompileError, type PolicySizeError } from "../../src/policy/errors.js";
import * as X from "../../src/policy/expressions.js";
import { type CompilerInputIn, MAX_PROJECT_KEY_TIERS, MAX_TENANT_KEY_TIERS } from "../../src/policy/input.js";
import { type GatewayArtifact, type PolicyArtifact } from "../../src/ports/gateway.js";
import { GOLDEN_CASES, MI, model, project, tenant } from "./fixtures.js";
import { validateCompiled } from "./validator.js";

/** The fixtures' tenant ("contoso"): its artifact ids and their prefix. */
const N = gatewayNames("contoso");
const K = N.prefix;

const policies = (r: CompileResult) => r.artifacts.filter((a): a is PolicyArtifact => a.kind === "policy");
const apiPolicy = (r: CompileResult, projectId: string) => {
  const p = policies(r).find((a) => a.scope.type === "api" && a.scope.apiId === N.api(projectId));
  if (!p) throw new Error(`no policy for ${projectId}`);
  return p.xml;
};
const ids = (as: GatewayArtifact[]) => as.map((a) => ("id" in a ? a.id : JSON.stringify(a.scope)));

function expectCompileError(input: CompilerInputIn, code: string, pattern?: RegExp) {
  try {
    compile(input);
  } catch (e) {
    expect((e as Error).name).toMatch(/^Policy(Compile|Size)Error$/);
    expect((e as PolicyCompileError).code).toBe(code);
    if (pattern) expect((e as Error).message).toMatch(pattern);
    return e as PolicyCompileError;
  }
  throw new Error("expected compile to throw");
}

describe("compile", () => {
  it("is deterministic: byte-identical output for the same input", () => {
    for (const input of Object.values(GOLDEN_CASES)) expect(JSON.stringify(compile(input))).toBe(JSON.stringify(compile(structuredClone(input))));
  });

  it("lists artifacts in publish order: named values, single backends, pools, fragments, APIs, products, policies", () => {
    const order = ["namedValue", "single", "pool", "fragment", "api", "product", "policy"];
    const rank = (a: GatewayArtifact) => order.indexOf(a.kind === "backend" ? (a.type === "Single" ? "single" : "pool") : a.kind);
    for (const name of ["pool-failover", "per-key-token-limit"]) {
      const ranks = compile(GOLDEN_CASES[name]!).artifacts.map(rank);
      expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
      expect(ranks).not.toContain(-1);
    }
  });

  it("emits the API every project policy attaches to, and a product per offered tier linked to it", () => {
    const r = compile(GOLDEN_CASES["per-key-token-limit"]!);
    const entities = r.artifacts.filter((a) => a.kind === "api" || a.kind === "product");
    expect(entities).toEqual([
      {
        kind: "api",
        id: `${K}-prj_alpha`,
        displayName: "Project prj_alpha (prj_alpha)",
        path: `aigov/${N.key}/prj_alpha`,
        protocols: ["https"],
        subscriptionRequired: true,
        subscriptionKeyHeaderName: "api-key",
        // The request shapes the gateway serves (ADR 009): OpenAI style, Azure OpenAI v1, Azure OpenAI deployments.
        operations: [
          { id: "v1-chat-completions", method: "POST", urlTemplate: "/v1/chat/completions", displayName: "chat/completions (OpenAI style)" },
          { id: "openai-v1-chat-completions", method: "POST", urlTemplate: "/openai/v1/chat/completions", displayName: "chat/completions (Azure OpenAI v1)" },
          { id: "deployment-chat-completions", method: "POST", urlTemplate: "/openai/deployments/{deployment-id}/chat/completions", displayName: "chat/completions (Azure OpenAI deployment)" },
          { id: "v1-completions", method: "POST", urlTemplate: "/v1/completions", displayName: "completions (OpenAI style)" },
          { id: "openai-v1-completions", method: "POST", urlTemplate: "/openai/v1/completions", displayName: "completions (Azure OpenAI v1)" },
          { id: "deployment-completions", method: "POST", urlTemplate: "/openai/deployments/{deployment-id}/completions", displayName: "completions (Azure OpenAI deployment)" },
          { id: "v1-embeddings", method: "POST", urlTemplate: "/v1/embeddings", displayName: "embeddings (OpenAI style)" },
          { id: "openai-v1-embeddings", method: "POST", urlTemplate: "/openai/v1/embeddings", displayName: "embeddings (Azure OpenAI v1)" },
          { id: "deployment-embeddings", method: "POST", urlTemplate: "/openai/deployments/{deployment-id}/embeddings", displayName: "embeddings (Azure OpenAI deployment)" },
          { id: "v1-responses", method: "POST", urlTemplate: "/v1/responses", displayName: "responses (OpenAI style)" },
          { id: "openai-v1-responses", method: "POST", urlTemplate: "/openai/v1/responses", displayName: "responses (Azure OpenAI v1)" },
        ],
      },
      {
        kind: "product",
        id: `${K}-prj_alpha-gold`,
        displayName: "Project prj_alpha (prj_alpha), key tier gold",
        description: "Premium keys",
        subscriptionRequired: true,
        approvalRequired: false,
        state: "published",
        apis: [`${K}-prj_alpha`],
      },
    ]);
    // No subscriptions: keys never change what compiles.
    expect(r.artifacts.some((a) => a.kind === "subscription")).toBe(false);
  });

  it("a project with the models pillar off still gets its API (its policy and products need it), with no operations", () => {
    const off = project("prj_off", [model("m2", "gpt-4o")], { pillars: { models: false, tools: true, agents: true }, keyTiers: ["gold"], description: "paused" });
    const r = compile(tenant([off], { keyTiers: [{ id: "gold", limits: { tokensPerMinute: 1000 } }] }));
    expect(validateCompiled(r.artifacts)).toEqual([]);
    const api = r.artifacts.find((a) => a.kind === "api");
    expect(api).toMatchObject({ id: `${K}-prj_off`, description: "paused", operations: [] });
    expect(r.artifacts.find((a) => a.kind === "product")).toMatchObject({ id: `${K}-prj_off-gold`, apis: [`${K}-prj_off`] });
  });

  it("blocked models vanish from every list and pool, and their backends are not published", () => {
    const r = compile(GOLDEN_CASES["deprecated-blocked"]!);
    const all = JSON.stringify(r.artifacts);
    expect(all).not.toContain("davinci");
    expect(ids(r.artifacts)).not.toContain(`${K}-be-davinci_eus`);
  });

  it("models outside models.allowed vanish like blocked ones", () => {
    const r = compile(tenant([project("prj_a", [model("m1", "gpt-4o"), model("m2", "o3")])], { settings: { models: { allowed: ["gpt-4o", "o1"] } } }));
    expect(apiPolicy(r, "prj_a")).toContain('value="gpt-4o"');
    expect(JSON.stringify(r.artifacts)).not.toContain(`${K}-be-m2_eus`);
  });

  it("deprecated models keep routing and carry Sunset/Deprecation headers", () => {
    const xml = apiPolicy(compile(GOLDEN_CASES["deprecated-blocked"]!), "prj_alpha");
    expect(xml).toContain('value="gpt-35-turbo|gpt-4|gpt-4o"');
    expect(xml).toContain('<set-variable name="aigov-sunset" value="Wed, 30 Sep 2026 00:00:00 GMT"/>');
    expect(xml).toContain('<set-header name="Sunset" exists-action="override">');
  });

  it("a project with the models pillar off compiles without routing, and other projects are unaffected", () => {
    const on = project("prj_on", [model("m1", "gpt-4o")]);
    const off = project("prj_off", [model("m2", "gpt-4o")], { pillars: { models: false, tools: true, agents: true }, keyTiers: ["gold"] });
    const settings = { correlationId: {}, contentSafety: {}, tokens: { perMinute: { limit: 100 } }, prompt: { maxBytes: 1000 } };
    const keyTiers = [{ id: "gold", limits: { tokensPerMinute: 1000 } }];
    const both = compile(tenant([on, off], { settings, keyTiers }));
    const onAlone = compile(tenant([on], { settings, keyTiers }));
    expect(validateCompiled(both.artifacts)).toEqual([]);
    const offXml = apiPolicy(both, "prj_off");
    for (const gone of ["llm-", "aigov-models", "set-backend-service", "include-fragment"]) expect(offXml).not.toContain(gone);
    for (const kept of ["x-correlation-id", "Payload Too Large"]) expect(offXml).toContain(kept);
    expect(ids(both.artifacts).filter((i) => i.includes("m2"))).toEqual([]);
    expect(apiPolicy(both, "prj_on")).toBe(apiPolicy(onAlone, "prj_on"));
    expect(policies(both).some((p) => p.scope.type === "product" && p.scope.productId === `${K}-prj_off-gold`)).toBe(true);
  });

  it("emits tier products only for the tiers a project offers", () => {
    const r = compile(GOLDEN_CASES["per-key-token-limit"]!);
    expect(policies(r).filter((p) => p.scope.type === "product").map((p) => (p.scope.type === "product" ? p.scope.productId : ""))).toEqual([`${K}-prj_alpha-gold`]);
    expect(apiPolicy(r, "prj_alpha")).not.toContain("2000");
  });

  it("per-key documents do not depend on the number of virtual keys", () => {
    const base = GOLDEN_CASES["per-key-token-limit"]!;
    const keys = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `key${i}`, projectId: "prj_alpha", ...(i % 3 === 0 ? { tier: "gold" } : {}) }));
    const few = compile({ ...base, virtualKeys: keys(10) });
    const many = compile({ ...base, virtualKeys: keys(100_000) });
    expect(many.sizes).toEqual(few.sizes);
    expect(JSON.stringify(many.artifacts)).toBe(JSON.stringify(few.artifacts));
  });

  it("rejects virtual keys in a tier the project does not offer", () => {
    expectCompileError({ ...GOLDEN_CASES["per-key-token-limit"]!, virtualKeys: [{ id: "k", projectId: "prj_alpha", tier: "bronze" }] }, "invalidInput", /does not offer tier bronze/);
  });

  describe("key tiers as key profiles (limits + model scope)", () => {
    const scoped = GOLDEN_CASES["key-tier-model-scope"]!;
    const shared = GOLDEN_CASES["shared-key-tier"]!;
    const productApis = (r: CompileResult, id: string) => {
      const p = r.artifacts.find((a) => a.kind === "product" && a.id === id);
      return p && p.kind === "product" ? p.apis : undefined;
    };

    it("narrows a tier's keys to the listed models that the project allows, with a 403 after the model is resolved", () => {
      const xml = apiPolicy(compile(scoped), "prj_alpha");
      // The intersection with the routable list: unknown (retired-model) and blocked (davinci-002) names drop out.
      expect(xml).toContain('<set-variable name="aigov-tier-models" value="gpt-4o-mini|o3"/>');
      expect(xml).not.toContain("retired-model");
      expect(xml).not.toContain("davinci");
      expect(xml).toContain('"code":"model_not_allowed"');
      expect(xml.indexOf('fragment-id="${K}-resolve-model"')).toBeLessThan(xml.indexOf("aigov-tier-models"));
      expect(xml.indexOf("aigov-tier-models")).toBeLessThan(xml.indexOf("aigov-model-group&quot;"));
      // A tier whose list covers every routable model adds nothing (kp_7b21e4a5f0 has only its rate-limit
      // when, besides its place in the list of the fail-closed tier guard).
      expect(xml.match(/== &quot;kp_7b21e4a5f0&quot;\)">/g)).toHaveLength(1);
      expect(xml.match(/== &quot;kp_7b21e4a5f0&quot;/g)).toHaveLength(2);
    });

    it("identifies a tier by its id: the product policy sets the id, the API policy compares the id string", () => {
      const r = compile(scoped);
      const product = policies(r).find((p) => p.scope.type === "product" && p.scope.productId === `${K}-prj_alpha-kp_3f9a0c12de`)!;
      expect(product.xml).toContain('<set-variable name="aigov-key-tier" value="kp_3f9a0c12de"/>');
      const xml = apiPolicy(r, "prj_alpha");
      expect(xml).toContain(
        '<when condition="@(context.Variables.GetValueOrDefault&lt;string&gt;(&quot;aigov-key-tier&quot;, &quot;&quot;) == &quot;kp_3f9a0c12de&quot;)">',
      );
      // No tier numbers anywhere: every comparison names a tier the project applies.
      const compared = [...xml.matchAll(/aigov-key-tier&quot;, &quot;&quot;\) == &quot;([^&]*)&quot;/g)].map((m) => m[1]);
      expect(new Set(compared)).toEqual(new Set(["gold", "kp_3f9a0c12de", "kp_7b21e4a5f0", "kp_c0ffee0001"]));
    });

    describe("fail-closed tier guard", () => {
      /** Inbound elements in document order, as `<name` strings, plus where the guard and the first tier-dependent element are. */
      const guardWhen = (xml: string) => /<when condition="@\(context\.Variables\.ContainsKey\(&quot;aigov-key-tier&quot;\) &amp;&amp; !\(([^"]*)\)\)">\s*<return-response>/.exec(xml);
      const comparedIn = (list: string) => [...list.matchAll(/== &quot;([a-z0-9_]+)&quot;/g)].map((m) => m[1]);

      it("refuses a key whose tier this API neither offers nor accepts (403 key_tier_unknown), before any tier-dependent element", () => {
        const xml = apiPolicy(compile(scoped), "prj_alpha");
        const m = guardWhen(xml);
        expect(m).not.toBeNull();
        // Every tier the API applies, sorted, each through the tier-id literal helper.
        expect(comparedIn(m![1]!)).toEqual(["gold", "kp_3f9a0c12de", "kp_7b21e4a5f0", "kp_c0ffee0001"]);
        expect(xml).toContain('"code":"key_tier_unknown"');
        // The guard is the first thing that reads the tier: before rate limits, the tier model scope and token limits.
        expect(xml.indexOf("aigov-key-tier")).toBe(m!.index + m![0].indexOf("aigov-key-tier"));
        expect(m!.index).toBeLessThan(xml.indexOf("aigov-models"));
      });

      it("lists accepted tiers as well as offered ones", () => {
        const r = compile(shared);
        expect(comparedIn(guardWhen(apiPolicy(r, "prj_beta"))![1]!)).toEqual(["gold", "kp_3f9a0c12de"]);
        expect(comparedIn(guardWhen(apiPolicy(r, "prj_alpha"))![1]!)).toEqual(["kp_3f9a0c12de"]);
      });

      it("is absent when the project applies no tier, and present with the models pillar off", () => {
        for (const name of ["region-restriction", "project-quota", "request-hygiene"]) expect(apiPolicy(compile(GOLDEN_CASES[name]!), "prj_alpha")).not.toContain("aigov-key-tier");
        const off = compile(tenant([project("prj_off", [model("m2", "gpt-4o")], { pillars: { models: false, tools: true, agents: true }, keyTiers: ["gold"] })], {
          settings: { requests: { rate: { calls: 10 } } },
          keyTiers: [{ id: "gold", limits: { requestRate: { calls: 100, renewalPeriodSeconds: 60 } } }],
        }));
        const xml = apiPolicy(off, "prj_off");
        expect(guardWhen(xml)).not.toBeNull();
        expect(xml.indexOf("key_tier_unknown")).toBeLessThan(xml.indexOf("rate-limit-by-key"));
        expect(validateCompiled(off.artifacts)).toEqual([]);
      });

      it("builds its condition only from safe tier ids, with one shape whatever the number of tiers", () => {
        expect(() => X.tierNotIn([])).toThrow();
        expect(() => X.tierNotIn(["gold", "1"])).toThrow(RangeError);
        expect(() => X.tierNotIn(['a" || true || "'])).toThrow(RangeError);
        const one = X.tierNotIn(["gold"]);
        const many = X.tierNotIn(["a1", "gold", "kp_3f9a0c12de", "zzzz_x0"]);
        expect(X.tierIdsIn(many)).toEqual(["a1", "gold", "kp_3f9a0c12de", "zzzz_x0"]);
        expect(X.expressionShape(many)).toBe(X.expressionShape(one));
        expect(X.EXPRESSION_SHAPES.has(X.expressionShape(many))).toBe(true);
        // Folding applies only to a well-formed tail of tier comparisons, not to anything appended after it.
        expect(X.EXPRESSION_SHAPES.has(X.expressionShape(many.replace(/\)\)$/, ") || true)")))).toBe(false);
      });
    });

    it("adding a tier leaves every other tier's product policy, and the API policy of every project that does not apply it, byte-identical", () => {
      // Ids that sort first, in the middle and last: with positional tier numbers each would have
      // renumbered the tiers after it.
      for (const id of ["aaa_new", "kp_5000000000", "zzz_new"]) {
        const newTier = { id, limits: { tokensPerMinute: 7 }, models: ["gpt-4o"] };
        for (const base of [scoped, shared]) {
          const before = compile(base);
          const product = (r: CompileResult, productId: string) => policies(r).find((p) => p.scope.type === "product" && p.scope.productId === productId)?.xml;
          const productIds = policies(before).flatMap((p) => (p.scope.type === "product" ? [p.scope.productId] : []));
          // 1. Nobody offers the new tier: every document is unchanged.
          const unused = compile({ ...base, keyTiers: [...base.keyTiers!, newTier] });
          expect(JSON.stringify(unused.artifacts)).toBe(JSON.stringify(before.artifacts));
          // 2. The first project offers it: only that project's API policy and the new product are new.
          const offeredBy = base.projects[0]!.id;
          const offered = compile({
            ...base,
            keyTiers: [newTier, ...base.keyTiers!],
            projects: base.projects.map((p) => (p.id === offeredBy ? { ...p, keyTiers: [...(p.keyTiers ?? []), id] } : p)),
          });
          expect(validateCompiled(offered.artifacts)).toEqual([]);
          for (const productId of productIds) expect(product(offered, productId), productId).toBe(product(before, productId));
          expect(product(offered, N.product(offeredBy, id))).toContain(`<set-variable name="aigov-key-tier" value="${id}"/>`);
          for (const p of base.projects) {
            if (p.id === offeredBy) expect(apiPolicy(offered, p.id)).toContain(`== &quot;${id}&quot;`);
            else expect(apiPolicy(offered, p.id), p.id).toBe(apiPolicy(before, p.id));
          }
        }
      }
    });

    it("refuses tier ids that are digits only (a legacy tier number) or unsafe in a string literal", () => {
      const withTier = (id: string) => tenant([project("prj_a", [model("m1", "gpt-4o")], { keyTiers: [id] })], { keyTiers: [{ id, limits: { tokensPerMinute: 5 } }] });
      for (const bad of ["1", "2", "0042", 'a"b', "a\\b", "a@(b", "a{{b", "a<b", "a b", "A", ""]) expectCompileError(withTier(bad), "invalidInput", /keyTiers\.0\.id/);
      for (const ok of ["1a", "kp_0123456789", "gold", "_".padStart(24, "a")]) expect(() => compile(withTier(ok)), ok).not.toThrow();
      // The expression builder checks again, independently of input validation.
      for (const bad of ["1", 'a"b', "a\\b", "a@(b", "a{{b", "a<b", "a&b", "a b", "a\nb", "KP", "a".repeat(25)]) expect(() => X.tierIs(bad), bad).toThrow(RangeError);
      expect(X.tierIs("kp_3f9a0c12de")).toBe('@(context.Variables.GetValueOrDefault<string>("aigov-key-tier", "") == "kp_3f9a0c12de")');
    });

    it("a list that matches none of the project's models refuses every model for that tier; no list means no restriction", () => {
      const onlyUnknown = tenant([project("prj_a", [model("m1", "gpt-4o")], { keyTiers: ["kp_0000000001", "gold"] })], {
        keyTiers: [
          { id: "kp_0000000001", limits: {}, models: ["deleted-model"] },
          { id: "gold", limits: { tokensPerMinute: 5 } },
        ],
      });
      const r = compile(onlyUnknown);
      expect(validateCompiled(r.artifacts)).toEqual([]);
      const xml = apiPolicy(r, "prj_a");
      expect(xml).not.toContain("aigov-tier-models");
      expect(xml.match(/model_not_allowed/g)).toHaveLength(1);
      expect(xml).not.toContain("deleted-model");
      // Without model lists the document is what it was before key profiles existed.
      const plain = tenant([project("prj_a", [model("m1", "gpt-4o")], { keyTiers: ["gold"] })], { keyTiers: [{ id: "gold", limits: { tokensPerMinute: 5 } }] });
      expect(apiPolicy(compile(plain), "prj_a")).not.toContain("model_not_allowed");
    });

    it("explains the model scope with control models.allowed at the tier's scope", () => {
      const r = compile(scoped);
      const entries = r.explain.filter((e) => e.control === "models.allowed" && e.scope.level === "tier");
      const tiersOf = (ref: string) => new Set(entries.filter((e) => e.ref === ref).map((e) => (e.scope.level === "tier" ? e.scope.tierId : "")));
      expect(tiersOf(`policy:api/${K}-prj_alpha`)).toEqual(new Set(["kp_3f9a0c12de", "kp_c0ffee0001"]));
      expect(tiersOf(`policy:product/${K}-prj_alpha-kp_7b21e4a5f0`)).toEqual(new Set(["kp_7b21e4a5f0"]));
      expect(entries.some((e) => e.note === "2 of 3 models")).toBe(true);
    });

    it("a shared tier links the owner's product to the accepting project's API and applies there by model name", () => {
      const r = compile(shared);
      expect(validateCompiled(r.artifacts)).toEqual([]);
      expect(productApis(r, `${K}-prj_alpha-kp_3f9a0c12de`)).toEqual([`${K}-prj_alpha`, `${K}-prj_beta`]);
      expect(productApis(r, `${K}-prj_beta-gold`)).toEqual([`${K}-prj_beta`]);
      // No product for the accepting project: its keys are not in the tier, the owner's keys are.
      expect(ids(r.artifacts)).not.toContain(`${K}-prj_beta-kp_3f9a0c12de`);
      const beta = apiPolicy(r, "prj_beta");
      expect(beta).toContain('<set-variable name="aigov-tier-models" value="gpt-4o"/>');
      expect(beta).toContain('tokens-per-minute="5000"');
      const notes = r.explain.filter((e) => e.ref === `policy:api/${K}-prj_beta` && e.control === "models.allowed").map((e) => e.note);
      expect(notes).toContain("1 of 2 models; keys of project prj_alpha accepted here");
      // The owner's document does not depend on who accepts its tier.
      const alone = compile({ ...shared, projects: shared.projects.map((p) => (p.id === "prj_beta" ? { ...p, sharedKeyTiers: [] } : p)) });
      expect(apiPolicy(alone, "prj_alpha")).toBe(apiPolicy(r, "prj_alpha"));
      expect(productApis(alone, `${K}-prj_alpha-kp_3f9a0c12de`)).toEqual([`${K}-prj_alpha`]);
    });

    it("rejects shared tiers that do not exist or are not offered by their project, naming the path", () => {
      const withShare = (s: { projectId: string; tierId: string }) => ({
        ...shared,
        projects: shared.projects.map((p) => (p.id === "prj_beta" ? { ...p, sharedKeyTiers: [s] } : p)),
      });
      const issue = (s: { projectId: string; tierId: string }) => expectCompileError(withShare(s), "invalidInput").issues[0];
      expect(issue({ projectId: "prj_nope", tierId: "kp_3f9a0c12de" })).toEqual({ path: "projects.1.sharedKeyTiers.0.projectId", message: "unknown project prj_nope" });
      expect(issue({ projectId: "prj_alpha", tierId: "kp_nope" })).toEqual({ path: "projects.1.sharedKeyTiers.0.tierId", message: "unknown tier kp_nope" });
      expect(issue({ projectId: "prj_alpha", tierId: "gold" })).toEqual({ path: "projects.1.sharedKeyTiers.0.tierId", message: "project prj_alpha does not offer tier gold" });
      expect(issue({ projectId: "prj_beta", tierId: "gold" })?.path).toBe("projects.1.sharedKeyTiers.0.projectId");
      const dup = { ...shared, projects: shared.projects.map((p) => (p.id === "prj_beta" ? { ...p, sharedKeyTiers: [p.sharedKeyTiers![0]!, p.sharedKeyTiers![0]!] } : p)) };
      expectCompileError(dup, "invalidInput", /duplicate shared tier prj_alpha\/kp_3f9a0c12de/);
      expectCompileError(withShare({ projectId: "prj_alpha", tierId: "a<b" }), "invalidInput");
    });

    it("validates tier model names like model names and bounds the lists", () => {
      const withModels = (models: string[]) => tenant([project("prj_a", [model("m1", "gpt-4o")], { keyTiers: ["t"] })], { keyTiers: [{ id: "t", limits: {}, models }] });
      for (const bad of ["a|b", "@(x)", "{{kv}}", "a b", "a<b", ""]) expectCompileError(withModels([bad]), "invalidInput", /keyTiers\.0\.models\.0/);
      expectCompileError(withModels(Array.from({ length: 201 }, (_, i) => `m${i}`)), "invalidInput");
      expect(() => compile(withModels(Array.from({ length: 200 }, (_, i) => `m${i}`)))).not.toThrow();
    });

    it("holds 2000 tenant tiers and 40 offered tiers per project; one more is refused", () => {
      const many = Array.from({ length: MAX_TENANT_KEY_TIERS }, (_, i) => ({ id: `kp_${i.toString(16).padStart(10, "0")}`, limits: { tokensPerMinute: 100 + i } }));
      const offered = many.slice(0, MAX_PROJECT_KEY_TIERS).map((t) => t.id);
      expect(() => compile(tenant([project("prj_a", [model("m1", "gpt-4o")], { keyTiers: offered })], { keyTiers: many }))).not.toThrow();
      expectCompileError(tenant([], { keyTiers: [...many, { id: "one_more", limits: {} }] }), "invalidInput", /keyTiers/);
      expectCompileError(tenant([project("prj_a", [], { keyTiers: many.slice(0, MAX_PROJECT_KEY_TIERS + 1).map((t) => t.id) })], { keyTiers: many }), "invalidInput", /projects\.0\.keyTiers/);
    });

    it("40 offered tiers with 50-name model lists (and 40 accepted ones) stay within 512 KiB", () => {
      // Worst-case names (64 characters) and every per-key limit in every tier, so every tier adds a when everywhere.
      const name = (i: number) => `model-${String(i).padStart(4, "0")}-${"x".repeat(53)}`;
      const models = Array.from({ length: 200 }, (_, i) => model(`m${i}`, name(i)));
      const tiers = (prefix: string) =>
        Array.from({ length: MAX_PROJECT_KEY_TIERS }, (_, t) => ({
          id: `kp_${prefix}${String(t).padStart(9, "0")}`,
          limits: { tokensPerMinute: 1000 + t, tokenQuota: { limit: 100_000 + t, period: "Monthly" as const }, requestRate: { calls: 10 + t, renewalPeriodSeconds: 60 } },
          models: Array.from({ length: 50 }, (_, k) => name((t * 7 + k) % 200)),
        }));
      const own = tiers("a");
      const accepted = tiers("b");
      const settings = { tokens: { perMinute: { limit: 100, per: "key" as const }, quota: { limit: 1000, per: "key" as const } }, requests: { rate: { calls: 5, per: "key" as const } } };
      const size = (withShared: boolean) => {
        const projects = [project("prj_big", models, { keyTiers: own.map((t) => t.id), ...(withShared ? { sharedKeyTiers: accepted.map((t) => ({ projectId: "prj_owner", tierId: t.id })) } : {}) })];
        if (withShared) projects.push(project("prj_owner", [model("o1", "gpt-4o")], { keyTiers: accepted.map((t) => t.id) }));
        const r = compile(tenant(projects, { settings, keyTiers: [...own, ...accepted] }));
        expect(validateCompiled(r.artifacts)).toEqual([]);
        const api = r.sizes.find((x) => x.ref === `policy:api/${K}-prj_big`)!.bytes;
        const fragments = r.sizes.filter((x) => x.ref.startsWith("fragment:")).reduce((n, x) => n + x.bytes, 0);
        return { api, withFragments: api + fragments };
      };
      const offeredOnly = size(false);
      const withShared = size(true);
      console.log(`key-tier capacity: 40 offered tiers x 50 names: ${JSON.stringify(offeredOnly)} bytes; plus 40 accepted: ${JSON.stringify(withShared)} bytes (limit ${POLICY_SIZE_LIMIT_BYTES})`);
      expect(offeredOnly.withFragments).toBeLessThan(POLICY_SIZE_LIMIT_BYTES);
      expect(withShared.withFragments).toBeLessThan(POLICY_SIZE_LIMIT_BYTES);
    });
  });

  it("throws a typed size error naming the scope when a document exceeds the tier's limit", () => {
    const models = Array.from({ length: 400 }, (_, i) => model(`m${i}`, `model-number-${i}`));
    const input = tenant([project("prj_big", models)], { gatewayTier: "consumption" });
    const e = expectCompileError(input, "sizeLimit", new RegExp(`policy:api/${K}-prj_big`)) as PolicySizeError;
    expect(e.name).toBe("PolicySizeError");
    expect(e.scope).toEqual({ type: "api", apiId: `${K}-prj_big` });
    expect(e.limitBytes).toBe(CONSUMPTION_POLICY_SIZE_LIMIT_BYTES);
    expect(e.bytes).toBeGreaterThan(e.limitBytes);
    // The same project fits in 512 KiB.
    expect(() => compile({ ...input, gatewayTier: "v2" })).not.toThrow();
  });

  it("refuses controls the consumption tier cannot run", () => {
    const input = (settings: NonNullable<CompilerInputIn["settings"]>) => tenant([project("prj_a", [model("m1", "gpt-4o")])], { gatewayTier: "consumption", settings });
    expectCompileError(input({ tokens: { perMinute: { limit: 10 } } }), "unsupportedOnTier", /tokens.perMinute \(set at tenant\) needs llm-token-limit/);
    expectCompileError(input({ requests: { rate: { calls: 10 } } }), "unsupportedOnTier", /rate-limit-by-key/);
    expectCompileError(input({ failover: {} }), "unsupportedOnTier", /circuit breakers/);
    expect(() => compile(input({ correlationId: {}, metrics: { tokens: {} } }))).not.toThrow();
  });

  it("needs the shared services the controls use", () => {
    const noServices = (settings: NonNullable<CompilerInputIn["settings"]>) => ({ ...tenant([project("prj_a", [model("m1", "gpt-4o")])], { settings }), services: {} });
    expectCompileError(noServices({ contentSafety: {} }), "invalidInput", /services.contentSafety/);
    expectCompileError(noServices({ semanticCache: {} }), "invalidInput", /services.embeddings/);
  });

  it("a semantic cache partitioned by user is partitioned by key: aigov's keys belong to no APIM user, so context.User would put every caller in one partition", () => {
    const cached = (partitionBy: ("key" | "user")[]) => apiPolicy(compile(tenant([project("prj_a", [model("m1", "gpt-4o")])], { settings: { semanticCache: { partitionBy } } })), "prj_a");
    const byKey = cached(["key"]);
    expect(byKey).toContain(`<vary-by>${X.SUBSCRIPTION_ID}</vary-by>`);
    expect(cached(["user"])).toBe(byKey);
    expect(cached(["key", "user"])).toBe(byKey);
    expect(byKey).not.toContain("context.User");
  });

  it("looks the semantic cache up after every token limit, quota and budget (ADR 025): a hit ends inbound, so a limit after it would never run", () => {
    const limits = { tokens: { perMinute: { limit: 1000 }, quota: { limit: 5000, per: "key" as const } }, semanticCache: {} };
    const input = tenant([project("prj_a", [model("m1", "gpt-4o", { settings: { tokens: { quota: { limit: 100 } } } })], { settings: limits })]);
    const xml = apiPolicy(compile(input), "prj_a");
    const inbound = xml.slice(xml.indexOf("<inbound>"), xml.indexOf("</inbound>"));
    const lookup = inbound.indexOf("<llm-semantic-cache-lookup");
    expect(lookup).toBeGreaterThan(0);
    expect(inbound.match(/<llm-token-limit/g)?.length).toBe(3);
    expect(inbound.lastIndexOf("<llm-token-limit")).toBeLessThan(lookup);
  });

  it("varies the semantic cache by a literal of the settings that shape answers: content safety or a deployment changed is a fresh partition, a limit changed is not (ADR 025)", () => {
    const fingerprint = (settings: NonNullable<CompilerInputIn["settings"]>, extra: Parameters<typeof model>[2] = {}) => {
      const xml = apiPolicy(compile(tenant([project("prj_a", [model("m1", "gpt-4o", extra)], { settings: { semanticCache: {}, ...settings } })])), "prj_a");
      const found = [...xml.matchAll(/<vary-by>(s[0-9a-f]{16})<\/vary-by>/g)].map((m) => m[1]);
      expect(found).toHaveLength(1);
      return found[0];
    };
    const base = fingerprint({ contentSafety: { categories: { Hate: 4 } } });
    expect(fingerprint({ contentSafety: { categories: { Hate: 4 } }, tokens: { perMinute: { limit: 10 } } })).toBe(base);
    expect(fingerprint({ contentSafety: { categories: { Hate: 2 } } })).not.toBe(base);
    expect(fingerprint({ contentSafety: { categories: { Hate: 4 }, enforceOnCompletions: true } })).not.toBe(base);
    expect(fingerprint({ contentSafety: { categories: { Hate: 4 } } }, { deployment: "gpt-4o-2024-11-20" })).not.toBe(base);
  });

  it("skips the semantic cache for models whose region rule excludes the embeddings deployment's region (ADR 024), with documented elements only", () => {
    const eu = model("m_eu", "eu-model", { backends: [{ id: "m_eu_weu", url: "https://aoai-weu.openai.azure.com/openai", region: "westeurope", auth: MI }], settings: { regions: { allowed: ["westeurope"] } } });
    const compiled = (embeddingsRegion: string | undefined, models = [model("m_us", "us-model"), eu]) => {
      const input = tenant([project("prj_a", models)], { settings: { semanticCache: {} } });
      input.services!.embeddings = { url: "https://contoso-aoai.openai.azure.com/openai/deployments/embeddings", ...(embeddingsRegion ? { region: embeddingsRegion } : {}) };
      return compile(input);
    };
    const guard = X.sharedCondition("cache", undefined);
    for (const region of ["eastus", undefined]) {
      const r = compiled(region);
      expect(validateCompiled(r.artifacts)).toEqual([]);
      const xml = apiPolicy(r, "prj_a");
      // The restricted model's block marks the request; the lookup (inbound) and the store (outbound) skip marked requests.
      expect(xml).toContain(`<set-variable name="aigov-no-cache" value="true"/>`);
      expect(xml.match(new RegExp(`<when condition="${guard.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/"/g, "&quot;")}">\\s*<llm-semantic-cache-(lookup|store)`, "g"))).toHaveLength(2);
    }
    // The embeddings deployment in the allowed region: the cache as before, no mark, no choose.
    const allowed = apiPolicy(compiled("westeurope"), "prj_a");
    expect(allowed).not.toContain("aigov-no-cache");
    expect(allowed).toMatch(/<inbound>[\s\S]*\n\s*<llm-semantic-cache-lookup/);
    // Every routable model restricted: no cache at all. Its embeddings backend stays defined (sent nothing):
    // a tenant-wide artifact does not come and go with one project's region rule or an exemption of it.
    const none = compiled("eastus", [eu]);
    expect(apiPolicy(none, "prj_a")).not.toContain("llm-semantic-cache");
    expect(none.artifacts.some((a) => a.kind === "backend" && a.id === N.embeddings)).toBe(true);
  });

  it("rejects odd thresholds on the four-level severity scale", () => {
    expectCompileError(tenant([project("prj_a", [model("m1", "gpt-4o")])], { settings: { contentSafety: { categories: { Hate: 3 } } } }), "invalidInput", /0, 2, 4 or 6/);
  });

  it("rejects inconsistent registry data", () => {
    const dup = tenant([project("prj_a", [model("m1", "gpt-4o"), model("m1", "o3")])]);
    expectCompileError(dup, "invalidInput", /duplicate model id/);
    const sharedBackend = tenant([project("prj_a", [model("m1", "gpt-4o")]), project("prj_b", [model("m1", "gpt-4o")])]);
    expectCompileError(sharedBackend, "invalidInput", /already used/);
    const mixedAuth = tenant([
      project("prj_a", [
        model("m1", "gpt-4o", {
          backends: [
            { id: "a", url: "https://a.openai.azure.com/openai", region: "eastus", auth: MI },
            { id: "b", url: "https://b.openai.azure.com/openai", region: "eastus", auth: { type: "keyVaultSecret", namedValueId: "k", secretIdentifier: "https://kv1.vault.azure.net/secrets/k/0123456789abcdef" } },
          ],
        }),
      ]),
    ]);
    expectCompileError(mixedAuth, "invalidInput", /same managed identity/);
    expectCompileError(tenant([project("prj_a", [model("m1", "gpt-4o", { status: "deprecated" })])]), "invalidInput", /sunsetDate/);
    // A secret reference is a Key Vault secret URI: a name, and a version of Key Vault's characters only.
    for (const secretIdentifier of ["https://kv1.vault.azure.net/secrets/k/01-23", "https://kv1.vault.azure.net/keys/k/0123", "https://kv1.example.com/secrets/k/0123"]) {
      const auth = { type: "keyVaultSecret", namedValueId: "k", secretIdentifier } as const;
      expectCompileError(tenant([project("prj_a", [model("m1", "gpt-4o", { backends: [{ id: "a", url: "https://a.example.com", region: "eastus", auth }] })])]), "invalidInput", /Key Vault secret URI/);
    }
    // Registry snapshots published before versions were pinned (ADR 021) hold versionless URIs: system publishes still compile them.
    const legacy = { type: "keyVaultSecret", namedValueId: "k", secretIdentifier: "https://kv1.vault.azure.net/secrets/k" } as const;
    expect(compile(tenant([project("prj_a", [model("m1", "gpt-4o", { backends: [{ id: "a", url: "https://a.example.com", region: "eastus", auth: legacy }] })])])).artifacts.some((a) => a.kind === "namedValue")).toBe(true);
  });

  it("rejects user strings that could become markup, expressions or named-value references", () => {
    const nasty = ['a<b', 'a&b', 'a"b', "@(x)", "{{secret}}", "]]>", "a b", "a|b"];
    for (const s of nasty) {
      expectCompileError(tenant([project("prj_a", [model("m1", s)])]), "invalidInput");
      expectCompileError(tenant([project("prj_a", [model("m1", "ok")], { settings: { headers: { required: [{ name: s }] } } })]), "invalidInput");
      expectCompileError(tenant([project("prj_a", [model("m1", "ok")], { settings: { contentSafety: { blocklists: [s] } } })]), "invalidInput");
      expectCompileError(tenant([project("prj_a", [model("m1", "ok")], { settings: { regions: { allowed: [s] } } })]), "invalidInput");
      expectCompileError(tenant([project("prj_a", [model("m1", "ok", { allowedDataClasses: [s] })])]), "invalidInput");
      expectCompileError(tenant([project(s, [])]), "invalidInput");
    }
  });

  it("keeps free text (names, descriptions) out of policy documents", () => {
    const nasty = '<x a="1"> & @(context.Request) {{kv}} ]]> </policies>';
    const r = compile(
      tenant([project("prj_a", [model("m1", "gpt-4o", { displayName: nasty, description: nasty })], { name: nasty, description: nasty })], {
        keyTiers: [{ id: "gold", description: nasty, limits: { tokensPerMinute: 5 } }],
      }),
    );
    for (const a of r.artifacts) {
      if (a.kind !== "policy" && a.kind !== "fragment") continue;
      for (const piece of ["{{kv}}", "@(context.Request)", "<x ", "]]>", "&amp; @"]) expect(a.xml).not.toContain(piece);
    }
    expect(validateCompiled(r.artifacts)).toEqual([]);
    // It may appear in artifact descriptions, which the gateway does not interpret.
    expect(r.artifacts.some((a) => a.kind === "backend" && a.description?.includes(nasty))).toBe(true);
  });

  it("explains every element of every document", () => {
    for (const input of Object.values(GOLDEN_CASES)) {
      const r = compile(input);
      for (const p of r.artifacts) {
        if (p.kind !== "policy" && p.kind !== "fragment") continue;
        const ref = p.kind === "policy" ? `policy:${p.scope.type === "api" ? `api/${p.scope.apiId}` : p.scope.type === "product" ? `product/${p.scope.productId}` : "global"}` : `fragment:${p.id}`;
        const elements = (p.xml.match(/<[a-z][a-z-]*/g) ?? []).length;
        const paths = new Set(r.explain.filter((e) => e.ref === ref).map((e) => e.path));
        expect(paths.size, ref).toBe(elements);
      }
    }
  });

  it("explains model-scope values with the model's scope", () => {
    const r = compile(GOLDEN_CASES["project-quota"]!);
    const own = r.explain.filter((e) => e.control === "tokens.quota");
    expect(own.some((e) => e.scope.level === "model" && e.scope.modelId === "mini" && e.path.endsWith("llm-token-limit[1]"))).toBe(true);
    expect(own.some((e) => e.scope.level === "project" && e.path.endsWith("llm-token-limit[1]"))).toBe(true);
  });
});
