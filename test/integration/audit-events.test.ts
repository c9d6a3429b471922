import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf } from "../../src/domain/audit/chain.js";
import type { AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let admin: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t1", "alice", ["TenantAdmin", "Auditor"]);
});
afterAll(() => t.stop());

describe("audit and events", () => {
  it("every mutation writes exactly one audit record and delivers exactly one CloudEvent", async () => {
    const p = await admin.projects.create(projectSpec("audited", { tags: { a: "1" } }));
    const u = await admin.projects.update(p.id, { owner: "bob" }, p.etag);
    await admin.projects.delete(p.id, u.etag);
    // A refused mutation leaves no trace.
    await admin.projects.create(projectSpec("AUDITED")).catch(() => undefined);
    await admin.projects.create(projectSpec("audited")).catch(() => undefined);

    const audit = await admin.audit.list({ resource: `/projects/${p.id}` });
    expect(audit.items.map((r) => r.action)).toEqual(["project.delete", "project.update", "project.create"]);
    const [del, upd, cre] = audit.items;
    const { etag: _e1, ...createdView } = p;
    const { etag: _e2, ...updatedView } = u;
    expect(cre).toMatchObject({ actor: "alice", tenantId: "t1", scope: "tenant", beforeDigest: null, afterDigest: digestOf(createdView) });
    expect(upd).toMatchObject({ beforeDigest: digestOf(createdView), afterDigest: digestOf(updatedView) });
    expect(del).toMatchObject({ beforeDigest: digestOf(updatedView), afterDigest: null });
    expect(upd!.prevHash).toBe(cre!.hash);

    expect(t.events()).toEqual([]); // nothing leaves before the relay runs
    await t.relay();
    const events = t.events().filter((e) => e.subject === `/tenants/t1/projects/${p.id}`);
    expect(events.map((e) => e.type)).toEqual(["aigov.project.created.v1", "aigov.project.updated.v1", "aigov.project.deleted.v1"]);
    for (const e of events) {
      expect(e).toMatchObject({ specversion: "1.0", source: "/aigov", datacontenttype: "application/json" });
      expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(events[0]!.data).toEqual(createdView);
    expect(events[1]!.data).toMatchObject({ owner: "bob" });
    // Delivered records leave the outbox; running the relay again sends nothing new.
    await t.relay();
    expect(t.events().filter((e) => e.subject === `/tenants/t1/projects/${p.id}`)).toHaveLength(3);
    const { resources: pending } = await t.container().items.query("SELECT * FROM c WHERE c.docType = 'outbox'").fetchAll();
    expect(pending).toEqual([]);
  });

  it("the correlation id of the request is recorded", async () => {
    const token = await t.token("t1", "alice", ["TenantAdmin"]);
    const res = await fetch(`${t.url}/api/projects`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "x-correlation-id": "corr-42" },
      body: JSON.stringify(projectSpec("correlated")),
    });
    const created = (await res.json()) as { id: string };
    const audit = await admin.audit.list({ resource: `/projects/${created.id}` });
    expect(audit.items[0]!.correlationId).toBe("corr-42");
  });

  it("filters by actor and time, and pages", async () => {
    const bob = await t.as("t1", "bob", ["TenantAdmin"]);
    const before = new Date().toISOString();
    await bob.projects.create(projectSpec("by bob 1"));
    await bob.projects.create(projectSpec("by bob 2"));
    const byBob = await admin.audit.list({ actor: "bob" });
    expect(byBob.items.map((r) => r.actor)).toEqual(["bob", "bob"]);
    const recent = await admin.audit.list({ from: before });
    expect(recent.items.every((r) => r.at >= before)).toBe(true);
    expect(recent.items).toHaveLength(2);
    const future = await admin.audit.list({ to: "2000-01-01T00:00:00Z" });
    expect(future.items).toEqual([]);
    const page1 = await admin.audit.list({ maxPageSize: 2 });
    expect(page1.items).toHaveLength(2);
    const page2 = await admin.audit.list({ maxPageSize: 2, continuationToken: page1.continuationToken! });
    expect(page2.items[0]!.seq).toBe(page1.items[1]!.seq - 1);
  });

  it("only Auditors and TenantAdmins read the audit log, and no route changes it", async () => {
    const dev = await t.as("t1", "dan", ["Developer", "ProjectAdmin", "Reader"]);
    await expect(dev.audit.list()).rejects.toMatchObject({ status: 403 });
    await expect(dev.audit.verify()).rejects.toMatchObject({ status: 403 });
    const doc = await t.anonymous.openApi();
    const auditMethods = Object.entries(doc.paths as Record<string, object>)
      .filter(([path]) => path.startsWith("/audit"))
      .flatMap(([, item]) => Object.keys(item));
    expect(new Set(auditMethods)).toEqual(new Set(["get"]));
  });

  it("verify detects a record edited directly in the store, and names it", async () => {
    const c = await t.as("tamper", "tim", ["TenantAdmin", "Auditor"]);
    const p = await c.projects.create(projectSpec("one"));
    await c.projects.update(p.id, { description: "two" }, p.etag);
    await c.projects.create(projectSpec("three"));
    expect(await c.audit.verify()).toMatchObject({ ok: true, recordsChecked: 3 });

    const container = t.container();
    const id = "audit._tenant.000000000002";
    const { resource } = await container.item(id, ["tamper", "_tenant"]).read();
    await container.item(id, ["tamper", "_tenant"]).replace({ ...resource, actor: "someone-else" });
    expect(await c.audit.verify()).toMatchObject({ ok: false, firstBreak: { scope: "tenant", seq: 2, recordId: id, reason: "hashMismatch" } });

    // Restoring the record restores the chain; deleting the last one is caught against the head.
    await container.item(id, ["tamper", "_tenant"]).replace(resource);
    expect((await c.audit.verify()).ok).toBe(true);
    await container.item("audit._tenant.000000000003", ["tamper", "_tenant"]).delete();
    expect(await c.audit.verify()).toMatchObject({ ok: false, firstBreak: { scope: "tenant", seq: 3, reason: "missingRecord" } });
  });
});
