/**
 * Approvals of tools, opt-in per project (approval mode none | all | destructive). A request goes
 * through the tenant's approval engine (subject type "tool", its route); an approval pins the
 * definition hash the request was about. A tool is callable while its current definition hash equals
 * the pinned one: when discovery finds it changed, the approval is suspended (an event says why) and
 * the tool stays refused at the gateway until a new approval pins the new definition. An approval also
 * pins the tool's binding (the server's endpoint and, for a REST tool, the operation a call becomes):
 * re-pointing an approved tool at another server URL or operation suspends it the same way (`binding_changed`).
 */
import type { Approval } from "../../domain/approvals/schema.js";
import type { ApprovalService } from "../../domain/approvals/service.js";
import type { ChangeWriter } from "../../domain/changes.js";
import type { RequestContext } from "../../domain/common.js";
import { AppError, fail } from "../../domain/errors.js";
import { systemContext } from "../../domain/kernel/system.js";
import type { Clock } from "../../ports/clock.js";
import { unversioned, type Partition, type Store } from "../../ports/store.js";
import { bindingHash, bindingHolds, endpointOf, isCurrentPin, legacyBindingHash } from "./definitions.js";
import { grantId, serverPath, sourceKey, type GrantDoc, type ServerDoc, type StoredTool } from "./documents.js";
import type { Tool } from "./schema.js";

export type ApprovalMode = "none" | "all" | "destructive";
export type ToolApprovalState = Tool["approval"]["state"];

/** Whether an approved grant still holds for the tool as it is now, served from `endpoint`: the same definition and the same binding. */
export function grantHolds(grant: Pick<GrantDoc, "pinnedHash" | "pinnedBinding">, tool: Pick<StoredTool, "hash" | "operation">, endpoint: string): boolean {
  // Approvals made before bindings were pinned hold on the definition; discovery pins them, and suspends them when the binding changed.
  return grant.pinnedHash === tool.hash && bindingHolds(grant.pinnedBinding, tool.operation, endpoint);
}

/**
 * Whether approval mode `destructive` lets keys call the tool without an approval: it is annotated
 * read-only and has no approval record. A record (granted, pending, rejected, suspended) means the tool
 * needed one, and it keeps judging the tool whatever its annotations say now: a server that re-annotates
 * an approved destructive tool read-only — in the same change as a new description — must not lift the
 * requirement and slip the new definition past the pin (it is suspended like any other change).
 */
export const exemptAsReadOnly = (readOnly: boolean, hasGrant: boolean): boolean => readOnly && !hasGrant;

/** What the project's approvals say about a tool as it is now, served from `endpoint` (endpointOf the server's source). */
export function approvalStateOf(mode: ApprovalMode, tool: Pick<StoredTool, "hash" | "annotations" | "operation">, grant: GrantDoc | undefined, endpoint: string): { state: ToolApprovalState; callable: boolean } {
  if (mode === "none" || (mode === "destructive" && exemptAsReadOnly(tool.annotations.readOnly, grant !== undefined))) return { state: "notRequired", callable: true };
  if (!grant) return { state: "required", callable: false };
  if (grant.state === "approved") return grantHolds(grant, tool, endpoint) ? { state: "approved", callable: true } : { state: "suspended", callable: false };
  return { state: grant.state, callable: false };
}

export class ToolGrants {
  constructor(
    private readonly store: Store,
    private readonly changes: ChangeWriter,
    private readonly clock: Clock,
    private readonly approvals: ApprovalService,
  ) {}

  read(partition: Partition, serverId: string, tool: string): Promise<GrantDoc | undefined> {
    return this.store.read<GrantDoc>(partition, grantId(serverId, tool)).then((d) => (d?.docType === "toolGrant" ? d : undefined));
  }

  /** Every grant of a project (for the compiler input and tool listings). */
  async all(partition: Partition): Promise<GrantDoc[]> {
    const out: GrantDoc[] = [];
    let token: string | undefined;
    do {
      const page = await this.store.queryPage<GrantDoc>(partition, { docType: "toolGrant", maxPageSize: 500, ...(token ? { continuationToken: token } : {}) });
      out.push(...page.items);
      token = page.continuationToken;
    } while (token);
    return out;
  }

