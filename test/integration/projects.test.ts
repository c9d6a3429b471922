import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let admin: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t1", "alice", ["TenantAdmin"]);
});
afterAll(() => t.stop());

const problemOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return err.problem!;
    throw err;
  }
  throw new Error("expected an error");
};

describe("projects", () => {
  it("creates a project with defaults and server fields, and stores exactly that", async () => {
    const created = await admin.projects.create(projectSpec("Fraud detection", { tags: { team: "risk" }, costCenter: "CC-1" }));
    expect(created).toMatchObject({
      name: "Fraud detection",
      environment: "dev",
      owner: "alice",
      costCenter: "CC-1",
      tags: { team: "risk" },
      lifecycleStage: "active",
      pillars: { models: true, tools: true, agents: true },
      roleAssignments: [],
      tenantId: "t1",
      createdBy: "alice",
      updatedBy: "alice",
    });
    expect(created.id).toMatch(/^prj_[0-9a-z]{20}$/);
    expect(created.etag).toBeTruthy();
    const { resource } = await t.container().item(created.id, ["t1", "_tenant"]).read();
    expect(resource).toMatchObject({ id: created.id, docType: "project", tenantId: "t1", name: "Fraud detection" });
    const got = await admin.call((await import("../../src/api/operations.js")).getProject, { params: { projectId: created.id } });
    expect(got.body).toEqual(created);
    expect(got.headers.get("etag")).toBe(`"${created.etag}"`);
  });

  it("rejects a duplicate name (case-insensitive) with 409 and stores nothing", async () => {
    await admin.projects.create(projectSpec("Payments"));
    const before = (await admin.projects.list({ maxPageSize: 100 })).items.length;
    const problem = await problemOf(admin.projects.create(projectSpec("payments")));
    expect(problem).toMatchObject({ status: 409, code: "Conflict", reason: "name_taken" });
    expect((await admin.projects.list({ maxPageSize: 100 })).items.length).toBe(before);
  });

  it("requires a review date for sandboxes", async () => {
    const problem = await problemOf(admin.projects.create(projectSpec("Sandbox A", { environment: "sandbox" })));
    expect(problem.status).toBe(400);
    expect(problem.errors).toEqual([{ field: "body.reviewDate", message: "is required for sandbox projects" }]);
    // A month ahead: a review date must lie after today and within the sandbox maximum.
    const reviewDate = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
    const ok = await admin.projects.create(projectSpec("Sandbox A", { environment: "sandbox", reviewDate }));
    expect(ok.reviewDate).toBe(reviewDate);
  });

  it("updates with merge-patch semantics, renames free the old name, and pillars keep the rest", async () => {
    const p = await admin.projects.create(projectSpec("Old name", { description: "d", costCenter: "CC" }));
    const updated = await admin.projects.update(p.id, { name: "New name", description: null, pillars: { tools: false } }, p.etag);
    expect(updated).toMatchObject({ name: "New name", costCenter: "CC", pillars: { models: true, tools: false, agents: true } });
    expect(updated.description).toBeUndefined();
    expect(updated.etag).not.toBe(p.etag);
    expect(updated.createdAt).toBe(p.createdAt);
    // The old name is free again, the new one is taken.
    await admin.projects.create(projectSpec("Old name"));
    expect(await problemOf(admin.projects.create(projectSpec("new NAME")))).toMatchObject({ status: 409, reason: "name_taken" });
    // The same name spelled with a combining accent (NFD) is the same name: it is kept in NFC, and taken.
    const cafe = await admin.projects.create(projectSpec("Caf\u00e9"));
    expect(await problemOf(admin.projects.create(projectSpec("CAFE\u0301")))).toMatchObject({ status: 409, reason: "name_taken" });
    expect((await admin.projects.update(cafe.id, { name: "Cafe\u0301 2" }, cafe.etag)).name).toBe("Caf\u00e9 2");
    // Renaming onto a taken name is the same conflict, and changes nothing (the ETag below still holds).
    expect(await problemOf(admin.projects.update(p.id, { name: "old NAME" }, updated.etag))).toMatchObject({ status: 409, reason: "name_taken" });
    // Switching a pillar back on restores it.
    const back = await admin.projects.update(p.id, { pillars: { tools: true } }, updated.etag);
    expect(back.pillars).toEqual({ models: true, tools: true, agents: true });
  });

  it("an update that would make the project invalid is refused and changes nothing", async () => {
    const p = await admin.projects.create(projectSpec("Will stay dev"));
    const problem = await problemOf(admin.projects.update(p.id, { environment: "sandbox" }, p.etag));
    expect(problem.errors).toEqual([{ field: "body.reviewDate", message: "is required for sandbox projects" }]);
    expect(await admin.projects.get(p.id)).toEqual(p);
  });

  it("a project whose keys still hold access cannot be deleted (they could no longer be revoked); revoked, it can", async () => {
    const dev = await t.as("t1", "dora", ["Developer"]);
    const p = await admin.projects.create(projectSpec("Keyed"));
    const k = await dev.keys.create(p.id, { name: "live" });
    const refused = await problemOf(admin.projects.delete(p.id, p.etag));
    expect(refused).toMatchObject({ status: 409, reason: "project_has_dependents", detail: expect.stringContaining("1 keys") as unknown });
    expect((await dev.keys.get(p.id, k.id)).status).toBe("active");
    await dev.keys.revoke(p.id, k.id, { reason: "done" }, (await dev.keys.get(p.id, k.id)).etag);
    await admin.projects.delete(p.id, (await admin.projects.get(p.id)).etag);
    expect((await problemOf(admin.projects.get(p.id))).status).toBe(404);
  });

  it("a key revoked before its project was ever published is revoked at once (nothing at the gateway to stop), and the job asks no publish for it", async () => {
    const dev = await t.as("t1", "dora", ["Developer"]);
    const p = await admin.projects.create(projectSpec("Never published"));
    const k = await dev.keys.create(p.id, { name: "unpublished" });
    expect((await dev.keys.get(p.id, k.id)).gateway).toMatchObject({ state: "pending" });
    const revoked = await dev.keys.revoke(p.id, k.id, { reason: "not needed" }, (await dev.keys.get(p.id, k.id)).etag);
    expect(revoked.status).toBe("revoked");
    const revisions = async () => (await admin.policy.revisions({ maxPageSize: 100 })).items.length;
    const before = await revisions();
    await t.app.host.invokeTimer("keyLifecycle");
    expect((await dev.keys.get(p.id, k.id)).status).toBe("revoked");
    expect(await revisions()).toBe(before);
    await t.relay();
    expect(t.events().filter((e) => e.subject.endsWith(`/keys/${k.id}`)).map((e) => e.type)).toEqual(["aigov.key.created.v1", "aigov.key.revocation.requested.v1", "aigov.key.revoked.v1"]);
  });

  it("an edit into the sandbox sets a review date within the bound an extension has", async () => {
    const pam = await t.as("t1", "pam", []);
    const p = await admin.projects.create(projectSpec("Demoted", { roleAssignments: [{ principalId: "pam", role: "ProjectAdmin" }] }));
    const far = await problemOf(pam.projects.update(p.id, { environment: "sandbox", reviewDate: "2099-12-31" }, p.etag));
    expect(far).toMatchObject({ status: 400, errors: [{ field: "body.reviewDate", message: "must be after today and at most 180 days ahead" }] });
    expect(await admin.projects.get(p.id)).toEqual(p);
    const soon = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
    expect(await pam.projects.update(p.id, { environment: "sandbox", reviewDate: soon }, p.etag)).toMatchObject({ environment: "sandbox", reviewDate: soon });
  });

  it("deletes with If-Match; the project and its name are gone", async () => {
    const p = await admin.projects.create(projectSpec("Short lived"));
    await admin.projects.delete(p.id, p.etag);
    expect((await problemOf(admin.projects.get(p.id))).status).toBe(404);
    const { resource } = await t.container().item(p.id, ["t1", "_tenant"]).read();
    expect(resource).toBeUndefined();
    await admin.projects.create(projectSpec("Short lived"));
  });

  it("pages with opaque continuation tokens and nextLink", async () => {
    const c = await t.as("paging", "pat", ["TenantAdmin"]);
    const names = ["p1", "p2", "p3", "p4", "p5"];
    for (const n of names) await c.projects.create(projectSpec(n));
    const first = await c.projects.list({ maxPageSize: 2 });
    expect(first.items.map((p) => p.name)).toEqual(["p1", "p2"]);
    expect(first.nextLink).toMatch(/^\/api\/projects\?maxPageSize=2&continuationToken=/);
    const seen = [...first.items];
    let token = first.continuationToken;
    while (token) {
      const page = await c.projects.list({ maxPageSize: 2, continuationToken: token });
      seen.push(...page.items);
      token = page.continuationToken;
    }
    expect(seen.map((p) => p.name)).toEqual(names);
    const bad = await problemOf(c.projects.list({ continuationToken: "not-a-token" }));
    expect(bad).toMatchObject({ status: 400, errors: [{ field: "query.continuationToken" }] });

    // A token continues only its own list: not another tenant's, nor another list of the same tenant.
    const other = await t.as("paging-other", "pat", ["TenantAdmin"]);
    await other.projects.create(projectSpec("q1"));
    expect(await problemOf(other.projects.list({ maxPageSize: 2, continuationToken: first.continuationToken! }))).toMatchObject({ status: 400, errors: [{ field: "query.continuationToken" }] });
    const audit = await c.audit.list({ maxPageSize: 2 });
    expect(await problemOf(c.projects.list({ maxPageSize: 2, continuationToken: audit.continuationToken! }))).toMatchObject({ status: 400, errors: [{ field: "query.continuationToken" }] });
    // This list's token with the store's part replaced: the store cannot resume from it, and that is the caller's 400.
    const wrapped = JSON.parse(Buffer.from(first.continuationToken!, "base64url").toString("utf8")) as { c: string };
    for (const c2 of ["garbage", "{}", "[]", '{"token":null,"range":{}}', '{"token":1}']) {
      const forged = Buffer.from(JSON.stringify({ ...wrapped, c: c2 })).toString("base64url");
      expect(await problemOf(c.projects.list({ maxPageSize: 2, continuationToken: forged })), c2).toMatchObject({ status: 400, reason: "validation_failed", errors: [{ field: "query.continuationToken" }] });
    }
  });

  it("a list under a path parameter (a project's keys) links its next page with the path filled in; the client follows it", async () => {
    const c = await t.as("paging-keys", "pat", ["TenantAdmin"]);
    const dev = await t.as("paging-keys", "dora", ["Developer"]);
    const p = await c.projects.create(projectSpec("paged keys"));
    for (const name of ["k1", "k2", "k3"]) await dev.keys.create(p.id, { name });
    const first = await c.keys.list(p.id, { maxPageSize: 2 });
    expect(first.nextLink).toMatch(new RegExp(`^/api/projects/${p.id}/keys\\?maxPageSize=2&continuationToken=`));
    const second = await c.next(first);
    expect([...first.items, ...second!.items].map((k) => k.name).sort()).toEqual(["k1", "k2", "k3"]);
    expect(second!.nextLink).toBeUndefined();
    expect(await c.next(second!)).toBeUndefined();
    // A link that leaves the API is never followed with the caller's token.
    await expect(c.next({ nextLink: "https://elsewhere.example/api/projects" })).rejects.toThrow(/leaves the API/);
  });

  it("enforces roles: Reader reads, only TenantAdmin creates and deletes, project ProjectAdmins update", async () => {
    const p = await admin.projects.create(projectSpec("Roles", { roleAssignments: [{ principalId: "pam", role: "ProjectAdmin" }] }));
    const reader = await t.as("t1", "rita", ["Reader"]);
    expect((await reader.projects.get(p.id)).name).toBe("Roles");
    expect((await problemOf(reader.projects.create(projectSpec("nope")))).status).toBe(403);
    expect((await problemOf(reader.projects.update(p.id, { description: "x" }, p.etag))).status).toBe(403);
    // pam has no tenant role, only the project assignment.
    const pam = await t.as("t1", "pam", []);
    const updated = await pam.projects.update(p.id, { description: "by pam" }, p.etag);
    expect(updated.updatedBy).toBe("pam");
    expect((await problemOf(pam.projects.delete(p.id, updated.etag))).status).toBe(403);
    expect((await problemOf(pam.projects.list())).status).toBe(403);
    const other = await admin.projects.create(projectSpec("Not pam's"));
    expect((await problemOf(pam.projects.get(other.id))).status).toBe(403);
  });

  it("401 without a token, with a forged token, and with another issuer's token", async () => {
    expect((await problemOf(t.anonymous.projects.list())).status).toBe(401);
    const token = await t.token("t1", "alice", ["TenantAdmin"]);
    const [h, p] = token.split(".");
    const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, "base64url").toString()), tid: "t2" })).toString("base64url");
    const forged = t.anonymous.withToken(`${h}.${forgedPayload}.${token.split(".")[2]}`);
    const problem = await problemOf(forged.projects.list());
    expect(problem).toMatchObject({ status: 401, code: "Unauthenticated" });
    const res = await fetch(`${t.url}/api/projects`, { headers: { authorization: "Basic abc" } });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });
});
