/**
 * Policy exemptions as a pure compiler step: `applyExemptions(input, active)` rewrites the compiler
 * input so that `compile()` relaxes exactly the exempted control at exactly the exempted scope.
 * No clock and no I/O: which exemptions are active at a moment is decided by the caller (the
 * exemption service's `listActive`), so an expired or revoked exemption is simply not passed in and
 * the input — hence every compiled byte — is the baseline again (docs/adr/007-exemptions.md).
 *
 * ## Scopes
 * - `tenant`: the tenant-level setting (broad: needs two approval stages).
 * - `project`: the project's setting (and the project's models, see below).
 * - `model`: one model's setting within a project (only controls settable at model scope).
 * - `key`: one virtual key. Documents never grow per key (input.ts), so a key exemption becomes a
 *   *key tier*: a tier that copies the key's own tier (if any) with the relaxed per-key limit, offered
 *   by the key's project, and the key is moved to it in `virtualKeys`. Keys with identical relaxed
 *   limits in one project share a tier; the number of tiers stays within the compiler's bounds
 *   (input.ts: per tenant, offered per project, accepted per project; exemptions that would exceed
 *   them are not applied: fail closed). The exemption tier keeps the key's model scope (`models`), and
 *   projects that accept the key's tier (`sharedKeyTiers`) accept the exemption tier too, so relaxing
 *   a limit neither widens nor narrows where and which models the key may call. Only per-key limits
 *   (`tokens.perMinute`, `tokens.quota`, `requests.rate`) have a per-key representation, so only
 *   they can be exempted for a key, and only where the project's limit is counted per key.
 *   Exemption tier ids start with {@link EXEMPTION_TIER_PREFIX}, which sorts after ordinary tier ids,
 *   so their `when`s come after those of existing tiers in an API policy. (Tiers are identified by id
 *   in documents, so an exemption tier changes no other tier's product policy either way.)
 *
 * ## Relaxations
 * - `off`: the control is switched off at the scope and at every narrower scope inside it that would
 *   switch it back on (a project exemption covers the project's models).
 * - `limit`: a numeric limit (tokens per minute, token quota, calls per window, prompt bytes) is set
 *   at the scope; narrower scopes inside it that set a lower value are raised to it.
 * - `thresholds`: content-safety category thresholds (block at or above) are raised the same way.
 * - `allow` (allow-lists `models.allowed`, `regions.allowed`, `dataClass.allowed`, at project or model
 *   scope): inside the scope the effective list is the normal one — the intersection across tenant,
 *   project and model — plus the exemption's values. A narrower scope can only narrow an allow-list,
 *   so the values cannot simply be written into the scope's own list (the intersection would drop
 *   them again, or they would narrow nothing); they go into the scope's `exempt` entry
 *   (settings.ts `CompilerSettings`), which `mergeSettings` unions in *after* intersecting. `off` on
 *   an allow-list lifts the restriction inside the scope the same way. Nothing outside the scope reads
 *   that entry, so siblings keep their lists. Not at tenant scope (a tenant-wide widening is just a
 *   different tenant setting) nor for a key (a key has no allow-list of its own).
 * Requirement lists (`headers.required`) add up across scopes; they are not exemptible.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { type CompilerInputIn, MAX_PROJECT_KEY_TIERS, MAX_TENANT_KEY_TIERS } from "./input.js";
import {
  ALLOW_LIST_VALUE,
  type AllowListExemptions,
  CONTENT_CATEGORIES,
  CONTROLS,
  type ControlId,
  DEFAULT_CATEGORY_THRESHOLD,
  isAllowListControl,
  MAX_ALLOW_LIST_EXEMPTION_VALUES,
  mergeSettings,
  type Settings,
} from "./settings.js";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const typedId = (prefix: string) => z.string().regex(new RegExp(`^${prefix}_[${ALPHABET}]{20}$`), `must be a ${prefix}_ id (${prefix}_ and 20 base32 characters)`);

export const ExemptionScope = z
  .discriminatedUnion("level", [
    z.strictObject({ level: z.literal("tenant") }),
    z.strictObject({ level: z.literal("project"), projectId: typedId("prj") }),
    z.strictObject({ level: z.literal("model"), projectId: typedId("prj"), modelId: typedId("mdl") }),
    z.strictObject({ level: z.literal("key"), projectId: typedId("prj"), keyId: typedId("key") }),
  ])
  .meta({ id: "ExemptionScope", description: "The smallest scope the exemption applies to: the tenant (broad), a project, a model within a project, or one virtual key" });
export type ExemptionScope = z.output<typeof ExemptionScope>;
export type ScopeLevel = ExemptionScope["level"];

export const Relaxation = z
  .discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("off") }),
    z.strictObject({ kind: z.literal("limit"), value: z.int().min(1).max(1_000_000_000_000) }),
    z.strictObject({ kind: z.literal("thresholds"), categories: z.partialRecord(z.enum(CONTENT_CATEGORIES), z.int().min(0).max(7)) }),
    z.strictObject({
      kind: z.literal("allow"),
      // The common character set of model names, regions and data classes; each value is checked
      // against the control's own schema by exemptionUnsupported.
      values: z
        .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, "must be a model name, region or data class"))
        .min(1)
        .max(MAX_ALLOW_LIST_EXEMPTION_VALUES),
    }),
  ])
  .meta({
    id: "Relaxation",
    description:
      "off: the control switched off (for an allow-list: no restriction inside the scope); limit: a raised limit; thresholds: raised content-safety category thresholds (e.g. 4 → 6); allow: values an allow-list (models.allowed, regions.allowed, dataClass.allowed) admits in addition inside the scope",
  });
export type Relaxation = z.output<typeof Relaxation>;

/** An exemption in force, as the compiler step needs it. */
export interface ActiveExemption {
  id: string;
  control: ControlId;
  scope: ExemptionScope;
  relaxation: Relaxation;
}

