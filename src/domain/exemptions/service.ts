import { exemptionUnsupported, type ActiveExemption } from "../../policy/exemptions.js";
import type { Clock } from "../../ports/clock.js";
import type { Notifier } from "../../ports/notifier.js";
import { TENANT_SCOPE, unversioned, type Filter, type Partition, type Store, type StoredDoc, type Versioned } from "../../ports/store.js";
import type { Approval, RouteKey } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, newId, type Page, type RequestContext, type Role } from "../common.js";
import { AppError, fail, type FieldError } from "../errors.js";
import type { ReasonWith } from "../reasons.js";
import type { ModelService } from "../../pillars/models/service.js";
import { everyDoc, toArray, unwrapToken, wrapToken } from "../paging.js";
import type { ProjectService } from "../projects/service.js";
import { holdsAny, TENANT_ADMINS } from "../kernel/roles.js";
import { INITIAL_ETAG, TenantSingleton } from "../kernel/singleton.js";
import { parseOrThrow } from "../validation.js";
import {
  DEFAULT_EXEMPTION_POLICY,
  ExemptionPolicySpec,
  ExemptionSpec,
  IN_FORCE,
  OPEN,
  RenewalSpec,
  RevokeSpec,
  type Exemption,
  type ExemptionListQuery,
  type ExemptionPolicy,
  type ExemptionReview,
  type ExemptionSpecInput,
  type ExemptionStatus,
} from "./schema.js";

/** Asks for the tenant's gateway policy to be compiled and published again (the publisher provides it). */
export type RequestPublish = (tenantId: string, cause: { by: string; reason: string; correlationId: string }) => Promise<void>;

/** Key-scoped exemptions must name a key that exists in the project (the key service answers). */
export interface KeyLookup {
  exists(tenantId: string, projectId: string, keyId: string): Promise<boolean>;
}

interface ExemptionDoc extends StoredDoc, Omit<Exemption, "etag"> {
  docType: "exemption";
  /** Query fields: the scope's project ("" for the tenant) and level. */
  projectId: string;
  scopeLevel: Exemption["scope"]["level"];
}


const DAY_MS = 24 * 3600 * 1000;
/** Key exemptions become key tiers (ADR 007); the compiler allows 20 tiers, so they stay few. */
export const MAX_OPEN_KEY_EXEMPTIONS = 10;
const REQUESTERS: Role[] = ["TenantAdmin", "ProjectAdmin", "Developer"];
const READERS: Role[] = ["TenantAdmin", "ProjectAdmin", "Developer", "Approver", "Auditor", "Reader"];

const partitionOf = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });
export const exemptionPath = (id: string) => `/exemptions/${id}`;
const subjectOf = (tenantId: string, id: string) => `/tenants/${tenantId}${exemptionPath(id)}`;
const system = (tenantId: string, userId: string, correlationId: string): RequestContext => ({ principal: { tenantId, userId, roles: new Set() }, correlationId });

function view(doc: ExemptionDoc, etag: string): Exemption {
  const { docType: _d, scopeId: _s, projectId: _p, scopeLevel: _l, _etag: _e, ...rest } = doc as ExemptionDoc & { _etag?: string };
  return { ...rest, etag: etagValue(etag) };
}
function snapshot(doc: ExemptionDoc) {
  const { etag: _e, ...rest } = view(doc, "");
  return rest;
}
/** Event data: what routes and correlates; never the free-text reason. */
function eventData(doc: ExemptionDoc, extra: Record<string, unknown> = {}) {
  return { id: doc.id, status: doc.status, control: doc.control, scope: doc.scope, category: doc.category, owner: doc.owner, expiresAt: doc.expiresAt, approvalId: doc.approvalId, ...extra };
}

/**
 * "Broad" scopes need a second approval stage: the whole tenant, or a control switched off for a
 * whole project (everything the project serves loses the guardrail, not just one model or key).
 */
export function isBroad(scope: Exemption["scope"], relaxation: Exemption["relaxation"]): boolean {
  return scope.level === "tenant" || (scope.level === "project" && relaxation.kind === "off");
}

/** The approval route of an exemption: by its scope, and high risk when it is broad. */
const routeKeyOf = (scope: Exemption["scope"], relaxation: Exemption["relaxation"]): RouteKey => ({ subjectType: "exemption", scope: scope.level, risk: isBroad(scope, relaxation) ? "high" : "standard" });

