import { canonicalUser, sameUser } from "../users.js";
import type { Clock } from "../../ports/clock.js";
import type { Notifier } from "../../ports/notifier.js";
import { TENANT_SCOPE, type Filter, type Partition, type Store, type StoredDoc } from "../../ports/store.js";
import { canonicalJson } from "../../util/canonical-json.js";
import { sha256 } from "../audit/chain.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, newId, type Page, type Principal, type RequestContext } from "../common.js";
import { AppError, fail } from "../errors.js";
import type { Driven } from "../kernel/drive.js";
import { ANY_TENANT_ROLE, APPROVAL_OVERSEERS, holdsAny, STAGE_ROLES } from "../kernel/roles.js";
import { systemContext } from "../kernel/system.js";
import { everyDoc, listPage } from "../paging.js";
import type { Project } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import { nearestRank } from "../../util/nearest-rank.js";
import { parseOrThrow } from "../validation.js";
import { approvalDrive } from "./drive.js";
import type { ApprovalLinks, LinkClaims } from "./links.js";
import type { ApprovalRouteService } from "./routes.js";
import {
  ApprovalSpec,
  durationMs,
  type Approval,
  type ApprovalMetrics,
  type ApprovalSpecInput,
  type ApproverRef,
  type DecisionSpec,
  isApproverUserId,
  ROUTE_SUBJECT_TYPES,
  type RouteKey,
} from "./schema.js";

type Stage = Approval["stages"][number];
type StageSpecOut = NonNullable<ReturnType<typeof ApprovalSpec.parse>["stages"]>[number];

/** A request opened by the service that owns its subject type. */
export interface ApprovalRequest {
  subject: { resourceType: string; resourceId: string; projectId?: string; change: Record<string, unknown> };
  justification: string;
  /** What the tenant's approval route is chosen by. */
  route: RouteKey;
  /** Stages the requester adds after the route's (validated by the caller's schema). */
  extraStages?: StageSpecOut[];
  /** Where the extra stages were in the caller's body, for field errors (e.g. "body.approval.stages"). */
  extraField?: string;
  /** Others with a stake in the subject (its owner, who requested what a renewal extends): like the requester, they never decide. */
  parties?: string[];
}

/**
 * Roles a requester may name for a whole stage (STAGE_ROLES): roles that carry approval authority. "Any
 * Developer" or "any Reader" is a peer group, not a control, and is refused (named people are always allowed).
 */

/** Subject types whose requests only their own services open (with the checks those make). */
const RESERVED_TYPES = ["exemption", "keyShare", "keyRequest", "tool", "projectPromotion", "sandboxExtension"];

interface ApprovalDoc extends StoredDoc, Omit<Approval, "etag"> {
  docType: "approval";
  /** Nonces of approver links already used: a link works once. */
  usedNonces: string[];
  /** Set when a settle handler is registered for the subject's type: "due" until the handler has seen the outcome. */
  settlement?: "due" | "done";
}

/** Learns the outcome of a finished approval (see onSettled). Must be idempotent: it may run more than once. */
export type SettleHandler = (approval: Approval, correlationId: string) => Promise<void>;
/** Whether the subject still records this pending request as its own (see onSettled): false means nobody waits for it. */
export type AwaitedCheck = (approval: Approval) => Promise<boolean>;

/** What the orchestration needs to know to drive a request (no links, no personal data beyond ids). */
export interface ApprovalState {
  status: Approval["status"];
  currentStage: number;
  escalated: boolean;
  escalateAt?: string;
  deadline?: string;
}

const partitionOf = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });
export const approvalPath = (id: string) => `/approvals/${id}`;
const subjectOf = (tenantId: string, id: string) => `/tenants/${tenantId}${approvalPath(id)}`;
const LINK_TTL_MS = 7 * 24 * 3600 * 1000;
/**
 * How old a pending request must be before the sweep asks whether its subject still awaits it: a
 * request is opened a moment before its subject records it, and must not be withdrawn in between.
 */
export const ORPHAN_GRACE_MS = 10 * 60 * 1000;
/** How often a link decision reads the request again after a concurrent change (see decideByLink). */
const LINK_DECISION_ATTEMPTS = 3;

function view(doc: ApprovalDoc, etag: string): Approval {
  const { docType: _d, scopeId: _s, usedNonces: _n, settlement: _st, _etag: _e, ...rest } = doc as ApprovalDoc & { _etag?: string };
  return { ...rest, etag: etagValue(etag) };
}
function snapshot(doc: ApprovalDoc) {
  const { etag: _e, ...rest } = view(doc, "");
  return rest;
}
/** Event data: enough to route and correlate; never the change itself, links or nonces. */
function eventData(doc: ApprovalDoc | ApprovalDoc) {
  const { change: _c, ...subject } = doc.subject;
  return { id: doc.id, status: doc.status, currentStage: doc.currentStage, requester: doc.requester, subject };
}

