/**
 * The policy compiler: tenant governance settings + model registry data → Azure API Management
 * artifacts. Pure and deterministic: the same input gives byte-identical output (inputs are sorted by
 * id/name wherever their order carries no meaning; no clocks, no randomness, no I/O).
 *
 * ## Artifact layout (APIM scopes)
 *
 * - **One API per project** (`aigov-<projectId>`, names.ts). Its API-scope policy is the project's
 *   compiled policy: tenant settings merged with project and model settings (settings.ts), because
 *   APIM inheritance cannot express "a lower scope overrides": a limit in a parent scope would still
 *   run. So nothing is compiled into the global policy; the instance-wide policy stays the platform
 *   team's, and every project document starts each section with `<base/>`.
 *   The API itself is an artifact too (path `aigov/<projectId>`, keys in the `api-key` header,
 *   subscription required): with the models pillar on it has two pass-through operations (GET and POST
 *   `/*`); with it off it has none, so nothing is routable but the policy and tier products still have
 *   the API they attach to.
 * - **One product per (project, key tier)** (`aigov-<projectId>-<tierId>`), published, subscription
 *   required without approval, holding the project's API and the APIs of the projects that accept the
 *   tier of this project's keys (`sharedKeyTiers`): its policy only sets the tier's id; each API
 *   policy applies that tier's per-key limits and model scope, comparing the id as a string literal
 *   (input.ts explains why this keeps documents independent of the number of keys). Tiers are never
 *   numbered: adding or removing a tier leaves every other tier's product policy, and the API policy
 *   of every project that does not apply that tier, byte-identical. Subscriptions (virtual keys) are
 *   not compiled: they never change a document.
 * - **Backends**: one Single backend per model endpoint (with the model's circuit breaker), one Pool
 *   per (project, model) — or per (project, model, version) with an A/B split — using the endpoints'
 *   priority and weight. Blocked models, models outside `models.allowed` and endpoints outside
 *   `regions.allowed` produce no backend and appear in no pool.
 * - **Named values**: one Key Vault-backed secret per key referenced by backends (`{{id}}` in the
 *   backend's credential header); the key never passes through the control plane.
 * - **Fragments**: blocks that are identical in every project (`aigov-resolve-model`, `aigov-on-error`).
 *
 * ## Model routing without code from input
 *
 * The API policy writes the project's model names and pool ids as literal '|'-separated lists
 * (set-variable values: data, not code). The resolve fragment finds the requested model's position
 * in the list with a constant expression (expressions.ts), returns 404 `model_not_found` for models
 * that are unknown, blocked or not allowed, and selects the pool. A key tier with a model list narrows
 * that list further for its keys: the API policy writes the intersection as another literal list
 * (only for tiers it actually narrows) and answers 403 `model_not_allowed` for a model outside it.
 * Models that need their own policy
 * statements (data-class check, deprecation headers, managed identity, A/B split, model-scope limits
 * or content safety) get a numbered block; models with identical blocks share one, so a document
 * grows by one list entry per model, not by a block per model.
 *
 * ## Deprecated models
 *
 * Deprecated models keep working. Their responses carry `Sunset: <IMF-fixdate>` (RFC 8594, from
 * `sunsetDate`) and, when `deprecatedAt` is known, `Deprecation: @<unix-seconds>` (RFC 9745), set in
 * outbound from variables the model's block sets in inbound.
 *
 * ## Pillars
 *
 * With the models pillar off, the project's policy keeps its request-level controls (correlation id,
 * header rules, request rate, prompt size) and drops everything model-specific: routing, pools,
 * token limits, content safety, semantic cache and token metrics.
 *
 * ## Output format
 *
 * Documents are rendered by xmlbuilder2 as well-formed XML, so quotes, `<` and `&` inside
 * expressions are escaped (`&quot;`, `&lt;`, `&amp;`): the management API's `xml` policy format.
 * Publish them with `format: "xml"`. (`rawxml` expects those characters unescaped; whether it also
 * decodes entity references inside expressions is not documented.) Reading a policy back returns
 * the gateway's own serialization, so drift checks should compare parsed documents, not bytes.
 *
 * ## Size limits
 *
 * Every document, and every API policy together with the fragments it includes, must stay within
 * 512 KiB (16 KiB when `gatewayTier` is "consumption"); otherwise compile throws PolicySizeError
 * naming the artifact and scope.
 */
import {
  artifactRef,
  type ApiArtifact,
  type ArtifactRef,
  type BackendArtifact,
  type CircuitBreakerRule,
  type FragmentArtifact,
  type GatewayArtifact,
  type NamedValueArtifact,
  type PolicyArtifact,
  type PolicyScope,
  type ProductArtifact,
} from "../ports/gateway.js";
import { PolicyCompileError, PolicySizeError, type PolicyIssue } from "./errors.js";
import * as X from "./expressions.js";
import { CompilerInput, MAX_POOL_SIZE, type CompilerInputIn, type KeyTier, type ModelBackend, type PolicyModel, type PolicyProject } from "./input.js";
import {
  DATA_CLASS_HEADER,
  DEFAULT_AZURE_OPENAI_API_VERSION,
  gatewayNames,
  MODEL_CALLS,
  MODEL_OPERATIONS,
  SUBSCRIPTION_KEY_HEADER,
  SUBSCRIPTION_KEY_QUERY,
  VAR,
  type GatewayNames,
} from "./names.js";
import { type ControlId, type EffectiveSettings, mergeSettings, type Resolved, type ResolvedValues, type SettingLevel } from "./settings.js";
import { canonical, el, type ExplainEntry, render, type ScopeRef, textEl, type Why, type XNode } from "./xml.js";

export type { ExplainEntry, ScopeRef } from "./xml.js";

export interface CompileResult {
  /** In publish order: named values, single backends, pools, fragments, APIs, products, policies (each sorted by id). */
  artifacts: GatewayArtifact[];
  /** Why each generated element or artifact exists: the control and the scope that produced it. */
  explain: ExplainEntry[];
  /** UTF-8 size of every policy and fragment document. */
  sizes: { ref: ArtifactRef; bytes: number }[];
}

export const POLICY_SIZE_LIMIT_BYTES = 512 * 1024;
export const CONSUMPTION_POLICY_SIZE_LIMIT_BYTES = 16 * 1024;

/** Headers deleted in both directions when `headers.stripSecrets` is on (plus the configured extras). */
export const SECRET_HEADERS = ["api-key", "authorization", "ocp-apim-subscription-key", "proxy-authorization", "x-api-key"] as const;

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const sortBy = <T>(xs: readonly T[], key: (x: T) => string) => [...xs].sort((a, b) => byCodePoint(key(a), key(b)));

const TENANT: ScopeRef = { level: "tenant" };
const STRUCTURE: Why = { control: "structure", scope: TENANT };

const JSON_ERROR = (code: string, message: string) => JSON.stringify({ error: { code, message } });

/** Compiles one tenant. Throws PolicyCompileError (invalid input, unsupported on the gateway tier)
 * or PolicySizeError (a document over the limit). */
