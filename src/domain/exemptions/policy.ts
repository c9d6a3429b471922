import { isAllowListControl, type EffectiveSettings } from "../../policy/settings.js";
import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import type { RouteKey } from "../approvals/schema.js";
import type { ChangeWriter } from "../changes.js";
import type { RequestContext } from "../common.js";
import { AppError, fail, type FieldError } from "../errors.js";
import { holdsAny, TENANT_ADMINS } from "../kernel/roles.js";
import { INITIAL_ETAG, TenantSingleton } from "../kernel/singleton.js";
import type { ReasonWith } from "../reasons.js";
import { parseOrThrow } from "../validation.js";
import { DAY_MS } from "./documents.js";
import { DEFAULT_EXEMPTION_POLICY, DEFAULT_HIGH_RISK, ExemptionPolicySpec, type Exemption, type ExemptionPolicy, type HighRiskRules } from "./schema.js";

/**
 * How risky an exemption is: by its breadth and by its effect, not only by its form. The tenant and a
 * control switched off for a whole project are broad; so is a project-wide relaxation that comes
 * close to switching the control off (the tenant's `highRisk` thresholds): a limit raised to many
 * times the one in force, content-safety thresholds that leave every category blocking only the most
 * severe content, or an allow-list widened by many values at once. `inForce` is what applies in the
 * project now, once at project level and once per model (tenant, project and model settings merged and
 * held to the tenant's floors, as the compiler does; no exemptions): a project exemption raises every
 * model's lower value too, so the lowest in force anywhere in the project is what it is measured
 * against. A control nobody configured anywhere in the project is not switched on by an exemption
 * (src/policy/exemptions.ts), so relaxing it changes nothing. Narrower scopes (a model, a key) are
 * standard whatever they relax.
 */
export function riskOf(
  exemption: { control: Exemption["control"]; scope: Exemption["scope"]; relaxation: Exemption["relaxation"] },
  highRisk: HighRiskRules,
  inForce: readonly EffectiveSettings[],
): { risk: "standard" | "high"; why: string; changesNothing?: true } {
  const { control, scope, relaxation: r } = exemption;
  if (scope.level === "tenant") return { risk: "high", why: "it applies to the whole tenant" };
  if (scope.level !== "project") return { risk: "standard", why: `it applies to one ${scope.level}` };
  if (r.kind === "off") return { risk: "high", why: `${control} is switched off for a whole project` };
  const standard = { risk: "standard" as const, why: "a project-wide relaxation within the tenant's high-risk thresholds" };
  const unconfigured = { risk: "standard" as const, why: `${control} is not configured in the project, so the exemption changes nothing there`, changesNothing: true as const };
  if (r.kind === "limit") {
    const limits = inForce.map((e) => limitInForce(control, e)).filter((v): v is number => v !== undefined);
    if (!limits.length) return unconfigured;
    const current = Math.min(...limits);
    return r.value >= current * highRisk.limitFactor
      ? { risk: "high", why: `${r.value} is at least ${highRisk.limitFactor} times the ${control} limit in force (${current})` }
      : standard;
  }
  if (r.kind === "thresholds") {
    const filters = inForce.map((e) => e.contentSafety?.value).filter((v) => v !== undefined);
    if (!filters.length) return unconfigured;
    const opened = filters.some((cs) => cs.categories.every((c) => Math.max(c.threshold, r.categories[c.name] ?? c.threshold) >= highRisk.thresholdLevel));
    return opened ? { risk: "high", why: `every content-safety category would block only at ${highRisk.thresholdLevel} or above` } : standard;
  }
  if (!isAllowListControl(control)) return standard;
  const lists = inForce.map((e) => e[control]?.value).filter((v) => v !== undefined);
  if (!lists.length) return unconfigured;
  const values = [...new Set(r.values)];
  const added = Math.max(...lists.map((list) => values.filter((v) => !list.includes(v)).length));
  return added > highRisk.allowValues ? { risk: "high", why: `it adds ${added} values to ${control} (more than ${highRisk.allowValues})` } : standard;
}

/**
 * Why a project-wide relaxation would change nothing where the control is in force (undefined when it
 * loosens something somewhere): a limit at or below the lowest in force, thresholds at or below every
 * filter's, allow-list values every list already holds. Exemptions only relax, so such a request relaxes
 * nothing today — and would relax, unseen by its approver, the day the project's own value is tightened
 * below it. A control configured nowhere is a different case (riskOf's `changesNothing`: kept latent).
 */
