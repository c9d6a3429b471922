/**
 * A broad walk of mutations across the estate, then the non-negotiables checked over what it left:
 * the audit chain verifies, no secret the walk sent or received is anywhere in the store, the event
 * stream, the audit log or a later read, and no tenant's audit records or events name another tenant.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let a1: AigovClient;
let a2: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  a1 = await t.as("sweep-one", "alice", ["TenantAdmin", "Auditor"]);
  a2 = await t.as("sweep-two", "bob", ["TenantAdmin", "Auditor"]);
});
afterAll(() => t.stop());

const step = async <T>(label: string, f: () => Promise<T>, log: string[]): Promise<T | undefined> => {
  try {
    return await f();
  } catch (err) {
    log.push(`${label}: ${(err as Error).message}`);
    return undefined;
  }
};

/** A write that may race the server's first discovery run (it records its outcome on the server): read again and retry. */
async function fresh<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (err) {
      if ((err as { status?: number }).status !== 412 || i === 5) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function walk(c: AigovClient, tenant: string, tag: string, secrets: string[], reads: (() => Promise<unknown>)[], log: string[]): Promise<void> {
  const p = (await c.projects.create(projectSpec(`sweep ${tag}`)))!;
  const p2 = (await c.projects.create(projectSpec(`sweep other ${tag}`)))!;
  await step("project update", () => c.projects.update(p.id, { description: "walked" }, p.etag), log);

  const providerKey = `sk-PROVIDER-${tag}-0123456789abcdef`;
  const providerKey2 = `sk-PROVIDER2-${tag}-0123456789abcdef`;
  secrets.push(providerKey, providerKey2);
  const m = await step(
    "model create",
    () => c.models.create(p.id, { name: `m-${tag}`, provider: "openai", modelName: "gpt-4o", backends: [{ id: "b", url: "https://api.openai.com", region: "global-1", credential: { type: "apiKey", header: "Authorization", key: providerKey } }] } as never),
    log,
  );
  if (m) {
    reads.push(() => c.models.get(p.id, m.id), () => c.models.list(p.id));
    const mu = await step("model update", () => c.models.update(p.id, m.id, { backends: [{ id: "b", url: "https://api.openai.com", region: "global-1", credential: { type: "apiKey", header: "Authorization", key: providerKey2 } }] } as never, m.etag), log);
    const mu2 = await step("model update 2", () => c.models.update(p.id, m.id, { displayName: "walked" } as never, (mu ?? m).etag), log);
    void mu2;
  }

  const k = await step("key create", () => c.keys.create(p.id, { name: `key ${tag}` } as never), log);
  if (k) {
    secrets.push((k as { key: string }).key);
    reads.push(() => c.keys.get(p.id, k.id), () => c.keys.list(p.id));
    let etag = (await c.keys.get(p.id, k.id)).etag;
    const r = await step("key rotate", () => c.keys.rotate(p.id, k.id, { overlap: "PT1H" } as never, etag), log);
    if (r && (r as { key?: string }).key) secrets.push((r as { key: string }).key);
    etag = (await c.keys.get(p.id, k.id)).etag;
    await step("key share", () => c.keys.share(p.id, k.id, { projectId: p2.id, justification: "walk" } as never, etag), log);
    etag = (await c.keys.get(p.id, k.id)).etag;
    await step("key unshare", () => c.keys.unshare(p.id, k.id, p2.id, etag), log);
    etag = (await c.keys.get(p.id, k.id)).etag;
    await step("key suspend", () => c.keys.suspend(p.id, k.id, { reason: "walk" } as never, etag), log);
    etag = (await c.keys.get(p.id, k.id)).etag;
    await step("key resume", () => c.keys.resume(p.id, k.id, { reason: "walk" } as never, etag), log);
    await step("key lookup", () => c.keys.lookup((k as { key: string }).key), log);
  }
  const k2 = await step("key2 create", () => c.keys.create(p.id, { name: `key2 ${tag}` } as never), log);
  if (k2) {
    secrets.push((k2 as { key: string }).key);
    await step("key2 revoke", async () => c.keys.revoke(p.id, k2.id, { reason: "walk" } as never, (await c.keys.get(p.id, k2.id)).etag), log);
  }

  const mcpSecret = `MCP-HEADER-${tag}-secret-value`;
  const mcpSecret2 = `MCP-HEADER2-${tag}-secret-value`;
  secrets.push(mcpSecret, mcpSecret2);
  const s = await step("server create", () => c.tools.createServer(p.id, { name: `srv-${tag}`, source: { kind: "remote", url: "https://mcp.example.com/mcp" }, auth: { type: "header", header: "x-api-key", value: mcpSecret }, discovery: { enabled: false, intervalHours: 24 } } as never), log);
  if (s) {
    reads.push(() => c.tools.getServer(p.id, s.id), () => c.tools.listServers(p.id), () => c.tools.exportServer(p.id, s.id));
    const su = await step("server update", () => fresh(async () => c.tools.updateServer(p.id, s.id, { auth: { type: "header", header: "x-api-key", value: mcpSecret2 } } as never, (await c.tools.getServer(p.id, s.id)).etag)), log);
    await step("server discover", () => c.tools.discover(p.id, s.id), log);
    void su;
    await step("server delete", () => fresh(async () => c.tools.deleteServer(p.id, s.id, (await c.tools.getServer(p.id, s.id)).etag)), log);
  }
  const ts = await step("tools settings get", () => c.tools.getSettings(p.id), log);
  if (ts) await step("tools settings put", () => c.tools.putSettings(p.id, { approvalMode: "destructive" } as never, ts.etag), log);

  const agent = await step("agent create", () => c.agents.create(p.id, { name: `agent ${tag}`, description: "walked", endpoint: { url: "https://agent.example.com/a2a", protocol: "a2a" } } as never), log);
  if (agent) {
    const au = await step("agent update", () => c.agents.update(p.id, agent.id, { description: "walked again" } as never, agent.etag), log);
    void au;
    await step("agent transition", () => c.agents.transition(p.id, agent.id, { to: "active" } as never), log);
    const cur = await c.agents.get(p.id, agent.id);
    await step("agent delete", () => c.agents.delete(p.id, agent.id, cur.etag), log);
  }
  const as = await step("agent settings get", () => c.agents.getSettings(p.id), log);
  if (as) await step("agent settings put", () => c.agents.putSettings(p.id, { syncEnabled: true } as never, as.etag), log);

  const conSecret = `AWS-SECRET-${tag}-abcdefghijklmnop`;
  const conSecret2 = `AWS-SECRET2-${tag}-abcdefghijklmnop`;
  secrets.push(conSecret, conSecret2);
  const con = await step("connection create", () => c.connections.create({ name: `con-${tag}`, projectId: p.id, scope: { cloud: "bedrock", accountId: "123456789012" }, regions: ["us-east-1"], credentials: { kind: "awsAccessKey", accessKeyId: "AKIAABCDEFGHIJKLMNOP", secretAccessKey: conSecret } } as never), log);
  if (con) {
    reads.push(() => c.connections.get(con.id), () => c.connections.list());
    const cu = await step("connection update", () => c.connections.update(con.id, { credentials: { kind: "awsAccessKey", accessKeyId: "AKIAABCDEFGHIJKLMNOP", secretAccessKey: conSecret2 } } as never, con.etag), log);
    const cu2 = await step("connection disable", async () => c.connections.update(con.id, { enabled: false } as never, (await c.connections.get(con.id)).etag), log);
    void cu;
    void cu2;
    await step("connection delete", async () => c.connections.delete(con.id, (await c.connections.get(con.id)).etag), log);
  }
  const ss = await step("sync settings get", () => c.connections.getSettings(), log);
  if (ss) await step("sync settings put", () => c.connections.putSettings({ syncEnabled: true } as never, ss.etag), log);

  const settings = await step("settings get", () => c.settings.get(), log);
  if (settings) await step("settings put", () => c.settings.put({ settings: { tokens: { perMinute: { limit: 1000 } } } } as never, settings.etag), log);
  const routes = await step("routes get", () => c.approvals.routes(), log);
  if (routes) await step("routes put", () => c.approvals.putRoutes({ routes: [{ name: "walk", match: { subjectType: "model" }, stages: [{ approvers: [{ user: "walker" }], decisionTimeout: "P1D" }] }] } as never, routes.etag), log);
  const ep = await step("exemption policy get", () => c.exemptions.policy(), log);
  if (ep) await step("exemption policy put", () => c.exemptions.putPolicy({ maxDays: { waiver: 30, mitigated: 90 } } as never, ep.etag), log);

  const ex = await step(
    "exemption request",
    () =>
      c.exemptions.request({
        control: "tokens.perMinute",
        scope: { level: "project", projectId: p.id },
        relaxation: { kind: "limit", value: 5000 },
        category: "mitigated",
        owner: "walker",
        reason: { deliveryBlocker: "walk", affectedControl: "walk", expectedEndState: "walk" },
        expiresAt: new Date(Date.now() + 10 * 24 * 3600 * 1000).toISOString(),
      } as never),
    log,
  );
  if (ex) await step("exemption revoke", async () => c.exemptions.revoke(ex.id, { reason: "walk" } as never, (await c.exemptions.get(ex.id)).etag), log);

  const ap = await step("approval create", () => c.approvals.create({ subject: { resourceType: "model", resourceId: `walk-${tag}`, change: { enable: true } }, justification: "walk", stages: [{ approvers: [{ user: "someone-else" }], decisionTimeout: "P1D" }] } as never), log);
  void ap;

  const rv = await step("review create", () => c.reviews.create({ name: `walk ${tag}`, kind: "keys", scope: { level: "tenant" }, stages: [{ reviewers: { type: "users", users: ["walker"] }, durationDays: 7 }] } as never), log);
  if (rv) await step("review stop", async () => c.reviews.stop(rv.id, { reason: "walk" } as never, (await c.reviews.get(rv.id)).etag), log);

  const carol = await t.as(tenant, "carol", ["TenantAdmin", "Approver"]);
  const pending = (await carol.approvals.list({ maxPageSize: 50 } as never)).items.filter((x) => x.status === "pending" && x.requester !== "carol");
  expect(pending.length).toBeGreaterThan(0);
  for (const x of pending) {
    // The free-form request names its own approver ("someone-else"); the others follow the tenant's routes.
    if (x.subject.resourceId === `walk-${tag}`) continue;
    await step(`approve ${x.subject.resourceType}`, async () => carol.approvals.decide(x.id, { decision: "approve", justification: "ok" } as never, (await carol.approvals.get(x.id)).etag), log);
  }
  const mi = await step("mi model create", () => c.models.create(p.id, { name: `mi-${tag}`, provider: "azure-openai", modelName: "gpt-4o", backends: [{ id: "primary", url: "https://walk.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }] } as never), log);
  if (mi) {
    const guarded = await step("guarded agent create", () => c.agents.create(p.id, { name: `guarded ${tag}`, guardrails: { models: [mi.id] } } as never), log);
    await step("publish", () => c.policy.publish({ reason: "walk" } as never), log);
    if (guarded) {
      const issued = await step("agent key issue", () => c.agents.issueKey(p.id, guarded.id, {}), log);
      if (issued) {
        secrets.push((issued as { key: string }).key);
        reads.push(() => c.agents.get(p.id, guarded.id), () => c.keys.get(p.id, (issued as { id: string }).id));
      }
      await step("guarded agent retire", () => c.agents.transition(p.id, guarded.id, { to: "retired" } as never), log);
    }
  }
  if (m) await step("model delete", async () => c.models.delete(p.id, m.id, (await c.models.get(p.id, m.id)).etag), log);
  await step("project2 delete", async () => c.projects.delete(p2.id, (await c.projects.get(p2.id)).etag), log);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

/** Every audit record a tenant's auditor reads: the tenant's chain and each project's. */
async function auditOf(c: AigovClient) {
  const out = [];
  for (const { scope } of (await c.audit.verify()).scopes) {
    let token: string | undefined;
    do {
      const page = await c.audit.list({ scope, maxPageSize: 100, ...(token ? { continuationToken: token } : {}) });
      out.push(...page.items);
      token = page.continuationToken;
    } while (token);
  }
  return out;
}

describe("a broad walk of mutations", () => {
  it("leaves a verifying chain, no secret anywhere, and each tenant's records its own", async () => {
    const secrets: string[] = [];
    const reads: (() => Promise<unknown>)[] = [];
    const log: string[] = [];
    await walk(a1, "sweep-one", "one", secrets, reads, log);
    await walk(a2, "sweep-two", "two", secrets, reads, log);
    await t.relay();
    await t.relay();
    expect(log).toEqual([]);

    expect(await a1.audit.verify()).toMatchObject({ ok: true });
    expect(await a2.audit.verify()).toMatchObject({ ok: true });

    const { resources: docs } = await t.container().items.query("SELECT * FROM c").fetchAll();
    const dump = JSON.stringify(docs);
    const events = t.events();
    const eventText = JSON.stringify(events);
    const audits = [...(await auditOf(a1)), ...(await auditOf(a2))];
    const later = JSON.stringify(await Promise.all(reads.map((r) => r().catch((e: unknown) => String(e)))));
    // Data-dir files other than the encrypted secret store.
    const files = filesUnder(t.app.dataDir).filter((f) => !f.includes(`${join(t.app.dataDir, "secrets")}`));
    const fileText = files.map((f) => readFileSync(f).toString("latin1")).join("\n");
    for (const s of secrets) {
      expect(dump.includes(s), `store holds ${s}`).toBe(false);
      expect(eventText.includes(s), `events hold ${s}`).toBe(false);
      expect(JSON.stringify(audits).includes(s), `audit holds ${s}`).toBe(false);
      expect(later.includes(s), `reads hold ${s}`).toBe(false);
      expect(fileText.includes(s), `data files hold ${s}`).toBe(false);
    }

    // Each tenant's audit records and events are its own.
    for (const [c, tenant] of [[a1, "sweep-one"], [a2, "sweep-two"]] as const) {
      const list = await auditOf(c);
      expect(list.length).toBeGreaterThan(10);
      expect(list.filter((r) => r.tenantId !== tenant)).toEqual([]);
    }
    const docsAudit = docs.filter((d: { docType?: string }) => d.docType === "audit");
    for (const e of events) {
      expect(e.subject, JSON.stringify(e)).toMatch(/^\/tenants\/(sweep-one|sweep-two)\//);
      const tenant = /^\/tenants\/([^/]+)\//.exec(e.subject!)![1]!;
      const other = tenant === "sweep-one" ? "sweep-two" : "sweep-one";
      expect(JSON.stringify(e.data).includes(other), JSON.stringify(e)).toBe(false);
    }
    // Every audit record has exactly one event (same count per tenant).
    for (const tenant of ["sweep-one", "sweep-two"]) {
      const nAudit = docsAudit.filter((d: { tenantId: string }) => d.tenantId === tenant).length;
      const nEvents = events.filter((e) => e.subject!.startsWith(`/tenants/${tenant}/`)).length;
      expect(nEvents, tenant).toBe(nAudit);
    }
  }, 120_000);
});
