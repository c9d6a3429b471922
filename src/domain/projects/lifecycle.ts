/**
 * Project lifecycle (landing zones, docs/project-lifecycle.md): promotion to a later environment through
 * gates and an approval, and sandboxes that expire at their review date — notices 14 days and 1 day
 * before, then the project locked and its keys suspended (nothing deleted) — unless an extension is
 * approved. Every step is a conditional write decided from the stored project and the clock.
 */
import type { Clock } from "../../ports/clock.js";
import type { Notifier } from "../../ports/notifier.js";
import { unversioned, type Filter, type Store, type Versioned } from "../../ports/store.js";
import { approvalDrive } from "../approvals/drive.js";
import type { Approval } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import type { ChangeWriter } from "../changes.js";
import type { RequestContext } from "../common.js";
import { AppError, fail } from "../errors.js";
import type { Driven } from "../kernel/drive.js";
import { holdsOn, PROJECT_MANAGERS } from "../kernel/roles.js";
import { systemContext } from "../kernel/system.js";
import { everyDoc } from "../paging.js";
import { parseOrThrow } from "../validation.js";
import { evaluateGates, timeBoundGatesOf, type GateDeps } from "./gates.js";
import { ENVIRONMENTS, expiryOf, ExtendSpec, lockedNow, PromoteSpec, sandboxDateError, type Project, type PromotionGates } from "./schema.js";
import { projectPath, projectSnapshot, projectSubject, tenantPartition, toProject, type ProjectDoc, type ProjectService } from "./service.js";

/** Approval subject types only this module requests (reserved in the approval API). */
export const PROMOTION_SUBJECT = "projectPromotion";
export const EXTENSION_SUBJECT = "sandboxExtension";

const DAY_MS = 86_400_000;
const ACTOR = "system:project-lifecycle" as const;

export interface ProjectLifecycleKit {
  store: Store;
  changes: ChangeWriter;
  clock: Clock;
  notifier: Notifier;
  approvals: ApprovalService;
  projects: ProjectService;
  gates: GateDeps;
  /** A system publish (the lock and its end change what the project accepts at the gateway). */
  requestPublish(tenantId: string, cause: { by: string; reason: string; correlationId: string }): Promise<unknown>;
  keys: {
    liveKeyIds(tenantId: string, projectId: string): Promise<string[]>;
    /** `by: "projectLock"`: suspended as the lock's; resumed only if a lock (or an agent's hold) suspended it, never a person. */
    setActiveBySystem(ctx: RequestContext, projectId: string, id: string, status: "active" | "suspended", reason: string, by?: "projectLock"): Promise<boolean>;
    /** Keys a lock suspended that nothing has resumed since. */
    lockSuspendedIds(tenantId: string, projectId: string): Promise<string[]>;
  };
}

/** One promotion or extension at a time: both change what the project is. */
function noRequestPending(doc: ProjectDoc): void {
  const pending = doc.promotion ?? doc.extension;
  if (pending) fail({ kind: "conflict", detail: `the project's ${doc.promotion ? "promotion" : "extension"} is awaiting approval ${pending.approvalId}`, reason: "promotion_pending" });
}


export class ProjectLifecycle {
  constructor(private readonly kit: ProjectLifecycleKit) {
    // A request the project does not record (its write lost a race, or never happened) is withdrawn by the approval sweep.
    const records = (field: "promotion" | "extension") => async (approval: Approval) => (await kit.projects.readDoc(approval.tenantId, approval.subject.resourceId))?.[field]?.approvalId === approval.id;
    kit.approvals.onSettled(PROMOTION_SUBJECT, (approval, correlationId) => this.settlePromotion(approval, correlationId), records("promotion"));
    kit.approvals.onSettled(EXTENSION_SUBJECT, (approval, correlationId) => this.settleExtension(approval, correlationId), records("extension"));
  }

  /** The checklist for moving the project to `to`, evaluated now (anyone who may read the project). */
  async gates(ctx: RequestContext, projectId: string, to: Exclude<Project["environment"], "sandbox">): Promise<PromotionGates> {
    const project = await this.kit.projects.get(ctx, projectId);
    return evaluateGates(this.kit.gates, project, to, this.kit.clock.now());
  }