  /** Opens an approval request for a tool's current definition. */
  async request(ctx: RequestContext, server: ServerDoc, tool: StoredTool, mode: ApprovalMode, justification: string): Promise<{ grant: GrantDoc; approval: Approval }> {
    const partition = { tenantId: server.tenantId, scopeId: server.scopeId };
    const current = await this.read(partition, server.id, tool.name);
    const endpoint = endpointOf(server.source);
    const now = approvalStateOf(mode, tool, current, endpoint);
    if (now.state === "notRequired") fail({ kind: "conflict", detail: `the project's approval mode (${mode}) does not require an approval for ${tool.name}`, reason: "tool_approval_not_required" });
    const binding = bindingHash(tool.operation, endpoint);
    if ((current?.state === "pending" && current.requestedHash === tool.hash && current.requestedBinding === binding) || now.state === "approved") {
      fail({ kind: "conflict", detail: `an approval of ${tool.name}'s current definition is already ${now.state === "approved" ? "granted" : "pending"}`, reason: "tool_approval_pending" });
    }
    const { approval, recorded: grant } = await this.approvals.requestFor(
      ctx,
      {
        subject: {
          resourceType: "tool",
          resourceId: `${server.id}/${tool.name}`,
          projectId: server.projectId,
          change: {
            serverId: server.id,
            server: server.name,
            tool: tool.name,
            hash: tool.hash,
            readOnly: tool.annotations.readOnly,
            // What approvers approve includes where a call goes: the server's endpoint and, for a REST tool, the operation.
            binding,
            endpoint,
            ...(tool.operation ? { operation: { method: tool.operation.method, urlTemplate: tool.operation.urlTemplate } } : {}),
          },
        },
        justification,
        route: { subjectType: "tool", scope: "project", risk: tool.annotations.readOnly ? "standard" : "high" },
      },
      async (approval) => {
        const at = this.clock.now().toISOString();
        const grant: GrantDoc = {
          id: grantId(server.id, tool.name),
          ...partition,
          docType: "toolGrant",
          serverId: server.id,
          server: server.name,
          tool: tool.name,
          state: "pending",
          approvalId: approval.id,
          requestedHash: tool.hash,
          requestedBinding: binding,
          // A suspended or superseded approval keeps its pin until the new one is decided: nothing becomes callable early.
          ...(current?.pinnedHash ? { pinnedHash: current.pinnedHash } : {}),
          ...(current?.pinnedBinding ? { pinnedBinding: current.pinnedBinding } : {}),
          requestedBy: ctx.principal.userId,
          requestedAt: at,
          updatedAt: at,
        };
        await this.write(ctx, grant, current, "tool.approval.request", "aigov.mcp.tool.approval.requested.v1");
        return grant;
      },
    );
    return { grant, approval };
  }

  /** Whether the tool's grant records this request (the approval sweep withdraws a request nobody recorded). */
  async awaits(approval: Approval): Promise<boolean> {
    const change = approval.subject.change as { serverId?: string; tool?: string };
    if (!change.serverId || !change.tool || !approval.subject.projectId) return true; // not one of ours to judge
    const current = await this.read({ tenantId: approval.tenantId, scopeId: approval.subject.projectId }, change.serverId, change.tool);
    return current?.approvalId === approval.id;
  }

  /** The approval engine's verdict (idempotent). Returns the grant when it changed. */
  async settle(approval: Approval, correlationId: string): Promise<GrantDoc | undefined> {
    const change = approval.subject.change as { serverId?: string; tool?: string; hash?: string; binding?: string };
    if (!change.serverId || !change.tool || !change.hash || !approval.subject.projectId) return undefined;
    const partition = { tenantId: approval.tenantId, scopeId: approval.subject.projectId };
    const current = await this.read(partition, change.serverId, change.tool);
    if (!current || current.approvalId !== approval.id) return undefined;
    // Already decided by this approval (a retried settle): what follows the decision runs again.
    if (current.state !== "pending") return current.state === "suspended" ? undefined : current;
    const ctx = systemContext(approval.tenantId, "system:tool-approvals", correlationId);
    const approved = approval.status === "approved";
    const next: GrantDoc = {
      ...unversioned(current),
      state: approved ? "approved" : "rejected",
      ...(approved ? { pinnedHash: change.hash } : {}),
      ...(approved && change.binding ? { pinnedBinding: change.binding } : {}),
      cause: approved ? "approved" : `approval ${approval.status}`,
      updatedAt: this.clock.now().toISOString(),
    };
    await this.write(ctx, next, current, approved ? "tool.approval.grant" : "tool.approval.reject", approved ? "aigov.mcp.tool.approved.v1" : "aigov.mcp.tool.rejected.v1");
    return next;
  }

  /** Withdraws an approved grant (an access review's outcome): idempotent, undefined when there is nothing approved to withdraw. */
  async withdraw(ctx: RequestContext, partition: Partition, serverId: string, tool: string, reason: string): Promise<GrantDoc | undefined> {
    const current = await this.read(partition, serverId, tool);
    if (!current || current.state !== "approved") return undefined;
    const next: GrantDoc = { ...unversioned(current), state: "withdrawn", cause: reason, updatedAt: this.clock.now().toISOString() };
    await this.write(ctx, next, current, "tool.approval.withdraw", "aigov.mcp.tool.withdrawn.v1", { cause: reason });
    return next;
  }

