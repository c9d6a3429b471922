import type { Clock } from "../../ports/clock.js";
import type { Notifier } from "../../ports/notifier.js";
import { unversioned, type Versioned } from "../../ports/store.js";
import type { Approval } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import type { RequestContext } from "../common.js";
import { AppError } from "../errors.js";
import { systemContext } from "../kernel/system.js";
import { DAY_MS, type ExemptionChange, type ExemptionDoc, type ExemptionDocuments } from "./documents.js";
import { IN_FORCE, OPEN } from "./schema.js";

/** Asks for the tenant's gateway policy to be compiled and published again (the publisher provides it). */
export type RequestPublish = (tenantId: string, cause: { by: string; reason: string; correlationId: string }) => Promise<unknown>;

/**
 * An exemption's risk judged again now, with what is open for its control in its project now (the
 * service's riskOf). Undefined: nothing to judge it against (not project-wide).
 */
export type JudgeRisk = (tenantId: string, exemption: ExemptionDoc) => Promise<{ risk: "standard" | "high"; why: string; together: boolean } | undefined>;

/** Whether the gateway configuration compiled now applies each key exemption in force (the service's wiring), and why not. */
export type KeyOutcomes = (tenantId: string, exemptions: Pick<ExemptionDoc, "scope" | "control">[]) => Promise<{ applied: boolean; why?: string }[]>;

/** A transition the system makes: the change, and what follows it (a republish, a notice to the owner). */
type Step = ExemptionChange & { publish?: string; notify?: Notice };

/** What the owner is told: an expiry ahead, or an approved request that was not activated (its risk rose). */
type Notice = "7d" | "1d" | "notActivated";

const SWEEP = "system:exemption-sweep";
const SETTLE = "system:exemption-settle";

/**
 * An exemption's life after its request: the approval's outcome settled (approved → active, rejected,
 * renewed, lapsed), expiry notices at 7 days and 1 day, expiry on time, and the republish each change
 * in force needs. Every transition is one conditional write decided from the stored state and the
 * clock, re-read on a lost race, so the settle hook and the sweep may both run it (ADR 007).
 */
export class ExemptionLifecycle {
  constructor(
    private readonly docs: ExemptionDocuments,
    private readonly clock: Clock,
    private readonly approvals: ApprovalService,
    private readonly notifier: Notifier,
    private readonly requestPublish: RequestPublish,
    private readonly judgeRisk: JudgeRisk,
    private readonly keyOutcomes?: KeyOutcomes,
  ) {}

