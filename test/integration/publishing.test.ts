import { createHttpHeaders } from "@azure/core-rest-pipeline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { instanceBaseline } from "../../src/policy/compile/instance.js";
import { parseRef } from "../../src/adapters/apim/plan.js";
import { resourcePath } from "../../src/adapters/apim/shapes.js";
import { overrideServices } from "../../src/app/services.js";
import { gatewayNames } from "../../src/policy/names.js";

/** The ids of this suite's tenant's artifacts. */
const N = gatewayNames("t-pub");
import type { AigovClient } from "../../src/client/index.js";
import type { Model } from "../../src/pillars/models/schema.js";
import type { Project } from "../../src/domain/projects/schema.js";
import type { Revision } from "../../src/domain/publishing/schema.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { armPublisherOn, createArmFake, type ArmFake } from "../support/arm-fake.js";
import { reasonOf, statusOf } from "../support/errors.js";

const KEY = "sk-publishing-provider-key-0123456789";

let t: TestApp;
let fake: ArmFake;
let admin: AigovClient;
let project: Project;
let chat: Model;
/** While true, the gateway answers every call with 500. */
let broken = false;

const writes = (from = 0) => fake.requests.slice(from).filter((r) => r.method === "PUT" || r.method === "DELETE" || r.method === "PATCH");
const policyOf = (resource: string) => String(fake.state.get(resource)?.properties.value ?? "");

async function settled(client: AigovClient, revisionId: string): Promise<Revision> {
  for (let i = 0; i < 400; i++) {
    const r = await client.policy.revision(revisionId);
    if (r.status !== "pending") return r;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`revision ${revisionId} is still pending`);
}

async function publish(reason: string): Promise<Revision> {
  const result = await admin.policy.publish({ reason });
  expect(result.changed).toBe(true);
  return settled(admin, result.revision!.id);
}

