import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { keyExemptionSpec } from "../support/governed.js";
import { until } from "../support/until.js";

let t: TestApp;
const env = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-bulk-")), "config.json") };

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.stop());

/** Runs the CLI against the test app; `stdin` is what is piped to it (undefined: a terminal). */
async function aigov(stdin: string | undefined, ...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(["--endpoint", t.url, ...args], { out: (s) => out.push(s), err: (s) => err.push(s), env, stdin: () => stdin });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("aigov CLI: bulk verbs, specs from stdin, the new fields", () => {
  it("keys resume --all names each refused key's reason and detail, goes on, and exits 1", async () => {
    const admin = await t.as("t-cli-bulk", "ada", ["TenantAdmin"]);
    const project = await admin.projects.create({ name: "CLI bulk", environment: "dev", owner: "ada" });
    const dev = await t.as("t-cli-bulk", "dan", ["Developer"]);
    const mine = await dev.keys.create(project.id, { name: "mine" });
    const held = await dev.keys.create(project.id, { name: "held" });
    await dev.keys.suspend(project.id, mine.id, { reason: "pause" }, (await dev.keys.get(project.id, mine.id)).etag);
    await admin.keys.suspend(project.id, held.id, { reason: "incident" }, (await admin.keys.get(project.id, held.id)).etag);

    expect((await aigov(undefined, "login", "--dev", "--tenant", "t-cli-bulk", "--user", "dan", "--roles", "Developer")).code).toBe(0);
    // Where a person looks first: who suspended the key.
    const shown = await aigov(undefined, "keys", "show", project.id, held.id);
    expect(shown.out).toContain("suspendedBy");
    expect(shown.out).toContain("admin");
    const listed = await aigov(undefined, "keys", "list", project.id);
    expect(listed.out).toContain("suspendedBy");
    expect(listed.out).toContain("admin");

    const r = await aigov(undefined, "keys", "resume", project.id, "--all", "--reason", "back");
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${held.id}: 403 Forbidden (key_suspended_by_admin): an admin suspended this key: only an admin resumes it`);
    expect(r.err).toContain("1 done, 1 failed");
    expect(r.err).toContain("1 of 2 keys failed");
    expect((await admin.keys.get(project.id, mine.id)).status).toBe("active");
    expect((await admin.keys.get(project.id, held.id)).status).toBe("suspended");

    // With -o json each refusal is its problem document, one line on stderr.
    await dev.keys.suspend(project.id, mine.id, { reason: "pause" }, (await dev.keys.get(project.id, mine.id)).etag);
    const j = await aigov(undefined, "-o", "json", "keys", "resume", project.id, "--all", "--reason", "back");
    expect(j.code).toBe(1);
    const problems = j.err.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(problems).toEqual([expect.objectContaining({ keyId: held.id, status: 403, reason: "key_suspended_by_admin" })]);
  });

  it("--file - reads the JSON body from stdin; bad JSON there is a clear error, and a terminal is refused", async () => {
    expect((await aigov(undefined, "login", "--dev", "--tenant", "t-cli-stdin", "--user", "sue", "--roles", "TenantAdmin")).code).toBe(0);
    const created = await aigov(JSON.stringify({ name: "from stdin", environment: "dev", owner: "sue", tags: { team: "pipe" } }), "-o", "json", "projects", "create", "--file", "-");
    expect(created.code, created.err).toBe(0);
    const project = JSON.parse(created.out) as { id: string; name: string; tags: Record<string, string> };
    expect(project).toMatchObject({ name: "from stdin", tags: { team: "pipe" } });

    const spec = {
      name: "gpt-4o",
      provider: "azure-openai",
      modelName: "gpt-4o",
      backends: [{ id: "weu", url: "https://stdin.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
    };
    const model = await aigov(JSON.stringify(spec), "-o", "json", "models", "register", project.id, "--file", "-");
    expect(model.code, model.err).toBe(0);
    expect(JSON.parse(model.out)).toMatchObject({ name: "gpt-4o" });

    const exemption = await aigov(JSON.stringify({ control: "contentSafety" }), "exemptions", "request", "--file", "-", "--scope", "tenant");
    expect(exemption.err).not.toContain("ENOENT");

    const bad = await aigov('{"name": from stdin}', "models", "register", project.id, "--file", "-");
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/^error: stdin is not valid JSON/);
    expect(bad.err).not.toContain("    at ");
    expect(bad.err).not.toContain("from stdin");

    const terminal = await aigov(undefined, "projects", "create", "--file", "-");
    expect(terminal.code).toBe(2);
    expect(terminal.err).toContain("pipe the JSON on stdin");
  });
});

describe("aigov CLI: where a person looks", () => {
  it("projects get shows the project's gate drift (since when, which gates, why)", async () => {
    expect((await aigov(undefined, "login", "--dev", "--tenant", "t-cli-drift", "--user", "gil", "--roles", "TenantAdmin")).code).toBe(0);
    const admin = await t.as("t-cli-drift", "gil", ["TenantAdmin"]);
    const project = await admin.projects.create({ name: "CLI drift", environment: "dev", owner: "gil" });
    expect((await aigov(undefined, "projects", "get", project.id)).out).not.toContain("gate drift");
    // The lifecycle sweep's record (server-owned): written straight to the store here.
    const { resources } = await t.container().items.query<Record<string, unknown>>({ query: "SELECT * FROM c WHERE c.tenantId = 't-cli-drift' AND c.id = @id", parameters: [{ name: "@id", value: project.id }] }).fetchAll();
    const doc = resources[0]!;
    doc.gateDrift = { since: "2026-01-02T00:00:00.000Z", gates: [{ gate: "accessReview", since: "2026-01-02T00:00:00.000Z", detail: "no access review of the project's keys in 90 days" }] };
    await t.container().items.upsert(doc);
    expect((await admin.projects.get(project.id)).gateDrift?.gates[0]?.gate).toBe("accessReview");

    const shown = await aigov(undefined, "projects", "get", project.id);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain("gate drift: out of its dev gates since 2026-01-02T00:00:00.000Z");
    expect(shown.out).toContain("accessReview");
    expect(shown.out).toContain("no access review of the project's keys in 90 days");
  });

  it("exemptions list and show say whether the gateway applies a key exemption in force", async () => {
    expect((await aigov(undefined, "login", "--dev", "--tenant", "t-cli-exgw", "--user", "ivy", "--roles", "TenantAdmin")).code).toBe(0);
    const admin = await t.as("t-cli-exgw", "ivy", ["TenantAdmin"]);
    const project = await admin.projects.create({ name: "CLI exemption", environment: "dev", owner: "ivy", settings: { tokens: { perMinute: { limit: 20, per: "key" } } } } as never);
    const dora = await t.as("t-cli-exgw", "dora", ["Developer"]);
    const key = await dora.keys.create(project.id, { name: "bulk" });
    const requested = await dora.exemptions.request(keyExemptionSpec(project.id, key.id));
    const approval = await admin.approvals.get(requested.approvalId);
    await admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await admin.exemptions.get(requested.id)).status === "active" ? true : undefined), "exemption active");
    // Raised past the exemption, the project's own limit leaves the exemption nothing to relax: not applied.
    await admin.projects.update(project.id, { settings: { tokens: { perMinute: { limit: 5000, per: "key" } } } } as never, (await admin.projects.get(project.id)).etag);
    const gateway = (await admin.exemptions.get(requested.id)).gateway;
    expect(gateway?.applied).toBe(false);

    for (const args of [["exemptions", "list"], ["exemptions", "show", requested.id]]) {
      const r = await aigov(undefined, ...args);
      expect(r.code).toBe(0);
      expect(r.out).toContain("gateway");
      expect(r.out).toContain(`NOT applied: ${gateway!.why!.slice(0, 20)}`);
    }
  });
});

describe("aigov CLI: a caller's key for an agent (docs/agents.md)", () => {
  it("keys create --agent scopes the key to the agent", async () => {
    expect((await aigov(undefined, "login", "--dev", "--tenant", "t-cli-caller", "--user", "cal", "--roles", "TenantAdmin")).code).toBe(0);
    const admin = await t.as("t-cli-caller", "cal", ["TenantAdmin"]);
    const project = await admin.projects.create({ name: "CLI caller", environment: "dev", owner: "cal" });
    const agent = await admin.agents.create(project.id, { name: "planner" });
    const r = await aigov(undefined, "-o", "json", "keys", "create", project.id, "--name", "caller", "--agent", agent.id);
    expect(r.code, r.err).toBe(0);
    const key = JSON.parse(r.out) as { id: string };
    expect((await admin.keys.get(project.id, key.id)).scopes).toEqual({ agents: [agent.id] });
  });
});