  /**
   * Approvals of this server pinned to another definition or binding than the tool's now are suspended
   * (every discovery checks all of them). `before` is the previous snapshot's tools: an approval made
   * before bindings were pinned is suspended when the operation changed between the two, and one pinned
   * without its endpoint (no pin, or an older one) when the previous snapshot was listed from another
   * source (`beforeSource`): that is the only record of where it was approved. Approvals that hold but
   * carry no pin, or an older one, are pinned to the binding now.
   */
  async suspendChanged(ctx: RequestContext, server: ServerDoc, tools: StoredTool[], before: StoredTool[] = [], beforeSource?: string): Promise<string[]> {
    const partition = { tenantId: server.tenantId, scopeId: server.scopeId };
    const now = new Map(tools.map((t) => [t.name, t]));
    const was = new Map(before.map((t) => [t.name, t]));
    const suspended: string[] = [];
    const endpoint = endpointOf(server.source);
    for (const current of await this.all(partition)) {
      const tool = now.get(current.tool);
      if (current.serverId !== server.id || current.state !== "approved" || tool === undefined) continue;
      const binding = bindingHash(tool.operation, endpoint);
      const moved = beforeSource !== undefined && beforeSource !== sourceKey(server.source);
      const rebound =
        (current.pinnedBinding === undefined && was.has(current.tool) && legacyBindingHash(was.get(current.tool)!.operation) !== legacyBindingHash(tool.operation)) ||
        (!isCurrentPin(current.pinnedBinding) && moved);
      if (grantHolds(current, tool, endpoint) && !rebound) {
        // An approval made before bindings (or endpoints) were pinned gets the binding it holds for now (once), so a later re-point suspends it.
        if (!isCurrentPin(current.pinnedBinding)) {
          const pinned: GrantDoc = { ...unversioned(current), pinnedBinding: binding, updatedAt: this.clock.now().toISOString() };
          await this.write(ctx, pinned, current, "tool.approval.pin", "aigov.mcp.tool.approval.pinned.v1", { pinnedBinding: binding });
        }
        continue;
      }
      const cause = current.pinnedHash !== tool.hash ? "definition_changed" : "binding_changed";
      const next: GrantDoc = { ...unversioned(current), state: "suspended", cause, updatedAt: this.clock.now().toISOString() };
      await this.write(ctx, next, current, "tool.approval.suspend", "aigov.mcp.tool.suspended.v1", {
        cause,
        pinnedHash: current.pinnedHash,
        currentHash: tool.hash,
        ...(cause === "binding_changed" ? { ...(current.pinnedBinding ? { pinnedBinding: current.pinnedBinding } : {}), currentBinding: binding } : {}),
      });
      suspended.push(current.tool);
    }
    return suspended;
  }

  /**
   * A deleted server's approvals go with it (a server registered again under its name starts over), each
   * removal audited and evented like any other change of an approval. A grant changed meanwhile (an approval
   * settled) is read again; one already gone is done.
   */
  async forgetServer(ctx: RequestContext, partition: Partition, serverId: string): Promise<void> {
    for (const listed of await this.all(partition)) {
      if (listed.serverId !== serverId) continue;
      let current: (GrantDoc & { _etag?: string }) | undefined = listed;
      for (let attempt = 0; current && attempt < 3; attempt++) {
        const removed: boolean = await this.remove(ctx, current).then(
          () => true,
          (err: unknown) => (err instanceof AppError && (err.error.kind === "preconditionFailed" || err.error.kind === "notFound") ? false : Promise.reject(err)),
        );
        current = removed ? undefined : await this.read(partition, serverId, listed.tool);
      }
    }
  }

  private async remove(ctx: RequestContext, current: GrantDoc & { _etag?: string }) {
    const resource = `${serverPath(current.scopeId, current.serverId)}/tools/${encodeURIComponent(current.tool)}/approval`;
    const view = { server: current.server, serverId: current.serverId, tool: current.tool, state: current.state, approvalId: current.approvalId, ...(current.pinnedHash ? { pinnedHash: current.pinnedHash } : {}) };
    await this.changes.commit({
      partition: { tenantId: current.tenantId, scopeId: current.scopeId },
      ctx,
      action: "tool.approval.remove",
      resource,
      before: view,
      ops: [{ kind: "delete", id: current.id, ...(current._etag ? { ifMatch: current._etag } : {}) }],
      event: { type: "aigov.mcp.tool.approval.removed.v1", subject: `/tenants/${current.tenantId}${resource}`, data: { ...view, projectId: current.scopeId, cause: "server_deleted" } },
    });
  }

  private async write(ctx: RequestContext, next: GrantDoc, current: (GrantDoc & { _etag?: string }) | undefined, action: string, event: string, extra: object = {}) {
    const resource = `${serverPath(next.scopeId, next.serverId)}/tools/${encodeURIComponent(next.tool)}/approval`;
    const view = { server: next.server, serverId: next.serverId, tool: next.tool, state: next.state, approvalId: next.approvalId, requestedHash: next.requestedHash, ...(next.pinnedHash ? { pinnedHash: next.pinnedHash } : {}) };
    await this.changes.commit({
      partition: { tenantId: next.tenantId, scopeId: next.scopeId },
      ctx,
      action,
      resource,
      ...(current ? { before: { state: current.state, pinnedHash: current.pinnedHash } } : {}),
      after: view,
      ops: [current ? { kind: "replace", doc: next, ...(current._etag ? { ifMatch: current._etag } : {}) } : { kind: "create", doc: next }],
      event: { type: event, subject: `/tenants/${next.tenantId}${resource}`, data: { ...view, projectId: next.scopeId, ...extra } },
    });
  }
}
