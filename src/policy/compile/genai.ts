/**
 * The GenAI policies of the models pillar beyond routing and limits: content safety
 * (`llm-content-safety`, per project and per model), the semantic cache (`llm-semantic-cache-lookup`
 * and `-store`) and token metrics (`llm-emit-token-metric`). The first two call tenant-wide service
 * backends (backends.ts `serviceBackend`), which the compiler input must name.
 */
import { createHash } from "node:crypto";
import * as X from "../expressions.js";
import { type KeyTier, type PolicyModel } from "../input.js";
import { VAR } from "../names.js";
import { serviceRegionFit } from "../service-regions.js";
import { type EffectiveSettings, type ResolvedValues } from "../settings.js";
import { el, textEl, type Why, type XNode } from "../xml.js";
import { serviceBackend } from "./backends.js";
import { type Collector, invalid } from "./collector.js";

/** One `llm-content-safety` element (a project's, or a model's own in its block). */
export function contentSafety(c: Collector, v: ResolvedValues["contentSafety"], why: Why): XNode {
  const service = c.input.services.contentSafety;
  if (!service) throw invalid("contentSafety", "services.contentSafety is required when content safety is on");
  const description = "aigov: Azure AI Content Safety for llm-content-safety";
  serviceBackend(c, c.n.contentSafety, service, "https://cognitiveservices.azure.com", description, "contentSafety");
  if (v.outputType === "FourSeverityLevels") {
    const odd = v.categories.find((cat) => cat.threshold % 2 !== 0);
    if (odd) throw invalid("contentSafety", `category ${odd.name}: with FourSeverityLevels the threshold must be 0, 2, 4 or 6 (got ${odd.threshold})`);
  }
  const children = [el("categories", { "output-type": v.outputType }, v.categories.map((cat) => el("category", { name: cat.name, threshold: cat.threshold })))];
  if (v.blocklists.length) children.push(el("blocklists", undefined, v.blocklists.map((b) => textEl("id", b))));
  return el(
    "llm-content-safety",
    { "backend-id": c.n.contentSafety, "shield-prompt": v.shieldPrompt, "enforce-on-completions": v.enforceOnCompletions },
    children,
    why,
  );
}

/** The project's content safety; skipped for models with their own setting (`someModelsOwn`: they mark themselves in their block). */
export function projectContentSafety(c: Collector, eff: EffectiveSettings, pid: string, someModelsOwn: boolean): XNode[] {
  const cs = eff.contentSafety;
  if (!cs) return [];
  const node = contentSafety(c, cs.value, c.why("contentSafety", cs, pid));
  return [someModelsOwn ? el("choose", undefined, [el("when", { condition: X.sharedCondition("cs", undefined) }, [node])], node.why) : node];
}

/**
 * Content-safety levels of key tiers (an agent's key carries its guardrail's level): a second
 * `llm-content-safety` for calls of keys in the tier, after the project's (both must pass). Low blocks
 * high severities only, medium from medium severity with prompt shields, high from low severity.
 */
const TIER_THRESHOLD = { low: 6, medium: 4, high: 2 } as const;
export function tierContentSafety(c: Collector, tiers: readonly KeyTier[]): XNode[] {
  const out: XNode[] = [];
  for (const tier of tiers) {
    if (!tier.contentSafety) continue;
    const why: Why = { control: "contentSafety", scope: { level: "tier", tierId: tier.id }, note: `key tier content safety: ${tier.contentSafety}` };
    const threshold = TIER_THRESHOLD[tier.contentSafety];
    const node = contentSafety(
      c,
      { outputType: "FourSeverityLevels", categories: ["Hate", "SelfHarm", "Sexual", "Violence"].map((name) => ({ name, threshold })), shieldPrompt: tier.contentSafety !== "low", enforceOnCompletions: false, blocklists: [] } as ResolvedValues["contentSafety"],
      why,
    );
    out.push(el("choose", undefined, [el("when", { condition: X.tierIs(tier.id) }, [node], why)], why));
  }
  return out;
}

