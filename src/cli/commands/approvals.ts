/** `aigov approvals create|list|show|approve|reject|metrics|review` and `approvals routes show|set`. */
import { CommanderError, Option } from "commander";
import { APPROVAL_STATUSES } from "../../domain/approvals/schema.js";
import { type CliKit } from "../kit.js";

const APPROVAL_COLUMNS = ["id", "status", "currentStage", "requester", "createdAt"];

type ListOptions = { status?: "pending"; mine?: boolean; requester?: string; maxPageSize?: string; continuationToken?: string };

export function approvalCommands({ program, client, print, render, out, err, json, readJson }: CliKit): void {
  const approvals = program.command("approvals").description("request, decide and follow approvals");
  approvals
    .command("create")
    .description("request an approval from a JSON spec (subject, justification, optional extra stages); the tenant's route decides who approves")
    .requiredOption("--file <path>", "the ApprovalSpec as JSON")
    .action(async (o: { file: string }) => {
      print(await client().approvals.create(readJson(o.file) as never), APPROVAL_COLUMNS.concat("etag"));
    });
  approvals
    .command("list")
    .description("list approval requests")
    .addOption(new Option("--status <status>").choices([...APPROVAL_STATUSES]))
    .option("--mine", "only those awaiting my decision")
    .option("--requester <user>")
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (o: ListOptions) => {
      const page = await client().approvals.list({
        ...(o.status ? { status: o.status } : {}),
        ...(o.mine ? { approver: "me" as const } : {}),
        ...(o.requester ? { requester: o.requester } : {}),
        ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}),
        ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}),
      });
      if (page.continuationToken) err(`more: --continuation-token ${page.continuationToken}`);
      print(page.items, APPROVAL_COLUMNS);
    });
  approvals.command("show <approvalId>").description("show a request and its timeline").action(async (id: string) => {
    const a = await client().approvals.get(id);
    if (json()) return print(a);
    render("table", a, APPROVAL_COLUMNS.concat("etag"));
    render("table", a.timeline, ["at", "type", "stage", "actor", "detail"]);
  });
  for (const decision of ["approve", "reject"] as const) {
    approvals
      .command(`${decision} <approvalId>`)
      .description(`${decision} the current stage (reads the current ETag unless --if-match)`)
      .requiredOption("--justification <text>")
      .option("--if-match <etag>")
      .action(async (id: string, o: { justification: string; ifMatch?: string }) => {
        const c = client();
        const etag = o.ifMatch ?? (await c.approvals.get(id)).etag;
        print(await c.approvals.decide(id, { decision, justification: o.justification }, etag), APPROVAL_COLUMNS);
      });
  }
  approvals.command("metrics").description("counts, time to decision, share within 24 h").action(async () => print(await client().approvals.metrics()));
  const routes = approvals.command("routes").description("who approves what: the tenant's approval routes (TenantAdmin sets them)");
  routes
    .command("show")
    .description("print the routes, the product defaults, the minimums and any stored route that is skipped (unusable)")
    .action(async () => out(JSON.stringify(await client().approvals.routes(), null, 2)));
  routes
    .command("set")
    .description("replace the routes from a JSON file ({\"routes\": [{\"name\", \"match\", \"stages\"}]})")
    .requiredOption("--file <path>")
    .option("--if-match <etag>")
    .action(async (o: { file: string; ifMatch?: string }) => {
      const c = client();
      const etag = o.ifMatch ?? (await c.approvals.routes()).etag;
      out(JSON.stringify(await c.approvals.putRoutes(readJson(o.file) as never, etag), null, 2));
    });
  approvals
    .command("review <link>")
    .description("open an approver link; with --approve/--reject, submit its form")
    .option("--approve")
    .option("--reject")
    .option("--justification <text>")
    .action(async (link: string, o: { approve?: boolean; reject?: boolean; justification?: string }) => {
      const c = client();
      const decision = o.approve ? "approve" : o.reject ? "reject" : undefined;
      const res = decision
        ? await c.approvals.submitLink(link, decision, o.justification ?? "")
        : await c.approvals.openLink(link);
      out(res.html.replace(/<style>[\s\S]*?<\/style>/, "").replace(/<[^>]+>/g, " ").replace(/[ \t]+/g, " ").replace(/\n\s*\n+/g, "\n").trim());
      if (res.status >= 400) throw new CommanderError(1, "aigov.review", `the link was refused (HTTP ${res.status})`);
    });
}
