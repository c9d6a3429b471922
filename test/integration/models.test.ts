import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EncryptedFileSecretStore } from "../../src/adapters/local/encrypted-secret-store.js";
import { type ApiError, type AigovClient } from "../../src/client/index.js";
import type { ModelSpecInput } from "../../src/pillars/models/schema.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { errorOf, reasonOf, statusOf } from "../support/errors.js";
import { ITEMS_API } from "../support/tools.js";

let t: TestApp;
let admin: AigovClient;
let project: Project;
const KEY = "sk-test-provider-key-0123456789";

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t1", "alice", ["TenantAdmin", "Auditor"]);
  project = await admin.projects.create(projectSpec("models home"));
});
afterAll(() => t.stop());

const spec = (name: string, extra: Partial<ModelSpecInput> = {}): ModelSpecInput => ({
  name,
  provider: "azure-openai",
  modelName: "gpt-4o",
  version: "2024-08-06",
  pricing: { inputPer1kTokens: 0.0025, outputPer1kTokens: 0.01 },
  backends: [
    { id: "weu", url: "https://weu.openai.azure.com", region: "westeurope", priority: 1, weight: 3, credential: { type: "apiKey", header: "api-key", key: `${KEY}-weu` } },
    { id: "external", url: "https://api.openai.com", region: "global-1", priority: 2, credential: { type: "apiKey", header: "Authorization", key: KEY } },
  ],
  ...extra,
});

