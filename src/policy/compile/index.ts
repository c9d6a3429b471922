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
 *   run. So no tenant's settings are compiled into the global policy: it is the instance baseline
 *   (instance.ts, ADR 023), the same for every tenant, and every project document starts each section
 *   with `<base/>`.
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
 * Deprecated models keep working until their sunset. Their responses carry `Sunset: <IMF-fixdate>` (RFC
 * 8594, from `sunsetDate`) and, when `deprecatedAt` is known, `Deprecation: @<unix-seconds>` (RFC 9745),
 * set in outbound from variables the model's block sets in inbound. From the sunset instant on (00:00 UTC
 * of `sunsetDate`, by the gateway's clock: `X.sunsetPassed`) the sunset gate (models.ts `sunsetGate`)
 * refuses the call, 410 `model_sunset`, with no publish needed: before the request rate and every other
 * limit, and before the model's block (its region rule included), so a call to a model that is gone
 * spends nothing (ADR 027).
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
 *
 * ## Files
 *
 * One file per artifact family, all writing into one collector (collector.ts); this file parses
 * the input, runs the projects in id order, then size-checks, sorts and explains what they emitted.
 *
 * - project.ts: a project's API policy (its sections, in order: the request-level controls, then
 *   the models pillar's) and the API artifact it attaches to.
 * - tiers.ts: key tier products and their policies, the fail-closed tier guard, a tier's model
 *   scope and key budgets.
 * - limits.ts: request rate and token limits (per project, per key, per tier).
 * - models.ts: the routable models and each model's own block (data class, deprecation,
 *   model-scope overrides, managed identity, A/B split, retries).
 * - routing.ts: the models section of the API policy (model and pool lists, shared blocks, backend
 *   selection), the retry section and the deprecation headers.
 * - backends.ts: Single backends, pools, Key Vault named values, shared service backends.
 * - genai.ts: content safety, the semantic cache and token metrics.
 * - fragments.ts: the policy fragments every project shares (resolve-model, on-error).
 *
 * A new pillar's artifacts (tools, agents) go in a sibling file called from project.ts.
 */
import { artifactRef, type ArtifactRef, type GatewayArtifact, type PolicyScope } from "../../ports/gateway.js";
import { PolicyCompileError, PolicySizeError, type PolicyIssue } from "../errors.js";
import { CompilerInput, type CompilerInputIn } from "../input.js";
import { type ExplainEntry } from "../xml.js";
import { Collector, policySizeLimit, sortBy } from "./collector.js";
import { compileProject } from "./project.js";

export type { ExplainEntry, ScopeRef } from "../xml.js";
export { SECRET_HEADERS } from "./project.js";

export interface CompileResult {
  /** In publish order: named values, single backends, pools, fragments, APIs, products, policies (each sorted by id). */
  artifacts: GatewayArtifact[];
  /** Why each generated element or artifact exists: the control and the scope that produced it. */
  explain: ExplainEntry[];
  /** UTF-8 size of every policy and fragment document. */
  sizes: { ref: ArtifactRef; bytes: number }[];
}

export { CONSUMPTION_POLICY_SIZE_LIMIT_BYTES, POLICY_SIZE_LIMIT_BYTES } from "./collector.js";

/** Compiles one tenant. Throws PolicyCompileError (invalid input, unsupported on the gateway tier)
 * or PolicySizeError (a document over the limit). */
export function compile(raw: CompilerInputIn): CompileResult {
  const parsed = CompilerInput.safeParse(raw);
  if (!parsed.success) {
    const issues: PolicyIssue[] = parsed.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
    const first = issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join("; ");
    throw new PolicyCompileError("invalidInput", `invalid compiler input: ${first}`, issues);
  }
  const c = new Collector(parsed.data);
  for (const project of sortBy(c.input.projects, (p) => p.id)) compileProject(c, project);
  checkSizes(c);
  return assemble(c);
}

/** Every fragment, and every policy with the fragments it includes, within the gateway tier's limit. */
function checkSizes(c: Collector) {
  const limit = policySizeLimit(c);
  const check = (ref: string, scope: PolicyScope | undefined, bytes: number) => {
    if (bytes > limit) throw new PolicySizeError(ref, scope, bytes, limit);
  };
  const fragmentBytes = new Map<string, number>();
  for (const { artifact } of c.fragments.values()) {
    const bytes = Buffer.byteLength(artifact.xml, "utf8");
    check(artifactRef(artifact), undefined, bytes);
    fragmentBytes.set(artifact.id, bytes);
  }
  for (const p of c.policies) {
    const bytes = Buffer.byteLength(p.artifact.xml, "utf8");
    const expanded = bytes + p.fragments.reduce((n, f) => n + (fragmentBytes.get(f) ?? 0), 0);
    check(artifactRef(p.artifact), p.artifact.scope, expanded);
  }
}

/** The artifacts in publish order, their document sizes and their explanations. */
function assemble(c: Collector): CompileResult {
  const fragments = sortBy([...c.fragments.values()], (f) => f.artifact.id);
  const policies = sortBy(c.policies, (p) => artifactRef(p.artifact));
  const artifacts: GatewayArtifact[] = [
    ...sortBy([...c.namedValues.values()], (n) => n.id),
    ...sortBy(c.backends, (b) => b.id),
    ...sortBy(c.pools, (b) => b.id),
    ...fragments.map((f) => f.artifact),
    ...sortBy(c.apis, (a) => a.id),
    ...sortBy(c.products, (p) => p.id),
    ...policies.map((p) => p.artifact),
  ];
  const sizes: CompileResult["sizes"] = [];
  for (const a of artifacts) {
    if (a.kind === "fragment" || a.kind === "policy") sizes.push({ ref: artifactRef(a), bytes: Buffer.byteLength(a.xml, "utf8") });
  }
  // In artifact order; the entries of one artifact keep their document order.
  const explain: ExplainEntry[] = [];
  const push = (entries: ExplainEntry[] | undefined) => {
    for (const e of entries ?? []) explain.push(e);
  };
  for (const a of artifacts) if (a.kind !== "fragment" && a.kind !== "policy") push(c.nonXmlExplain.get(artifactRef(a)));
  for (const f of fragments) push(f.explain);
  for (const p of policies) push(p.explain);
  return { artifacts, explain, sizes };
}