/** Controls that can be switched off, raised, or have their thresholds raised. */
const OFF_CONTROLS: readonly ControlId[] = ["tokens.perMinute", "tokens.quota", "requests.rate", "contentSafety", "semanticCache", "prompt.maxBytes", "correlationId", "headers.stripSecrets", "metrics.tokens", "failover"];
const LIMIT_CONTROLS: readonly ControlId[] = ["tokens.perMinute", "tokens.quota", "requests.rate", "prompt.maxBytes"];
const KEY_CONTROLS: readonly ControlId[] = ["tokens.perMinute", "tokens.quota", "requests.rate"];
/** The settings schemas' own maxima (settings.ts), so a relaxed input still compiles. */
const LIMIT_MAX: Partial<Record<ControlId, number>> = { "tokens.perMinute": 1_000_000_000, "tokens.quota": 1_000_000_000_000, "requests.rate": 1_000_000, "prompt.maxBytes": 512 * 1024 * 1024 };

/** Why (control, scope, relaxation) cannot be exempted, with the field to blame; undefined when it can. */
export function exemptionUnsupported(control: ControlId, level: ScopeLevel, relaxation: Relaxation): { field: "control" | "relaxation" | "scope"; message: string } | undefined {
  const info = CONTROLS[control];
  if (info.merge === "union") return { field: "control", message: `${control} is a requirement list that adds up across scopes; it cannot be exempted` };
  if (isAllowListControl(control)) {
    if (relaxation.kind !== "allow" && relaxation.kind !== "off") return { field: "relaxation", message: `${control} is an allow-list: widen it with allow (values) or lift it with off` };
    if (relaxation.kind === "allow") {
      const bad = relaxation.values.find((v) => !ALLOW_LIST_VALUE[control].safeParse(v).success);
      if (bad !== undefined) return { field: "relaxation", message: `${JSON.stringify(bad)} is not a valid value of ${control}` };
    }
    if (level !== "project" && level !== "model") {
      return { field: "scope", message: `${control} can be widened for a project or a model within a project only (tenant-wide it would be a different tenant setting; a key has no allow-list of its own)` };
    }
    if (!info.scopes.includes(level)) return { field: "scope", message: `${control} cannot be set at ${level} scope` };
    return undefined;
  }
  if (relaxation.kind === "allow") return { field: "relaxation", message: "allow applies to allow-lists only (models.allowed, regions.allowed, dataClass.allowed)" };
  if (relaxation.kind === "off" && !OFF_CONTROLS.includes(control)) return { field: "relaxation", message: `${control} cannot be switched off` };
  if (relaxation.kind === "limit" && !LIMIT_CONTROLS.includes(control)) return { field: "relaxation", message: `${control} has no numeric limit; use off or thresholds` };
  if (relaxation.kind === "limit" && relaxation.value > (LIMIT_MAX[control] ?? 0)) return { field: "relaxation", message: `the limit of ${control} is at most ${LIMIT_MAX[control]}` };
  if (relaxation.kind === "thresholds" && control !== "contentSafety") return { field: "relaxation", message: "thresholds apply to contentSafety only" };
  if (level === "key") {
    if (!KEY_CONTROLS.includes(control) || relaxation.kind !== "limit") return { field: "scope", message: "a key can only be exempted from a per-key limit (tokens.perMinute, tokens.quota, requests.rate) with a raised limit" };
  } else if (level !== "tenant" && !info.scopes.includes(level)) {
    return { field: "scope", message: `${control} cannot be set at ${level} scope` };
  }
  return undefined;
}

