/**
 * A project: its API policy, the API it attaches to and its key tier products. The policy's sections
 * are built here in document order from the families' parts: the request-level controls every
 * project has (correlation id, header rules, tier guard, request rate, prompt size), then, with the
 * models pillar on, the models' (routing.ts, genai.ts, limits.ts, tiers.ts). A new pillar adds its
 * part here, from a sibling file.
 */
import { artifactRef, type ApiArtifact } from "../../ports/gateway.js";
import * as X from "../expressions.js";
import { type PolicyProject } from "../input.js";
import { MODEL_OPERATIONS, SUBSCRIPTION_KEY_HEADER, VAR } from "../names.js";
import { type EffectiveSettings, mergeSettings } from "../settings.js";
import { el, type ScopeRef, textEl, type Why, type XNode } from "../xml.js";
import { byCodePoint, type Collector, JSON_ERROR, jsonResponse, STRUCTURE, TENANT } from "./collector.js";
import { addOnErrorFragment } from "./fragments.js";
import { answerFingerprint, cacheSkipped, projectContentSafety, semanticCache, tierContentSafety, tokenMetrics } from "./genai.js";
import { requestRate, tokenLimits } from "./limits.js";
import { modelSets, routableModels, sunsetGate } from "./models.js";
import { deprecationHeaders, keyIsolation, retrySection, routing } from "./routing.js";
import { appliedTiers, budgets, tierProduct, tiersApplied, unknownTierGuard } from "./tiers.js";
import { compileTools } from "./tools.js";
import { compileAgents } from "./agents.js";
import { browserAccess } from "./cors.js";

/** Headers deleted in both directions when `headers.stripSecrets` is on (plus the configured extras). */
export const SECRET_HEADERS = ["api-key", "authorization", "ocp-apim-subscription-key", "proxy-authorization", "x-api-key"] as const;

/**
 * Headers a model provider puts on its answers about its deployment and its own call, never about the
 * caller: deleted from every answer of a project's models API (outbound, before the semantic cache's
 * store, so a hit never replays them either), whatever `headers.stripSecrets` says.
 * - The rate-limit headers OpenAI and Azure OpenAI send (`x-ratelimit-*`) count the deployment every key
 *   shares: a client pacing itself on them would believe it had the deployment's tokens left, not its
 *   key's. What the caller's own limits have left is in `x-aigov-tokens-remaining-*` (limits.ts).
 * - The provider's ids of the call (`x-request-id`, Azure OpenAI's `apim-request-id`, its echo of the
 *   client's `x-ms-client-request-id`) and its placement (`x-ms-region`, `x-ms-deployment-name`,
 *   `azureml-model-session`): on a cache hit they are another caller's call's; the correlation id a
 *   caller can rely on is the `correlationId` setting's echo, set after the store.
 */
export const PROVIDER_RESPONSE_HEADERS = [
  "apim-request-id",
  "azureml-model-session",
  "x-ms-client-request-id",
  "x-ms-deployment-name",
  "x-ms-region",
  "x-ratelimit-limit-requests",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-requests",
  "x-ratelimit-reset-tokens",
  "x-request-id",
] as const;

/** The sections of a policy document, each starting with `<base/>`, and the fragments it includes. */
interface Sections {
  inbound: XNode[];
  backend: XNode[];
  outbound: XNode[];
  onError: XNode[];
  fragments: string[];
}

