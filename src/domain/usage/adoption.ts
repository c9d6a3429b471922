/**
 * Funnel and adoption metrics for the platform team (docs/usage.md, "Adoption"): per project, the time
 * from its creation to its first model, first publish, first key and first governed request; across the
 * tenant, how many projects reached each step, the share with the gateway enabled and with keys in use,
 * and approval turnaround against the 95%-within-24-hours objective.
 */
import type { Clock } from "../../ports/clock.js";
import { nearestRank } from "../../util/nearest-rank.js";
import type { ApprovalMetrics } from "../approvals/schema.js";
import type { RequestContext } from "../common.js";
import { fail } from "../errors.js";
import { holdsAny } from "../kernel/roles.js";
import type { Project } from "../projects/schema.js";
import { USAGE_READERS } from "./analytics.js";
import type { ActivityMaps } from "./ingest.js";
import type { AdoptionReport, FunnelStep } from "./schema.js";

/** Keys used within this many days count as "in use". */
export const IN_USE_DAYS = 30;
/** The product's objective for approvals: this share decided within 24 hours. */
export const APPROVAL_SLA_SHARE = 0.95;
const DAY_MS = 86_400_000;

export interface AdoptionDeps {
  clock: Clock;
  projects(tenantId: string): Promise<Project[]>;
  /** The earliest registration date of the project's models (those still registered). */
  firstModelAt(tenantId: string, projectId: string): Promise<string | undefined>;
  /** When the first revision published at or after `since` went live. */
  firstPublishedSince(tenantId: string, since: string): Promise<string | undefined>;
  /** The earliest creation date of the project's keys (revoked and expired ones included). */
  firstKeyAt(tenantId: string, projectId: string): Promise<string | undefined>;
  activity(tenantId: string, projectId: string): Promise<ActivityMaps | undefined>;
  approvalMetrics(ctx: RequestContext): Promise<ApprovalMetrics>;
}

const STEPS: readonly FunnelStep[] = ["firstModel", "firstPublish", "firstKey", "firstRequest"];

export class Adoption {
  constructor(private readonly deps: AdoptionDeps) {}

  async report(ctx: RequestContext): Promise<AdoptionReport> {
    if (!holdsAny(ctx.principal.roles, USAGE_READERS)) fail({ kind: "forbidden", detail: "adoption metrics require TenantAdmin or Auditor" });
    const tenantId = ctx.principal.tenantId;
    const now = this.deps.clock.now().getTime();
    const projects: AdoptionReport["projects"] = [];
    for (const p of await this.deps.projects(tenantId)) {
      const activity = await this.deps.activity(tenantId, p.id);
      const reached: Partial<Record<FunnelStep, string>> = {};
      const set = (step: FunnelStep, at: string | undefined) => void (at && (reached[step] = at));
      set("firstModel", await this.deps.firstModelAt(tenantId, p.id));
      set("firstPublish", await this.deps.firstPublishedSince(tenantId, p.createdAt));
      set("firstKey", await this.deps.firstKeyAt(tenantId, p.id));
      set("firstRequest", activity?.firstRequestAt);
      const sinceCreation = Object.fromEntries(Object.entries(reached).map(([step, at]) => [step, Math.max(0, Date.parse(at) - Date.parse(p.createdAt))]));
      const lastKeyUse = Object.values(activity?.keys ?? {}).sort().at(-1);
      projects.push({
        projectId: p.id,
        name: p.name,
        environment: p.environment,
        createdAt: p.createdAt,
        reached,
        sinceCreationMs: sinceCreation,
        gatewayEnabled: reached.firstPublish !== undefined,
        keysInUse: lastKeyUse !== undefined && now - Date.parse(lastKeyUse) <= IN_USE_DAYS * DAY_MS,
      });
    }
    const steps = Object.fromEntries(
      STEPS.map((step) => {
        const times = projects.flatMap((p) => (p.sinceCreationMs[step] !== undefined ? [p.sinceCreationMs[step]!] : [])).sort((a, b) => a - b);
        return [step, { reached: times.length, share: share(times.length, projects.length), sinceCreationMs: { p50: nearestRank(times, 0.5), p95: nearestRank(times, 0.95) } }];
      }),
    ) as AdoptionReport["funnel"];
    const approvals = await this.deps.approvalMetrics(ctx);
    return {
      projects,
      funnel: steps,
      summary: {
        projects: projects.length,
        gatewayEnabled: { count: projects.filter((p) => p.gatewayEnabled).length, share: share(projects.filter((p) => p.gatewayEnabled).length, projects.length) },
        keysInUse: { count: projects.filter((p) => p.keysInUse).length, share: share(projects.filter((p) => p.keysInUse).length, projects.length), withinDays: IN_USE_DAYS },
      },
      approvals: {
        decided: approvals.decided,
        timeToDecisionMs: approvals.timeToDecisionMs,
        decidedWithin24hShare: approvals.decidedWithin24hShare,
        objective: APPROVAL_SLA_SHARE,
        meetsObjective: approvals.decidedWithin24hShare === null ? null : approvals.decidedWithin24hShare >= APPROVAL_SLA_SHARE,
      },
    };
  }
}

const share = (n: number, of: number): number | null => (of === 0 ? null : n / of);
