/**
 * Usage as the API shows it: reports over a time range from the rollups (series, totals, groups),
 * budget burn with a forecast, and the latest use of keys, models, tools and agents.
 */
import type { Clock } from "../../ports/clock.js";
import { TENANT_SCOPE, type Partition, type Store, type StoredDoc } from "../../ports/store.js";
import { periodEnd, periodStart, type QuotaPeriod } from "../../util/periods.js";
import type { RequestContext } from "../common.js";
import { AppError, fail } from "../errors.js";
import { holdsAny } from "../kernel/roles.js";
import { everyDoc } from "../paging.js";
import type { ProjectService } from "../projects/service.js";
import { BUCKET_LENGTH, BUCKET_MS, bucketStart, RollupDocuments, type Granularity, type Retention } from "./documents.js";
import { ACTIVITY_FIELDS, ACTIVITY_ID, activityMaps, lastRunOf, trackingOf, type ActivityDoc, type ActivityField, type ActivityMaps, type UsageProjectDoc } from "./ingest.js";
import { emptyMetrics, ERROR_CLASSES, mergeInto, percentile, type UsageMetrics } from "./metrics.js";
import type { UsageRow } from "./rollup.js";
import { type UsageQuery, type BudgetStatus, type UsageReport, type UsageSummary } from "./schema.js";

/** May read the whole tenant's usage and cost. */
export const USAGE_READERS = ["TenantAdmin", "Auditor"] as const;

const MAX_BUCKETS: Record<Granularity, number> = { minute: 2 * 1440, hour: 95 * 24, day: 800 };
/** The end of the year 9999: the last instant a four-digit year can write. */
const LAST_INSTANT = Date.parse("9999-12-31T23:59:59.999Z");

interface CostedMetrics {
  m: UsageMetrics;
  cost: Map<string, number>;
}

const emptyCosted = (): CostedMetrics => ({ m: emptyMetrics(), cost: new Map() });
function addRow(c: CostedMetrics, r: UsageRow): void {
  mergeInto(c.m, r.m);
  if (r.d.currency) c.cost.set(r.d.currency, (c.cost.get(r.d.currency) ?? 0) + r.m.cost);
}

export function summarize(c: CostedMetrics): UsageSummary {
  const m = c.m;
  const pct = (h: Record<string, number>) => {
    const out: { p50?: number; p95?: number; p99?: number } = {};
    for (const [k, p] of [["p50", 50], ["p95", 95], ["p99", 99]] as const) {
      const v = percentile(h, p);
      if (v !== undefined) out[k] = v;
    }
    return out;
  };
  return {
    requests: m.requests,
    succeeded: m.succeeded,
    errors: Object.fromEntries(ERROR_CLASSES.map((k) => [k, m.errors[k] ?? 0])) as UsageSummary["errors"],
    circuitOpen: m.circuitOpen,
    tokens: { prompt: m.promptTokens, completion: m.completionTokens, total: m.promptTokens + m.completionTokens },
    cost: [...c.cost].sort(([a], [b]) => a.localeCompare(b)).map(([currency, amount]) => ({ currency, amount: Math.round(amount * 1e9) / 1e9 })),
    unpricedTokens: m.unpricedTokens,
    cache: { lookups: m.cacheLookups, hits: m.cacheHits, ...(m.cacheLookups ? { hitRate: m.cacheHits / m.cacheLookups } : {}) },
    latencyMs: { gateway: pct(m.gatewayMs), backend: pct(m.backendMs) },
    ...(m.lastAt ? { lastAt: m.lastAt } : {}),
  };
}

interface KeyBudgetDoc extends StoredDoc {
  docType: "virtualKey";
  name: string;
  status: string;
  projectId: string;
  limits: { budget?: { amount: number; currency: string; period: QuotaPeriod } };
  shares?: { projectId: string; status: string }[];
}

