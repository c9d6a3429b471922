/**
 * What an access review can review: one adapter per kind over the service that owns the access. Each
 * lists the standing access of a project with the activity that recommends keeping or removing it, and
 * removes one on behalf of the campaign (idempotently: a retried removal finds it "alreadyGone").
 */
import { sameUser } from "../users.js";
import type { Store, StoredDoc } from "../../ports/store.js";
import type { RequestContext } from "../common.js";
import type { Exemption } from "../exemptions/schema.js";
import type { KeyDoc } from "../keys/documents.js";
import type { ActivityField, ActivityMaps } from "../usage/ingest.js";
import type { ReviewKind } from "./schema.js";

/** One piece of standing access, as a campaign snapshots it. */
export interface Reviewee {
  targetId: string;
  label: string;
  /** Whose access it is: never their own reviewer. */
  holder?: string;
  /** Others with a stake in keeping it (an exemption's requester and renewers, parties at its approval): not its reviewers either. */
  parties?: string[];
  /** When the access began. */
  since: string;
  /** Last use through the gateway (from the usage rollups); absent: not used since usage is recorded. */
  lastActivityAt?: string;
}

export type RemoveResult = "removed" | "alreadyGone";

/** Who has a stake in one piece of access: whose it is, and who asked for it. */
export type Stakes = Pick<Reviewee, "holder" | "parties">;

export interface ReviewTarget {
  /** Every piece of this kind of access in the project now. */
  list(tenantId: string, projectId: string): Promise<Reviewee[]>;
  /**
   * Access held at the tenant itself, for tenant-wide campaigns (items under the project id `_tenant`,
   * reviewed by the fallback reviewers when the stage's are project owners); `projectIds` are the tenant's
   * projects, whose activity is its activity.
   */
  listTenant?(tenantId: string, projectIds: readonly string[]): Promise<Reviewee[]>;
  /**
   * Removes one (ctx: the campaign's system context). Idempotent. Only the grant that was reviewed, the
   * one that began at `since`: one granted again since (a role assigned anew, a key shared anew, a tool
   * approved anew) was never before a reviewer and stays ("alreadyGone": what was reviewed is gone).
   */
  remove(ctx: RequestContext, projectId: string, targetId: string, reason: string, since: string): Promise<RemoveResult>;
  /**
   * Who has a stake in it now (undefined: gone, or nobody but the snapshot's). A campaign runs for weeks:
   * a key passes to another owner with its agent, an exemption is renewed by someone else — a reviewer
   * who became its holder or a party since the snapshot must not decide it all the same.
   */
  stakes?(tenantId: string, projectId: string, targetId: string): Promise<Stakes | undefined>;
}

export type ReviewTargets = Partial<Record<ReviewKind, ReviewTarget>>;

const DAY_MS = 86_400_000;
type Recommendation = { recommendation: "remove" | "keep" | "none"; recommendationReason: string };

/** What the usage data covers for a kind's activity: recorded since `since`, ingested up to `through`. */
export interface Coverage {
  since: string;
  through: string;
}

/**
 * The activity fields each kind's recommendation reads (role assignments add the audit log, which is
 * always there); activity is known since the latest of their starts.
 */
export const ACTIVITY_OF: Record<ReviewKind, readonly ActivityField[]> = { keys: ["keys"], roleAssignments: ["keys"], keyShares: ["keys"], toolApprovals: ["toolCall", "toolboxCall"], exemptions: ["keys"] };

/**
 * The activity recommendation (evaluated once, when the campaign starts): access unused for
 * `inactiveDays` is recommended for removal; access newer than the window, or without usage data
 * covering the whole window to judge by, gets none (like Entra's reviews, which leave users newer than
 * the window alone): "never seen" only means "unused" where the data reaches back that far.
 */