  /** Asks to move the project to a later environment: refused with the failing gates, else an approval decides. */
  async promote(ctx: RequestContext, projectId: string, input: unknown): Promise<Driven<Project>> {
    const spec = parseOrThrow(PromoteSpec, input, "body");
    const doc = await this.manageable(ctx, projectId, "promote");
    if (ENVIRONMENTS.indexOf(spec.to) <= ENVIRONMENTS.indexOf(doc.environment)) {
      fail({ kind: "validation", detail: "a promotion goes to a later environment", errors: [{ field: "body.to", message: `must be later than the project's environment (${doc.environment})` }] });
    }
    noRequestPending(doc);
    // Locked, or past its review date before the hourly sweep locked it: either way it is not promoted.
    const locked = lockedNow(doc, this.kit.clock.now());
    if (locked) fail({ kind: "conflict", detail: `${locked}; an extension through approval comes first`, reason: "project_locked" });
    const checklist = await evaluateGates(this.kit.gates, toProject(doc, doc._etag), spec.to, this.kit.clock.now());
    if (!checklist.passed) {
      const failing = checklist.gates.filter((g) => !g.passed);
      fail({ kind: "conflict", detail: `promotion to ${spec.to} refused; failing gates: ${failing.map((g) => `${g.gate} (${g.detail})`).join("; ")}`, reason: "promotion_gates_failed" });
    }
    const { approval, recorded: project } = await this.kit.approvals.requestFor(
      ctx,
      {
        subject: { resourceType: PROMOTION_SUBJECT, resourceId: projectId, projectId, change: { from: doc.environment, to: spec.to, gates: checklist.gates.map((g) => g.gate) } },
        justification: spec.justification,
        route: { subjectType: "promotion", scope: "project", risk: spec.to === "prod" ? "high" : "standard" },
      },
      (approval) => {
        const at = this.kit.clock.now().toISOString();
        const next: ProjectDoc = { ...unversioned(doc), promotion: { approvalId: approval.id, to: spec.to, requestedBy: ctx.principal.userId, requestedAt: at }, updatedAt: at, updatedBy: ctx.principal.userId };
        return this.recordRequest(ctx, doc, next, approval, "project.promotion.request", "aigov.project.promotionRequested.v1", { from: doc.environment, to: spec.to });
      },
    );
    return { ...project, drive: approvalDrive(approval) };
  }

  /** Asks for a later review date of a sandbox (which also unlocks an expired one): an approval decides. */
  async extend(ctx: RequestContext, projectId: string, input: unknown): Promise<Driven<Project>> {
    const spec = parseOrThrow(ExtendSpec, input, "body");
    const doc = await this.manageable(ctx, projectId, "extend", true);
    if (doc.environment !== "sandbox") fail({ kind: "conflict", detail: `the project is ${doc.environment}, not a sandbox`, reason: "not_a_sandbox" });
    const now = this.kit.clock.now();
    const outOfRange = sandboxDateError(spec.reviewDate, now);
    if (outOfRange) fail({ kind: "validation", detail: "the new review date is out of range", errors: [outOfRange] });
    noRequestPending(doc);
    const { approval, recorded: project } = await this.kit.approvals.requestFor(
      ctx,
      {
        subject: { resourceType: EXTENSION_SUBJECT, resourceId: projectId, projectId, change: { from: doc.reviewDate, reviewDate: spec.reviewDate, locked: !!doc.lock } },
        justification: spec.justification,
        route: { subjectType: "promotion", scope: "project", risk: "standard" },
      },
      (approval) => {
        const at = now.toISOString();
        const next: ProjectDoc = { ...unversioned(doc), extension: { approvalId: approval.id, reviewDate: spec.reviewDate, requestedBy: ctx.principal.userId, requestedAt: at }, updatedAt: at, updatedBy: ctx.principal.userId };
        return this.recordRequest(ctx, doc, next, approval, "project.extension.request", "aigov.project.extensionRequested.v1", { reviewDate: spec.reviewDate });
      },
    );
    return { ...project, drive: approvalDrive(approval) };
  }