const validation = (errors: FieldError[], why?: { reason: ReasonWith<400> }) => new AppError({ kind: "validation", detail: "the request body is invalid", errors, ...why });
/** expiryErrors refuses a date in the future only for the tenant's maximum: a business rule, with its reason. */
const beyondMaximum = (expiry: FieldError[], expiresAt: string, now: Date) => (expiry.length > 0 && Date.parse(expiresAt) > now.getTime() ? { reason: "exemption_lifetime_exceeded" as const } : undefined);

type Step = { next: ExemptionDoc; action: string; event: string; extra?: Record<string, unknown>; publish?: string; notify?: "7d" | "1d" };

/**
 * Policy exemptions: narrow, owned, time-limited relaxations of one governance control, decided by
 * the approval engine and expired by a timer (docs/adr/007-exemptions.md). Every transition is one
 * conditional write with its audit record and event (ChangeWriter); exemptions live in the tenant
 * partition so lists and the portfolio review are single-partition queries.
 */
export class ExemptionService {
  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly approvals: ApprovalService,
    private readonly projects: ProjectService,
    private readonly models: ModelService,
    private readonly notifier: Notifier,
    private readonly requestPublish: RequestPublish,
    private readonly keys?: KeyLookup,
  ) {
    approvals.onSettled("exemption", (approval, correlationId) => this.settleApproval(approval, correlationId));
    this.policyDoc = new TenantSingleton(store, changes, clock, { id: "exemptionPolicy.tenant", docType: "exemptionPolicy", path: "/exemptions/policy", action: "exemptionPolicy.update", event: "aigov.exemptionpolicy.updated.v1" });
  }

  private readonly policyDoc: TenantSingleton<ExemptionPolicySpec>;

  // ---- API ----

  async request(ctx: RequestContext, input: ExemptionSpecInput): Promise<{ exemption: Exemption; approval: Approval }> {
    const { principal } = ctx;
    if (!REQUESTERS.some((r) => principal.roles.has(r))) fail({ kind: "forbidden", detail: "requesting an exemption requires TenantAdmin, ProjectAdmin or Developer" });
    const spec = parseOrThrow(ExemptionSpec, input, "body");
    const now = this.clock.now();
    const policy = await this.policyFor(principal.tenantId);
    const errors: FieldError[] = [];
    const unsupported = exemptionUnsupported(spec.control, spec.scope.level, spec.relaxation);
    if (unsupported) errors.push({ field: `body.${unsupported.field}`, message: unsupported.message });
    const expiry = expiryErrors(policy, spec.category, spec.control, now, spec.expiresAt, "body.expiresAt");
    errors.push(...expiry);
    if (errors.length) throw validation(errors, beyondMaximum(expiry, spec.expiresAt, now));
    await this.checkScope(ctx, spec.scope);

    const id = newId("exm");
    const expiresAt = new Date(spec.expiresAt).toISOString();
    const projectId = spec.scope.level === "tenant" ? undefined : spec.scope.projectId;
    const approval = await this.approvals.request(ctx, {
      subject: {
        resourceType: "exemption",
        resourceId: id,
        ...(projectId ? { projectId } : {}),
        change: { kind: "request", control: spec.control, scope: spec.scope, relaxation: spec.relaxation, category: spec.category, owner: spec.owner, expiresAt, compensatingControls: spec.compensatingControls, evidence: spec.evidence },
      },
      justification: `${spec.reason.deliveryBlocker} — expected end state: ${spec.reason.expectedEndState}`.slice(0, 4000),
      route: routeKeyOf(spec.scope, spec.relaxation),
      ...(spec.approval?.stages ? { extraStages: spec.approval.stages, extraField: "body.approval.stages" } : {}),
    });
    const at = now.toISOString();
    const doc: ExemptionDoc = {
      id,
      tenantId: principal.tenantId,
      scopeId: TENANT_SCOPE,
      docType: "exemption",
      projectId: projectId ?? "",
      scopeLevel: spec.scope.level,
      control: spec.control,
      scope: spec.scope,
      relaxation: spec.relaxation,
      category: spec.category,
      owner: spec.owner,
      reason: spec.reason,
      compensatingControls: spec.compensatingControls,
      evidence: spec.evidence,
      expiresAt,
      status: "requested",
      requester: principal.userId,
      approvalId: approval.id,
      notices: {},
      renewals: [],
      timeline: [{ at, type: "requested", actor: principal.userId }],
      createdAt: at,
      createdBy: principal.userId,
      updatedAt: at,
      updatedBy: principal.userId,
    };
    const [etag] = await this.changes.commit({
      partition: partitionOf(principal.tenantId),
      ctx,
      action: "exemption.request",
      resource: exemptionPath(id),
      after: snapshot(doc),
      ops: [{ kind: "create", doc }],
      event: { type: "aigov.exemption.requested.v1", subject: subjectOf(principal.tenantId, id), data: eventData(doc) },
    });
    return { exemption: view(doc, etag ?? ""), approval };
  }

  async get(ctx: RequestContext, id: string): Promise<Exemption> {
    this.mayRead(ctx);
    const doc = await this.load(ctx.principal.tenantId, id);
    return view(doc, doc._etag);
  }

  async list(ctx: RequestContext, q: ExemptionListQuery): Promise<Page<Exemption>> {
    this.mayRead(ctx);
    const filters: Filter[] = [];
    if (q.status) filters.push({ field: "status", op: "=", value: q.status });
    if (q.control) filters.push({ field: "control", op: "=", value: q.control });
    if (q.projectId) filters.push({ field: "projectId", op: "=", value: q.projectId });
    if (q.owner) filters.push({ field: "owner", op: "=", value: q.owner });
    const token = unwrapToken(q.continuationToken);
    const page = await this.store.queryPage<ExemptionDoc>(partitionOf(ctx.principal.tenantId), {
      docType: "exemption",
      filters,
      orderBy: { field: "createdAt", direction: "DESC" },
      maxPageSize: q.maxPageSize,
      ...(token ? { continuationToken: token } : {}),
    });
    const next = wrapToken(page.continuationToken);
    return { items: page.items.map((d) => view(d, d._etag)), ...(next ? { continuationToken: next } : {}) };
  }

  /** A renewal is a new approval with updated evidence; the exemption stays as it is until it is decided. */
  async renew(ctx: RequestContext, id: string, input: unknown, ifMatch: string): Promise<{ exemption: Exemption; approval: Approval }> {
    const { principal } = ctx;
    const doc = await this.load(principal.tenantId, id);
    this.mayChange(ctx, doc, "renew");
    const spec = parseOrThrow(RenewalSpec, input, "body");
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (!IN_FORCE.includes(doc.status)) fail({ kind: "conflict", detail: `only an active exemption can be renewed; this one is ${doc.status}`, reason: "exemption_not_active" });
    if (doc.renewals.some((r) => r.status === "pending")) fail({ kind: "conflict", detail: "a renewal is already awaiting approval", reason: "renewal_pending" });
    const now = this.clock.now();
    const policy = await this.policyFor(principal.tenantId);
    const errors = expiryErrors(policy, doc.category, doc.control, now, spec.expiresAt, "body.expiresAt");
    const lifetime = beyondMaximum(errors, spec.expiresAt, now);
    const expiresAt = new Date(spec.expiresAt).toISOString();
    if (Date.parse(expiresAt) <= Date.parse(doc.expiresAt)) errors.push({ field: "body.expiresAt", message: `must be later than the current expiry (${doc.expiresAt})` });
    if (spec.evidence.every((e) => doc.evidence.includes(e))) errors.push({ field: "body.evidence", message: "a renewal needs updated evidence: at least one link the exemption does not already have" });
    const compensating = spec.compensatingControls ?? doc.compensatingControls;
    if (doc.category === "waiver" && compensating.length === 0) errors.push({ field: "body.compensatingControls", message: "a waiver needs at least one compensating control" });
    if (errors.length) throw validation(errors, lifetime);

    const number = doc.renewals.length + 1;
    // A renewal takes the route as it is now (the original request keeps the one it was given).
    const approval = await this.approvals.request(ctx, {
      subject: {
        resourceType: "exemption",
        resourceId: id,
        ...(doc.projectId ? { projectId: doc.projectId } : {}),
        change: { kind: "renewal", renewal: number, control: doc.control, scope: doc.scope, relaxation: doc.relaxation, previousExpiresAt: doc.expiresAt, expiresAt, evidence: spec.evidence, compensatingControls: compensating },
      },
      justification: spec.justification,
      route: routeKeyOf(doc.scope, doc.relaxation),
      ...(spec.approval?.stages ? { extraStages: spec.approval.stages, extraField: "body.approval.stages" } : {}),
    });
    const at = now.toISOString();
    const next: ExemptionDoc = {
      ...unversioned(doc),
      renewals: [
        ...doc.renewals,
        {
          number,
          approvalId: approval.id,
          requestedAt: at,
          requestedBy: principal.userId,
          previousExpiresAt: doc.expiresAt,
          expiresAt,
          evidence: spec.evidence,
          justification: spec.justification,
          ...(spec.compensatingControls ? { compensatingControls: spec.compensatingControls } : {}),
          status: "pending",
        },
      ],
      timeline: [...doc.timeline, { at, type: "renewalRequested", actor: principal.userId, detail: `renewal ${number} until ${expiresAt}` }],
      updatedAt: at,
      updatedBy: principal.userId,
    };
    const etag = await this.commit(ctx, doc, { next, action: "exemption.renewal.request", event: "aigov.exemption.requested.v1", extra: { renewal: number } });
    return { exemption: view(next, etag), approval };
  }

  async revoke(ctx: RequestContext, id: string, input: unknown, ifMatch: string): Promise<Exemption> {
    const { principal } = ctx;
    const doc = await this.load(principal.tenantId, id);
    this.mayChange(ctx, doc, "revoke");
    const spec = parseOrThrow(RevokeSpec, input, "body");
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (!OPEN.includes(doc.status)) fail({ kind: "conflict", detail: `the exemption is already ${doc.status}`, reason: "exemption_ended" });
    const at = this.clock.now().toISOString();
    const wasInForce = IN_FORCE.includes(doc.status);
    const next: ExemptionDoc = {
      ...unversioned(doc),
      status: "revoked",
      endedAt: at,
      revokeReason: spec.reason,
      timeline: [...doc.timeline, { at, type: "revoked", actor: principal.userId, detail: spec.reason }],
      updatedAt: at,
      updatedBy: principal.userId,
    };
    const etag = await this.commit(ctx, doc, { next, action: "exemption.revoke", event: "aigov.exemption.revoked.v1" });
    if (wasInForce) await this.requestPublish(principal.tenantId, { by: principal.userId, reason: `exemption ${id} revoked`, correlationId: ctx.correlationId });
    return view(next, etag);
  }

  async getPolicy(ctx: RequestContext): Promise<ExemptionPolicy> {
    this.mayRead(ctx);
    return (await this.policyDoc.read(ctx.principal.tenantId)) ?? { ...DEFAULT_EXEMPTION_POLICY, etag: INITIAL_ETAG };
  }

  async putPolicy(ctx: RequestContext, input: unknown, ifMatch: string): Promise<ExemptionPolicy> {
    if (!holdsAny(ctx.principal.roles, TENANT_ADMINS)) fail({ kind: "forbidden", detail: "changing the exemption policy requires TenantAdmin" });
    const spec = parseOrThrow(ExemptionPolicySpec, input, "body");
    return this.policyDoc.write(ctx, { maxDays: spec.maxDays, controls: spec.controls }, ifMatch);
  }

  /** The portfolio: counts, ageing, repeat renewals, clusters, missing compensating controls, breadth. */
  async review(ctx: RequestContext, q: { clusterMinProjects: number; repeatMinRenewals: number }): Promise<ExemptionReview> {
    this.mayRead(ctx);
    const now = this.clock.now();
    const all = await this.all(ctx.principal.tenantId);
    const open = all.filter((d) => OPEN.includes(d.status));
    const byStatus = Object.fromEntries(["requested", "approved", "active", "expiring", "expired", "rejected", "revoked"].map((s) => [s, 0])) as Record<ExemptionStatus, number>;
    for (const d of all) byStatus[d.status] += 1;
    const tally = (key: (d: ExemptionDoc) => string | undefined) => {
      const m = new Map<string, number>();
      for (const d of open) {
        const k = key(d);
        if (k !== undefined) m.set(k, (m.get(k) ?? 0) + 1);
      }
      return [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    };
    const ages = open.map((d) => (now.getTime() - Date.parse(d.createdAt)) / DAY_MS);
    const buckets = { "0-7d": 0, "8-30d": 0, "31-90d": 0, "91d+": 0 };
    for (const a of ages) {
      const days = Math.floor(a);
      if (days <= 7) buckets["0-7d"] += 1;
      else if (days <= 30) buckets["8-30d"] += 1;
      else if (days <= 90) buckets["31-90d"] += 1;
      else buckets["91d+"] += 1;
    }
    const round1 = (n: number) => Math.round(n * 10) / 10;
    const projectsByControl = new Map<string, Set<string>>();
    for (const d of open) {
      if (!d.projectId) continue;
      const set = projectsByControl.get(d.control) ?? new Set<string>();
      set.add(d.projectId);
      projectsByControl.set(d.control, set);
    }
    const breadth = { tenant: 0, project: 0, model: 0, key: 0 };
    for (const d of open) breadth[d.scope.level] += 1;
    return {
      at: now.toISOString(),
      total: all.length,
      open: open.length,
      byStatus,
      byControl: tally((d) => d.control).map(([control, count]) => ({ control, count })),
      byProject: tally((d) => d.projectId || undefined).map(([projectId, count]) => ({ projectId, count })),
      byOwner: tally((d) => d.owner).map(([owner, count]) => ({ owner, count })),
      ageing: {
        buckets,
        oldestDays: ages.length ? round1(Math.max(...ages)) : null,
        averageDays: ages.length ? round1(ages.reduce((a, b) => a + b, 0) / ages.length) : null,
        expiringWithin7Days: open.filter((d) => IN_FORCE.includes(d.status) && Date.parse(d.expiresAt) - now.getTime() <= 7 * DAY_MS).length,
      },
      repeatRenewals: all
        .map((d) => ({ id: d.id, control: d.control, scope: d.scope, renewals: d.renewals.filter((r) => r.status === "approved").length }))
        .filter((r) => r.renewals >= q.repeatMinRenewals)
        .sort((a, b) => b.renewals - a.renewals || (a.id < b.id ? -1 : 1)),
      clusters: [...projectsByControl]
        .filter(([, projects]) => projects.size >= q.clusterMinProjects)
        .map(([control, projects]) => ({ control, projects: [...projects].sort(), count: projects.size }))
        .sort((a, b) => b.count - a.count || (a.control < b.control ? -1 : 1)),
      withoutCompensatingControls: open.filter((d) => d.compensatingControls.length === 0).map((d) => ({ id: d.id, control: d.control, category: d.category })),
      breadth,
    };
  }

  // ---- for the publisher ----

  /** The exemptions in force at `at` (what applyExemptions needs). Expiry is decided here, not by the sweep, so a publish after `expiresAt` never carries an expired exemption. */
  async listActive(tenantId: string, at: Date): Promise<ActiveExemption[]> {
    const out: ActiveExemption[] = [];
    for await (const d of everyDoc<ExemptionDoc>(this.store, partitionOf(tenantId), { docType: "exemption", filters: [{ field: "expiresAt", op: ">", value: at.toISOString() }] })) {
      if (IN_FORCE.includes(d.status) && d.activatedAt !== undefined && Date.parse(d.activatedAt) <= at.getTime()) {
        out.push({ id: d.id, control: d.control, scope: d.scope, relaxation: d.relaxation });
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  // ---- the expiry sweep (timer job) ----

  /**
   * Notices at 7 days and 1 day before expiry (each at most once: claimed by a conditional write on
   * the exemption before delivery), and expiry on time. Idempotent; after downtime it catches up in
   * one run: an exemption past its expiry expires without late notices, one past the 1-day mark gets
   * the 1-day notice only (the 7-day one is recorded as superseded).
   */
  async sweep(correlationId: string): Promise<{ notified: number; expired: number; settled: number }> {
    const ids: { tenantId: string; id: string }[] = [];
    const deciding: { tenantId: string; approvalId: string }[] = [];
    for (const status of OPEN) {
      for await (const d of everyDoc<ExemptionDoc>(this.store, "all", { docType: "exemption", filters: [{ field: "status", op: "=", value: status }] })) {
        if (IN_FORCE.includes(status)) ids.push({ tenantId: d.tenantId, id: d.id });
        else deciding.push({ tenantId: d.tenantId, approvalId: d.approvalId });
        for (const r of d.renewals) if (r.status === "pending") deciding.push({ tenantId: d.tenantId, approvalId: r.approvalId });
      }
    }
    const settled = await this.settleDecided(deciding, correlationId);
    let notified = 0;
    let expired = 0;
    for (const { tenantId, id } of ids) {
      const done = await this.transition(tenantId, id, system(tenantId, "system:exemption-sweep", correlationId), (doc) => this.sweepStep(doc));
      if (done?.notify) notified += 1;
      if (done?.next.status === "expired") expired += 1;
    }
    await this.republishEnded(correlationId);
    return { notified, expired, settled };
  }

  /**
   * The approvals that decide open exemptions (requests and pending renewals) are driven by their
   * orchestrations; an exemption must not wait on one that failed or was terminated. So the sweep
   * makes the approval's transition that is due by time (past its stage deadline → expired) and hands
   * any finished one to the settle hook — both idempotent, so a live orchestration doing the same is
   * harmless. (The approval sweep starts the dead orchestrations again; this needs no durable client.)
   */
  private async settleDecided(deciding: { tenantId: string; approvalId: string }[], correlationId: string): Promise<number> {
    let settled = 0;
    for (const { tenantId, approvalId } of deciding) {
      try {
        const { approval } = await this.approvals.expireIfDue(tenantId, approvalId, correlationId);
        if (approval.status !== "pending" && (await this.approvals.settle(tenantId, approvalId, correlationId)) === "settled") settled += 1;
      } catch (err) {
        console.warn(`exemption sweep: approval ${approvalId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return settled;
  }

  /**
   * The republish after an exemption ended is asked for right after the transition; if that ask was
   * lost (a crash in between, the publisher unreachable), nothing else would make it. So for a day
   * after any exemption of a tenant ended, every sweep asks again: a publish of an unchanged tenant
   * makes no revision and sends nothing, so asking twice costs one compile.
   */
  private async republishEnded(correlationId: string): Promise<void> {
    const cutoff = new Date(this.clock.now().getTime() - DAY_MS).toISOString();
    const tenants = new Set<string>();
    for (const status of ["expired", "revoked"] as const) {
      const ended = everyDoc<ExemptionDoc>(this.store, "all", {
        docType: "exemption",
        filters: [
          { field: "status", op: "=", value: status },
          { field: "endedAt", op: ">=", value: cutoff },
        ],
      });
      for await (const d of ended) tenants.add(d.tenantId);
    }
    for (const tenantId of tenants) await this.requestPublish(tenantId, { by: "system:exemption-sweep", reason: "exemptions ended in the last day", correlationId });
  }

  private sweepStep(doc: Versioned<ExemptionDoc>): Step | undefined {
    if (!IN_FORCE.includes(doc.status)) return undefined;
    const now = this.clock.now();
    const at = now.toISOString();
    const left = Date.parse(doc.expiresAt) - now.getTime();
    const base = { ...unversioned(doc), updatedAt: at, updatedBy: "system:exemption-sweep" };
    if (left <= 0) {
      return {
        next: { ...base, status: "expired", endedAt: at, timeline: [...doc.timeline, { at, type: "expired", actor: "system:exemption-sweep" }] },
        action: "exemption.expire",
        event: "aigov.exemption.expired.v1",
        publish: `exemption ${doc.id} expired`,
      };
    }
    const notice = left <= DAY_MS && !doc.notices["1d"] ? "1d" : left <= 7 * DAY_MS && !doc.notices["7d"] && !doc.notices["1d"] ? "7d" : undefined;
    if (!notice) return undefined;
    const notices = { ...doc.notices, [notice]: { at, status: "sent" as const }, ...(notice === "1d" && !doc.notices["7d"] ? { "7d": { at, status: "superseded" as const } } : {}) };
    return {
      next: { ...base, status: "expiring", notices, timeline: [...doc.timeline, { at, type: "expiring", actor: "system:exemption-sweep", detail: `${notice === "1d" ? "1 day" : "7 days"} notice to ${doc.owner}` }] },
      action: "exemption.notify",
      event: "aigov.exemption.expiring.v1",
      extra: { notice },
      notify: notice,
    };
  }

  // ---- the approval settle hook ----

  /** Learns an approval's outcome (idempotent: each step checks the exemption's own state). */
  async settleApproval(approval: Approval, correlationId: string): Promise<void> {
    const tenantId = approval.tenantId;
    const ctx = system(tenantId, "system:exemption-settle", correlationId);
    for (let steps = 0; steps < 4; steps++) {
      const done = await this.transition(tenantId, approval.subject.resourceId, ctx, (doc) => this.settleStep(doc, approval));
      if (!done) return;
    }
  }

  private settleStep(doc: Versioned<ExemptionDoc>, approval: Approval): Step | undefined {
    const at = this.clock.now().toISOString();
    const actor = "system:exemption-settle";
    const base = { ...unversioned(doc), updatedAt: at, updatedBy: actor };
    const approved = approval.status === "approved";
    if (approval.id === doc.approvalId) {
      if (doc.status === "requested") {
        return approved
          ? { next: { ...base, status: "approved", timeline: [...doc.timeline, { at, type: "approved", actor, detail: approval.id }] }, action: "exemption.approve", event: "aigov.exemption.approved.v1" }
          : {
              next: { ...base, status: "rejected", endedAt: at, timeline: [...doc.timeline, { at, type: "rejected", actor, detail: `approval ${approval.status}` }] },
              action: "exemption.reject",
              event: "aigov.exemption.rejected.v1",
              extra: { approvalStatus: approval.status },
            };
      }
      if (doc.status !== "approved") return undefined;
      if (Date.parse(doc.expiresAt) <= Date.parse(at)) {
        // Decided after its own expiry: it never takes effect.
        return { next: { ...base, status: "expired", endedAt: at, timeline: [...doc.timeline, { at, type: "expired", actor, detail: "approved after its expiry" }] }, action: "exemption.expire", event: "aigov.exemption.expired.v1" };
      }
      return {
        next: { ...base, status: "active", activatedAt: at, timeline: [...doc.timeline, { at, type: "activated", actor }] },
        action: "exemption.activate",
        event: "aigov.exemption.activated.v1",
        publish: `exemption ${doc.id} activated`,
      };
    }
    const index = doc.renewals.findIndex((r) => r.approvalId === approval.id);
    const renewal = doc.renewals[index];
    if (!renewal || renewal.status !== "pending") return undefined;
    const renewals = doc.renewals.map((r) => ({ ...r }));
    const settled = renewals[index]!;
    settled.settledAt = at;
    if (!approved) {
      settled.status = "rejected";
      return {
        next: { ...base, renewals, timeline: [...doc.timeline, { at, type: "renewalRejected", actor, detail: `renewal ${renewal.number}: approval ${approval.status}` }] },
        action: "exemption.renewal.reject",
        event: "aigov.exemption.rejected.v1",
        extra: { renewal: renewal.number, approvalStatus: approval.status },
      };
    }
    // Ended by time even if the sweep has not recorded it yet: a publish may already have dropped it.
    if (!IN_FORCE.includes(doc.status) || Date.parse(doc.expiresAt) <= Date.parse(at)) {
      settled.status = "lapsed";
      return {
        next: { ...base, renewals, timeline: [...doc.timeline, { at, type: "renewalRejected", actor, detail: `renewal ${renewal.number} approved after the exemption ended (${doc.status})` }] },
        action: "exemption.renewal.lapse",
        event: "aigov.exemption.rejected.v1",
        extra: { renewal: renewal.number, approvalStatus: approval.status, lapsed: true },
      };
    }
    settled.status = "approved";
    return {
      next: {
        ...base,
        status: "active",
        renewals,
        expiresAt: renewal.expiresAt,
        evidence: renewal.evidence,
        compensatingControls: renewal.compensatingControls ?? doc.compensatingControls,
        // New expiry, new notices.
        notices: {},
        timeline: [...doc.timeline, { at, type: "renewed", actor, detail: `renewal ${renewal.number} until ${renewal.expiresAt}` }],
      },
      action: "exemption.renewal.approve",
      event: "aigov.exemption.approved.v1",
      extra: { renewal: renewal.number },
    };
  }

  // ---- internals ----

  /** Applies one system step with a conditional write, re-reading on a lost race; then its side effects. */
  private async transition(tenantId: string, id: string, ctx: RequestContext, decide: (doc: Versioned<ExemptionDoc>) => Step | undefined): Promise<Step | undefined> {
    for (;;) {
      const doc = await this.store.read<ExemptionDoc>(partitionOf(tenantId), id);
      if (!doc || doc.docType !== "exemption") return undefined;
      const step = decide(doc);
      if (!step) return undefined;
      try {
        await this.commit(ctx, doc, step);
      } catch (err) {
        if (err instanceof AppError && err.error.kind === "preconditionFailed") continue;
        throw err;
      }
      if (step.notify) await this.sendNotice(step.next, step.notify);
      if (step.publish) await this.requestPublish(tenantId, { by: ctx.principal.userId, reason: step.publish, correlationId: ctx.correlationId });
      return step;
    }
  }

  private async commit(ctx: RequestContext, before: Versioned<ExemptionDoc>, step: Step): Promise<string> {
    const { tenantId, id } = before;
    const [etag] = await this.changes.commit({
      partition: partitionOf(tenantId),
      ctx,
      action: step.action,
      resource: exemptionPath(id),
      before: snapshot(before),
      after: snapshot(step.next),
      ops: [{ kind: "replace", doc: step.next, ifMatch: before._etag }],
      event: { type: step.event, subject: subjectOf(tenantId, id), data: eventData(step.next, step.extra) },
    });
    return etag ?? "";
  }

  /** Delivered after the notice is recorded: a failed delivery is logged, never repeated (the expiring event carries it too). */
  private async sendNotice(doc: ExemptionDoc, notice: "7d" | "1d"): Promise<void> {
    const where = doc.scope.level === "tenant" ? "the tenant" : doc.scope.level === "project" ? doc.scope.projectId : doc.scope.level === "model" ? `${doc.scope.projectId}/${doc.scope.modelId}` : `${doc.scope.projectId} key ${doc.scope.keyId}`;
    try {
      await this.notifier.deliver(doc.owner, {
        subject: `Exemption ${doc.id} expires in ${notice === "1d" ? "1 day" : "7 days"}`,
        body: `Your exemption from ${doc.control} for ${where} expires at ${doc.expiresAt}; the control applies again then. To keep it, request a renewal with updated evidence (aigov exemptions renew ${doc.id}).`,
      });
    } catch (err) {
      console.warn(`exemption ${doc.id}: the ${notice} notice to its owner could not be delivered: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async checkScope(ctx: RequestContext, scope: Exemption["scope"]): Promise<void> {
    if (scope.level === "tenant") {
      if (!ctx.principal.roles.has("TenantAdmin")) fail({ kind: "forbidden", detail: "a tenant-wide exemption is requested by a TenantAdmin" });
      return;
    }
    await this.projects.get(ctx, scope.projectId); // 404 for a missing project or another tenant's
    if (scope.level === "model") await this.models.get(ctx, scope.projectId, scope.modelId);
    if (scope.level === "key") {
      if (this.keys && !(await this.keys.exists(ctx.principal.tenantId, scope.projectId, scope.keyId))) {
        fail({ kind: "notFound", resource: `/projects/${scope.projectId}/keys/${scope.keyId}` });
      }
      const openKeys = (await this.all(ctx.principal.tenantId)).filter((d) => d.scopeLevel === "key" && OPEN.includes(d.status)).length;
      if (openKeys >= MAX_OPEN_KEY_EXEMPTIONS) {
        throw validation([{ field: "body.scope", message: `at most ${MAX_OPEN_KEY_EXEMPTIONS} key exemptions may be open at once (each becomes a key tier); exempt the model or project instead` }], { reason: "too_many_key_exemptions" });
      }
    }
  }

  private async policyFor(tenantId: string): Promise<ExemptionPolicySpec> {
    const doc = await this.policyDoc.read(tenantId);
    return doc ? { maxDays: doc.maxDays, controls: doc.controls } : DEFAULT_EXEMPTION_POLICY;
  }

  private async all(tenantId: string): Promise<Versioned<ExemptionDoc>[]> {
    return toArray(everyDoc<ExemptionDoc>(this.store, partitionOf(tenantId), { docType: "exemption" }));
  }

  private mayRead(ctx: RequestContext): void {
    if (!READERS.some((r) => ctx.principal.roles.has(r))) fail({ kind: "forbidden", detail: "reading exemptions requires a tenant role" });
  }

  /** The owner, the requester or a TenantAdmin; checked after the tenant lookup so another tenant's id is a 404. */
  private mayChange(ctx: RequestContext, doc: ExemptionDoc, what: string): void {
    const p = ctx.principal;
    if (p.roles.has("TenantAdmin") || p.userId === doc.owner || p.userId === doc.requester) return;
    fail({ kind: "forbidden", detail: `only the owner, the requester or a TenantAdmin may ${what} an exemption`, reason: "exemption_owner_only" });
  }

  private async load(tenantId: string, id: string): Promise<Versioned<ExemptionDoc>> {
    const doc = await this.store.read<ExemptionDoc>(partitionOf(tenantId), id);
    if (!doc || doc.docType !== "exemption") return fail({ kind: "notFound", resource: exemptionPath(id) });
    return doc;
  }
}


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