describe("model registry", () => {
  it("registers a model; the provider key goes to the secret store and nowhere else", async () => {
    const m = await admin.models.create(project.id, spec("gpt-4o"));
    expect(m).toMatchObject({ name: "gpt-4o", projectId: project.id, status: "active", dataClasses: ["public", "internal"] });
    expect(m.backends[0]).toMatchObject({ id: "weu", priority: 1, weight: 3, credential: { type: "apiKey", header: "api-key" } });
    expect(m.backends[1]!.credential).toMatchObject({ type: "apiKey", header: "Authorization", secretRef: { name: `model-${m.id.replace("_", "-")}-external` } });
    const secretRef = (m.backends[1]!.credential as { secretRef: { name: string; version: string } }).secretRef;
    // The key is in the secret store…
    const secrets = new EncryptedFileSecretStore(join(t.app.dataDir, "secrets"));
    expect((await secrets.get(secretRef.name, secretRef.version))?.value).toBe(KEY);
    // …and not in any response, stored document, audit record, event or other file of the data dir.
    expect(JSON.stringify(await admin.models.get(project.id, m.id))).not.toContain(KEY);
    const { resources } = await t.container().items.query("SELECT * FROM c").fetchAll();
    expect(JSON.stringify(resources)).not.toContain(KEY);
    await t.relay();
    expect(JSON.stringify(t.events())).not.toContain(KEY);
    for (const f of readdirSync(t.app.dataDir, { recursive: true }) as string[]) {
      if (!f.startsWith("secrets")) {
        try {
          expect(readFileSync(join(t.app.dataDir, f), "utf8"), f).not.toContain(KEY);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EISDIR") throw err;
        }
      }
    }
    // Audited in the project's own chain.
    const audit = await admin.audit.list({ scope: project.id });
    expect(audit.items.map((r) => [r.action, r.resource])).toEqual([["model.register", `/projects/${project.id}/models/${m.id}`]]);
    expect(await admin.audit.verify()).toMatchObject({ ok: true });
    expect(t.events().find((e) => e.type === "aigov.model.registered.v1")?.subject).toBe(`/tenants/t1/projects/${project.id}/models/${m.id}`);
  });

  it("validates: unique names, https backends, distinct backend ids, a sunset date for deprecated models, split weights", async () => {
    // Refused for its name: the provider keys stored for it on the way are gone again (soft-deleted, as Key Vault keeps them).
    const secretsDir = join(t.app.dataDir, "secrets");
    const before = new Set(readdirSync(secretsDir));
    expect(await reasonOf(admin.models.create(project.id, spec("gpt-4o")))).toBe("409 name_taken");
    const left = readdirSync(secretsDir).filter((f) => !before.has(f) && f.startsWith("model-"));
    expect(left.length).toBeGreaterThan(0);
    const store = new EncryptedFileSecretStore(secretsDir);
    for (const f of left) expect(await store.get(f.replace(/\.secret$/, "")), f).toBeUndefined();
    const bad: [Partial<ModelSpecInput>, string][] = [
      [{ backends: [{ id: "x", url: "http://insecure.example.com", region: "weu", credential: { type: "managedIdentity", audience: "https://x" } }] }, "body.backends.0.url"],
      [{ status: "deprecated" }, "body.sunsetDate"],
      [{ split: { variants: [{ version: "a", weight: 50 }, { version: "b", weight: 40 }] } }, "body.split"],
      [{ name: "Bad Name" }, "body.name"],
      [{ split: { variants: [{ version: "a", weight: 50 }, { version: "b", weight: 50 }] } }, "body.backends.0.version"],
      [{ backends: [
        { id: "mi", url: "https://a.openai.azure.com", region: "weu", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } },
        { id: "key", url: "https://b.example.com", region: "weu", credential: { type: "apiKey", header: "api-key", key: "sk-12345678" } },
      ] }, "body.backends"],
    ];
    for (const [extra, field] of bad) {
      const err = await admin.models.create(project.id, spec("valid-name", extra)).then(() => undefined, (e: unknown) => e as ApiError);
      expect(err?.problem?.errors?.map((e) => e.field), field).toContain(field);
    }
    // The gateway's own identity goes to Azure AI services only, for their audience: never a token for a host
    // or an audience of the registrant's choosing (its identity holds what no tenant may wield).
    for (const [url, audience] of [["https://collector.example.com", "https://cognitiveservices.azure.com"], ["https://x.openai.azure.com", "https://vault.azure.net"], ["https://x.openai.azure.com.example.com", "https://cognitiveservices.azure.com"]] as const) {
      const refused = await admin.models.create(project.id, spec("mi-elsewhere", { backends: [{ id: "mi", url, region: "weu", credential: { type: "managedIdentity", audience } }] })).then(() => undefined, (e: unknown) => e as ApiError);
      expect([url, refused?.status, refused?.problem?.reason, refused?.problem?.errors?.map((e) => e.field)]).toEqual([url, 400, "managed_identity_not_allowed", ["body.backends.0.credential"]]);
    }
    const dup = spec("dup-backends");
    dup.backends = [dup.backends[0]!, dup.backends[0]!];
    expect(await statusOf(admin.models.create(project.id, dup))).toBe(400);
  });

  it("deprecates (with a sunset date) and blocks; keeps a stored key unless a new one is sent", async () => {
    const m = await admin.models.create(project.id, spec("claude", { provider: "anthropic", modelName: "claude-sonnet-4" }));
    const before = (m.backends[1]!.credential as { secretRef: { version: string } }).secretRef.version;
    expect(await statusOf(admin.models.update(project.id, m.id, { status: "deprecated" }, m.etag))).toBe(400);
    const deprecated = await admin.models.update(project.id, m.id, { status: "deprecated", sunsetDate: "2099-06-30" }, m.etag);
    expect(deprecated).toMatchObject({ status: "deprecated", sunsetDate: "2099-06-30" });
    expect(deprecated.backends).toEqual(m.backends);
    const blocked = await admin.models.update(project.id, m.id, { status: "blocked", sunsetDate: null }, deprecated.etag);
    expect(blocked.status).toBe("blocked");
    expect(blocked.sunsetDate).toBeUndefined();
    // Re-sending backends: `keep` keeps the stored key, a new key makes a new secret version.
    const kept = await admin.models.update(project.id, m.id, {
      backends: [
        { id: "weu", url: "https://weu.openai.azure.com", region: "westeurope", credential: { type: "apiKey", header: "api-key", keep: true } },
        { id: "external", url: "https://api.anthropic.com", region: "global-1", credential: { type: "apiKey", header: "x-api-key", keep: true } },
      ],
    }, blocked.etag);
    expect(kept.backends[1]!.credential).toMatchObject({ type: "apiKey", header: "x-api-key", secretRef: { version: before } });
    const rotated = await admin.models.update(project.id, m.id, {
      backends: [{ id: "external", url: "https://api.anthropic.com", region: "global-1", credential: { type: "apiKey", header: "x-api-key", key: "sk-new-key-abcdefgh" } }],
    }, kept.etag);
    expect((rotated.backends[0]!.credential as { secretRef: { version: string } }).secretRef.version).not.toBe(before);
    expect(await statusOf(admin.models.update(project.id, m.id, {
      backends: [{ id: "brand-new", url: "https://x.example.com", region: "weu", credential: { type: "apiKey", header: "x-api-key", keep: true } }],
    }, rotated.etag))).toBe(400);
  });

  it("a stored provider key stays bound to its backend's origin and header", async () => {
    // A project admin (assigned on the project only) cannot point a key a TenantAdmin registered at another host.
    const p = await admin.projects.create(projectSpec("bound keys", { roleAssignments: [{ principalId: "pam", role: "ProjectAdmin" }] }));
    const m = await admin.models.create(p.id, spec("bound"));
    const pam = await t.as("t1", "pam", []);
    const moved = (url: string, header: "api-key" | "x-api-key" = "api-key") => ({
      backends: [{ id: "weu", url, region: "westeurope", credential: { type: "apiKey" as const, header, keep: true as const } }],
    });
    const err = await pam.models.update(p.id, m.id, moved("https://attacker.example.net/openai"), m.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect(err?.status).toBe(400);
    expect(err?.problem?.reason).toBe("credential_rebind_requires_key");
    expect(err?.problem?.errors?.map((e) => e.field)).toEqual(["body.backends.0.url"]);
    const header = await pam.models.update(p.id, m.id, moved("https://weu.openai.azure.com", "x-api-key"), m.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect(header?.problem?.errors?.map((e) => e.field)).toEqual(["body.backends.0.credential.header"]);
    expect(await admin.models.get(p.id, m.id)).toEqual(m);
    // Same origin, another path: still the same endpoint.
    const samePlace = await pam.models.update(p.id, m.id, moved("https://weu.openai.azure.com/openai"), m.etag);
    expect(samePlace.backends[0]!.credential).toEqual(m.backends[0]!.credential);
    // With the key sent again, anywhere; a TenantAdmin may keep it while moving it.
    const withKey = await pam.models.update(p.id, m.id, { backends: [{ id: "weu", url: "https://other.openai.azure.com", region: "westeurope", credential: { type: "apiKey", header: "api-key", key: "sk-pams-own-key-123" } }] }, samePlace.etag);
    expect(withKey.backends[0]!.url).toBe("https://other.openai.azure.com");
    const byAdmin = await admin.models.update(p.id, m.id, moved("https://third.openai.azure.com"), withKey.etag);
    expect(byAdmin.backends[0]!.credential).toEqual(withKey.backends[0]!.credential);
  });

  it("a model, key or MCP server created while its project is being deleted is withdrawn (409, retryable while the delete runs; 404 once it is gone): nothing outlives its project", async () => {
    const p = await admin.projects.create(projectSpec("deleted meanwhile"));
    // A delete under way has marked the project and is counting what it holds (as projects/service.ts delete() does).
    // Its mark in the project's own partition, where these children are written, is the one they must heed:
    // the store promises a create sees what was written there before its own write (ADR 018), not more.
    const container = t.container();
    const mark = { id: `deleting.${p.id}`, tenantId: "t1", scopeId: p.id, docType: "projectDeletion", since: new Date().toISOString() };
    await container.items.upsert(mark);
    const secretsDir = join(t.app.dataDir, "secrets");
    const before = new Set(readdirSync(secretsDir));
    expect(await reasonOf(admin.models.create(p.id, spec("late")))).toBe("409 project_being_deleted");
    const dev = await t.as("t1", "dora", ["Developer"]);
    const lateKey = await errorOf(dev.keys.create(p.id, { name: "late key" }));
    expect(lateKey).toMatchObject({ status: 409, problem: { reason: "project_being_deleted" } });
    expect(JSON.stringify(lateKey)).not.toMatch(/aigw_/);
    expect(await reasonOf(admin.tools.createServer(p.id, { name: "late-server", source: { kind: "openapi", baseUrl: "https://items.example.com", document: ITEMS_API }, discovery: { enabled: false, intervalHours: 24 } }))).toBe("409 project_being_deleted");
    // No model left in the project's partition, no live key, no provider key in the store.
    const { resources } = await container.items.query<{ docType: string; status?: string }>({ query: "SELECT c.docType, c.status FROM c WHERE c.tenantId = 't1' AND c.scopeId = @p AND (c.docType = 'model' OR c.docType = 'virtualKey' OR c.docType = 'mcpServer' OR c.docType = 'openApiDocument' OR c.docType = 'nameReservation')", parameters: [{ name: "@p", value: p.id }] }).fetchAll();
    expect(resources).toEqual([{ docType: "virtualKey", status: "revoked" }]);
    const store = new EncryptedFileSecretStore(secretsDir);
    for (const f of readdirSync(secretsDir).filter((x) => !before.has(x) && x.startsWith("model-"))) expect(await store.get(f.replace(/\.secret$/, ""))).toBeUndefined();
    // The delete finished or gave up (its mark gone): the project takes models again, and the name is free.
    await container.item(mark.id, ["t1", p.id]).delete();
    const late = await admin.models.create(p.id, spec("late"));
    expect(late.name).toBe("late");
    // A delete that finished leaves its mark as the project's tombstone: a create whose read of the project
    // is behind (here: the project document still there) withdraws all the same.
    await admin.models.delete(p.id, late.id, late.etag);
    const standing = await admin.projects.get(p.id);
    const { resource: projectDoc } = await container.item(p.id, ["t1", "_tenant"]).read<Record<string, unknown>>();
    await admin.projects.delete(p.id, standing.etag);
    const { resource: tombstone } = await container.item(mark.id, ["t1", p.id]).read<{ deletedAt?: string }>();
    expect(tombstone?.deletedAt).toEqual(expect.any(String));
    expect((await container.item(mark.id, ["t1", "_tenant"]).read()).statusCode).toBe(404); // the tenant's mark went with the project
    const { _rid, _self, _etag, _attachments, _ts, ...stale } = projectDoc!;
    await container.items.create(stale); // the lagging read, made certain
    expect(await reasonOf(admin.models.create(p.id, spec("after")))).toBe("404 not_found");
    const { resources: models } = await container.items.query({ query: "SELECT c.id FROM c WHERE c.tenantId = 't1' AND c.scopeId = @p AND c.docType = 'model'", parameters: [{ name: "@p", value: p.id }] }).fetchAll();
    expect(models).toEqual([]);
    // A second delete of it is the project's 404, and leaves the tombstone as it is.
    await container.item(p.id, ["t1", "_tenant"]).delete();
    expect(await reasonOf(admin.projects.delete(p.id, standing.etag))).toBe("404 not_found");
    expect((await container.item(mark.id, ["t1", p.id]).read<{ deletedAt?: string }>()).resource?.deletedAt).toBe(tombstone!.deletedAt);
  });

  it("a project with models cannot be deleted; deleting the model deletes its keys", async () => {
    const p = await admin.projects.create(projectSpec("short-lived models"));
    const m = await admin.models.create(p.id, spec("temp"));
    expect(await reasonOf(admin.projects.delete(p.id, p.etag))).toBe("409 project_has_dependents");
    await admin.models.delete(p.id, m.id, m.etag);
    const secrets = new EncryptedFileSecretStore(join(t.app.dataDir, "secrets"));
    const ref = (m.backends[1]!.credential as { secretRef: { name: string } }).secretRef;
    expect(await secrets.get(ref.name)).toBeUndefined();
    await admin.projects.delete(p.id, p.etag);
    // The deleted project's chain (model.register, model.delete) is still verified, and tampering in it still shows.
    const verification = await admin.audit.verify();
    expect(verification.ok).toBe(true);
    expect(verification.scopes.find((s) => s.scope === p.id)).toEqual({ scope: p.id, records: 2, ok: true });
    const container = t.container();
    const id = `audit.${p.id}.000000000001`;
    const { resource } = await container.item(id, ["t1", p.id]).read();
    await container.item(id, ["t1", p.id]).replace({ ...resource, actor: "mallory" });
    expect(await admin.audit.verify()).toMatchObject({ ok: false, firstBreak: { scope: p.id, seq: 1, reason: "hashMismatch" } });
    await container.item(id, ["t1", p.id]).replace(resource);
  });

  it("only writers register; readers list and read", async () => {
    const reader = await t.as("t1", "rita", ["Reader"]);
    expect(await statusOf(reader.models.create(project.id, spec("nope")))).toBe(403);
    const list = await reader.models.list(project.id);
    expect(list.items.map((m) => m.name)).toEqual(["claude", "gpt-4o"]);
  });
});
