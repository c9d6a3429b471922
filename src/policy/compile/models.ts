/**
 * The models pillar's models: which of a project's models are routable (not blocked, within
 * `models.allowed`), and for each its pool (backends.ts) and its own block — the policy statements
 * only that model needs (data-class check, deprecation variables, model-scope content safety and
 * token limits, managed identity, A/B split). routing.ts puts the blocks in the API policy.
 */
import * as X from "../expressions.js";
import { type ModelBackend, type PolicyModel, type PolicyProject } from "../input.js";
import { VAR } from "../names.js";
import { type EffectiveSettings, mergeSettings } from "../settings.js";
import { el, type Why, type XNode } from "../xml.js";
import { pool } from "./backends.js";
import { byCodePoint, type Collector, dataClassGate, forbidden, JSON_ERROR, jsonResponse, readingBody, sortBy } from "./collector.js";
import { contentSafety, noCacheMark } from "./genai.js";
import { tokenLimit } from "./limits.js";

export interface RoutableModel {
  model: PolicyModel;
  eff: EffectiveSettings;
  /** Pool id written to the pools list ("" when no backend is left). */
  pool: string;
  /** Retries on 429/5xx across the model's pool (0 without failover or with one backend). */
  retries: number;
  block: XNode[];
}

/** The project's models that can be routed to, by name: not blocked, and in `models.allowed` when it is set. */
export function routableModels(c: Collector, project: PolicyProject): RoutableModel[] {
  const allowed = mergeSettings(c.input.settings, project.settings)["models.allowed"];
  const allowedNames = allowed ? new Set(allowed.value) : undefined;
  const out: RoutableModel[] = [];
  for (const model of sortBy(project.models, (m) => m.name)) {
    if (model.status === "blocked") continue;
    if (allowedNames && !allowedNames.has(model.name)) continue;
    out.push(routableModel(c, project, model));
  }
  return out;
}

/** True when the model's own settings mention the control (even only to switch it off). */
export function modelSets(model: PolicyModel, control: "tokens.perMinute" | "tokens.quota" | "contentSafety"): boolean {
  if (control === "contentSafety") return model.settings.contentSafety !== undefined;
  return (control === "tokens.perMinute" ? model.settings.tokens?.perMinute : model.settings.tokens?.quota) !== undefined;
}

function routableModel(c: Collector, project: PolicyProject, model: PolicyModel): RoutableModel {
  const pid = project.id;
  const mid = model.id;
  const eff = mergeSettings(c.input.settings, project.settings, model.settings);
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
    const w = regions ? c.why("regions.allowed", regions, pid, mid, "no backend in an allowed region") : routing;
    block.push(forbidden("model_unavailable_in_region", "The model has no backend in a region this project may use.", w));
    return { model, eff, pool: "", retries: 0, block };
  }

  // A model past its sunset has been refused already, before anything spends (sunsetGate).
  block.push(...deprecationVariables(model, routing));
  block.push(...dataClassCheck(c, eff, pid, model));
  block.push(...ownOverrides(c, eff, pid, model, routing));
  block.push(...noCacheMark(c, eff, pid, model));

  const auth = backends[0]?.auth;
  if (auth?.type === "managedIdentity") {
    const attrs = { resource: auth.resource, "client-id": auth.clientId };
    block.push(el("authentication-managed-identity", attrs, undefined, { ...routing, note: "backend authentication" }));
  }

  let poolId: string;
  if (split && split.length > 1) {
    const total = split.reduce((n, s) => n + s.weight, 0);
    const w: Why = { control: "routing", scope: routing.scope, note: `A/B split ${split.map((s) => `${s.version}:${s.weight}`).join(", ")}` };
    const versionPools = split.map((s, i) => pool(c, project, model, eff, backends.filter((b) => b.version === s.version), i, s.version));
    let cumulative = 0;
    const whens = split.slice(0, -1).map((s, i) => {
      cumulative += s.weight;
      return el("when", { condition: X.abBelow(cumulative) }, [el("set-variable", { name: VAR.backend, value: versionPools[i] ?? "" })]);
    });
    whens.push(el("otherwise", undefined, [el("set-variable", { name: VAR.backend, value: versionPools[versionPools.length - 1] ?? "" })]));
    block.push(el("set-variable", { name: VAR.abRoll, value: X.abRoll(total) }, undefined, w), el("choose", undefined, whens, w));
    poolId = versionPools[0] ?? "";
  } else if (split && split.length === 1) {
    const only = split[0]!;
    poolId = pool(c, project, model, eff, backends.filter((b) => b.version === only.version), 0, only.version);
  } else {
    poolId = pool(c, project, model, eff, backends, undefined);
  }
  return { model, eff, pool: poolId, retries: retriesOf(eff, backends, split), block };
}

/**
 * Data classes apply only where a data-class rule is configured (dataClass.allowed at some scope):
 * then the request must carry x-aigov-data-class with a class in that list intersected with the
 * model's own classes. Without a rule, requests need no header (stock clients work unchanged).
 */
function dataClassCheck(c: Collector, eff: EffectiveSettings, pid: string, model: PolicyModel): XNode[] {
  const dcSetting = eff["dataClass.allowed"];
  if (!dcSetting) return [];
  const own = model.allowedDataClasses ? new Set(model.allowedDataClasses) : undefined;
  const dataClasses = dcSetting.value.filter((d) => !own || own.has(d)).sort(byCodePoint);
  const w = c.why("dataClass.allowed", dcSetting, pid, model.id, model.allowedDataClasses ? "intersected with the model's data classes" : undefined);
  if (!dataClasses.length) return [forbidden("data_class_not_allowed", "No data class is allowed for this model.", w)];
  return dataClassGate(dataClasses, "The request's data class is not allowed for this model.", w);
}

