import type { Clock } from "../../ports/clock.js";
import type { Store } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import type { RequestContext, Role } from "../common.js";
import { AppError, fail, type FieldError } from "../errors.js";
import { ANY_TENANT_ROLE, GOVERNANCE_DECIDERS, holdsAny, TENANT_ADMINS } from "../kernel/roles.js";
import { INITIAL_ETAG, TenantSingleton } from "../kernel/singleton.js";
import { fieldErrors, parseOrThrow } from "../validation.js";
import { ApprovalRoute, ApprovalRoutesSpec, type ApprovalRoutes, type ApproverRef, type RouteKey } from "./schema.js";

type StageSpec = ApprovalRoute["stages"][number];


const stage = (approvers: ApproverRef[]): StageSpec => ({ approvers, decisionTimeout: "P7D" });
const tenantRole = (role: Role): ApproverRef => ({ role, scope: "tenant" });

/**
 * The product's routes: used when no tenant route matches, and the baseline the minimums describe.
 * A high-risk exemption (a whole scope) needs two people; a key share, the target project's admins
 * (or a TenantAdmin); anything else, a TenantAdmin.
 */
export const PRODUCT_ROUTES: readonly ApprovalRoute[] = [
  { name: "product: high-risk exemption", match: { subjectType: "exemption", scope: "*", risk: "high" }, stages: [stage([tenantRole("Approver"), tenantRole("TenantAdmin")]), stage([tenantRole("TenantAdmin")])] },
  { name: "product: exemption", match: { subjectType: "exemption", scope: "*", risk: "*" }, stages: [stage([tenantRole("TenantAdmin")])] },
  { name: "product: key share", match: { subjectType: "keyShare", scope: "*", risk: "*" }, stages: [stage([{ role: "ProjectAdmin", scope: "project" }, tenantRole("TenantAdmin")])] },
  { name: "product: key request", match: { subjectType: "keyRequest", scope: "*", risk: "*" }, stages: [stage([{ role: "ProjectAdmin", scope: "project" }, tenantRole("TenantAdmin")])] },
  { name: "product: anything else", match: { subjectType: "*", scope: "*", risk: "*" }, stages: [stage([tenantRole("TenantAdmin")])] },
];

export const MINIMUMS = [
  "A route that can apply to exemptions has at least one governance stage: every approver of the stage (and of its escalation) is a TenantAdmin or an Approver of the tenant, or a person the route names.",
  "A route that can apply to high-risk exemptions (the tenant, or a control switched off for a whole project) has at least two stages.",
  "A route whose scope is the tenant has no project-scoped approvers (nobody would hold them).",
  "Requesters never decide their own request, nor does anyone they manage through a project assignment (a user assigned a role on a project where the requester is ProjectAdmin).",
  "A request may add up to two stages after its route's; it never replaces or shortens the route.",
];

const matches = (route: ApprovalRoute, key: RouteKey): boolean =>
  (route.match.subjectType === "*" || route.match.subjectType === key.subjectType) &&
  (route.match.scope === "*" || route.match.scope === key.scope) &&
  (route.match.risk === "*" || route.match.risk === key.risk);

/** Could the route apply to a request of this subject type and risk (some scope)? */
const mayApply = (route: ApprovalRoute, subjectType: RouteKey["subjectType"], risk?: RouteKey["risk"]): boolean =>
  (route.match.subjectType === "*" || route.match.subjectType === subjectType) && (risk === undefined || route.match.risk === "*" || route.match.risk === risk);

const isGovernanceRef = (ref: ApproverRef) => ("user" in ref ? true : ref.scope === "tenant" && GOVERNANCE_DECIDERS.includes(ref.role));
const isGovernanceStage = (s: StageSpec) => [...s.approvers, ...(s.escalateTo ?? [])].every(isGovernanceRef);

/** What keeps a route from being used (the product's minimums); empty when it may be. */
export function routeMinimumErrors(route: ApprovalRoute, field: string): FieldError[] {
  const errors: FieldError[] = [];
  if (mayApply(route, "exemption") && !route.stages.some(isGovernanceStage)) {
    errors.push({ field: `${field}.stages`, message: "a route that can apply to exemptions needs a stage decided by TenantAdmins, Approvers or named people only" });
  }
  if (mayApply(route, "exemption", "high") && route.stages.length < 2) {
    errors.push({ field: `${field}.stages`, message: "a route that can apply to high-risk exemptions needs at least two stages" });
  }
  if (route.match.scope === "tenant") {
    route.stages.forEach((s, i) => {
      if ([...s.approvers, ...(s.escalateTo ?? [])].some((r) => "role" in r && r.scope === "project")) {
        errors.push({ field: `${field}.stages.${i}.approvers`, message: "a tenant-scope route cannot name project-scoped roles" });
      }
    });
  }
  return errors;
}

