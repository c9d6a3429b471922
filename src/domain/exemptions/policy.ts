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
import { DEFAULT_EXEMPTION_POLICY, ExemptionPolicySpec, type Exemption, type ExemptionPolicy } from "./schema.js";

/**
 * "Broad" scopes need a second approval stage: the whole tenant, or a control switched off for a
 * whole project (everything the project serves loses the guardrail, not just one model or key).
 */
export function isBroad(scope: Exemption["scope"], relaxation: Exemption["relaxation"]): boolean {
  return scope.level === "tenant" || (scope.level === "project" && relaxation.kind === "off");
}

/** The approval route of an exemption: by its scope, and high risk when it is broad. */
export const routeKeyOf = (scope: Exemption["scope"], relaxation: Exemption["relaxation"]): RouteKey => ({ subjectType: "exemption", scope: scope.level, risk: isBroad(scope, relaxation) ? "high" : "standard" });

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
  private readonly doc: TenantSingleton<ExemptionPolicySpec>;

  constructor(store: Store, changes: ChangeWriter, clock: Clock) {
    this.doc = new TenantSingleton(store, changes, clock, { id: "exemptionPolicy.tenant", docType: "exemptionPolicy", path: "/exemptions/policy", action: "exemptionPolicy.update", event: "aigov.exemptionpolicy.updated.v1" });
  }

  /** The tenant's policy as written, or the defaults with the ETag to write it the first time. */
  async get(tenantId: string): Promise<ExemptionPolicy> {
    return (await this.doc.read(tenantId)) ?? { ...DEFAULT_EXEMPTION_POLICY, etag: INITIAL_ETAG };
  }

  async put(ctx: RequestContext, input: unknown, ifMatch: string): Promise<ExemptionPolicy> {
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "changing the exemption policy requires TenantAdmin" });
    const spec = parseOrThrow(ExemptionPolicySpec, input, "body");
    return this.doc.write(ctx, { maxDays: spec.maxDays, controls: spec.controls }, ifMatch);
  }

  /** The maxima that apply to the tenant now. */
  async of(tenantId: string): Promise<ExemptionPolicySpec> {
    const doc = await this.doc.read(tenantId);
    return doc ? { maxDays: doc.maxDays, controls: doc.controls } : DEFAULT_EXEMPTION_POLICY;
  }
}
