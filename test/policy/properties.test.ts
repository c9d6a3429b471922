/**
 * Property tests over generated tenants: every valid input compiles to well-formed, allow-listed,
 * deterministic documents within the size limit, and no user-supplied string ever becomes markup,
 * a policy expression or a named-value reference.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { initExpressions } from "../../src/local-gateway/expressions/engine.js";
import { loadSnapshot, SnapshotCache } from "../../src/local-gateway/runtime/snapshot.js";
import { artifactRef } from "../../src/ports/gateway.js";
import { create } from "xmlbuilder2";
import { compile, CONSUMPTION_POLICY_SIZE_LIMIT_BYTES, POLICY_SIZE_LIMIT_BYTES } from "../../src/policy/compile.js";
import { PolicyCompileError } from "../../src/policy/errors.js";
import { EXPRESSION_SHAPES, expressionShape, tierIdsIn, tierIs } from "../../src/policy/expressions.js";
import { IDENT, PROTECTED_HEADERS, TIER_ID } from "../../src/policy/identifiers.js";
import { type CompilerInputIn } from "../../src/policy/input.js";
import { gatewayNames } from "../../src/policy/names.js";
import { ALLOWED_ELEMENTS, expressionsIn, parse, validateCompiled } from "./validator.js";

type ProjectIn = CompilerInputIn["projects"][number];
type ModelIn = NonNullable<ProjectIn["models"]>[number];

const NASTY = ["<", "&", '"', "@(", "{{", "]]>", "@{", "</policies>", "'", "}}"];
/** Free text wrapped in ~ markers so it can be searched for. */
const freeText = fc.tuple(fc.constantFrom(...NASTY), fc.string({ maxLength: 6 }), fc.constantFrom(...NASTY)).map(([a, b, c]) => `~${a}${b}${c}~`);

const ident = fc.stringMatching(/^[a-z][a-z0-9_]{1,6}$/);
const modelName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,10}$/);
const headerName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,10}$/).filter((h) => !(PROTECTED_HEADERS as readonly string[]).includes(h.toLowerCase()));
const headerValue = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:/=+-]{0,8}$/);
const blocklist = fc.stringMatching(/^[A-Za-z0-9_-]{1,10}$/);
const REGIONS = ["eastus", "swedencentral", "westeurope", "global"];
const DATA_CLASSES = ["public", "internal", "confidential", "secret"];
const region = fc.constantFrom(...REGIONS);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const opt = { requiredKeys: [] as never[] };

const per = fc.constantFrom("key" as const, "project" as const);
const tokens = fc.record(
  {
    perMinute: fc.record({ enabled: fc.boolean(), limit: fc.integer({ min: 1, max: 1_000_000 }), per, estimatePromptTokens: fc.boolean() }, opt),
    quota: fc.record({ limit: fc.integer({ min: 1, max: 1_000_000_000 }), period: fc.constantFrom("Hourly", "Daily", "Monthly" as const), per, enabled: fc.boolean() }, opt),
  },
  opt,
);
const contentSafety = fc.record(
  {
    enabled: fc.boolean(),
    shieldPrompt: fc.boolean(),
    outputType: fc.constantFrom("FourSeverityLevels" as const, "EightSeverityLevels" as const),
    categories: fc.record({ Hate: fc.constantFrom(0, 2, 4, 6), Violence: fc.constantFrom(2, 4, 6) }, opt),
    blocklists: fc.array(blocklist, { maxLength: 3 }),
  },
  opt,
);
const failoverModel = fc.record({ enabled: fc.boolean(), circuitBreaker: fc.record({ failureCount: fc.integer({ min: 1, max: 10 }), tripDuration: fc.constantFrom("PT30S", "PT2M") }, opt) }, opt);