beforeAll(async () => {
  fake = createArmFake();
  overrideServices({
    gatewayPublisher: (resolveSecret) =>
      armPublisherOn(fake, resolveSecret, (req, send) => (broken ? Promise.resolve({ request: req, status: 500, headers: createHttpHeaders() }) : send(req))),
  });
  t = await startTestApp();
  admin = await t.as("t-pub", "alice", ["TenantAdmin"]);
  project = await admin.projects.create(projectSpec("publishing"));
  chat = await admin.models.create(project.id, {
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
    backends: [{ id: "weu", url: "https://old.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
  });
});
afterAll(async () => {
  overrideServices({});
  await t.stop();
});

describe("publishing to the gateway (real ARM SDK against a recording fake)", () => {
  let first: Revision;
  let second: Revision;
  const apiPolicy = () => `apis/${N.api(project.id)}/policies/policy`;

  it("publishes exactly the compiled artifacts, named values and backends before the policies that use them", async () => {
    const preview = await admin.policy.show(project.id);
    first = await publish("first publish");
    expect(first).toMatchObject({ number: 1, kind: "publish", status: "published", createdBy: "alice", reason: "first publish" });
    expect(first.counts).toEqual({ added: preview.artifacts.length, modified: 0, removed: 0 });

    const puts = writes().filter((r) => r.method === "PUT");
    // First of all, the instance baseline (ADR 023): the instance held no global policy.
    expect(puts[0]).toMatchObject({ resource: "policies/policy", body: { properties: { format: "xml", value: instanceBaseline().xml } } });
    const expected = [...preview.artifacts.map((a) => resourcePath(parseRef(String(a.ref)))), "policies/policy"];
    // Every artifact was written once, at its ARM path, with the API version the publisher pins.
    for (const path of expected) expect(puts.filter((r) => r.resource === path), path).toHaveLength(1);
    for (const r of puts) {
      expect(r.apiVersion).toBe("2024-05-01");
      expect(expected.some((p) => r.resource === p || r.resource.startsWith(`${p}/`)), r.resource).toBe(true);
    }
    // Bodies: the policy document as compiled (format xml: well-formed, expressions escaped), the key as a Key Vault reference only.
    const policy = preview.artifacts.find((a) => a.kind === "policy")!;
    const policyPut = puts.find((r) => r.resource === resourcePath(parseRef(String(policy.ref))))!;
    expect(policyPut.body).toEqual({ properties: { format: "xml", value: policy.xml } });
    expect(JSON.stringify(fake.requests)).not.toContain(KEY);
    const nvPuts = puts.filter((r) => r.resource.startsWith("namedValues/"));
    expect(nvPuts).toHaveLength(2); // one Key Vault-backed named value per keyed backend
    for (const nv of nvPuts) expect(JSON.stringify(nv.body)).toMatch(/"keyVault":\{"secretIdentifier":"https:\/\/aigov-local\.vault\.azure\.net\/secrets\/model-/);
    // Order: named values, then single backends, then pools, then the API, then its policy.
    const order = puts.map((r) => r.resource.split("/")[0]);
    const lastIndex = (kind: string) => order.lastIndexOf(kind);
    expect(lastIndex("namedValues")).toBeLessThan(order.indexOf("backends"));
    const pool = puts.findIndex((r) => r.resource.startsWith("backends/") && (r.body as { properties: { type?: string } }).properties.type === "Pool");
    const single = puts.map((r, i) => ({ r, i })).filter(({ r }) => r.resource.startsWith("backends/") && (r.body as { properties: { type?: string } }).properties.type !== "Pool");
    expect(Math.max(...single.map((s) => s.i))).toBeLessThan(pool);
    expect(puts.findIndex((r) => r.resource === apiPolicy())).toBe(puts.length - 1);
  });

  it("publishing again without a change makes no revision and sends nothing", async () => {
    const before = fake.requests.length;
    const again = await admin.policy.publish({});
    expect(again.changed).toBe(false);
    expect(again.revision?.id).toBe(first.id);
    expect(fake.requests.length).toBe(before);
    expect((await admin.policy.revisions()).items.map((r) => r.number)).toEqual([1]);
    expect((await admin.policy.diff()).counts).toEqual({ added: 0, modified: 0, removed: 0 });
  });

  it("a settings change is one revision with a unified diff; only the changed document is sent", async () => {
    const settings = await admin.settings.get();
    await admin.settings.put({ settings: { tokens: { perMinute: { limit: 4321 } } } }, settings.etag);
    const pending = await admin.policy.diff();
    expect(pending.counts.modified).toBeGreaterThan(0);
    expect(pending.diff).toContain("+");
    expect(pending.diff).toContain("4321");

    const from = fake.requests.length;
    second = await publish("token limit");
    expect(second).toMatchObject({ number: 2, basedOn: first.id, status: "published" });
    const sent = writes(from).map((r) => `${r.method} ${r.resource}`);
    expect(sent).toEqual(second.changes.filter((c) => c.change !== "removed").map((c) => `PUT ${resourcePath(parseRef(c.ref))}`));
    expect(policyOf(apiPolicy())).toContain('tokens-per-minute="4321"');

    const withDiff = await admin.policy.revision(second.id, true);
    expect(withDiff.diff).toMatch(/^--- a\/policy:api\//m);
    expect(withDiff.diff).toMatch(/^\+.*tokens-per-minute="4321"/m);

    await t.relay();
    const published = t.events().filter((e) => e.type === "aigov.gateway.published.v1");
    expect(published.map((e) => (e.data as { number: number }).number)).toEqual([1, 2]);
    const audit = await admin.audit.list({ maxPageSize: 100 });
    expect(audit.items.filter((a) => a.action === "gateway.publish").map((a) => a.resource)).toEqual(expect.arrayContaining([`/gateway/revisions/${first.id}`, `/gateway/revisions/${second.id}`]));
  });

  it("reports a policy edited in the gateway as drift, and not a mere re-serialisation", async () => {
    // Published, never compared: the report says so rather than claiming the gateway is in sync.
    expect(await admin.policy.drift()).toMatchObject({ status: "notChecked", checkedArtifacts: 0, items: [] });
    expect((await admin.policy.drift()).checkedAt).toBeUndefined();
    expect((await admin.policy.checkDrift()).status).toBe("inSync");
    // APIM hands policies back re-serialised: different whitespace and entities, same document.
    fake.edit(apiPolicy(), (p) => (p.value = String(p.value).replace(/\n\s*/g, "").replace(/&quot;/g, "&#34;")));
    expect(await admin.policy.checkDrift()).toMatchObject({ status: "inSync", revisionId: second.id, items: [] });

    fake.edit(apiPolicy(), (p) => (p.value = String(p.value).replace('tokens-per-minute="4321"', 'tokens-per-minute="999999"')));
    const report = await admin.policy.checkDrift();
    expect(report.status).toBe("drifted");
    expect(report.items.map((i) => [i.ref, i.state])).toEqual([[`policy:api/${N.api(project.id)}`, "modified"]]);
    expect(report.items[0]!.diff).toMatch(/^-.*tokens-per-minute="4321"/m);
    expect(report.items[0]!.diff).toMatch(/^\+.*tokens-per-minute="999999"/m);
    expect((await admin.policy.drift()).status).toBe("drifted");
    await t.relay();
    expect(t.events().filter((e) => e.type === "aigov.gateway.drift.detected.v1")).toHaveLength(1);
    // The same finding again is not a new event.
    await admin.policy.checkDrift();
    await t.relay();
    expect(t.events().filter((e) => e.type === "aigov.gateway.drift.detected.v1")).toHaveLength(1);
  });

  it("rollback republishes an earlier revision (and overwrites the drifted document)", async () => {
    const result = await admin.policy.rollback(first.id, { reason: "back to 1" });
    expect(result.changed).toBe(true);
    const third = await settled(admin, result.revision!.id);
    expect(third).toMatchObject({ number: 3, kind: "rollback", rollbackOf: first.id, status: "published", reason: "back to 1" });
    const firstArtifacts = (await admin.policy.revision(first.id, true)).diff!;
    // The tenant's limit set since revision 1 is a floor: a rollback never loosens one (ADR 006).
    expect(policyOf(apiPolicy())).toContain('tokens-per-minute="4321"');
    expect(policyOf(apiPolicy())).not.toContain("999999");
    expect(firstArtifacts).toContain("policy:api/");
    const report = await admin.policy.checkDrift();
    expect(report).toMatchObject({ status: "inSync", revisionId: third.id });
    await t.relay();
    expect(t.events().filter((e) => e.type === "aigov.gateway.drift.resolved.v1")).toHaveLength(1);
    // Rolling back to what the gateway already holds changes nothing.
    expect((await admin.policy.rollback(first.id, {})).changed).toBe(false);
    // Only published revisions can be restored; a missing one is a 404.
    expect(await statusOf(admin.policy.rollback("rev_00000000000000000000", {}))).toBe(404);
  });

  it("a deprecated model is published with its sunset; a blocked model leaves every pool and the policy", async () => {
    const old = (await admin.models.list(project.id)).items.find((m) => m.name === "old-model")!;
    await admin.models.update(project.id, old.id, { status: "deprecated", sunsetDate: "2099-03-31" }, old.etag);
    const fresh = await admin.models.get(project.id, chat.id);
    await admin.models.update(project.id, chat.id, { status: "blocked" }, fresh.etag);
    const from = fake.requests.length;
    const rev = await publish("deprecate and block");
    expect(rev.status).toBe("published");
    const xml = policyOf(apiPolicy());
    expect(xml).toContain("Sunset");
    expect(xml).toContain("old-model");
    expect(xml).not.toContain("gpt-4o");
    // The blocked model's backends, pool and named value were deleted from the gateway.
    const deleted = writes(from).filter((r) => r.method === "DELETE").map((r) => r.resource);
    expect(deleted.length).toBeGreaterThanOrEqual(4);
    const held = JSON.stringify([...fake.state.entries()]);
    expect(held).not.toContain("weu.openai.azure.com");
    expect(held).not.toContain("sec.openai.azure.com");
    expect([...fake.state.keys()].filter((k) => k.startsWith("namedValues/"))).toEqual([]);
    // Pools come out before their members (reverse of the write order).
    const isPool = (resource: string) => fake.requests.some((q) => q.method === "PUT" && q.resource === resource && (q.body as { properties: { type?: string } }).properties.type === "Pool");
    const backendDeletes = deleted.filter((r) => r.startsWith("backends/"));
    expect(backendDeletes.filter(isPool).length).toBeGreaterThan(0);
    expect(backendDeletes.findLastIndex(isPool)).toBeLessThan(backendDeletes.findIndex((r) => !isPool(r)));
  });

  it("a gateway that fails part-way is retried and resumes where it stopped", async () => {
    const old = (await admin.models.list(project.id)).items.find((m) => m.name === "old-model")!;
    await admin.models.update(project.id, old.id, { displayName: "Old model (retiring)" }, old.etag);
    await admin.models.create(project.id, {
      name: "mini",
      provider: "azure-openai",
      modelName: "gpt-4o-mini",
      backends: [{ id: "weu", url: "https://mini.openai.azure.com", region: "westeurope", credential: { type: "apiKey", header: "api-key", key: KEY } }],
    });
    // The policy write fails repeatedly (503), after the named value and backends went through.
    fake.beforeNext("PUT", apiPolicy(), () => fake.failNext(503, 6));
    const from = fake.requests.length;
    const rev = await publish("with faults");
    expect(rev.status).toBe("published");
    const sent = writes(from).filter((r) => r.status < 300);
    // Resumed: what succeeded before the failure was not sent again.
    const counts = new Map<string, number>();
    for (const r of sent) counts.set(r.resource, (counts.get(r.resource) ?? 0) + 1);
    expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
    expect(writes(from).some((r) => r.status === 503)).toBe(true);
    // The outcome is the whole publish's, both attempts': each changed artifact sent once.
    expect(rev.outcome).toEqual({ sent: rev.counts.added + rev.counts.modified, unchanged: rev.artifactCount - rev.counts.added - rev.counts.modified, deleted: rev.counts.removed });
    expect(policyOf(apiPolicy())).toContain("mini");
    expect((await admin.policy.checkDrift()).status).toBe("inSync");
  });

  it("a gateway that keeps failing marks the revision failed; the next publish completes it", async () => {
    const settings = await admin.settings.get();
    await admin.settings.put({ settings: { tokens: { perMinute: { limit: 1111 } } } }, settings.etag);
    broken = true;
    const result = await admin.policy.publish({ reason: "doomed" });
    const rev = await settled(admin, result.revision!.id);
    broken = false;
    expect(rev.status).toBe("failed");
    expect(rev.error).toMatch(/stopped/);
    // The failure's reason, one line: not the activity's stack trace (file paths and internals).
    expect(rev.error).not.toMatch(/\n|\bat .*\.[cm]?js:\d+|\/dist\/|node_modules/);
    await t.relay();
    expect(t.events().some((e) => e.type === "aigov.gateway.publish.failed.v1" && (e.data as { revisionId: string }).revisionId === rev.id)).toBe(true);
    // A failed revision was never published: it cannot be rolled back to.
    expect(await reasonOf(admin.policy.rollback(rev.id, {}))).toBe("409 revision_not_published");
    const next = await publish("retry by hand");
    expect(next.status).toBe("published");
    expect(policyOf(apiPolicy())).toContain('tokens-per-minute="1111"');
  });

  it("a publish that fails before it repairs a drifted document leaves the drift report readable, and the next one repairs it", async () => {
    expect((await admin.policy.checkDrift()).status).toBe("inSync");
    fake.edit(apiPolicy(), (p) => (p.value = String(p.value).replace('tokens-per-minute="1111"', 'tokens-per-minute="7"')));
    expect((await admin.policy.checkDrift()).status).toBe("drifted");
    const settings = await admin.settings.get();
    await admin.settings.put({ settings: { tokens: { perMinute: { limit: 2222 } } } }, settings.etag);
    broken = true;
    const failed = await settled(admin, (await admin.policy.publish({ reason: "fails before the policy" })).revision!.id);
    broken = false;
    expect(failed.status).toBe("failed");
    // What the failed publish recorded is real hashes only: the drift check still reads the gateway back.
    const report = await admin.policy.checkDrift();
    expect(report.status).toBe("drifted");
    expect(report.items.map((i) => i.ref)).toContain(`policy:api/${N.api(project.id)}`);
    expect((await publish("repairs")).status).toBe("published");
    expect(policyOf(apiPolicy())).toContain('tokens-per-minute="2222"');
    expect((await admin.policy.checkDrift()).status).toBe("inSync");
  });

  it("readers see revisions and drift but cannot publish, roll back or check", async () => {
    const reader = await t.as("t-pub", "rita", ["Reader"]);
    expect((await reader.policy.revisions()).items.length).toBeGreaterThan(3);
    expect(await statusOf(reader.policy.publish({}))).toBe(403);
    expect(await statusOf(reader.policy.rollback(first.id, {}))).toBe(403);
    expect(await statusOf(reader.policy.checkDrift())).toBe(403);
    expect((await reader.policy.drift()).status).toBe("inSync");
  });
});