export function recommend(r: Reviewee, now: number, inactiveDays: number, coverage: Coverage | undefined): Recommendation {
  const windowStart = now - inactiveDays * DAY_MS;
  const day = (iso: string) => iso.slice(0, 10);
  if (!coverage) return { recommendation: "none", recommendationReason: "no gateway usage has been ingested yet" };
  if (Date.parse(coverage.through) < windowStart) return { recommendation: "none", recommendationReason: `gateway usage is ingested only up to ${day(coverage.through)}, before the ${inactiveDays}-day look-back window` };
  if (Date.parse(coverage.since) > windowStart && !(r.lastActivityAt && Date.parse(r.lastActivityAt) >= windowStart)) {
    return { recommendation: "none", recommendationReason: `gateway usage is recorded only since ${day(coverage.since)}, within the ${inactiveDays}-day look-back window` };
  }
  if (Date.parse(r.since) > windowStart) return { recommendation: "none", recommendationReason: `granted ${day(r.since)}, within the ${inactiveDays}-day look-back window` };
  if (r.lastActivityAt && Date.parse(r.lastActivityAt) >= windowStart) return { recommendation: "keep", recommendationReason: `used through the gateway on ${day(r.lastActivityAt)}` };
  return {
    recommendation: "remove",
    recommendationReason: r.lastActivityAt ? `last used ${day(r.lastActivityAt)}, more than ${inactiveDays} days ago` : `not used through the gateway in the last ${inactiveDays} days`,
  };
}

/** What the adapters need from the rest of the system (narrow, so the reviews module depends on no pillar). */
export interface TargetDeps {
  store: Store;
  activity(tenantId: string, projectId: string): Promise<ActivityMaps | undefined>;
  keys: {
    inProject(tenantId: string, projectId: string): AsyncIterable<KeyDoc>;
    read(tenantId: string, projectId: string, id: string): Promise<KeyDoc | undefined>;
    revokeBySystem(ctx: RequestContext, projectId: string, id: string, reason: string): Promise<RemoveResult>;
    endShare(ctx: RequestContext, projectId: string, id: string, targetProjectId: string): Promise<RemoveResult>;
  };
  projects: {
    assignmentsOf(tenantId: string, projectId: string): Promise<{ assignments: { principalId: string; role: string; since: string }[] } | undefined>;
    removeAssignment(ctx: RequestContext, projectId: string, a: { principalId: string; role: string }, since?: string): Promise<RemoveResult>;
  };
  exemptions: {
    openInProject(tenantId: string, projectId: string): Promise<Exemption[]>;
    /** Tenant-scope exemptions in force. */
    inForceAtTenant(tenantId: string): Promise<Exemption[]>;
    read(tenantId: string, id: string): Promise<Pick<Exemption, "owner" | "requester" | "renewals"> | undefined>;
    revokeBySystem(ctx: RequestContext, id: string, reason: string): Promise<RemoveResult>;
  };
  /** The tools pillar, when it is there. */
  tools?: {
    approvedGrants(tenantId: string, projectId: string): Promise<{ serverId: string; server: string; tool: string; approvedAt: string; requestedBy: string }[]>;
    withdrawApproval(ctx: RequestContext, projectId: string, serverId: string, tool: string, reason: string): Promise<RemoveResult>;
    /** Last calls that reached each tool, by `<server>/<tool>`, toolboxes' included. */
    toolCalls(tenantId: string, projectId: string): Promise<Record<string, string>>;
  };
}

/** Who asked for an exemption or its renewals: parties at its approval (approver_is_party), so not its reviewers. */
const exemptionParties = (e: Pick<Exemption, "requester" | "renewals">): string[] => [e.requester, ...e.renewals.map((r) => r.requestedBy)];

const LIVE_KEY = new Set(["active", "suspended"]);
const latest = (...values: (string | undefined)[]): string | undefined => values.filter((v): v is string => !!v).sort().at(-1);
/** `a/b` split at the last slash (principal ids and server ids never end in one; roles and tool names hold none). */
const splitLast = (id: string): [string, string] => [id.slice(0, id.lastIndexOf("/")), id.slice(id.lastIndexOf("/") + 1)];
const SHARE_SEP = ">";