const settings = (names: string[]) =>
  fc.record(
    {
      tokens,
      requests: fc.record({ rate: fc.record({ calls: fc.integer({ min: 1, max: 1000 }), renewalPeriodSeconds: fc.integer({ min: 1, max: 300 }), per }, opt) }, opt),
      contentSafety,
      semanticCache: fc.record({ scoreThreshold: fc.constantFrom(0.05, 0.1, 0.2), durationSeconds: fc.integer({ min: 1, max: 3600 }), partitionBy: fc.subarray(["key", "user"] as const) }, opt),
      models: fc.record({ allowed: fc.array(fc.oneof(fc.constantFrom(...(names.length ? names : ["x"])), modelName), { maxLength: 4 }) }, opt),
      regions: fc.record({ allowed: fc.subarray(REGIONS) }, opt),
      dataClass: fc.record({ allowed: fc.subarray(DATA_CLASSES) }, opt),
      prompt: fc.record({ maxBytes: fc.option(fc.integer({ min: 1, max: 10_000_000 }), { nil: null }) }, opt),
      headers: fc.record(
        {
          required: fc.array(fc.record({ name: headerName, values: maybe(fc.array(headerValue, { minLength: 1, maxLength: 3 })) }).map((h) => (h.values ? h : { name: h.name })), { maxLength: 3 }),
          stripSecrets: fc.record({ enabled: fc.boolean(), extra: fc.array(headerName, { maxLength: 3 }) }, opt),
        },
        opt,
      ),
      correlationId: fc.record({ enabled: fc.boolean(), header: fc.constantFrom("x-correlation-id" as const, "x-request-id" as const) }, opt),
      metrics: fc.record({ tokens: fc.record({ namespace: fc.constantFrom("aigov", "ai.usage"), dimensions: fc.subarray(["project", "key", "model"] as const, { minLength: 1 }) }, opt) }, opt),
      failover: fc.record({ enabled: fc.boolean(), retry: fc.record({ enabled: fc.boolean(), count: fc.integer({ min: 1, max: 5 }) }, opt) }, opt),
    },
    opt,
  );

const modelSettings = fc.record({ tokens, contentSafety, regions: fc.record({ allowed: fc.subarray(REGIONS) }, opt), dataClass: fc.record({ allowed: fc.subarray(DATA_CLASSES) }, opt), failover: failoverModel }, opt);

const MI = { type: "managedIdentity" as const, resource: "https://cognitiveservices.azure.com" };
const KV = (id: string) => ({ type: "keyVaultSecret" as const, namedValueId: id, secretIdentifier: `https://contoso-kv.vault.azure.net/secrets/${id}/0123456789abcdef0123456789abcdef`, header: "api-key" as const });

const modelArb = fc.record({
  name: modelName,
  displayName: maybe(freeText),
  description: maybe(freeText),
  provider: fc.constantFrom("azure-openai" as const, "openai" as const, "anthropic" as const, "foundry" as const),
  status: fc.constantFrom("active" as const, "active" as const, "deprecated" as const, "blocked" as const),
  deprecatedAt: maybe(fc.constantFrom("2025-01-01", "2026-03-31")),
  sunsetDate: fc.constantFrom("2026-06-30", "2027-01-31"),
  backends: fc.array(fc.record({ region, priority: fc.integer({ min: 1, max: 3 }), weight: fc.integer({ min: 1, max: 100 }) }), { minLength: 1, maxLength: 4 }),
  auth: fc.oneof(fc.constant(MI), fc.constantFrom(KV("key-a"), KV("key-b"))),
  dataClasses: maybe(fc.subarray(DATA_CLASSES)),
  ab: fc.option(fc.tuple(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 100 })), { nil: undefined }),
  settings: modelSettings,
});

const projectArb = fc.record({
  id: ident,
  name: freeText,
  description: maybe(freeText),
  modelsOn: fc.boolean(),
  models: fc.uniqueArray(fc.tuple(ident, modelArb), { maxLength: 5, selector: ([id, m]) => id + "|" + m.name, comparator: (a, b) => a.split("|")[0] === b.split("|")[0] || a.split("|")[1] === b.split("|")[1] }),
  tiers: fc.subarray(["gold", "silver", "kp_0a1b2c3d4e"]),
  /** Picks among the tiers other projects offer (index pairs resolved once all projects exist). */
  accepts: fc.array(fc.nat(), { maxLength: 3 }),
});

/** A tier's model list: names of generated models, names no project has, or none at all (no restriction). */
const tierModels = (names: string[]) =>
  maybe(fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...(names.length ? names : ["x"])) }, { weight: 1, arbitrary: modelName }), { maxLength: 5 }));

