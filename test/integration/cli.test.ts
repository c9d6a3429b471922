import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../src/cli/main.js";
import { startTestApp, type TestApp } from "../support/app.js";

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

  it("prints the problem's field errors and exits non-zero on bad input", async () => {
    await aigov("login", "--dev", "--tenant", "t1", "--user", "alice", "--roles", "TenantAdmin");
    const r = await aigov("projects", "create", "--name", "sandbox", "--environment", "sandbox", "--owner", "alice");
    expect(r.code).toBe(1);
    expect(r.err).toContain("400 ValidationFailed");
    expect(r.err).toContain("body.reviewDate: is required for sandbox projects");
    expect(r.err).toMatch(/correlation id: [0-9a-f-]{36}/);
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
