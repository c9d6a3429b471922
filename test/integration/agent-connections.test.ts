/**
 * Cloud connections and their credentials in the secret store: a secret exists exactly as long as a
 * connection names it — a refused or lost create leaves none behind, a credentials change that loses a
 * race leaves the connection's secret working (and its own new version disabled), a delete removes the
 * secret whatever the credentials are by then — and a malformed project id is a 400, never a 5xx.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient, ApiError } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import { connectionSecretName } from "../../src/pillars/agents/documents.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let admin: AigovClient;
let project: Project;
let secrets: EncryptedFileSecretStore;

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t-agent-connections", "alice", ["TenantAdmin"]);
  project = await admin.projects.create(projectSpec("connections"));
  secrets = new EncryptedFileSecretStore(join(t.app.dataDir, "secrets"));
});
afterAll(() => t.stop());

const bedrock = (name: string, secretAccessKey: string) => ({
  name,
  projectId: project.id,
  scope: { cloud: "bedrock" as const, accountId: "123456789012" },
  regions: ["us-east-1"],
  credentials: { kind: "awsAccessKey" as const, accessKeyId: "AKIAABCDEFGHIJKLMNOP", secretAccessKey },
});

/** Connection secrets that still hold a version (soft-deleted ones hold none), by name. */
async function liveConnectionSecrets(): Promise<string[]> {
  const dir = join(t.app.dataDir, "secrets");
  const names = (existsSync(dir) ? readdirSync(dir) : [])
    .filter((f) => f.startsWith("agentcon-") && f.endsWith(".secret"))
    .map((f) => f.slice(0, -".secret".length));
  const live: string[] = [];
  for (const name of names) if ((await secrets.listVersions(name)).length) live.push(name);
  return live.sort();
}

async function connectionSecretsNamed(): Promise<string[]> {
  return (await admin.connections.list({ maxPageSize: 100 })).items.map((c) => connectionSecretName(c.id)).sort();
}

/** The value a connection's credentials name now (undefined: missing or disabled). */
async function secretOf(connectionId: string): Promise<string | undefined> {
  const c = await admin.connections.get(connectionId);
  if (c.credentials.kind === "workloadIdentity") return undefined;
  return (await secrets.get(c.credentials.secretRef.name, c.credentials.secretRef.version))?.value;
}

