/**
 * Conformance: governance that cannot be talked around, checked by requests through the local
 * gateway — tenant controls are floors (loosening is an exemption), automation publishes only what
 * its own change needs, and one bad record never blocks the tenant.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiError, AigovClient } from "../../src/client/index.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";
import { until } from "../support/until.js";

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.stop());

const problemOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => (e as ApiError).problem);

/** `n` calls of `words` + `maxTokens` tokens each (their statuses), then a minute passes. */
async function burst(g: Governed, projectId: string, key: string, n: number, size = { words: 2, maxTokens: 8 }): Promise<number[]> {
  const statuses = [];
  for (let i = 0; i < n; i++) statuses.push((await g.chat(projectId, key, "gpt-4o", size)).status);
  g.t.clock.advance(61_000);
  return statuses;
}

describe("conformance: tenant controls are floors", () => {
  let g: Governed;
  let pam: AigovClient; // ProjectAdmin through a project assignment only
  let dev: AigovClient;
  beforeAll(async () => {
    g = await Governed.start("t-gov-floors", t);
    pam = await g.as("pam", []);
    dev = await g.as("dora", ["Developer"]);
    const s = await g.admin.settings.get();
    await g.admin.settings.put({ settings: { tokens: { perMinute: { limit: 20, per: "key" } } } }, s.etag);
  });

  it("a project admin's loosening is a 400; tightening works; an approved exemption is the way below the floor", async () => {
    const p = await g.project("floors", { roleAssignments: [{ principalId: "pam", role: "ProjectAdmin" }] });
    await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    const k = (await g.key(dev, p.id, { name: "floors" })).key;
    expect(await burst(g, p.id, k, 4)).toEqual([200, 200, 429, 429]);

    // Raising the limit, or switching it off, at the project: refused, nothing stored.
    let cur = await pam.projects.get(p.id);
    for (const [settings, field] of [
      [{ tokens: { perMinute: { limit: 1000 } } }, "body.settings.tokens.perMinute.limit"],
      [{ tokens: { perMinute: { enabled: false } } }, "body.settings.tokens.perMinute.enabled"],
    ] as const) {
      const problem = await problemOf(pam.projects.update(p.id, { settings }, cur.etag));
      expect(problem).toMatchObject({ status: 400, reason: "loosens_tenant_control" });
      expect(problem?.errors?.map((e) => e.field)).toEqual([field]);
    }
    expect(await pam.projects.get(p.id)).toEqual(cur);

    // Tightening is the project's to decide: 10 tokens a minute.
    cur = await pam.projects.update(p.id, { settings: { tokens: { perMinute: { limit: 10 } } } }, cur.etag);
    await g.publish("tighter");
    expect(await burst(g, p.id, k, 3)).toEqual([200, 429, 429]);

    // Below the floor only through an exemption a TenantAdmin approves.
    const exemption = await g.exemptProject(dev, p.id, "tokens.perMinute", { kind: "limit", value: 1000 });
    expect(await burst(g, p.id, k, 4)).toEqual([200, 200, 200, 200]);
    await g.revokeExemption(exemption);
    expect(await burst(g, p.id, k, 3)).toEqual([200, 429, 429]);
  });

  it("settings stored looser than the tenant (the tenant tightened since) reach the gateway clamped to the tenant's floor", async () => {
    const p = await g.project("clamped", { settings: { tokens: { perMinute: { limit: 15 } } } });
    await g.model(p.id, "gpt-4o");
    await g.publish("clamped");
    const k = (await g.key(dev, p.id, { name: "clamped" })).key;
    const small = { words: 1, maxTokens: 1 };
    const at15 = await burst(g, p.id, k, 10, small);
    const s = await g.admin.settings.get();
    await g.admin.settings.put({ settings: { tokens: { perMinute: { limit: 5, per: "key" } } } }, s.etag);
    await g.publish("tenant tightened");
    const at5 = await burst(g, p.id, k, 10, small);
    expect(at15.filter((x) => x === 200).length).toBe(8);
    expect(at5.filter((x) => x === 200).length).toBe(3);
    // The project's stored value is untouched (the clamp is the compiler input's), and explain names the tenant.
    expect((await g.admin.projects.get(p.id)).settings).toEqual({ tokens: { perMinute: { limit: 15 } } });
    const s2 = await g.admin.settings.get();
    await g.admin.settings.put({ settings: { tokens: { perMinute: { limit: 20, per: "key" } } } }, s2.etag);
  });
});

