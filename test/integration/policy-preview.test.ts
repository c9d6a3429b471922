import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let admin: AigovClient;
let project: Project;
const KEY = "sk-preview-provider-key-123456";

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.as("t1", "alice", ["TenantAdmin"]);
  project = await admin.projects.create(projectSpec("policy preview"));
  await admin.models.create(project.id, {
    name: "gpt-4o",
    provider: "azure-openai",
    modelName: "gpt-4o",
    backends: [
      { id: "weu", url: "https://weu.openai.azure.com", region: "westeurope", priority: 1, weight: 3, credential: { type: "apiKey", header: "api-key", key: KEY } },
      { id: "sec", url: "https://sec.openai.azure.com", region: "swedencentral", priority: 2, credential: { type: "apiKey", header: "api-key", key: KEY } },
    ],
  });
  await admin.models.create(project.id, {
    name: "old-model",
    provider: "azure-openai",
    modelName: "gpt-35-turbo",
    status: "deprecated",
    sunsetDate: "2099-01-31",
    backends: [{ id: "weu", url: "https://old.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
  });
  await admin.models.create(project.id, {
    name: "banned-model",
    provider: "openai",
    modelName: "banned",
    status: "blocked",
    backends: [{ id: "x", url: "https://banned.openai.azure.com", region: "global", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
  });
});
afterAll(() => t.stop());

describe("policy preview compiled from the model registry", () => {
  it("shows pools, Key Vault-backed named values, deprecation headers; a blocked model is nowhere; no key anywhere", async () => {
    const preview = await admin.policy.show(project.id);
    const text = JSON.stringify(preview);
    expect(text).not.toContain(KEY);
    const policy = preview.artifacts.find((a) => a.kind === "policy" && String(a.ref).includes(project.id));
    expect(policy, JSON.stringify(preview.artifacts.map((a) => a.ref))).toBeDefined();
    const xml = String(policy!.xml);
    expect(xml).toMatch(/^<\?xml|^<policies>/);
    expect(xml).toContain("gpt-4o");
    expect(xml).toContain("old-model");
    expect(xml).toContain("Sunset");
    expect(xml).not.toContain("banned");
    expect(text).not.toContain("banned.openai.azure.com");
    const pools = preview.artifacts.filter((a) => a.kind === "backend" && a.type === "Pool");
    expect(pools.length).toBeGreaterThanOrEqual(2);
    const namedValues = preview.artifacts.filter((a) => a.kind === "namedValue");
    expect(namedValues.length).toBe(2);
    for (const nv of namedValues) {
      expect(nv).toMatchObject({ secret: true, keyVault: { secretIdentifier: expect.stringMatching(/^https:\/\/aigov-local\.vault\.azure\.net\/secrets\/model-mdl-/) } });
    }
    expect(preview.sizes.every((s) => s.bytes > 0 && s.bytes < 512 * 1024)).toBe(true);
    expect(preview.explain).toBeUndefined();
  });

  it("is deterministic and explains itself on request", async () => {
    const a = await admin.policy.show(project.id);
    const b = await admin.policy.show(project.id, true);
    expect(b.artifacts).toEqual(a.artifacts);
    expect(b.explain!.length).toBeGreaterThan(0);
    expect(b.explain!.every((e) => typeof e.ref === "string" && typeof e.path === "string")).toBe(true);
  });

  it("tenant, project and model settings reach the compiled policy; settings are validated, versioned and audited", async () => {
    const initial = await admin.settings.get();
    expect(initial).toEqual({ settings: {}, services: {}, etag: "initial" });
    const before = String((await admin.policy.show(project.id)).artifacts.find((a) => a.kind === "policy" && String(a.ref).includes(project.id))!.xml);
    expect(before).not.toContain("token-limit");

    const bad = await admin.settings.put({ settings: { tokens: { perMinute: { limit: -5 } } } } as never, "initial").then(() => undefined, (e: { status: number; problem?: { errors?: { field: string }[] } }) => e);
    expect(bad?.status).toBe(400);
    expect(bad?.problem?.errors?.[0]?.field).toMatch(/^body\.settings\.tokens\.perMinute/);

    const saved = await admin.settings.put({ settings: { tokens: { perMinute: { limit: 10000 } } } }, "initial");
    expect(saved.settings).toMatchObject({ tokens: { perMinute: { limit: 10000 } } });
    await expect(admin.settings.put({ settings: {} }, "initial")).rejects.toMatchObject({ status: 412 });
    const current = await admin.projects.get(project.id);
    await admin.projects.update(project.id, { settings: { regions: { allowed: ["westeurope"] } } }, current.etag);

    const xml = String((await admin.policy.show(project.id)).artifacts.find((a) => a.kind === "policy" && String(a.ref).includes(project.id))!.xml);
    expect(xml).toMatch(/token-limit/);
    expect(xml).toContain("10000");
    // The region rule: the swedencentral backend of gpt-4o is no longer routed.
    const preview = await admin.policy.show(project.id, true);
    expect(JSON.stringify(preview.artifacts)).not.toContain("sec.openai.azure.com");
    expect(preview.explain!.some((e) => JSON.stringify(e.control).includes("tokens.perMinute"))).toBe(true);

    const audit = await (await t.as("t1", "aud", ["Auditor"])).audit.list({ resource: "/settings" });
    expect(audit.items.map((r) => r.action)).toEqual(["settings.update"]);
    expect((await (await t.as("t1", "rita", ["Reader"])).settings.get()).settings).toEqual(saved.settings);
    await expect((await t.as("t1", "pam", ["ProjectAdmin"])).settings.put({ settings: {} }, saved.etag)).rejects.toMatchObject({ status: 403 });
    const restored = await admin.projects.get(project.id);
    await admin.projects.update(project.id, { settings: null }, restored.etag);
    await admin.settings.put({ settings: {} }, saved.etag);
  });

  it("switching the models pillar off drops model routing and keeps the registrations", async () => {
    const current = await admin.projects.get(project.id);
    const off = await admin.projects.update(project.id, { pillars: { models: false } }, current.etag);
    const preview = await admin.policy.show(project.id);
    expect(preview.artifacts.some((a) => a.kind === "backend")).toBe(false);
    expect((await admin.models.list(project.id)).items).toHaveLength(3);
    await admin.projects.update(project.id, { pillars: { models: true } }, off.etag);
    expect((await admin.policy.show(project.id)).artifacts.some((a) => a.kind === "backend")).toBe(true);
  });

  it("a control whose service is not configured is a 400 naming what is missing, at every scope; with the service it compiles", async () => {
    const problem = async (p: Promise<unknown>) => {
      const e = await p.then(() => undefined, (x: unknown) => x as ApiError);
      expect(e).toBeInstanceOf(ApiError);
      return e!.problem!;
    };
    const s = await admin.settings.get();
    const tenant = await problem(admin.settings.put({ settings: { contentSafety: { categories: { Hate: 2 } } } }, s.etag));
    expect(tenant).toMatchObject({ status: 400, reason: "content_safety_service_missing" });
    expect(tenant.errors).toEqual([expect.objectContaining({ field: "body.settings.contentSafety" })]);
    const cur = await admin.projects.get(project.id);
    const onProject = await problem(admin.projects.update(project.id, { settings: { semanticCache: {} } }, cur.etag));
    expect(onProject).toMatchObject({ status: 400, reason: "embeddings_service_missing" });
    expect(onProject.errors?.[0]?.field).toBe("body.settings.semanticCache");
    const model = (await admin.models.list(project.id)).items.find((m) => m.name === "gpt-4o")!;
    const onModel = await problem(admin.models.update(project.id, model.id, { settings: { contentSafety: { shieldPrompt: true } } }, model.etag));
    expect(onModel).toMatchObject({ status: 400, reason: "content_safety_service_missing" });
    // Nothing was written.
    expect((await admin.models.get(project.id, model.id)).etag).toBe(model.etag);
    expect((await admin.projects.get(project.id)).etag).toBe(cur.etag);

    const withServices = await admin.settings.put(
      { settings: { contentSafety: { categories: { Hate: 2 } } }, services: { contentSafety: { url: "https://cs-prod.cognitiveservices.azure.com" } } },
      s.etag,
    );
    const artifacts = (await admin.policy.show(project.id)).artifacts;
    const backend = artifacts.find((a) => a.kind === "backend" && String(a.id).endsWith("-content-safety")) as { url?: string; managedIdentity?: unknown } | undefined;
    expect(backend).toMatchObject({ url: "https://cs-prod.cognitiveservices.azure.com", managedIdentity: { resource: "https://cognitiveservices.azure.com" } });
    await admin.settings.put({ settings: {} }, withServices.etag);
  });

  it("a draft compiles as if saved, saves nothing, and is refused for what saving it would be refused for", async () => {
    const xmlOf = (p: { artifacts: { kind: string; ref: string; xml?: unknown }[] }) => String(p.artifacts.find((a) => a.kind === "policy" && String(a.ref).includes(project.id))!.xml);
    const before = await admin.projects.get(project.id);
    const auditBefore = (await (await t.as("t1", "aud", ["Auditor"])).audit.list({})).items.length;
    const reader = await t.as("t1", "rhea", ["Reader"]);

    const drafted = await reader.policy.preview(project.id, { settings: { tokens: { perMinute: { limit: 4321 } } }, explain: true });
    expect(xmlOf(drafted)).toMatch(/<llm-token-limit[^>]*tokens-per-minute="4321"/);
    expect(drafted.explain!.some((e) => JSON.stringify(e.control).includes("tokens.perMinute"))).toBe(true);
    expect(xmlOf(await admin.policy.show(project.id))).not.toContain("4321");

    // A drafted tenant floor applies to the saved project settings as saving it would.
    const floor = await admin.policy.preview(project.id, { tenantSettings: { tokens: { perMinute: { limit: 2000 } } } });
    expect(xmlOf(floor)).toMatch(/tokens-per-minute="2000"/);
    const loose = await admin.policy.preview(project.id, { tenantSettings: { tokens: { perMinute: { limit: 2000 } } }, settings: { tokens: { perMinute: { limit: 9000 } } } }).then(() => undefined, (e: ApiError) => e);
    expect(loose?.problem).toMatchObject({ status: 400, reason: "loosens_tenant_control", errors: [expect.objectContaining({ field: "body.settings.tokens.perMinute.limit" })] });
    // A model's drafted settings: compiled for that model only; an id the project does not have is a 400.
    const gpt = (await admin.models.list(project.id)).items.find((m) => m.name === "gpt-4o")!;
    const modelDraft = await reader.policy.preview(project.id, { models: { [gpt.id]: { tokens: { perMinute: { limit: 777 } } } } });
    expect(xmlOf(modelDraft)).toMatch(/tokens-per-minute="777"[^>]*remaining-tokens-header-name="x-aigov-tokens-remaining-minute-key-model"/);
    expect((await admin.models.get(project.id, gpt.id)).etag).toBe(gpt.etag);
    const stranger = await reader.policy.preview(project.id, { models: { mdl_00000000000000000000: null } }).then(() => undefined, (e: ApiError) => e);
    expect(stranger?.problem).toMatchObject({ status: 400, errors: [{ field: "body.models.mdl_00000000000000000000", message: "no model with this id in the project" }] });
    const modelNoService = await reader.policy.preview(project.id, { models: { [gpt.id]: { contentSafety: { shieldPrompt: true } } } }).then(() => undefined, (e: ApiError) => e);
    expect(modelNoService?.problem).toMatchObject({ status: 400, reason: "content_safety_service_missing" });

    expect((await admin.projects.get(project.id)).etag).toBe(before.etag); // the previews wrote nothing
    // A drafted floor below the saved project settings: the saved settings are named, not the body.
    const current = await admin.projects.get(project.id);
    await admin.projects.update(project.id, { settings: { tokens: { perMinute: { limit: 3000 } } } }, current.etag);
    const below = await admin.policy.preview(project.id, { tenantSettings: { tokens: { perMinute: { limit: 2000 } } } }).then(() => undefined, (e: ApiError) => e);
    expect(below?.problem).toMatchObject({ status: 400, reason: "loosens_tenant_control", errors: [expect.objectContaining({ field: "project.settings.tokens.perMinute.limit" })] });
    await admin.projects.update(project.id, { settings: null }, (await admin.projects.get(project.id)).etag);
    const noService = await admin.policy.preview(project.id, { settings: { contentSafety: { categories: { Hate: 2 } } } }).then(() => undefined, (e: ApiError) => e);
    expect(noService?.problem).toMatchObject({ status: 400, reason: "content_safety_service_missing" });
    const invalid = await admin.policy.preview(project.id, { settings: { tokens: { perMinute: { limit: -1 } } } } as never).then(() => undefined, (e: ApiError) => e);
    expect(invalid?.problem?.errors?.[0]?.field).toMatch(/^body\.settings\.tokens\.perMinute/);

    // Nothing the previews did was written: the tenant settings are as they were, and the audit log holds
    // only the two project updates this test made itself.
    expect((await admin.settings.get()).settings).toEqual({});
    expect((await (await t.as("t1", "aud", ["Auditor"])).audit.list({})).items.length).toBe(auditBefore + 2);
  });
});
