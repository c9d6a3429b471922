import type { Clock } from "../../ports/clock.js";
import { unversioned, type Versioned } from "../../ports/store.js";
import type { Approval } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import { approvalDrive } from "../approvals/drive.js";
import { etagMatches, type RequestContext } from "../common.js";
import { AppError, fail, notFound } from "../errors.js";
import type { Driven } from "../kernel/drive.js";
import { systemContext } from "../kernel/system.js";
import { lockedNow } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import { parseOrThrow } from "../validation.js";
import type { KeyAccess } from "./access.js";
import { keyEnded, keyPath, roomForShared, sharedWith, type KeyDoc, type KeyDocuments, type ShareDoc, type TierGuard } from "./documents.js";
import type { GatewayAccess } from "./gateway-access.js";
import type { KeyGatewaySync } from "./gateway-sync.js";
import { ShareSpec, type Key } from "./schema.js";
import type { KeyRegionCheck } from "./service.js";
import type { ModelService } from "../../pillars/models/service.js";

const SHARE_EVENTS = { active: "aigov.key.shared.v1", rejected: "aigov.key.share.rejected.v1", revoked: "aigov.key.share.revoked.v1", pending: "aigov.key.share.requested.v1" } as const;

/**
 * Sharing a key with another project of the tenant: an approval (by default the target project's
 * admins) decides; the share shows on the key and, once active, in the target project, and the key's
 * profile then includes that project (ADR 008, "Sharing").
 */
export class KeySharing {
  constructor(
    private readonly docs: KeyDocuments,
    private readonly access: KeyAccess,
    private readonly projects: Pick<ProjectService, "get" | "readDoc">,
    private readonly approvals: ApprovalService,
    private readonly sync: KeyGatewaySync,
    private readonly gateway: Pick<GatewayAccess, "ensurePublished">,
    private readonly clock: Clock,
    private readonly models?: Pick<ModelService, "listAll">,
    private readonly keyRegions?: KeyRegionCheck,
  ) {
    approvals.onSettled(
      "keyShare",
      (approval, correlationId) => this.settle(approval, correlationId),
      async (approval) => {
        const change = approval.subject.change as { keyId?: string; fromProject?: string };
        if (!change.keyId || !change.fromProject) return true; // not one of ours to judge
        const doc = await this.docs.read(approval.tenantId, change.fromProject, change.keyId);
        // A share ended while it waited (unshared, the key revoked or expired) awaits nothing either.
        if (!doc || doc.status === "revoked" || doc.status === "expired") return false;
        return !!doc.shares?.some((x) => x.approvalId === approval.id && x.status === "pending");
      },
    );
  }