  /**
   * Asks for the republish a change in force needs. The exemption's own transition stands when the ask
   * fails: the gateway catches up with the next publish (and the sweep asks again for a day after an end).
   */
  async republish(tenantId: string, cause: { by: string; reason: string; correlationId: string }): Promise<void> {
    try {
      await this.requestPublish(tenantId, cause);
    } catch (err) {
      console.error(`republish after '${cause.reason}' failed for tenant ${tenantId}: ${err instanceof Error ? err.message : String(err)}`);
    }
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
    const keyed: { tenantId: string; id: string }[] = [];
    for (const status of OPEN) {
      for await (const d of this.docs.everywhere([{ field: "status", op: "=", value: status }])) {
        if (IN_FORCE.includes(status)) {
          ids.push({ tenantId: d.tenantId, id: d.id });
          if (d.scope?.level === "key" && !d.latent) keyed.push({ tenantId: d.tenantId, id: d.id });
        } else deciding.push({ tenantId: d.tenantId, approvalId: d.approvalId });
        // A damaged record (written around the API) holds up nobody else's expiry: one bad record never blocks a tenant.
        for (const r of Array.isArray(d.renewals) ? d.renewals : []) if (r?.status === "pending") deciding.push({ tenantId: d.tenantId, approvalId: r.approvalId });
      }
    }
    const settled = await this.settleDecided(deciding, correlationId);
    let notified = 0;
    let expired = 0;
    for (const { tenantId, id } of ids) {
      try {
        const done = await this.transition(tenantId, id, systemContext(tenantId, SWEEP, correlationId), (doc) => this.sweepStep(doc));
        if (done?.notify) notified += 1;
        if (done?.next.status === "expired") expired += 1;
      } catch (err) {
        console.error(`exemption sweep: exemption ${id} of tenant ${tenantId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    await this.recordKeyOutcomes(keyed, correlationId);
    await this.republishRecent(correlationId);
    return { notified, expired, settled };
  }

  /**
   * A key exemption in force that the compiler cannot give an exemption tier (a project whose key tiers were
   * full before key exemptions held their places) is applied nowhere: its key keeps its own limits (fail
   * closed). The sweep records that — once, with its audit record, timeline entry and event
   * (`aigov.exemption.notapplied.v1`), and again when it applies after all (`aigov.exemption.applied.v1`) —
   * so an exemption never reads "active" while it does nothing unnoticed. One compiler input per tenant.
   */
  private async recordKeyOutcomes(keyed: { tenantId: string; id: string }[], correlationId: string): Promise<void> {
    if (!this.keyOutcomes || keyed.length === 0) return;
    const byTenant = new Map<string, string[]>();
    for (const { tenantId, id } of keyed) byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), id]);
    for (const [tenantId, ids] of byTenant) {
      try {
        const docs = (await Promise.all(ids.map((id) => this.docs.read(tenantId, id)))).filter((d): d is Versioned<ExemptionDoc> => d !== undefined && IN_FORCE.includes(d.status));
        const outcomes = await this.keyOutcomes(tenantId, docs);
        const ctx = systemContext(tenantId, SWEEP, correlationId);
        for (const [i, d] of docs.entries()) await this.transition(tenantId, d.id, ctx, (doc) => this.outcomeStep(doc, outcomes[i]!));
      } catch (err) {
        console.error(`exemption sweep: key exemptions at the gateway of tenant ${tenantId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  private outcomeStep(doc: Versioned<ExemptionDoc>, outcome: { applied: boolean; why?: string }): Step | undefined {
    if (!IN_FORCE.includes(doc.status) || doc.scope.level !== "key" || doc.latent) return undefined;
    const at = this.clock.now().toISOString();
    const { gatewayNotApplied: _was, ...base } = { ...unversioned(doc), updatedAt: at, updatedBy: SWEEP };
    if (!outcome.applied && !doc.gatewayNotApplied) {
      const why = outcome.why ?? "the gateway configuration does not apply it";
      return {
        next: { ...base, gatewayNotApplied: { since: at, why }, timeline: [...doc.timeline, { at, type: "notApplied", actor: SWEEP, detail: why }] },
        action: "exemption.gateway.notApplied",
        event: "aigov.exemption.notapplied.v1",
        extra: { why },
      };
    }
    if (outcome.applied && doc.gatewayNotApplied) {
      return { next: { ...base, timeline: [...doc.timeline, { at, type: "applied", actor: SWEEP }] }, action: "exemption.gateway.applied", event: "aigov.exemption.applied.v1" };
    }
    return undefined;
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
   * The republish after an exemption started or ended is asked for right after the transition; if that
   * ask was lost (a crash in between, the publisher unreachable), nothing else would make it — an ended
   * exemption would stay relaxed at the gateway, an active one would show active and not be in force.
   * So for a day after any exemption of a tenant was activated or ended, every sweep asks again: a
   * publish of an unchanged tenant makes no revision and sends nothing, so asking twice costs one compile.
   */
  private async republishRecent(correlationId: string): Promise<void> {
    const cutoff = new Date(this.clock.now().getTime() - DAY_MS).toISOString();
    const tenants = new Set<string>();
    const recent = [
      ...(["expired", "revoked"] as const).map((status) => [{ field: "status", op: "=" as const, value: status }, { field: "endedAt", op: ">=" as const, value: cutoff }]),
      ...IN_FORCE.map((status) => [{ field: "status", op: "=" as const, value: status }, { field: "activatedAt", op: ">=" as const, value: cutoff }]),
    ];
    for (const filters of recent) for await (const d of this.docs.everywhere(filters)) tenants.add(d.tenantId);
    for (const tenantId of tenants) await this.republish(tenantId, { by: SWEEP, reason: "exemptions activated or ended in the last day", correlationId });
  }

  private sweepStep(doc: Versioned<ExemptionDoc>): Step | undefined {
    if (!IN_FORCE.includes(doc.status)) return undefined;
    const now = this.clock.now();
    const at = now.toISOString();
    const left = Date.parse(doc.expiresAt) - now.getTime();
    const base = { ...unversioned(doc), updatedAt: at, updatedBy: SWEEP };
    if (left <= 0) {
      return {
        next: { ...base, status: "expired", endedAt: at, timeline: [...doc.timeline, { at, type: "expired", actor: SWEEP }] },
        action: "exemption.expire",
        event: "aigov.exemption.expired.v1",
        publish: `exemption ${doc.id} expired`,
      };
    }
    const notice = left <= DAY_MS && !doc.notices["1d"] ? "1d" : left <= 7 * DAY_MS && !doc.notices["7d"] && !doc.notices["1d"] ? "7d" : undefined;
    if (!notice) return undefined;
    const notices = { ...doc.notices, [notice]: { at, status: "sent" as const }, ...(notice === "1d" && !doc.notices["7d"] ? { "7d": { at, status: "superseded" as const } } : {}) };
    return {
      next: { ...base, status: "expiring", notices, timeline: [...doc.timeline, { at, type: "expiring", actor: SWEEP, detail: `${notice === "1d" ? "1 day" : "7 days"} notice to ${doc.owner}` }] },
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
    const ctx = systemContext(tenantId, SETTLE, correlationId);
    const riskNow = await this.riskRose(approval);
    for (let steps = 0; steps < 4; steps++) {
      const done = await this.transition(tenantId, approval.subject.resourceId, ctx, (doc) => this.settleStep(doc, approval, riskNow));
      if (!done) return;
    }
  }

  /**
   * Why a request approved on the standard route is high risk now, if it is. Two requests made at the
   * same moment are each judged without the other (neither is stored yet), so a relaxation split in two
   * could take one approver each — or one approver for its part, while the other's two stages judged the
   * other part alone. Judged again when approved, with the open exemptions of its control that neither
   * was judged with, such a request is not activated (ADR 007); nor is one that is high risk alone now
   * (the settings in force or the tenant's rules changed while it waited). Two settled at the same moment
   * may both be refused: the safe side, and the requester asks again.
   */
  private async riskRose(approval: Approval): Promise<{ why: string; together: boolean } | undefined> {
    if (approval.status !== "approved" || approval.route?.risk === "high") return undefined;
    const doc = await this.docs.read(approval.tenantId, approval.subject.resourceId);
    if (!doc || doc.latent) return undefined;
    // A renewal waits for its approval as a request does: one that is high risk now extends nothing on a standard approval.
    const request = doc.approvalId === approval.id && (doc.status === "requested" || doc.status === "approved");
    const renewal = IN_FORCE.includes(doc.status) && doc.renewals.some((r) => r.approvalId === approval.id && r.status === "pending");
    if (!request && !renewal) return undefined;
    const now = await this.judgeRisk(approval.tenantId, doc);
    return now?.risk === "high" ? { why: now.why, together: now.together } : undefined;
  }

  private settleStep(doc: Versioned<ExemptionDoc>, approval: Approval, riskNow?: { why: string; together: boolean }): Step | undefined {
    const at = this.clock.now().toISOString();
    const actor = SETTLE;
    const base = { ...unversioned(doc), updatedAt: at, updatedBy: actor };
    const approved = approval.status === "approved";
    if (approval.id === doc.approvalId) {
      if (riskNow !== undefined && approved && (doc.status === "requested" || doc.status === "approved")) {
        return {
          next: {
            ...base,
            status: "rejected",
            endedAt: at,
            timeline: [
              ...doc.timeline,
              {
                at,
                type: "rejected",
                actor,
                detail: riskNow.together
                  ? `approved as standard risk, but high risk now: ${riskNow.why}; request the whole relaxation as one exemption`
                  : `approved as standard risk, but high risk now: ${riskNow.why} (the settings in force or the tenant's rules changed while it waited); request it again`,
              },
            ],
          },
          action: "exemption.reject",
          event: "aigov.exemption.rejected.v1",
          extra: { approvalStatus: approval.status, cause: "risk_rose" },
          // Its approval reads "approved": the owner and the requester hear why it is not in force.
          notify: "notActivated",
        };
      }
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
    if (approved && riskNow !== undefined && IN_FORCE.includes(doc.status)) {
      settled.status = "rejected";
      return {
        next: { ...base, renewals, timeline: [...doc.timeline, { at, type: "renewalRejected", actor, detail: `renewal ${renewal.number} approved as standard risk, but high risk now: ${riskNow.why}; request it again` }] },
        action: "exemption.renewal.reject",
        event: "aigov.exemption.rejected.v1",
        extra: { renewal: renewal.number, approvalStatus: approval.status, cause: "risk_rose" },
      };
    }
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
      const doc = await this.docs.read(tenantId, id);
      if (!doc) return undefined;
      const step = decide(doc);
      if (!step) return undefined;
      try {
        await this.docs.commit(ctx, doc, step);
      } catch (err) {
        if (err instanceof AppError && err.error.kind === "preconditionFailed") continue;
        throw err;
      }
      if (step.notify) await this.sendNotice(step.next, step.notify);
      if (step.publish) await this.republish(tenantId, { by: ctx.principal.userId, reason: step.publish, correlationId: ctx.correlationId });
      return step;
    }
  }

  /** Delivered after the notice is recorded: a failed delivery is logged, never repeated (the expiring event carries it too). */
  private async sendNotice(doc: ExemptionDoc, notice: Notice): Promise<void> {
    const where = doc.scope.level === "tenant" ? "the tenant" : doc.scope.level === "project" ? doc.scope.projectId : doc.scope.level === "model" ? `${doc.scope.projectId}/${doc.scope.modelId}` : `${doc.scope.projectId} key ${doc.scope.keyId}`;
    if (notice === "notActivated") {
      const detail = doc.timeline.at(-1)?.detail ?? "";
      for (const recipient of new Set([doc.owner, doc.requester])) {
        try {
          await this.notifier.deliver(recipient, {
            subject: `Exemption ${doc.id} was approved but not activated`,
            body: `The exemption from ${doc.control} for ${where} was ${detail}. The control applies as before.`,
          });
        } catch (err) {
          console.warn(`exemption ${doc.id}: the notice that it was not activated could not be delivered: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      return;
    }
    try {
      await this.notifier.deliver(doc.owner, {
        subject: `Exemption ${doc.id} expires in ${notice === "1d" ? "1 day" : "7 days"}`,
        body: `Your exemption from ${doc.control} for ${where} expires at ${doc.expiresAt}; the control applies again then. To keep it, request a renewal with updated evidence (aigov exemptions renew ${doc.id}).`,
      });
    } catch (err) {
      console.warn(`exemption ${doc.id}: the ${notice} notice to its owner could not be delivered: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