export function compileProject(c: Collector, project: PolicyProject) {
  const pid = project.id;
  const eff = mergeSettings(c.input.settings, project.settings);
  const modelsOn = project.pillars.models;
  // The models come first: their backends, pools and named values, and whatever in them fails the input.
  const routable = modelsOn ? routableModels(c, project) : [];
  const s: Sections = {
    // Browser access first, before <base/>: a preflight is answered by the first cors policy of the effective inbound.
    inbound: [...projectBrowserAccess(c, eff, pid, modelsOn), el("base", undefined, undefined, STRUCTURE)],
    backend: [el("base", undefined, undefined, STRUCTURE)],
    outbound: [el("base", undefined, undefined, STRUCTURE)],
    onError: [el("base", undefined, undefined, STRUCTURE)],
    fragments: [],
  };

  s.inbound.push(...requestHeaders(c, eff, pid));
  // Tiers this API applies: its own and those of other projects' keys it accepts. A tier is told
  // apart by its id (what its product policy sets), the same in every project that applies it.
  const applied = appliedTiers(project);
  s.inbound.push(...unknownTierGuard(pid, applied));
  // The tiers of this project's own keys: only theirs can relax this project's per-key limits (exemptions).
  const offered = new Set(project.keyTiers);
  // The size of the body the caller sent, on its bytes: before anything reads the body as JSON (the sunset
  // gate, the models' routing — whose rewrite of an OpenAI-style request, the governed deployment set in
  // `model`, re-serializes the body, indented), so a body over the limit is never parsed and its answer is
  // 413 whatever it holds. It calls no paid service: like the header rules and the tier guard it is judged
  // before the request rate.
  s.inbound.push(...promptSize(c, eff, pid));
  // Every request counts against the request rate, a cache hit too (a key's requestsPerMinute is the calls
  // it may make), and before content safety and the cache lookup: a limited caller cannot make the gateway
  // call those paid services without bound. (The docs' rate limit right after the lookup would count only
  // misses and leave both unbounded.)
  // Except a call to a model past its sunset: refused first, it spends nothing (models.ts sunsetGate).
  s.inbound.push(...sunsetGate(routable, pid));
  s.inbound.push(...requestRate(c, eff, pid, applied, offered));

  // The semantic cache's store: written in outbound by responseHeaders, after what is deleted from answers.
  let store: XNode | undefined;
  if (modelsOn) {
    s.inbound.push(...keyIsolation(pid));
    s.inbound.push(...routing(c, project, eff, routable, s.fragments, applied));
    const retry = retrySection(c, eff, pid, routable);
    if (retry) s.backend = retry;
  }

  if (modelsOn) {
    s.inbound.push(...projectContentSafety(c, eff, pid, routable.some((r) => modelSets(r.model, "contentSafety"))));
    s.inbound.push(...tierContentSafety(c, tiersApplied(c, applied)));
    // Partitioned by the declared data class wherever a data-class rule applies to some model.
    // Models whose region rule excludes the embeddings deployment skip it (ADR 024); a model with no backend in
    // its regions is refused in its block and never gets that far, so it counts as either.
    // Deprecated models skip it too: a hit would come without their Sunset/Deprecation headers (ADR 025).
    const outside = routable.filter((r) => r.pool === "" || cacheSkipped(c, r.model, r.eff));
    const outOfRegion = !outside.some((r) => r.pool !== "") ? "none" : outside.length === routable.length ? "every" : "some";
    const cache = semanticCache(c, eff, pid, routable.some((r) => r.eff["dataClass.allowed"] !== undefined), outOfRegion, answerFingerprint(eff, routable, tiersApplied(c, applied)));
    // Every limit that applies is its own counter and all of them run: the key's (tier or project
    // per-key), the project's, the model's (in its block) and the key's budget; the tightest bites.
    s.inbound.push(...tokenLimits(c, "tokens.perMinute", eff, pid, applied, offered));
    s.inbound.push(...tokenLimits(c, "tokens.quota", eff, pid, applied, offered));
    s.inbound.push(...budgets(c, applied));
    s.inbound.push(...tokenMetrics(c, eff, pid));
    // The lookup after every limit: a hit ends inbound with the cached answer, so a limit placed after it
    // would never see the request — a spent quota or budget would still get cached answers. Statements run
    // in document order; a hit spends no tokens (nothing reached a backend, no usage came back).
    if (cache) s.inbound.push(cache.lookup);
    store = cache?.store;
    s.outbound.push(...deprecationHeaders(routable, pid));
    s.outbound.push(backendCredentialRefused(pid));
  }

  responseHeaders(c, eff, pid, modelsOn, s, store);

  const doc = el(
    "policies",
    undefined,
    [
      el("inbound", undefined, s.inbound, STRUCTURE),
      el("backend", undefined, s.backend, STRUCTURE),
      el("outbound", undefined, s.outbound, STRUCTURE),
      el("on-error", undefined, s.onError, STRUCTURE),
    ],
    STRUCTURE,
  );
  c.addPolicy({ type: "api", apiId: c.n.api(pid) }, doc, s.fragments);
  projectApi(c, project);

  compileTools(c, project);
  compileAgents(c, project);
  for (const tierId of [...project.keyTiers].sort(byCodePoint)) tierProduct(c, project, tierId);
}

/**
 * The project API's cors statement: a page may send the headers the settings ask callers for (required
 * headers, the correlation id) and read the correlation id echoed back.
 */