  /** Asks to use the key with another project; the approval's driver comes with the answer. */
  async share(ctx: RequestContext, projectId: string, id: string, input: unknown, ifMatch?: string): Promise<Driven<{ key: Key; approval: Approval }>> {
    await this.access.mayManage(ctx, projectId, id, "share");
    const spec = parseOrThrow(ShareSpec, input, "body");
    const tenantId = ctx.principal.tenantId;
    if (spec.projectId === projectId) fail({ kind: "validation", detail: "a key is already usable in its own project", errors: [{ field: "body.projectId", message: "is the key's own project" }] });
    const target = await this.projects.get(ctx, spec.projectId); // 404 for a project of another tenant, like a missing one
    // A locked project (a sandbox past its review date, locked yet or not) accepts nothing that adds access: no key of another project either.
    const locked = lockedNow(target, this.clock.now());
    if (locked) fail({ kind: "conflict", detail: `project ${spec.projectId}: ${locked}: it accepts no shared keys until an extension is approved`, reason: "project_locked" });
    const doc = await this.docs.load(tenantId, projectId, id);
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    if (doc.status === "revoked" || doc.status === "expired") fail({ kind: "conflict", detail: `a ${doc.status} key cannot be shared`, reason: doc.status === "revoked" ? "key_revoked" : "key_expired" });
    if (doc.approval?.state === "pending") fail({ kind: "conflict", detail: "the key waits for its request's approval", reason: "key_awaiting_approval" });
    if ((doc.shares ?? []).some((x) => x.projectId === spec.projectId && (x.status === "pending" || x.status === "active"))) {
      fail({ kind: "conflict", detail: `the key is already shared (or being shared) with ${spec.projectId}`, reason: "key_already_shared" });
    }
    // Its content safety screens its prompts in the target project too: the target's region rules hold for it (ADR 024).
    if (doc.limits.contentSafety !== undefined && this.keyRegions) {
      const own = doc.scopes.models === undefined ? undefined : (await this.models?.listAll(tenantId, projectId))?.filter((m) => doc.scopes.models!.includes(m.id)).map((m) => m.name);
      await this.keyRegions(tenantId, spec.projectId, target.settings, { label: `the key (shared with ${spec.projectId})`, level: doc.limits.contentSafety, models: doc.scopes.models === undefined ? undefined : (own ?? []) }, "body.projectId");
    }
    // Shared, the key is a profile of its own (its product links the other project's API too): room for
    // it in its own project, and among the tiers the other project accepts.
    // Every project it is shared with accepts its new profile too (until it moved, its old one as well), and
    // the profiles the ends of its shares would leave it with are held for it from now on (profilesHeldBy).
    await roomForShared(this.docs, tenantId, { ...doc, shares: [...(doc.shares ?? []), { projectId: spec.projectId, status: "active" } as ShareDoc] });
    // Who approves is the tenant's route for key shares (default: the target project's admins or a
    // TenantAdmin); approvers the requester names are an extra stage after it.
    const { approval, recorded: key } = await this.approvals.requestFor(
      ctx,
      {
        subject: { resourceType: "keyShare", resourceId: id, projectId: spec.projectId, change: { keyId: id, fromProject: projectId, toProject: spec.projectId } },
        justification: spec.justification,
        route: { subjectType: "keyShare", scope: "project", risk: "standard" },
        ...(spec.approvers ? { extraStages: [{ approvers: spec.approvers.map((a) => ("role" in a ? { role: a.role, scope: "project" as const } : a)), decisionTimeout: "P7D" }], extraField: "body.approvers" } : {}),
      },
      (approval) => {
        const at = this.clock.now().toISOString();
        const next: KeyDoc = {
          ...unversioned(doc),
          shares: [...(doc.shares ?? []), { projectId: spec.projectId, status: "pending", approvalId: approval.id, requestedBy: ctx.principal.userId, requestedAt: at }],
          updatedAt: at,
          updatedBy: ctx.principal.userId,
        };
        return this.docs.commit(ctx, doc, next, "key.share.request", "aigov.key.share.requested.v1", { keyId: id, projectId, toProject: spec.projectId, approvalId: approval.id });
      },
    );
    return { key, approval, drive: approvalDrive(approval) };
  }

  /**
   * Ends a share (either project's admin or the key's owner): the key stops working with that project once
   * the gateway confirms. Never refused for room: the profile it leaves the key with was held for it since
   * the share was made (profilesHeldBy), so it never takes the key's project past its cap on key profiles.
   */
  async unshare(ctx: RequestContext, projectId: string, id: string, targetProjectId: string, ifMatch?: string): Promise<Key> {
    const { doc, fromTarget } = await this.mayEnd(ctx, projectId, id, targetProjectId);
    const tenantId = ctx.principal.tenantId;
    if (ifMatch !== undefined && !etagMatches(doc._etag, ifMatch)) fail({ kind: "preconditionFailed" });
    // A key that ended is shared with nobody: its shares ended with it (and its pending ones were withdrawn).
    const share = keyEnded(doc) ? undefined : (doc.shares ?? []).find((x) => x.projectId === targetProjectId && (x.status === "active" || x.status === "pending"));
    if (!share) return notFound(`${keyPath(projectId, id)}/shares/${targetProjectId}`);
    await this.setShare(ctx, doc, targetProjectId, "revoked");
    // A share still waiting: nobody is asked to decide it any more (else the approval sweep withdraws it later).
    if (share.status === "pending") await this.approvals.withdraw(tenantId, share.approvalId, `key ${id} no longer to be shared`, ctx.correlationId).catch(() => undefined);
    const synced = await this.sync.trySync(tenantId, projectId, id, ctx.correlationId);
    const d = synced ?? (await this.docs.load(tenantId, projectId, id));
    // The target project's admin is answered as that project sees the key: its share there, not the others.
    return fromTarget ? this.docs.viewFrom(d, targetProjectId) : this.docs.view(d);
  }

