import { gatewayNames } from "../../src/policy/names.js";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { until } from "../support/until.js";

let t: TestApp;
const env = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-")), "config.json") };

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.stop());

async function aigov(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(["--endpoint", t.url, ...args], { out: (s) => out.push(s), err: (s) => err.push(s), env });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** Signed in (dev) as a TenantAdmin of `tenant`, with a project made through the CLI holding one model (`host`'s); the project's id and an API client of the same user. */
async function withModel(tenant: string, user: string, name: string, host: string) {
  expect((await aigov("login", "--dev", "--tenant", tenant, "--user", user, "--roles", "TenantAdmin")).code).toBe(0);
  const project = JSON.parse((await aigov("-o", "json", "projects", "create", "--name", name, "--environment", "dev", "--owner", user)).out) as { id: string };
  const admin = await t.as(tenant, user, ["TenantAdmin"]);
  await admin.models.create(project.id, {
    name: "gpt-4o",
    provider: "azure-openai",
    modelName: "gpt-4o",
    backends: [{ id: "weu", url: `https://${host}`, region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
  });
  return { project, admin };
}

describe("aigov CLI", () => {
  it("logs in with a dev token, then manages projects and reads the audit log", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t1", "--user", "alice", "--roles", "TenantAdmin,Auditor")).code).toBe(0);

    const created = await aigov("-o", "json", "projects", "create", "--name", "CLI project", "--environment", "dev", "--owner", "alice", "--tag", "team=risk", "--tag", "tier=1");
    expect(created.code).toBe(0);
    const project = JSON.parse(created.out) as { id: string; tags: Record<string, string>; etag: string };
    expect(project.tags).toEqual({ team: "risk", tier: "1" });

    const table = await aigov("projects", "list");
    expect(table.code).toBe(0);
    expect(table.out).toContain("CLI project");
    expect(table.out).toContain(project.id);

    const updated = await aigov("-o", "json", "projects", "update", project.id, "--description", "from the CLI", "--pillars", "tools=off");
    expect(JSON.parse(updated.out)).toMatchObject({ description: "from the CLI", pillars: { models: true, tools: false, agents: true } });

    const stale = await aigov("projects", "update", project.id, "--description", "stale", "--if-match", project.etag);
    expect(stale.code).toBe(1);
    expect(stale.err).toContain("412 PreconditionFailed");

    const audit = await aigov("audit", "list");
    expect(audit.out).toContain("project.update");
    expect(audit.out).toContain("project.create");
    const verify = await aigov("audit", "verify");
    expect(verify.code).toBe(0);
    expect(verify.out).toContain("OK: 2 records verified");

    expect((await aigov("projects", "delete", project.id)).code).toBe(0);
    const gone = await aigov("projects", "get", project.id);
    expect(gone.code).toBe(1);
    expect(gone.err).toContain("404 NotFound");
  });

  it("creates keys scoped to every model (the default), to some, or to none", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t-cli-keys", "--user", "kim", "--roles", "TenantAdmin")).code).toBe(0);
    const project = JSON.parse((await aigov("-o", "json", "projects", "create", "--name", "CLI keys", "--environment", "dev", "--owner", "kim")).out) as { id: string };
    const key = async (...args: string[]) => JSON.parse((await aigov("-o", "json", "keys", "create", project.id, ...args)).out) as { scopes: object; key: string };
    expect((await key("--name", "every model")).scopes).toEqual({});
    expect((await key("--name", "tools only", "--no-models")).scopes).toEqual({ models: [] });
    const both = await aigov("keys", "create", project.id, "--name", "both", "--model", "mdl_00000000000000000000", "--no-models");
    expect(both.code).not.toBe(0);
    expect(both.err).toMatch(/--no-models.*cannot be used with.*--model|--model.*cannot be used with.*--no-models/);
  });

  it("publishes to the local gateway files, shows the revision and its diff, checks drift, rolls back", async () => {
    const { project, admin } = await withModel("t-cli-pub", "paula", "CLI publish", "cli.openai.azure.com");
    const diff = await aigov("policy", "diff");
    expect(diff.out).toMatch(/^\+\d+ ~0 -0 artifacts/);
    expect(diff.out).toContain("+++ b/policy:api/");

    const first = await aigov("policy", "publish", "--reason", "from the CLI", "--wait");
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^revision 1 \(rev_\w+\) published: \+\d+ ~0 -0 artifacts$/);
    // The local gateway is files mirroring ARM paths: the policy document is there, as compiled.
    const policyFile = join(t.app.dataDir, "apim", "apis", gatewayNames("t-cli-pub").api(project.id), "policies", "policy.xml");
    expect(readFileSync(policyFile, "utf8")).toContain("<policies>");
    expect((await aigov("policy", "publish")).out).toMatch(/^nothing to publish: the gateway holds revision 1/);

    const revisions = await aigov("-o", "json", "policy", "revisions");
    const [rev1] = JSON.parse(revisions.out) as { id: string; reason: string; createdBy: string }[];
    expect(rev1).toMatchObject({ reason: "from the CLI", createdBy: "paula" });

    expect((await aigov("policy", "drift", "--check")).out).toMatch(/^inSync \(revision 1\), checked .*: 0 of \d+ artifacts differ$/);
    writeFileSync(policyFile, readFileSync(policyFile, "utf8").replace("<inbound>", "<inbound><set-header name=\"x-portal-edit\" exists-action=\"override\"><value>1</value></set-header>"));
    const drift = await aigov("policy", "drift", "--check");
    expect(drift.out).toMatch(/^drifted \(revision 1\)/);
    expect(drift.out).toContain("+        <set-header name=\"x-portal-edit\"");

    const rollback = await aigov("policy", "rollback", rev1!.id, "--wait");
    expect(rollback.out).toMatch(/^revision 2 \(rev_\w+\) published/);
    expect(readFileSync(policyFile, "utf8")).not.toContain("x-portal-edit");
    expect((await aigov("policy", "drift", "--check")).out).toMatch(/^inSync \(revision 2\)/);
    const explain = await aigov("policy", "explain", project.id);
    expect(explain.out).toContain("structure");

    // A key with a profile of its own makes the system ask for a publish (its product); a person's
    // publish right after finds that pending revision holds the same, and --wait waits for it.
    await admin.keys.create(project.id, { name: "limited", limits: { tokensPerMinute: 100 } });
    const pending = (await admin.policy.revisions()).items[0]!;
    expect(pending).toMatchObject({ number: 3, status: "pending" });
    expect((await aigov("policy", "publish")).out).toBe(`nothing new to publish: revision 3 (${pending.id}) has it and is pending`);
    const waiting = aigov("policy", "publish", "--wait");
    await new Promise((r) => setTimeout(r, 300));
    await t.app.host.invokeTimer("gatewayPublishSweep");
    expect((await waiting).out).toBe(`nothing to publish: the gateway holds revision 3 (${pending.id})`);
    expect((await admin.policy.revision(pending.id)).status).toBe("published");
  });

  it("prints the problem's field errors and exits non-zero on bad input", async () => {
    await aigov("login", "--dev", "--tenant", "t1", "--user", "alice", "--roles", "TenantAdmin");
    const r = await aigov("projects", "create", "--name", "sandbox", "--environment", "sandbox", "--owner", "alice");
    expect(r.code).toBe(1);
    expect(r.err).toContain("400 ValidationFailed");
    expect(r.err).toContain("body.reviewDate: is required for sandbox projects");
    expect(r.err).toMatch(/correlation id: [0-9a-f-]{36}/);
  });

  it("an error names the problem's reason; with -o json stderr holds the problem document and stdout nothing", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t-cli-err", "--user", "eve", "--roles", "TenantAdmin")).code).toBe(0);
    expect((await aigov("projects", "create", "--name", "taken", "--environment", "dev", "--owner", "eve")).code).toBe(0);
    const table = await aigov("projects", "create", "--name", "taken", "--environment", "dev", "--owner", "eve");
    expect(table.code).toBe(1);
    expect(table.err).toContain("error 409 Conflict (name_taken): ");

    const json = await aigov("-o", "json", "projects", "create", "--name", "taken", "--environment", "dev", "--owner", "eve");
    expect(json.code).toBe(1);
    expect(json.out).toBe("");
    expect(JSON.parse(json.err)).toMatchObject({ status: 409, code: "Conflict", reason: "name_taken", correlationId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const invalid = await aigov("-o", "json", "projects", "create", "--name", "sandbox", "--environment", "sandbox", "--owner", "eve");
    expect(invalid.code).toBe(1);
    expect(JSON.parse(invalid.err)).toMatchObject({ reason: "validation_failed", errors: [{ field: "body.reviewDate", message: "is required for sandbox projects" }] });
  });

  it("policy publish|rollback --wait give up after --timeout with a non-zero exit", async () => {
    const { project, admin } = await withModel("t-cli-wait", "tim", "CLI wait", "wait.openai.azure.com");
    expect((await aigov("policy", "publish", "--wait", "--timeout", "60")).code).toBe(0);
    // The key's product makes a system revision that stays pending until the publish sweep runs (never, here).
    await admin.keys.create(project.id, { name: "limited", limits: { tokensPerMinute: 100 } });
    const pending = (await admin.policy.revisions()).items[0]!;
    expect(pending.status).toBe("pending");

    const started = Date.now();
    const waited = await aigov("policy", "publish", "--wait", "--timeout", "1");
    expect(waited.code).toBe(1);
    expect(waited.err).toContain(`revision ${pending.number} (${pending.id}) still pending after 1 s`);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await aigov("policy", "rollback", pending.id, "--wait", "--timeout", "0")).code).toBe(2);
    expect((await aigov("policy", "publish", "--wait", "--timeout", "soon")).err).toContain("--timeout expects a number of seconds");
  });

  it("reviews list|items print the next page's token on stderr, like the other lists", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t-cli-rev", "--user", "rhea", "--roles", "TenantAdmin")).code).toBe(0);
    const project = JSON.parse((await aigov("-o", "json", "projects", "create", "--name", "CLI reviews", "--environment", "dev", "--owner", "rhea")).out) as { id: string };
    const admin = await t.as("t-cli-rev", "rhea", ["TenantAdmin"]);
    await admin.keys.create(project.id, { name: "one" });
    await admin.keys.create(project.id, { name: "two" });
    const spec = (name: string) => ({ name, kind: "keys" as const, scope: { level: "project" as const, projectId: project.id }, stages: [{ reviewers: { type: "users" as const, users: ["rhea"] } }] });
    await admin.reviews.create(spec("first"));
    const review = await admin.reviews.create(spec("second"));
    await until(async () => (await admin.reviews.items(review.id)).items.length === 2, "the review's items");

    for (const args of [["reviews", "list"], ["reviews", "items", review.id]]) {
      const page = await aigov(...args, "--max-page-size", "1");
      expect(page.code).toBe(0);
      expect(page.out).not.toContain("more:");
      const token = /^more: --continuation-token (\S+)$/m.exec(page.err)?.[1];
      expect(token).toBeDefined();
      const next = await aigov("-o", "json", ...args, "--max-page-size", "1", "--continuation-token", token!);
      expect((JSON.parse(next.out) as { items: unknown[] }).items).toHaveLength(1);
    }
  });

  it("keys lookup reads the secret from stdin (without --key, or --key -), never from a terminal", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t-cli-lookup", "--user", "lou", "--roles", "TenantAdmin")).code).toBe(0);
    const project = JSON.parse((await aigov("-o", "json", "projects", "create", "--name", "CLI lookup", "--environment", "dev", "--owner", "lou")).out) as { id: string };
    const key = await (await t.as("t-cli-lookup", "lou", ["TenantAdmin"])).keys.create(project.id, { name: "leaked" });
    const bodies: string[] = [];
    const recording: typeof fetch = (input, init) => (bodies.push(String(init?.body ?? "")), fetch(input, init));
    const lookup = async (stdin: string | undefined, ...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(["--endpoint", t.url, "-o", "json", "keys", "lookup", ...args], { out: (s) => out.push(s), err: (s) => err.push(s), env, fetch: recording, stdin: () => stdin });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    for (const args of [[], ["--key", "-"]]) {
      const piped = await lookup(`${key.key}\n`, ...args);
      expect(piped.code, piped.err).toBe(0);
      expect(JSON.parse(piped.out)).toMatchObject({ keyId: key.id, secret: "current" });
    }
    expect(bodies).toEqual([JSON.stringify({ key: key.key }), JSON.stringify({ key: key.key })]);
    expect(JSON.parse((await lookup(undefined, "--key", key.key)).out)).toMatchObject({ keyId: key.id });

    bodies.length = 0;
    const terminal = await lookup(undefined);
    expect(terminal.code).toBe(2);
    expect(terminal.err).toContain("pipe the key on stdin");
    expect((await lookup("\n", "--key", "-")).err).toContain("no key on stdin");
    expect(bodies).toEqual([]);
  });

  it("a spec file that is not JSON is named, and none of its text is quoted (it may hold a secret)", async () => {
    await aigov("login", "--dev", "--tenant", "t1", "--user", "alice", "--roles", "TenantAdmin");
    const file = join(mkdtempSync(join(tmpdir(), "aigov-cli-")), "connection.json");
    // A value without its quotes: JSON.parse's message would quote the text there ("Unexpected token 'w', …").
    writeFileSync(file, '{"name":"aws","credentials":{"kind":"awsAccessKey","accessKeyId":"AKIAFAKE","secretAccessKey": wJalrXUtnFEMIK7MDENGbPxRfiCY}}');
    const r = await aigov("connections", "create", "--file", file);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${file} is not valid JSON`);
    expect(r.err + r.out).not.toMatch(/wJalr|fiCY/);
  });

  it("keys … --all acts on the keys the verb applies to, and exits non-zero when one of them fails", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t-cli-all", "--user", "ari", "--roles", "TenantAdmin")).code).toBe(0);
    const project = JSON.parse((await aigov("-o", "json", "projects", "create", "--name", "CLI all", "--environment", "dev", "--owner", "ari")).out) as { id: string };
    const admin = await t.as("t-cli-all", "ari", ["TenantAdmin"]);
    const [one, gone, two] = [await admin.keys.create(project.id, { name: "one" }), await admin.keys.create(project.id, { name: "gone" }), await admin.keys.create(project.id, { name: "two" })];
    await admin.keys.revoke(project.id, gone.id, { reason: "left" }, (await admin.keys.get(project.id, gone.id)).etag);

    // "every active key": the revoked one is not tried (it could only fail).
    const rotated = await aigov("keys", "rotate", project.id, "--all", "--overlap", "PT0S");
    expect(rotated.err).not.toContain(gone.id);
    expect(rotated.code).toBe(0);
    expect(rotated.out.split("\n").map((l) => (JSON.parse(l) as { id: string }).id).sort()).toEqual([one.id, two.id].sort());

    // One key's call fails: the run goes on, and the exit code says that not everything was done.
    const failing: typeof fetch = (input, init) =>
      String(input).includes(`${two.id}:suspend`)
        ? Promise.resolve(new Response(JSON.stringify({ type: "about:blank", title: "Unavailable", status: 503, code: "Unavailable", reason: "unavailable" }), { status: 503, headers: { "content-type": "application/problem+json" } }))
        : fetch(input, init);
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(["--endpoint", t.url, "keys", "suspend", project.id, "--all", "--reason", "incident"], { out: (s) => out.push(s), err: (s) => err.push(s), env, fetch: failing });
    expect(err.join("\n")).toContain("1 done, 1 failed");
    expect(code).not.toBe(0);
    expect((await admin.keys.get(project.id, one.id)).status).toBe("suspended");
  });

  it("set-sync takes on or off, and refuses anything else instead of switching sync off", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t-cli-sync", "--user", "sam", "--roles", "TenantAdmin")).code).toBe(0);
    const project = JSON.parse((await aigov("-o", "json", "projects", "create", "--name", "CLI sync", "--environment", "dev", "--owner", "sam")).out) as { id: string };
    expect((await aigov("agents", "set-sync", project.id, "on")).code).toBe(0);
    expect((await aigov("connections", "set-sync", "on")).code).toBe(0);
    const admin = await t.as("t-cli-sync", "sam", ["TenantAdmin"]);
    expect((await admin.agents.getSettings(project.id)).syncEnabled).toBe(true);
    expect((await admin.connections.getSettings()).syncEnabled).toBe(true);

    const typo = await aigov("agents", "set-sync", project.id, "true");
    expect(typo.code).not.toBe(0);
    expect(typo.err).toMatch(/on, off/);
    expect((await aigov("connections", "set-sync", "yes")).code).not.toBe(0);
    expect((await admin.agents.getSettings(project.id)).syncEnabled).toBe(true);
    expect((await admin.connections.getSettings()).syncEnabled).toBe(true);
  });

  it("agents issue-key -o json prints one JSON document holding the key once", async () => {
    expect((await aigov("login", "--dev", "--tenant", "t-cli-agent", "--user", "ada", "--roles", "TenantAdmin")).code).toBe(0);
    const project = JSON.parse((await aigov("-o", "json", "projects", "create", "--name", "CLI agent", "--environment", "dev", "--owner", "ada")).out) as { id: string };
    const admin = await t.as("t-cli-agent", "ada", ["TenantAdmin"]);
    const model = await admin.models.create(project.id, {
      name: "gpt-4o",
      provider: "azure-openai",
      modelName: "gpt-4o",
      backends: [{ id: "weu", url: "https://cli.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
    });
    const agent = await admin.agents.create(project.id, { name: "planner", guardrails: { models: [model.id] } });
    const issued = await aigov("-o", "json", "agents", "issue-key", project.id, agent.id);
    expect(issued.code).toBe(0);
    const key = JSON.parse(issued.out) as { id: string; key: string };
    expect(key.id).toMatch(/^key_/);
    expect(issued.out.split(key.key).length - 1).toBe(1);
  });

  it("-p names the profile: login saves under it, and a profile that does not exist is a usage error, not an anonymous call", async () => {
    const own = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-")), "config.json") };
    const requests: string[] = [];
    const counting: typeof fetch = (input, init) => (requests.push(String(input)), fetch(input, init));
    const run = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(args, { out: (s) => out.push(s), err: (s) => err.push(s), env: own, fetch: counting });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    expect((await run("-e", t.url, "-p", "staging", "login", "--dev", "--tenant", "t-cli-prof", "--user", "pia", "--roles", "TenantAdmin")).code).toBe(0);
    const profiles = JSON.parse(readFileSync(own.AIGOV_CONFIG, "utf8")) as { current: string; profiles: Record<string, unknown> };
    expect(Object.keys(profiles.profiles)).toEqual(["staging"]);
    expect((await run("-p", "staging", "projects", "list")).code).toBe(0);

    requests.length = 0;
    const typo = await run("-p", "stagign", "projects", "list");
    expect(typo.code).toBe(2);
    expect(typo.err).toContain("no profile 'stagign'");
    expect(requests).toEqual([]);
  });

  it("refuses a wrong role with 403 and unknown commands with a usage error", async () => {
    await aigov("login", "--dev", "--tenant", "t1", "--user", "rita", "--roles", "Reader");
    const r = await aigov("projects", "create", "--name", "x", "--environment", "dev", "--owner", "rita");
    expect(r).toMatchObject({ code: 1 });
    expect(r.err).toContain("403 Forbidden");
    expect((await aigov("projects", "explode")).code).not.toBe(0);
    const health = await aigov("-o", "json", "health");
    expect(JSON.parse(health.out)).toMatchObject({ status: "ok", checks: { store: { status: "ok" } } });
  });
});