  /** The promotion's approval is decided (idempotent): approved and still passing its gates → the new environment. */
  private async settlePromotion(approval: Approval, correlationId: string): Promise<void> {
    const ctx = systemContext(approval.tenantId, ACTOR, correlationId);
    await this.kit.projects.onCurrent(approval.tenantId, approval.subject.resourceId, async (doc) => {
      const pending = doc.promotion;
      if (!pending || pending.approvalId !== approval.id) return;
      const at = this.kit.clock.now().toISOString();
      const base = { ...unversioned(doc), updatedAt: at, updatedBy: ACTOR } as ProjectDoc;
      delete base.promotion;
      if (approval.status !== "approved") {
        await this.write(ctx, doc, { ...base, lastPromotion: { to: pending.to, outcome: "rejected", at, approvalId: approval.id } }, "project.promotion.reject", "aigov.project.promotionRejected.v1", { approvalId: approval.id, to: pending.to, status: approval.status });
        return;
      }
      // The gates are checked again: the project may have changed (or its sandbox expired) while the approval was open.
      const checklist = await evaluateGates(this.kit.gates, toProject(doc, doc._etag), pending.to as Exclude<Project["environment"], "sandbox">, this.kit.clock.now());
      const locked = lockedNow(doc, this.kit.clock.now()) !== undefined;
      if (!checklist.passed || locked) {
        const failingGates: string[] = [...(locked ? ["projectLocked"] : []), ...checklist.gates.filter((g) => !g.passed).map((g) => g.gate)];
        await this.write(ctx, doc, { ...base, lastPromotion: { to: pending.to, outcome: "gatesFailed", at, approvalId: approval.id, failingGates } }, "project.promotion.refuse", "aigov.project.promotionRefused.v1", { approvalId: approval.id, to: pending.to, failingGates });
        return;
      }
      const next: ProjectDoc = { ...base, environment: pending.to, lastPromotion: { to: pending.to, outcome: "promoted", at, approvalId: approval.id } };
      await this.write(ctx, doc, next, "project.promote", "aigov.project.promoted.v1", { approvalId: approval.id, from: doc.environment, to: pending.to });
    });
  }

  /** The extension's approval is decided (idempotent): approved → the new review date, the lock lifted and its keys resumed. */
  private async settleExtension(approval: Approval, correlationId: string): Promise<void> {
    const ctx = systemContext(approval.tenantId, ACTOR, correlationId);
    const projectId = approval.subject.resourceId;
    await this.kit.projects.onCurrent(approval.tenantId, projectId, async (doc) => {
      const pending = doc.extension;
      if (!pending || pending.approvalId !== approval.id) {
        // Settled already. Run again (its first run failed after the project's write), an extension that
        // unlocked the project asks for its publish again: a no-op when the gateway is in step.
        const change = approval.subject.change as { reviewDate?: string; locked?: boolean };
        if (approval.status === "approved" && change.locked && !doc.lock && doc.reviewDate === change.reviewDate) await this.publishUnlocked(approval.tenantId, projectId, correlationId);
        return;
      }
      const at = this.kit.clock.now().toISOString();
      const next = { ...unversioned(doc), updatedAt: at, updatedBy: ACTOR } as ProjectDoc;
      delete next.extension;
      if (approval.status !== "approved") {
        await this.write(ctx, doc, next, "project.extension.reject", "aigov.project.extensionRejected.v1", { approvalId: approval.id, status: approval.status });
        return;
      }
      // Decided after the date it extends to: that sandbox would be expired again at once (unlocked, its
      // keys resumed, until the next sweep locks it again). It lapses; a new extension can be asked for.
      if (this.kit.clock.now().getTime() >= expiryOf(pending.reviewDate)) {
        await this.write(ctx, doc, next, "project.extension.reject", "aigov.project.extensionRejected.v1", { approvalId: approval.id, status: approval.status, lapsed: `approved after its review date ${pending.reviewDate}` });
        return;
      }
      // The keys this very version of the project lists, then the project (If-Match on that version): a
      // lock written meanwhile fails the write and the step runs again with its list; a settle repeated
      // after a crash finds the keys resumed and writes the project.
      for (const id of doc.suspendedByLock ?? []) await this.kit.keys.setActiveBySystem(ctx, projectId, id, "active", `sandbox ${projectId} extended to ${pending.reviewDate}`, "projectLock");
      next.reviewDate = pending.reviewDate;
      delete next.lock;
      delete next.suspendedByLock;
      delete next.sandboxNotices;
      await this.write(ctx, doc, next, "project.extend", "aigov.project.extended.v1", { approvalId: approval.id, reviewDate: pending.reviewDate, unlocked: !!doc.lock });
      if (doc.lock) await this.publishUnlocked(approval.tenantId, projectId, correlationId);
    });
  }

