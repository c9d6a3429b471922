import type { Clock } from "../../ports/clock.js";
import type { Notifier } from "../../ports/notifier.js";
import { TENANT_SCOPE, type Filter, type Partition, type Store, type StoredDoc } from "../../ports/store.js";
import { canonicalJson, sha256 } from "../audit/chain.js";
import type { ChangeWriter } from "../changes.js";
import { etagMatches, etagValue, newId, type Page, type Principal, type RequestContext, type Role } from "../common.js";
import { AppError, fail } from "../errors.js";
import { everyDoc, unwrapToken, wrapToken } from "../paging.js";
import type { ProjectService } from "../projects/service.js";
import { parseOrThrow } from "../validation.js";
import type { ApprovalLinks, LinkClaims } from "./links.js";
import {
  ApprovalSpec,
  durationMs,
  type Approval,
  type ApprovalMetrics,
  type ApprovalSpecInput,
  type ApproverRef,
  type DecisionSpec,
} from "./schema.js";

type Stage = Approval["stages"][number];

interface ApprovalDoc extends StoredDoc, Omit<Approval, "etag"> {
  docType: "approval";
  /** Nonces of approver links already used: a link works once. */
  usedNonces: string[];
  /** Set when a settle handler is registered for the subject's type: "due" until the handler has seen the outcome. */
  settlement?: "due" | "done";
}

/** Learns the outcome of a finished approval (see onSettled). Must be idempotent: it may run more than once. */
export type SettleHandler = (approval: Approval, correlationId: string) => Promise<void>;

/** What the orchestration needs to know to drive a request (no links, no personal data beyond ids). */
export interface ApprovalState {
  status: Approval["status"];
  currentStage: number;
  escalated: boolean;
  escalateAt?: string;
  deadline?: string;
}

