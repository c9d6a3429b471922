/** `aigov usage …`: what went through the gateway (show, tenant) and budget burn (budgets). */
import { type Command } from "commander";
import { type CliKit, type Row } from "../kit.js";

type QueryOptions = { from?: string; to?: string; since?: string; granularity?: "minute" | "hour" | "day"; groupBy?: string; key?: string; kind?: string; resource?: string; series?: boolean };

const queryOptions = (cmd: Command) =>
  cmd
    .option("--from <iso>", "start of the range (default: --since ago)")
    .option("--to <iso>", "end of the range (default: now)")
    .option("--since <duration>", "range ending now, e.g. 24h, 7d, 90m", "24h")
    .option("--granularity <g>", "minute, hour or day (default: the finest the range allows)")
    .option("--group-by <dims>", "comma-separated: project, key, kind, resource, tool, backend, operation")
    .option("--key <keyId>")
    .option("--kind <kind>", "model, tool, toolbox or agent")
    .option("--resource <name>", "a model name, tool server, toolbox or agent id")
    .option("--series", "print the time series instead of the totals and groups");

function since(value: string): number {
  const m = /^(\d+)([mhd])$/.exec(value);
  if (!m) throw new Error(`--since expects e.g. 90m, 24h or 7d, got '${value}'`);
  return Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "m" | "h" | "d"];
}

function query(o: QueryOptions) {
  return {
    from: o.from ?? new Date(Date.now() - since(o.since ?? "24h")).toISOString(),
    ...(o.to ? { to: o.to } : {}),
    ...(o.granularity ? { granularity: o.granularity } : {}),
    ...(o.groupBy ? { groupBy: o.groupBy } : {}),
    ...(o.key ? { keyId: o.key } : {}),
    ...(o.kind ? { kind: o.kind as "model" } : {}),
    ...(o.resource ? { resource: o.resource } : {}),
  };
}

type Summary = {
  requests: number;
  succeeded: number;
  errors: Record<string, number>;
  tokens: { total: number };
  cost: { currency: string; amount: number }[];
  latencyMs: { gateway: { p50?: number; p99?: number } };
  cache: { hitRate?: number };
  lastAt?: string;
};

/** One line of a table: the counts that matter at a glance. */
const flat = (s: Summary): Row => ({
  requests: s.requests,
  succeeded: s.succeeded,
  errors: Object.entries(s.errors).filter(([, n]) => n > 0).map(([k, n]) => `${k}:${n}`).join(" "),
  tokens: s.tokens.total,
  cost: s.cost.map((c) => `${c.amount} ${c.currency}`).join(", "),
  p50: s.latencyMs.gateway.p50,
  p99: s.latencyMs.gateway.p99,
  cacheHitRate: s.cache.hitRate,
  lastAt: s.lastAt,
});
const COLUMNS = ["requests", "succeeded", "errors", "tokens", "cost", "p50", "p99", "cacheHitRate", "lastAt"];

export function usageCommands({ program, client, print, out, json }: CliKit): void {
  const usage = program.command("usage").description("usage and cost through the gateway, and budget burn");
  type Report = { from: string; to: string; granularity: string; totals: Summary; series: (Summary & { bucket: string })[]; groups: (Record<string, unknown> & { summary: Summary })[]; ingestedThrough?: string };
  const show = (r: Report, o: QueryOptions) => {
    if (json()) return print(r);
    if (o.series) return print(r.series.map((s) => ({ bucket: s.bucket, ...flat(s) })), ["bucket", ...COLUMNS]);
    out(`${r.from} → ${r.to} (${r.granularity}); ingested through ${r.ingestedThrough ?? "never"}`);
    print([{ scope: "total", ...flat(r.totals) }], ["scope", ...COLUMNS]);
    if (r.groups.length) {
      const dims = [...new Set(r.groups.flatMap((g) => Object.keys(g).filter((k) => k !== "summary")))];
      out("");
      print(r.groups.map(({ summary, ...dim }) => ({ ...dim, ...flat(summary) })), [...dims, ...COLUMNS]);
    }
  };
  queryOptions(usage.command("show <projectId>").description("a project's usage: requests, errors by class, tokens, cost, latency, cache")).action(async (projectId: string, o: QueryOptions) => {
    show((await client().usage.project(projectId, query(o))) as Report, o);
  });
  queryOptions(usage.command("tenant").description("the whole tenant's usage (tenant admins and auditors); --group-by project to compare projects")).action(async (o: QueryOptions) => {
    show((await client().usage.tenant(query(o))) as Report, o);
  });
  usage
    .command("budgets <projectId>")
    .description("budget burn of a project and of its keys this period, with a forecast")
    .action(async (projectId: string) => {
      const r = await client().usage.budgets(projectId);
      if (json()) return print(r);
      print(
        r.items.map((b) => ({ subject: `${b.subject.kind} ${b.subject.name} (${b.subject.id})`, budget: `${b.amount} ${b.currency}/${b.period}`, spent: b.spent, percent: b.percent, atPeriodEnd: b.forecast.atPeriodEnd, exhaustedAt: b.forecast.exhaustedAt })),
        ["subject", "budget", "spent", "percent", "atPeriodEnd", "exhaustedAt"],
      );
    });
  usage
    .command("adoption")
    .description("the funnel from project creation to first governed request, gateway and key use, approval turnaround (tenant admins and auditors)")
    .action(async () => {
      const r = await client().usage.adoption();
      if (json()) return print(r);
      const days = (ms: number | null | undefined) => (ms === null || ms === undefined ? "" : `${(ms / 86_400_000).toFixed(1)} d`);
      const pct = (x: number | null) => (x === null ? "" : `${Math.round(x * 100)}%`);
      print(
        Object.entries(r.funnel).map(([step, f]) => ({ step, reached: `${f.reached}/${r.summary.projects}`, share: pct(f.share), p50: days(f.sinceCreationMs.p50), p95: days(f.sinceCreationMs.p95) })),
        ["step", "reached", "share", "p50", "p95"],
      );
      out("");
      out(`gateway enabled: ${r.summary.gatewayEnabled.count}/${r.summary.projects} (${pct(r.summary.gatewayEnabled.share)}); keys in use (${r.summary.keysInUse.withinDays} d): ${r.summary.keysInUse.count}/${r.summary.projects} (${pct(r.summary.keysInUse.share)})`);
      const a = r.approvals;
      out(`approvals: ${a.decided} decided, p50 ${days(a.timeToDecisionMs.p50)}, p95 ${days(a.timeToDecisionMs.p95)}, within 24 h ${pct(a.decidedWithin24hShare)} (objective ${pct(a.objective)}${a.meetsObjective === null ? "" : a.meetsObjective ? ", met" : ", missed"})`);
    });
}