export function notLooser(exemption: { control: Exemption["control"]; relaxation: Exemption["relaxation"] }, inForce: readonly EffectiveSettings[]): string | undefined {
  const { control, relaxation: r } = exemption;
  if (r.kind === "limit") {
    const limits = inForce.map((e) => limitInForce(control, e)).filter((v): v is number => v !== undefined);
    if (!limits.length) return undefined;
    const lowest = Math.min(...limits);
    return r.value <= lowest ? `${r.value} is not above the ${control} limit in force (${lowest}${limits.length > 1 ? ", the lowest in the project" : ""})` : undefined;
  }
  if (r.kind === "thresholds") {
    const filters = inForce.map((e) => e.contentSafety?.value).filter((v) => v !== undefined);
    if (!filters.length) return undefined;
    const raises = filters.some((cs) => cs.categories.some((c) => (r.categories[c.name] ?? c.threshold) > c.threshold));
    return raises ? undefined : "no category's threshold is above the one in force";
  }
  if (r.kind === "allow" && isAllowListControl(control)) {
    const lists = inForce.map((e) => e[control]?.value).filter((v) => v !== undefined);
    if (!lists.length) return undefined;
    return lists.every((list) => r.values.every((v) => list.includes(v))) ? `every value is already allowed by ${control}` : undefined;
  }
  return undefined;
}

/** A key's own per-key limits (its key profile's), as far as a key exemption can relax them. */
export interface KeyOwnLimits {
  tokensPerMinute?: number;
  tokenQuota?: { limit: number; period: string };
  requestsPerMinute?: number;
}

/**
 * Why a key-scope relaxation would change nothing for its key (undefined when it loosens what binds it),
 * judged as the compiler makes the key's exemption tier (src/policy/exemptions.ts): the tier replaces both
 * counters that bound the key — its own profile's limit and the project's per-key one (tenant and project
 * merged, held to the tenant's floors) — so the value must be above the tighter of the two. A limit the
 * project counts per project is a shared counter no key tier relaxes. `changesNothing`: the control binds
 * the key nowhere (kept latent, as a project exemption of a control configured nowhere is).
 */
export function keyNotLooser(exemption: { control: Exemption["control"]; relaxation: Exemption["relaxation"] }, own: KeyOwnLimits, inForce: EffectiveSettings): { notLooser?: string; changesNothing?: true } {
  const { control, relaxation: r } = exemption;
  if (r.kind !== "limit") return {};
  const tighter = (...vs: (number | undefined)[]) => {
    const d = vs.filter((v): v is number => v !== undefined);
    return d.length ? Math.min(...d) : undefined;
  };
  let binding: number | undefined;
  let shared = false;
  if (control === "tokens.perMinute") {
    const tpm = inForce["tokens.perMinute"]?.value;
    binding = tighter(own.tokensPerMinute, tpm?.per === "key" ? tpm.limit : undefined);
    shared = tpm !== undefined && tpm.per !== "key";
  } else if (control === "tokens.quota") {
    const tq = inForce["tokens.quota"]?.value;
    const period = own.tokenQuota?.period ?? tq?.period ?? "Monthly";
    binding = tighter(own.tokenQuota?.limit, tq?.per === "key" && tq.period === period ? tq.limit : undefined);
    shared = tq !== undefined && tq.per !== "key";
  } else if (control === "requests.rate") {
    const rr = inForce["requests.rate"]?.value;
    // The key's own rate is per minute; the project's is scaled to the key tier's window, as the compiler does.
    const window = own.requestsPerMinute !== undefined ? 60 : (rr?.renewalPeriodSeconds ?? 60);
    binding = tighter(own.requestsPerMinute, rr?.per === "key" ? Math.floor((rr.calls * window) / rr.renewalPeriodSeconds) : undefined);
    shared = rr !== undefined && rr.per !== "key";
  } else return {};
  if (binding === undefined) {
    return shared ? { notLooser: `the project counts ${control} per project (one shared counter): a key's tier cannot relax it; exempt the project instead` } : { changesNothing: true };
  }
  return r.value <= binding ? { notLooser: `${r.value} is not above the ${control} limit that binds the key (${binding})` } : {};
}

/**
 * What several exemptions of one control at one scope do together, as the compiler applies them: any
 * `off` switches it off; limits and thresholds take the highest value; allow-lists add up. Risk is
 * judged on this, so a relaxation split into requests each within the thresholds (three regions, then
 * three more) is judged as the whole it adds up to.
 */
