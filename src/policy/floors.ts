/**
 * Tenant controls are floors: a project or a model may tighten a control the tenant sets, never
 * loosen it. Loosening is what exemptions are for (they are applied after this step, see
 * exemptions.ts), so the only way below the tenant's floor is an approved, time-boxed exemption.
 *
 * Two uses of one rule:
 * - `loosenings(tenant, scope)`: what a project's or model's settings would loosen, as field errors
 *   (the settings APIs refuse such writes with a 400);
 * - `applyFloors(input)`: the compiler input with every project and model setting clamped to the
 *   tenant's floor, so stored settings that became looser when the tenant tightened later (or that
 *   were written before this rule) never reach the gateway looser than the tenant allows.
 *
 * What "looser" means, per control (only controls the tenant sets, and has not switched off):
 * - limits (`tokens.perMinute`, `tokens.quota`, `requests.rate`, `prompt.maxBytes`): switched off,
 *   a higher limit, a longer quota period or a shorter rate window with more calls per second, a
 *   shared (per project) counter made per key, a prompt estimate switched off;
 * - `contentSafety`: switched off, a higher category threshold, Prompt Shields or completion checks
 *   switched off, a different severity scale;
 * - `correlationId`, `headers.stripSecrets`, `metrics.tokens`: switched off; token metrics losing a
 *   dimension or moving to another namespace;
 * - `semanticCache`: switched on where the tenant switched it off, or sharing entries more widely
 *   (a partition the tenant sets dropped).
 * Allow-lists intersect and requirement lists add up across scopes (settings.ts), so they can only
 * tighten already. `failover` (circuit breakers, retries) is about availability, not a guardrail: a
 * project tunes it freely.
 */
import type { CompilerInputIn } from "./input.js";
import { CONTENT_CATEGORIES, METRIC_DIMENSIONS, type ControlId, type Settings } from "./settings.js";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const get = (o: unknown, ...path: string[]): unknown => path.reduce<unknown>((v, k) => (isObj(v) ? v[k] : undefined), o);

/** One way a scope's settings loosen a tenant control. */
export interface Loosening {
  control: ControlId;
  /** Path of the field inside the settings object, e.g. "tokens.perMinute.limit". */
  path: string;
  message: string;
  /** How the compiler input makes it hold: the field removed (the tenant's value applies) or set. */
  fix: { kind: "remove" } | { kind: "set"; value: unknown };
}

const QUOTA_PERIOD_ORDER = ["Hourly", "Daily", "Weekly", "Monthly", "Yearly"];

/** A tenant control in force (set and not switched off at the tenant). */
const inForce = (t: unknown): t is Obj => isObj(t) && t.enabled !== false;

function limitControl(
  out: Loosening[],
  control: "tokens.perMinute" | "tokens.quota",
  base: string,
  t: unknown,
  s: unknown,
  defaultPer: "key" | "project",
): void {
  if (!inForce(t) || typeof t.limit !== "number" || !isObj(s)) return;
  if (s.enabled === false) out.push({ control, path: `${base}.enabled`, message: `switches off the tenant's ${control}`, fix: { kind: "remove" } });
  if (typeof s.limit === "number" && s.limit > t.limit) out.push({ control, path: `${base}.limit`, message: `${s.limit} is above the tenant's ${t.limit}`, fix: { kind: "set", value: t.limit } });
  const tPer = (t.per as string | undefined) ?? defaultPer;
  if (s.per === "key" && tPer === "project") out.push({ control, path: `${base}.per`, message: "counts per key what the tenant counts per project (each key would get the whole limit)", fix: { kind: "remove" } });
  if (t.estimatePromptTokens === true && s.estimatePromptTokens === false) out.push({ control, path: `${base}.estimatePromptTokens`, message: "switches off the tenant's prompt estimate", fix: { kind: "remove" } });
  if (control === "tokens.quota" && typeof s.period === "string") {
    const tPeriod = (t.period as string | undefined) ?? "Monthly";
    // The same limit over a shorter period allows more over the tenant's period.
    if (QUOTA_PERIOD_ORDER.indexOf(s.period) < QUOTA_PERIOD_ORDER.indexOf(tPeriod)) {
      out.push({ control, path: `${base}.period`, message: `a ${s.period} quota allows more than the tenant's ${tPeriod} one`, fix: { kind: "remove" } });
    }
  }
}

