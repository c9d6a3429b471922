/** `aigov projects create|list|get|update|delete|gates|promote|extend`. */
import { type Command, CommanderError, Option } from "commander";
import { ENVIRONMENTS, LIFECYCLE_STAGES } from "../../domain/projects/schema.js";
import { type CliKit, parseBudget } from "../kit.js";

const PROJECT_COLUMNS = ["id", "name", "environment", "owner", "lifecycleStage", "updatedAt"];

const collectTag = (value: string, previous: Record<string, string> = {}) => {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new CommanderError(2, "aigov.tag", `--tag expects key=value, got '${value}'`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
};

const parsePillars = (value: string) => {
  const out: Record<string, boolean> = {};
  for (const part of value.split(",")) {
    const [k, v] = part.split("=");
    if (!k || (v !== "on" && v !== "off")) throw new CommanderError(2, "aigov.pillars", "--pillars expects e.g. models=on,tools=off");
    out[k] = v === "on";
  }
  return out;
};

/** A project budget, or 'none' (kept as is: specFrom turns it into null, which an update clears). */
const budgetOrNone = (value: string) => (value === "none" ? value : parseBudget(value));

/** The options of a project's fields, shared by create and update. */
const specOptions = (cmd: Command, create: boolean) =>
  cmd
    .option("--file <path>", "read the JSON body from a file, or stdin with - (flags override its fields)")
    .option("--name <name>")
    .option("--description <text>")
    .addOption(new Option("--environment <env>").choices([...ENVIRONMENTS]))
    .option("--owner <user>")
    .option("--cost-center <code>")
    .option("--tag <key=value>", "repeatable", collectTag)
    .option("--review-date <yyyy-mm-dd>", create ? "required for sandbox projects" : "")
    .addOption(new Option("--lifecycle-stage <stage>").choices([...LIFECYCLE_STAGES]))
    .option("--pillars <list>", "e.g. models=on,tools=off,agents=on", parsePillars)
    .option("--budget <amount CUR/period>", "what the project may spend, e.g. '5000 USD/Monthly' (alerts at 80% and 100%)" + (create ? "" : "; 'none' clears it"), budgetOrNone);

/** The body from --file, with the flags that are set written over it. */
const specFrom = (o: Record<string, unknown>, readJson: CliKit["readJson"]) => {
  const base = o.file ? (readJson(String(o.file)) as Record<string, unknown>) : {};
  const map: Record<string, string> = {
    name: "name", description: "description", environment: "environment", owner: "owner", costCenter: "costCenter",
    tag: "tags", reviewDate: "reviewDate", lifecycleStage: "lifecycleStage", pillars: "pillars", budget: "budget",
  };
  for (const [opt, field] of Object.entries(map)) if (o[opt] !== undefined) base[field] = o[opt];
  if (base.budget === "none") base.budget = null;
  return base;
};

export function projectCommands({ program, client, print, err, out, json, readJson }: CliKit): void {
  const projects = program.command("projects").description("manage projects");

  specOptions(projects.command("create").description("create a project"), true).action(async (o: Record<string, unknown>) => {
    print(await client().projects.create(specFrom(o, readJson) as never), PROJECT_COLUMNS.concat("etag"));
  });
  projects
    .command("list")
    .description("list projects")
    .option("--max-page-size <n>", "page size (1-100)")
    .option("--continuation-token <token>")
    .option("--all", "follow continuation tokens to the end")
    .action(async (o: { maxPageSize?: string; continuationToken?: string; all?: boolean }) => {
      const c = client();
      const items = [];
      let token = o.continuationToken;
      do {
        const page = await c.projects.list({
          ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}),
          ...(token ? { continuationToken: token } : {}),
        });
        items.push(...page.items);
        token = page.continuationToken;
        if (!o.all && token) err(`more: --continuation-token ${token}`);
      } while (o.all && token);
      print(items, PROJECT_COLUMNS);
    });
  projects.command("get <projectId>").description("show a project (and the time-bound gates of its environment it fails now)").action(async (id: string) => {
    const p = await client().projects.get(id);
    print(p, PROJECT_COLUMNS.concat("etag"));
    // Gate drift: the lifecycle sweep's record of the gates the project fails now (absent while it passes them).
    if (json() || !p.gateDrift) return;
    out(`gate drift: out of its ${p.environment} gates since ${p.gateDrift.since} (aigov projects gates ${id} says why now)`);
    print(p.gateDrift.gates, ["gate", "since", "detail"]);
  });
  specOptions(projects.command("update <projectId>").description("update a project (reads the current ETag unless --if-match)"), false)
    .option("--if-match <etag>", "the ETag you last read")
    .action(async (id: string, o: Record<string, unknown>) => {
      const c = client();
      const etag = (o.ifMatch as string | undefined) ?? (await c.projects.get(id)).etag;
      print(await c.projects.update(id, specFrom(o, readJson) as never, etag), PROJECT_COLUMNS.concat("etag"));
    });
  projects
    .command("delete <projectId>")
    .description("delete a project")
    .option("--if-match <etag>", "the ETag you last read")
    .action(async (id: string, o: { ifMatch?: string }) => {
      const c = client();
      await c.projects.delete(id, o.ifMatch ?? (await c.projects.get(id)).etag);
      err(`deleted ${id}`);
    });
  projects
    .command("gates <projectId>")
    .description("the checklist a promotion to --to must pass, evaluated now")
    .addOption(new Option("--to <environment>").choices(["dev", "test", "prod"]).default("prod"))
    .action(async (id: string, o: { to: "prod" }) => {
      const r = await client().projects.gates(id, o.to);
      if (json()) return print(r);
      out(`${r.from} → ${r.to}: ${r.passed ? "all gates pass" : "some gates fail"}`);
      print(r.gates.map((g) => ({ gate: g.gate, passed: g.passed ? "yes" : "NO", detail: g.detail })), ["gate", "passed", "detail"]);
    });
  projects
    .command("promote <projectId>")
    .description("ask to move the project to a later environment (gates checked, then an approval)")
    .addOption(new Option("--to <environment>").choices(["dev", "test", "prod"]).makeOptionMandatory())
    .requiredOption("--justification <text>")
    .action(async (id: string, o: { to: "prod"; justification: string }) => {
      print(await client().projects.promote(id, { to: o.to, justification: o.justification }), PROJECT_COLUMNS.concat("promotion"));
    });
  projects
    .command("extend <projectId>")
    .description("ask for a later review date of a sandbox (unlocks an expired one once approved)")
    .requiredOption("--review-date <yyyy-mm-dd>")
    .requiredOption("--justification <text>")
    .action(async (id: string, o: { reviewDate: string; justification: string }) => {
      print(await client().projects.extend(id, { reviewDate: o.reviewDate, justification: o.justification }), PROJECT_COLUMNS.concat("extension"));
    });
}
