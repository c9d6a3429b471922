import { DAY_MS, type ExemptionDoc } from "./documents.js";
import { IN_FORCE, OPEN, type ExemptionReview, type ExemptionStatus } from "./schema.js";

/** The portfolio of a tenant's exemptions: counts, ageing, repeat renewals, clusters, missing compensating controls, breadth. */
export function portfolio(all: readonly ExemptionDoc[], now: Date, q: { clusterMinProjects: number; repeatMinRenewals: number }): ExemptionReview {
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