interface ProjectBudgetDoc extends StoredDoc {
  docType: "project";
  name: string;
  budget?: { amount: number; currency: string; period: QuotaPeriod };
}

export class UsageAnalytics {
  readonly rollups: RollupDocuments;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly projects: ProjectService,
    private readonly sources: () => string[],
    /** How long each level is kept (days): a default granularity is one that still holds the range. */
    private readonly retention: Retention,
  ) {
    this.rollups = new RollupDocuments(store, retention);
  }

  /** `q` is the query as the edge validated it. */
  async projectReport(ctx: RequestContext, projectId: string, q: UsageQuery): Promise<UsageReport> {
    await this.projects.get(ctx, projectId);
    return this.report(ctx.principal.tenantId, [projectId], q);
  }

  async tenantReport(ctx: RequestContext, q: UsageQuery): Promise<UsageReport> {
    if (!holdsAny(ctx.principal.roles, USAGE_READERS)) fail({ kind: "forbidden", detail: "the tenant's usage is for TenantAdmin and Auditor" });
    const ids = new Set<string>();
    const tenant = { tenantId: ctx.principal.tenantId, scopeId: TENANT_SCOPE };
    for await (const p of everyDoc<StoredDoc>(this.store, tenant, { docType: "project" })) ids.add(p.id);
    // And those deleted since: what they spent is still the tenant's.
    for await (const u of everyDoc<UsageProjectDoc>(this.store, tenant, { docType: "usageProject" })) ids.add(u.projectId);
    return this.report(ctx.principal.tenantId, [...ids], q);
  }

  /** When each key, model, tool server, tool, toolbox and agent of a project was last called through the gateway. */
  async activity(tenantId: string, projectId: string): Promise<ActivityMaps | undefined> {
    const d = await this.store.read<ActivityDoc>({ tenantId, scopeId: projectId }, ACTIVITY_ID);
    return d ? activityMaps(d) : undefined;
  }

  /**
   * What the activity covers: up to when (the oldest source's last run) and, per field, since when
   * (the latest source's start of recording it). Undefined before every source has run once.
   */
  async coverage(): Promise<{ through: string; since: Partial<Record<ActivityField, string>> } | undefined> {
    const through = await this.ingestedThrough();
    if (!through) return undefined;
    const since: Partial<Record<ActivityField, string>> = {};
    for (const s of this.sources()) {
      const tracking = (await trackingOf(this.store, s)) ?? {};
      for (const f of ACTIVITY_FIELDS) {
        const at = tracking[f] ?? through;
        if (!since[f] || at > since[f]!) since[f] = at;
      }
    }
    return { through, since };
  }

  /** When ingestion last completed a run (the oldest of the sources' last runs). */
  async ingestedThrough(): Promise<string | undefined> {
    let oldest: string | undefined;
    for (const s of this.sources()) {
      const at = (await lastRunOf(this.store, s))?.startedAt;
      if (!at) return undefined;
      if (!oldest || at < oldest) oldest = at;
    }
    return oldest;
  }

  private async report(tenantId: string, projectIds: string[], q: UsageQuery): Promise<UsageReport> {
    const now = this.clock.now().getTime();
    const to = q.to ? Date.parse(q.to) : now;
    const from = q.from ? Date.parse(q.from) : to - 86_400_000;
    if (!(to > from)) throw new AppError({ kind: "validation", detail: "the range is empty", errors: [{ field: "query.to", message: "must be after from" }], reason: "usage_range_invalid" });
    const span = to - from;
    // By default the finest the span allows whose rollups are still kept from `from` on (minutes go after days).
    const kept = (level: Granularity) => from >= now - this.retention[level] * 86_400_000;
    const g: Granularity = q.granularity ?? (span <= 86_400_000 && kept("minute") ? "minute" : span <= 31 * 86_400_000 && kept("hour") ? "hour" : "day");
    const first = Math.floor(from / BUCKET_MS[g]) * BUCKET_MS[g];
    const last = Math.ceil(to / BUCKET_MS[g]) * BUCKET_MS[g];
    // Past 9999 a date is no longer yyyy-mm-dd (an ISO string turns '+010000-…'): neither the answer's `to` nor a bucket key could say it.
    if (last > LAST_INSTANT) {
      throw new AppError({ kind: "validation", detail: "the range ends past the year 9999", errors: [{ field: "query.to", message: `rounded up to the ${g}, it would end past the year 9999` }], reason: "usage_range_invalid" });
    }
    if ((last - first) / BUCKET_MS[g] > MAX_BUCKETS[g]) {
      throw new AppError({
        kind: "validation",
        detail: `a ${g} series covers at most ${MAX_BUCKETS[g]} buckets`,
        errors: [{ field: "query.granularity", message: `choose a coarser granularity or a shorter range (at most ${MAX_BUCKETS[g]} ${g}s)` }],
        reason: "usage_range_too_large",
      });
    }
    const key = (ms: number) => new Date(ms).toISOString().slice(0, BUCKET_LENGTH[g]);
    const series = new Map<string, CostedMetrics>();
    const groups = new Map<string, { dims: Record<string, string>; c: CostedMetrics }>();
    const totals = emptyCosted();
    for (const projectId of projectIds) {
      // Straight from the documents (every source, every part): merging per bucket first would merge every row twice.
      for await (const doc of this.rollups.list({ tenantId, scopeId: projectId }, g, key(first), key(last))) {
        const bucket = doc.bucket;
        for (const r of doc.rows) {
          if ((q.keyId && r.d.keyId !== q.keyId) || (q.kind && r.d.kind !== q.kind) || (q.resource && r.d.resource !== q.resource)) continue;
          addRow(totals, r);
          let s = series.get(bucket);
          if (!s) series.set(bucket, (s = emptyCosted()));
          addRow(s, r);
          if (q.groupBy?.length) {
            const all: Record<string, string> = { project: projectId, key: r.d.keyId, kind: r.d.kind, resource: r.d.resource, tool: r.d.tool, backend: r.d.backend, operation: r.d.operation };
            const dims = Object.fromEntries(q.groupBy.map((k) => [k, all[k]!]));
            const gk = JSON.stringify(dims);
            let gr = groups.get(gk);
            if (!gr) groups.set(gk, (gr = { dims, c: emptyCosted() }));
            addRow(gr.c, r);
          }
        }
      }
    }
    const through = await this.ingestedThrough();
    const name: Record<string, string> = { project: "projectId", key: "keyId" };
    return {
      from: new Date(first).toISOString(),
      to: new Date(last).toISOString(),
      granularity: g,
      totals: summarize(totals),
      series: [...series]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([bucket, c]) => ({ bucket: new Date(bucketStart(bucket)).toISOString(), ...summarize(c) })),
      groups: [...groups.values()]
        .sort((a, b) => b.c.m.requests - a.c.m.requests)
        .map((gr) => ({ ...Object.fromEntries(Object.entries(gr.dims).map(([k, v]) => [name[k] ?? k, v])), summary: summarize(gr.c) })),
      ...(through ? { ingestedThrough: through } : {}),
    };
  }

  /** Budget burn of a project and of its keys that have budgets, this period. */
  async budgets(ctx: RequestContext, projectId: string): Promise<{ items: BudgetStatus[]; ingestedThrough?: string }> {
    await this.projects.get(ctx, projectId);
    const items = await this.budgetStatus(ctx.principal.tenantId, projectId);
    const through = await this.ingestedThrough();
    return { items, ...(through ? { ingestedThrough: through } : {}) };
  }

  /**
   * Budgets of a project (its own, its keys'), this period — and, for each of `also` (times of usage just
   * ingested) that falls in an earlier period, that period as it ended: a threshold crossed by requests at
   * a period's end that a run reads after the period ended is still that period's.
   */
  async budgetStatus(tenantId: string, projectId: string, also: number[] = []): Promise<BudgetStatus[]> {
    const now = this.clock.now().getTime();
    const out: BudgetStatus[] = [];
    const periods = (period: QuotaPeriod) => {
      const current = periodStart(now, period);
      const starts = new Set([current]);
      for (const at of also) if (at < current) starts.add(periodStart(at, period));
      return [...starts].sort((a, b) => a - b);
    };
    const project = await this.store.read<ProjectBudgetDoc>({ tenantId, scopeId: TENANT_SCOPE }, projectId);
    if (project?.docType === "project" && project.budget) {
      for (const start of periods(project.budget.period)) {
        out.push(await this.status({ kind: "project", id: projectId, name: project.name }, project.budget, start, now, [{ tenantId, scopeId: projectId }], undefined));
      }
    }
    for await (const k of everyDoc<KeyBudgetDoc>(this.store, { tenantId, scopeId: projectId }, { docType: "virtualKey" })) {
      const budget = k.limits?.budget;
      if (!budget || k.status === "revoked" || k.status === "expired") continue;
      // A shared key spends one budget in every project it is shared with; a share revoked during the period spent there until then.
      // A project shared with, revoked and shared with again is one partition (its spend counted once).
      const sharedWith = new Set((k.shares ?? []).filter((s) => s.status === "active" || s.status === "revoked").map((s) => s.projectId));
      const partitions: Partition[] = [{ tenantId, scopeId: projectId }, ...[...sharedWith].filter((id) => id !== projectId).map((id) => ({ tenantId, scopeId: id }))];
      for (const start of periods(budget.period)) out.push(await this.status({ kind: "key", id: k.id, name: k.name }, budget, start, now, partitions, k.id));
    }
    return out;
  }

  /** A budget's burn in the period beginning at `start`, as of now (a period that has ended: as it ended). */
  private async status(subject: BudgetStatus["subject"], budget: { amount: number; currency: string; period: QuotaPeriod }, start: number, current: number, partitions: Partition[], keyId: string | undefined): Promise<BudgetStatus> {
    const end = periodEnd(start, budget.period);
    const now = Math.min(current, end - 1);
    let spent = 0;
    const count = (rows: Iterable<UsageRow>) => {
      for (const r of rows) if ((!keyId || r.d.keyId === keyId) && r.d.currency === budget.currency) spent += r.m.cost;
    };
    const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const hour = (ms: number) => new Date(ms).toISOString().slice(0, 13);
    for (const p of partitions) {
      if (budget.period === "Hourly") {
        for (const set of (await this.rollups.rowsByBucket(p, "hour", hour(start), hour(end))).values()) count(set.list());
        continue;
      }
      // Whole days from their day rollups, today from its hours.
      const today = Math.floor(now / 86_400_000) * 86_400_000;
      for (const set of (await this.rollups.rowsByBucket(p, "day", day(start), day(Math.min(today, end)))).values()) count(set.list());
      if (today < end) for (const set of (await this.rollups.rowsByBucket(p, "hour", hour(today), hour(Math.min(end, today + 86_400_000)))).values()) count(set.list());
    }
    spent = Math.round(spent * 1e9) / 1e9;
    const elapsed = Math.max(60_000, now - start);
    const rate = spent / elapsed;
    const exhaustedMs = rate > 0 ? start + budget.amount / rate : undefined;
    return {
      subject,
      amount: budget.amount,
      currency: budget.currency,
      period: budget.period,
      periodStart: new Date(start).toISOString(),
      periodEnd: new Date(end).toISOString(),
      spent,
      percent: Math.round((spent / budget.amount) * 10_000) / 100,
      forecast: {
        atPeriodEnd: Math.round(rate * (end - start) * 1e6) / 1e6,
        ...(exhaustedMs !== undefined && exhaustedMs < end ? { exhaustedAt: new Date(Math.max(exhaustedMs, start)).toISOString() } : {}),
      },
    };
  }
}