/**
 * What keeps a stored route from being used: the route schema as it is now (a route written before a
 * rule existed — an approver named by e-mail address, say — breaks it) and the product's minimums.
 */
export function storedRouteErrors(route: ApprovalRoute, field: string): FieldError[] {
  const parsed = ApprovalRoute.safeParse(route);
  if (!parsed.success) return fieldErrors(parsed.error, field);
  return routeMinimumErrors(parsed.data, field);
}

/** The route a request gets: its stages and where they came from. */
export interface ResolvedRoute {
  name: string;
  source: "tenant" | "product";
  stages: StageSpec[];
}

/**
 * Approval routes are the tenant's: TenantAdmins say who approves what (by subject type, scope and
 * risk); requesters may only add stages after the route's. One tenant document, replaced as a whole
 * with If-Match, audited and announced like every change.
 */
export class ApprovalRouteService {
  private readonly doc: TenantSingleton<{ routes: ApprovalRoute[] }>;

  constructor(store: Store, changes: ChangeWriter, clock: Clock) {
    this.doc = new TenantSingleton(store, changes, clock, {
      id: "approvalRoutes.tenant",
      docType: "approvalRoutes",
      path: "/approval-routes",
      action: "approvalRoutes.update",
      event: "aigov.approvalroutes.updated.v1",
      eventData: (v) => ({ routes: v.routes.map((r) => ({ name: r.name, match: r.match, stages: r.stages.length })) }),
    });
  }

  async get(ctx: RequestContext): Promise<ApprovalRoutes> {
    if (!holdsAny(ctx.principal.roles, ANY_TENANT_ROLE)) fail({ kind: "forbidden", detail: "reading approval routes requires a tenant role" });
    const written = await this.doc.read(ctx.principal.tenantId);
    return { routes: [], ...written, defaults: [...PRODUCT_ROUTES], minimums: MINIMUMS, unusable: unusableOf(written?.routes ?? []), etag: written?.etag ?? INITIAL_ETAG };
  }

  async put(ctx: RequestContext, input: unknown, ifMatch: string): Promise<ApprovalRoutes> {
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "changing approval routes requires TenantAdmin" });
    const spec = parseOrThrow(ApprovalRoutesSpec, input, "body");
    const errors = spec.routes.flatMap((r, i) => routeMinimumErrors(r, `body.routes.${i}`));
    const names = new Set<string>();
    spec.routes.forEach((r, i) => {
      if (names.has(r.name)) errors.push({ field: `body.routes.${i}.name`, message: `another route is already named '${r.name}'` });
      names.add(r.name);
    });
    if (errors.length) throw new AppError({ kind: "validation", detail: "the approval routes do not meet the product's minimums", errors, reason: "approval_route_below_minimum" });
    const written = await this.doc.write(ctx, { routes: spec.routes }, ifMatch);
    return { ...written, defaults: [...PRODUCT_ROUTES], minimums: MINIMUMS, unusable: [] };
  }

  /**
   * The route for a request: the tenant's first matching route, else the product's. A stored route
   * is checked against the schema and the minimums again (they may have grown since it was written):
   * one that falls short is skipped, never used.
   */
  async resolve(tenantId: string, key: RouteKey): Promise<ResolvedRoute> {
    const written = await this.doc.read(tenantId);
    const tenant = (written?.routes ?? []).find((r) => matches(r, key) && storedRouteErrors(r, "route").length === 0);
    if (tenant) return { name: tenant.name, source: "tenant", stages: tenant.stages };
    const product = PRODUCT_ROUTES.find((r) => matches(r, key))!;
    return { name: product.name, source: "product", stages: product.stages };
  }
}

/** The stored routes `resolve` skips, and why (the GET shows them so a TenantAdmin can mend them). */
function unusableOf(routes: ApprovalRoute[]): { name: string; errors: FieldError[] }[] {
  return routes.flatMap((r, i) => {
    const errors = storedRouteErrors(r, `routes.${i}`);
    return errors.length ? [{ name: r.name, errors }] : [];
  });
}
