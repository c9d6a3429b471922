import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { statusOf } from "../support/errors.js";

let t: TestApp;
let admin: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t1", "alice", ["TenantAdmin", "Auditor"]);
});
afterAll(() => t.stop());


describe("optimistic concurrency", () => {
  it("missing If-Match → 428, stale → 412, current → 200", async () => {
    const p = await admin.projects.create(projectSpec("etags"));
    const res = await fetch(`${t.url}/api/projects/${p.id}`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${await t.token("t1", "alice", ["TenantAdmin"])}`, "content-type": "application/json" },
      body: JSON.stringify({ description: "x" }),
    });
    expect(res.status).toBe(428);
    const v2 = await admin.projects.update(p.id, { description: "v2" }, p.etag);
    expect(await statusOf(admin.projects.update(p.id, { description: "stale" }, p.etag))).toBe(412);
    expect(await statusOf(admin.projects.delete(p.id, p.etag))).toBe(412);
    expect((await admin.projects.get(p.id)).description).toBe("v2");
    // If-Match uses strong comparison: a weak validator never matches; "*" matches any version.
    expect(await statusOf(admin.projects.update(p.id, { description: "weak" }, `W/"${v2.etag}"`))).toBe(412);
    const v3 = await admin.projects.update(p.id, { description: "v3" }, `"nope", "${v2.etag}"`);
    expect(v3.description).toBe("v3");
    const v4 = await admin.projects.update(p.id, { description: "forced" }, "*");
    expect(v4.description).toBe("forced");
  });

  it("of N concurrent updates to one version exactly one wins, and nothing is lost", async () => {
    const p = await admin.projects.create(projectSpec("race"));
    const N = 12;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        admin.projects.update(p.id, { description: `writer ${i}` }, p.etag).then(
          (r) => ({ ok: true as const, description: r.description }),
          (e: unknown) => ({ ok: false as const, status: e instanceof ApiError ? e.status : 599 }),
        ),
      ),
    );
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => !r.ok).map((r) => (r as { status: number }).status)).toEqual(Array(N - 1).fill(412));
    const final = await admin.projects.get(p.id);
    expect(final.description).toBe((winners[0] as { description: string }).description);
    // Exactly one update made it into the audit log, and the chain is intact.
    const audit = await admin.audit.list({ resource: `/projects/${p.id}` });
    expect(audit.items.map((r) => r.action)).toEqual(["project.update", "project.create"]);
    expect((await admin.audit.verify()).ok).toBe(true);
  });

  it("concurrent creates in one tenant all land, each with its own audit record in one unbroken chain", async () => {
    const c = await t.as("busy", "bob", ["TenantAdmin", "Auditor"]);
    const created = await Promise.all(Array.from({ length: 20 }, (_, i) => c.projects.create(projectSpec(`parallel ${i}`))));
    expect(new Set(created.map((p) => p.id)).size).toBe(20);
    const audit = await c.audit.list({ maxPageSize: 100 });
    expect(audit.items.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 20 - i));
    const verification = await c.audit.verify();
    expect(verification).toMatchObject({ ok: true, recordsChecked: 20 });
  });
});