function startStage(stage: Stage, now: Date): Stage {
  const at = now.getTime();
  return {
    ...stage,
    status: "pending",
    startedAt: now.toISOString(),
    deadline: new Date(at + durationMs(stage.decisionTimeout)!).toISOString(),
    ...(stage.escalateAfter ? { escalateAt: new Date(at + durationMs(stage.escalateAfter)!).toISOString() } : {}),
  };
}

/**
 * The approval engine: requests with 1–3 stages, decisions with separation of duties, escalation and
 * expiry. Every transition is one conditional write (ETag) with its audit record and event; the
 * durable orchestration (functions/workflows/approval.ts) only drives timers and link delivery.
 */
export class ApprovalService {
  private readonly settleHandlers = new Map<string, SettleHandler>();
  private readonly awaitedChecks = new Map<string, AwaitedCheck>();

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly links: ApprovalLinks,
    private readonly notifier: Notifier,
    private readonly projects: ProjectService,
    private readonly publicUrl: () => string,
    private readonly routes: ApprovalRouteService,
  ) {}

  /**
   * Registers the owner of a subject type (e.g. "exemption") to learn each finished request's outcome.
   * The orchestration calls it when its loop ends, and the approval sweep for any it missed (a crash).
   */
  onSettled(resourceType: string, handler: SettleHandler, awaited?: AwaitedCheck): void {
    this.settleHandlers.set(resourceType, handler);
    // The owner's own record of a pending request: a request its subject never recorded is withdrawn (withdrawIfOrphaned).
    if (awaited) this.awaitedChecks.set(resourceType, awaited);
  }

  /** A request through the API (any subject type but those their own services request: exemptions, key shares, tools). */
  async create(ctx: RequestContext, input: ApprovalSpecInput): Promise<Driven<{ approval: Approval }>> {
    const { principal } = ctx;
    if (principal.roles.size === 0) fail({ kind: "forbidden", detail: "requesting an approval requires a tenant role" });
    const spec = parseOrThrow(ApprovalSpec, input, "body");
    if (RESERVED_TYPES.includes(spec.subject.resourceType)) {
      throw new AppError({
        kind: "validation",
        detail: `${spec.subject.resourceType} approvals are requested through their own API (exemptions, key shares, key requests, MCP tools, promotions, sandbox extensions)`,
        errors: [{ field: "body.subject.resourceType", message: "is requested through its own API" }],
        reason: "subject_type_reserved",
      });
    }
    const subjectType = (ROUTE_SUBJECT_TYPES as readonly string[]).includes(spec.subject.resourceType) ? (spec.subject.resourceType as RouteKey["subjectType"]) : "other";
    const approval = await this.request(ctx, {
      subject: spec.subject,
      justification: spec.justification,
      route: { subjectType, scope: spec.subject.projectId ? "project" : "tenant", risk: "standard" },
      ...(spec.stages ? { extraStages: spec.stages, extraField: "body.stages" } : {}),
    });
    // One orchestration per request, with the request's id (the approval sweep starts any that is missing).
    return { approval, drive: approvalDrive(approval) };
  }

  /**
   * Opens a request on the tenant's approval route for `route` (the services that own a subject type
   * call this; the route decides who approves). `extraStages` come after the route's: a requester can
   * add approvers, never remove or replace them.
   */
  async request(ctx: RequestContext, input: ApprovalRequest): Promise<Approval> {
    const { principal } = ctx;
    const spec = { subject: input.subject, justification: input.justification };
    if (spec.subject.projectId) await this.projects.get(ctx, spec.subject.projectId); // 404 for another tenant's project
    const peerErrors = (input.extraStages ?? []).flatMap((s, i) =>
      [...s.approvers, ...(s.escalateTo ?? [])].flatMap((r) =>
        "role" in r && !STAGE_ROLES.includes(r.role) ? [{ field: `${input.extraField ?? "body.stages"}.${i}.approvers`, message: `'any ${r.role}' cannot approve: name people, or TenantAdmin, Approver or ProjectAdmin` }] : [],
      ),
    );
    if (peerErrors.length) throw new AppError({ kind: "validation", detail: "a requester may add approvers with approval authority only", errors: peerErrors, reason: "approver_role_not_allowed" });
    const route = await this.routes.resolve(principal.tenantId, input.route);
    const planned: Stage[] = [
      ...route.stages.map((s) => ({ ...s, origin: "route" as const, status: "waiting" as const })),
      ...(input.extraStages ?? []).map((s) => ({ ...s, origin: "requester" as const, status: "waiting" as const })),
    ];
    planned.forEach((s, i) => {
      const refs = [...s.approvers, ...(s.escalateTo ?? [])];
      if (!spec.subject.projectId && refs.every((r) => "role" in r && r.scope === "project")) {
        fail({ kind: "conflict", detail: `stage ${i + 1} of route '${route.name}' names only project-scoped approvers, and the request has no project`, reason: "approval_route_unsatisfiable" });
      }
    });
    const now = this.clock.now();
    const id = newId("apr");
    // The requester is excluded anyway; the others are listed once, in a stable order.
    const parties = [...new Set((input.parties ?? []).map(canonicalUser))].filter((p) => !sameUser(p, principal.userId)).sort();
    const stages: Stage[] = planned.map((s, i) => (i === 0 ? startStage(s, now) : s));
    const doc: ApprovalDoc = {
      id,
      tenantId: principal.tenantId,
      scopeId: TENANT_SCOPE,
      docType: "approval",
      subject: { ...spec.subject, digest: sha256(canonicalJson(spec.subject)) },
      justification: spec.justification,
      requester: principal.userId,
      ...(parties.length ? { parties } : {}),
      status: "pending",
      currentStage: 0,
      route: { name: route.name, source: route.source, risk: input.route.risk },
      stages,
      decisions: [],
      timeline: [
        { at: now.toISOString(), type: "requested", actor: principal.userId },
        { at: now.toISOString(), type: "stageStarted", stage: 0 },
      ],
      usedNonces: [],
      ...(this.settleHandlers.has(spec.subject.resourceType) ? { settlement: "due" as const } : {}),
      createdAt: now.toISOString(),
      createdBy: principal.userId,
      updatedAt: now.toISOString(),
      updatedBy: principal.userId,
    };
    const [etag] = await this.changes.commit({
      partition: partitionOf(principal.tenantId),
      ctx,
      action: "approval.create",
      resource: approvalPath(id),
      after: snapshot(doc),
      ops: [{ kind: "create", doc }],
      event: { type: "aigov.approval.requested.v1", subject: subjectOf(principal.tenantId, id), data: eventData(doc) },
    });
    return view(doc, etag ?? "");
  }

  /**
   * Opens a request (`request`) and has its subject record it (`record`, a conditional write of the
   * subject). When that write fails — another write won the race, the store refused — the request is
   * withdrawn at once: no approver is asked about a change nobody waits for, and its decision could do
   * nothing. (A crash in between is the sweep's: withdrawIfOrphaned.)
   */
  async requestFor<T>(ctx: RequestContext, input: ApprovalRequest, record: (approval: Approval) => Promise<T>): Promise<{ approval: Approval; recorded: T }> {
    const approval = await this.request(ctx, input);
    try {
      return { approval, recorded: await record(approval) };
    } catch (err) {
      // Best effort: if this fails too, the sweep withdraws the request once its grace period is over.
      await this.withdraw(ctx.principal.tenantId, approval.id, "its subject did not record the request", ctx.correlationId).catch(() => undefined);
      throw err;
    }
  }

  async get(ctx: RequestContext, id: string): Promise<Approval> {
    const doc = await this.load(ctx.principal.tenantId, id);
    if (!this.mayRead(ctx.principal, doc)) fail({ kind: "forbidden", detail: "you may not read this approval request" });
    return view(doc, doc._etag);
  }

  async list(
    ctx: RequestContext,
    q: { maxPageSize: number; continuationToken?: string | undefined; status?: Approval["status"] | undefined; approver?: "me" | undefined; requester?: string | undefined },
  ): Promise<Page<Approval>> {
    const { principal } = ctx;
    const filters: Filter[] = [];
    if (q.status) filters.push({ field: "status", op: "=", value: q.status });
    if (q.requester) filters.push({ field: "requester", op: "=", value: q.requester });
    if (q.approver === "me") filters.push({ field: "status", op: "=", value: "pending" });
    const page = await listPage<ApprovalDoc>(this.store, partitionOf(principal.tenantId), { docType: "approval", filters, orderBy: { field: "createdAt", direction: "DESC" } }, q);
    let items = page.items.filter((d) => this.mayRead(principal, d));
    if (q.approver === "me") {
      const projects = await this.projects.listAll(principal.tenantId);
      const eligible = await Promise.all(items.map((d) => this.mayDecide(principal.userId, principal, d, projects)));
      items = items.filter((_, i) => eligible[i] === undefined);
    }
    return { items: items.map((d) => view(d, d._etag)), ...(page.continuationToken ? { continuationToken: page.continuationToken } : {}) };
  }

  /**
   * A decision through the API: authenticated approver, If-Match on the request. At or after the
   * current stage's deadline it is refused (409 approval_deadline_passed) and the request expires.
   */
  async decide(ctx: RequestContext, id: string, spec: DecisionSpec, ifMatch: string): Promise<Approval> {
    const doc = await this.load(ctx.principal.tenantId, id);
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const refusal = await this.mayDecide(ctx.principal.userId, ctx.principal, doc);
    if (refusal) throw refusal;
    return this.record(ctx, doc, spec, "api");
  }

  /**
   * A decision through a signed approver link (the link is the credential), posted under the URL of
   * `approvalId`: a link issued for another request is refused (403 approval_link_mismatch). The page
   * holds no ETag (the approver typed a justification, not a version), so a request that changed
   * meanwhile is read again and the link checked again — up to LINK_DECISION_ATTEMPTS times — rather
   * than answered with a 412 that loses what they wrote: a change that makes the decision impossible
   * (the stage moved on, the link was used) is refused by that check.
   */
  async decideByLink(approvalId: string, token: string, spec: DecisionSpec, correlationId: string): Promise<Approval> {
    for (let attempt = 1; ; attempt++) {
      const { claims, doc } = await this.openLink(approvalId, token, { correlationId });
      // The link names its approver; tenant roles are not known without a token, so links go to named approvers only.
      const principal: Principal = { tenantId: claims.tid, userId: claims.ap, roles: new Set() };
      const refusal = await this.mayDecide(claims.ap, principal, doc);
      if (refusal) throw refusal;
      try {
        return await this.record({ principal, correlationId }, doc, spec, "link", claims.n);
      } catch (err) {
        if (!(err instanceof AppError && err.error.kind === "preconditionFailed") || attempt >= LINK_DECISION_ATTEMPTS) throw err;
      }
    }
  }

  /** For the approval page of `approvalId`: what the link's holder is about to decide on (validates the link, changes nothing). */
  async inspectLink(approvalId: string, token: string): Promise<{ approval: Approval; approver: string; stage: number }> {
    const { claims, doc } = await this.openLink(approvalId, token);
    return { approval: view(doc, doc._etag), approver: claims.ap, stage: claims.st };
  }

  async metrics(ctx: RequestContext): Promise<ApprovalMetrics> {
    if (!holdsAny(ctx.principal.roles, APPROVAL_OVERSEERS)) {
      fail({ kind: "forbidden", detail: "approval metrics require TenantAdmin, Auditor or Approver" });
    }
    const counts = { pending: 0, approved: 0, rejected: 0, expired: 0, withdrawn: 0 };
    const durations: number[] = [];
    for await (const d of everyDoc<ApprovalDoc>(this.store, partitionOf(ctx.principal.tenantId), { docType: "approval" })) {
      counts[d.status] += 1;
      if (d.decidedAt && d.status !== "expired") durations.push(Date.parse(d.decidedAt) - Date.parse(d.createdAt));
    }
    durations.sort((a, b) => a - b);
    return {
      counts,
      decided: durations.length,
      timeToDecisionMs: { p50: nearestRank(durations, 0.5), p95: nearestRank(durations, 0.95) },
      decidedWithin24hShare: durations.length ? durations.filter((d) => d <= 24 * 3600 * 1000).length / durations.length : null,
    };
  }

  /** Background jobs only (a cross-partition query): every pending request of every tenant, page by page. */
  async *pendingEverywhere(): AsyncGenerator<{ tenantId: string; id: string }> {
    for await (const d of everyDoc<ApprovalDoc>(this.store, "all", { docType: "approval", filters: [{ field: "status", op: "=", value: "pending" }] })) {
      yield { tenantId: d.tenantId, id: d.id };
    }
  }

  /**
   * Background jobs (the approval and exemption sweeps): makes the transition that is due by time —
   * the current stage's deadline has passed → expired, exactly what the stage timer does — whether or
   * not the request's orchestration is alive to do it. Returns the request as it stands afterwards
   * and whether it is expired now because of this call.
   */
  async expireIfDue(tenantId: string, id: string, correlationId: string): Promise<{ approval: Approval; expired: boolean }> {
    const doc = await this.load(tenantId, id);
    const nobody = doc.status === "pending" ? nobodyCanDecide(doc) : undefined;
    if (!pastDeadline(doc, this.clock.now()) && !nobody) return { approval: view(doc, doc._etag), expired: false };
    await this.timeout(tenantId, id, doc.currentStage, "expire", correlationId, nobody);
    const after = await this.load(tenantId, id);
    return { approval: view(after, after._etag), expired: after.status === "expired" };
  }

  /** Background jobs only (a cross-partition query): finished requests whose settle handler has not run yet. */
  async *unsettledEverywhere(): AsyncGenerator<{ tenantId: string; id: string }> {
    for await (const d of everyDoc<ApprovalDoc>(this.store, "all", { docType: "approval", filters: [{ field: "settlement", op: "=", value: "due" }] })) {
      if (d.status !== "pending") yield { tenantId: d.tenantId, id: d.id };
    }
  }

  // ---- used by the orchestration's activities (tenant and id come from the orchestration input) ----

  /**
   * Hands a finished request to its subject type's settle handler, then records that it did. Idempotent:
   * a pending request, a type without a handler or an already settled request is a no-op.
   */
  async settle(tenantId: string, id: string, correlationId: string): Promise<"pending" | "settled" | "none"> {
    for (;;) {
      const doc = await this.load(tenantId, id);
      if (doc.status === "pending") return "pending";
      const handler = this.settleHandlers.get(doc.subject.resourceType);
      if (!handler) return "none";
      if (doc.settlement === "done") return "settled";
      await handler(view(doc, doc._etag), correlationId);
      const system = systemContext(tenantId, "system:approval-settle", correlationId);
      // Settled concurrently: look again.
      if (await this.transition(system, doc, { ...doc, settlement: "done" }, "approval.settle", "aigov.approval.settled.v1")) return "settled";
    }
  }

  /**
   * Ends a pending request that its subject does not await (status withdrawn, one conditional write with
   * its audit record and `aigov.approval.withdrawn.v1`). Its settle handler still runs (the request is
   * finished): an owner that did record it after all treats it as not approved. Returns whether it
   * withdrew it (false: it was no longer pending).
   */
  async withdraw(tenantId: string, id: string, reason: string, correlationId: string): Promise<boolean> {
    for (;;) {
      const doc = await this.load(tenantId, id);
      if (doc.status !== "pending") return false;
      const now = this.clock.now().toISOString();
      const system = systemContext(tenantId, "system:approval-withdraw", correlationId);
      const next: ApprovalDoc = {
        ...doc,
        status: "withdrawn",
        stages: doc.stages.map((x, i) => (i === doc.currentStage ? { ...x, status: "withdrawn" as const } : { ...x })),
        timeline: [...doc.timeline, { at: now, type: "withdrawn", stage: doc.currentStage, actor: system.principal.userId, detail: reason }],
        updatedAt: now,
        updatedBy: system.principal.userId,
      };
      // Decided or expired meanwhile: look again.
      if (await this.transition(system, doc, next, "approval.withdraw", "aigov.approval.withdrawn.v1")) return true;
    }
  }

  /**
   * The sweep's half of requestFor, for a crash between opening a request and recording it: a request
   * pending for longer than ORPHAN_GRACE_MS that its subject's owner says it does not await is withdrawn.
   */
  async withdrawIfOrphaned(tenantId: string, id: string, correlationId: string): Promise<boolean> {
    const doc = await this.load(tenantId, id);
    const awaited = this.awaitedChecks.get(doc.subject.resourceType);
    if (doc.status !== "pending" || !awaited || this.clock.now().getTime() - Date.parse(doc.createdAt) < ORPHAN_GRACE_MS) return false;
    if (await awaited(view(doc, doc._etag))) return false;
    return this.withdraw(tenantId, id, "its subject does not record the request", correlationId);
  }

  async state(tenantId: string, id: string): Promise<ApprovalState> {
    return stateOf(await this.load(tenantId, id));
  }

  /**
   * Sends a link to each named approver of the current stage (or of its escalation). Idempotent per stage.
   * A delivery that fails for one approver never fails the request or stops the others' links: it is
   * recorded (audit record + `aigov.approval.notification.failed.v1`, see recordUndelivered) and the
   * approver can still decide through the API; the orchestration goes on waiting for a decision.
   */
  async issueLinks(tenantId: string, id: string, stage: number, escalation: boolean, correlationId = `orchestration:${id}`): Promise<ApprovalState> {
    const doc = await this.load(tenantId, id);
    const s = doc.stages[stage];
    if (doc.status === "pending" && doc.currentStage === stage && s) {
      const refs = escalation ? (s.escalateTo ?? []) : s.approvers;
      const named = [...new Set(refs.flatMap((r) => ("user" in r ? [r.user] : [])))].filter((u) => u !== doc.requester);
      const exp = Math.floor(Math.min(Date.parse(s.deadline ?? "") || Infinity, this.clock.now().getTime() + LINK_TTL_MS) / 1000);
      // A name no token carries (an e-mail address in a request made before the check existed) gets no
      // link: a link acts as the user it names, so the requester could approve under their own address.
      const undelivered: { recipient: string; error: string }[] = named.filter((u) => !isApproverUserId(u)).map((recipient) => ({ recipient, error: "approver_id_refused" }));
      for (const user of named.filter(isApproverUserId)) {
        const { token } = await this.links.issue({ tid: tenantId, aid: id, st: stage, ap: user, exp });
        try {
          await this.notifier.deliver(user, {
            subject: `Approval needed: ${doc.subject.resourceType} ${doc.subject.resourceId}`,
            body: `${doc.requester} asks for your decision (stage ${stage + 1} of ${doc.stages.length}): ${doc.justification}`,
            link: `${this.publicUrl()}/api/approvals/${id}/review?token=${encodeURIComponent(token)}`,
          });
        } catch (err) {
          undelivered.push({ recipient: user, error: errorClass(err) });
        }
      }
      if (undelivered.length > 0) await this.recordUndelivered(doc, stage, escalation, undelivered, correlationId);
      // A stage nobody can decide (a request made before names had to be ids) ends now, not at its deadline.
      const nobody = escalation ? undefined : nobodyCanDecide(doc);
      if (nobody) return this.timeout(tenantId, id, stage, "expire", correlationId, nobody);
    }
    return stateOf(doc);
  }

  /**
   * Approver links that could not be delivered: one audit record and one warning event
   * (`aigov.approval.notification.failed.v1`) naming the stage, the recipients and the kind of error
   * — never the link or the error's text, which may quote the message. Not a timeline entry: that
   * would change the request (and its ETag) under approvers about to decide on it. Best effort: if
   * even this write fails it is logged, and the links that did go out stand.
   */
  private async recordUndelivered(doc: ApprovalDoc, stage: number, escalation: boolean, undelivered: { recipient: string; error: string }[], correlationId: string): Promise<void> {
    const { tenantId, id } = doc;
    console.warn(`approval ${id}: stage ${stage + 1} link(s) not delivered to ${undelivered.map((u) => `${u.recipient.slice(0, 64)} (${u.error})`).join(", ")}`);
    try {
      await this.changes.commit({
        partition: partitionOf(tenantId),
        ctx: systemContext(tenantId, "system:approval-notifier", correlationId),
        action: "approval.notify.failed",
        resource: approvalPath(id),
        ops: [],
        event: {
          type: "aigov.approval.notification.failed.v1",
          subject: subjectOf(tenantId, id),
          data: { ...eventData(doc), stage, escalation, undelivered },
        },
      });
    } catch (err) {
      console.warn(`approval ${id}: recording the undelivered links failed: ${errorClass(err)}`);
    }
  }

  /** A stage timer fired: escalate once, or expire. No-op when the request moved on meanwhile. */
  async timeout(tenantId: string, id: string, stage: number, kind: "escalate" | "expire", correlationId: string, detail?: string): Promise<ApprovalState> {
    for (;;) {
      const doc = await this.load(tenantId, id);
      const s = doc.stages[stage];
      if (doc.status !== "pending" || doc.currentStage !== stage || !s) return stateOf(doc);
      if (kind === "escalate" && s.status === "escalated") {
        // Escalated by an earlier attempt whose links then failed (the activity's retry): send them now.
        await this.issueLinks(tenantId, id, stage, true, correlationId);
        return stateOf(doc);
      }
      const now = this.clock.now().toISOString();
      const system = systemContext(tenantId, "system:approval-timer", correlationId);
      const next: ApprovalDoc = { ...doc, stages: doc.stages.map((x) => ({ ...x })), timeline: [...doc.timeline], updatedAt: now, updatedBy: system.principal.userId };
      const ns = next.stages[stage]!;
      if (kind === "escalate") {
        ns.status = "escalated";
        next.timeline.push({ at: now, type: "escalated", stage });
      } else {
        ns.status = "expired";
        next.status = "expired";
        next.decidedAt = now;
        next.timeline.push({ at: now, type: "expired", stage, ...(detail ? { detail } : {}) });
      }
      // A decision landed first: look again.
      if (!(await this.transition(system, doc, next, kind === "escalate" ? "approval.escalate" : "approval.expire", kind === "escalate" ? "aigov.approval.escalated.v1" : "aigov.approval.expired.v1"))) continue;
      if (kind === "escalate") await this.issueLinks(tenantId, id, stage, true, correlationId);
      return stateOf(next);
    }
  }

  // ---- internals ----

  /**
   * A system transition of a request: `next` replaces `doc` if it is still the stored version (its audit
   * record and event in the same batch). False when the request changed meanwhile (the caller looks again).
   */
  private async transition(ctx: RequestContext, doc: ApprovalDoc & { _etag: string }, next: ApprovalDoc & { _etag?: string }, action: string, event: string): Promise<boolean> {
    const { _etag, ...rest } = next;
    try {
      await this.changes.commit({
        partition: partitionOf(doc.tenantId),
        ctx,
        action,
        resource: approvalPath(doc.id),
        before: snapshot(doc),
        after: snapshot(rest),
        ops: [{ kind: "replace", doc: rest, ifMatch: doc._etag }],
        event: { type: event, subject: subjectOf(doc.tenantId, doc.id), data: eventData(rest) },
      });
      return true;
    } catch (err) {
      if (err instanceof AppError && err.error.kind === "preconditionFailed") return false;
      throw err;
    }
  }

  /** A link that verifies, names a pending stage, and has not been used. */
  /**
   * A link that verifies, was issued for `approvalId` (the request in the URL it is used under), names
   * a pending stage, and has not been used. `deciding`: the link is being used to decide; an expired
   * (but authentic) link of a request whose stage is past its deadline then expires the request and
   * is refused with approval_deadline_passed — a late decision never counts, whoever drives the request.
   */
  private async openLink(approvalId: string, token: string, deciding?: { correlationId: string }): Promise<{ claims: LinkClaims; doc: ApprovalDoc & { _etag: string } }> {
    const check = await this.links.verify(token);
    if (!check.ok) {
      if (check.reason !== "expired") return fail({ kind: "forbidden", detail: "this approval link is not valid", reason: "approval_link_invalid" });
      if (check.claims.aid !== approvalId) return fail(LINK_MISMATCH);
      if (deciding) {
        const doc = await this.store.read<ApprovalDoc>(partitionOf(check.claims.tid), check.claims.aid);
        if (doc?.docType === "approval" && doc.currentStage === check.claims.st) await this.refuseLateDecision(doc, this.clock.now(), deciding.correlationId);
      }
      return fail({ kind: "forbidden", detail: "this approval link is expired", reason: "approval_link_expired" });
    }
    const { claims } = check;
    // Checked before anything is read: a link works only under the URL of the request it was issued for.
    if (claims.aid !== approvalId) fail(LINK_MISMATCH);
    const doc = await this.load(claims.tid, claims.aid);
    if (doc.usedNonces.includes(claims.n)) fail({ kind: "conflict", detail: "this approval link has already been used", reason: "approval_link_used" });
    if (doc.status !== "pending" || doc.currentStage !== claims.st) fail({ kind: "conflict", detail: "this request no longer awaits this decision", reason: "approval_not_awaiting" });
    return { claims, doc };
  }

  /**
   * A decision at or after the current stage's deadline never counts: the request is expired right
   * then — the stage timer's own transition (timeout "expire"), made here in case the orchestration
   * is late, failed or gone — and the decision is refused (409 approval_deadline_passed).
   */
  private async refuseLateDecision(doc: ApprovalDoc, now: Date, correlationId: string): Promise<void> {
    if (!pastDeadline(doc, now)) return;
    const deadline = doc.stages[doc.currentStage]!.deadline!;
    await this.timeout(doc.tenantId, doc.id, doc.currentStage, "expire", correlationId);
    fail({ kind: "conflict", detail: `the decision came after the stage's deadline (${deadline}); the request has expired`, reason: "approval_deadline_passed" });
  }

  private async record(ctx: RequestContext, doc: ApprovalDoc & { _etag: string }, spec: DecisionSpec, via: "api" | "link", nonce?: string): Promise<Approval> {
    const now = this.clock.now();
    await this.refuseLateDecision(doc, now, ctx.correlationId);
    const at = now.toISOString();
    const stage = doc.currentStage;
    const next: ApprovalDoc = {
      ...doc,
      stages: doc.stages.map((x) => ({ ...x })),
      decisions: [...doc.decisions, { stage, approver: ctx.principal.userId, decision: spec.decision, justification: spec.justification, at, via }],
      timeline: [...doc.timeline, { at, type: "decided", stage, actor: ctx.principal.userId, detail: spec.decision }],
      usedNonces: nonce ? [...doc.usedNonces, nonce] : doc.usedNonces,
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    let eventType = "aigov.approval.advanced.v1";
    if (spec.decision === "reject") {
      next.stages[stage]!.status = "rejected";
      next.status = "rejected";
      next.decidedAt = at;
      next.timeline.push({ at, type: "rejected", stage });
      eventType = "aigov.approval.rejected.v1";
    } else {
      next.stages[stage]!.status = "approved";
      if (stage + 1 < next.stages.length) {
        next.currentStage = stage + 1;
        next.stages[stage + 1] = startStage(next.stages[stage + 1]!, now);
        next.timeline.push({ at, type: "stageStarted", stage: stage + 1 });
      } else {
        next.status = "approved";
        next.decidedAt = at;
        next.timeline.push({ at, type: "approved" });
        eventType = "aigov.approval.approved.v1";
      }
    }
    const { _etag, ...rest } = next as ApprovalDoc & { _etag?: string };
    const [etag] = await this.changes.commit({
      partition: partitionOf(doc.tenantId),
      ctx,
      action: `approval.${spec.decision}`,
      resource: approvalPath(doc.id),
      before: snapshot(doc),
      after: snapshot(rest),
      ops: [{ kind: "replace", doc: rest, ifMatch: doc._etag }],
      event: { type: eventType, subject: subjectOf(doc.tenantId, doc.id), data: eventData(rest) },
    });
    return view(rest, etag ?? "");
  }

  /** Undefined when `userId` may decide the current stage now; otherwise the error to report. */
  private async mayDecide(userId: string, principal: Principal, doc: ApprovalDoc, projects?: Project[]): Promise<AppError | undefined> {
    if (doc.status !== "pending") return new AppError({ kind: "conflict", detail: `the request is already ${doc.status}`, reason: "approval_not_awaiting" });
    if (sameUser(userId, doc.requester)) return new AppError({ kind: "forbidden", detail: "requesters never approve their own request", reason: "approver_is_requester" });
    if (doc.parties?.some((p) => sameUser(p, userId))) return new AppError({ kind: "forbidden", detail: "you have a stake in what this request is about (listed in its parties): someone independent must decide", reason: "approver_is_party" });
    if (this.managedByRequester(projects ?? (await this.projects.listAll(doc.tenantId)), doc.requester, userId)) {
      return new AppError({ kind: "forbidden", detail: "the requester manages you through a project assignment; someone independent must decide", reason: "approver_managed_by_requester" });
    }
    if (doc.decisions.some((d) => sameUser(d.approver, userId))) return new AppError({ kind: "conflict", detail: "you have already decided on this request", reason: "approver_already_decided" });
    const stage = doc.stages[doc.currentStage]!;
    const refs = [...stage.approvers, ...(stage.status === "escalated" ? (stage.escalateTo ?? []) : [])];
    let namedNotAnId = false;
    for (const ref of refs) {
      if ("user" in ref) {
        // Only a name tokens carry decides (see issueLinks): a link issued to an e-mail address before is refused.
        if (ref.user === userId) {
          if (isApproverUserId(userId)) return undefined;
          namedNotAnId = true;
        }
      } else if (await this.holdsRole(principal, ref, doc)) {
        return undefined;
      }
    }
    if (namedNotAnId) return new AppError({ kind: "forbidden", detail: "this stage names you as no token does (an e-mail address or sign-in name); such a name never decides", reason: "approver_name_not_an_id" });
    return new AppError({ kind: "forbidden", detail: "you are not an approver of the current stage", reason: "approver_not_in_stage" });
  }

  /**
   * Separation of duties: does `requester` administer (ProjectAdmin assignment) a project `userId` is
   * assigned to? An object id names its user in any letter case (users.ts): compared as such.
   */
  private managedByRequester(projects: Project[], requester: string, userId: string): boolean {
    return projects.some(
      (p) => p.roleAssignments.some((a) => sameUser(a.principalId, requester) && a.role === "ProjectAdmin") && p.roleAssignments.some((a) => sameUser(a.principalId, userId)),
    );
  }

  private async holdsRole(principal: Principal, ref: Extract<ApproverRef, { role: string }>, doc: ApprovalDoc): Promise<boolean> {
    if (ref.scope === "tenant") return principal.roles.has(ref.role);
    if (!doc.subject.projectId) return false;
    const assigned = await this.projects.assignedRoles(principal.tenantId, doc.subject.projectId, principal.userId);
    return assigned.has(ref.role);
  }

  private mayRead(p: Principal, doc: ApprovalDoc): boolean {
    if (holdsAny(p.roles, ANY_TENANT_ROLE)) return true;
    if (doc.requester === p.userId) return true;
    return doc.stages.some((s) => [...s.approvers, ...(s.escalateTo ?? [])].some((r) => "user" in r && r.user === p.userId));
  }

  private async load(tenantId: string, id: string) {
    const doc = await this.store.read<ApprovalDoc>(partitionOf(tenantId), id);
    if (!doc || doc.docType !== "approval") return fail({ kind: "notFound", resource: approvalPath(id) });
    return doc;
  }
}

