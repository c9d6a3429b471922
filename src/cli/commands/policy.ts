/** `aigov policy show|preview|explain|path|diff|publish|revisions|revision|rollback|drift`: what the gateway gets. */
import { CommanderError } from "commander";
import { type AigovClient } from "../../client/index.js";
import { type CliKit } from "../kit.js";

const REVISION_COLUMNS = ["number", "id", "kind", "status", "createdBy", "createdAt", "publishedAt", "reason"];
const EXPLAIN_COLUMNS = ["ref", "path", "control", "scope"];

const counts = (c: { added: number; modified: number; removed: number }) => `+${c.added} ~${c.modified} -${c.removed}`;

/** Explain entries as table rows (control and scope as JSON). */
const explainRows = (explain: { control: unknown; scope: unknown }[]) =>
  explain.map((e) => ({ ...e, control: JSON.stringify(e.control), scope: JSON.stringify(e.scope) }));

/**
 * Polls a revision until the gateway holds it (or its publish failed). Bounded like the other waits: a
 * revision can stay pending for long (a system publish waits for the sweep; retries while the gateway is down).
 */
async function waitForRevision(c: AigovClient, id: string, timeoutSeconds: number) {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const r = await c.policy.revision(id);
    if (r.status !== "pending") return r;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`revision ${r.number} (${id}) still pending after ${timeoutSeconds} s; \`aigov policy revision ${id}\` tells when the gateway holds it`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, left)));
  }
}

/** A --timeout value in seconds (a usage error otherwise). */
function parseTimeout(value: string): number {
  const seconds = Number(value);
  if (!(seconds > 0)) throw new CommanderError(2, "aigov.timeout", `--timeout expects a number of seconds, got '${value}'`);
  return seconds;
}

const TIMEOUT_HELP = "with --wait: give up (exit 1) after this many seconds";

type Revision = { number: number; id: string; status: string; counts: { added: number; modified: number; removed: number } };