const inputArb: fc.Arbitrary<CompilerInputIn> = fc
  .record({
    tier: fc.constantFrom("classic" as const, "v2" as const),
    projects: fc.uniqueArray(projectArb, { minLength: 1, maxLength: 3, selector: (p) => p.id }),
    tiers: fc.record({ gold: fc.integer({ min: 1, max: 100_000 }), silver: fc.integer({ min: 1, max: 1000 }), tierText: freeText }),
  })
  .chain((t) => {
    const names = t.projects.flatMap((p) => p.models.map(([, m]) => m.name));
    return fc.tuple(
      fc.constant(t),
      settings(names),
      fc.array(settings([]), { minLength: t.projects.length, maxLength: t.projects.length }),
      fc.tuple(tierModels(names), tierModels(names), tierModels(names)),
    );
  })
  .map(([t, tenantSettings, projectSettings, [goldModels, silverModels, kpModels]]) => ({
    tenantId: "contoso",
    gatewayTier: t.tier,
    settings: tenantSettings,
    services: { contentSafety: { url: "https://contoso-cs.cognitiveservices.azure.com" }, embeddings: { url: "https://contoso-aoai.openai.azure.com/openai" } },
    keyTiers: [
      { id: "gold", description: t.tiers.tierText, limits: { tokensPerMinute: t.tiers.gold, tokenQuota: { limit: t.tiers.gold * 100, period: "Daily" as const } }, ...(goldModels ? { models: goldModels } : {}) },
      { id: "silver", limits: { requestRate: { calls: t.tiers.silver, renewalPeriodSeconds: 60 } }, ...(silverModels ? { models: silverModels } : {}) },
      { id: "kp_0a1b2c3d4e", limits: {}, ...(kpModels ? { models: kpModels } : {}) },
    ],
    projects: t.projects.map((p, pi): ProjectIn => ({
      id: p.id,
      name: p.name,
      ...(p.description ? { description: p.description } : {}),
      pillars: { models: p.modelsOn, tools: true, agents: true },
      keyTiers: p.tiers,
      sharedKeyTiers: (() => {
        const offeredElsewhere = t.projects.flatMap((o) => (o.id === p.id ? [] : o.tiers.map((tierId) => ({ projectId: o.id, tierId }))));
        const picked = offeredElsewhere.length ? p.accepts.map((i) => offeredElsewhere[i % offeredElsewhere.length]!) : [];
        return [...new Map(picked.map((s) => [`${s.projectId}/${s.tierId}`, s])).values()];
      })(),
      settings: projectSettings[pi] ?? {},
      models: p.models.map(([id, m], mi): ModelIn => {
        const versions = m.ab ? ["2024-08-06", "2024-11-20"] : undefined;
        return {
          id,
          name: m.name,
          deployment: `dep-${m.name.replace(/:/g, "-")}`,
          ...(m.displayName ? { displayName: m.displayName } : {}),
          ...(m.description ? { description: m.description } : {}),
          provider: m.provider,
          status: m.status,
          ...(m.deprecatedAt ? { deprecatedAt: m.deprecatedAt } : {}),
          sunsetDate: m.sunsetDate,
          backends: m.backends.map((b, bi) => ({
            id: `b${pi}_${mi}_${bi}`,
            url: `https://aoai-${pi}-${mi}-${bi}.openai.azure.com/openai`,
            region: b.region,
            priority: b.priority,
            weight: b.weight,
            auth: m.auth,
            ...(versions ? { version: versions[bi % 2]! } : {}),
          })),
          ...(m.dataClasses ? { allowedDataClasses: m.dataClasses } : {}),
          ...(m.ab && versions && m.backends.length > 1
            ? { abSplit: [{ version: versions[0]!, weight: m.ab[0] }, { version: versions[1]!, weight: m.ab[1] }] }
            : {}),
          settings: m.settings,
        };
      }),
    })),
    virtualKeys: t.projects.flatMap((p, i) => [{ id: `k${i}`, projectId: p.id, ...(p.tiers[0] ? { tier: p.tiers[0] } : {}) }]),
  }));

/** Shuffles every array in a value (deterministically from the seed): no array order in the input carries meaning. */
function shuffleDeep<T>(value: T, seed: number): T {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) {
      const copy = v.map(walk);
      for (let i = copy.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [copy[i], copy[j]] = [copy[j], copy[i]];
      }
      return copy;
    }
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}

