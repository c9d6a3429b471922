import type { Clock } from "../../ports/clock.js";
import { unversioned } from "../../ports/store.js";
import type { Approval } from "../approvals/schema.js";
import type { ApprovalService } from "../approvals/service.js";
import type { RequestContext } from "../common.js";
import { AppError } from "../errors.js";
import { holdsOn, PROJECT_MANAGERS } from "../kernel/roles.js";
import { systemContext } from "../kernel/system.js";
import { DEFAULT_KEY_POLICY, type Project } from "../projects/schema.js";
import type { ProjectService } from "../projects/service.js";
import type { KeyDoc, KeyDocuments } from "./documents.js";
import type { KeyGatewaySync } from "./gateway-sync.js";
import type { KeyLifecycle } from "./lifecycle.js";
import type { KeyScopes } from "./schema.js";

/**
 * Keys asked for where keys need an approval (`keyPolicy.requireApproval`; ADR 008, "Key requests").
 * The key exists from the request: its secret is in the request's answer (the only time it is shown, as
 * for any key) and its subscription is created suspended, so the secret works nowhere until an approver
 * (route: key requests; by default the project's admins or a TenantAdmin) approves; then the key is
 * resumed at the gateway. A rejection or an expired request revokes it. Nobody resumes or shares a key
 * whose request is pending. Project managers' own keys need no approval: they could approve them.
 */
export class KeyRequests {
  constructor(
    private readonly docs: KeyDocuments,
    private readonly approvals: ApprovalService,
    private readonly sync: KeyGatewaySync,
    private readonly lifecycle: KeyLifecycle,
    private readonly projects: Pick<ProjectService, "holdKeyWhileLocked">,
    private readonly clock: Clock,
  ) {
    approvals.onSettled(
      "keyRequest",
      (approval, correlationId) => this.settle(approval, correlationId),
      // The key records its request when it is written, after the request was opened: a request whose key
      // was never written (a crash, a failed secret or key write in between) or has ended meanwhile (revoked,
      // expired) awaits nothing, and the approval sweep withdraws it rather than ask approvers about it.
      async (approval) => {
        const change = approval.subject.change as { keyId?: string; projectId?: string };
        if (!change.keyId || !change.projectId) return true; // not one of ours to judge
        const doc = await this.docs.read(approval.tenantId, change.projectId, change.keyId);
        return doc?.approval?.approvalId === approval.id && doc.approval.state === "pending" && doc.status !== "revoked" && doc.status !== "expired";
      },
    );
  }

  /** Whether a key the caller creates in the project waits for an approval. */
  needsApproval(ctx: RequestContext, project: Project): boolean {
    return (project.keyPolicy ?? DEFAULT_KEY_POLICY).requireApproval === true && !holdsOn(ctx.principal, project, PROJECT_MANAGERS);
  }

  /** Opens the request's approval for a key about to be created (its id is already chosen). */
  async open(ctx: RequestContext, project: Project, key: { id: string; name: string; scopes: KeyScopes; justification: string | undefined }): Promise<Approval> {
    if (!key.justification) {
      throw new AppError({
        kind: "validation",
        detail: "this project's keys need an approval: say why the key is needed",
        errors: [{ field: "body.justification", message: "is required: the project's keys need an approval (keyPolicy.requireApproval)" }],
        reason: "key_justification_required",
      });
    }
    return this.approvals.request(ctx, {
      subject: { resourceType: "keyRequest", resourceId: key.id, projectId: project.id, change: { keyId: key.id, projectId: project.id, name: key.name, scopes: key.scopes } },
      justification: key.justification,
      route: { subjectType: "keyRequest", scope: "project", risk: "standard" },
    });
  }

  /** The approval engine's verdict (idempotent: it may run more than once). */
  private async settle(approval: Approval, correlationId: string): Promise<void> {
    const change = approval.subject.change as { keyId?: string; projectId?: string };
    if (!change.keyId || !change.projectId) return;
    const tenantId = approval.tenantId;
    const doc = await this.docs.read(tenantId, change.projectId, change.keyId);
    if (!doc || doc.approval?.approvalId !== approval.id) return;
    const ctx = systemContext(tenantId, "system:keys", correlationId);
    const approved = approval.status === "approved";
    // Recorded already (a settle run again after a crash or a failed write): only what follows is left.
    if (doc.approval.state !== "pending") return this.afterVerdict(ctx, doc, approved, approval.status, correlationId);
    const at = this.clock.now().toISOString();
    // Approved in a locked project (a sandbox past its review date, locked by the sweep or not yet): the key
    // stays suspended, listed with the keys the lock suspends, and the extension that lifts it resumes it with them.
    // Its owner lost their project role while it waited: approved, it stays suspended as the leaver's (the
    // role given back resumes it).
    const leaver = doc.suspendedBy === "roleRemoved";
    const held = approved && doc.status === "suspended" && !leaver && (await this.projects.holdKeyWhileLocked(ctx, doc.projectId, doc.id));
    const activates = approved && doc.status === "suspended" && !held && !leaver;
    const next: KeyDoc = {
      ...unversioned(doc),
      // Held for the lock: marked as the lock's suspension, which its end resumes (a person's it never does).
      ...(held ? { suspendedBy: "projectLock" as const } : {}),
      approval: { ...doc.approval, state: approved ? "approved" : "rejected", decidedAt: at },
      // Approved: the key works from now on (unless something else ended it meanwhile).
      ...(activates ? { status: "active" as const, gateway: { ...doc.gateway, desiredGen: doc.gateway.desiredGen + 1 } } : {}),
      updatedAt: at,
      updatedBy: ctx.principal.userId,
    };
    await this.docs.commit(ctx, doc, next, approved ? "key.request.approve" : "key.request.reject", approved ? "aigov.key.request.approved.v1" : "aigov.key.request.rejected.v1", {
      keyId: doc.id,
      projectId: doc.projectId,
      approvalId: approval.id,
      outcome: approval.status,
    });
    await this.afterVerdict(ctx, doc, approved, approval.status, correlationId);
  }

  /** A refused request's key is revoked (repeated until it is: a settle that failed after recording the verdict runs again); then the gateway learns. */
  private async afterVerdict(ctx: RequestContext, doc: KeyDoc, approved: boolean, outcome: string, correlationId: string): Promise<void> {
    const tenantId = ctx.principal.tenantId;
    if (!approved) {
      const current = await this.docs.load(tenantId, doc.projectId, doc.id);
      if (current.status !== "revoked" && current.status !== "expired") await this.lifecycle.end(ctx, current, "revoked", `key request ${outcome}`);
    }
    await this.sync.trySync(tenantId, doc.projectId, doc.id, correlationId);
  }
}