/** The 403 for a link used under another request's URL (a link for B posted to /approvals/A/review). */
const LINK_MISMATCH = { kind: "forbidden", detail: "this approval link was issued for another approval request", reason: "approval_link_mismatch" } as const;

/**
 * Why nobody can ever decide the request's current stage, or undefined when someone may: every approver
 * it names, escalation included, is a user who never decides (a name no token carries, the requester, a
 * party). A role may be granted later, so a stage naming one is never taken for undecidable.
 */
function nobodyCanDecide(doc: ApprovalDoc): string | undefined {
  const s = doc.stages[doc.currentStage];
  if (!s) return undefined;
  const refs = [...s.approvers, ...(s.escalateTo ?? [])];
  const never = (user: string) => !isApproverUserId(user) || sameUser(user, doc.requester) || (doc.parties ?? []).some((p) => sameUser(p, user));
  if (refs.length === 0 || !refs.every((r) => "user" in r && never(r.user))) return undefined;
  const names = [...new Set(refs.map((r) => ("user" in r ? r.user : "")))];
  return `nobody can decide stage ${doc.currentStage + 1}: it names only ${names.map((n) => n.slice(0, 64)).join(", ")}, who never decide (a name no token carries, the requester or a party)`;
}

/** Pending, and the current stage's deadline has come: only expiry is left (what the stage timer does). */
function pastDeadline(doc: ApprovalDoc, now: Date): boolean {
  const deadline = doc.stages[doc.currentStage]?.deadline;
  return doc.status === "pending" && deadline !== undefined && Date.parse(deadline) <= now.getTime();
}

/** What kind of error a delivery failed with (a code or class name), never its text: that may quote the message and its link. */
function errorClass(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  const name = typeof code === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : err instanceof Error ? err.name : typeof err;
  return name.slice(0, 64);
}

function stateOf(doc: ApprovalDoc): ApprovalState {
  const s = doc.stages[doc.currentStage];
  return {
    status: doc.status,
    currentStage: doc.currentStage,
    escalated: s?.status === "escalated",
    ...(s?.escalateAt ? { escalateAt: s.escalateAt } : {}),
    ...(s?.deadline ? { deadline: s.deadline } : {}),
  };
}