function projectBrowserAccess(c: Collector, eff: EffectiveSettings, pid: string, modelsOn: boolean): XNode[] {
  const correlation = eff.correlationId ? [eff.correlationId.value.header] : [];
  const required = eff["headers.required"]?.value.map((h) => h.name) ?? [];
  return browserAccess(c, {
    kind: "models",
    methods: modelsOn ? MODEL_OPERATIONS.map((o) => o.method) : [],
    extraRequestHeaders: [...required, ...correlation],
    extraResponseHeaders: correlation,
    scope: { level: "project", projectId: pid },
  });
}

/** The headers `headers.stripSecrets` deletes, sorted ([] when it is off). */
function strippedHeaders(eff: EffectiveSettings): string[] {
  const strip = eff["headers.stripSecrets"];
  return strip ? [...new Set([...SECRET_HEADERS, ...strip.value.extra])].sort(byCodePoint) : [];
}

/** The start of inbound: the correlation id, secret headers removed, required headers checked. */
function requestHeaders(c: Collector, eff: EffectiveSettings, pid: string): XNode[] {
  const out: XNode[] = [];
  const ci = eff.correlationId;
  if (ci) {
    const w = c.why("correlationId", ci, pid);
    out.push(el("set-header", { name: ci.value.header, "exists-action": "skip" }, [textEl("value", X.REQUEST_ID)], w));
  }

  const strip = eff["headers.stripSecrets"];
  if (strip) {
    const w = c.why("headers.stripSecrets", strip, pid);
    for (const h of strippedHeaders(eff)) out.push(el("set-header", { name: h, "exists-action": "delete" }, undefined, w));
  }

  const required = eff["headers.required"];
  if (required) {
    const w = c.why("headers.required", required, pid);
    for (const h of required.value) {
      out.push(
        el(
          "check-header",
          { name: h.name, "failed-check-httpcode": 400, "failed-check-error-message": REQUIRED_HEADER_MESSAGE, "ignore-case": true },
          (h.values ?? []).map((v) => textEl("value", v)),
          w,
        ),
      );
      if (h.values) out.push(...exactlyOneAllowed(h.name, h.values, w));
    }
  }
  return out;
}

const REQUIRED_HEADER_MESSAGE = "A required header is missing or has a value that is not allowed";

/**
 * A required header with allowed values carries exactly one of them. `check-header` is documented for one
 * value; how it treats several (`prod, evil`, or the header twice) is not, and the local gateway's accepts
 * such a value when any part matches. So the value, whole (trimmed, case ignored as `check-header` is told
 * to), must also be one of the allowed values: the outcome is then the same whatever `check-header` does
 * with several values. Scopes whose values have none in common leave none: every request is refused (an
 * empty list allows nothing; `check-header` without values would take any). Same 400 and body as
 * `check-header`'s.
 */
function exactlyOneAllowed(name: string, values: readonly string[], why: Why): XNode[] {
  const refuse = jsonResponse(400, "Bad Request", JSON.stringify({ statusCode: 400, message: REQUIRED_HEADER_MESSAGE }), why);
  const allowed = [...new Set(values.map((v) => v.toLowerCase()))].sort(byCodePoint);
  if (!allowed.length) return [refuse];
  return [
    el("set-variable", { name: VAR.requiredHeader, value: name.toLowerCase() }, undefined, why),
    el("set-variable", { name: VAR.requiredValues, value: allowed.join("|") }, undefined, why),
    el("choose", undefined, [el("when", { condition: X.REQUIRED_HEADER_OUTSIDE }, [refuse])], why),
  ];
}

/** `prompt.maxBytes`: a 413 for a request body over the limit. */
function promptSize(c: Collector, eff: EffectiveSettings, pid: string): XNode[] {
  const maxBytes = eff["prompt.maxBytes"];
  if (!maxBytes) return [];
  return [
    el("choose", undefined, [
      el("when", { condition: X.promptTooLarge(maxBytes.value) }, [
        jsonResponse(413, "Payload Too Large", JSON_ERROR("prompt_too_large", "The request body exceeds the size this project allows.")),
      ]),
    ], c.why("prompt.maxBytes", maxBytes, pid, undefined, `${maxBytes.value} bytes`)),
  ];
}

/**
 * A model backend that refuses the gateway's credential (401): its caller gets 502 with a body of the
 * gateway's own. The caller's key was accepted, so a 401 would mislead it, and a provider's text may
 * quote part of the provider key (OpenAI's names the key it refused, masked but for a few characters).
 */