describe("conformance: settings that could not reach the gateway are refused when written", () => {
  it("a content-safety threshold off the severity scale in force is a 400 at every scope, so no write isolates a project from later publishes", async () => {
    const g = await Governed.start("t-gov-scale", t);
    const pam = await g.as("pam", []); // ProjectAdmin through a project assignment only
    const s = await g.admin.settings.get();
    await g.admin.settings.put({ settings: {}, services: { contentSafety: { url: "https://safety.cognitiveservices.azure.com" } } }, s.etag);
    const p = await g.project("scale", { roleAssignments: [{ principalId: "pam", role: "ProjectAdmin" }] });
    const model = await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    const k = (await g.key(g.admin, p.id, { name: "scale" })).key;
    const unsafe = (level: number) => g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "gpt-4o", messages: [{ role: "user", content: `text unsafe:Violence:${level}` }] } });

    // FourSeverityLevels (the default) knows 0, 2, 4 and 6 only: an odd threshold would not compile.
    const cur = await pam.projects.get(p.id);
    const atProject = await problemOf(pam.projects.update(p.id, { settings: { contentSafety: { categories: { Hate: 3 } } } }, cur.etag));
    expect(atProject).toMatchObject({ status: 400, reason: "validation_failed" });
    expect(atProject?.errors?.map((e) => e.field)).toEqual(["body.settings.contentSafety.categories.Hate"]);
    expect(await pam.projects.get(p.id)).toEqual(cur);
    const m = await g.admin.models.get(p.id, model.id);
    const atModel = await problemOf(g.admin.models.update(p.id, model.id, { settings: { contentSafety: { categories: { Violence: 5 } } } }, m.etag));
    expect(atModel?.errors?.map((e) => e.field)).toEqual(["body.settings.contentSafety.categories.Violence"]);
    const s1 = await g.admin.settings.get();
    const atTenant = await problemOf(g.admin.settings.put({ settings: { contentSafety: { categories: { Violence: 5 } } }, services: s1.services as never }, s1.etag));
    expect(atTenant?.errors?.map((e) => e.field)).toEqual(["body.settings.contentSafety.categories.Violence"]);
    expect(await g.admin.settings.get()).toEqual(s1);
    // The scale is the merged one: a project may set an odd threshold on the tenant's eight levels.
    const s2 = await g.admin.settings.put({ settings: { contentSafety: { outputType: "EightSeverityLevels", categories: { Violence: 6 } } }, services: s1.services as never }, s1.etag);
    await pam.projects.update(p.id, { settings: { contentSafety: { categories: { Violence: 3 } } } }, cur.etag);
    // Nor may the tenant go back to four levels under the project's odd threshold: the project would not compile.
    const narrowed = await problemOf(g.admin.settings.put({ settings: { contentSafety: { categories: { Violence: 6 } } }, services: s1.services as never }, s2.etag));
    expect(narrowed).toMatchObject({ status: 400, errors: [{ field: "body.settings.contentSafety.outputType", message: expect.stringContaining(`project scale (${p.id}) sets Violence to 3`) }] });
    expect(await g.admin.settings.get()).toEqual(s2);

    // Nothing stored fails to compile: the publish isolates no project, and the project's threshold is at the gateway.
    const published = await g.admin.policy.publish({ reason: "eight levels" });
    expect(published.isolated ?? []).toEqual([]);
    await g.publish("settled");
    expect((await unsafe(2)).status).toBe(200);
    expect((await unsafe(3)).status).toBe(403);
    expect(s2.settings).toMatchObject({ contentSafety: { outputType: "EightSeverityLevels" } });
  });
});