/**
 * The sunset gate: a call to a deprecated model past its sunset (00:00 UTC of `sunsetDate`, by the
 * gateway's clock: `X.sunsetPassed`, no publish needed) is refused 410 `model_sunset` before anything
 * that spends — the request rate, content safety, the semantic cache, token limits and budgets — so a
 * client still calling a retired model does not use up the rate or tokens of the project's other models;
 * and before the region rule: a model that is gone is gone, wherever its backends are. It reads the
 * requested model as the resolve fragment does (path, else body; a body that is not a JSON object is
 * the client's 400, bracketed as there) and looks it up in a literal list of the deprecated models'
 * names. It comes after `prompt.maxBytes` (project.ts), which judges the body on its bytes: a body over
 * the limit is never parsed. Nothing when no routable model has a sunset date.
 */
export function sunsetGate(routable: RoutableModel[], pid: string): XNode[] {
  const sunsetting = routable.flatMap((r) => (r.model.status === "deprecated" && r.model.sunsetDate ? [{ model: r.model, sunsetDate: r.model.sunsetDate }] : []));
  if (!sunsetting.length) return [];
  const scope = { level: "project" as const, projectId: pid };
  const w: Why = { control: "routing", scope, note: `sunset gate: ${sunsetting.map((s) => `${s.model.id} ${s.sunsetDate}`).join(", ")}, refused before the request rate and every limit` };
  const whens = sunsetting.map((s, i) => {
    const gone: Why = { control: "routing", scope: { level: "model", projectId: pid, modelId: s.model.id }, note: `deprecated model; sunset ${s.sunsetDate}: refused from then on` };
    const refuse = jsonResponse(410, "Gone", JSON_ERROR("model_sunset", "This model's sunset has passed: it is no longer served."), gone);
    return el("when", { condition: X.sunsetModelIs(i) }, [el("choose", undefined, [el("when", { condition: X.sunsetPassed(s.sunsetDate) }, [refuse])], gone)], gone);
  });
  return [
    el("set-variable", { name: VAR.pathModel, value: X.PATH_MODEL }, undefined, w),
    ...readingBody([el("set-variable", { name: VAR.bodyModel, value: X.BODY_MODEL }, undefined, w)]),
    el("set-variable", { name: VAR.model, value: X.REQUESTED_MODEL }, undefined, w),
    el("set-variable", { name: VAR.sunsetModels, value: sunsetting.map((s) => s.model.name).join("|") }, undefined, w),
    el("choose", undefined, whens, w),
  ];
}

/**
 * A deprecated model's sunset and deprecation dates, set for the response headers (routing.ts
 * `deprecationHeaders`). Past its sunset the call never gets here (sunsetGate).
 */
function deprecationVariables(model: PolicyModel, routing: Why): XNode[] {
  if (model.status !== "deprecated" || !model.sunsetDate) return [];
  const w: Why = { control: "routing", scope: routing.scope, note: "deprecated model: Sunset/Deprecation response headers" };
  const out = [el("set-variable", { name: VAR.sunset, value: imfFixdate(model.sunsetDate) }, undefined, w)];
  if (model.deprecatedAt) out.push(el("set-variable", { name: VAR.deprecation, value: unixSeconds(model.deprecatedAt) }, undefined, w));
  return out;
}

/** Model-scope content safety and token limits. */
function ownOverrides(c: Collector, eff: EffectiveSettings, pid: string, model: PolicyModel, routing: Why): XNode[] {
  const out: XNode[] = [];
  const mid = model.id;
  // Model-scope overrides: mark the model so the project-level element skips it, then apply its own value.
  if (modelSets(model, "contentSafety")) {
    const cs = eff.contentSafety;
    const w = cs ? c.why("contentSafety", cs, pid, mid) : { control: "contentSafety" as const, scope: routing.scope, note: "switched off for this model" };
    out.push(el("set-variable", { name: VAR.ownContentSafety, value: true }, undefined, w));
    if (cs) out.push(contentSafety(c, cs.value, w));
  }
  // A model's own limit is one more counter (the model is in its key); the key's and the project's still count.
  for (const [control, kind] of [
    ["tokens.perMinute", "tpm"],
    ["tokens.quota", "tq"],
  ] as const) {
    if (!modelSets(model, control)) continue;
    const r = eff[control];
    if (r) out.push(tokenLimit(c, kind, r.value, r.value.per, true, c.why(control, r, pid, mid)));
  }
  return out;
}

/** Retries across the pool with failover's retry on: the configured count, else the largest pool - 1 (≤ 29); at most 50. */
function retriesOf(eff: EffectiveSettings, backends: ModelBackend[], split: { version: string }[] | undefined): number {
  const fo = eff.failover;
  const largest = Math.max(0, ...(split ? split.map((s) => backends.filter((b) => b.version === s.version).length) : [backends.length]));
  const retries = fo?.value.retry.enabled ? Math.min(fo.value.retry.count ?? Math.min(29, largest - 1), 50) : 0;
  return Math.max(0, retries);
}

/** 2026-07-01 → "Wed, 01 Jul 2026 00:00:00 GMT" (HTTP IMF-fixdate). */
function imfFixdate(isoDate: string): string {
  return new Date(`${isoDate}T00:00:00Z`).toUTCString();
}

/** 2026-07-01 → "1782864000". */
function unixSeconds(isoDate: string): string {
  return String(Date.parse(`${isoDate}T00:00:00Z`) / 1000);
}
