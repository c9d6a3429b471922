/** `aigov exemptions request|list|show|renew|revoke|review` and `exemptions policy show|set`. */
import { CommanderError, Option } from "commander";
import { type CliKit, type Row } from "../kit.js";

// gateway: whether the gateway configuration applies a key exemption in force ("NOT applied: why" when it does not).
const EXEMPTION_COLUMNS = ["id", "status", "control", "scope", "category", "owner", "expiresAt", "gateway"];

type ExemptionScope = { level: string; projectId?: string; modelId?: string; keyId?: string };

/** An exemption as a table row: the scope as "tenant" or "<project>[/<model or key>]". */
const exemptionRow = (e: { scope: ExemptionScope; gateway?: { applied: boolean; why?: string } } & Record<string, unknown>) => ({
  ...e,
  gateway: e.gateway === undefined ? undefined : e.gateway.applied ? "applied" : `NOT applied${e.gateway.why ? `: ${e.gateway.why}` : ""}`,
  scope: e.scope.level === "tenant" ? "tenant" : [e.scope.projectId, e.scope.modelId ?? e.scope.keyId].filter(Boolean).join("/"),
});

const collect = (value: string, previous: string[] = []) => [...previous, value];

const parseScope = (value: string) => {
  // tenant | project:<prj> | model:<prj>/<mdl> | key:<prj>/<key>
  const [level, rest = ""] = value.split(":");
  const [projectId, inner] = rest.split("/");
  if (level === "tenant") return { level };
  if (level === "project") return { level, projectId };
  if (level === "model") return { level, projectId, modelId: inner };
  if (level === "key") return { level, projectId, keyId: inner };
  throw new CommanderError(2, "aigov.scope", "--scope expects tenant, project:<prj>, model:<prj>/<mdl> or key:<prj>/<key>");
};

const parseThresholds = (value: string) => Object.fromEntries(value.split(",").map((p) => {
  const [k, v] = p.split("=");
  if (!k || v === undefined || !/^\d$/.test(v)) throw new CommanderError(2, "aigov.thresholds", "--thresholds expects e.g. Hate=6,Violence=6");
  return [k, Number(v)];
}));

/** Request flags → ExemptionSpec fields. */
const REQUEST_FIELDS = [
  ["control", "control"],
  ["scope", "scope"],
  ["category", "category"],
  ["owner", "owner"],
  ["compensating", "compensatingControls"],
  ["evidence", "evidence"],
  ["expiresAt", "expiresAt"],
] as const;

type ListOptions = { status?: "active"; control?: string; project?: string; owner?: string; maxPageSize?: string; continuationToken?: string };
type RenewOptions = {
  file?: string;
  expiresAt?: string;
  days?: string;
  evidence?: string[];
  justification?: string;
  compensating?: string[];
  ifMatch?: string;
};

const inDays = (days: unknown) => new Date(Date.now() + Number(days) * 24 * 3600 * 1000).toISOString();