export function combinedRelaxation(relaxations: readonly Exemption["relaxation"][]): Exemption["relaxation"] {
  if (relaxations.some((r) => r.kind === "off")) return { kind: "off" };
  const first = relaxations[0]!;
  if (first.kind === "limit") return { kind: "limit", value: Math.max(...relaxations.map((r) => (r.kind === "limit" ? r.value : 0))) };
  if (first.kind === "thresholds") {
    const categories: Record<string, number> = {};
    for (const r of relaxations) if (r.kind === "thresholds") for (const [c, v] of Object.entries(r.categories)) if (v !== undefined) categories[c] = Math.max(categories[c] ?? 0, v);
    return { kind: "thresholds", categories } as Exemption["relaxation"];
  }
  if (first.kind === "allow") return { kind: "allow", values: [...new Set(relaxations.flatMap((r) => (r.kind === "allow" ? r.values : [])))] };
  return first;
}

/** The numeric limit of a limit control in force, when it has one. */
function limitInForce(control: Exemption["control"], inForce: EffectiveSettings): number | undefined {
  switch (control) {
    case "tokens.perMinute":
    case "tokens.quota":
      return inForce[control]?.value.limit;
    case "requests.rate":
      return inForce["requests.rate"]?.value.calls;
    case "prompt.maxBytes":
      return inForce["prompt.maxBytes"]?.value;
    default:
      return undefined;
  }
}

/** The approval route of an exemption: by its scope, and by its risk. */
export const routeKeyOf = (scope: Exemption["scope"], risk: "standard" | "high"): RouteKey => ({ subjectType: "exemption", scope: scope.level, risk });

/** A 400 naming the fields, with the business reason when there is one. */
export const invalid = (errors: FieldError[], why?: { reason: ReasonWith<400> }) => new AppError({ kind: "validation", detail: "the request body is invalid", errors, ...why });

/** expiryErrors refuses a date in the future only for the tenant's maximum: a business rule, with its reason. */
export const beyondMaximum = (expiry: FieldError[], expiresAt: string, now: Date) => (expiry.length > 0 && Date.parse(expiresAt) > now.getTime() ? { reason: "exemption_lifetime_exceeded" as const } : undefined);

/** expiresAt must lie in the future and within the tenant's maxima for the category and the control. */
export function expiryErrors(policy: ExemptionPolicySpec, category: Exemption["category"], control: Exemption["control"], now: Date, expiresAt: string, field: string): FieldError[] {
  const at = Date.parse(expiresAt);
  const perControl = policy.controls[control]?.[category];
  const maxDays = Math.min(policy.maxDays[category], perControl ?? Infinity);
  if (at <= now.getTime()) return [{ field, message: "must be in the future" }];
  if (at > now.getTime() + maxDays * DAY_MS) {
    return [{ field, message: `must be within ${maxDays} days for a ${category} of ${control} (the tenant's maximum${perControl !== undefined ? " for this control" : ""})` }];
  }
  return [];
}

/** The tenant's exemption policy: how long exemptions may last, per category and per control (a tenant singleton). */
export class ExemptionPolicies {
  // Policies written before the high-risk rules existed have none stored.
  private readonly doc: TenantSingleton<ExemptionPolicySpec>;

  constructor(store: Store, changes: ChangeWriter, clock: Clock) {
    this.doc = new TenantSingleton(store, changes, clock, { id: "exemptionPolicy.tenant", docType: "exemptionPolicy", path: "/exemptions/policy", action: "exemptionPolicy.update", event: "aigov.exemptionpolicy.updated.v1" });
  }

  /** The tenant's policy as written, or the defaults with the ETag to write it the first time. */
  async get(tenantId: string): Promise<ExemptionPolicy> {
    const doc = await this.doc.read(tenantId);
    return doc ? { ...doc, highRisk: doc.highRisk ?? DEFAULT_HIGH_RISK } : { ...DEFAULT_EXEMPTION_POLICY, etag: INITIAL_ETAG };
  }

  async put(ctx: RequestContext, input: unknown, ifMatch: string): Promise<ExemptionPolicy> {
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "changing the exemption policy requires TenantAdmin" });
    const spec = parseOrThrow(ExemptionPolicySpec, input, "body");
    // A policy file written before the high-risk rules existed must not reset rules a tenant tuned since.
    const highRisk = spec.highRisk ?? (await this.doc.read(ctx.principal.tenantId))?.highRisk ?? DEFAULT_HIGH_RISK;
    const written = await this.doc.write(ctx, { maxDays: spec.maxDays, controls: spec.controls, highRisk }, ifMatch);
    return { ...written, highRisk };
  }

  /** The maxima and high-risk rules that apply to the tenant now. */
  async of(tenantId: string): Promise<ExemptionPolicySpec & { highRisk: HighRiskRules }> {
    const doc = await this.doc.read(tenantId);
    return doc ? { maxDays: doc.maxDays, controls: doc.controls, highRisk: doc.highRisk ?? DEFAULT_HIGH_RISK } : DEFAULT_EXEMPTION_POLICY;
  }
}
