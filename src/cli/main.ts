import { readFileSync } from "node:fs";
import Table from "cli-table3";
import { Command, CommanderError, Option } from "commander";
import { operations } from "../api/operations.js";
import { AigovClient, ApiError } from "../client/index.js";
import { ROLES } from "../domain/common.js";
import { ENVIRONMENTS, LIFECYCLE_STAGES } from "../domain/projects/schema.js";
import { pillars } from "../pillars/index.js";
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

  // Each pillar adds its own commands (models register|list|show|update|deprecate|block|delete, …).
  for (const pillar of pillars()) {
    pillar.cli?.({
      program,
      client,
      print,
      render: (format, value, columns) => render(io, format, value, columns),
      out: (text) => io.out(text),
      err: (text) => io.err(text),
      json: () => globals().output === "json",
      readJson: (path) => JSON.parse(readFileSync(path, "utf8")) as unknown,
    });
  }

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

  const policy = program.command("policy").description("see what the gateway gets: compile, diff, publish, roll back, check drift");
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

  policy
    .command("explain <projectId>")
    .description("which setting (control and scope) produced each element of the project's compiled policy")
    .action(async (projectId: string) => {
      const preview = await client().policy.show(projectId, true);
      if (globals().output === "json") return print(preview.explain);
      render(io, "table", (preview.explain ?? []).map((e) => ({ ...e, control: JSON.stringify(e.control), scope: JSON.stringify(e.scope) })), ["ref", "path", "control", "scope"]);
    });

  policy
    .command("path <projectId>")
    .description("the project's API path at the gateway (https://<gateway>/<path>/v1/chat/completions, …; locally http://127.0.0.1:7072/<path>)")
    .action(async (projectId: string) => {
      const api = (await client().policy.show(projectId)).artifacts.find((a) => a.kind === "api");
      if (!api || typeof api.path !== "string") throw new Error(`project ${projectId} has no API`);
      io.out(api.path);
    });

  const REVISION_COLUMNS = ["number", "id", "kind", "status", "createdBy", "createdAt", "publishedAt", "reason"];
  const counts = (c: { added: number; modified: number; removed: number }) => `+${c.added} ~${c.modified} -${c.removed}`;
  const showPublish = (r: { changed: boolean; revision?: { number: number; id: string; status: string; counts: { added: number; modified: number; removed: number } } }) => {
    if (globals().output === "json") return print(r);
    if (!r.changed) {
      if (!r.revision) return io.out("nothing to publish");
      // The compiled state is already a revision: held by the gateway, or pending and on its way there.
      return io.out(
        r.revision.status === "published"
          ? `nothing to publish: the gateway holds revision ${r.revision.number} (${r.revision.id})`
          : `nothing new to publish: revision ${r.revision.number} (${r.revision.id}) has it and is ${r.revision.status}`,
      );
    }
    io.out(`revision ${r.revision!.number} (${r.revision!.id}) ${r.revision!.status}: ${counts(r.revision!.counts)} artifacts`);
  };
  policy
    .command("diff")
    .description("what a publish would change now (unified diff: published → compiled); --revision: what a revision changed")
    .option("--revision <id>")
    .action(async (o: { revision?: string }) => {
      const c = client();
      const d = o.revision ? await c.policy.revision(o.revision, true) : await c.policy.diff();
      if (globals().output === "json") return print(d);
      io.out(`${counts(d.counts)} artifacts`);
      if (d.diff) io.out(d.diff);
    });
  policy
    .command("publish")
    .description("compile the tenant and publish it as a new revision (--wait: until the gateway holds it)")
    .option("--reason <text>")
    .option("--wait", "wait until the revision is published or failed")
    .action(async (o: { reason?: string; wait?: boolean }) => {
      const c = client();
      let r = await c.policy.publish(o.reason ? { reason: o.reason } : {});
      // --wait also waits for a pending revision that already holds what would be published (e.g. one automation made).
      if (o.wait && r.revision && (r.changed || r.revision.status === "pending")) r = { ...r, revision: await waitForRevision(c, r.revision.id) };
      showPublish(r);
    });
  policy
    .command("revisions")
    .description("list publish revisions, newest first")
    .option("--max-page-size <n>")
    .action(async (o: { maxPageSize?: string }) => print((await client().policy.revisions(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {})).items, REVISION_COLUMNS));
  policy
    .command("revision <revisionId>")
    .description("one revision: who, when, what changed (--diff: the unified diff)")
    .option("--diff")
    .action(async (revisionId: string, o: { diff?: boolean }) => {
      const r = await client().policy.revision(revisionId, o.diff ?? false);
      if (globals().output === "json") return print(r);
      print(r, REVISION_COLUMNS.concat("artifactCount"));
      render(io, "table", r.changes, ["ref", "change"]);
      if (r.diff) io.out(r.diff);
    });
  policy
    .command("rollback <revisionId>")
    .description("republish an earlier published revision, as a new revision (--wait: until the gateway holds it)")
    .option("--reason <text>")
    .option("--wait")
    .action(async (revisionId: string, o: { reason?: string; wait?: boolean }) => {
      const c = client();
      let r = await c.policy.rollback(revisionId, o.reason ? { reason: o.reason } : {});
      if (o.wait && r.changed && r.revision) r = { ...r, revision: await waitForRevision(c, r.revision.id) };
      showPublish(r);
    });
  policy
    .command("drift")
    .description("differences between the gateway and the last published revision (--check: read the gateway back now)")
    .option("--check", "run a drift check now (TenantAdmin)")
    .action(async (o: { check?: boolean }) => {
      const c = client();
      const report = o.check ? await c.policy.checkDrift() : await c.policy.drift();
      if (globals().output === "json") return print(report);
      io.out(`${report.status}${report.revisionNumber ? ` (revision ${report.revisionNumber})` : ""}${report.checkedAt ? `, checked ${report.checkedAt}` : ""}: ${report.items.length} of ${report.checkedArtifacts} artifacts differ`);
      for (const item of report.items) io.out(`${item.state} ${item.ref}\n${item.diff ?? ""}`);
    });

  const KEY_COLUMNS = ["id", "name", "status", "owner", "prefix", "last4", "expiresAt", "gateway"];
  const keyRow = (k: { gateway: { state: string } } & Record<string, unknown>) => ({ ...k, gateway: k.gateway.state });
  const showSecret = (k: { key: string; id: string }) => {
    if (globals().output === "json") return print(k);
    print(keyRow(k as never), KEY_COLUMNS);
    io.out(`\nkey: ${k.key}\nThis is the only time the key is shown. Store it now.`);
  };
  const keys = program.command("keys").description("virtual keys: create, rotate, revoke, suspend, resume, collect, look up");
  keys
    .command("create <projectId>")
    .description("create a virtual key (the key is printed once)")
    .requiredOption("--name <name>")
    .option("--owner <user>")
    .option("--model <modelId...>", "models the key may call (default: all of the project's)")
    .option("--tpm <n>", "tokens per minute")
    .option("--rpm <n>", "requests per minute")
    .option("--quota <limit/period>", "token quota, e.g. 1000000/Monthly")
    .option("--budget <amount CUR/period>", "cost budget, e.g. '50 USD/Monthly'")
    .option("--expires <iso>", "expiry (default: the project's default lifetime)")
    .option("--wait", "wait until the gateway accepts the key (a new profile is published first)")
    .action(async (projectId: string, o: { name: string; owner?: string; model?: string[]; tpm?: string; rpm?: string; quota?: string; budget?: string; expires?: string; wait?: boolean }) => {
      const quota = o.quota?.split("/");
      const budget = o.budget ? /^([\d.]+)\s*([A-Z]{3})\/(\w+)$/.exec(o.budget) : null;
      const created = await client().keys.create(projectId, {
        name: o.name,
        ...(o.owner ? { owner: o.owner } : {}),
        ...(o.model ? { scopes: { models: o.model } } : {}),
        limits: {
          ...(o.tpm ? { tokensPerMinute: Number(o.tpm) } : {}),
          ...(o.rpm ? { requestsPerMinute: Number(o.rpm) } : {}),
          ...(quota ? { tokenQuota: { limit: Number(quota[0]), period: quota[1] as never } } : {}),
          ...(budget ? { budget: { amount: Number(budget[1]), currency: budget[2]!, period: budget[3] as never } } : {}),
        },
        ...(o.expires ? { expiresAt: o.expires } : {}),
      });
      if (o.wait && created.gateway.state !== "synced") {
        // A key with a new profile waits for its product: the publish sweep publishes it, then the key syncs.
        const deadline = Date.now() + 180_000;
        for (;;) {
          const k = await client().keys.get(projectId, created.id);
          if (k.gateway.state === "synced") {
            created.gateway = k.gateway;
            break;
          }
          if (Date.now() > deadline) {
            io.err("the gateway has not accepted the key yet; `aigov keys show` tells when it has");
            break;
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      showSecret(created);
    });
  keys
    .command("list <projectId>")
    .description("list a project's keys")
    .action(async (projectId: string) => print((await client().keys.list(projectId)).items.map(keyRow), KEY_COLUMNS));
  keys
    .command("show <projectId> <keyId>")
    .description("one key (never its secret)")
    .action(async (projectId: string, keyId: string) => {
      const k = await client().keys.get(projectId, keyId);
      print(globals().output === "json" ? k : keyRow(k), KEY_COLUMNS.concat("rotationCount", "lastRotatedAt"));
    });
  /** Runs an action on one key or (--all) on every key of the project, with a progress line per key. */
  const perKey = async (projectId: string, keyId: string | undefined, all: boolean | undefined, act: (c: AigovClient, id: string, etag: string) => Promise<unknown>) => {
    const c = client();
    const ids = all ? (await listAllKeys(c, projectId)).map((k) => k.id) : keyId ? [keyId] : [];
    if (ids.length === 0) throw new Error("name a key, or --all");
    let done = 0;
    let failed = 0;
    for (const id of ids) {
      try {
        const result = await act(c, id, (await c.keys.get(projectId, id)).etag);
        done += 1;
        if (!all) return (result as { key?: string }).key ? showSecret(result as never) : print(globals().output === "json" ? result : keyRow(result as never), KEY_COLUMNS);
      } catch (err) {
        failed += 1;
        if (!all) throw err;
        io.err(`${id}: ${err instanceof Error ? err.message : String(err)}`);
      }
      io.err(`[${done + failed}/${ids.length}] ${done} done, ${failed} failed`);
    }
  };
  keys
    .command("rotate <projectId> [keyId]")
    .description("rotate (the new key is printed once); --all: every active key of the project (new keys printed as JSON lines)")
    .option("--overlap <iso>", "how long the old secret keeps working, e.g. PT24H; PT0S for a compromised key", "PT24H")
    .option("--reason <text>")
    .option("--all")
    .action(async (projectId: string, keyId: string | undefined, o: { overlap: string; reason?: string; all?: boolean }) =>
      perKey(projectId, keyId, o.all, async (c, id, etag) => {
        const r = await c.keys.rotate(projectId, id, { overlap: o.overlap, ...(o.reason ? { reason: o.reason } : {}) }, etag);
        if (o.all) io.out(JSON.stringify({ id: r.id, key: r.key }));
        return r;
      }),
    );
  for (const [verb, help] of [["revoke", "revoke for good"], ["suspend", "suspend (reversible)"], ["resume", "resume a suspended key"]] as const) {
    keys
      .command(`${verb} <projectId> [keyId]`)
      .description(`${help}; --all: every key of the project`)
      .requiredOption("--reason <text>")
      .option("--all")
      .action(async (projectId: string, keyId: string | undefined, o: { reason: string; all?: boolean }) =>
        perKey(projectId, keyId, o.all, (c, id, etag) => c.keys[verb](projectId, id, { reason: o.reason }, etag)),
      );
  }
  keys
    .command("share <projectId> <keyId>")
    .description("ask to use the key with another project (an approval decides)")
    .requiredOption("--with <projectId>", "the other project")
    .requiredOption("--justification <text>")
    .option("--approver <user...>", "named approvers (default: the other project's admins)")
    .action(async (projectId: string, keyId: string, o: { with: string; justification: string; approver?: string[] }) => {
      const c = client();
      const r = await c.keys.share(projectId, keyId, { projectId: o.with, justification: o.justification, ...(o.approver ? { approvers: o.approver.map((user) => ({ user })) } : {}) }, (await c.keys.get(projectId, keyId)).etag);
      if (globals().output === "json") return print(r);
      io.out(`share with ${o.with} requested: approval ${r.approval.id} (${r.approval.status})`);
    });
  keys
    .command("unshare <projectId> <keyId>")
    .description("end a share with another project")
    .requiredOption("--with <projectId>")
    .action(async (projectId: string, keyId: string, o: { with: string }) => {
      const c = client();
      print(keyRow(await c.keys.unshare(projectId, keyId, o.with, (await c.keys.get(projectId, keyId)).etag)), KEY_COLUMNS);
    });
  keys
    .command("shared <projectId>")
    .description("keys of other projects shared with this project")
    .action(async (projectId: string) => print((await client().keys.shared(projectId)).items.map((k) => ({ ...keyRow(k), sharedFrom: k.sharedFrom })), ["sharedFrom", ...KEY_COLUMNS]));
  keys
    .command("collect <projectId> <keyId>")
    .description("collect the new secret of a scheduled rotation (once; the key's owner)")
    .action(async (projectId: string, keyId: string) => showSecret(await client().keys.collect(projectId, keyId)));
  keys
    .command("lookup")
    .description("which key a (leaked) secret belongs to; reads the secret from stdin or --key")
    .option("--key <secret>")
    .action(async (o: { key?: string }) => {
      const secret = o.key ?? readFileSync(0, "utf8").trim();
      print(await client().keys.lookup(secret), ["keyId", "projectId", "status", "secret"]);
    });

  const APPROVAL_COLUMNS = ["id", "status", "currentStage", "requester", "createdAt"];
  const approvals = program.command("approvals").description("request, decide and follow approvals");
  approvals
    .command("create")
    .description("request an approval from a JSON spec (subject, justification, optional extra stages); the tenant's route decides who approves")
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
  const routes = approvals.command("routes").description("who approves what: the tenant's approval routes (TenantAdmin sets them)");
  routes.command("show").description("print the routes, the product defaults and the minimums").action(async () => io.out(JSON.stringify(await client().approvals.routes(), null, 2)));
  routes
    .command("set")
    .description("replace the routes from a JSON file ({\"routes\": [{\"name\", \"match\", \"stages\"}]})")
    .requiredOption("--file <path>")
    .option("--if-match <etag>")
    .action(async (o: { file: string; ifMatch?: string }) => {
      const c = client();
      const etag = o.ifMatch ?? (await c.approvals.routes()).etag;
      io.out(JSON.stringify(await c.approvals.putRoutes(JSON.parse(readFileSync(o.file, "utf8")) as never, etag), null, 2));
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
      io.out(res.html.replace(/<style>[\s\S]*?<\/style>/, "").replace(/<[^>]+>/g, " ").replace(/[ \t]+/g, " ").replace(/\n\s*\n+/g, "\n").trim());
      if (res.status >= 400) throw new CommanderError(1, "aigov.review", `the link was refused (HTTP ${res.status})`);
    });

  const EXEMPTION_COLUMNS = ["id", "status", "control", "scope", "category", "owner", "expiresAt"];
  const exemptionRow = (e: { scope: { level: string; projectId?: string; modelId?: string; keyId?: string } } & Record<string, unknown>) => ({
    ...e,
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
      const body = o.file ? (JSON.parse(readFileSync(String(o.file), "utf8")) as Record<string, unknown>) : {};
      for (const [opt, field] of [["control", "control"], ["scope", "scope"], ["category", "category"], ["owner", "owner"], ["compensating", "compensatingControls"], ["evidence", "evidence"], ["expiresAt", "expiresAt"]] as const) {
        if (o[opt] !== undefined) body[field] = o[opt];
      }
      if (o.days !== undefined) body.expiresAt = new Date(Date.now() + Number(o.days) * 24 * 3600 * 1000).toISOString();
      if (o.off) body.relaxation = { kind: "off" };
      if (o.limit !== undefined) body.relaxation = { kind: "limit", value: Number(o.limit) };
      if (o.thresholds !== undefined) body.relaxation = { kind: "thresholds", categories: o.thresholds };
      if (o.blocker !== undefined || o.affects !== undefined || o.endState !== undefined) {
        body.reason = { ...(body.reason as object | undefined), ...(o.blocker !== undefined ? { deliveryBlocker: o.blocker } : {}), ...(o.affects !== undefined ? { affectedControl: o.affects } : {}), ...(o.endState !== undefined ? { expectedEndState: o.endState } : {}) };
      }
      const e = await client().exemptions.request(body as never);
      print(globals().output === "json" ? e : exemptionRow(e), EXEMPTION_COLUMNS.concat("approvalId", "etag"));
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
    .action(async (o: { status?: "active"; control?: string; project?: string; owner?: string; maxPageSize?: string; continuationToken?: string }) => {
      const page = await client().exemptions.list({
        ...(o.status ? { status: o.status } : {}),
        ...(o.control ? { control: o.control as never } : {}),
        ...(o.project ? { projectId: o.project } : {}),
        ...(o.owner ? { owner: o.owner } : {}),
        ...(o.maxPageSize ? { maxPageSize: Number(o.maxPageSize) } : {}),
        ...(o.continuationToken ? { continuationToken: o.continuationToken } : {}),
      });
      if (page.continuationToken) io.err(`more: --continuation-token ${page.continuationToken}`);
      print(globals().output === "json" ? page.items : page.items.map(exemptionRow), EXEMPTION_COLUMNS);
    });
  exemptions.command("show <exemptionId>").description("show an exemption, its renewals and timeline").action(async (id: string) => {
    const e = await client().exemptions.get(id);
    if (globals().output === "json") return print(e);
    render(io, "table", exemptionRow(e), EXEMPTION_COLUMNS.concat("approvalId", "etag"));
    if (e.renewals.length) render(io, "table", e.renewals, ["number", "status", "approvalId", "requestedAt", "expiresAt"]);
    render(io, "table", e.timeline, ["at", "type", "actor", "detail"]);
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
    .action(async (id: string, o: { file?: string; expiresAt?: string; days?: string; evidence?: string[]; justification?: string; compensating?: string[]; ifMatch?: string }) => {
      const c = client();
      const body = o.file ? (JSON.parse(readFileSync(o.file, "utf8")) as Record<string, unknown>) : {};
      if (o.expiresAt) body.expiresAt = o.expiresAt;
      if (o.days) body.expiresAt = new Date(Date.now() + Number(o.days) * 24 * 3600 * 1000).toISOString();
      if (o.evidence) body.evidence = o.evidence;
      if (o.justification) body.justification = o.justification;
      if (o.compensating) body.compensatingControls = o.compensating;
      const e = await c.exemptions.renew(id, body as never, o.ifMatch ?? (await c.exemptions.get(id)).etag);
      print(globals().output === "json" ? e : exemptionRow(e), EXEMPTION_COLUMNS);
    });
  exemptions
    .command("revoke <exemptionId>")
    .description("revoke an exemption now")
    .requiredOption("--reason <text>")
    .option("--if-match <etag>")
    .action(async (id: string, o: { reason: string; ifMatch?: string }) => {
      const c = client();
      const e = await c.exemptions.revoke(id, { reason: o.reason }, o.ifMatch ?? (await c.exemptions.get(id)).etag);
      print(globals().output === "json" ? e : exemptionRow(e), EXEMPTION_COLUMNS);
    });
  exemptions
    .command("review")
    .description("the portfolio: counts, ageing, repeat renewals, clusters, missing compensating controls, breadth")
    .option("--cluster-min-projects <n>", "a cluster is one control exempted in at least n projects", "3")
    .option("--repeat-min-renewals <n>", "list exemptions renewed at least n times", "2")
    .action(async (o: { clusterMinProjects: string; repeatMinRenewals: string }) => {
      const r = await client().exemptions.review({ clusterMinProjects: Number(o.clusterMinProjects), repeatMinRenewals: Number(o.repeatMinRenewals) });
      if (globals().output === "json") return print(r);
      const section = (title: string, rows: Row[], columns: string[]) => {
        io.out(title);
        if (rows.length) render(io, "table", rows, columns);
        else io.out("  (none)");
      };
      io.out(`Exemptions: ${r.total} in total, ${r.open} open (${Object.entries(r.byStatus).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`).join(", ")})`);
      section("By control", r.byControl, ["control", "count"]);
      section("By project", r.byProject, ["projectId", "count"]);
      section("By owner", r.byOwner, ["owner", "count"]);
      section("Ageing (open, since requested)", [{ ...r.ageing.buckets, oldestDays: r.ageing.oldestDays, averageDays: r.ageing.averageDays, expiringWithin7Days: r.ageing.expiringWithin7Days }], ["0-7d", "8-30d", "31-90d", "91d+", "oldestDays", "averageDays", "expiringWithin7Days"]);
      section(`Clusters (one control in >= ${o.clusterMinProjects} projects)`, r.clusters.map((c) => ({ ...c, projects: c.projects.join(", ") })), ["control", "count", "projects"]);
      section(`Repeat renewals (>= ${o.repeatMinRenewals})`, r.repeatRenewals.map((x) => exemptionRow(x)), ["id", "control", "scope", "renewals"]);
      section("Without compensating controls", r.withoutCompensatingControls, ["id", "control", "category"]);
      section("Breadth of scope (open)", [r.breadth], ["tenant", "project", "model", "key"]);
    });
  const exemptionPolicy = exemptions.command("policy").description("the tenant's exemption maxima (days per category and control)");
  exemptionPolicy.command("show").description("print the exemption policy").action(async () => io.out(JSON.stringify(await client().exemptions.policy(), null, 2)));
  exemptionPolicy
    .command("set")
    .description("replace the exemption policy from a JSON file ({\"maxDays\": {...}, \"controls\": {...}})")
    .requiredOption("--file <path>")
    .option("--if-match <etag>")
    .action(async (o: { file: string; ifMatch?: string }) => {
      const c = client();
      const etag = o.ifMatch ?? (await c.exemptions.policy()).etag;
      io.out(JSON.stringify(await c.exemptions.putPolicy(JSON.parse(readFileSync(o.file, "utf8")) as never, etag), null, 2));
    });

  return program;
}

/** Every CLI verb the program implements, e.g. "projects create" (for the coverage test). */
async function listAllKeys(c: AigovClient, projectId: string) {
  const out: Awaited<ReturnType<AigovClient["keys"]["list"]>>["items"] = [];
  let token: string | undefined;
  do {
    const page = await c.keys.list(projectId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) });
    out.push(...page.items);
    token = page.nextLink ? new URL(page.nextLink, "http://x").searchParams.get("continuationToken") ?? undefined : undefined;
  } while (token);
  return out;
}

/** Polls a revision until the gateway holds it (or its publish failed). */
async function waitForRevision(c: AigovClient, id: string) {
  for (;;) {
    const r = await c.policy.revision(id);
    if (r.status !== "pending") return r;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

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
