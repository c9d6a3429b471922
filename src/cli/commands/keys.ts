/** `aigov keys …`: virtual keys (create, list, show, rotate, revoke, suspend, resume, share, unshare, shared, collect, lookup). */
import { CommanderError, Option } from "commander";
import { type AigovClient, ApiError } from "../../client/index.js";
import { type CliKit, parseBudget, problemLine } from "../kit.js";

// suspendedBy: who suspended a suspended key (admin, projectLock, agentHold, roleRemoved): who may resume it.
const KEY_COLUMNS = ["id", "name", "status", "suspendedBy", "owner", "prefix", "last4", "expiresAt", "gateway"];
const keyRow = (k: { gateway: { state: string } } & Record<string, unknown>) => ({ ...k, gateway: k.gateway.state });

async function listAllKeys(c: AigovClient, projectId: string) {
  const out: Awaited<ReturnType<AigovClient["keys"]["list"]>>["items"] = [];
  for (let page: Awaited<ReturnType<AigovClient["keys"]["list"]>> | undefined = await c.keys.list(projectId, { maxPageSize: 100 }); page; page = await c.next(page)) out.push(...page.items);
  return out;
}

type CreateOptions = {
  tool?: string[];
  agent?: string[];
  name: string;
  owner?: string;
  model?: string[];
  /** false with --no-models. */
  models: boolean;
  tpm?: string;
  rpm?: string;
  quota?: string;
  budget?: ReturnType<typeof parseBudget>;
  expires?: string;
  wait?: boolean;
  justification?: string;
};