/**
 * A model whose effective region rule does not allow the embeddings deployment's region (or applies while
 * the deployment states none) does not use the semantic cache: its prompts would be embedded outside the
 * regions it may use (ADR 024). `eff`: the model's effective settings.
 */
export function cacheOutOfRegion(c: Collector, eff: EffectiveSettings): boolean {
  return eff.semanticCache !== undefined && serviceRegionFit(eff, c.input.services.embeddings) !== "ok";
}

/**
 * A deprecated model does not use the semantic cache either: its answers carry `Sunset`/`Deprecation`,
 * set in outbound, and a hit ends the pipeline in inbound with the cached answer (whether APIM runs
 * outbound for a hit is not documented; the local gateway does not): a cached answer would hide the
 * deprecation from its callers (ADR 025).
 */
export function cacheSkipped(c: Collector, model: PolicyModel, eff: EffectiveSettings): boolean {
  return cacheOutOfRegion(c, eff) || (eff.semanticCache !== undefined && model.status === "deprecated");
}

/** In such a model's block: the mark the cache's `choose` reads ({@link semanticCache}). */
export function noCacheMark(c: Collector, eff: EffectiveSettings, pid: string, model: PolicyModel): XNode[] {
  const mid = model.id;
  const regions = eff["regions.allowed"];
  if (!regions || !cacheOutOfRegion(c, eff)) {
    const sc = eff.semanticCache;
    if (!sc || model.status !== "deprecated") return [];
    const note = "no semantic cache: a deprecated model's answers carry Sunset/Deprecation, which a cache hit would not";
    return [el("set-variable", { name: VAR.noCache, value: true }, undefined, c.why("semanticCache", sc, pid, mid, note))];
  }
  const region = c.input.services.embeddings?.region;
  const note = region === undefined ? "no semantic cache: the embeddings deployment states no region" : `no semantic cache: the embeddings deployment's region ${region} is not allowed`;
  return [el("set-variable", { name: VAR.noCache, value: true }, undefined, c.why("regions.allowed", regions, pid, mid, note))];
}

/**
 * The semantic cache's lookup (inbound) and store (outbound), and the embeddings backend they use.
 * `outOfRegion`: how many of the project's routable models may not use it (their blocks set
 * VAR.noCache): with some, both are in a `choose` that skips them; with all (`every`), there is none.
 */