describe("conformance: a service the tenant drops", () => {
  it("is refused while a project still switches its control on (it would be isolated from every later publish), and accepted once nothing needs it", async () => {
    const g = await Governed.start("t-gov-services", t);
    const s = await g.admin.settings.get();
    const services = { contentSafety: { url: "https://safety.cognitiveservices.azure.com" } };
    await g.admin.settings.put({ settings: {}, services }, s.etag);
    const p = await g.project("guarded", { settings: { contentSafety: { categories: { Violence: 4 } } } });
    await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    const k = (await g.key(g.admin, p.id, { name: "guarded" })).key;
    const unsafe = () => g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "gpt-4o", messages: [{ role: "user", content: "text unsafe:Violence:5" }] } });
    expect((await unsafe()).status).toBe(403);

    // The tenant's settings without the service (as `settings set` with a file of settings alone would send them).
    const before = await g.admin.settings.get();
    for (const body of [{ settings: {} }, { settings: {}, services: {} }]) {
      const problem = await problemOf(g.admin.settings.put(body, before.etag));
      expect(problem).toMatchObject({ status: 400, reason: "content_safety_service_missing" });
      expect(problem?.errors?.map((e) => e.field)).toEqual(["body.services.contentSafety"]);
      expect(problem?.errors?.[0]?.message).toContain(p.id);
    }
    expect(await g.admin.settings.get()).toEqual(before);
    const published = await g.admin.policy.publish({ reason: "still guarded" });
    expect(published.isolated ?? []).toEqual([]);
    expect((await unsafe()).status).toBe(403);

    // Switched off where it was on, the service may go.
    const cur = await g.admin.projects.get(p.id);
    await g.admin.projects.update(p.id, { settings: null }, cur.etag);
    const dropped = await g.admin.settings.put({ settings: {} }, before.etag);
    expect(dropped.services).toEqual({});
    await g.publish("unguarded");
    expect((await unsafe()).status).toBe(200);
  });
});

describe("conformance: automation publishes only what it needs", () => {
  it("a key's automatic publish ships its product and leaves a staged registry change for a person's publish, and says so", async () => {
    const g = await Governed.start("t-gov-auto", t);
    const pam = await g.as("pam", []);
    const dev = await g.as("dora", ["Developer"]);
    const p = await g.project("auto", { roleAssignments: [{ principalId: "pam", role: "ProjectAdmin" }] });
    await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    // The project admin stages a registry change (a new model), then a key with its own limits profile needs a product.
    await pam.models.create(p.id, {
      name: "o3",
      provider: "openai",
      modelName: "o3",
      backends: [{ id: "b0", url: "https://o3.mock.localhost/v1", region: "eastus", credential: { type: "apiKey", header: "api-key", key: "provider-key-o3" } }],
    });
    const k = await g.key(dev, p.id, { name: "profiled", limits: { tokensPerMinute: 500 } });
    const revisions = (await g.admin.policy.revisions()).items;
    const system = revisions.find((r) => r.origin === "system")!;
    expect(system).toMatchObject({ status: "published", staged: { tenant: false, projects: [p.id] } });
    expect(system.changes.every((c) => !c.ref.includes("o3"))).toBe(true);
    expect(system.changes.some((c) => c.ref.startsWith("product:"))).toBe(true);
    // The key works; the staged model is not at the gateway.
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    const staged = await g.chat(p.id, k.key, "o3");
    expect([staged.status, staged.json.error?.code]).toEqual([404, "model_not_found"]);
    expect((await g.admin.policy.diff()).counts.added).toBeGreaterThan(0);
    // A person's publish ships it.
    await g.publish("the new model");
    expect((await g.chat(p.id, k.key, "o3")).status).toBe(200);
  });
});