export function policyCommands({ program, client, print, render, out, json, readJson }: CliKit): void {
  const showPreview = (preview: Awaited<ReturnType<AigovClient["policy"]["show"]>>) => {
    if (json()) return print(preview);
    for (const a of preview.artifacts) {
      out(`# ${a.ref}`);
      out(typeof a.xml === "string" ? a.xml : JSON.stringify(a, null, 2));
    }
    render("table", preview.sizes, ["ref", "bytes"]);
    if (preview.explain) render("table", explainRows(preview.explain), EXPLAIN_COLUMNS);
  };
  const policy = program.command("policy").description("see what the gateway gets: compile, diff, publish, roll back, check drift");
  policy
    .command("show <projectId>")
    .description("the compiled APIM artifacts for a project (policy XML printed as is)")
    .option("--explain", "also list which setting produced each element")
    .action(async (projectId: string, o: { explain?: boolean }) => {
      const preview = await client().policy.show(projectId, o.explain ?? false);
      showPreview(preview);
    });

  policy
    .command("preview <projectId>")
    .description("compile drafted settings without saving them: --file holds {settings?, tenantSettings?} as the settings APIs take them")
    .requiredOption("--file <path>", "the draft (JSON)")
    .option("--explain", "also list which setting produced each element")
    .action(async (projectId: string, o: { file: string; explain?: boolean }) => {
      const draft = readJson(o.file) as Record<string, unknown>;
      const preview = await client().policy.preview(projectId, { ...draft, explain: o.explain ?? false } as never);
      showPreview(preview);
    });

  policy
    .command("explain <projectId>")
    .description("which setting (control and scope) produced each element of the project's compiled policy")
    .action(async (projectId: string) => {
      const preview = await client().policy.show(projectId, true);
      if (json()) return print(preview.explain);
      render("table", explainRows(preview.explain ?? []), EXPLAIN_COLUMNS);
    });

  policy
    .command("path <projectId>")
    .description("the project's API path at the gateway (https://<gateway>/<path>/v1/chat/completions, …; locally http://127.0.0.1:7072/<path>)")
    .action(async (projectId: string) => {
      const api = (await client().policy.show(projectId)).artifacts.find((a) => a.kind === "api");
      if (!api || typeof api.path !== "string") throw new Error(`project ${projectId} has no API`);
      out(api.path);
    });

  const showPublish = (r: { changed: boolean; revision?: Revision }) => {
    if (json()) return print(r);
    if (!r.changed) {
      if (!r.revision) return out("nothing to publish");
      // The compiled state is already a revision: held by the gateway, or pending and on its way there.
      return out(
        r.revision.status === "published"
          ? `nothing to publish: the gateway holds revision ${r.revision.number} (${r.revision.id})`
          : `nothing new to publish: revision ${r.revision.number} (${r.revision.id}) has it and is ${r.revision.status}`,
      );
    }
    out(`revision ${r.revision!.number} (${r.revision!.id}) ${r.revision!.status}: ${counts(r.revision!.counts)} artifacts`);
  };
  policy
    .command("diff")
    .description("what a publish would change now (unified diff: published → compiled); --revision: what a revision changed")
    .option("--revision <id>")
    .action(async (o: { revision?: string }) => {
      const c = client();
      const d = o.revision ? await c.policy.revision(o.revision, true) : await c.policy.diff();
      if (json()) return print(d);
      out(`${counts(d.counts)} artifacts`);
      if (d.diff) out(d.diff);
    });
  policy
    .command("publish")
    .description("compile the tenant and publish it as a new revision (--wait: until the gateway holds it)")
    .option("--reason <text>")
    .option("--wait", "wait until the revision is published or failed")
    .option("--timeout <seconds>", TIMEOUT_HELP, parseTimeout, 600)
    .action(async (o: { reason?: string; wait?: boolean; timeout: number }) => {
      const c = client();
      let r = await c.policy.publish(o.reason ? { reason: o.reason } : {});
      // --wait also waits for a pending revision that already holds what would be published (e.g. one automation made).
      if (o.wait && r.revision && (r.changed || r.revision.status === "pending")) r = { ...r, revision: await waitForRevision(c, r.revision.id, o.timeout) };
      showPublish(r);
    });
  policy
    .command("revisions")
    .description("list publish revisions, newest first")
    .option("--max-page-size <n>")
    .action(async (o: { maxPageSize?: string }) => {
      print((await client().policy.revisions(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {})).items, REVISION_COLUMNS);
    });
  policy
    .command("revision <revisionId>")
    .description("one revision: who, when, what changed (--diff: the unified diff)")
    .option("--diff")
    .action(async (revisionId: string, o: { diff?: boolean }) => {
      const r = await client().policy.revision(revisionId, o.diff ?? false);
      if (json()) return print(r);
      print(r, REVISION_COLUMNS.concat("artifactCount"));
      render("table", r.changes, ["ref", "change"]);
      if (r.diff) out(r.diff);
    });
  policy
    .command("rollback <revisionId>")
    .description("republish an earlier published revision, as a new revision (--wait: until the gateway holds it)")
    .option("--reason <text>")
    .option("--wait", "wait until the revision is published or failed")
    .option("--timeout <seconds>", TIMEOUT_HELP, parseTimeout, 600)
    .action(async (revisionId: string, o: { reason?: string; wait?: boolean; timeout: number }) => {
      const c = client();
      let r = await c.policy.rollback(revisionId, o.reason ? { reason: o.reason } : {});
      if (o.wait && r.changed && r.revision) r = { ...r, revision: await waitForRevision(c, r.revision.id, o.timeout) };
      showPublish(r);
    });
  policy
    .command("drift")
    .description("differences between the gateway and the last published revision (--check: read the gateway back now)")
    .option("--check", "run a drift check now (TenantAdmin)")
    .action(async (o: { check?: boolean }) => {
      const c = client();
      const report = o.check ? await c.policy.checkDrift() : await c.policy.drift();
      if (json()) return print(report);
      const revision = report.revisionNumber ? ` (revision ${report.revisionNumber})` : "";
      const checked = report.checkedAt ? `, checked ${report.checkedAt}` : "";
      out(`${report.status}${revision}${checked}: ${report.items.length} of ${report.checkedArtifacts} artifacts differ`);
      for (const item of report.items) out(`${item.state} ${item.ref}\n${item.diff ?? ""}`);
    });
}