function rateControl(out: Loosening[], t: unknown, s: unknown): void {
  const control = "requests.rate";
  const base = "requests.rate";
  if (!inForce(t) || typeof t.calls !== "number" || !isObj(s)) return;
  if (s.enabled === false) out.push({ control, path: `${base}.enabled`, message: "switches off the tenant's requests.rate", fix: { kind: "remove" } });
  const tPeriod = (t.renewalPeriodSeconds as number | undefined) ?? 60;
  const calls = (s.calls as number | undefined) ?? t.calls;
  const period = (s.renewalPeriodSeconds as number | undefined) ?? tPeriod;
  if (calls > t.calls) out.push({ control, path: `${base}.calls`, message: `${calls} calls is above the tenant's ${t.calls}`, fix: { kind: "set", value: t.calls } });
  else if (calls / period > t.calls / tPeriod) out.push({ control, path: `${base}.renewalPeriodSeconds`, message: `${calls} calls per ${period} s is a faster rate than the tenant's ${t.calls} per ${tPeriod} s`, fix: { kind: "remove" } });
  if (s.per === "key" && ((t.per as string | undefined) ?? "key") === "project") out.push({ control, path: `${base}.per`, message: "counts per key what the tenant counts per project", fix: { kind: "remove" } });
}

function contentSafety(out: Loosening[], t: unknown, s: unknown): void {
  const control = "contentSafety";
  if (!inForce(t) || !isObj(s)) return;
  if (s.enabled === false) out.push({ control, path: "contentSafety.enabled", message: "switches off the tenant's content safety", fix: { kind: "remove" } });
  for (const flag of ["shieldPrompt", "enforceOnCompletions"] as const) {
    if (t[flag] === true && s[flag] === false) out.push({ control, path: `contentSafety.${flag}`, message: `switches off the tenant's ${flag}`, fix: { kind: "remove" } });
  }
  if (typeof s.outputType === "string" && s.outputType !== ((t.outputType as string | undefined) ?? "FourSeverityLevels")) {
    out.push({ control, path: "contentSafety.outputType", message: "changes the severity scale the tenant's thresholds are set on", fix: { kind: "remove" } });
  }
  for (const c of CONTENT_CATEGORIES) {
    const mine = get(s, "categories", c);
    const floor = (get(t, "categories", c) as number | undefined) ?? 4;
    if (typeof mine === "number" && mine > floor) out.push({ control, path: `contentSafety.categories.${c}`, message: `threshold ${mine} blocks less than the tenant's ${floor}`, fix: { kind: "set", value: floor } });
  }
}

function switchOnly(out: Loosening[], control: ControlId, path: string, t: unknown, s: unknown): void {
  if (inForce(t) && isObj(s) && s.enabled === false) out.push({ control, path: `${path}.enabled`, message: `switches off the tenant's ${control}`, fix: { kind: "remove" } });
}

/**
 * What `scope` (a project's or a model's settings) loosens of `tenant`'s controls; empty when it only
 * tightens or leaves them. Paths are relative to the settings object.
 */