describe("conformance: one bad record never blocks a tenant", () => {
  it("a control character is a 400 at the edge; injected into the store, it isolates only its own project", async () => {
    const g = await Governed.start("t-gov-iso", t);
    const dev = await g.as("dora", ["Developer"]);
    const a = await g.project("damaged");
    const b = await g.project("healthy");
    await g.model(a.id, "gpt-4o", { hosts: ["iso-a.mock.localhost"] });
    await g.model(b.id, "gpt-4o", { hosts: ["iso-b.mock.localhost"] });
    await g.publish("baseline");
    const ka = (await g.key(dev, a.id, { name: "a" })).key;

    // Through the API: refused at the edge.
    const problem = await problemOf(g.admin.projects.update(a.id, { description: "bell\u0007" }, a.etag));
    expect(problem).toMatchObject({ status: 400, reason: "control_characters" });

    // Straight into the store (a damaged record): the tenant still publishes; the project keeps what it had.
    const item = t.container().item(a.id, ["t-gov-iso", "_tenant"]);
    const { resource } = await item.read();
    await item.replace({ ...resource, description: "bell\u0007" });
    await g.model(b.id, "o3", { hosts: ["iso-b-o3.mock.localhost"] });
    const result = await g.admin.policy.publish({ reason: "with a damaged project" });
    expect(result.revision?.isolated).toEqual([{ projectId: a.id, name: "damaged", error: expect.stringContaining("control") as unknown, outcome: "keptPublished" }]);
    await until(async () => ((await g.admin.policy.revision(result.revision!.id)).status === "published" ? true : undefined), "published");
    await g.settle();
    const kb = (await g.key(dev, b.id, { name: "b" })).key;
    expect((await g.chat(b.id, kb, "o3")).status).toBe(200);
    expect((await g.chat(a.id, ka, "gpt-4o")).status).toBe(200);

    // A damaged project that never published is left out, and said so.
    const c = await g.project("never published");
    const citem = t.container().item(c.id, ["t-gov-iso", "_tenant"]);
    await citem.replace({ ...(await citem.read()).resource, name: "nul\u0000name" });
    const again = await g.admin.policy.publish({ reason: "again" });
    // Nothing else changed, so no new revision: the publish still says what it isolated.
    expect(again.changed).toBe(false);
    expect(again.isolated?.map((x) => [x.projectId, x.outcome])).toEqual([
      [a.id, "keptPublished"],
      [c.id, "leftOut"],
    ]);
  });

  it("a published project that compiles neither as it is nor as published keeps what the gateway holds for it", async () => {
    const g = await Governed.start("t-gov-held", t);
    const dev = await g.as("dora", ["Developer"]);
    const a = await g.project("held");
    const b = await g.project("moving on");
    await g.model(a.id, "gpt-4o", { hosts: ["held-a.mock.localhost"] });
    await g.model(b.id, "gpt-4o", { hosts: ["held-b.mock.localhost"] });
    await g.publish("baseline");
    const ka = (await g.key(dev, a.id, { name: "a", limits: { tokensPerMinute: 5_000 } })).key;
    // A key of the kept project shared into the other one, limited to 30 tokens a minute.
    const shared = await g.key(dev, a.id, { name: "shared", limits: { tokensPerMinute: 30 } });
    const { approval } = await dev.keys.share(a.id, shared.id, { projectId: b.id, justification: "evaluation" }, (await dev.keys.get(a.id, shared.id)).etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(a.id, shared.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(a.id, shared.id);
    await g.settle();
    expect((await g.chat(a.id, ka, "gpt-4o")).status).toBe(200);
    const inB = async () => {
      const out: number[] = [];
      for (let i = 0; i < 4; i++) out.push((await g.chat(b.id, shared.key, "gpt-4o", { words: 2, maxTokens: 8 })).status);
      g.t.clock.advance(61_000);
      return out;
    };
    expect(await inB()).toEqual([200, 200, 200, 429]);

    // The project's record and its entry in the published registry snapshot are both damaged.
    const partition = ["t-gov-held", "_tenant"];
    const item = t.container().item(a.id, partition);
    await item.replace({ ...(await item.read()).resource, description: "bell\u0007" });
    const { resources: parts } = await t
      .container()
      .items.query<{ id: string; part: { kind: string; project?: { id: string } } }>({
        query: "SELECT * FROM c WHERE c.tenantId = @t AND c.docType = 'registryPart'",
        parameters: [{ name: "@t", value: "t-gov-held" }],
      })
      .fetchAll();
    const mine = parts.filter((p) => p.part.project?.id === a.id);
    expect(mine.length).toBeGreaterThan(0);
    for (const p of mine) await t.container().item(p.id, partition).replace({ ...p, part: { ...p.part, project: { ...p.part.project, name: "nul\u0000name" } } });

    // A person's publish: the other project's change ships; this one's API, policy and products stay.
    await g.model(b.id, "o3", { hosts: ["held-b-o3.mock.localhost"] });
    const result = await g.admin.policy.publish({ reason: "with a project that compiles neither way" });
    expect(result.revision?.isolated?.map((x) => [x.projectId, x.outcome])).toEqual([[a.id, "keptArtifacts"]]);
    // Only the kept products' links to the other project's API change.
    expect(result.revision!.changes.filter((c) => c.ref.includes(a.id) && !c.ref.startsWith("product:"))).toEqual([]);
    await until(async () => ((await g.admin.policy.revision(result.revision!.id)).status === "published" ? true : undefined), "published");
    const kb = (await g.key(dev, b.id, { name: "b" })).key;
    await g.settle();
    expect((await g.chat(b.id, kb, "o3")).status).toBe(200);
    expect((await g.chat(a.id, ka, "gpt-4o")).status).toBe(200);
    expect((await g.admin.policy.diff()).changes.filter((c) => c.ref.includes(a.id))).toEqual([]);
    // The other project no longer applies the kept project's key tiers, so the kept products link only
    // their own project's API: the shared key is refused there (never let in without its limit).
    expect((await inB()).every((status) => status === 401)).toBe(true);
    expect((await g.chat(a.id, shared.key, "gpt-4o")).status).toBe(200);

    // The system's next publish (a key of the other project with a profile of its own needs a product) keeps it too.
    await g.key(dev, b.id, { name: "profiled", limits: { tokensPerMinute: 700 } });
    await g.settle();
    const system = (await g.admin.policy.revisions()).items.find((r) => r.origin === "system")!;
    expect(system).toMatchObject({ status: "published", isolated: [{ projectId: a.id, outcome: "keptArtifacts" }] });
    expect(system.changes.filter((c) => c.ref.includes(a.id))).toEqual([]);
    expect((await g.chat(a.id, ka, "gpt-4o")).status).toBe(200);

    // Repaired, the project compiles again and publishes as it is.
    await item.replace({ ...(await item.read()).resource, description: "fixed" });
    const repaired = await g.admin.policy.publish({ reason: "repaired" });
    expect(repaired.isolated).toBeUndefined();
    await until(async () => ((await g.admin.policy.revision(repaired.revision!.id)).status === "published" ? true : undefined), "published");
    expect((await g.chat(a.id, ka, "gpt-4o")).status).toBe(200);
  });

  it("a published project whose entry sends the gateway's identity where it may not go (stored before ADR 022) is taken off the gateway, not kept", async () => {
    const g = await Governed.start("t-gov-mi", t);
    const dev = await g.as("dora", ["Developer"]);
    const a = await g.project("exfil");
    const b = await g.project("fine");
    const model = await g.model(a.id, "gpt-4o", { hosts: ["mi-a.mock.localhost"] });
    await g.model(b.id, "gpt-4o", { hosts: ["mi-b.mock.localhost"] });
    await g.publish("baseline");
    const ka = (await g.key(dev, a.id, { name: "a" })).key;
    expect((await g.chat(a.id, ka, "gpt-4o")).status).toBe(200);

    // Written before the rule: the backend, in the store and in the published registry, has the gateway fetch a
    // Key Vault token for a host of the tenant's choosing.
    const exfil = { url: "https://collector.example.com/v1", audience: "https://vault.azure.net" };
    const modelItem = t.container().item(model.id, ["t-gov-mi", a.id]);
    const stored = (await modelItem.read()).resource as { backends: Record<string, unknown>[] };
    await modelItem.replace({ ...stored, backends: stored.backends.map((x) => ({ ...x, url: exfil.url, credential: { type: "managedIdentity", audience: exfil.audience } })) });
    const { resources: parts } = await t
      .container()
      .items.query<{ id: string; part: { project?: { id: string; models?: { backends: Record<string, unknown>[] }[] } } }>({
        query: "SELECT * FROM c WHERE c.tenantId = @t AND c.docType = 'registryPart'",
        parameters: [{ name: "@t", value: "t-gov-mi" }],
      })
      .fetchAll();
    const mine = parts.filter((p) => p.part.project?.id === a.id);
    expect(mine.length).toBeGreaterThan(0);
    for (const p of mine) {
      const models = p.part.project!.models!.map((m) => ({ ...m, backends: m.backends.map((x) => ({ ...x, url: exfil.url, auth: { type: "managedIdentity", resource: exfil.audience } })) }));
      await t.container().item(p.id, ["t-gov-mi", "_tenant"]).replace({ ...p, part: { ...p.part, project: { ...p.part.project, models } } });
    }

    // A publish isolates it, and does not keep its policy: the project is off the gateway until the credential is mended.
    await g.model(b.id, "o3", { hosts: ["mi-b-o3.mock.localhost"] });
    const result = await g.admin.policy.publish({ reason: "with a project whose published credential is unsafe" });
    expect(result.revision?.isolated).toEqual([{ projectId: a.id, name: "exfil", error: expect.stringContaining("managed identity refused") as unknown, outcome: "leftOut" }]);
    await until(async () => ((await g.admin.policy.revision(result.revision!.id)).status === "published" ? true : undefined), "published");
    await g.settle();
    expect(refusal(await g.chat(a.id, ka, "gpt-4o"))).toEqual(NOT_SERVED);
    const kb = (await g.key(dev, b.id, { name: "b" })).key;
    expect((await g.chat(b.id, kb, "o3")).status).toBe(200);
  });
});

describe("conformance: the environment gates hold for a project's models at a project edit", () => {
  it("a project edit that leaves one of its models without any limit is refused like the same edit at the model", async () => {
    const g = await Governed.start("t-gov-gate-models", t);
    const s = await g.admin.settings.get();
    await g.admin.settings.put({ settings: {}, services: { contentSafety: { url: "https://safety.cognitiveservices.azure.com" } } }, s.etag);
    const cs = { categories: { Violence: 4 } };
    const p = await g.project("gated-models", { environment: "test", costCenter: "CC-1", settings: { contentSafety: cs, tokens: { perMinute: { limit: 10_000 } }, requests: { rate: { calls: 100 } } } });
    // The model switches the token limit off for itself: the project's request rate still applies to it.
    const m = await g.model(p.id, "gpt-4o", { extra: { settings: { tokens: { perMinute: { enabled: false } } } } });
    expect(m.name).toBe("gpt-4o");
    // Dropping the request rate keeps the project's own token limit, but leaves the model with none.
    const cur = await g.admin.projects.get(p.id);
    const problem = await problemOf(g.admin.projects.update(p.id, { settings: { contentSafety: cs, tokens: { perMinute: { limit: 10_000 } } } }, cur.etag));
    expect(problem).toMatchObject({ status: 409, reason: "environment_gate_failed" });
    expect(problem?.detail).toContain("model gpt-4o");
    expect(await g.admin.projects.get(p.id)).toEqual(cur);
    // An edit that keeps the model's limit passes.
    expect((await g.admin.projects.update(p.id, { description: "still gated" }, cur.etag)).description).toBe("still gated");
  });
});
