import { readFileSync } from "node:fs";
import Table from "cli-table3";
import { Command, CommanderError, Option } from "commander";
import { operations } from "../api/operations.js";
import { AigovClient, ApiError } from "../client/index.js";
import { ROLES } from "../domain/common.js";
import { ENVIRONMENTS, LIFECYCLE_STAGES } from "../domain/projects/schema.js";
import { DEFAULT_ENDPOINT, profilePath, resolveProfile, saveProfile } from "./profiles.js";

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
}

type Output = "table" | "json";
type Row = Record<string, unknown>;

function render(io: CliIo, output: Output, value: unknown, columns?: string[]): void {
  if (output === "json" || !columns) {
    io.out(JSON.stringify(value, null, 2));
    return;
  }
  const rows: Row[] = Array.isArray(value) ? (value as Row[]) : [value as Row];
  const table = new Table({ head: columns, style: { head: [], border: [] } });
  for (const row of rows) {
    table.push(columns.map((c) => {
      const v = row[c];
      return v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    }));
  }
  io.out(table.toString());
}

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

/** Builds the `aigov` program. Every operation's `cli` verb is implemented here (a test checks it). */
export function buildProgram(io: CliIo): Command {
  const program = new Command("aigov")
    .description("Govern models, tools and agents through Azure API Management")
    .option("-p, --profile <name>", "profile to use (default: the last one logged in)")
    .option("-e, --endpoint <url>", "API endpoint (overrides the profile)")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json"]).default("table"))
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .exitOverride();

  const globals = () => program.opts<{ profile?: string; endpoint?: string; output: Output }>();
  const client = () => {
    const g = globals();
    const profile = resolveProfile(profilePath(io.env), g.profile);
    return new AigovClient({ endpoint: g.endpoint ?? profile.endpoint, token: profile.token, ...(io.fetch ? { fetch: io.fetch } : {}) });
  };
  const print = (value: unknown, columns?: string[]) => render(io, globals().output, value, columns);

  program
    .command("login")
    .description("store a token for the CLI (--dev: mint one from the local dev issuer)")
    .option("--dev", "use the local host's dev token issuer")
    .option("--tenant <id>", "tenant id (dev)")
    .option("--user <id>", "user id (dev)")
    .option("--roles <list>", `comma-separated roles (dev): ${ROLES.join(", ")}`, "")
    .option("--token <jwt>", "an Entra ID access token obtained elsewhere (e.g. az account get-access-token)")
    .option("--name <profile>", "profile name", "default")
    .action(async (o: { dev?: boolean; tenant?: string; user?: string; roles: string; token?: string; name: string }) => {
      const endpoint = globals().endpoint ?? resolveProfile(profilePath(io.env), o.name).endpoint ?? DEFAULT_ENDPOINT;
      let token = o.token;
      if (o.dev) {
        if (!o.tenant || !o.user) throw new CommanderError(2, "aigov.login", "login --dev needs --tenant and --user");
        const roles = o.roles.split(",").map((r) => r.trim()).filter(Boolean);
        token = await new AigovClient({ endpoint, ...(io.fetch ? { fetch: io.fetch } : {}) }).dev.token({ tenant: o.tenant, user: o.user, roles });
      }
      if (!token) throw new CommanderError(2, "aigov.login", "pass --dev or --token");
      saveProfile(profilePath(io.env), o.name, { endpoint, token });
      io.err(`logged in; profile '${o.name}' → ${endpoint}`);
    });

  program.command("health").description("GET /api/health").action(async () => print(await client().health(), ["status", "version"]));
  program.command("openapi").description("print the OpenAPI 3.1 document").action(async () => io.out(JSON.stringify(await client().openApi(), null, 2)));

  const PROJECT_COLUMNS = ["id", "name", "environment", "owner", "lifecycleStage", "updatedAt"];
  const projects = program.command("projects").description("manage projects");
  const specOptions = (cmd: Command, create: boolean) =>
    cmd
      .option("--file <path>", "read the JSON body from a file (flags override its fields)")
      .option("--name <name>")
      .option("--description <text>")
      .addOption(new Option("--environment <env>").choices([...ENVIRONMENTS]))
      .option("--owner <user>")
      .option("--cost-center <code>")
      .option("--tag <key=value>", "repeatable", collectTag)
      .option("--review-date <yyyy-mm-dd>", create ? "required for sandbox projects" : "")
      .addOption(new Option("--lifecycle-stage <stage>").choices([...LIFECYCLE_STAGES]))
      .option("--pillars <list>", "e.g. models=on,tools=off,agents=on", parsePillars);
  const specFrom = (o: Record<string, unknown>) => {
    const base = o.file ? (JSON.parse(readFileSync(String(o.file), "utf8")) as Record<string, unknown>) : {};
    const map: Record<string, string> = {
      name: "name", description: "description", environment: "environment", owner: "owner", costCenter: "costCenter",
      tag: "tags", reviewDate: "reviewDate", lifecycleStage: "lifecycleStage", pillars: "pillars",
    };
    for (const [opt, field] of Object.entries(map)) if (o[opt] !== undefined) base[field] = o[opt];
    return base;
  };

  specOptions(projects.command("create").description("create a project"), true).action(async (o: Record<string, unknown>) => {
    print(await client().projects.create(specFrom(o) as never), PROJECT_COLUMNS.concat("etag"));
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
        const page = await c.projects.list({ ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}), ...(token ? { continuationToken: token } : {}) });
        items.push(...page.items);
        token = page.continuationToken;
        if (!o.all && token) io.err(`more: --continuation-token ${token}`);
      } while (o.all && token);
      print(items, PROJECT_COLUMNS);
    });
  projects.command("get <projectId>").description("show a project").action(async (id: string) => {
    print(await client().projects.get(id), PROJECT_COLUMNS.concat("etag"));
  });
  specOptions(projects.command("update <projectId>").description("update a project (reads the current ETag unless --if-match)"), false)
    .option("--if-match <etag>", "the ETag you last read")
    .action(async (id: string, o: Record<string, unknown>) => {
      const c = client();
      const etag = (o.ifMatch as string | undefined) ?? (await c.projects.get(id)).etag;
      print(await c.projects.update(id, specFrom(o) as never, etag), PROJECT_COLUMNS.concat("etag"));
    });
  projects
    .command("delete <projectId>")
    .description("delete a project")
    .option("--if-match <etag>", "the ETag you last read")
    .action(async (id: string, o: { ifMatch?: string }) => {
      const c = client();
      await c.projects.delete(id, o.ifMatch ?? (await c.projects.get(id)).etag);
      io.err(`deleted ${id}`);
    });

  const audit = program.command("audit").description("read and verify the audit log");
  audit
    .command("list")
    .description("list audit records, newest first")
    .option("--scope <scope>", "'tenant' or a project id", "tenant")
    .option("--resource <path>", "e.g. /projects/prj_...")
    .option("--actor <user>")
    .option("--from <iso>")
    .option("--to <iso>")
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (o: Record<string, string | undefined>) => {
      const query = Object.fromEntries(
        Object.entries({ ...o, maxPageSize: o.maxPageSize ? Number(o.maxPageSize) : undefined }).filter(([, v]) => v !== undefined),
      );
      const page = await client().audit.list(query);
      if (page.continuationToken) io.err(`more: --continuation-token ${page.continuationToken}`);
      print(page.items, ["seq", "at", "actor", "action", "resource", "correlationId"]);
    });
  audit
    .command("verify")
    .description("recompute the hash chains; exits 3 when a chain is broken")
    .action(async () => {
      const result = await client().audit.verify();
      if (globals().output === "json") io.out(JSON.stringify(result, null, 2));
      else {
        render(io, "table", result.scopes, ["scope", "records", "ok"]);
        io.out(result.ok ? `OK: ${result.recordsChecked} records verified` : `BROKEN: ${JSON.stringify(result.firstBreak)}`);
      }
      if (!result.ok) throw new CommanderError(3, "aigov.auditBroken", "the audit chain is broken");
    });

  const MODEL_COLUMNS = ["id", "name", "provider", "modelName", "status", "sunsetDate"];
  const models = program.command("models").description("register and govern a project's models");
  models
    .command("register <projectId>")
    .description("register a model from a JSON ModelSpec (backend keys are write-only)")
    .requiredOption("--file <path>", "the ModelSpec as JSON")
    .action(async (projectId: string, o: { file: string }) => {
      print(await client().models.create(projectId, JSON.parse(readFileSync(o.file, "utf8")) as never), MODEL_COLUMNS.concat("etag"));
    });
  models
    .command("list <projectId>")
    .description("list a project's models")
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (projectId: string, o: { maxPageSize?: string; continuationToken?: string }) => {
      const page = await client().models.list(projectId, { ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}), ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}) });
      if (page.continuationToken) io.err(`more: --continuation-token ${page.continuationToken}`);
      print(page.items, MODEL_COLUMNS);
    });
  models.command("show <projectId> <modelId>").description("show a model").action(async (projectId: string, modelId: string) => {
    const m = await client().models.get(projectId, modelId);
    if (globals().output === "json") return print(m);
    render(io, "table", m, MODEL_COLUMNS.concat("etag"));
    render(io, "table", m.backends.map((b) => ({ ...b, credential: b.credential.type })), ["id", "url", "region", "priority", "weight", "credential"]);
  });
  const patchModel = async (projectId: string, modelId: string, patch: object, ifMatch?: string) => {
    const c = client();
    print(await c.models.update(projectId, modelId, patch as never, ifMatch ?? (await c.models.get(projectId, modelId)).etag), MODEL_COLUMNS);
  };
  models
    .command("update <projectId> <modelId>")
    .description("apply a JSON merge patch to a model")
    .requiredOption("--file <path>", "the ModelPatch as JSON")
    .option("--if-match <etag>")
    .action((projectId: string, modelId: string, o: { file: string; ifMatch?: string }) => patchModel(projectId, modelId, JSON.parse(readFileSync(o.file, "utf8")) as object, o.ifMatch));
  models
    .command("deprecate <projectId> <modelId>")
    .description("mark a model deprecated: it keeps working and answers with Deprecation/Sunset headers")
    .requiredOption("--sunset-date <yyyy-mm-dd>")
    .action((projectId: string, modelId: string, o: { sunsetDate: string }) => patchModel(projectId, modelId, { status: "deprecated", sunsetDate: o.sunsetDate }));
  models
    .command("block <projectId> <modelId>")
    .description("block a model: it leaves every pool and allow-list at the next publish")
    .action((projectId: string, modelId: string) => patchModel(projectId, modelId, { status: "blocked" }));
  models
    .command("delete <projectId> <modelId>")
    .description("delete a model and its stored keys")
    .option("--if-match <etag>")
    .action(async (projectId: string, modelId: string, o: { ifMatch?: string }) => {
      const c = client();
      await c.models.delete(projectId, modelId, o.ifMatch ?? (await c.models.get(projectId, modelId)).etag);
      io.err(`deleted ${modelId}`);
    });

  const settings = program.command("settings").description("the tenant's governance settings (policy as code)");
  settings.command("show").description("print the tenant settings").action(async () => io.out(JSON.stringify(await client().settings.get(), null, 2)));
  settings
    .command("set")
    .description("replace the tenant settings from a JSON file ({\"settings\": {...}}; reads the current ETag unless --if-match)")
    .requiredOption("--file <path>")
    .option("--if-match <etag>")
    .action(async (o: { file: string; ifMatch?: string }) => {
      const c = client();
      const etag = o.ifMatch ?? (await c.settings.get()).etag;
      io.out(JSON.stringify(await c.settings.put(JSON.parse(readFileSync(o.file, "utf8")) as never, etag), null, 2));
    });

  const policy = program.command("policy").description("see what the gateway would get");
  policy
    .command("show <projectId>")
    .description("the compiled APIM artifacts for a project (policy XML printed as is)")
    .option("--explain", "also list which setting produced each element")
    .action(async (projectId: string, o: { explain?: boolean }) => {
      const preview = await client().policy.show(projectId, o.explain ?? false);
      if (globals().output === "json") return print(preview);
      for (const a of preview.artifacts) {
        io.out(`# ${a.ref}`);
        io.out(typeof a.xml === "string" ? a.xml : JSON.stringify(a, null, 2));
      }
      render(io, "table", preview.sizes, ["ref", "bytes"]);
      if (preview.explain) render(io, "table", preview.explain.map((e) => ({ ...e, control: JSON.stringify(e.control), scope: JSON.stringify(e.scope) })), ["ref", "path", "control", "scope"]);
    });

  const APPROVAL_COLUMNS = ["id", "status", "currentStage", "requester", "createdAt"];
  const approvals = program.command("approvals").description("request, decide and follow approvals");
  approvals
    .command("create")
    .description("request an approval from a JSON spec (subject, justification, stages)")
    .requiredOption("--file <path>", "the ApprovalSpec as JSON")
    .action(async (o: { file: string }) => {
      print(await client().approvals.create(JSON.parse(readFileSync(o.file, "utf8")) as never), APPROVAL_COLUMNS.concat("etag"));
    });
  approvals
    .command("list")
    .description("list approval requests")
    .addOption(new Option("--status <status>").choices(["pending", "approved", "rejected", "expired"]))
    .option("--mine", "only those awaiting my decision")
    .option("--requester <user>")
    .option("--max-page-size <n>")
    .option("--continuation-token <token>")
    .action(async (o: { status?: "pending"; mine?: boolean; requester?: string; maxPageSize?: string; continuationToken?: string }) => {
      const page = await client().approvals.list({
        ...(o.status ? { status: o.status } : {}),
        ...(o.mine ? { approver: "me" as const } : {}),
        ...(o.requester ? { requester: o.requester } : {}),
        ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}),
        ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}),
      });
      if (page.continuationToken) io.err(`more: --continuation-token ${page.continuationToken}`);
      print(page.items, APPROVAL_COLUMNS);
    });
  approvals.command("show <approvalId>").description("show a request and its timeline").action(async (id: string) => {
    const a = await client().approvals.get(id);
    if (globals().output === "json") return print(a);
    render(io, "table", a, APPROVAL_COLUMNS.concat("etag"));
    render(io, "table", a.timeline, ["at", "type", "stage", "actor", "detail"]);
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
      io.out(res.html.replace(/<style>[\s\S]*?<\/style>/, "").replace(/<[^>]+>/g, " ").replace(/[ \t]+/g, " ").replace(/\n\s*\n+/g, "\n").trim());
      if (res.status >= 400) throw new CommanderError(1, "aigov.review", `the link was refused (HTTP ${res.status})`);
    });

  return program;
}

/** Every CLI verb the program implements, e.g. "projects create" (for the coverage test). */
export function cliVerbs(program: Command): string[] {
  const walk = (cmd: Command, prefix: string[]): string[] =>
    cmd.commands.flatMap((c) => {
      const path = [...prefix, c.name()];
      return c.commands.length ? walk(c, path) : [path.join(" ")];
    });
  return walk(program, []);
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof ApiError) {
      io.err(err.problem ? `error ${err.problem.status} ${err.problem.code}: ${err.problem.detail ?? err.problem.title}` : `error: HTTP ${err.status}`);
      for (const e of err.problem?.errors ?? []) io.err(`  ${e.field}: ${e.message}`);
      if (err.problem?.correlationId) io.err(`  correlation id: ${err.problem.correlationId}`);
      return 1;
    }
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.exitCode === 0) return 0;
      if (err.code.startsWith("aigov.")) io.err(`error: ${err.message}`);
      return err.exitCode || 2;
    }
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

export const allOperationVerbs = () => operations.map((o) => o.cli);

if (require.main === module) {
  void runCli(process.argv.slice(2), {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    env: process.env,
  }).then((code) => process.exit(code));
}