  /** Unlocked, the project accepts the keys shared into it again (compiled from the live lock state). */
  private publishUnlocked(tenantId: string, projectId: string, correlationId: string): Promise<unknown> {
    return this.kit.requestPublish(tenantId, { by: ACTOR, reason: `sandbox ${projectId} extended: unlocked`, correlationId });
  }

  /**
   * The sandbox sweep (timer job): expiry notices 14 days and 1 day before the review date, then at it
   * the lock and the suspension of every live key. Catch-up safe: a missed run is made good by the next.
   */
  async sweep(correlationId: string): Promise<{ notified: number; locked: number; suspended: number; resumed: number; driftStarted: number; driftChanged: number; driftEnded: number }> {
    const count = { notified: 0, locked: 0, suspended: 0, resumed: 0, driftStarted: 0, driftChanged: 0, driftEnded: 0 };
    /**
     * Sandboxes locked by this run or within the day before, by tenant: a locked project accepts no key
     * shared into it, which takes a publish. Asked for once per tenant at the end of every run for a day
     * (a no-op once the gateway is in step), so a publish that failed is asked for again.
     */
    const locked = new Map<string, string[]>();
    const lockedIn = (tenantId: string, projectId: string) => locked.set(tenantId, [...(locked.get(tenantId) ?? []), projectId]);
    const now = this.kit.clock.now().getTime();
    for await (const listed of everyDoc<ProjectDoc>(this.kit.store, "all", { docType: "project", filters: [{ field: "environment", op: "=", value: "sandbox" }] })) {
      if (listed.lock && now - Date.parse(listed.lock.at) < DAY_MS) lockedIn(listed.tenantId, listed.id);
      try {
        const r = await this.sweepOne(listed.tenantId, listed.id, correlationId);
        if (r.locked) lockedIn(listed.tenantId, listed.id);
        count.notified += r.notified;
        count.locked += r.locked;
        count.suspended += r.suspended;
        count.resumed += r.resumed;
      } catch (err) {
        // One project's trouble must not stop the others; the next run tries again.
        console.warn(`project lifecycle sweep: ${listed.id}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    await this.sweepDrift(correlationId, count);
    for (const [tenantId, projectIds] of locked) {
      await this.kit.requestPublish(tenantId, { by: ACTOR, reason: projectIds.map((id) => `sandbox ${id} locked`).join("; "), correlationId }).catch((err: unknown) => console.warn(`project lifecycle sweep: publish for ${tenantId}: ${err instanceof Error ? err.message : String(err)}`));
    }
    return count;
  }

  /**
   * Gate drift (docs/project-lifecycle.md, ADR 028): the time-bound gates a project passed at its
   * promotion (exemptions reviewed, key ages, a recent access review) are checked again for every project
   * held to them, and for every one with a drift recorded whatever its environment now (one moved out
   * of prod ends its drift). What fails is recorded on the project, not enforced: nothing is locked.
   */
  private async sweepDrift(correlationId: string, count: { driftStarted: number; driftChanged: number; driftEnded: number }): Promise<void> {
    const queries: Filter[][] = [
      ...ENVIRONMENTS.filter((e) => timeBoundGatesOf(e).length > 0).map((e): Filter[] => [{ field: "environment", op: "=", value: e }]),
      [{ field: "gateDrift.since", op: ">", value: "" }],
    ];
    const seen = new Set<string>();
    for (const filters of queries) {
      for await (const listed of everyDoc<ProjectDoc>(this.kit.store, "all", { docType: "project", filters })) {
        const key = `${listed.tenantId}\u0000${listed.id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        try {
          const r = await this.driftOne(listed.tenantId, listed.id, correlationId);
          if (r === "started") count.driftStarted += 1;
          else if (r === "changed") count.driftChanged += 1;
          else if (r === "ended") count.driftEnded += 1;
        } catch (err) {
          // One project's trouble must not stop the others; the next run tries again.
          console.warn(`project lifecycle sweep: gate drift of ${listed.id}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    }
  }

  /**
   * One project's drift, from its stored version and the gates now: written when a gate first fails
   * (`project.gateDrift.start`), when the set of failing gates changes (`.change`; each gate keeps when
   * and why it started failing), removed when none fails (`.end`). An unchanged set writes nothing, so
   * every run after the first is a read. The owner and the ProjectAdmins are told of each gate that joins.
   */
  private async driftOne(tenantId: string, projectId: string, correlationId: string): Promise<"started" | "changed" | "ended" | undefined> {
    const ctx = systemContext(tenantId, ACTOR, correlationId);
    return this.kit.projects.onCurrent(tenantId, projectId, async (doc) => {
      const held = timeBoundGatesOf(doc.environment);
      const now = this.kit.clock.now();
      const at = now.toISOString();
      const failing = doc.environment !== "sandbox" && held.length > 0 ? (await evaluateGates(this.kit.gates, toProject(doc, doc._etag), doc.environment, now, held)).gates.filter((g) => !g.passed) : [];
      const was = doc.gateDrift;
      const next = { ...unversioned(doc), updatedAt: at, updatedBy: ACTOR } as ProjectDoc;
      if (!failing.length) {
        if (!was) return undefined;
        delete next.gateDrift;
        await this.write(ctx, doc, next, "project.gateDrift.end", "aigov.project.gateDriftEnded.v1", { environment: doc.environment, since: was.since, gates: was.gates.map((g) => g.gate) });
        return "ended";
      }
      const kept = new Map((was?.gates ?? []).map((g) => [g.gate, g]));
      const gates = failing.map((f) => kept.get(f.gate) ?? { gate: f.gate, since: at, detail: f.detail });
      const joined = gates.filter((g) => !kept.has(g.gate));
      if (was && !joined.length && gates.length === was.gates.length) return undefined;
      next.gateDrift = { since: was?.since ?? at, gates };
      const data = { environment: doc.environment, ...(was ? { since: was.since } : {}), gates: gates.map((g) => ({ gate: g.gate, detail: g.detail })) };
      await this.write(ctx, doc, next, was ? "project.gateDrift.change" : "project.gateDrift.start", was ? "aigov.project.gateDriftChanged.v1" : "aigov.project.gateDriftStarted.v1", data);
      if (joined.length) {
        const env = doc.environment.charAt(0).toUpperCase() + doc.environment.slice(1);
        await this.notify(
          doc,
          `${env} project ${doc.name} is out of its gates: ${joined.map((g) => g.gate).join(", ")}`,
          `It passed them when it was promoted; now it does not: ${joined.map((g) => `${g.gate}: ${g.detail}`).join("; ")}. Nothing is locked and its keys keep working. ` +
            `The checklist as it stands: aigov projects gates ${doc.id} --to ${doc.environment} (GET /api/projects/${doc.id}/promotion-gates?to=${doc.environment}).`,
        );
      }
      return was ? "changed" : "started";
    });
  }

  private async sweepOne(tenantId: string, projectId: string, correlationId: string): Promise<{ notified: number; locked: number; suspended: number; resumed: number }> {
    const ctx = systemContext(tenantId, ACTOR, correlationId);
    const out = { notified: 0, locked: 0, suspended: 0, resumed: 0 };
    await this.kit.projects.onCurrent(tenantId, projectId, async (doc) => {
      if (doc.environment !== "sandbox" || !doc.reviewDate || doc.lock) return;
      const now = this.kit.clock.now().getTime();
      const expiry = expiryOf(doc.reviewDate);
      const at = new Date(now).toISOString();
      if (now >= expiry) {
        // Keys approved since the review date were held for this lock already (holdKeyWhileLocked): it takes them over.
        const keys = [...new Set([...(doc.suspendedByLock ?? []), ...(await this.kit.keys.liveKeyIds(tenantId, projectId))])];
        const next: ProjectDoc = { ...unversioned(doc), lock: { at, reason: "sandboxExpired", detail: `sandbox past its review date ${doc.reviewDate}` }, suspendedByLock: keys, updatedAt: at, updatedBy: ACTOR };
        // A promotion awaiting approval cannot succeed once locked (its settle refuses a locked project),
        // and while it is pending no extension could be asked for: it ends with the lock, its approval withdrawn.
        const promotion = doc.promotion;
        if (promotion) {
          delete next.promotion;
          next.lastPromotion = { to: promotion.to, outcome: "gatesFailed", at, approvalId: promotion.approvalId, failingGates: ["projectLocked"] };
        }
        await this.write(ctx, doc, next, "project.lock", "aigov.project.locked.v1", { reason: "sandboxExpired", reviewDate: doc.reviewDate, keys: keys.length, ...(promotion ? { promotionEnded: promotion.approvalId } : {}) });
        // Best effort: the approval sweep withdraws it anyway (the project no longer records it).
        if (promotion) await this.kit.approvals.withdraw(tenantId, promotion.approvalId, "the project was locked (its sandbox expired)", correlationId).catch(() => undefined);
        await this.notify(doc, `Sandbox ${doc.name} has expired and is locked`, `Its review date ${doc.reviewDate} has passed: its ${keys.length} key(s) are suspended and nothing that adds access is accepted. Nothing is deleted. To continue, request an extension (aigov projects extend ${doc.id}).`);
        out.locked += 1;
        return;
      }
      const notice = now >= expiry - DAY_MS ? "1d" : now >= expiry - 14 * DAY_MS ? "14d" : undefined;
      const sent = doc.sandboxNotices?.reviewDate === doc.reviewDate ? doc.sandboxNotices : undefined;
      if (!notice || sent?.[notice]) return;
      await this.notify(doc, `Sandbox ${doc.name} expires in ${notice === "1d" ? "1 day" : "14 days"}`, `Its review date is ${doc.reviewDate}: then its keys are suspended and the project is locked (nothing is deleted). To keep it, request an extension (aigov projects extend ${doc.id}) or promote it.`);
      const next: ProjectDoc = { ...unversioned(doc), sandboxNotices: { ...sent, reviewDate: doc.reviewDate, [notice]: at }, updatedAt: at, updatedBy: ACTOR };
      await this.write(ctx, doc, next, "project.expiryNotice", "aigov.project.expiryNotice.v1", { notice, reviewDate: doc.reviewDate });
      out.notified += 1;
    });
    // The lock is written first with the keys it suspends: a sweep after a crash finishes the suspensions.
    // While locked, a key that became active anyway (created in the instant the lock was written) joins the list.
    await this.kit.projects.onCurrent(tenantId, projectId, async (doc) => {
      if (!doc.lock) return;
      const listed = new Set(doc.suspendedByLock ?? []);
      const joining = (await this.kit.keys.liveKeyIds(tenantId, projectId)).filter((id) => !listed.has(id));
      if (!joining.length) return;
      const at = this.kit.clock.now().toISOString();
      await this.write(ctx, doc, { ...unversioned(doc), suspendedByLock: [...listed, ...joining], updatedAt: at, updatedBy: ACTOR }, "project.lock", "aigov.project.locked.v1", { reason: doc.lock.reason, reviewDate: doc.reviewDate, keys: listed.size + joining.length });
    });
    const locked = await this.kit.projects.readDoc(tenantId, projectId);
    for (const id of locked?.lock ? (locked.suspendedByLock ?? []) : []) {
      // An extension settled meanwhile unlocks the project: it must not find its keys suspended again.
      if (!(await this.kit.projects.readDoc(tenantId, projectId))?.lock) break;
      if (await this.kit.keys.setActiveBySystem(ctx, projectId, id, "suspended", `sandbox ${projectId} expired (review date ${locked!.reviewDate})`, "projectLock")) out.suspended += 1;
    }
    // That check and the suspension are two reads apart: an extension settled in between resumed the key
    // first and then lifted the lock, leaving it suspended. Whatever a lock suspended in a project that
    // is not locked (now, or at the next run) is resumed.
    const now = locked?.lock ? await this.kit.projects.readDoc(tenantId, projectId) : locked;
    if (now && !lockedNow(now, this.kit.clock.now())) {
      for (const id of await this.kit.keys.lockSuspendedIds(tenantId, projectId)) {
        if (await this.kit.keys.setActiveBySystem(ctx, projectId, id, "active", `sandbox ${projectId} is not locked`, "projectLock")) out.resumed += 1;
      }
    }
    return out;
  }

  private async notify(doc: ProjectDoc, subject: string, body: string): Promise<void> {
    const admins = doc.roleAssignments.filter((a) => a.role === "ProjectAdmin").map((a) => a.principalId);
    for (const recipient of new Set([doc.owner, ...admins])) {
      try {
        await this.kit.notifier.deliver(recipient, { subject, body });
      } catch (err) {
        console.warn(`project ${doc.id}: a notice to ${recipient} could not be delivered: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** The project, if the caller manages it (TenantAdmin, ProjectAdmin held or assigned); locked ones only for `evenLocked`. */
  private async manageable(ctx: RequestContext, projectId: string, verb: string, evenLocked = false): Promise<Versioned<ProjectDoc>> {
    const project = await this.kit.projects.get(ctx, projectId); // 404 for another tenant's, 403 for a caller without a project role
    if (!holdsOn(ctx.principal, project, PROJECT_MANAGERS)) fail({ kind: "forbidden", detail: `to ${verb} a project requires TenantAdmin or its ProjectAdmin` });
    const doc = await this.kit.projects.readDoc(ctx.principal.tenantId, projectId);
    if (!doc) return fail({ kind: "notFound", resource: projectPath(projectId) });
    if (doc.lock && !evenLocked) fail({ kind: "conflict", detail: `the project is locked (${doc.lock.detail}); an extension through approval unlocks it`, reason: "project_locked" });
    return doc;
  }

  /**
   * Records a request's approval on the project (If-Match on the version the request was checked
   * against). When another change won meanwhile (a second request, a lock), the approval just opened
   * would decide nothing: it is expired at once, and the caller gets 409 `promotion_pending`.
   */
  /** The project records the request; a lost race is a conflict (requestFor withdraws the approval it opened). */
  private async recordRequest(ctx: RequestContext, doc: Versioned<ProjectDoc>, next: ProjectDoc, approval: Approval, action: string, event: string, data: Record<string, unknown>): Promise<Project> {
    try {
      return await this.write(ctx, doc, next, action, event, { approvalId: approval.id, ...data });
    } catch (err) {
      if (!(err instanceof AppError && err.error.kind === "preconditionFailed")) throw err;
      return fail({ kind: "conflict", detail: "the project changed while the request was made (another promotion or extension, or its lock): read it again", reason: "promotion_pending" });
    }
  }

  private async write(ctx: RequestContext, before: Versioned<ProjectDoc>, after: ProjectDoc, action: string, event: string, data: Record<string, unknown>): Promise<Project> {
    const [etag] = await this.kit.changes.commit({
      partition: tenantPartition(before.tenantId),
      ctx,
      action,
      resource: projectPath(before.id),
      before: projectSnapshot(before),
      after: projectSnapshot(after),
      ops: [{ kind: "replace", doc: after, ifMatch: before._etag }],
      event: { type: event, subject: projectSubject(before.tenantId, before.id), data: { projectId: before.id, ...data } },
    });
    return toProject(after, etag ?? "");
  }
}
