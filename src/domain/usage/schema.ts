import { z } from "zod";
import { QUOTA_PERIODS } from "../../policy/settings.js";
import { ERROR_CLASSES } from "./metrics.js";
import { USAGE_KINDS } from "./rollup.js";

export const USAGE_GROUPS = ["project", "key", "kind", "resource", "tool", "backend", "operation"] as const;

const GroupBy = z
  .string()
  .max(200)
  .transform((s, ctx) => {
    const parts = s.split(",").map((p) => p.trim()).filter(Boolean);
    for (const p of parts) {
      if (!(USAGE_GROUPS as readonly string[]).includes(p)) ctx.addIssue({ code: "custom", message: `unknown group '${p}'; one of ${USAGE_GROUPS.join(", ")}` });
    }
    return [...new Set(parts)] as (typeof USAGE_GROUPS)[number][];
  })
  .meta({ description: `Comma-separated dimensions to group by: ${USAGE_GROUPS.join(", ")} (resource: the model, tool server, toolbox or agent)` });

export const UsageQuery = z
  .strictObject({
    from: z.iso.datetime().optional().meta({ description: "Start of the range (inclusive), rounded down to the granularity; 24 hours before `to` when absent" }),
    to: z.iso.datetime().optional().meta({ description: "End of the range (exclusive), rounded up to the granularity; now when absent" }),
    granularity: z.enum(["minute", "hour", "day"]).optional().meta({ description: "Series buckets; by default the finest the range allows (minute ≤ 1 day, hour ≤ 31 days, day beyond) that is still kept from `from` on (USAGE_RETENTION_*_DAYS)" }),
    groupBy: GroupBy.optional(),
    keyId: z.string().regex(/^key_[0-9a-z]{20}$/).optional(),
    kind: z.enum(USAGE_KINDS).optional(),
    resource: z.string().min(1).max(256).optional().meta({ description: "A model name, tool server, toolbox or agent id" }),
  })
  .meta({ id: "UsageQuery" });
export type UsageQuery = z.output<typeof UsageQuery>;

const Percentiles = z.object({ p50: z.number().optional(), p95: z.number().optional(), p99: z.number().optional() });

export const UsageSummary = z
  .object({
    requests: z.int(),
    succeeded: z.int(),
    errors: z.object(Object.fromEntries(ERROR_CLASSES.map((c) => [c, z.int()])) as Record<(typeof ERROR_CLASSES)[number], z.ZodInt>).meta({
      description: "auth: no or a wrong key (401); scope: refused by governance (403: model, tool, agent, data class not allowed); limit: a rate, token or budget limit (429, a spent quota's 403); contentSafety: blocked by content safety; request: other client errors; backend: the backend failed or could not be reached; gateway: other server errors",
    }),
    circuitOpen: z.int().meta({ description: "Requests refused because a backend's circuit breaker was open" }),
    tokens: z.object({ prompt: z.int(), completion: z.int(), total: z.int() }),
    cost: z.array(z.object({ currency: z.string(), amount: z.number() })).meta({ description: "At the model's price when each request was made (a later price change does not change it)" }),
    unpricedTokens: z.int().meta({ description: "Tokens of models without a price" }),
    cache: z.object({ lookups: z.int(), hits: z.int(), hitRate: z.number().optional() }),
    latencyMs: z.object({ gateway: Percentiles, backend: Percentiles }).meta({ description: "Percentiles within 10% (log-scale histograms)" }),
    lastAt: z.iso.datetime().optional(),
  })
  .meta({ id: "UsageSummary" });
export type UsageSummary = z.output<typeof UsageSummary>;

export const UsageReport = z
  .object({
    from: z.iso.datetime(),
    to: z.iso.datetime(),
    granularity: z.enum(["minute", "hour", "day"]),
    totals: UsageSummary,
    series: z.array(UsageSummary.extend({ bucket: z.iso.datetime() })),
    groups: z.array(
      z.object({
        projectId: z.string().optional(),
        keyId: z.string().optional(),
        kind: z.string().optional(),
        resource: z.string().optional(),
        tool: z.string().optional(),
        backend: z.string().optional(),
        operation: z.string().optional(),
        summary: UsageSummary,
      }),
    ),
    ingestedThrough: z.iso.datetime().optional().meta({ description: "When usage ingestion last ran: requests after it are not counted yet" }),
  })
  .meta({ id: "UsageReport" });
export type UsageReport = z.output<typeof UsageReport>;

export const BudgetStatus = z
  .object({
    subject: z.object({ kind: z.enum(["key", "project"]), id: z.string(), name: z.string() }),
    amount: z.number(),
    currency: z.string(),
    period: z.enum(QUOTA_PERIODS),
    periodStart: z.iso.datetime(),
    periodEnd: z.iso.datetime(),
    spent: z.number().meta({ description: "Cost so far this period, in the budget's currency (usage in other currencies is not counted)" }),
    percent: z.number(),
    forecast: z.object({
      atPeriodEnd: z.number().meta({ description: "Spend at the period's end if the rate so far continues" }),
      exhaustedAt: z.iso.datetime().optional().meta({ description: "When the budget runs out at that rate, if before the period ends" }),
    }),
  })
  .meta({ id: "BudgetStatus" });
export type BudgetStatus = z.output<typeof BudgetStatus>;

export const BudgetList = z.object({ items: z.array(BudgetStatus), ingestedThrough: z.iso.datetime().optional() }).meta({ id: "BudgetList" });
export type BudgetList = z.output<typeof BudgetList>;

// ---------------------------------------------------------------------------------------------
// Adoption: the funnel from a project's creation to its first governed request.

export const FUNNEL_STEPS = ["firstModel", "firstPublish", "firstKey", "firstRequest"] as const;
export type FunnelStep = (typeof FUNNEL_STEPS)[number];

const Share = z.number().nullable().meta({ description: "Between 0 and 1; null when there is nothing to divide by" });
const Quantiles = z.strictObject({ p50: z.number().nullable(), p95: z.number().nullable() });

export const AdoptionReport = z
  .strictObject({
    projects: z.array(
      z.strictObject({
        projectId: z.string(),
        name: z.string(),
        environment: z.string(),
        createdAt: z.iso.datetime(),
        reached: z.partialRecord(z.enum(FUNNEL_STEPS), z.iso.datetime()).meta({ description: "When the project reached each step of the funnel" }),
        sinceCreationMs: z.partialRecord(z.enum(FUNNEL_STEPS), z.number()).meta({ description: "Time from the project's creation to each step reached" }),
        gatewayEnabled: z.boolean().meta({ description: "A revision was published since the project was created (its API is at the gateway)" }),
        keysInUse: z.boolean().meta({ description: "One of its keys made a request in the last 30 days" }),
      }),
    ),
    funnel: z.record(z.enum(FUNNEL_STEPS), z.strictObject({ reached: z.int(), share: Share, sinceCreationMs: Quantiles })),
    summary: z.strictObject({
      projects: z.int(),
      gatewayEnabled: z.strictObject({ count: z.int(), share: Share }),
      keysInUse: z.strictObject({ count: z.int(), share: Share, withinDays: z.int() }),
    }),
    approvals: z.strictObject({
      decided: z.int(),
      timeToDecisionMs: Quantiles,
      decidedWithin24hShare: Share,
      objective: z.number().meta({ description: "The share of approvals to decide within 24 hours (0.95)" }),
      meetsObjective: z.boolean().nullable(),
    }),
  })
  .meta({ id: "AdoptionReport" });
export type AdoptionReport = z.output<typeof AdoptionReport>;