  /**
   * The key, if the caller may end its share into `target`: its owner, its project's admins, or the target
   * project's (`fromTarget`: they may see of the key only what reaches into their project).
   */
  private async mayEnd(ctx: RequestContext, projectId: string, id: string, target: string): Promise<{ doc: Versioned<KeyDoc>; fromTarget: boolean }> {
    try {
      return { doc: await this.access.mayManage(ctx, projectId, id), fromTarget: false };
    } catch (err) {
      if (!(err instanceof AppError && (err.error.kind === "forbidden" || err.error.kind === "notFound"))) throw err;
      const into = await this.projects.get(ctx, target).catch(() => undefined);
      if (!into || !this.access.manages(ctx, into)) throw err;
      // The target's admin learns of the key only what reaches into their project: a key that is not
      // shared there (or does not exist) is the same 404, so its existence is not told.
      const doc = await this.docs.read(ctx.principal.tenantId, projectId, id);
      const reaches = doc && !keyEnded(doc) && doc.shares?.some((x) => x.projectId === target && (x.status === "active" || x.status === "pending"));
      if (!doc || !reaches) return notFound(`${keyPath(projectId, id)}/shares/${target}`);
      return { doc, fromTarget: true };
    }
  }

  /**
   * Ends an active share on behalf of automation (an access review's outcome; `ctx` is a system context).
   * Idempotent: "alreadyGone" when the key or the active share is gone.
   */
  async endShare(ctx: RequestContext, projectId: string, id: string, targetProjectId: string): Promise<"removed" | "alreadyGone"> {
    const tenantId = ctx.principal.tenantId;
    const doc = await this.docs.read(tenantId, projectId, id);
    // No room is needed: the profile the end leaves the key with was held for it all along (profilesHeldBy).
    if (!doc || !sharedWith(doc, targetProjectId)) return "alreadyGone";
    await this.setShare(ctx, doc, targetProjectId, "revoked");
    await this.sync.trySync(tenantId, projectId, id, ctx.correlationId);
    return "removed";
  }

  /** Keys of other projects shared into this one (active shares), as this project sees them: each with its share here only. */
  async listSharedIn(ctx: RequestContext, projectId: string): Promise<Key[]> {
    await this.projects.get(ctx, projectId);
    const tenantId = ctx.principal.tenantId;
    const out: Key[] = [];
    for await (const s of this.docs.sharedInto(tenantId, projectId)) {
      const doc = await this.docs.read(tenantId, s.fromProject, s.keyId);
      if (doc && sharedWith(doc, projectId)) out.push(this.docs.viewFrom(doc, projectId));
    }
    return out;
  }