/** Exemption tiers sort after ordinary tier ids ('~' is not allowed in ids; 'zzzz_x' is as late as ids go in practice). */
export const EXEMPTION_TIER_PREFIX = "zzzz_x";

type SettingsIn = NonNullable<CompilerInputIn["settings"]>;
type ProjectIn = CompilerInputIn["projects"][number];
type ModelIn = NonNullable<ProjectIn["models"]>[number];
type TierIn = NonNullable<CompilerInputIn["keyTiers"]>[number];
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Where each control lives in a settings object, and which field holds its limit. */
const PATHS: Partial<Record<ControlId, { path: string[]; limitField?: string }>> = {
  "tokens.perMinute": { path: ["tokens", "perMinute"], limitField: "limit" },
  "tokens.quota": { path: ["tokens", "quota"], limitField: "limit" },
  "requests.rate": { path: ["requests", "rate"], limitField: "calls" },
  contentSafety: { path: ["contentSafety"] },
  semanticCache: { path: ["semanticCache"] },
  correlationId: { path: ["correlationId"] },
  "headers.stripSecrets": { path: ["headers", "stripSecrets"] },
  "metrics.tokens": { path: ["metrics", "tokens"] },
  failover: { path: ["failover"] },
};

/** The value a path names in the first settings object of `chain` that sets it (scopes merge field by field, the narrowest winning). */
function inherited(chain: readonly unknown[], path: readonly string[]): unknown {
  for (const s of chain) {
    const v = path.reduce<unknown>((o, k) => (isObj(o) ? o[k] : undefined), s);
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * Relaxes one control in one settings object (a copy is returned). `own`: this is the exempted scope
 * itself (the relaxation is set); otherwise a narrower scope inside it (only values it sets itself
 * that would undo the relaxation are changed). Returns the same object when nothing changes.
 * `wider`: the settings of the scopes around it, widest last. An exemption only relaxes: a limit or a
 * threshold is never set below what is in force at its scope (the scope's own value, else the nearest
 * wider one's), so two exemptions of one control at one scope add up to the larger, whichever is listed last.
 */
function relaxSettings<S extends Obj>(settings: S | undefined, control: ControlId, r: Relaxation, own: boolean, wider: readonly unknown[] = []): S | undefined {
  const inForce = (path: readonly string[]) => inherited([settings, ...wider], path);
  if (isAllowListControl(control)) {
    // Narrower scopes need no rewrite: mergeSettings applies the scope's exemption to everything
    // inside it, after their own lists have been intersected.
    if (!own || (r.kind !== "allow" && r.kind !== "off")) return settings;
    const exempt: AllowListExemptions = isObj(settings?.exempt) ? (settings.exempt as AllowListExemptions) : {};
    const current = exempt[control];
    // Several exemptions of one control at one scope combine: their values add up, and off wins.
    const next =
      r.kind === "off"
        ? { ...current, off: true as const }
        : { ...current, add: [...new Set([...(current?.add ?? []), ...r.values])].sort(byCodePoint) };
    return { ...(settings ?? {}), exempt: { ...exempt, [control]: next } } as unknown as S;
  }
  if (control === "prompt.maxBytes") {
    const prompt = isObj(settings?.prompt) ? settings.prompt : undefined;
    const current = prompt?.maxBytes as number | null | undefined;
    let next: number | null | undefined = current;
    if (r.kind === "off") next = own || (current !== undefined && current !== null) ? null : current;
    else if (r.kind === "limit") {
      const before = inForce(["prompt", "maxBytes"]);
      // No limit in force (null: switched off) is looser than any.
      next = own ? (before === null ? current : typeof before === "number" && before >= r.value ? current : r.value) : typeof current === "number" && current < r.value ? r.value : current;
    }
    if (next === current) return settings;
    return { ...(settings ?? {}), prompt: { ...(prompt ?? {}), maxBytes: next } } as unknown as S;
  }
  const where = PATHS[control];
  if (!where) return settings;
  const [head, leaf] = where.path.length === 2 ? [where.path[0]!, where.path[1]!] : [undefined, where.path[0]!];
  const parent: Obj | undefined = head ? (isObj(settings?.[head]) ? (settings[head] as Obj) : undefined) : settings;
  const current: Obj | undefined = isObj(parent?.[leaf]) ? (parent[leaf] as Obj) : undefined;
  if (!own && current === undefined) return settings;
  let next: Obj = { ...(current ?? {}) };
  if (r.kind === "off") {
    if (!own && next.enabled !== true) return settings;
    next.enabled = false;
  } else if (r.kind === "limit") {
    const field = where.limitField!;
    const value = next[field];
    // A rate is approved per the exempted scope's window: a narrower scope counting over its own window
    // gets the same rate, never the same count over a shorter window (600 per 60 s is not 600 per 10 s).
    const window = (r as RateLimit).perSeconds;
    const ownWindow = typeof next.renewalPeriodSeconds === "number" ? next.renewalPeriodSeconds : window;
    const allowed = control === "requests.rate" && window && ownWindow ? Math.max(1, Math.floor((r.value * ownWindow) / window)) : r.value;
    const before = inForce([...where.path, field]);
    if (own && !(typeof before === "number" && before >= allowed)) next[field] = allowed;
    else if (!own && typeof value === "number" && value < allowed) next[field] = allowed;
    else return settings;
  } else if (r.kind === "thresholds") {
    const categories: Obj = isObj(next.categories) ? { ...next.categories } : {};
    let changed = false;
    for (const [name, t] of Object.entries(r.categories)) {
      if (t === undefined) continue;
      const have = categories[name];
      // A category no scope sets is screened at the default threshold: that is what is in force.
      const before = inForce([...where.path, "categories", name]) ?? DEFAULT_CATEGORY_THRESHOLD;
      if (own ? !(typeof before === "number" && before >= t) : typeof have === "number" && have < t) {
        categories[name] = t;
        changed = true;
      }
    }
    if (!changed && !own) return settings;
    next = { ...next, categories };
  } else {
    return settings; // allow: only allow-lists (above); exemptionUnsupported filters the rest out
  }
  const withLeaf = { ...(parent ?? {}), [leaf]: next };
  return (head ? { ...(settings ?? {}), [head]: withLeaf } : withLeaf) as unknown as S;
}

const modelScoped = (control: ControlId) => CONTROLS[control].scopes.includes("model");

function relaxModel(m: ModelIn, control: ControlId, r: Relaxation, own: boolean, wider: readonly unknown[] = []): ModelIn {
  if (!modelScoped(control)) return m;
  const settings = relaxSettings(m.settings as Obj | undefined, control, r, own, wider);
  return settings === m.settings ? m : { ...m, settings: settings as ModelIn["settings"] };
}

function relaxProject(p: ProjectIn, control: ControlId, r: Relaxation, own: boolean, wider: readonly unknown[] = []): ProjectIn {
  const settings = relaxSettings(p.settings as Obj | undefined, control, r, own, wider);
  const models = p.models?.map((m) => relaxModel(m, control, r, false));
  const modelsChanged = models?.some((m, i) => m !== p.models![i]) ?? false;
  if (settings === p.settings && !modelsChanged) return p;
  return { ...p, ...(settings !== p.settings ? { settings: settings as ProjectIn["settings"] } : {}), ...(modelsChanged ? { models: models! } : {}) };
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Whether the exemption sets its value at its own scope (else it only raises values narrower scopes set
 * themselves). A raised limit or thresholds of a control nobody configured at the scope or above it
 * would switch the control on there — relaxing nothing, and possibly failing the compile (a control
 * whose service is not configured) — so it is set only where the control is in force. `chain`: the
 * scope's settings, then each wider scope's.
 */
function setsAt(e: ActiveExemption, ...chain: unknown[]): boolean {
  if (e.relaxation.kind !== "limit" && e.relaxation.kind !== "thresholds") return true;
  if (e.control === "prompt.maxBytes") return chain.some((s) => typeof (s as { prompt?: { maxBytes?: unknown } } | undefined)?.prompt?.maxBytes === "number");
  const where = PATHS[e.control];
  if (!where) return true;
  return chain.some((s) => {
    const v = where.path.reduce<unknown>((o, k) => (isObj(o) ? o[k] : undefined), s);
    return isObj(v) && v.enabled !== false;
  });
}

/** A `requests.rate` limit with the window of the scope it was approved at (seconds). Internal to applyExemptions. */
type RateLimit = Relaxation & { perSeconds?: number };
/** The `requests.rate` window a settings object sets, if it sets one. */
const windowOf = (settings: unknown): number | undefined => {
  const w = (settings as { requests?: { rate?: { renewalPeriodSeconds?: unknown } } } | undefined)?.requests?.rate?.renewalPeriodSeconds;
  return typeof w === "number" ? w : undefined;
};
/** The relaxation as applied at its scope: a rate limit carries that scope's window (its own, else the wider one's, else 60 s). */
const withWindow = (e: ActiveExemption, ...settings: unknown[]): Relaxation =>
  e.control === "requests.rate" && e.relaxation.kind === "limit" ? ({ ...e.relaxation, perSeconds: settings.map(windowOf).find((w) => w !== undefined) ?? 60 } as RateLimit) : e.relaxation;

/**
 * The compiler input with the active exemptions applied. Pure; with no exemptions the input is
 * returned as is, so the compiled artifacts are byte-identical to the baseline.
 */
export function applyExemptions(input: CompilerInputIn, active: ActiveExemption[]): CompilerInputIn {
  if (active.length === 0) return input;
  // Deterministic regardless of the order exemptions are listed in.
  const fourLevels = (input.settings as { contentSafety?: { outputType?: string } } | undefined)?.contentSafety?.outputType !== "EightSeverityLevels";
  const sorted = [...active]
    .sort((a, b) => byCodePoint(a.id, b.id))
    .filter((e) => exemptionUnsupported(e.control, e.scope.level, e.relaxation) === undefined)
    .map((e) => (fourLevels ? onFourLevels(e) : e));
  let out: CompilerInputIn = input;
  for (const e of sorted) {
    const { scope, control } = e;
    if (scope.level === "tenant") {
      const relaxation = withWindow(e, out.settings);
      const settings = relaxSettings(out.settings as Obj | undefined, control, relaxation, setsAt(e, out.settings)) as SettingsIn | undefined;
      out = { ...out, ...(settings ? { settings } : {}), projects: out.projects.map((p) => relaxProject(p, control, relaxation, false)) };
    } else if (scope.level === "project") {
      out = { ...out, projects: out.projects.map((p) => (p.id === scope.projectId ? relaxProject(p, control, withWindow(e, p.settings, out.settings), setsAt(e, p.settings, out.settings), [out.settings]) : p)) };
    } else if (scope.level === "model") {
      out = {
        ...out,
        projects: out.projects.map((p) =>
          p.id !== scope.projectId
            ? p
            : { ...p, models: (p.models ?? []).map((m) => (m.id === scope.modelId ? relaxModel(m, control, withWindow(e, m.settings, p.settings, out.settings), setsAt(e, m.settings, p.settings, out.settings), [p.settings, out.settings]) : m)) },
        ),
      };
    }
  }
  return applyKeyExemptions(out, sorted.filter((e) => e.scope.level === "key"));
}

/**
 * On the four-level scale (the tenant's, which no scope may change) only 0, 2, 4 and 6 compile: an odd
 * threshold takes effect as the level below it — stricter than approved, never looser — instead of
 * making the project's policy fail to compile (which would freeze it at the gateway for as long as the
 * exemption lasts).
 */
function onFourLevels(e: ActiveExemption): ActiveExemption {
  if (e.control !== "contentSafety" || e.relaxation.kind !== "thresholds") return e;
  const categories = Object.fromEntries(Object.entries(e.relaxation.categories).map(([name, t]) => [name, typeof t === "number" ? t - (t % 2) : t]));
  return { ...e, relaxation: { ...e.relaxation, categories } };
}

/** Key exemptions → exemption key tiers (see the module comment). */
function applyKeyExemptions(input: CompilerInputIn, keyExemptions: ActiveExemption[]): CompilerInputIn {
  if (keyExemptions.length === 0) return input;
  const byKey = new Map<string, { projectId: string; items: ActiveExemption[] }>();
  for (const e of keyExemptions) {
    if (e.scope.level !== "key") continue;
    const entry = byKey.get(e.scope.keyId) ?? { projectId: e.scope.projectId, items: [] };
    if (entry.projectId !== e.scope.projectId) continue; // a key belongs to one project
    entry.items.push(e);
    byKey.set(e.scope.keyId, entry);
  }
  const tiers: TierIn[] = [...(input.keyTiers ?? [])];
  const projects = new Map(input.projects.map((p) => [p.id, p]));
  const virtualKeys = [...(input.virtualKeys ?? [])];
  let changed = false;
  for (const keyId of [...byKey.keys()].sort(byCodePoint)) {
    const { projectId, items } = byKey.get(keyId)!;
    const project = projects.get(projectId);
    if (!project) continue;
    const keyIndex = virtualKeys.findIndex((k) => k.id === keyId);
    const baseTierId = keyIndex >= 0 ? virtualKeys[keyIndex]!.tier : undefined;
    const baseTier = baseTierId !== undefined ? tiers.find((t) => t.id === baseTierId) : undefined;
    const eff = mergeSettings(input.settings as Settings | undefined, project.settings as Settings | undefined);
    const limits: TierIn["limits"] = { ...(baseTier?.limits ?? {}) };
    // What binds the key now: the tighter of its tier's value and the project's per-key limit (both counters
    // apply; the exemption tier replaces both for it, limits.ts). An exemption only relaxes: its value is
    // set only above that, never below (a tightening), and never the tier's own value above it (a widening
    // nobody approved: a profile cannot widen past the project's limit).
    const tighter = (...vs: (number | undefined)[]) => {
      const d = vs.filter((v): v is number => v !== undefined);
      return d.length ? Math.min(...d) : undefined;
    };
    // Several exemptions of one limit for one key: the largest.
    const largest = (control: ControlId) => Math.max(0, ...items.flatMap((e) => (e.control === control && e.relaxation.kind === "limit" ? [e.relaxation.value] : [])));
    const tpm = eff["tokens.perMinute"]?.value;
    const tq = eff["tokens.quota"]?.value;
    const rr = eff["requests.rate"]?.value;
    // A tier sets per-key values; it cannot relax a shared (per-project) counter.
    if (largest("tokens.perMinute") && (baseTier?.limits.tokensPerMinute !== undefined || tpm?.per === "key")) {
      const value = largest("tokens.perMinute");
      if (value > tighter(baseTier?.limits.tokensPerMinute, tpm?.per === "key" ? tpm.limit : undefined)!) limits.tokensPerMinute = value;
    }
    if (largest("tokens.quota") && (baseTier?.limits.tokenQuota !== undefined || tq?.per === "key")) {
      const value = largest("tokens.quota");
      const period = baseTier?.limits.tokenQuota?.period ?? tq?.period ?? "Monthly";
      if (value > tighter(baseTier?.limits.tokenQuota?.limit, tq?.per === "key" && tq.period === period ? tq.limit : undefined)!) limits.tokenQuota = { limit: value, period };
    }
    if (largest("requests.rate") && (baseTier?.limits.requestRate !== undefined || rr?.per === "key")) {
      const value = largest("requests.rate");
      const renewalPeriodSeconds = baseTier?.limits.requestRate?.renewalPeriodSeconds ?? rr?.renewalPeriodSeconds ?? 60;
      const projectCalls = rr?.per === "key" ? Math.floor((rr.calls * renewalPeriodSeconds) / rr.renewalPeriodSeconds) : undefined;
      if (value > tighter(baseTier?.limits.requestRate?.calls, projectCalls)!) limits.requestRate = { calls: value, renewalPeriodSeconds };
    }
    if (JSON.stringify(limits) === JSON.stringify(baseTier?.limits ?? {})) continue;
    const digest = createHash("sha256").update(JSON.stringify([projectId, baseTierId ?? "", limits])).digest("hex").slice(0, 24 - EXEMPTION_TIER_PREFIX.length);
    const tierId = `${EXEMPTION_TIER_PREFIX}${digest}`;
    const offered = project.keyTiers ?? [];
    const accepts = (q: ProjectIn, t: string) => (q.sharedKeyTiers ?? []).some((s) => s.projectId === projectId && s.tierId === t);
    const acceptors = baseTierId === undefined ? [] : [...projects.values()].filter((q) => accepts(q, baseTierId) && !accepts(q, tierId));
    if (acceptors.some((q) => (q.sharedKeyTiers ?? []).length >= MAX_PROJECT_KEY_TIERS)) continue; // fail closed: the key keeps its limits
    if (!tiers.some((t) => t.id === tierId)) {
      if (tiers.length >= MAX_TENANT_KEY_TIERS || offered.length >= MAX_PROJECT_KEY_TIERS) continue; // fail closed, as above
      const relaxes = [...new Set(items.filter((e) => e.relaxation.kind === "limit").map((e) => e.control))].filter((c): c is "tokens.perMinute" | "tokens.quota" | "requests.rate" =>
        ["tokens.perMinute", "tokens.quota", "requests.rate"].includes(c),
      ).sort();
      // Everything else of the key's tier stays (its model scope, extra content safety, tool and agent
      // grants): the exemption relaxes the limits it names and nothing more. (The base tier's id is in
      // the digest, so a different base never shares this tier.)
      const { id: _id, description: _d, limits: _l, relaxes: _r, ...kept } = baseTier ?? ({} as Partial<TierIn>);
      tiers.push({ ...structuredClone(kept), id: tierId, description: `exemption tier of ${projectId}`, limits, relaxes });
    }
    if (!offered.includes(tierId)) projects.set(projectId, { ...project, keyTiers: [...offered, tierId] });
    for (const q of acceptors) projects.set(q.id, { ...q, sharedKeyTiers: [...(q.sharedKeyTiers ?? []), { projectId, tierId }] });
    if (keyIndex >= 0) virtualKeys[keyIndex] = { ...virtualKeys[keyIndex]!, tier: tierId };
    else virtualKeys.push({ id: keyId, projectId, tier: tierId });
    changed = true;
  }
  if (!changed) return input;
  return { ...input, keyTiers: tiers, projects: input.projects.map((p) => projects.get(p.id)!), virtualKeys };
}

/**
 * Whether a key exemption in force is applied by the compiler input `input` (exemptions applied): its key
 * is on an exemption tier that relaxes its control. Not applied — the compiler fails closed (the key keeps
 * its own limits) — the reason says why, so an exemption never reads as in force while it does nothing.
 */
export function keyExemptionOutcome(input: CompilerInputIn, exemption: Pick<ActiveExemption, "scope" | "control">): { applied: boolean; why?: string } {
  const { scope } = exemption;
  if (scope.level !== "key") return { applied: true };
  const tierId = (input.virtualKeys ?? []).find((k) => k.id === scope.keyId && k.projectId === scope.projectId)?.tier;
  const tier = tierId?.startsWith(EXEMPTION_TIER_PREFIX) ? (input.keyTiers ?? []).find((t) => t.id === tierId) : undefined;
  if (tier && (tier.relaxes ?? []).includes(exemption.control as never)) return { applied: true };
  const project = input.projects.find((p) => p.id === scope.projectId);
  if (!project) return { applied: false, why: `its project ${scope.projectId} is not in the gateway configuration` };
  if ((project.keyTiers ?? []).length >= MAX_PROJECT_KEY_TIERS) {
    return { applied: false, why: `project ${scope.projectId} already offers ${MAX_PROJECT_KEY_TIERS} key tiers, the most its gateway document holds: the key's exemption tier is not added and the key keeps its own limits (end another key exemption of the project, or exempt the project or a model instead)` };
  }
  if ((input.keyTiers ?? []).length >= MAX_TENANT_KEY_TIERS) return { applied: false, why: `the tenant already has ${MAX_TENANT_KEY_TIERS} key tiers, the most its gateway holds: the key keeps its own limits` };
  return { applied: false, why: `the approved ${exemption.control} limit is not above what binds the key now (or a project the key is shared with accepts no more key tiers): the key keeps its own limits` };
}