export function semanticCache(
  c: Collector,
  eff: EffectiveSettings,
  pid: string,
  dataClassRule: boolean,
  outOfRegion: "none" | "some" | "every" = "none",
  fingerprint?: string,
): { lookup: XNode; store: XNode } | undefined {
  const sc = eff.semanticCache;
  if (!sc) return undefined;
  const embeddings = c.input.services.embeddings;
  if (!embeddings) throw invalid("semanticCache", "services.embeddings is required when the semantic cache is on");
  // Called as the gateway's system-assigned identity (embeddings-backend-auth): a clientId would be a credential nobody uses.
  // The backend is defined wherever the cache is on, even where no model may use it: a tenant-wide artifact
  // must not come and go with one project's region rule (or an exemption of it); unused, it is sent nothing.
  serviceBackend(c, c.n.embeddings, { url: embeddings.url }, "https://cognitiveservices.azure.com/", "aigov: embeddings deployment for the semantic cache", "semanticCache");
  if (outOfRegion === "every") return undefined;
  const w = c.why("semanticCache", sc, pid);
  // The call too: an embeddings request must never be answered with a cached chat completion of the same text.
  const varyBy = [textEl("vary-by", X.API_ID), textEl("vary-by", X.MODEL), textEl("vary-by", X.MODEL_CALL)];
  // aigov's keys belong to no APIM user (context.User is null for every one), so "user" would partition by
  // nothing — one cache for the whole project. It partitions by key: each key is one person's or workload's.
  if (sc.value.partitionBy.includes("key") || sc.value.partitionBy.includes("user")) varyBy.push(textEl("vary-by", X.SUBSCRIPTION_ID));
  // Where a data-class rule applies, by the class the request declared (checked before the lookup): an
  // answer produced from a confidential prompt must never come back to a request declared public.
  if (dataClassRule) varyBy.push(textEl("vary-by", X.DATA_CLASS_PARTITION));
  // The settings that shape or vet an answer, as a literal: a change to any of them (content safety
  // tightened, a model pointed at another deployment) starts a fresh partition, so nothing cached under the
  // former settings is served under the new ones. A hit is never re-checked: it ends inbound.
  if (fingerprint) varyBy.push(textEl("vary-by", fingerprint));
  const lookup = el(
    "llm-semantic-cache-lookup",
    {
      "score-threshold": sc.value.scoreThreshold,
      "embeddings-backend-id": c.n.embeddings,
      "embeddings-backend-auth": "system-assigned",
      "ignore-system-messages": sc.value.ignoreSystemMessages,
      "max-message-count": sc.value.maxMessageCount,
    },
    varyBy,
    w,
  );
  const store = el("llm-semantic-cache-store", { duration: sc.value.durationSeconds }, undefined, w);
  if (outOfRegion === "none") return { lookup, store };
  // The mark is set in the model's block (inbound, before the lookup) and read again in outbound: a request
  // to such a model is neither looked up nor stored, so its prompt never reaches the embeddings deployment.
  const guarded = (node: XNode) => el("choose", undefined, [el("when", { condition: X.sharedCondition("cache", undefined) }, [node])], w);
  return { lookup: guarded(lookup), store: guarded(store) };
}

/**
 * The literal the semantic cache also varies by ({@link semanticCache}): a digest of every setting of the
 * project that decides what an answer is or whether it may be given — the content-safety values in force
 * (the project's, each model's own, the key tiers' levels) and each routable model's deployment (provider,
 * deployment name, backends' URLs and versions, A/B split). Fixed length (`s` + 16 hex characters), no
 * expression: APIM concatenates vary-by values, and a fixed-length literal cannot shift another value's
 * boundary.
 */
export function answerFingerprint(
  eff: EffectiveSettings,
  routable: readonly { model: PolicyModel; eff: EffectiveSettings; pool: string }[],
  tiers: readonly KeyTier[],
): string {
  const models = [...routable]
    .filter((r) => r.pool !== "")
    .sort((a, b) => (a.model.name < b.model.name ? -1 : a.model.name > b.model.name ? 1 : 0))
    .map((r) => ({
      name: r.model.name,
      provider: r.model.provider,
      deployment: r.model.deployment ?? r.model.name,
      backends: r.model.backends.map((b) => `${b.url}|${b.version ?? ""}`).sort(),
      abSplit: r.model.abSplit ? [...r.model.abSplit].sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0)) : null,
      contentSafety: r.eff.contentSafety?.value ?? null,
    }));
  const tierLevels = tiers.filter((t) => t.contentSafety).map((t) => `${t.id}:${t.contentSafety}`).sort();
  const digest = createHash("sha256").update(JSON.stringify({ contentSafety: eff.contentSafety?.value ?? null, tierLevels, models })).digest("hex");
  return `s${digest.slice(0, 16)}`;
}

/** `metrics.tokens`: token counts by the configured dimensions. */
export function tokenMetrics(c: Collector, eff: EffectiveSettings, pid: string): XNode[] {
  const mt = eff["metrics.tokens"];
  if (!mt) return [];
  const names = { project: "API ID", key: "Subscription ID", model: "Model" } as const;
  return [
    el(
      "llm-emit-token-metric",
      { namespace: mt.value.namespace },
      mt.value.dimensions.map((d) => el("dimension", d === "model" ? { name: names[d], value: X.MODEL } : { name: names[d] })),
      c.why("metrics.tokens", mt, pid),
    ),
  ];
}