  /** The approval engine's verdict on a share (idempotent: it may run more than once). */
  private async settle(approval: Approval, correlationId: string): Promise<void> {
    const change = approval.subject.change as { keyId?: string; fromProject?: string; toProject?: string };
    if (!change.keyId || !change.fromProject || !change.toProject) return;
    const tenantId = approval.tenantId;
    const doc = await this.docs.read(tenantId, change.fromProject, change.keyId);
    const share = doc?.shares?.find((x) => x.approvalId === approval.id);
    if (!doc || !share) return;
    const ctx = systemContext(tenantId, "system:keys", correlationId);
    if (share.status === "active") {
      // Made already; a settle run again after a crash between the share's two writes finishes the second
      // (the target project's record, which its list of shared keys, budgets and tier cap read) and the publish.
      await this.docs.recordSharedIn(ctx, doc, change.toProject);
      await this.gateway.ensurePublished(tenantId, { by: "system:keys", reason: `key ${change.keyId} shared with ${change.toProject}`, correlationId });
      return;
    }
    if (share.status !== "pending") return;
    // A key revoked or expired while its share waited is not shared when the approval comes: it would be
    // listed in the target project and link its product there, for a key that works nowhere.
    // Approved, but the target was locked meanwhile, or is a sandbox past its review date the sweep has not
    // locked yet (or the key ended): not shared, as a share asked for now would be refused.
    const target = await this.projects.readDoc(tenantId, change.toProject);
    // A target deleted while the share waited takes nothing either.
    const closed = !target || lockedNow(target, this.clock.now()) !== undefined;
    if (approval.status !== "approved" || doc.status === "revoked" || doc.status === "expired" || closed) {
      await this.setShare(ctx, doc, change.toProject, "rejected");
      return;
    }
    // Other keys may have taken the project's last profiles while the share waited: not made, rather than
    // compiled past the cap (the approval stands; the owner asks again once a profile is free).
    // Counted under the project's guard on key tiers, taken in the key's write: a key profile or key exemption
    // made at the same moment is counted with it. The tiers the projects it is shared with accept are reserved
    // in their own guards first (the key is written in its own partition): a key of another project shared
    // into one of them at the same moment is counted with it.
    const shared = { ...doc, shares: doc.shares.map((x) => (x.approvalId === approval.id ? { ...x, status: "active" as const } : x)) };
    const toProject = change.toProject;
    const exhausted = (err: unknown) => {
      if (err instanceof AppError && err.error.kind === "conflict" && err.error.reason === "key_profiles_exhausted") return undefined;
      throw err;
    };
    const made = await this.docs.underTierGuard(tenantId, doc.projectId, async (guard) => {
      const room = await roomForShared(this.docs, tenantId, shared).then(() => true, exhausted);
      const reserved = room ? await this.docs.reserveAccepted(tenantId, shared).catch(exhausted) : undefined;
      if (!reserved) return undefined;
      try {
        await this.writeShare(ctx, doc, toProject, "active", guard);
      } catch (err) {
        await reserved.release();
        throw err;
      }
      return reserved;
    });
    if (!made) {
      await this.setShare(ctx, doc, change.toProject, "rejected");
      return;
    }
    // Visible in the target project (its own partition): counted there from its record from now on.
    await this.docs.recordSharedIn(ctx, doc, toProject);
    await made.release();
    // The target project's product link comes with the next publish; the key moves to it once published.
    await this.gateway.ensurePublished(tenantId, { by: "system:keys", reason: `key ${change.keyId} shared with ${change.toProject}`, correlationId });
  }

  private async setShare(ctx: RequestContext, doc: Versioned<KeyDoc>, target: string, status: ShareDoc["status"]): Promise<void> {
    await this.writeShare(ctx, doc, target, status);
    // Visible in the target project too (its own partition and audit chain).
    if (status === "active" || status === "revoked") await this.docs.recordSharedIn(ctx, doc, target);
  }

  /** The key's write of a share's new status; `guard`: the project's guard on key tiers, taken in the key's write (a share made may add key profiles). */
  private async writeShare(ctx: RequestContext, doc: Versioned<KeyDoc>, target: string, status: ShareDoc["status"], guard?: TierGuard): Promise<void> {
    const at = this.clock.now().toISOString();
    const moves = status === "active" || doc.shares?.some((x) => x.projectId === target && x.status === "active");
    const gen = moves ? doc.gateway.desiredGen + 1 : doc.gateway.desiredGen;
    const shares = (doc.shares ?? []).map((x) =>
      x.projectId === target && (x.status === "pending" || x.status === "active") ? { ...x, status, decidedAt: at, ...(status === "revoked" && x.status === "active" ? { revokedAtGen: gen } : {}) } : x,
    );
    const next: KeyDoc = {
      ...unversioned(doc),
      shares,
      ...(moves ? { gateway: { ...doc.gateway, desiredGen: gen } } : {}),
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    const data = { keyId: doc.id, projectId: doc.projectId, toProject: target };
    if (guard) await this.docs.commitGuarded(ctx, doc, next, `key.share.${status}`, SHARE_EVENTS[status], data, guard);
    else await this.docs.commit(ctx, doc, next, `key.share.${status}`, SHARE_EVENTS[status], data);
  }
}
