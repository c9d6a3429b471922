/** `aigov reviews create|list|show|items|decide|apply|stop`: access review campaigns. */
import { CommanderError, Option } from "commander";
import { REVIEW_KINDS } from "../../domain/reviews/schema.js";
import { type CliKit } from "../kit.js";

const REVIEW_COLUMNS = ["id", "name", "kind", "scope", "status", "stage", "items", "startAt", "completedAt"];
const ITEM_COLUMNS = ["id", "projectId", "target", "holder", "lastActivityAt", "recommendation", "decision", "outcome", "applied"];

type Review = { id: string; name: string; kind: string; scope: { level: string; projectId?: string }; status: string; currentStage: number; stages: unknown[]; itemCount: number; startAt: string; completedAt?: string; warnings: string[] };
type Item = { id: string; projectId: string; target: { label: string; holder?: string }; lastActivityAt?: string; recommendation: string; decisions: { stage: number; decision: string; by: string }[]; outcome?: string; applied?: { result: string } };

const reviewRow = (r: Review) => ({
  ...r,
  scope: r.scope.level === "tenant" ? "tenant" : r.scope.projectId,
  stage: `${r.currentStage + 1}/${r.stages.length}`,
  items: r.itemCount,
});
const itemRow = (i: Item) => ({
  ...i,
  target: i.target.label,
  holder: i.target.holder,
  decision: i.decisions.map((d) => `${d.stage + 1}:${d.decision} by ${d.by}`).join(", "),
  applied: i.applied?.result,
});

const collect = (value: string, previous: string[] = []) => [...previous, value];

type CreateOptions = {
  name: string;
  kind: string;
  project?: string;
  reviewer?: string[];
  projectOwners?: boolean;
  fallback?: string[];
  stages?: string;
  days?: string;
  inactiveDays?: string;
  autoApply?: boolean;
  default?: string;
  noJustification?: boolean;
  justification?: boolean;
  reminders?: boolean;
  startAt?: string;
  every?: string;
  occurrences?: string;
  file?: string;
};