export function keyCommands({ program, client, print, out, err, json, stdin }: CliKit): void {
  const showSecret = (k: { key: string; id: string }) => {
    if (json()) return print(k);
    print(keyRow(k as never), KEY_COLUMNS);
    out(`\nkey: ${k.key}\nThis is the only time the key is shown. Store it now.`);
  };
  const keys = program.command("keys").description("virtual keys: create, rotate, revoke, suspend, resume, collect, look up");
  keys
    .command("create <projectId>")
    .description("create a virtual key (the key is printed once)")
    .requiredOption("--name <name>")
    .option("--owner <user>")
    .option("--model <modelId...>", "models the key may call (default: all of the project's)")
    .addOption(new Option("--no-models", "the key calls no model (a key for tools or agents only)").conflicts("model"))
    .option("--tool <entry...>", "MCP tools the key may call: srv_… (a server), srv_…/<tool>, tbx_… (a toolbox); none by default")
    .option("--agent <agentId...>", "agents of the project the key may call (a caller's key); none by default")
    .option("--tpm <n>", "tokens per minute")
    .option("--rpm <n>", "requests per minute")
    .option("--quota <limit/period>", "token quota, e.g. 1000000/Monthly")
    .option("--budget <amount CUR/period>", "cost budget, e.g. '50 USD/Monthly'", parseBudget)
    .option("--expires <iso>", "expiry (default: the project's default lifetime)")
    .option("--justification <text>", "why the key is needed (required where the project's keys need an approval)")
    .option("--wait", "wait until the gateway accepts the key (a new profile is published first)")
    .action(async (projectId: string, o: CreateOptions) => {
      const quota = o.quota?.split("/");
      // --model: those; --no-models: none; neither: every model of the project (no `models`).
      const models = o.model ?? (o.models ? undefined : []);
      const created = await client().keys.create(projectId, {
        name: o.name,
        ...(o.owner ? { owner: o.owner } : {}),
        ...(models || o.tool || o.agent ? { scopes: { ...(models ? { models } : {}), ...(o.tool ? { tools: o.tool } : {}), ...(o.agent ? { agents: o.agent } : {}) } } : {}),
        limits: {
          ...(o.tpm ? { tokensPerMinute: Number(o.tpm) } : {}),
          ...(o.rpm ? { requestsPerMinute: Number(o.rpm) } : {}),
          ...(quota ? { tokenQuota: { limit: Number(quota[0]), period: quota[1] as never } } : {}),
          ...(o.budget ? { budget: { ...o.budget, period: o.budget.period as never } } : {}),
        },
        ...(o.expires ? { expiresAt: o.expires } : {}),
        ...(o.justification ? { justification: o.justification } : {}),
      });
      if (created.approval?.state === "pending") err(`The project's keys need an approval (${created.approval.approvalId}): the key works once it is approved.`);
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
            err("the gateway has not accepted the key yet; `aigov keys show` tells when it has");
            break;
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      showSecret(created);
    });
  keys
    .command("list <projectId>")
    .description("list a project's keys (every page)")
    .action(async (projectId: string) => print((await listAllKeys(client(), projectId)).map(keyRow), KEY_COLUMNS));
  keys
    .command("show <projectId> <keyId>")
    .description("one key (never its secret)")
    .action(async (projectId: string, keyId: string) => {
      const k = await client().keys.get(projectId, keyId);
      print(json() ? k : keyRow(k), KEY_COLUMNS.concat("rotationCount", "lastRotatedAt"));
    });
  /**
   * Runs an action on one key or (--all) on every key of the project the action applies to (`applies`, by
   * status), with a progress line per key; exits non-zero when any of them failed.
   */
  const perKey = async (
    projectId: string,
    keyId: string | undefined,
    all: boolean | undefined,
    applies: (status: string) => boolean,
    act: (c: AigovClient, id: string, etag: string) => Promise<unknown>,
  ) => {
    const c = client();
    const ids = all ? (await listAllKeys(c, projectId)).filter((k) => applies(k.status)).map((k) => k.id) : keyId ? [keyId] : [];
    if (!all && !keyId) throw new Error("name a key, or --all");
    if (ids.length === 0) return err("no key of the project to act on");
    let done = 0;
    let failed = 0;
    for (const id of ids) {
      try {
        const result = await act(c, id, (await c.keys.get(projectId, id)).etag);
        done += 1;
        if (!all) {
          return (result as { key?: string }).key ? showSecret(result as never) : print(json() ? result : keyRow(result as never), KEY_COLUMNS);
        }
      } catch (e) {
        failed += 1;
        if (!all) throw e;
        // Each refusal says why (its reason and detail), as a failing single-key call would: with -o json as
        // its problem document (with the key's id), one line on stderr.
        if (json() && e instanceof ApiError && e.problem) err(JSON.stringify({ keyId: id, ...e.problem }));
        else err(`${id}: ${problemLine(e)}`);
      }
      err(`[${done + failed}/${ids.length}] ${done} done, ${failed} failed`);
    }
    if (failed > 0) throw new CommanderError(1, "aigov.keysFailed", `${failed} of ${ids.length} keys failed`);
  };
  keys
    .command("rotate <projectId> [keyId]")
    .description("rotate (the new key is printed once); --all: every active key of the project (new keys printed as JSON lines)")
    .option("--overlap <iso>", "how long the old secret keeps working, e.g. PT24H; PT0S for a compromised key", "PT24H")
    .option("--reason <text>")
    .option("--all")
    .action(async (projectId: string, keyId: string | undefined, o: { overlap: string; reason?: string; all?: boolean }) =>
      perKey(projectId, keyId, o.all, (status) => status === "active", async (c, id, etag) => {
        const r = await c.keys.rotate(projectId, id, { overlap: o.overlap, ...(o.reason ? { reason: o.reason } : {}) }, etag);
        if (o.all) out(JSON.stringify({ id: r.id, key: r.key }));
        return r;
      }),
    );
  // --all: the keys each verb applies to (the server refuses the others: key_revoked, key_not_active, key_not_suspended).
  const APPLIES = { revoke: (s: string) => s !== "revoked" && s !== "revocationPending", suspend: (s: string) => s === "active", resume: (s: string) => s === "suspended" };
  for (const [verb, help, which] of [["revoke", "revoke for good", "every key of the project not yet revoked"], ["suspend", "suspend (reversible)", "every active key of the project"], ["resume", "resume a suspended key", "every suspended key of the project"]] as const) {
    keys
      .command(`${verb} <projectId> [keyId]`)
      .description(`${help}; --all: ${which}`)
      .requiredOption("--reason <text>")
      .option("--all")
      .action(async (projectId: string, keyId: string | undefined, o: { reason: string; all?: boolean }) =>
        perKey(projectId, keyId, o.all, APPLIES[verb], (c, id, etag) => c.keys[verb](projectId, id, { reason: o.reason }, etag)),
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
      const body = { projectId: o.with, justification: o.justification, ...(o.approver ? { approvers: o.approver.map((user) => ({ user })) } : {}) };
      const r = await c.keys.share(projectId, keyId, body, (await c.keys.get(projectId, keyId)).etag);
      if (json()) return print(r);
      out(`share with ${o.with} requested: approval ${r.approval.id} (${r.approval.status})`);
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
    .action(async (projectId: string) => {
      print((await client().keys.shared(projectId)).items.map((k) => ({ ...keyRow(k), sharedFrom: k.sharedFrom })), ["sharedFrom", ...KEY_COLUMNS]);
    });
  keys
    .command("collect <projectId> <keyId>")
    .description("collect the new secret of a scheduled rotation (once; the key's owner)")
    .action(async (projectId: string, keyId: string) => showSecret(await client().keys.collect(projectId, keyId)));
  keys
    .command("lookup")
    .description("which key a (leaked) secret belongs to; pipe the secret on stdin (aigov keys lookup < file): --key puts it in the process list and the shell's history")
    .option("--key <secret>", "the secret ('-': read it from stdin, as without --key)")
    .action(async (o: { key?: string }) => {
      let secret = o.key;
      if (secret === undefined || secret === "-") {
        // Never read a terminal: the secret would be echoed, and a forgotten pipe would hang silently.
        const piped = stdin();
        if (piped === undefined) throw new CommanderError(2, "aigov.stdin", "pipe the key on stdin, e.g. aigov keys lookup < key.txt");
        secret = piped.trim();
        if (!secret) throw new CommanderError(2, "aigov.stdin", "no key on stdin");
      }
      print(await client().keys.lookup(secret), ["keyId", "projectId", "status", "secret"]);
    });
}