/** Every string a user supplied in the input (identifiers and free text). */
function userStrings(input: CompilerInputIn): string[] {
  const out: string[] = [];
  const walk = (v: unknown, key: string) => {
    if (typeof v === "string" && !["url", "resource", "secretIdentifier", "provider", "status", "period", "per", "outputType", "header", "type", "tenantId", "deprecatedAt", "sunsetDate"].includes(key)) out.push(v);
    else if (Array.isArray(v)) v.forEach((x) => walk(x, key));
    else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(input, "");
  return out;
}

/** The ids of the generated tenant's artifacts. */
const N = gatewayNames("contoso");

const documents = (r: ReturnType<typeof compile>) => r.artifacts.flatMap((a) => (a.kind === "policy" || a.kind === "fragment" ? [a.xml] : []));

const SHAPE_TEXT = [...EXPRESSION_SHAPES].join("\n");
/** The literal of a tier comparison (in a parsed, unescaped expression). */
const TIER_LITERAL = /(GetValueOrDefault<string>\("aigov-key-tier", ""\) == ")[^"]*(")/g;
/** Valid tier ids (fast-check cannot generate from TIER_ID itself: it has a lookahead). */
const tierIdArb = fc.stringMatching(IDENT).filter((s) => TIER_ID.test(s));

beforeAll(() => initExpressions());

// Each property compiles a few hundred random estates: about 1.5 s alone, but it once ran past the default
// 30 s while the whole suite competed for two cores. A wait, not an assertion: room for a loaded CI machine.
describe("compiler properties", { timeout: 120_000 }, () => {
  it("the local gateway loads every compiled document with zero unsupported constructs", async () => {
    await fc.assert(
      fc.asyncProperty(inputArb, async (input) => {
        const r = compile(input);
        const root = mkdtempSync(join(tmpdir(), "aigov-prop-"));
        try {
          await new FilePublisher(root).publish(r.artifacts, {});
          const snap = await loadSnapshot(root, { resolveSecret: async () => "k", resolveKeyVaultSecret: async () => "kv" }, new SnapshotCache());
          expect(snap.issues).toEqual([]);
          expect(snap.apis.map((a) => a.id).sort()).toEqual(r.artifacts.flatMap((a) => (a.kind === "api" ? [a.id] : [])).sort());
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      }),
      { numRuns: 40 },
    );
  });

  it("two tenants never share an artifact id, and a publish of one never touches the other's files", async () => {
    await fc.assert(
      fc.asyncProperty(inputArb, fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/), fc.boolean(), async (input, other, pillarOff) => {
        fc.pre(other !== input.tenantId);
        const a = compile(input);
        // The same registry under another tenant: every id differs, by construction not by chance.
        const b = compile({ ...input, tenantId: other });
        const refsA = new Set(a.artifacts.map(artifactRef));
        // (Violations collected and asserted once: an expect per item costs more than the compile, thousands of times.)
        expect(b.artifacts.map(artifactRef).filter((ref) => refsA.has(ref))).toEqual([]);
        const pathsA = new Set(a.artifacts.flatMap((x) => (x.kind === "api" ? [x.path.toLowerCase()] : [])));
        expect(b.artifacts.flatMap((art) => (art.kind === "api" && pathsA.has(art.path.toLowerCase()) ? [art.path] : []))).toEqual([]);
        // One gateway folder for both: B's publishes (even switching its models pillar off) leave A's files as they were.
        const root = mkdtempSync(join(tmpdir(), "aigov-2t-"));
        try {
          const gw = new FilePublisher(root);
          await gw.publish(a.artifacts, {});
          const before = await gw.read([...refsA]);
          const first = await gw.publish(b.artifacts, {});
          const b2 = compile({ ...input, tenantId: other, projects: input.projects.map((p) => ({ ...p, pillars: { models: !pillarOff, tools: true, agents: true } })) });
          await gw.publish(b2.artifacts, first.hashes);
          expect(await gw.read([...refsA])).toEqual(before);
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      }),
      { numRuns: 25 },
    );
  });

  it("valid inputs compile to allow-listed, parseable documents within the size limit", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const r = compile(input);
        expect(validateCompiled(r.artifacts)).toEqual([]);
        for (const xml of documents(r)) {
          expect(() => create(xml)).not.toThrow();
          expect(Buffer.byteLength(xml, "utf8")).toBeLessThanOrEqual(POLICY_SIZE_LIMIT_BYTES);
        }
        expect(r.sizes.filter((s) => s.bytes > POLICY_SIZE_LIMIT_BYTES)).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });

  it("is deterministic, also when the input's arrays come in another order", () => {
    fc.assert(
      fc.property(inputArb, fc.integer(), (input, seed) => {
        const r = compile(input);
        const once = JSON.stringify(r);
        expect(JSON.stringify(compile(structuredClone(input)))).toBe(once);
        expect(JSON.stringify(compile(shuffleDeep(input, seed)))).toBe(once);
      }),
      { numRuns: 100 },
    );
  });

  it("no user-supplied string becomes markup, an expression or a named-value reference", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const r = compile(input);
        const strings = userStrings(input);
        const suspicious = strings.filter((s) => s.length >= 3 && /[^0-9]/.test(s) && !SHAPE_TEXT.includes(s));
        const tierIds = new Set((input.keyTiers ?? []).map((t) => t.id));
        for (const xml of documents(r)) {
          // Free text never reaches a document; nothing introduces a named-value reference.
          expect(xml).not.toContain("~");
          expect(xml).not.toContain("{{");
          const root = parse(xml);
          const names: string[] = [];
          const walk = (n: { nodeType: number; nodeName: string; childNodes: ArrayLike<never> }) => {
            if (n.nodeType === 1) names.push(n.nodeName);
            Array.from(n.childNodes).forEach(walk);
          };
          walk(root as never);
          // (Violations collected and asserted once per document: an expect per element costs more than the compile.)
          expect(names.filter((name) => !ALLOWED_ELEMENTS.has(name))).toEqual([]);
          const violations: string[] = [];
          for (const expr of expressionsIn(root)) {
            // The one input string an expression may hold: a declared tier id, as the literal of the
            // tier comparison. Everything else in the expression is a compiler constant.
            for (const id of tierIdsIn(expr)) if (!tierIds.has(id)) violations.push(`undeclared tier ${id} in ${expr}`);
            const rest = expr.replace(TIER_LITERAL, "$1$2");
            for (const s of suspicious) if (rest.includes(s)) violations.push(`${s} inside ${expr}`);
          }
          expect(violations).toEqual([]);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("a tier's keys may call exactly the project's routable models that the tier lists (offered or accepted tiers)", () => {
    const tierWhen = (id: string) =>
      new RegExp(`<when condition="@\\(context\\.Variables\\.GetValueOrDefault&lt;string&gt;\\(&quot;aigov-key-tier&quot;, &quot;&quot;\\) == &quot;${id}&quot;\\)">\\s*<(set-variable name="aigov-tier-models" value="([^"]*)"|return-response>)`, "g");
    fc.assert(
      fc.property(inputArb, (input) => {
        const r = compile(input);
        for (const p of input.projects) {
          const api = r.artifacts.find((a) => a.kind === "policy" && a.scope.type === "api" && a.scope.apiId === N.api(p.id));
          const xml = api && api.kind === "policy" ? api.xml : "";
          const routable = /<set-variable name="aigov-models" value="([^"]*)"\/>/.exec(xml)?.[1]?.split("|") ?? [];
          const applied = new Set([...(p.keyTiers ?? []), ...(p.sharedKeyTiers ?? []).map((s) => s.tierId)]);
          for (const tier of input.keyTiers ?? []) {
            const found = [...xml.matchAll(tierWhen(tier.id))];
            const allowed = routable.filter((m) => tier.models?.includes(m));
            if (!applied.has(tier.id) || !tier.models || !routable.length || allowed.length === routable.length) {
              expect(found, `${p.id}/${tier.id}`).toHaveLength(0);
            } else {
              expect(found, `${p.id}/${tier.id}`).toHaveLength(1);
              expect(found[0]![2] ?? "", `${p.id}/${tier.id}`).toBe(allowed.join("|"));
              if (!allowed.length) expect(found[0]![1]).toBe("return-response>");
            }
          }
          // Every project whose keys another project accepts links that project's API in its tier product.
          for (const s of p.sharedKeyTiers ?? []) {
            const product = r.artifacts.find((a) => a.kind === "product" && a.id === N.product(s.projectId, s.tierId));
            expect(product && product.kind === "product" ? product.apis : []).toContain(N.api(p.id));
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it("adding a tier leaves every other tier's product policy and every API policy that does not apply it byte-identical", () => {
    const policyXml = (r: ReturnType<typeof compile>) =>
      new Map(r.artifacts.flatMap((a) => (a.kind === "policy" ? [[a.scope.type === "api" ? `api:${a.scope.apiId}` : a.scope.type === "product" ? `product:${a.scope.productId}` : "other", a.xml] as const] : [])));
    fc.assert(
      fc.property(
        inputArb,
        tierIdArb,
        fc.nat(),
        fc.nat(),
        fc.boolean(),
        fc.option(fc.array(modelName, { maxLength: 3 }), { nil: undefined }),
        (input, rawId, ownerIx, acceptorIx, accepted, models) => {
          const tiers = input.keyTiers ?? [];
          fc.pre(!tiers.some((t) => t.id === rawId));
          const id = rawId;
          const owner = input.projects[ownerIx % input.projects.length]!;
          const acceptor = accepted ? input.projects[acceptorIx % input.projects.length]! : undefined;
          const acceptorId = acceptor && acceptor.id !== owner.id ? acceptor.id : undefined;
          const before = policyXml(compile(input));
          const next: CompilerInputIn = {
            ...input,
            keyTiers: [...tiers, { id, limits: { tokensPerMinute: 11, requestRate: { calls: 3, renewalPeriodSeconds: 60 } }, ...(models ? { models } : {}) }],
            projects: input.projects.map((p) =>
              p.id === owner.id
                ? { ...p, keyTiers: [...(p.keyTiers ?? []), id] }
                : p.id === acceptorId
                  ? { ...p, sharedKeyTiers: [...(p.sharedKeyTiers ?? []), { projectId: owner.id, tierId: id }] }
                  : p,
            ),
          };
          const after = policyXml(compile(next));
          const newProduct = `product:${N.product(owner.id, id)}`;
          const changedApis = new Set([`api:${N.api(owner.id)}`, ...(acceptorId ? [`api:${N.api(acceptorId)}`] : [])]);
          expect([...after.keys()].sort()).toEqual([...before.keys(), newProduct].sort());
          expect(after.get(newProduct)).toContain(`<set-variable name="aigov-key-tier" value="${id}"/>`);
          for (const [ref, xml] of before) {
            if (!changedApis.has(ref)) expect(after.get(ref), ref).toBe(xml);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a tier comparison holds exactly the tier id, and only ids that are safe in a C# string literal", () => {
    const candidate = fc.oneof(
      tierIdArb,
      fc.string({ maxLength: 26 }),
      fc.tuple(tierIdArb, fc.constantFrom(...NASTY, "\\", "\n", " ", "|", "A"), tierIdArb).map(([a, b, c]) => `${a}${b}${c}`),
    );
    fc.assert(
      fc.property(candidate, (id) => {
        if (!TIER_ID.test(id)) {
          expect(() => tierIs(id)).toThrow(RangeError);
          return;
        }
        const expr = tierIs(id);
        expect(EXPRESSION_SHAPES.has(expressionShape(expr))).toBe(true);
        expect(tierIdsIn(expr)).toEqual([id]);
        expect(expr.replace(TIER_LITERAL, "$1$2")).toBe('@(context.Variables.GetValueOrDefault<string>("aigov-key-tier", "") == "")');
        expect(id).toMatch(/^[a-z0-9_]+$/);
        expect(id).not.toMatch(/^[0-9]+$/);
      }),
      { numRuns: 500 },
    );
  });

  it("rejects identifiers that contain markup, expression or named-value syntax", () => {
    const bad = fc.tuple(fc.string({ maxLength: 4 }), fc.constantFrom(...NASTY, " ", "|", "\n"), fc.string({ maxLength: 4 })).map(([a, b, c]) => `a${a}${b}${c}`);
    const place: ((s: string) => CompilerInputIn)[] = [
      (s) => ({ tenantId: "t", projects: [{ id: "p", name: "P", models: [{ id: "m", name: s, provider: "openai", backends: [{ id: "b", url: "https://x.example.com", region: "eastus", auth: MI }] }] }] }),
      (s) => ({ tenantId: "t", projects: [{ id: "p", name: "P", settings: { headers: { required: [{ name: s }] } } }] }),
      (s) => ({ tenantId: "t", projects: [{ id: "p", name: "P", settings: { headers: { required: [{ name: "x-a", values: [s] }] } } }] }),
      (s) => ({ tenantId: "t", projects: [{ id: "p", name: "P", settings: { headers: { stripSecrets: { extra: [s] } } } }] }),
      (s) => ({ tenantId: "t", settings: { contentSafety: { blocklists: [s] } }, projects: [] }),
      (s) => ({ tenantId: "t", settings: { regions: { allowed: [s] } }, projects: [] }),
      (s) => ({ tenantId: "t", settings: { dataClass: { allowed: [s] } }, projects: [] }),
      (s) => ({ tenantId: "t", settings: { models: { allowed: [s] } }, projects: [] }),
      (s) => ({ tenantId: "t", settings: { metrics: { tokens: { namespace: s } } }, projects: [] }),
      (s) => ({ tenantId: "t", keyTiers: [{ id: s, limits: {} }], projects: [] }),
      (s) => ({ tenantId: "t", keyTiers: [{ id: "t", limits: {}, models: ["ok", s] }], projects: [] }),
      (s) => ({ tenantId: "t", keyTiers: [{ id: "t", limits: {} }], projects: [{ id: "p", name: "P", keyTiers: ["t"] }, { id: "q", name: "Q", sharedKeyTiers: [{ projectId: s, tierId: "t" }] }] }),
      (s) => ({ tenantId: "t", keyTiers: [{ id: "t", limits: {} }], projects: [{ id: "p", name: "P", keyTiers: ["t"] }, { id: "q", name: "Q", sharedKeyTiers: [{ projectId: "p", tierId: s }] }] }),
      (s) => ({ tenantId: "t", keyTiers: [{ id: "t", limits: {} }], projects: [{ id: "p", name: "P", keyTiers: ["t", s] }] }),
      (s) => ({ tenantId: "t", keyTiers: [{ id: "t", limits: {} }], projects: [{ id: "p", name: "P", keyTiers: ["t"] }], virtualKeys: [{ id: "k", projectId: "p", tier: s }] }),
      (s) => ({ tenantId: "t", projects: [{ id: s, name: "P" }] }),
      (s) => ({ tenantId: "t", projects: [{ id: "p", name: "P", models: [{ id: "m", name: "m", provider: "openai", backends: [{ id: "b", url: "https://x.example.com", region: "eastus", auth: { type: "managedIdentity", resource: `https://x/${s}` } }] }] }] }),
      (s) => ({ tenantId: "t", projects: [{ id: "p", name: "P", models: [{ id: "m", name: "m", provider: "openai", backends: [{ id: "b", url: "https://x.example.com", region: "eastus", auth: { type: "keyVaultSecret", namedValueId: s, secretIdentifier: "https://kv1.vault.azure.net/secrets/x/1" } }] }] }] }),
    ];
    fc.assert(
      fc.property(bad, fc.integer({ min: 0, max: place.length - 1 }), (s, i) => {
        expect(() => compile(place[i]!(s))).toThrow(PolicyCompileError);
        try {
          compile(place[i]!(s));
        } catch (e) {
          expect((e as PolicyCompileError).code).toBe("invalidInput");
        }
      }),
      { numRuns: 300 },
    );
  });

  it("on the consumption tier, compiles within 16 KiB or fails with a typed error", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        try {
          const r = compile({ ...input, gatewayTier: "consumption" });
          for (const s of r.sizes) expect(s.bytes).toBeLessThanOrEqual(CONSUMPTION_POLICY_SIZE_LIMIT_BYTES);
          expect(validateCompiled(r.artifacts)).toEqual([]);
        } catch (e) {
          expect(e).toBeInstanceOf(PolicyCompileError);
          expect(["invalidInput", "unsupportedOnTier", "sizeLimit"]).toContain((e as PolicyCompileError).code);
        }
      }),
      { numRuns: 100 },
    );
  });
});