describe("cloud connections: their secrets", () => {
  it("a connection created while its project is being deleted is withdrawn with its secret: nothing syncs into a project nobody can see", async () => {
    const doomed = await admin.projects.create(projectSpec("connections deleted meanwhile"));
    // A delete under way has marked the project (as projects/service.ts delete() does). A connection lives in
    // the tenant's partition: the delete's mark there is the one it must heed (ADR 018).
    const mark = { id: `deleting.${doomed.id}`, tenantId: "t-agent-connections", scopeId: "_tenant", docType: "projectDeletion", since: new Date().toISOString() };
    await t.container().items.upsert(mark);
    const before = await liveConnectionSecrets();
    await expect(admin.connections.create({ ...bedrock("late", "late-secret"), projectId: doomed.id })).rejects.toMatchObject({ status: 409, problem: { reason: "project_being_deleted" } });
    expect((await admin.connections.list({ maxPageSize: 100 })).items.filter((c) => c.projectId === doomed.id)).toEqual([]);
    expect(await liveConnectionSecrets()).toEqual(before);
    // The withdrawal is audited and announced as the system's delete, after the create.
    await t.relay();
    const late = t.events().filter((e) => e.type.startsWith("aigov.agent.connection.") && (e.data as { projectId?: string }).projectId === doomed.id);
    expect(late.map((e) => e.type)).toEqual(["aigov.agent.connection.created.v1", "aigov.agent.connection.deleted.v1"]);
    // The delete gave up (its mark gone): the project takes connections again.
    await t.container().item(mark.id, ["t-agent-connections", "_tenant"]).delete();
    expect((await admin.connections.create({ ...bedrock("late", "late-secret"), projectId: doomed.id })).name).toBe("late");
  });

  it("a create that is refused — the name taken, also by a concurrent create — leaves no secret behind", async () => {
    const first = await admin.connections.create(bedrock("aws", "first-secret"));
    for (let i = 0; i < 2; i++) {
      await expect(admin.connections.create(bedrock("aws", `again-${i}`))).rejects.toMatchObject({ status: 409, problem: { reason: "name_taken" } });
    }
    // Creates of one new name at once: each may pass the name check, one reservation wins in the batch.
    const raced = await Promise.allSettled([0, 1, 2, 3].map((i) => admin.connections.create(bedrock("raced", `raced-${i}`))));
    const made = raced.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    expect(made).toHaveLength(1);
    expect(raced.flatMap((r) => (r.status === "rejected" ? [[(r.reason as ApiError).status, (r.reason as ApiError).problem?.reason]] : []))).toEqual([
      [409, "name_taken"],
      [409, "name_taken"],
      [409, "name_taken"],
    ]);
    // Exactly the connections' secrets are left, each with the value its connection was made with.
    expect(await liveConnectionSecrets()).toEqual(await connectionSecretsNamed());
    expect(await secretOf(first.id)).toBe("first-secret");
    expect(await secretOf(made[0]!.id)).toMatch(/^raced-\d$/);
  });

  it("a credentials change that loses a race leaves the connection on its working secret; the new version is disabled", async () => {
    const c = await admin.connections.create(bedrock("swapped", "v0"));
    let expected = "v0";
    for (let round = 1; round <= 3; round++) {
      const current = await admin.connections.get(c.id);
      // A credentials change and another change (the switch) against the same version: one wins.
      const [swap, toggle] = await Promise.allSettled([
        admin.connections.update(c.id, { credentials: { kind: "awsAccessKey", accessKeyId: "AKIAABCDEFGHIJKLMNOP", secretAccessKey: `v${round}` } }, current.etag),
        admin.connections.update(c.id, { enabled: !current.enabled }, current.etag),
      ]);
      expect([swap.status, toggle.status].filter((s) => s === "fulfilled")).toHaveLength(1);
      const lost = [swap, toggle].find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect((lost.reason as ApiError).status).toBe(412);
      if (swap.status === "fulfilled") expected = `v${round}`;
      // The document names an enabled version holding the credential of the change that won …
      expect(await secretOf(c.id)).toBe(expected);
      // … and it is the only version that works: the replaced one and a lost change's are disabled.
      const after = await admin.connections.get(c.id);
      const ref = after.credentials.kind === "awsAccessKey" ? after.credentials.secretRef : undefined;
      const enabled = (await secrets.listVersions(connectionSecretName(c.id))).filter((v) => v.enabled).map((v) => v.version);
      expect(enabled).toEqual([ref?.version]);
      expect((await secrets.get(connectionSecretName(c.id)))?.value).toBe(expected);
    }
  });

  it("deleting a connection deletes its secret, also when its credentials became workload identity", async () => {
    const c = await admin.connections.create(bedrock("moved", "access-key-secret"));
    const name = connectionSecretName(c.id);
    const moved = await admin.connections.update(c.id, { credentials: { kind: "workloadIdentity" } }, c.etag);
    expect(moved.credentials).toEqual({ kind: "workloadIdentity" });
    // The access key no longer works, but its version is still kept under the connection's name.
    expect(await secrets.get(name)).toBeUndefined();
    expect(await secrets.listVersions(name)).toHaveLength(1);
    await admin.connections.delete(c.id, moved.etag);
    expect(await secrets.listVersions(name)).toEqual([]);
    expect(await liveConnectionSecrets()).toEqual(await connectionSecretsNamed());
    await t.relay();
    expect(t.events().some((e) => e.type === "aigov.agent.connection.deleted.v1" && e.subject.endsWith(`/agent-connections/${c.id}`))).toBe(true);
  });
});

describe("cloud connections and the catalog: malformed project ids", () => {
  it("a project id that is not one is a 400 on the field, never a 5xx, and nothing is stored", async () => {
    const token = await t.token("t-agent-connections", "alice", ["TenantAdmin"]);
    const before = await liveConnectionSecrets();
    for (const projectId of ["", "a/b", "a#b", "a\\b", "..", "x".repeat(3000), "prj_?x", `${project.id}/x`]) {
      const res = await fetch(`${t.url}/api/agent-connections`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ ...bedrock("odd", "odd-secret"), projectId }),
      });
      const problem = (await res.json()) as { reason?: string; errors?: { field: string }[] };
      expect([res.status, problem.reason, problem.errors?.map((e) => e.field)], JSON.stringify(projectId.slice(0, 20))).toEqual([400, "validation_failed", ["body.projectId"]]);
    }
    expect(await liveConnectionSecrets()).toEqual(before);
    expect((await admin.connections.list({ maxPageSize: 100 })).items.some((c) => c.name === "odd")).toBe(false);
    for (const projectId of ["a/b", "a#b", ""]) {
      const res = await fetch(`${t.url}/api/catalog?projectId=${encodeURIComponent(projectId)}`, { headers: { authorization: `Bearer ${token}` } });
      expect([res.status, ((await res.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field)], projectId).toEqual([400, ["query.projectId"]]);
    }
    // A well-formed id of no project is a 404, as before.
    const none = await fetch(`${t.url}/api/agent-connections`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ ...bedrock("odd", "odd-secret"), projectId: "prj_00000000000000000000" }) });
    expect(none.status).toBe(404);
  });
});