export function reviewCommands({ program, client, print, render, out, err, json, readJson }: CliKit): void {
  const reviews = program.command("reviews").description("access reviews: campaigns that keep or remove keys, role assignments, shares, tool approvals and exemptions");

  reviews
    .command("create")
    .description("start (or schedule) an access review; stages are alike unless --file gives the whole spec")
    .requiredOption("--name <name>")
    .addOption(new Option("--kind <kind>", "what to review").choices(REVIEW_KINDS).makeOptionMandatory())
    .option("--project <projectId>", "review one project (default: the whole tenant)")
    .option("--reviewer <userId>", "a named reviewer (repeatable); default: each project's owner and ProjectAdmins", collect)
    .option("--fallback <userId>", "a fallback reviewer (repeatable)", collect)
    .option("--stages <n>", "number of stages (1-3)", "1")
    .option("--days <n>", "duration of each stage in days", "14")
    .option("--inactive-days <n>", "unused for this many days → recommended for removal", "30")
    .option("--auto-apply", "apply the outcomes when the campaign ends")
    .addOption(new Option("--default <decision>", "outcome of items nobody decided").choices(["keep", "remove", "recommendation"]).default("keep"))
    .option("--no-justification", "approvals need no justification")
    .option("--no-reminders", "no reminder halfway through a stage")
    .option("--start-at <iso>")
    .addOption(new Option("--every <frequency>", "recurring").choices(["weekly", "monthly", "quarterly", "semiannual", "annual"]))
    .option("--occurrences <n>", "campaigns in all, for a recurring review")
    .option("--file <path>", "the whole AccessReviewSpec as JSON (other flags ignored)")
    .action(async (o: CreateOptions) => {
      const stages = Number(o.stages);
      if (!Number.isInteger(stages) || stages < 1 || stages > 3) throw new CommanderError(2, "aigov.stages", "--stages expects 1, 2 or 3");
      const stage = {
        reviewers: o.reviewer?.length ? { type: "users" as const, users: o.reviewer } : { type: "projectOwners" as const },
        fallbackReviewers: o.fallback ?? [],
        durationDays: Number(o.days),
      };
      const body = o.file
        ? readJson(o.file)
        : {
            name: o.name,
            kind: o.kind,
            scope: o.project ? { level: "project", projectId: o.project } : { level: "tenant" },
            stages: Array.from({ length: stages }, () => stage),
            recommendations: { inactiveDays: Number(o.inactiveDays) },
            justificationRequiredOnApproval: o.justification !== false,
            reminders: o.reminders !== false,
            completion: { autoApply: !!o.autoApply, defaultDecision: o.default },
            ...(o.startAt ? { startAt: o.startAt } : {}),
            ...(o.every ? { recurrence: { frequency: o.every, ...(o.occurrences ? { occurrences: Number(o.occurrences) } : {}) } } : {}),
          };
      const r = (await client().reviews.create(body as never)) as Review;
      if (json()) return print(r);
      render("table", reviewRow(r), REVIEW_COLUMNS);
      for (const w of r.warnings) out(`warning: ${w}`);
    });

  reviews
    .command("list")
    .description("access reviews, newest first (everyone but overseers sees the ones they review)")
    .addOption(new Option("--status <status>").choices(["scheduled", "inProgress", "applying", "completed", "canceled"]))
    .option("--project <projectId>")
    .option("--mine", "only the ones I review now")
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (o: { status?: "completed"; project?: string; mine?: boolean; maxPageSize?: string; continuationToken?: string }) => {
      const page = await client().reviews.list({
        ...(o.status ? { status: o.status } : {}),
        ...(o.project ? { projectId: o.project } : {}),
        ...(o.mine ? { reviewer: "me" as const } : {}),
        ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}),
        ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}),
      });
      if (json()) return print(page);
      print((page.items as Review[]).map(reviewRow), REVIEW_COLUMNS);
      if (page.continuationToken) err(`more: --continuation-token ${page.continuationToken}`);
    });

  reviews
    .command("show <reviewId>")
    .description("a campaign: stages, status and its report once completed")
    .action(async (id: string) => {
      const r = (await client().reviews.get(id)) as Review & { report?: Record<string, unknown> };
      if (json()) return print(r);
      render("table", reviewRow(r), REVIEW_COLUMNS.concat("etag"));
      if (r.report) {
        out("");
        print([r.report], Object.keys(r.report));
      }
      for (const w of r.warnings) out(`warning: ${w}`);
    });

  reviews
    .command("items <reviewId>")
    .description("a campaign's items with recommendations, decisions and outcomes")
    .option("--mine", "only the items I may decide now")
    .addOption(new Option("--recommendation <r>").choices(["remove", "keep", "none"]))
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (id: string, o: { mine?: boolean; recommendation?: "remove"; maxPageSize?: string; continuationToken?: string }) => {
      const page = await client().reviews.items(id, {
        ...(o.mine ? { reviewer: "me" as const } : {}),
        ...(o.recommendation ? { recommendation: o.recommendation } : {}),
        ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}),
        ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}),
      });
      if (json()) return print(page);
      print((page.items as Item[]).map(itemRow), ITEM_COLUMNS);
      if (page.continuationToken) err(`more: --continuation-token ${page.continuationToken}`);
    });

  reviews
    .command("decide <reviewId> <itemId>")
    .description("approve (keep) or deny (remove) an item in the current stage")
    .addOption(new Option("--decision <decision>").choices(["approve", "deny"]).makeOptionMandatory())
    .option("--justification <text>")
    .action(async (id: string, itemId: string, o: { decision: "approve" | "deny"; justification?: string }) => {
      const item = (await client().reviews.decide(id, itemId, { decision: o.decision, ...(o.justification ? { justification: o.justification } : {}) })) as Item;
      if (json()) return print(item);
      render("table", itemRow(item), ITEM_COLUMNS);
    });

  reviews
    .command("apply <reviewId>")
    .description("apply a completed campaign's removals")
    .option("--if-match <etag>")
    .action(async (id: string, o: { ifMatch?: string }) => {
      const c = client();
      const r = (await c.reviews.apply(id, o.ifMatch ?? (await c.reviews.get(id)).etag)) as Review;
      if (json()) return print(r);
      render("table", reviewRow(r), REVIEW_COLUMNS);
    });

  reviews
    .command("stop <reviewId>")
    .description("cancel a scheduled campaign, or complete one in progress now")
    .requiredOption("--reason <text>")
    .option("--if-match <etag>")
    .action(async (id: string, o: { reason: string; ifMatch?: string }) => {
      const c = client();
      const r = (await c.reviews.stop(id, { reason: o.reason }, o.ifMatch ?? (await c.reviews.get(id)).etag)) as Review;
      if (json()) return print(r);
      render("table", reviewRow(r), REVIEW_COLUMNS);
    });
}