function backendCredentialRefused(pid: string): XNode {
  const why: Why = { control: "routing", scope: { level: "project", projectId: pid }, note: "a backend refusing the gateway's credential: 502, the provider's text withheld" };
  const body = JSON_ERROR("backend_credential_refused", "The model's backend refused the gateway's credential for it. The platform team must renew it.");
  return el("choose", undefined, [el("when", { condition: X.BACKEND_UNAUTHORIZED }, [el("set-status", { code: 502, reason: "Bad Gateway" }), el("set-header", { name: "Content-Type", "exists-action": "override" }, [textEl("value", "application/json")]), textEl("set-body", body)])], why);
}

/**
 * The end of outbound: secret headers removed, the semantic cache's store (`store`), the correlation id
 * echoed; of on-error: the correlation id echoed, the on-error fragment (models). The store keeps the
 * answer as it stands when it runs (what APIM keeps is not documented; ADR 009) and a hit replays it
 * without running outbound: so it runs after the deletions (a hit must not carry what they removed) and
 * before the echo (a hit must not carry another caller's id). ADR 025.
 */
function responseHeaders(c: Collector, eff: EffectiveSettings, pid: string, modelsOn: boolean, s: Sections, store: XNode | undefined) {
  const ci = eff.correlationId;
  const stripped = strippedHeaders(eff);
  const strip = eff["headers.stripSecrets"];
  if (strip) s.outbound.push(...stripped.map((h) => el("set-header", { name: h, "exists-action": "delete" }, undefined, c.why("headers.stripSecrets", strip, pid))));
  const deleted = new Set(stripped.map((h) => h.toLowerCase()));
  if (modelsOn) {
    const why: Why = { control: "routing", scope: { level: "project", projectId: pid }, note: "the provider's headers about its deployment and its call (rate limits, request ids, placement), never the caller's" };
    for (const h of PROVIDER_RESPONSE_HEADERS.filter((n) => !deleted.has(n))) {
      s.outbound.push(el("set-header", { name: h, "exists-action": "delete" }, undefined, why));
      deleted.add(h);
    }
  }
  // Whatever a backend echoed under the correlation header is its call's: not kept for a hit (the echo below sets it afresh).
  if (store && ci && !deleted.has(ci.value.header.toLowerCase())) {
    s.outbound.push(el("set-header", { name: ci.value.header, "exists-action": "delete" }, undefined, c.why("correlationId", ci, pid, undefined, "not stored with the cached answer")));
  }
  if (store) s.outbound.push(store);
  if (ci) {
    const w = c.why("correlationId", ci, pid);
    const echo = () => el("set-header", { name: ci.value.header, "exists-action": "override" }, [textEl("value", X.correlationEcho(ci.value.header))], w);
    // A correlation header listed among the deleted ones stays deleted (as when the deletions ran last).
    if (!stripped.some((h) => h.toLowerCase() === ci.value.header.toLowerCase())) s.outbound.push(echo());
    s.onError.push(echo());
  }
  if (modelsOn) {
    // After the correlation header: the fragment may end the pipeline with return-response.
    const why: Why = { control: "routing", scope: TENANT, note: "generic 503 without pool details" };
    s.onError.push(el("include-fragment", { "fragment-id": c.n.fragment("on-error") }, undefined, why));
    s.fragments.push(c.n.fragment("on-error"));
    addOnErrorFragment(c);
  }
}

/** The API the project's policy attaches to; its operations are the pillars' traffic (today: models). */
function projectApi(c: Collector, project: PolicyProject) {
  const pid = project.id;
  const api: ApiArtifact = {
    kind: "api",
    id: c.n.api(pid),
    // The id in the name: APIM does not need display names to be unique, people reading the portal do.
    displayName: `${project.name} (${pid})`,
    ...(project.description ? { description: project.description } : {}),
    path: c.n.apiPath(pid),
    protocols: ["https"],
    subscriptionRequired: true,
    subscriptionKeyHeaderName: SUBSCRIPTION_KEY_HEADER,
    operations: project.pillars.models ? MODEL_OPERATIONS.map((o) => ({ ...o })) : [],
  };
  c.apis.push(api);
  const scope: ScopeRef = { level: "project", projectId: pid };
  const ref = artifactRef(api);
  c.explainArtifact({ ref, path: "/", control: "structure", scope, note: "the project's API: its policy is the project's policy" });
  c.explainArtifact({
    ref,
    path: "/operations",
    control: "routing",
    scope,
    note: project.pillars.models
      ? "models pillar on: the OpenAI-style, Azure OpenAI v1 and Azure OpenAI deployment routes (ADR 009)"
      : "models pillar off: no operations, nothing is routable",
  });
}