export function loosenings(tenant: Settings | undefined, scope: unknown): Loosening[] {
  const out: Loosening[] = [];
  if (!tenant || !isObj(scope)) return out;
  limitControl(out, "tokens.perMinute", "tokens.perMinute", get(tenant, "tokens", "perMinute"), get(scope, "tokens", "perMinute"), "key");
  limitControl(out, "tokens.quota", "tokens.quota", get(tenant, "tokens", "quota"), get(scope, "tokens", "quota"), "project");
  rateControl(out, get(tenant, "requests", "rate"), get(scope, "requests", "rate"));
  contentSafety(out, tenant.contentSafety, scope.contentSafety);

  const tMax = get(tenant, "prompt", "maxBytes");
  const sMax = get(scope, "prompt", "maxBytes");
  if (typeof tMax === "number" && (sMax === null || (typeof sMax === "number" && sMax > tMax))) {
    out.push({ control: "prompt.maxBytes", path: "prompt.maxBytes", message: sMax === null ? `removes the tenant's ${tMax}-byte limit` : `${sMax} bytes is above the tenant's ${tMax}`, fix: { kind: "set", value: tMax } });
  }
  switchOnly(out, "correlationId", "correlationId", tenant.correlationId, scope.correlationId);
  switchOnly(out, "headers.stripSecrets", "headers.stripSecrets", get(tenant, "headers", "stripSecrets"), get(scope, "headers", "stripSecrets"));

  const tMetrics = get(tenant, "metrics", "tokens");
  const sMetrics = get(scope, "metrics", "tokens");
  switchOnly(out, "metrics.tokens", "metrics.tokens", tMetrics, sMetrics);
  if (inForce(tMetrics) && isObj(sMetrics)) {
    const tDims = (tMetrics.dimensions as string[] | undefined) ?? [...METRIC_DIMENSIONS];
    const sDims = sMetrics.dimensions as string[] | undefined;
    if (sDims && tDims.some((d) => !sDims.includes(d))) {
      out.push({ control: "metrics.tokens", path: "metrics.tokens.dimensions", message: `drops dimensions the tenant reports (${tDims.filter((d) => !sDims.includes(d)).join(", ")})`, fix: { kind: "set", value: [...new Set([...sDims, ...tDims])] } });
    }
    if (typeof sMetrics.namespace === "string" && sMetrics.namespace !== ((tMetrics.namespace as string | undefined) ?? "aigov")) {
      out.push({ control: "metrics.tokens", path: "metrics.tokens.namespace", message: "moves token metrics out of the tenant's namespace", fix: { kind: "remove" } });
    }
  }

  const tCache = tenant.semanticCache;
  const sCache = scope.semanticCache;
  if (isObj(tCache) && tCache.enabled === false && isObj(sCache) && sCache.enabled !== false) {
    out.push({ control: "semanticCache", path: "semanticCache.enabled", message: "switches on the semantic cache the tenant switched off", fix: { kind: "set", value: false } });
  } else if (inForce(tCache) && isObj(sCache) && Array.isArray(sCache.partitionBy)) {
    const need = (tCache.partitionBy as string[] | undefined) ?? [];
    const have = sCache.partitionBy as string[];
    if (need.some((p) => !have.includes(p))) {
      out.push({ control: "semanticCache", path: "semanticCache.partitionBy", message: `shares cache entries across ${need.filter((p) => !have.includes(p)).join(", ")} partitions the tenant keeps apart`, fix: { kind: "set", value: [...new Set([...have, ...need])] } });
    }
  }
  return out;
}

/** The settings with each loosening undone (a copy; the same object when nothing loosens). */
export function clampToFloor<S>(tenant: Settings | undefined, scope: S): S {
  const found = loosenings(tenant, scope);
  if (!found.length) return scope;
  const copy = structuredClone(scope) as Obj;
  for (const l of found) {
    const keys = l.path.split(".");
    const leaf = keys.pop()!;
    const parent = keys.reduce<unknown>((v, k) => (isObj(v) ? v[k] : undefined), copy);
    if (!isObj(parent)) continue;
    if (l.fix.kind === "remove") delete parent[leaf];
    else parent[leaf] = structuredClone(l.fix.value);
  }
  return copy as S;
}

/**
 * The compiler input with every project's and model's settings held to the tenant's floors. Pure;
 * the input itself is returned when nothing loosens (so compiled bytes are unchanged).
 */
export function applyFloors(input: CompilerInputIn): CompilerInputIn {
  const tenant = input.settings as Settings | undefined;
  if (!tenant) return input;
  let changed = false;
  const projects = input.projects.map((p) => {
    const settings = clampToFloor(tenant, p.settings);
    const models = p.models?.map((m) => {
      const ms = clampToFloor(tenant, m.settings);
      return ms === m.settings ? m : { ...m, settings: ms };
    });
    const modelsChanged = models?.some((m, i) => m !== p.models![i]) ?? false;
    if (settings === p.settings && !modelsChanged) return p;
    changed = true;
    return { ...p, settings, ...(modelsChanged ? { models: models! } : {}) };
  });
  return changed ? { ...input, projects } : input;
}

/** The top-level keys of Settings that heldToLiveTenant holds to the live tenant. */
const HELD_KEYS: Record<keyof Settings, true> = {
  tokens: true,
  requests: true,
  contentSafety: true,
  semanticCache: true,
  models: true,
  regions: true,
  dataClass: true,
  prompt: true,
  headers: true,
  correlationId: true,
  metrics: true,
  failover: true,
};

/**
 * The tenant settings a rollback compiles: the target revision's (`target`), held to the live tenant's
 * (`live`) floors, so rolling back may tighten the tenant's controls again but never loosens one the
 * tenant has tightened since (ADR 006). Per control, the tighter of the two:
 * - value controls the live tenant has in force: the target's fields clamped to the live floor
 *   (`clampToFloor`, the rule projects and models are held to), over the live fields the target leaves
 *   unset (as a project's fields sit over the tenant's in mergeSettings); content-safety categories per
 *   category, blocklists and the extra stripped headers add up;
 * - a control only one of them sets: that one's (the live one's, or the target's own tightening); a
 *   control the live tenant switched off holds nothing, so the target's stays (the semantic cache is the
 *   exception: the tenant switching it off is the tightening, and clampToFloor keeps it off);
 * - allow-lists intersect, required headers add up (values intersect per header), as across scopes;
 * - `failover` is availability, not a floor: the target's, as a rollback restores configuration.
 * Pure; `target` itself when there is no live tenant setting.
 */
