import type { Clock } from "../../ports/clock.js";
import { TENANT_SCOPE, type Partition, type Store, type StoredDoc } from "../../ports/store.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, type RequestContext, type Role } from "../common.js";
import { AppError, fail, type FieldError } from "../errors.js";
import { parseOrThrow } from "../validation.js";
import { ApprovalRoutesSpec, type ApprovalRoute, type ApprovalRoutes, type ApproverRef, type RouteKey } from "./schema.js";

type StageSpec = ApprovalRoute["stages"][number];

interface ApprovalRoutesDoc extends StoredDoc {
  docType: "approvalRoutes";
  routes: ApprovalRoute[];
  updatedAt: string;
  updatedBy: string;
}

export const INITIAL_ETAG = "initial";
const DOC_ID = "approvalRoutes.tenant";
const READERS: Role[] = ["TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader"];
const partitionOf = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });

/** Roles whose holders decide for the tenant's governance (not for a project, not as peers). */
const GOVERNANCE_ROLES: readonly Role[] = ["TenantAdmin", "Approver"];

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

const isGovernanceRef = (ref: ApproverRef) => ("user" in ref ? true : ref.scope === "tenant" && GOVERNANCE_ROLES.includes(ref.role));
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

/** The route a request gets: its stages and where they came from. */
export interface ResolvedRoute {
  name: string;
  source: "tenant" | "product";
  stages: StageSpec[];
}

/**
 * Approval routes are the tenant's: TenantAdmins say who approves what (by subject type, scope and
 * risk); requesters may only add stages after the route's. Stored as one document in the tenant
 * partition, replaced as a whole with If-Match, audited and announced like every change.
 */
export class ApprovalRouteService {
  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
  ) {}

  async get(ctx: RequestContext): Promise<ApprovalRoutes> {
    if (!READERS.some((r) => ctx.principal.roles.has(r))) fail({ kind: "forbidden", detail: "reading approval routes requires a tenant role" });
    const doc = await this.store.read<ApprovalRoutesDoc>(partitionOf(ctx.principal.tenantId), DOC_ID);
    return doc ? this.view(doc, doc._etag) : { routes: [], defaults: [...PRODUCT_ROUTES], minimums: MINIMUMS, etag: INITIAL_ETAG };
  }

  async put(ctx: RequestContext, input: unknown, ifMatch: string): Promise<ApprovalRoutes> {
    const { principal } = ctx;
    if (!principal.roles.has("TenantAdmin")) fail({ kind: "forbidden", detail: "changing approval routes requires TenantAdmin" });
    const spec = parseOrThrow(ApprovalRoutesSpec, input, "body");
    const errors = spec.routes.flatMap((r, i) => routeMinimumErrors(r, `body.routes.${i}`));
    const names = new Set<string>();
    spec.routes.forEach((r, i) => {
      if (names.has(r.name)) errors.push({ field: `body.routes.${i}.name`, message: `another route is already named '${r.name}'` });
      names.add(r.name);
    });
    if (errors.length) throw new AppError({ kind: "validation", detail: "the approval routes do not meet the product's minimums", errors, reason: "approval_route_below_minimum" });
    const partition = partitionOf(principal.tenantId);
    const current = await this.store.read<ApprovalRoutesDoc>(partition, DOC_ID);
    if (!etagMatches(current?._etag ?? INITIAL_ETAG, ifMatch)) fail({ kind: "preconditionFailed" });
    const doc: ApprovalRoutesDoc = { id: DOC_ID, ...partition, docType: "approvalRoutes", routes: spec.routes, updatedAt: this.clock.now().toISOString(), updatedBy: principal.userId };
    const plain = (d: ApprovalRoutesDoc) => ({ routes: d.routes, updatedAt: d.updatedAt, updatedBy: d.updatedBy });
    const [etag] = await this.changes.commit({
      partition,
      ctx,
      action: "approvalRoutes.update",
      resource: "/approval-routes",
      ...(current ? { before: plain(current) } : {}),
      after: plain(doc),
      ops: [current ? { kind: "replace", doc, ifMatch: current._etag } : { kind: "create", doc }],
      event: { type: "aigov.approvalroutes.updated.v1", subject: `/tenants/${principal.tenantId}/approval-routes`, data: { routes: doc.routes.map((r) => ({ name: r.name, match: r.match, stages: r.stages.length })) } },
      onFailure: (_i, status) => (status === 409 ? { kind: "preconditionFailed" } : undefined),
    });
    return this.view(doc, etag ?? "");
  }

  /**
   * The route for a request: the tenant's first matching route, else the product's. A stored route
   * is checked against the minimums again (they may have grown since it was written): one that falls
   * short is skipped, never used.
   */
  async resolve(tenantId: string, key: RouteKey): Promise<ResolvedRoute> {
    const doc = await this.store.read<ApprovalRoutesDoc>(partitionOf(tenantId), DOC_ID);
    const tenant = (doc?.routes ?? []).find((r) => matches(r, key) && routeMinimumErrors(r, "route").length === 0);
    if (tenant) return { name: tenant.name, source: "tenant", stages: tenant.stages };
    const product = PRODUCT_ROUTES.find((r) => matches(r, key))!;
    return { name: product.name, source: "product", stages: product.stages };
  }

  private view(doc: ApprovalRoutesDoc, etag: string): ApprovalRoutes {
    return { routes: doc.routes, defaults: [...PRODUCT_ROUTES], minimums: MINIMUMS, updatedAt: doc.updatedAt, updatedBy: doc.updatedBy, etag: etagValue(etag) };
  }
}