export function exemptionCommands({ program, client, print, render, out, err, json, readJson }: CliKit): void {
  const exemptions = program.command("exemptions").description("request, follow, renew, revoke and review policy exemptions");
  exemptions
    .command("request")
    .description("request an exemption (a JSON ExemptionSpec with --file; flags override its fields)")
    .option("--file <path>", "the ExemptionSpec as JSON")
    .option("--control <id>", "control id, e.g. contentSafety or tokens.perMinute")
    .option("--scope <scope>", "tenant | project:<prj> | model:<prj>/<mdl> | key:<prj>/<key>", parseScope)
    .option("--off", "relaxation: switch the control off")
    .option("--limit <n>", "relaxation: raise the limit to n")
    .option("--thresholds <list>", "relaxation: content-safety thresholds, e.g. Hate=6", parseThresholds)
    .addOption(new Option("--category <category>").choices(["waiver", "mitigated"]))
    .option("--owner <user>")
    .option("--blocker <text>", "reason: what the control blocks")
    .option("--affects <text>", "reason: how the control gets in the way")
    .option("--end-state <text>", "reason: what ends the need for the exemption")
    .option("--compensating <text>", "a compensating control (repeatable)", collect)
    .option("--evidence <url>", "an evidence link (repeatable)", collect)
    .option("--expires-at <iso>", "expiry, e.g. 2026-07-01T00:00:00Z")
    .option("--days <n>", "expiry in n days from now")
    .action(async (o: Record<string, unknown>) => {
      const body = o.file ? (readJson(String(o.file)) as Record<string, unknown>) : {};
      for (const [opt, field] of REQUEST_FIELDS) if (o[opt] !== undefined) body[field] = o[opt];
      if (o.days !== undefined) body.expiresAt = inDays(o.days);
      if (o.off) body.relaxation = { kind: "off" };
      if (o.limit !== undefined) body.relaxation = { kind: "limit", value: Number(o.limit) };
      if (o.thresholds !== undefined) body.relaxation = { kind: "thresholds", categories: o.thresholds };
      if (o.blocker !== undefined || o.affects !== undefined || o.endState !== undefined) {
        body.reason = {
          ...(body.reason as object | undefined),
          ...(o.blocker !== undefined ? { deliveryBlocker: o.blocker } : {}),
          ...(o.affects !== undefined ? { affectedControl: o.affects } : {}),
          ...(o.endState !== undefined ? { expectedEndState: o.endState } : {}),
        };
      }
      const e = await client().exemptions.request(body as never);
      print(json() ? e : exemptionRow(e), EXEMPTION_COLUMNS.concat("approvalId", "etag"));
    });
  exemptions
    .command("list")
    .description("list exemptions, newest first")
    .addOption(new Option("--status <status>").choices(["requested", "approved", "active", "expiring", "expired", "rejected", "revoked"]))
    .option("--control <id>")
    .option("--project <projectId>")
    .option("--owner <user>")
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (o: ListOptions) => {
      const page = await client().exemptions.list({
        ...(o.status ? { status: o.status } : {}),
        ...(o.control ? { control: o.control as never } : {}),
        ...(o.project ? { projectId: o.project } : {}),
        ...(o.owner ? { owner: o.owner } : {}),
        ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}),
        ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}),
      });
      if (page.continuationToken) err(`more: --continuation-token ${page.continuationToken}`);
      print(json() ? page.items : page.items.map(exemptionRow), EXEMPTION_COLUMNS);
    });
  exemptions.command("show <exemptionId>").description("show an exemption, its renewals and timeline").action(async (id: string) => {
    const e = await client().exemptions.get(id);
    if (json()) return print(e);
    render("table", exemptionRow(e), EXEMPTION_COLUMNS.concat("approvalId", "etag"));
    if (e.renewals.length) render("table", e.renewals, ["number", "status", "approvalId", "requestedAt", "expiresAt"]);
    render("table", e.timeline, ["at", "type", "actor", "detail"]);
  });
  exemptions
    .command("renew <exemptionId>")
    .description("request a renewal: a new approval with updated evidence")
    .option("--file <path>", "the renewal as JSON (flags override)")
    .option("--expires-at <iso>")
    .option("--days <n>", "new expiry in n days from now")
    .option("--evidence <url>", "updated evidence (repeatable)", collect)
    .option("--justification <text>")
    .option("--compensating <text>", "replaces the compensating controls (repeatable)", collect)
    .option("--if-match <etag>")
    .action(async (id: string, o: RenewOptions) => {
      const c = client();
      const body = o.file ? (readJson(o.file) as Record<string, unknown>) : {};
      if (o.expiresAt) body.expiresAt = o.expiresAt;
      if (o.days) body.expiresAt = inDays(o.days);
      if (o.evidence) body.evidence = o.evidence;
      if (o.justification) body.justification = o.justification;
      if (o.compensating) body.compensatingControls = o.compensating;
      const e = await c.exemptions.renew(id, body as never, o.ifMatch ?? (await c.exemptions.get(id)).etag);
      print(json() ? e : exemptionRow(e), EXEMPTION_COLUMNS);
    });
  exemptions
    .command("revoke <exemptionId>")
    .description("revoke an exemption now")
    .requiredOption("--reason <text>")
    .option("--if-match <etag>")
    .action(async (id: string, o: { reason: string; ifMatch?: string }) => {
      const c = client();
      const e = await c.exemptions.revoke(id, { reason: o.reason }, o.ifMatch ?? (await c.exemptions.get(id)).etag);
      print(json() ? e : exemptionRow(e), EXEMPTION_COLUMNS);
    });
  exemptions
    .command("review")
    .description("the portfolio: counts, ageing, repeat renewals, clusters, missing compensating controls, breadth")
    .option("--cluster-min-projects <n>", "a cluster is one control exempted in at least n projects", "3")
    .option("--repeat-min-renewals <n>", "list exemptions renewed at least n times", "2")
    .action(async (o: { clusterMinProjects: string; repeatMinRenewals: string }) => {
      const r = await client().exemptions.review({
        clusterMinProjects: Number(o.clusterMinProjects),
        repeatMinRenewals: Number(o.repeatMinRenewals),
      });
      if (json()) return print(r);
      const section = (title: string, rows: Row[], columns: string[]) => {
        out(title);
        if (rows.length) render("table", rows, columns);
        else out("  (none)");
      };
      const byStatus = Object.entries(r.byStatus).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`).join(", ");
      out(`Exemptions: ${r.total} in total, ${r.open} open (${byStatus})`);
      section("By control", r.byControl, ["control", "count"]);
      section("By project", r.byProject, ["projectId", "count"]);
      section("By owner", r.byOwner, ["owner", "count"]);
      const { buckets, oldestDays, averageDays, expiringWithin7Days } = r.ageing;
      section(
        "Ageing (open, since requested)",
        [{ ...buckets, oldestDays, averageDays, expiringWithin7Days }],
        ["0-7d", "8-30d", "31-90d", "91d+", "oldestDays", "averageDays", "expiringWithin7Days"],
      );
      const clusters = r.clusters.map((c) => ({ ...c, projects: c.projects.join(", ") }));
      section(`Clusters (one control in >= ${o.clusterMinProjects} projects)`, clusters, ["control", "count", "projects"]);
      section(`Repeat renewals (>= ${o.repeatMinRenewals})`, r.repeatRenewals.map((x) => exemptionRow(x)), ["id", "control", "scope", "renewals"]);
      section("Without compensating controls", r.withoutCompensatingControls, ["id", "control", "category"]);
      section("Breadth of scope (open)", [r.breadth], ["tenant", "project", "model", "key"]);
    });
  const exemptionPolicy = exemptions.command("policy").description("the tenant's exemption maxima (days per category and control)");
  exemptionPolicy
    .command("show")
    .description("print the exemption policy")
    .action(async () => out(JSON.stringify(await client().exemptions.policy(), null, 2)));
  exemptionPolicy
    .command("set")
    .description("replace the exemption policy from a JSON file ({\"maxDays\": {...}, \"controls\": {...}, \"highRisk\": {...}}; what is left out takes its default)")
    .requiredOption("--file <path>")
    .option("--if-match <etag>")
    .action(async (o: { file: string; ifMatch?: string }) => {
      const c = client();
      const etag = o.ifMatch ?? (await c.exemptions.policy()).etag;
      out(JSON.stringify(await c.exemptions.putPolicy(readJson(o.file) as never, etag), null, 2));
    });
}