const READ_ROLES: Role[] = ["TenantAdmin", "Auditor", "Approver", "ProjectAdmin", "Developer", "Reader"];
const partitionOf = (tenantId: string): Partition => ({ tenantId, scopeId: TENANT_SCOPE });
export const approvalPath = (id: string) => `/approvals/${id}`;
const subjectOf = (tenantId: string, id: string) => `/tenants/${tenantId}${approvalPath(id)}`;
const LINK_TTL_MS = 7 * 24 * 3600 * 1000;

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

  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly links: ApprovalLinks,
    private readonly notifier: Notifier,
    private readonly projects: ProjectService,
    private readonly publicUrl: () => string,
  ) {}

  /**
   * Registers the owner of a subject type (e.g. "exemption") to learn each finished request's outcome.
   * The orchestration calls it when its loop ends, and the approval sweep for any it missed (a crash).
   */
  onSettled(resourceType: string, handler: SettleHandler): void {
    this.settleHandlers.set(resourceType, handler);
  }

  async create(ctx: RequestContext, input: ApprovalSpecInput): Promise<Approval> {
    const { principal } = ctx;
    if (principal.roles.size === 0) fail({ kind: "forbidden", detail: "requesting an approval requires a tenant role" });
    const spec = parseOrThrow(ApprovalSpec, input, "body");
    if (spec.subject.projectId) await this.projects.get(ctx, spec.subject.projectId); // 404 for another tenant's project
    const now = this.clock.now();
    const id = newId("apr");
    const stages: Stage[] = spec.stages.map((s, i) => (i === 0 ? startStage({ ...s, status: "waiting" }, now) : { ...s, status: "waiting" }));
    const doc: ApprovalDoc = {
      id,
      tenantId: principal.tenantId,
      scopeId: TENANT_SCOPE,
      docType: "approval",
      subject: { ...spec.subject, digest: sha256(canonicalJson(spec.subject)) },
      justification: spec.justification,
      requester: principal.userId,
      status: "pending",
      currentStage: 0,
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
    const token = unwrapToken(q.continuationToken);
    const page = await this.store.queryPage<ApprovalDoc>(partitionOf(principal.tenantId), {
      docType: "approval",
      filters,
      orderBy: { field: "createdAt", direction: "DESC" },
      maxPageSize: q.maxPageSize,
      ...(token ? { continuationToken: token } : {}),
    });
    let items = page.items.filter((d) => this.mayRead(principal, d));
    if (q.approver === "me") {
      const eligible = await Promise.all(items.map((d) => this.mayDecide(principal.userId, principal, d)));
      items = items.filter((_, i) => eligible[i] === undefined);
    }
    const next = wrapToken(page.continuationToken);
    return { items: items.map((d) => view(d, d._etag)), ...(next ? { continuationToken: next } : {}) };
  }

  /** A decision through the API: authenticated approver, If-Match on the request. */
  async decide(ctx: RequestContext, id: string, spec: DecisionSpec, ifMatch: string): Promise<Approval> {
    const doc = await this.load(ctx.principal.tenantId, id);
    if (!etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    const refusal = await this.mayDecide(ctx.principal.userId, ctx.principal, doc);
    if (refusal) throw refusal;
    return this.record(ctx, doc, spec, "api");
  }

  /** A decision through a signed approver link (the link is the credential). */
  async decideByLink(token: string, spec: DecisionSpec, correlationId: string): Promise<Approval> {
    const { claims, doc } = await this.openLink(token);
    // The link names its approver; tenant roles are not known without a token, so links go to named approvers only.
    const principal: Principal = { tenantId: claims.tid, userId: claims.ap, roles: new Set() };
    const refusal = await this.mayDecide(claims.ap, principal, doc);
    if (refusal) throw refusal;
    return this.record({ principal, correlationId }, doc, spec, "link", claims.n);
  }

  /** For the approval page: what the link's holder is about to decide on (validates the link, changes nothing). */
  async inspectLink(token: string): Promise<{ approval: Approval; approver: string; stage: number }> {
    const { claims, doc } = await this.openLink(token);
    return { approval: view(doc, doc._etag), approver: claims.ap, stage: claims.st };
  }

  async metrics(ctx: RequestContext): Promise<ApprovalMetrics> {
    if (!["TenantAdmin", "Auditor", "Approver"].some((r) => ctx.principal.roles.has(r as Role))) {
      fail({ kind: "forbidden", detail: "approval metrics require TenantAdmin, Auditor or Approver" });
    }
    const counts = { pending: 0, approved: 0, rejected: 0, expired: 0 };
    const durations: number[] = [];
    for await (const d of everyDoc<ApprovalDoc>(this.store, partitionOf(ctx.principal.tenantId), { docType: "approval" })) {
      counts[d.status] += 1;
      if (d.decidedAt && d.status !== "expired") durations.push(Date.parse(d.decidedAt) - Date.parse(d.createdAt));
    }
    durations.sort((a, b) => a - b);
    const q = (p: number) => (durations.length ? durations[Math.min(durations.length - 1, Math.ceil(durations.length * p) - 1)]! : null);
    return {
      counts,
      decided: durations.length,
      timeToDecisionMs: { p50: q(0.5), p95: q(0.95) },
      decidedWithin24hShare: durations.length ? durations.filter((d) => d <= 24 * 3600 * 1000).length / durations.length : null,
    };
  }

  /** Background jobs only (a cross-partition query): every pending request of every tenant, page by page. */
  async *pendingEverywhere(): AsyncGenerator<{ tenantId: string; id: string }> {
    for await (const d of everyDoc<ApprovalDoc>(this.store, "all", { docType: "approval", filters: [{ field: "status", op: "=", value: "pending" }] })) {
      yield { tenantId: d.tenantId, id: d.id };
    }
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
      const system: RequestContext = { principal: { tenantId, userId: "system:approval-settle", roles: new Set() }, correlationId };
      const { _etag, ...rest } = { ...doc, settlement: "done" as const };
      try {
        await this.changes.commit({
          partition: partitionOf(tenantId),
          ctx: system,
          action: "approval.settle",
          resource: approvalPath(id),
          before: snapshot(doc),
          after: snapshot(rest),
          ops: [{ kind: "replace", doc: rest, ifMatch: doc._etag }],
          event: { type: "aigov.approval.settled.v1", subject: subjectOf(tenantId, id), data: eventData(rest) },
        });
        return "settled";
      } catch (err) {
        if (err instanceof AppError && err.error.kind === "preconditionFailed") continue; // settled concurrently: look again
        throw err;
      }
    }
  }

  async state(tenantId: string, id: string): Promise<ApprovalState> {
    return stateOf(await this.load(tenantId, id));
  }

  /** Sends a link to each named approver of the current stage (or of its escalation). Idempotent per stage. */
  async issueLinks(tenantId: string, id: string, stage: number, escalation: boolean): Promise<ApprovalState> {
    const doc = await this.load(tenantId, id);
    const s = doc.stages[stage];
    if (doc.status === "pending" && doc.currentStage === stage && s) {
      const refs = escalation ? (s.escalateTo ?? []) : s.approvers;
      const users = [...new Set(refs.flatMap((r) => ("user" in r ? [r.user] : [])))].filter((u) => u !== doc.requester);
      const exp = Math.floor(Math.min(Date.parse(s.deadline ?? "") || Infinity, this.clock.now().getTime() + LINK_TTL_MS) / 1000);
      for (const user of users) {
        const { token } = await this.links.issue({ tid: tenantId, aid: id, st: stage, ap: user, exp });
        await this.notifier.deliver(user, {
          subject: `Approval needed: ${doc.subject.resourceType} ${doc.subject.resourceId}`,
          body: `${doc.requester} asks for your decision (stage ${stage + 1} of ${doc.stages.length}): ${doc.justification}`,
          link: `${this.publicUrl()}/api/approvals/${id}/review?token=${encodeURIComponent(token)}`,
        });
      }
    }
    return stateOf(doc);
  }

  /** A stage timer fired: escalate once, or expire. No-op when the request moved on meanwhile. */
  async timeout(tenantId: string, id: string, stage: number, kind: "escalate" | "expire", correlationId: string): Promise<ApprovalState> {
    for (;;) {
      const doc = await this.load(tenantId, id);
      const s = doc.stages[stage];
      if (doc.status !== "pending" || doc.currentStage !== stage || !s) return stateOf(doc);
      if (kind === "escalate" && s.status === "escalated") return stateOf(doc);
      const now = this.clock.now().toISOString();
      const system: RequestContext = { principal: { tenantId, userId: "system:approval-timer", roles: new Set() }, correlationId };
      const next: ApprovalDoc = { ...doc, stages: doc.stages.map((x) => ({ ...x })), timeline: [...doc.timeline], updatedAt: now, updatedBy: system.principal.userId };
      const ns = next.stages[stage]!;
      if (kind === "escalate") {
        ns.status = "escalated";
        next.timeline.push({ at: now, type: "escalated", stage });
      } else {
        ns.status = "expired";
        next.status = "expired";
        next.decidedAt = now;
        next.timeline.push({ at: now, type: "expired", stage });
      }
      const { _etag, ...rest } = next;
      try {
        await this.changes.commit({
          partition: partitionOf(tenantId),
          ctx: system,
          action: kind === "escalate" ? "approval.escalate" : "approval.expire",
          resource: approvalPath(id),
          before: snapshot(doc),
          after: snapshot(rest),
          ops: [{ kind: "replace", doc: rest, ifMatch: doc._etag }],
          event: { type: kind === "escalate" ? "aigov.approval.escalated.v1" : "aigov.approval.expired.v1", subject: subjectOf(tenantId, id), data: eventData(rest) },
        });
      } catch (err) {
        if (err instanceof AppError && err.error.kind === "preconditionFailed") continue; // a decision landed first: look again
        throw err;
      }
      if (kind === "escalate") await this.issueLinks(tenantId, id, stage, true);
      return stateOf(rest);
    }
  }

  // ---- internals ----

  /** A link that verifies, names a pending stage, and has not been used. */
  private async openLink(token: string): Promise<{ claims: LinkClaims; doc: ApprovalDoc & { _etag: string } }> {
    const check = await this.links.verify(token);
    if (!check.ok) return fail({ kind: "forbidden", detail: `this approval link is ${check.reason === "expired" ? "expired" : "not valid"}` });
    const { claims } = check;
    const doc = await this.load(claims.tid, claims.aid);
    if (doc.usedNonces.includes(claims.n)) fail({ kind: "conflict", detail: "this approval link has already been used" });
    if (doc.status !== "pending" || doc.currentStage !== claims.st) fail({ kind: "conflict", detail: "this request no longer awaits this decision" });
    return { claims, doc };
  }

  private async record(ctx: RequestContext, doc: ApprovalDoc & { _etag: string }, spec: DecisionSpec, via: "api" | "link", nonce?: string): Promise<Approval> {
    const now = this.clock.now();
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
  private async mayDecide(userId: string, principal: Principal, doc: ApprovalDoc): Promise<AppError | undefined> {
    if (doc.status !== "pending") return new AppError({ kind: "conflict", detail: `the request is already ${doc.status}` });
    if (userId === doc.requester) return new AppError({ kind: "forbidden", detail: "requesters never approve their own request" });
    if (doc.decisions.some((d) => d.approver === userId)) return new AppError({ kind: "conflict", detail: "you have already decided on this request" });
    const stage = doc.stages[doc.currentStage]!;
    const refs = [...stage.approvers, ...(stage.status === "escalated" ? (stage.escalateTo ?? []) : [])];
    for (const ref of refs) {
      if ("user" in ref) {
        if (ref.user === userId) return undefined;
      } else if (await this.holdsRole(principal, ref, doc)) {
        return undefined;
      }
    }
    return new AppError({ kind: "forbidden", detail: "you are not an approver of the current stage" });
  }

  private async holdsRole(principal: Principal, ref: Extract<ApproverRef, { role: string }>, doc: ApprovalDoc): Promise<boolean> {
    if (ref.scope === "tenant") return principal.roles.has(ref.role);
    if (!doc.subject.projectId) return false;
    const assigned = await this.projects.assignedRoles(principal.tenantId, doc.subject.projectId, principal.userId);
    return assigned.has(ref.role);
  }

  private mayRead(p: Principal, doc: ApprovalDoc): boolean {
    if (READ_ROLES.some((r) => p.roles.has(r))) return true;
    if (doc.requester === p.userId) return true;
    return doc.stages.some((s) => [...s.approvers, ...(s.escalateTo ?? [])].some((r) => "user" in r && r.user === p.userId));
  }

  private async load(tenantId: string, id: string) {
    const doc = await this.store.read<ApprovalDoc>(partitionOf(tenantId), id);
    if (!doc || doc.docType !== "approval") return fail({ kind: "notFound", resource: approvalPath(id) });
    return doc;
  }
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