export function compile(raw: CompilerInputIn): CompileResult {
  const parsed = CompilerInput.safeParse(raw);
  if (!parsed.success) {
    const issues: PolicyIssue[] = parsed.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
    throw new PolicyCompileError("invalidInput", `invalid compiler input: ${issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
  }
  return new Compiler(parsed.data).run();
}

interface RoutableModel {
  model: PolicyModel;
  eff: EffectiveSettings;
  /** Pool id written to the pools list ("" when no backend is left). */
  pool: string;
  /** Retries on 429/5xx across the model's pool (0 without failover or with one backend). */
  retries: number;
  block: XNode[];
}

class Compiler {
  private readonly namedValues = new Map<string, NamedValueArtifact>();
  private readonly backends: BackendArtifact[] = [];
  private readonly pools: BackendArtifact[] = [];
  private readonly serviceBackends = new Set<string>();
  private readonly fragments = new Map<string, { artifact: FragmentArtifact; explain: ExplainEntry[] }>();
  private readonly policies: { artifact: PolicyArtifact; explain: ExplainEntry[]; fragments: string[] }[] = [];
  private readonly apis: ApiArtifact[] = [];
  private readonly products: ProductArtifact[] = [];
  /** Explanations of backends, pools and named values, by artifact ref. */
  private readonly nonXmlExplain = new Map<ArtifactRef, ExplainEntry[]>();
  private readonly tiers: KeyTier[];
  private readonly tierById: Map<string, KeyTier>;
  /** "<ownerProjectId>/<tierId>" → the projects that accept the owner's keys in that tier, sorted. */
  private readonly acceptedBy = new Map<string, string[]>();
  private readonly limit: number;
  private readonly n: GatewayNames;

  constructor(private readonly input: CompilerInput) {
    this.n = gatewayNames(input.tenantId, input.gatewayKey);
    this.tiers = sortBy(input.keyTiers, (t) => t.id);
    this.tierById = new Map(this.tiers.map((t) => [t.id, t]));
    for (const p of input.projects) {
      for (const s of p.sharedKeyTiers) {
        const k = `${s.projectId}/${s.tierId}`;
        this.acceptedBy.set(k, [...(this.acceptedBy.get(k) ?? []), p.id].sort(byCodePoint));
      }
    }
    this.limit = input.gatewayTier === "consumption" ? CONSUMPTION_POLICY_SIZE_LIMIT_BYTES : POLICY_SIZE_LIMIT_BYTES;
  }

  run(): CompileResult {
    for (const project of sortBy(this.input.projects, (p) => p.id)) this.project(project);

    const fragmentBytes = new Map<string, number>();
    const sizes: CompileResult["sizes"] = [];
    for (const { artifact } of this.fragments.values()) {
      const bytes = Buffer.byteLength(artifact.xml, "utf8");
      this.checkSize(artifactRef(artifact), undefined, bytes);
      fragmentBytes.set(artifact.id, bytes);
    }
    for (const p of this.policies) {
      const bytes = Buffer.byteLength(p.artifact.xml, "utf8");
      const expanded = bytes + p.fragments.reduce((n, f) => n + (fragmentBytes.get(f) ?? 0), 0);
      this.checkSize(artifactRef(p.artifact), p.artifact.scope, expanded);
    }

    const fragments = sortBy([...this.fragments.values()], (f) => f.artifact.id);
    const policies = sortBy(this.policies, (p) => artifactRef(p.artifact));
    const artifacts: GatewayArtifact[] = [
      ...sortBy([...this.namedValues.values()], (n) => n.id),
      ...sortBy(this.backends, (b) => b.id),
      ...sortBy(this.pools, (b) => b.id),
      ...fragments.map((f) => f.artifact),
      ...sortBy(this.apis, (a) => a.id),
      ...sortBy(this.products, (p) => p.id),
      ...policies.map((p) => p.artifact),
    ];
    for (const a of artifacts) if (a.kind === "fragment" || a.kind === "policy") sizes.push({ ref: artifactRef(a), bytes: Buffer.byteLength(a.xml, "utf8") });
    // In artifact order; the entries of one artifact keep their document order.
    const explain: ExplainEntry[] = [];
    const push = (entries: ExplainEntry[] | undefined) => {
      for (const e of entries ?? []) explain.push(e);
    };
    for (const a of artifacts) if (a.kind !== "fragment" && a.kind !== "policy") push(this.nonXmlExplain.get(artifactRef(a)));
    for (const f of fragments) push(f.explain);
    for (const p of policies) push(p.explain);
    return { artifacts, explain, sizes };
  }

  private explainArtifact(entry: ExplainEntry) {
    const list = this.nonXmlExplain.get(entry.ref);
    if (list) list.push(entry);
    else this.nonXmlExplain.set(entry.ref, [entry]);
  }

  private checkSize(ref: string, scope: PolicyScope | undefined, bytes: number) {
    if (bytes > this.limit) throw new PolicySizeError(ref, scope, bytes, this.limit);
  }

  // -------------------------------------------------------------------------------------------
  // Scopes and explanations

  private scopeOf(level: SettingLevel, projectId: string, modelId?: string): ScopeRef {
    if (level === "tenant") return TENANT;
    if (level === "project" || modelId === undefined) return { level: "project", projectId };
    return { level: "model", projectId, modelId };
  }

  private why(control: ControlId, r: Resolved<unknown>, projectId: string, modelId?: string, note?: string): Why {
    return { control, scope: this.scopeOf(r.scope, projectId, modelId), ...(note ? { note } : {}) };
  }

  private unsupported(control: ControlId, policy: string, scope: ScopeRef): never {
    const where = scope.level === "tenant" ? "tenant" : scope.level === "tier" ? `tier ${scope.tierId}` : scope.level === "project" ? `project ${scope.projectId}` : `model ${scope.projectId}/${scope.modelId}`;
    throw new PolicyCompileError("unsupportedOnTier", `${control} (set at ${where}) needs ${policy}, which the ${this.input.gatewayTier} gateway tier does not support`, [
      { path: control, message: `${policy} is not available on the ${this.input.gatewayTier} tier` },
    ]);
  }

  private requireTier(control: ControlId, policy: string, why: Why) {
    if (this.input.gatewayTier === "consumption") this.unsupported(control, policy, why.scope);
  }

  // -------------------------------------------------------------------------------------------
  // Projects

  private project(project: PolicyProject) {
    const pid = project.id;
    const eff = mergeSettings(this.input.settings, project.settings);
    const modelsOn = project.pillars.models;
    const routable = modelsOn ? this.routableModels(project) : [];

    const inbound: XNode[] = [el("base", undefined, undefined, STRUCTURE)];
    const outbound: XNode[] = [el("base", undefined, undefined, STRUCTURE)];
    const onError: XNode[] = [el("base", undefined, undefined, STRUCTURE)];
    let backend: XNode[] = [el("base", undefined, undefined, STRUCTURE)];
    const fragments: string[] = [];

    const ci = eff.correlationId;
    if (ci) {
      const w = this.why("correlationId", ci, pid);
      inbound.push(el("set-header", { name: ci.value.header, "exists-action": "skip" }, [textEl("value", X.REQUEST_ID)], w));
    }

    const strip = eff["headers.stripSecrets"];
    const stripped = strip ? [...new Set([...SECRET_HEADERS, ...strip.value.extra])].sort(byCodePoint) : [];
    if (strip) {
      const w = this.why("headers.stripSecrets", strip, pid);
      for (const h of stripped) inbound.push(el("set-header", { name: h, "exists-action": "delete" }, undefined, w));
    }

    const required = eff["headers.required"];
    if (required) {
      const w = this.why("headers.required", required, pid);
      for (const h of required.value) {
        inbound.push(
          el(
            "check-header",
            { name: h.name, "failed-check-httpcode": 400, "failed-check-error-message": "A required header is missing or has a value that is not allowed", "ignore-case": true },
            (h.values ?? []).map((v) => textEl("value", v)),
            w,
          ),
        );
      }
    }

    // Tiers this API applies: its own and those of other projects' keys it accepts. A tier is told
    // apart by its id (what its product policy sets), the same in every project that applies it.
    const applied = new Set([...project.keyTiers, ...project.sharedKeyTiers.map((s) => s.tierId)]);
    inbound.push(...this.unknownTierGuard(pid, applied));
    const rate = this.requestRate(eff, pid, applied);
    if (!(modelsOn && eff.semanticCache)) inbound.push(...rate);

    if (modelsOn) {
      // The virtual key authenticates the caller to the gateway and goes no further: neither the
      // subscription key carriers nor a client's own Authorization reach a provider (backend
      // credentials and managed identity are added after this).
      const keyWhy: Why = { control: "structure", scope: { level: "project", projectId: pid }, note: "the virtual key never reaches a backend" };
      inbound.push(
        el("set-header", { name: SUBSCRIPTION_KEY_HEADER, "exists-action": "delete" }, undefined, keyWhy),
        el("set-header", { name: "Authorization", "exists-action": "delete" }, undefined, keyWhy),
        el("set-query-parameter", { name: SUBSCRIPTION_KEY_QUERY, "exists-action": "delete" }, undefined, keyWhy),
      );
      inbound.push(...this.routing(project, eff, routable, fragments, applied));
      if (routable.some((r) => r.retries > 0)) {
        const fo = eff.failover ?? routable.find((r) => r.eff.failover)?.eff.failover;
        // The retry forwards the request itself, so the section has no <base/> (it would forward a
        // second time); this is the documented AI-gateway pattern for pools. Each model retries as
        // often as its own pool allows (a per-model list), never by the project's largest pool.
        backend = [
          el(
            "retry",
            { count: X.RETRY_COUNT, interval: 0, "first-fast-retry": true, condition: X.RETRY_CONDITION },
            [el("set-backend-service", { "backend-id": X.BACKEND }), el("forward-request", { "buffer-request-body": true })],
            fo ? this.why("failover", fo, pid, undefined, "retry across the pool; a tripped circuit breaker takes a backend out") : { control: "failover", scope: { level: "project", projectId: pid } },
          ),
        ];
      }
    }

    const maxBytes = eff["prompt.maxBytes"];
    if (maxBytes) {
      inbound.push(
        el("choose", undefined, [
          el("when", { condition: X.promptTooLarge(maxBytes.value) }, [
            el("return-response", undefined, [
              el("set-status", { code: 413, reason: "Payload Too Large" }),
              el("set-header", { name: "Content-Type", "exists-action": "override" }, [textEl("value", "application/json")]),
              textEl("set-body", JSON_ERROR("prompt_too_large", "The request body exceeds the size this project allows.")),
            ]),
          ]),
        ], this.why("prompt.maxBytes", maxBytes, pid, undefined, `${maxBytes.value} bytes`)),
      );
    }

    if (modelsOn) {
      const anyOwn = (c: "contentSafety") => routable.some((r) => modelSets(r.model, c));
      const cs = eff.contentSafety;
      if (cs) {
        const node = this.contentSafety(cs.value, this.why("contentSafety", cs, pid));
        inbound.push(anyOwn("contentSafety") ? el("choose", undefined, [el("when", { condition: X.sharedCondition("cs", undefined) }, [node])], node.why) : node);
      }
      const sc = eff.semanticCache;
      if (sc) {
        const embeddings = this.input.services.embeddings;
        if (!embeddings) throw invalid("semanticCache", "services.embeddings is required when the semantic cache is on");
        this.serviceBackend(this.n.embeddings, embeddings, "https://cognitiveservices.azure.com/", "aigov: embeddings deployment for the semantic cache", "semanticCache");
        const w = this.why("semanticCache", sc, pid);
        const varyBy = [textEl("vary-by", X.API_ID), textEl("vary-by", X.MODEL)];
        if (sc.value.partitionBy.includes("key")) varyBy.push(textEl("vary-by", X.SUBSCRIPTION_ID));
        if (sc.value.partitionBy.includes("user")) varyBy.push(textEl("vary-by", X.USER_ID));
        inbound.push(
          el(
            "llm-semantic-cache-lookup",
            {
              "score-threshold": sc.value.scoreThreshold,
              "embeddings-backend-id": this.n.embeddings,
              "embeddings-backend-auth": "system-assigned",
              "ignore-system-messages": sc.value.ignoreSystemMessages,
              "max-message-count": sc.value.maxMessageCount,
            },
            varyBy,
            w,
          ),
        );
        // The docs recommend a rate limit immediately after the lookup.
        inbound.push(...rate);
        outbound.push(el("llm-semantic-cache-store", { duration: sc.value.durationSeconds }, undefined, w));
      }
      // Every limit that applies is its own counter and all of them run: the key's (tier or project
      // per-key), the project's, the model's (in its block) and the key's budget; the tightest bites.
      inbound.push(...this.tokenLimits("tokens.perMinute", eff, pid, applied));
      inbound.push(...this.tokenLimits("tokens.quota", eff, pid, applied));
      inbound.push(...this.budgets(pid, applied));
      const mt = eff["metrics.tokens"];
      if (mt) {
        const names = { project: "API ID", key: "Subscription ID", model: "Model" } as const;
        inbound.push(
          el(
            "llm-emit-token-metric",
            { namespace: mt.value.namespace },
            mt.value.dimensions.map((d) => el("dimension", d === "model" ? { name: names[d], value: X.MODEL } : { name: names[d] })),
            this.why("metrics.tokens", mt, pid),
          ),
        );
      }
      outbound.push(...this.deprecationHeaders(routable, pid));
    }

    if (ci) {
      const w = this.why("correlationId", ci, pid);
      outbound.push(el("set-header", { name: ci.value.header, "exists-action": "override" }, [textEl("value", X.correlationEcho(ci.value.header))], w));
      onError.push(el("set-header", { name: ci.value.header, "exists-action": "override" }, [textEl("value", X.correlationEcho(ci.value.header))], w));
    }
    if (modelsOn) {
      // After the correlation header: the fragment may end the pipeline with return-response.
      onError.push(el("include-fragment", { "fragment-id": this.n.fragment("on-error") }, undefined, { control: "routing", scope: TENANT, note: "generic 503 without pool details" }));
      fragments.push(this.n.fragment("on-error"));
      this.addOnErrorFragment();
    }
    if (strip) {
      const w = this.why("headers.stripSecrets", strip, pid);
      for (const h of stripped) outbound.push(el("set-header", { name: h, "exists-action": "delete" }, undefined, w));
    }

    const doc = el(
      "policies",
      undefined,
      [
        el("inbound", undefined, inbound, STRUCTURE),
        el("backend", undefined, backend, STRUCTURE),
        el("outbound", undefined, outbound, STRUCTURE),
        el("on-error", undefined, onError, STRUCTURE),
      ],
      STRUCTURE,
    );
    this.addPolicy({ type: "api", apiId: this.n.api(pid) }, doc, fragments);
    this.projectApi(project);

    for (const tierId of [...project.keyTiers].sort(byCodePoint)) this.tierProduct(project, tierId);
  }

  /**
   * Fail closed on a key tier this API does not apply: every tier-dependent element below (limits,
   * model scope) matches tiers by id, so a key whose product policy sets an id the API does not know
   * — e.g. during the one publish that changes the format of tier ids, or a product policy and an API
   * policy from different revisions — would otherwise fall through to the project's per-key limits
   * and its full model list. Placed before the first of them, it answers 403 instead.
   *
   * Emitted only when the API applies at least one tier. A project with no tiers gets no guard: a key
   * of another project's tier product reaches this API only if that product links it, which the
   * compiler does only for projects that accept the tier (sharedKeyTiers), and those apply it. Keys
   * without a tier set no variable. So the guard would never fire there, and leaving it out keeps
   * tier-less documents (most of them) unchanged.
   */
  private unknownTierGuard(pid: string, applied: Set<string>): XNode[] {
    if (!applied.size) return [];
    const ids = [...applied].sort(byCodePoint);
    const why: Why = { control: "structure", scope: { level: "project", projectId: pid }, note: `fail closed: a key tier other than ${ids.join(", ")}` };
    return [
      el("choose", undefined, [el("when", { condition: X.tierNotIn(ids) }, [this.forbidden("key_tier_unknown", "This key's tier is not valid for this project.", why)])], why),
    ];
  }

  /** The API the project's policy attaches to; its operations are the pillars' traffic (today: models). */
  private projectApi(project: PolicyProject) {
    const pid = project.id;
    const api: ApiArtifact = {
      kind: "api",
      id: this.n.api(pid),
      // The id in the name: APIM does not need display names to be unique, people reading the portal do.
      displayName: `${project.name} (${pid})`,
      ...(project.description ? { description: project.description } : {}),
      path: this.n.apiPath(pid),
      protocols: ["https"],
      subscriptionRequired: true,
      subscriptionKeyHeaderName: SUBSCRIPTION_KEY_HEADER,
      operations: project.pillars.models ? MODEL_OPERATIONS.map((o) => ({ ...o })) : [],
    };
    this.apis.push(api);
    const scope: ScopeRef = { level: "project", projectId: pid };
    const ref = artifactRef(api);
    this.explainArtifact({ ref, path: "/", control: "structure", scope, note: "the project's API: its policy is the project's policy" });
    this.explainArtifact({
      ref,
      path: "/operations",
      control: "routing",
      scope,
      note: project.pillars.models ? "models pillar on: the OpenAI-style, Azure OpenAI v1 and Azure OpenAI deployment routes (ADR 009)" : "models pillar off: no operations, nothing is routable",
    });
  }

  private addPolicy(scope: PolicyScope, doc: XNode, fragments: string[]) {
    const artifact: PolicyArtifact = { kind: "policy", scope, xml: "" };
    const ref = artifactRef(artifact);
    const { xml, explain } = render(doc, ref);
    artifact.xml = xml;
    this.policies.push({ artifact, explain, fragments });
  }

  private addFragment(id: string, description: string, body: XNode[], why: Why) {
    if (this.fragments.has(id)) return;
    const artifact: FragmentArtifact = { kind: "fragment", id, description, xml: "" };
    const { xml, explain } = render(el("fragment", undefined, body, why), artifactRef(artifact));
    artifact.xml = xml;
    this.fragments.set(id, { artifact, explain });
  }

  /** Per-key limits and model scope of a tier product: the product policy only names the tier, by
   * its id, so the document depends on nothing but the project, the tier and who accepts it. */
  private tierProduct(project: PolicyProject, tierId: string) {
    const tier = this.tierById.get(tierId);
    if (!tier) throw invalid("tokens.perMinute", `unknown tier ${tierId}`);
    const scope: ScopeRef = { level: "tier", tierId };
    const whys: Why[] = [];
    if (tier.limits.tokensPerMinute !== undefined) whys.push({ control: "tokens.perMinute", scope });
    if (tier.limits.tokenQuota !== undefined) whys.push({ control: "tokens.quota", scope });
    if (tier.limits.requestRate !== undefined) whys.push({ control: "requests.rate", scope });
    if (tier.models !== undefined) whys.push({ control: "models.allowed", scope });
    const acceptedBy = this.acceptedBy.get(`${project.id}/${tierId}`) ?? [];
    const doc = el(
      "policies",
      undefined,
      [
        el("inbound", undefined, [el("base", undefined, undefined, STRUCTURE), el("set-variable", { name: VAR.keyTier, value: tierId }, undefined, whys.length ? whys : [{ control: "structure", scope }])], STRUCTURE),
        el("backend", undefined, [el("base")], STRUCTURE),
        el("outbound", undefined, [el("base")], STRUCTURE),
        el("on-error", undefined, [el("base")], STRUCTURE),
      ],
      STRUCTURE,
    );
    const product: ProductArtifact = {
      kind: "product",
      id: this.n.product(project.id, tierId),
      displayName: `${project.name} (${project.id}), key tier ${tierId}`,
      ...(tier.description ? { description: tier.description } : {}),
      subscriptionRequired: true,
      // Keys are issued by the control plane (its own approvals), never requested through the portal.
      approvalRequired: false,
      state: "published",
      // The owner's API plus the APIs of projects that accept these keys: the link is what lets the
      // gateway accept the key there at all.
      apis: [project.id, ...acceptedBy].map((p) => this.n.api(p)).sort(byCodePoint),
    };
    this.products.push(product);
    this.explainArtifact({ ref: artifactRef(product), path: "/", control: "structure", scope, note: `keys of project ${project.id} in tier ${tierId}` });
    for (const q of acceptedBy) {
      this.explainArtifact({ ref: artifactRef(product), path: "/apis", control: "structure", scope: { level: "project", projectId: q }, note: `project ${q} accepts keys of project ${project.id} in tier ${tierId}` });
    }
    this.addPolicy({ type: "product", productId: product.id }, doc, []);
  }

  // -------------------------------------------------------------------------------------------
  // Limits

  /** The tiers a project's API applies (offered or accepted), sorted by id. */
  private offeredTiers(applied: Set<string>): KeyTier[] {
    return this.tiers.filter((t) => applied.has(t.id));
  }

  private requestRate(eff: EffectiveSettings, pid: string, offered: Set<string>): XNode[] {
    const rr = eff["requests.rate"];
    const element = (v: Omit<ResolvedValues["requests.rate"], "per">, per: "key" | "project" | "tier", why: Why) => {
      this.requireTier("requests.rate", "rate-limit-by-key", why);
      return el("rate-limit-by-key", { calls: v.calls, "renewal-period": v.renewalPeriodSeconds, "counter-key": X.counterKey("rpm", per, false) }, undefined, why);
    };
    return this.keyed("requests.rate", rr && { value: rr.value, why: this.why("requests.rate", rr, pid) }, offered, (t) => t.limits.requestRate, element);
  }

  private tokenLimits(control: "tokens.perMinute" | "tokens.quota", eff: EffectiveSettings, pid: string, offered: Set<string>): XNode[] {
    if (control === "tokens.perMinute") {
      const r = eff["tokens.perMinute"];
      const est = r?.value.estimatePromptTokens ?? false;
      return this.keyed(control, r && { value: r.value, why: this.why(control, r, pid) }, offered, (t) => (t.limits.tokensPerMinute !== undefined ? { limit: t.limits.tokensPerMinute, estimatePromptTokens: est } : undefined), (v, per, why) =>
        this.tokenLimit("tpm", v, per, false, why),
      );
    }
    const r = eff["tokens.quota"];
    const est = r?.value.estimatePromptTokens ?? false;
    return this.keyed(control, r && { value: r.value, why: this.why(control, r, pid) }, offered, (t) => (t.limits.tokenQuota ? { ...t.limits.tokenQuota, estimatePromptTokens: est } : undefined), (v, per, why) =>
      this.tokenLimit("tq", v, per, false, why),
    );
  }

  private tokenLimit(
    kind: "tpm" | "tq",
    v: { limit: number; estimatePromptTokens: boolean; period?: string },
    per: "key" | "project" | "tier",
    perModel: boolean,
    why: Why,
  ): XNode {
    this.requireTier(kind === "tpm" ? "tokens.perMinute" : "tokens.quota", "llm-token-limit", why);
    const attrs: Record<string, string | number | boolean> = { "counter-key": X.counterKey(kind, per, perModel) };
    if (v.period !== undefined) {
      attrs["token-quota"] = v.limit;
      attrs["token-quota-period"] = v.period;
    } else {
      attrs["tokens-per-minute"] = v.limit;
    }
    attrs["estimate-prompt-tokens"] = v.estimatePromptTokens;
    return el("llm-token-limit", attrs, undefined, why);
  }

  /**
   * A per-key or per-project limit, and the key tiers' own values for it. Each is its own counter and
   * they add up, so the tightest bites: the project's per-project limit, the project's per-key limit
   * (every key), and a tier's per-key value (keys of that tier, counter `…-tier`). A key profile can
   * narrow its keys' limits, never widen them past the project's. The one exception is an exemption
   * tier: it lists the controls it relaxes (`relaxes`), and its keys get the tier's value instead of
   * the project's per-key limit — the approved relaxation, for that key only.
   */
  private keyed<V extends { per: "key" | "project" }, T extends object>(
    control: "tokens.perMinute" | "tokens.quota" | "requests.rate",
    project: { value: V; why: Why } | undefined,
    offered: Set<string>,
    tierValue: (t: KeyTier) => T | undefined,
    element: (v: V | T, per: "key" | "project" | "tier", why: Why) => XNode,
  ): XNode[] {
    const out: XNode[] = [];
    const tiers = this.offeredTiers(offered).flatMap((t) => {
      const v = tierValue(t);
      return v ? [{ tier: t, v }] : [];
    });
    if (project) {
      const node = element(project.value, project.value.per, project.why);
      const replacing = project.value.per === "key" ? tiers.filter((t) => t.tier.relaxes?.includes(control)).map((t) => t.tier.id) : [];
      out.push(replacing.length ? el("choose", undefined, [el("when", { condition: X.tierNotAmong(replacing) }, [node])], node.why) : node);
    }
    if (tiers.length) {
      const whens = tiers.map(({ tier, v }) => el("when", { condition: X.tierIs(tier.id) }, [element(v, "tier", { control, scope: { level: "tier", tierId: tier.id } })]));
      out.push(el("choose", undefined, whens, whens[0]?.children?.[0]?.why));
    }
    return out;
  }

  /** A key's budget: the token quota it buys (key profiles), one counter per key across every API it reaches. */
  private budgets(pid: string, offered: Set<string>): XNode[] {
    const tiers = this.offeredTiers(offered).filter((t) => t.limits.budget);
    if (!tiers.length) return [];
    const whens = tiers.map((t) => {
      const why: Why = { control: "tokens.quota", scope: { level: "tier", tierId: t.id }, note: `budget: ${t.limits.budget!.tokens} tokens ${t.limits.budget!.period.toLowerCase()}` };
      this.requireTier("tokens.quota", "llm-token-limit", why);
      return el(
        "when",
        { condition: X.tierIs(t.id) },
        [el("llm-token-limit", { "counter-key": X.BUDGET_COUNTER_KEY, "token-quota": t.limits.budget!.tokens, "token-quota-period": t.limits.budget!.period, "estimate-prompt-tokens": false }, undefined, why)],
        why,
      );
    });
    void pid;
    return [el("choose", undefined, whens, whens.flatMap((w) => w.why ?? []))];
  }

  private contentSafety(v: ResolvedValues["contentSafety"], why: Why): XNode {
    const service = this.input.services.contentSafety;
    if (!service) throw invalid("contentSafety", "services.contentSafety is required when content safety is on");
    this.serviceBackend(this.n.contentSafety, service, "https://cognitiveservices.azure.com", "aigov: Azure AI Content Safety for llm-content-safety", "contentSafety");
    if (v.outputType === "FourSeverityLevels") {
      const odd = v.categories.find((c) => c.threshold % 2 !== 0);
      if (odd) throw invalid("contentSafety", `category ${odd.name}: with FourSeverityLevels the threshold must be 0, 2, 4 or 6 (got ${odd.threshold})`);
    }
    const children = [el("categories", { "output-type": v.outputType }, v.categories.map((c) => el("category", { name: c.name, threshold: c.threshold })))];
    if (v.blocklists.length) children.push(el("blocklists", undefined, v.blocklists.map((b) => textEl("id", b))));
    return el(
      "llm-content-safety",
      { "backend-id": this.n.contentSafety, "shield-prompt": v.shieldPrompt, "enforce-on-completions": v.enforceOnCompletions },
      children,
      why,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Models

  private routableModels(project: PolicyProject): RoutableModel[] {
    const allowed = mergeSettings(this.input.settings, project.settings)["models.allowed"];
    const allowedNames = allowed ? new Set(allowed.value) : undefined;
    const out: RoutableModel[] = [];
    for (const model of sortBy(project.models, (m) => m.name)) {
      if (model.status === "blocked") continue;
      if (allowedNames && !allowedNames.has(model.name)) continue;
      out.push(this.model(project, model));
    }
    return out;
  }

  private poolSizes(r: RoutableModel): number[] {
    const eff = r.eff["regions.allowed"];
    const backends = r.model.backends.filter((b) => !eff || eff.value.includes(b.region));
    if (!r.model.abSplit) return [backends.length];
    return r.model.abSplit.map((s) => backends.filter((b) => b.version === s.version).length);
  }

  private model(project: PolicyProject, model: PolicyModel): RoutableModel {
    const pid = project.id;
    const mid = model.id;
    const eff = mergeSettings(this.input.settings, project.settings, model.settings);
    const routing: Why = { control: "routing", scope: { level: "model", projectId: pid, modelId: mid } };
    const block: XNode[] = [];

    const regions = eff["regions.allowed"];
    const backends = sortBy(
      model.backends.filter((b) => !regions || regions.value.includes(b.region)),
      (b) => b.id,
    );
    // Versions of an A/B split that still have a backend, sorted; index = pool suffix.
    const split = model.abSplit ? sortBy(model.abSplit, (s) => s.version).filter((s) => backends.some((b) => b.version === s.version)) : undefined;

    if (!backends.length || (split && !split.length)) {
      const w = regions ? this.why("regions.allowed", regions, pid, mid, "no backend in an allowed region") : routing;
      block.push(this.forbidden("model_unavailable_in_region", "The model has no backend in a region this project may use.", w));
      return { model, eff, pool: "", retries: 0, block };
    }

    // Data classes apply only where a data-class rule is configured (dataClass.allowed at some scope):
    // then the request must carry x-aigov-data-class with a class in that list intersected with the
    // model's own classes. Without a rule, requests need no header (stock clients work unchanged).
    const dcSetting = eff["dataClass.allowed"];
    let dataClasses: string[] | undefined;
    if (dcSetting) {
      const own = model.allowedDataClasses ? new Set(model.allowedDataClasses) : undefined;
      dataClasses = dcSetting.value.filter((d) => !own || own.has(d)).sort(byCodePoint);
    }
    if (dcSetting && dataClasses) {
      const w = this.why("dataClass.allowed", dcSetting, pid, mid, model.allowedDataClasses ? "intersected with the model's data classes" : undefined);
      block.push(
        dataClasses.length
          ? el(
              "check-header",
              { name: DATA_CLASS_HEADER, "failed-check-httpcode": 403, "failed-check-error-message": "The request's data class is not allowed for this model", "ignore-case": true },
              dataClasses.map((d) => textEl("value", d)),
              w,
            )
          : this.forbidden("data_class_not_allowed", "No data class is allowed for this model.", w),
      );
    }

    if (model.status === "deprecated" && model.sunsetDate) {
      const w: Why = { control: "routing", scope: routing.scope, note: "deprecated model: Sunset/Deprecation response headers" };
      block.push(el("set-variable", { name: VAR.sunset, value: imfFixdate(model.sunsetDate) }, undefined, w));
      if (model.deprecatedAt) block.push(el("set-variable", { name: VAR.deprecation, value: unixSeconds(model.deprecatedAt) }, undefined, w));
    }

    // Model-scope overrides: mark the model so the project-level element skips it, then apply its own value.
    if (modelSets(model, "contentSafety")) {
      const cs = eff.contentSafety;
      const w = cs ? this.why("contentSafety", cs, pid, mid) : { control: "contentSafety" as const, scope: routing.scope, note: "switched off for this model" };
      block.push(el("set-variable", { name: VAR.ownContentSafety, value: true }, undefined, w));
      if (cs) block.push(this.contentSafety(cs.value, w));
    }
    // A model's own limit is one more counter (the model is in its key); the key's and the project's still count.
    for (const [control, kind] of [
      ["tokens.perMinute", "tpm"],
      ["tokens.quota", "tq"],
    ] as const) {
      if (!modelSets(model, control)) continue;
      const r = eff[control];
      if (r) block.push(this.tokenLimit(kind, r.value, r.value.per, true, this.why(control, r, pid, mid)));
    }

    const auth = backends[0]?.auth;
    if (auth?.type === "managedIdentity") {
      block.push(el("authentication-managed-identity", { resource: auth.resource, "client-id": auth.clientId }, undefined, { ...routing, note: "backend authentication" }));
    }

    let pool: string;
    if (split && split.length > 1) {
      const total = split.reduce((n, s) => n + s.weight, 0);
      const w: Why = { control: "routing", scope: routing.scope, note: `A/B split ${split.map((s) => `${s.version}:${s.weight}`).join(", ")}` };
      const versionPools = split.map((s, i) => this.pool(project, model, eff, backends.filter((b) => b.version === s.version), i, s.version));
      let cumulative = 0;
      const whens = split.slice(0, -1).map((s, i) => {
        cumulative += s.weight;
        return el("when", { condition: X.abBelow(cumulative) }, [el("set-variable", { name: VAR.backend, value: versionPools[i] ?? "" })]);
      });
      whens.push(el("otherwise", undefined, [el("set-variable", { name: VAR.backend, value: versionPools[versionPools.length - 1] ?? "" })]));
      block.push(el("set-variable", { name: VAR.abRoll, value: X.abRoll(total) }, undefined, w), el("choose", undefined, whens, w));
      pool = versionPools[0] ?? "";
    } else if (split && split.length === 1) {
      const only = split[0]!;
      pool = this.pool(project, model, eff, backends.filter((b) => b.version === only.version), 0, only.version);
    } else {
      pool = this.pool(project, model, eff, backends, undefined);
    }
    const fo = eff.failover;
    const largest = Math.max(0, ...(split ? split.map((s) => backends.filter((b) => b.version === s.version).length) : [backends.length]));
    const retries = fo?.value.retry.enabled ? Math.min(fo.value.retry.count ?? Math.min(29, largest - 1), 50) : 0;
    return { model, eff, pool, retries: Math.max(0, retries), block };
  }

  /**
   * A tenant-wide backend the GenAI policies call themselves (content safety, embeddings). The policies
   * authenticate with the backend's managed-identity credential (the Content Safety and semantic-cache
   * references require it; resource https://cognitiveservices.azure.com, with a trailing slash for
   * the embeddings backend as the semantic-cache guide writes it). ADR 009 records that this backend
   * property is documented on Learn and in the portal but not in the published REST specifications.
   */
  private serviceBackend(id: string, service: { url: string; clientId?: string | undefined }, resource: string, description: string, control: ControlId) {
    if (this.serviceBackends.has(id)) return;
    this.serviceBackends.add(id);
    const backend: BackendArtifact = { kind: "backend", id, type: "Single", url: service.url, description, managedIdentity: { resource, ...(service.clientId ? { clientId: service.clientId } : {}) } };
    this.backends.push(backend);
    this.explainArtifact({ ref: artifactRef(backend), path: "/", control, scope: TENANT, note: "shared service (services in the compiler input)" });
  }

  private forbidden(code: string, message: string, why: Why | Why[]): XNode {
    return el(
      "return-response",
      undefined,
      [
        el("set-status", { code: 403, reason: "Forbidden" }),
        el("set-header", { name: "Content-Type", "exists-action": "override" }, [textEl("value", "application/json")]),
        textEl("set-body", JSON_ERROR(code, message)),
      ],
      why,
    );
  }

  /** Emits the Single backends of a pool and the pool itself; returns the pool id. */
  private pool(project: PolicyProject, model: PolicyModel, eff: EffectiveSettings, members: ModelBackend[], versionIndex?: number, version?: string): string {
    const pid = project.id;
    const mid = model.id;
    const id = this.n.pool(pid, mid, versionIndex);
    const label = `${project.name} / ${model.displayName ?? model.name}`;
    const fo = eff.failover;
    const routing: Why = { control: "routing", scope: { level: "model", projectId: pid, modelId: mid } };
    let circuitBreaker: { rules: CircuitBreakerRule[] } | undefined;
    if (fo) {
      const w = this.why("failover", fo, pid, mid);
      this.requireTier("failover", "backend circuit breakers", w);
      const cb = fo.value.circuitBreaker;
      circuitBreaker = {
        rules: [
          {
            name: "aigov-breaker",
            failureCondition: { count: cb.failureCount, interval: cb.failureInterval, statusCodeRanges: cb.statusCodes.map((r) => ({ min: r.min, max: r.max })) },
            tripDuration: cb.tripDuration,
            acceptRetryAfter: cb.acceptRetryAfter,
          },
        ],
      };
    }
    for (const b of members) {
      const backend: BackendArtifact = { kind: "backend", id: this.n.backend(b.id), type: "Single", url: backendUrl(b.url, model), description: `${label} (${b.region})` };
      if (circuitBreaker) backend.circuitBreaker = circuitBreaker;
      if (b.auth.type === "keyVaultSecret") {
        const nv = this.n.namedValue(b.auth.namedValueId);
        backend.credentialHeaders = { [b.auth.header]: [b.auth.header === "Authorization" ? `Bearer {{${nv}}}` : `{{${nv}}}`] };
        if (!this.namedValues.has(nv)) {
          const artifact: NamedValueArtifact = {
            kind: "namedValue",
            id: nv,
            displayName: nv,
            secret: true,
            keyVault: { secretIdentifier: b.auth.secretIdentifier, ...(b.auth.identityClientId ? { identityClientId: b.auth.identityClientId } : {}) },
            tags: ["aigov"],
          };
          this.namedValues.set(nv, artifact);
          this.explainArtifact({ ref: artifactRef(artifact), path: "/", control: "routing", scope: routing.scope, note: "Key Vault-backed backend key" });
        }
      }
      this.backends.push(backend);
      this.explainArtifact({ ref: artifactRef(backend), path: "/", control: "routing", scope: routing.scope });
      if (fo) this.explainArtifact({ ref: artifactRef(backend), path: "/circuitBreaker", ...this.why("failover", fo, pid, mid) });
    }
    if (members.length > MAX_POOL_SIZE) throw invalid("failover", `${id}: a pool holds at most ${MAX_POOL_SIZE} backends`);
    const services = [...members]
      .sort((a, b) => a.priority - b.priority || byCodePoint(a.id, b.id))
      .map((b) => ({ id: `/backends/${this.n.backend(b.id)}`, priority: b.priority, weight: b.weight }));
    const poolArtifact: BackendArtifact = { kind: "backend", id, type: "Pool", description: `${label}${version === undefined ? "" : ` (version ${version})`}`, services };
    this.pools.push(poolArtifact);
    this.explainArtifact({ ref: artifactRef(poolArtifact), path: "/", control: "routing", scope: routing.scope });
    const regions = eff["regions.allowed"];
    if (regions) this.explainArtifact({ ref: artifactRef(poolArtifact), path: "/services", ...this.why("regions.allowed", regions, pid, mid, `regions ${regions.value.join(", ")}`) });
    return id;
  }

  /** The model section of the inbound policy: data lists, the resolve fragment, per-model blocks, the backend. */
  private routing(project: PolicyProject, eff: EffectiveSettings, routable: RoutableModel[], fragments: string[], applied: Set<string>): XNode[] {
    const pid = project.id;
    const allowed = eff["models.allowed"];
    const listWhy: Why = allowed ? this.why("models.allowed", allowed, pid, undefined, `${routable.length} models`) : { control: "routing", scope: { level: "project", projectId: pid }, note: `${routable.length} models` };
    if (!routable.length) {
      return [
        el("return-response", undefined, [
          el("set-status", { code: 404, reason: "Not Found" }),
          el("set-header", { name: "Content-Type", "exists-action": "override" }, [textEl("value", "application/json")]),
          textEl("set-body", JSON_ERROR("model_not_found", "The requested model is not available to this project.")),
        ], listWhy),
      ];
    }
    this.addResolveFragment();
    fragments.push(this.n.fragment("resolve-model"));

    // Number the distinct blocks in model-name order; models with an identical block share a number.
    const groups = new Map<string, { number: number; nodes: XNode[] }>();
    const numbers: number[] = [];
    for (const r of routable) {
      if (!r.block.length) {
        numbers.push(0);
        continue;
      }
      const key = canonical({ name: "block", children: r.block });
      let g = groups.get(key);
      if (!g) {
        g = { number: groups.size + 1, nodes: r.block.map(cloneWithWhy) };
        groups.set(key, g);
      } else {
        mergeWhy(g.nodes, r.block);
      }
      numbers.push(g.number);
    }

    const routingWhy: Why = { control: "routing", scope: { level: "project", projectId: pid } };
    const retries = routable.some((r) => r.retries > 0);
    const out: XNode[] = [
      el("set-variable", { name: VAR.models, value: routable.map((r) => r.model.name).join("|") }, undefined, listWhy),
      el("set-variable", { name: VAR.pools, value: routable.map((r) => r.pool).join("|") }, undefined, routingWhy),
      // The provider's deployment (or model) name is the registry's, never the client's: the backend
      // path and body are rewritten to it, so a key scoped to one model cannot reach another deployment.
      el("set-variable", { name: VAR.deployments, value: routable.map((r) => r.model.deployment ?? r.model.name).join("|") }, undefined, routingWhy),
      el("set-variable", { name: VAR.routes, value: routable.map((r) => routeOf(r.model)).join("|") }, undefined, routingWhy),
    ];
    if (retries) out.push(el("set-variable", { name: VAR.retryCounts, value: routable.map((r) => r.retries).join("|") }, undefined, { control: "failover", scope: { level: "project", projectId: pid }, note: "retries per model: its pool size - 1 (or the configured count)" }));
    if (groups.size) out.push(el("set-variable", { name: VAR.groups, value: numbers.join("|") }, undefined, routingWhy));
    out.push(el("include-fragment", { "fragment-id": this.n.fragment("resolve-model") }, undefined, listWhy));
    if (retries) out.push(el("set-variable", { name: VAR.retries, value: X.MODEL_RETRIES }, undefined, { control: "failover", scope: { level: "project", projectId: pid } }));
    // Right after the model is resolved (unknown and not-allowed models have had their 404), before
    // any model block, cache lookup or token counting runs for a request the key may not make.
    out.push(...this.tierModelScope(project, routable, applied));
    if (groups.size) {
      out.push(el("set-variable", { name: VAR.group, value: X.MODEL_GROUP }, undefined, routingWhy));
      out.push(el("choose", undefined, [...groups.values()].map((g) => el("when", { condition: X.groupIs(g.number) }, g.nodes)), routingWhy));
    }
    out.push(el("set-backend-service", { "backend-id": X.BACKEND }, undefined, routingWhy));
    return out;
  }

  /**
   * Key-tier model scope. For keys of a tier with a model list, the allowed models are the project's
   * routable models (already narrowed by models.allowed and blocked status) intersected with the
   * tier's names; names the project does not have simply drop out. One `when` per tier that narrows
   * this project's list sets that intersection as a literal list; tiers whose list covers every
   * routable model need no element. A tier that leaves nothing answers 403 directly.
   */
  private tierModelScope(project: PolicyProject, routable: RoutableModel[], applied: Set<string>): XNode[] {
    const names = routable.map((r) => r.model.name);
    const owners = new Map<string, string[]>();
    for (const s of project.sharedKeyTiers) owners.set(s.tierId, [...(owners.get(s.tierId) ?? []), s.projectId].sort(byCodePoint));
    const whens: XNode[] = [];
    const checked: Why[] = [];
    for (const tier of this.offeredTiers(applied)) {
      if (tier.models === undefined) continue;
      const listed = new Set(tier.models);
      const allowed = names.filter((n) => listed.has(n));
      if (allowed.length === names.length) continue;
      const from = owners.get(tier.id);
      const shared = from ? `; keys of project ${from.join(", ")} accepted here` : "";
      const why: Why = { control: "models.allowed", scope: { level: "tier", tierId: tier.id }, note: `${allowed.length} of ${names.length} models${shared}` };
      whens.push(
        el(
          "when",
          { condition: X.tierIs(tier.id) },
          [allowed.length ? el("set-variable", { name: VAR.tierModels, value: allowed.join("|") }) : this.forbidden("model_not_allowed", "This key may not use the requested model.", why)],
          why,
        ),
      );
      if (allowed.length) checked.push(why);
    }
    if (!whens.length) return [];
    const out = [el("choose", undefined, whens, whens.flatMap((w) => w.why ?? []))];
    if (checked.length) {
      out.push(el("choose", undefined, [el("when", { condition: X.MODEL_NOT_IN_TIER }, [this.forbidden("model_not_allowed", "This key may not use the requested model.", checked)])], checked));
    }
    return out;
  }

  private deprecationHeaders(routable: RoutableModel[], pid: string): XNode[] {
    const deprecated = routable.filter((r) => r.model.status === "deprecated" && r.pool !== "");
    if (!deprecated.length) return [];
    const w: Why = { control: "routing", scope: { level: "project", projectId: pid }, note: `deprecated: ${deprecated.map((r) => r.model.id).join(", ")}` };
    const out = [
      el("choose", undefined, [
        el("when", { condition: X.HAS_SUNSET }, [el("set-header", { name: "Sunset", "exists-action": "override" }, [textEl("value", X.SUNSET)])]),
      ], w),
    ];
    if (deprecated.some((r) => r.model.deprecatedAt)) {
      out.push(
        el("choose", undefined, [
          el("when", { condition: X.HAS_DEPRECATION }, [el("set-header", { name: "Deprecation", "exists-action": "override" }, [textEl("value", X.DEPRECATION)])]),
        ], w),
      );
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Shared fragments (constant content)

  private addResolveFragment() {
    const why: Why = { control: "routing", scope: TENANT, note: "resolve the requested model" };
    const refuse = (status: 400 | 404, reason: string, code: string, message: string) =>
      el("return-response", undefined, [
        el("set-status", { code: status, reason }),
        el("set-header", { name: "Content-Type", "exists-action": "override" }, [textEl("value", "application/json")]),
        textEl("set-body", JSON_ERROR(code, message)),
      ]);
    this.addFragment(
      this.n.fragment("resolve-model"),
      "aigov: finds the requested model (path or body) in the project's model list, refuses unknown or contradictory requests, selects its pool and rewrites the backend request to the governed deployment",
      [
        // The operation names the model call; order matters (chat-completions also ends in -completions).
        el(
          "choose",
          undefined,
          MODEL_CALLS.map((c) => el("when", { condition: X.callIs(c.name) }, [el("set-variable", { name: VAR.call, value: c.call })])),
        ),
        el("set-variable", { name: VAR.pathModel, value: X.PATH_MODEL }),
        el("set-variable", { name: VAR.bodyModel, value: X.BODY_MODEL }),
        el("choose", undefined, [el("when", { condition: X.MODEL_MISMATCH }, [refuse(400, "Bad Request", "model_mismatch", "The path and the body name different models.")])]),
        el("set-variable", { name: VAR.model, value: X.REQUESTED_MODEL }),
        el("choose", undefined, [el("when", { condition: X.MODEL_MISSING }, [refuse(400, "Bad Request", "model_required", "The request names no model (the deployment in the path or 'model' in the body).")])]),
        el("set-variable", { name: VAR.modelIndex, value: X.MODEL_INDEX }),
        el("choose", undefined, [el("when", { condition: X.MODEL_UNKNOWN }, [refuse(404, "Not Found", "model_not_found", "The requested model is not available to this project.")])]),
        el("set-variable", { name: VAR.backend, value: X.MODEL_POOL }),
        el("set-variable", { name: VAR.deployment, value: X.MODEL_DEPLOYMENT }),
        el("choose", undefined, [
          el("when", { condition: X.ROUTE_IS_AZURE }, [
            el("rewrite-uri", { template: X.AZURE_DEPLOYMENT_PATH, "copy-unmatched-params": true }),
            el("set-query-parameter", { name: "api-version", "exists-action": "skip" }, [textEl("value", DEFAULT_AZURE_OPENAI_API_VERSION)]),
          ]),
          el("otherwise", undefined, [el("rewrite-uri", { template: X.V1_PATH, "copy-unmatched-params": true }), textEl("set-body", X.BODY_WITH_DEPLOYMENT)]),
        ]),
      ],
      why,
    );
  }

  private addOnErrorFragment() {
    this.addFragment(
      this.n.fragment("on-error"),
      "aigov: answers a generic 503 when every backend of a pool is unavailable, without revealing pool details",
      [
        el("choose", undefined, [
          el("when", { condition: X.IS_503 }, [el("return-response", undefined, [el("set-status", { code: 503, reason: "Service Unavailable" })])]),
        ]),
      ],
      { control: "routing", scope: TENANT, note: "generic 503" },
    );
  }
}

function invalid(control: ControlId, message: string): PolicyCompileError {
  return new PolicyCompileError("invalidInput", `${control}: ${message}`, [{ path: control, message }]);
}

/** True when the model's own settings mention the control (even only to switch it off). */
function modelSets(model: PolicyModel, control: "tokens.perMinute" | "tokens.quota" | "contentSafety"): boolean {
  if (control === "contentSafety") return model.settings.contentSafety !== undefined;
  return (control === "tokens.perMinute" ? model.settings.tokens?.perMinute : model.settings.tokens?.quota) !== undefined;
}

function cloneWithWhy(node: XNode): XNode {
  const copy: XNode = { ...node };
  if (node.why) copy.why = [...node.why];
  if (node.children) copy.children = node.children.map(cloneWithWhy);
  return copy;
}

/** Adds the explanations of a structurally equal block to the shared one. */
function mergeWhy(into: XNode[], from: XNode[]) {
  into.forEach((node, i) => {
    const other = from[i];
    if (!other) return;
    if (other.why) node.why = [...(node.why ?? []), ...other.why];
    if (node.children && other.children) mergeWhy(node.children, other.children);
  });
}

/** 2026-07-01 → "Wed, 01 Jul 2026 00:00:00 GMT" (HTTP IMF-fixdate). */
function imfFixdate(isoDate: string): string {
  return new Date(`${isoDate}T00:00:00Z`).toUTCString();
}

/** 2026-07-01 → "1782864000". */
function unixSeconds(isoDate: string): string {
  return String(Date.parse(`${isoDate}T00:00:00Z`) / 1000);
}

/** How a model's backends are called: Azure OpenAI deployment paths, or an OpenAI-compatible base URL with the model in the body. */
function routeOf(model: PolicyModel): "azure" | "v1" {
  return model.provider === "azure-openai" ? "azure" : "v1";
}

/** An Azure OpenAI backend is the resource endpoint: a trailing /openai (a common way to write it) is
 * dropped, because the gateway adds /openai/deployments/<deployment>/… itself. */
function backendUrl(url: string, model: PolicyModel): string {
  return routeOf(model) === "azure" ? url.replace(/\/openai\/?$/, "").replace(/\/$/, "") : url.replace(/\/$/, "");
}