async function liveKeys(deps: TargetDeps, tenantId: string, projectId: string): Promise<KeyDoc[]> {
  const out: KeyDoc[] = [];
  for await (const k of deps.keys.inProject(tenantId, projectId)) if (LIVE_KEY.has(k.status)) out.push(k);
  return out;
}

/** The principal's last audited action in the project (changes only: reads are not audited). */
async function lastAuditedAction(store: Store, tenantId: string, projectId: string, principalId: string): Promise<string | undefined> {
  const page = await store.queryPage<StoredDoc & { at: string }>(
    { tenantId, scopeId: projectId },
    { docType: "audit", filters: [{ field: "actor", op: "=", value: principalId }], orderBy: { field: "at", direction: "DESC" }, maxPageSize: 1 },
  );
  return page.items[0]?.at;
}

/** The five kinds: virtual keys, project role assignments, key shares, tool approvals, exemptions in force. */
export function reviewTargets(deps: TargetDeps): ReviewTargets {
  const targets: ReviewTargets = {
    keys: {
      async list(tenantId, projectId) {
        const activity = await deps.activity(tenantId, projectId);
        return (await liveKeys(deps, tenantId, projectId)).map((k) => ({
          targetId: k.id,
          label: `key '${k.name}'`,
          holder: k.owner,
          since: k.createdAt,
          ...(activity?.keys[k.id] ? { lastActivityAt: activity.keys[k.id] } : {}),
        }));
      },
      remove: (ctx, projectId, id, reason) => deps.keys.revokeBySystem(ctx, projectId, id, reason),
      stakes: async (tenantId, projectId, id) => {
        const owner = (await deps.keys.read(tenantId, projectId, id))?.owner;
        return owner ? { holder: owner } : undefined;
      },
    },
    roleAssignments: {
      // Activity of a person in a project: their keys' last use at the gateway and their last audited change there.
      async list(tenantId, projectId) {
        const found = await deps.projects.assignmentsOf(tenantId, projectId);
        if (!found) return [];
        const activity = await deps.activity(tenantId, projectId);
        const keys = await liveKeys(deps, tenantId, projectId);
        const out: Reviewee[] = [];
        for (const a of found.assignments) {
          const keyUse = latest(...keys.filter((k) => sameUser(k.owner, a.principalId)).map((k) => activity?.keys[k.id]));
          const last = latest(keyUse, await lastAuditedAction(deps.store, tenantId, projectId, a.principalId));
          out.push({ targetId: `${a.principalId}/${a.role}`, label: `${a.role} '${a.principalId}'`, holder: a.principalId, since: a.since, ...(last ? { lastActivityAt: last } : {}) });
        }
        return out;
      },
      remove: (ctx, projectId, id, _reason, since) => {
        const [principalId, role] = splitLast(id);
        return deps.projects.removeAssignment(ctx, projectId, { principalId, role }, since);
      },
    },
    keyShares: {
      // A share's activity is the key's use through the target project's APIs (usage is attributed to the API's project).
      async list(tenantId, projectId) {
        const out: Reviewee[] = [];
        // One read of each target project's activity, however many keys are shared into it.
        const activityIn = new Map<string, Promise<ActivityMaps | undefined>>();
        const activityOf = (target: string) => activityIn.get(target) ?? activityIn.set(target, deps.activity(tenantId, target)).get(target)!;
        for (const k of await liveKeys(deps, tenantId, projectId)) {
          for (const s of k.shares ?? []) {
            if (s.status !== "active") continue;
            const used = (await activityOf(s.projectId))?.keys[k.id];
            out.push({ targetId: `${k.id}${SHARE_SEP}${s.projectId}`, label: `key '${k.name}' shared with ${s.projectId}`, holder: k.owner, since: s.decidedAt ?? s.requestedAt, ...(used ? { lastActivityAt: used } : {}) });
          }
        }
        return out;
      },
      async remove(ctx, projectId, id, _reason, since) {
        const [keyId, target] = id.split(SHARE_SEP) as [string, string];
        // A share ended and made again since the review is another share: it stays. (One that is gone is
        // ended again all the same: idempotent, and it finishes what an earlier apply left undone.)
        const key = await deps.keys.read(ctx.principal.tenantId, projectId, keyId);
        const share = key && LIVE_KEY.has(key.status) ? key.shares?.find((s) => s.projectId === target && s.status === "active") : undefined;
        if (share && (share.decidedAt ?? share.requestedAt) !== since) return "alreadyGone";
        return deps.keys.endShare(ctx, projectId, keyId, target);
      },
      stakes: async (tenantId, projectId, id) => {
        const owner = (await deps.keys.read(tenantId, projectId, id.split(SHARE_SEP)[0]!))?.owner;
        return owner ? { holder: owner } : undefined;
      },
    },
    exemptions: {
      // An exemption's activity is its subject's: a key exemption's key, otherwise any key of the project.
      async list(tenantId, projectId) {
        const activity = await deps.activity(tenantId, projectId);
        const anyKey = latest(...Object.values(activity?.keys ?? {}));
        return (await deps.exemptions.openInProject(tenantId, projectId)).map((e) => {
          const used = e.scope.level === "key" ? activity?.keys[e.scope.keyId] : anyKey;
          return { targetId: e.id, label: `exemption from ${e.control} (${e.scope.level})`, holder: e.owner, parties: exemptionParties(e), since: e.activatedAt ?? e.createdAt, ...(used ? { lastActivityAt: used } : {}) };
        });
      },
      // A tenant-scope exemption applies in every project: its activity is any key's, in any of them.
      async listTenant(tenantId, projectIds) {
        const open = await deps.exemptions.inForceAtTenant(tenantId);
        if (!open.length) return [];
        let used: string | undefined;
        for (const projectId of projectIds) used = latest(used, ...Object.values((await deps.activity(tenantId, projectId))?.keys ?? {}));
        return open.map((e) => ({ targetId: e.id, label: `exemption from ${e.control} (tenant)`, holder: e.owner, parties: exemptionParties(e), since: e.activatedAt ?? e.createdAt, ...(used ? { lastActivityAt: used } : {}) }));
      },
      remove: (ctx, _projectId, id, reason) => deps.exemptions.revokeBySystem(ctx, id, reason),
      stakes: async (tenantId, _projectId, id) => {
        const e = await deps.exemptions.read(tenantId, id);
        return e && { holder: e.owner, parties: exemptionParties(e) };
      },
    },
  };
  const tools = deps.tools;
  if (tools) {
    targets.toolApprovals = {
      async list(tenantId, projectId) {
        const calls = await tools.toolCalls(tenantId, projectId);
        return (await tools.approvedGrants(tenantId, projectId)).map((g) => {
          const used = calls[`${g.server}/${g.tool}`];
          return { targetId: `${g.serverId}/${g.tool}`, label: `tool ${g.server}/${g.tool}`, holder: g.requestedBy, since: g.approvedAt, ...(used ? { lastActivityAt: used } : {}) };
        });
      },
      async remove(ctx, projectId, id, reason, since) {
        const [serverId, tool] = [id.slice(0, id.indexOf("/")), id.slice(id.indexOf("/") + 1)];
        // An approval withdrawn and given again since the review is another approval: it stays. (One that is
        // gone is withdrawn again all the same: idempotent, and it asks again for the publish an earlier apply's failed.)
        const grant = (await tools.approvedGrants(ctx.principal.tenantId, projectId)).find((g) => g.serverId === serverId && g.tool === tool);
        if (grant && grant.approvedAt !== since) return "alreadyGone";
        return tools.withdrawApproval(ctx, projectId, serverId, tool, reason);
      },
      stakes: async (tenantId, projectId, id) => {
        const grant = (await tools.approvedGrants(tenantId, projectId)).find((g) => `${g.serverId}/${g.tool}` === id);
        return grant && { holder: grant.requestedBy };
      },
    };
  }
  return targets;
}