export function heldToLiveTenant(target: Settings | undefined, live: Settings | undefined): Settings | undefined {
  if (!live || !isObj(live)) return target;
  if (!target || !isObj(target)) return live;
  const held = clampToFloor(live, target);
  // Anything of the target's this function does not know is kept as the target's (the record below
  // fails to compile when a control is added to Settings, so that it is held here too).
  const out: Obj = Object.fromEntries(Object.entries(target).filter(([k]) => !(k in HELD_KEYS)));
  const put = (path: string[], v: unknown) => {
    if (v === undefined) return;
    let o = out;
    for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Obj;
    o[path[path.length - 1]!] = v;
  };
  const union = (a: unknown, b: unknown): string[] | undefined =>
    Array.isArray(a) || Array.isArray(b) ? [...new Set([...((a as string[] | undefined) ?? []), ...((b as string[] | undefined) ?? [])])] : undefined;

  const value = (...path: string[]): Obj | undefined => {
    const l = get(live, ...path);
    const c = get(held, ...path);
    if (c === undefined) return l as Obj | undefined;
    if (!isObj(l) || !isObj(c) || l.enabled === false) return c as Obj;
    return { ...l, ...c };
  };
  for (const path of [["tokens", "perMinute"], ["tokens", "quota"], ["requests", "rate"], ["semanticCache"], ["correlationId"], ["metrics", "tokens"]]) put(path, value(...path));

  const cs = value("contentSafety");
  if (cs) {
    const l = live.contentSafety;
    const c = held.contentSafety;
    if (isObj(l) && isObj(c) && l.enabled !== false) {
      if (l.categories || c.categories) cs.categories = { ...l.categories, ...c.categories };
      const blocklists = union(c.blocklists, l.blocklists);
      if (blocklists) cs.blocklists = blocklists;
    }
    put(["contentSafety"], cs);
  }
  const strip = value("headers", "stripSecrets");
  if (strip) {
    const l = get(live, "headers", "stripSecrets");
    const c = get(held, "headers", "stripSecrets");
    if (isObj(l) && isObj(c) && l.enabled !== false) {
      const extra = union(c.extra, l.extra);
      if (extra) strip.extra = extra;
    }
    put(["headers", "stripSecrets"], strip);
  }

  // Scalar: the clamped target's when it sets one (clampToFloor holds it to a live limit), else the live one.
  const maxBytes = get(held, "prompt", "maxBytes");
  put(["prompt", "maxBytes"], maxBytes !== undefined ? maxBytes : get(live, "prompt", "maxBytes"));

  // Allow-lists intersect (settings.ts `intersect`): not set = no restriction, [] = nothing allowed.
  for (const key of ["models", "regions", "dataClass"] as const) {
    const l = get(live, key, "allowed") as string[] | undefined;
    const c = get(target, key, "allowed") as string[] | undefined;
    put([key, "allowed"], l === undefined ? c : c === undefined ? l : [...new Set(c)].filter((x) => l.includes(x)));
  }

  // Required headers add up; a header both require keeps the values both allow (mergeSettings). An
  // empty intersection keeps both entries (the schema wants at least one value; mergeSettings then
  // intersects them to none, as it would across scopes).
  type Required = NonNullable<NonNullable<Settings["headers"]>["required"]>[number];
  const lReq = (get(live, "headers", "required") as Required[] | undefined) ?? [];
  const cReq = (get(target, "headers", "required") as Required[] | undefined) ?? [];
  if (lReq.length || cReq.length) {
    const required: Required[] = cReq.map((h) => structuredClone(h));
    for (const h of lReq) {
      const same = required.filter((r) => r.name.toLowerCase() === h.name.toLowerCase());
      if (!same.length) required.push(structuredClone(h));
      else if (h.values) {
        const values = h.values;
        let kept = false;
        for (const r of same) {
          if (!r.values) r.values = [...values];
          else if (r.values.some((v) => values.includes(v))) r.values = r.values.filter((v) => values.includes(v));
          else if (!kept) {
            required.push(structuredClone(h));
            kept = true;
          }
        }
      }
    }
    put(["headers", "required"], required);
  }

  if (target.failover !== undefined) out.failover = target.failover;
  return structuredClone(out) as Settings;
}
