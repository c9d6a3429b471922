import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createHttpHeaders } from "@azure/core-rest-pipeline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { ApiError, AigovClient } from "../../src/client/index.js";
import { isWellFormedKey } from "../../src/domain/keys/format.js";
import type { Key, KeyWithSecret } from "../../src/domain/keys/schema.js";
import type { Model } from "../../src/pillars/models/schema.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { gatewayNames } from "../../src/policy/names.js";

/** The ids of this suite's tenant's artifacts. */
const N = gatewayNames("t-keys");
import { AppClock, projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { armPublisherOn, createArmFake, type ArmFake } from "../support/arm-fake.js";
import { errorOf, reasonOf } from "../support/errors.js";
import { until } from "../support/until.js";


let t: TestApp;
/** The app's time (services and durable timers): overlaps and expiries pass when a test moves it. */
const appClock = new AppClock();
let fake: ArmFake;
let admin: AigovClient;
let dev: AigovClient;
let project: Project;
let gpt: Model;
let mini: Model;
/** Every key plaintext seen in a response: none of them may be stored or logged anywhere. */
const plaintexts = new Set<string>();
/** Everything the app wrote to stdout/stderr during the tests. */
let captured = "";
/** While true, the gateway answers every call with 500. */
let broken = false;
/** The next this-many subscription writes reach the gateway, but the caller sees a time-out instead of the answer. */
let lostAnswers = 0;
const writes = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };

const sub = (keyId: string) => fake.state.get(`subscriptions/${N.subscription(keyId)}`)?.properties as { state: string; scope: string } | undefined;
/** The successful subscription writes for a key, as (primary, secondary) pairs, in order. */
const keyHistory = (keyId: string) =>
  fake.requests
    .filter((r) => r.method === "PUT" && r.resource === `subscriptions/${N.subscription(keyId)}` && r.status < 300)
    .map((r) => (r.body as { properties: { primaryKey: string; secondaryKey: string } }).properties)
    .map((p) => [p.primaryKey, p.secondaryKey] as const);


/** Runs what the timers would run until the key is confirmed at the gateway. */
async function synced(keyId: string): Promise<Key> {
  return until(async () => {
    await t.app.host.invokeTimer("gatewayPublishSweep");
    await t.app.host.invokeTimer("keyLifecycle");
    const k = await admin.keys.get(project.id, keyId);
    return k.gateway.state === "synced" ? k : undefined;
  }, `key ${keyId} synced`);
}

async function create(body: Parameters<AigovClient["keys"]["create"]>[1]): Promise<KeyWithSecret> {
  const k = await dev.keys.create(project.id, body);
  plaintexts.add(k.key);
  return k;
}

beforeAll(async () => {
  fake = createArmFake();
  overrideServices({
    clock: appClock,
    gatewayPublisher: (resolveSecret) =>
      armPublisherOn(fake, resolveSecret, async (req, send) => {
        if (broken) return { request: req, status: 500, headers: createHttpHeaders() };
        const res = await send(req);
        if (lostAnswers > 0 && req.method === "PUT" && /\/subscriptions\/aigov-[a-z0-9]+-key_/.test(new URL(req.url).pathname.split("/service/")[1] ?? "")) {
          lostAnswers -= 1;
          throw Object.assign(new Error("socket hang up: the request timed out"), { code: "ETIMEDOUT" });
        }
        return res;
      }),
  });
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    captured += String(chunk);
    return (writes.out as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    captured += String(chunk);
    return (writes.err as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  t = await startTestApp({ appClock });
  admin = await t.as("t-keys", "carol", ["TenantAdmin", "Auditor"]);
  dev = await t.as("t-keys", "dora", ["Developer"]);
  project = await admin.projects.create(projectSpec("keys", { keyPolicy: { defaultTtlDays: 30, maxTtlDays: 90, rotateAfterDays: 10, rotationOverlapHours: 1 } }));
  const model = (name: string) => ({
    name,
    provider: "azure-openai" as const,
    modelName: name,
    pricing: { currency: "USD", inputPer1kTokens: 0.005, outputPer1kTokens: 0.015 },
    backends: [{ id: "weu", url: `https://${name}.openai.azure.com`, region: "westeurope", credential: { type: "managedIdentity" as const, audience: "https://cognitiveservices.azure.com" } }],
  });
  gpt = await admin.models.create(project.id, model("gpt-4o"));
  mini = await admin.models.create(project.id, model("gpt-4o-mini"));
});

afterAll(async () => {
  process.stdout.write = writes.out;
  process.stderr.write = writes.err;
  overrideServices({});
  await t.stop();
});

describe("virtual keys", () => {
  let plain: KeyWithSecret;

  it("a key in a project nobody published waits for a TenantAdmin's publish, and says so", async () => {
    const early = await create({ name: "early key" });
    const waiting = await until(async () => {
      await t.app.host.invokeTimer("keyLifecycle");
      const k = await admin.keys.get(project.id, early.id);
      return k.gateway.waitingFor === "publish" ? k : undefined;
    }, "key waiting for a publish");
    expect(waiting.gateway.state).toBe("pending");
    // Automation published nothing: no revision, nothing at the gateway.
    expect((await admin.policy.revisions()).items).toEqual([]);
    expect(fake.state.has(`apis/${N.api(project.id)}`)).toBe(false);
    // A person's publish brings the project; the key follows on its own.
    await admin.policy.publish({ reason: "first publish" });
    const after = await synced(early.id);
    expect(after.gateway.waitingFor).toBeUndefined();
    await dev.keys.revoke(project.id, early.id, { reason: "test over" }, after.etag);
  });

  it("a project holds at most 40 key profiles, revoked keys' included: a 41st distinct one is refused (409), a profile in use is not", async () => {
    const crowded = await admin.projects.create(projectSpec("crowded"));
    const first = await admin.keys.create(crowded.id, { name: "k0", limits: { tokensPerMinute: 1000 } });
    await admin.keys.revoke(crowded.id, first.id, { reason: "its profile stays: its cancelled subscription is on the product" }, (await admin.keys.get(crowded.id, first.id)).etag);
    for (let i = 1; i < 40; i++) await admin.keys.create(crowded.id, { name: `k${i}`, limits: { tokensPerMinute: 1000 + i } });
    expect(await reasonOf(admin.keys.create(crowded.id, { name: "one too many", limits: { tokensPerMinute: 5000 } }))).toBe("409 key_profiles_exhausted");
    // The same scopes and limits as a key that exists (even a revoked one), or none at all, still work.
    expect((await admin.keys.create(crowded.id, { name: "like k0", limits: { tokensPerMinute: 1000 } })).status).toBe("active");
    expect((await admin.keys.create(crowded.id, { name: "plain" })).status).toBe("active");
    expect((await admin.keys.list(crowded.id, { maxPageSize: 100 })).items).toHaveLength(42);
    // Shared, a key is a profile of its own: asking to share one here is refused the same way.
    const some = (await admin.keys.list(crowded.id, { maxPageSize: 100 })).items.find((k) => k.name === "k1")!;
    expect(await reasonOf(admin.keys.share(crowded.id, some.id, { projectId: project.id, justification: "more room" }, some.etag))).toBe("409 key_profiles_exhausted");
  });

  it("creates a key shown once, in the aigw_ format with a checksum; the gateway gets a subscription for it", async () => {
    plain = await create({ name: "plain key" });
    expect(plain.key).toMatch(/^aigw_[0-9A-Za-z]{38}$/);
    expect(isWellFormedKey(plain.key)).toBe(true);
    expect(plain).toMatchObject({ status: "active", owner: "dora", prefix: plain.key.slice(0, 9), last4: plain.key.slice(-4), rotationCount: 0 });
    // 30 days: the project's default lifetime.
    expect(Date.parse(plain.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const key = await synced(plain.id);
    expect(key).not.toHaveProperty("key");
    expect(JSON.stringify(await dev.keys.list(project.id))).not.toContain(plain.key);
    // The subscription is scoped to the project API (published by the TenantAdmin's first publish).
    expect(sub(plain.id)).toMatchObject({ state: "active", scope: expect.stringMatching(new RegExp(`/apis/${N.api(project.id)}$`)) as unknown });
    expect(keyHistory(plain.id).at(-1)?.[0]).toBe(plain.key);
  });

  it("a scoped, limited key gets its own product: a key not scoped to a model cannot reach it", async () => {
    const scoped = await create({ name: "mini only", scopes: { models: [mini.id] }, limits: { tokensPerMinute: 2000, requestsPerMinute: 30, budget: { amount: 5, currency: "USD", period: "Monthly" } } });
    const key = await synced(scoped.id);
    const product = N.product(project.id, key.gateway.profile);
    expect(sub(scoped.id)?.scope).toMatch(new RegExp(`/products/${product}$`));
    const apiPolicy = String(fake.state.get(`apis/${N.api(project.id)}/policies/policy`)?.properties.value);
    const productPolicy = String(fake.state.get(`products/${product}/policies/policy`)?.properties.value);
    expect(productPolicy).toContain("set-variable");
    // The tier's branch allows only the scoped model; a request for another model gets a 403.
    expect(apiPolicy).toContain('<set-variable name="aigov-tier-models" value="gpt-4o-mini"/>');
    expect(apiPolicy).not.toMatch(/name="aigov-tier-models" value="[^"]*gpt-4o(\||")/);
    expect(apiPolicy).toMatch(/<set-status code="403" reason="Forbidden"\/>[\s\S]*model_not_allowed/);
    expect(apiPolicy).toContain('tokens-per-minute="2000"');
    // Budget 5 USD at 0.015 USD per 1K tokens → at most 333,333 tokens a month.
    expect(apiPolicy).toContain('token-quota="333333"');
    void gpt;
  });

  it("refuses bad requests with field errors and stores nothing", async () => {
    const before = (await admin.keys.list(project.id)).items.length;
    for (const [body, field] of [
      [{ name: "x", expiresAt: new Date(Date.now() + 200 * 86_400_000).toISOString() }, "body.expiresAt"],
      [{ name: "x", expiresAt: new Date(Date.now() - 1000).toISOString() }, "body.expiresAt"],
      [{ name: "x", scopes: { models: ["mdl_00000000000000000000"] } }, "body.scopes.models.0"],
      [{ name: "x", limits: { budget: { amount: 5, currency: "EUR", period: "Monthly" } } }, "body.limits.budget"],
    ] as const) {
      const err = await errorOf(dev.keys.create(project.id, body as never));
      expect((err as ApiError).status).toBe(400);
      expect((err as ApiError).problem?.errors?.map((e) => e.field)).toContain(field);
    }
    // Content safety on a key needs the tenant's service (this tenant names none): refused here, or every
    // later publish of the project would fail to compile and leave the project as the gateway holds it.
    expect(await reasonOf(dev.keys.create(project.id, { name: "guarded", limits: { contentSafety: "low" } }))).toBe("400 content_safety_service_missing");
    expect((await admin.keys.list(project.id)).items.length).toBe(before);
  });

  it("rotates with a stable id: both secrets valid during the overlap, the old one never again after it", async () => {
    const before = await dev.keys.get(project.id, plain.id);
    const rotated = await dev.keys.rotate(project.id, plain.id, { overlap: "PT1H" }, before.etag);
    plaintexts.add(rotated.key);
    expect(rotated.id).toBe(plain.id);
    expect(rotated.key).not.toBe(plain.key);
    expect(rotated.rotation).toMatchObject({ phase: "overlap", scheduled: false });
    // The gateway holds both secrets (the overlap has begun); an hour of the app's time later it is over.
    await until(async () => ((await dev.keys.get(project.id, plain.id)).rotation?.overlapUntil ? true : undefined), "overlap begins");
    expect((await dev.keys.get(project.id, plain.id)).rotation?.phase).toBe("overlap");
    appClock.advance(3_600_000);
    const done = await until(async () => {
      const k = await dev.keys.get(project.id, plain.id);
      return k.rotation === undefined && k.rotationCount === 1 ? k : undefined;
    }, "rotation completes");
    expect(done).toMatchObject({ scopes: before.scopes, limits: before.limits, expiresAt: before.expiresAt, last4: rotated.key.slice(-4), gateway: { state: "synced" } });
    const history = keyHistory(plain.id);
    const both = history.findIndex(([a, b]) => [a, b].includes(plain.key) && [a, b].includes(rotated.key));
    expect(both).toBeGreaterThan(-1);
    const retired = history.findIndex((pair, i) => i > both && !pair.includes(plain.key));
    expect(retired).toBeGreaterThan(both);
    for (const pair of history.slice(retired)) expect(pair).not.toContain(plain.key);
    expect(history.at(-1)).toContain(rotated.key);
    // The lookup knows both: the old one as retired.
    expect(await admin.keys.lookup(plain.key)).toMatchObject({ keyId: plain.id, secret: "retired" });
    expect(await admin.keys.lookup(rotated.key)).toMatchObject({ keyId: plain.id, secret: "current", status: "active" });
    plain = { ...plain, key: rotated.key };
  });

  it("a rotation completes through gateway faults (5xx, 409, 412) and never leaves a retired secret valid", async () => {
    for (const [status, fault] of [[503, 1], [503, 3], [409, 2], [503, 6], [500, 9]] as const) {
      const k = await create({ name: `faulty ${status} ${fault}` });
      await synced(k.id);
      const cur = await dev.keys.get(project.id, k.id);
      fake.failNext(status, fault);
      // Someone touches the subscription between our read and our write once: the If-Match write fails with 412.
      fake.beforeNext("PUT", `subscriptions/${N.subscription(k.id)}`, () => fake.edit(`subscriptions/${N.subscription(k.id)}`, (p) => (p.displayName = "touched in the portal")));
      const r = await dev.keys.rotate(project.id, k.id, { overlap: "PT0S" }, cur.etag);
      plaintexts.add(r.key);
      await until(async () => ((await dev.keys.get(project.id, k.id)).rotationCount === 1 ? true : undefined), `rotation with ${fault} × ${status}`);
      const history = keyHistory(k.id);
      const firstWithout = history.findIndex((pair, i) => i > 0 && !pair.includes(k.key));
      expect(firstWithout, JSON.stringify(history.length)).toBeGreaterThan(0);
      for (const pair of history.slice(firstWithout)) expect(pair).not.toContain(k.key);
      for (const pair of history) expect(new Set(pair).size).toBe(2);
      expect(history.at(-1)).toContain(r.key);
      expect(sub(k.id)?.state).toBe("active");
    }
    for (const status of [503, 500, 409, 412]) expect(fake.requests.some((r) => r.status === status), `a ${status} was served`).toBe(true);
  });

  it("a rotation completes when the gateway applied a write but the answer was lost (time-out)", async () => {
    const k = await create({ name: "lost answers" });
    await synced(k.id);
    const cur = await dev.keys.get(project.id, k.id);
    lostAnswers = 3; // fewer than the step's attempts (PUBLISH_RETRY_MAX_ATTEMPTS=4 in tests); beyond, the step pauses a minute and starts over
    const r = await dev.keys.rotate(project.id, k.id, { overlap: "PT0S" }, cur.etag);
    plaintexts.add(r.key);
    await until(async () => ((await dev.keys.get(project.id, k.id)).rotationCount === 1 ? true : undefined), "rotation with lost answers");
    expect(lostAnswers).toBe(0);
    const history = keyHistory(k.id);
    const firstWithout = history.findIndex((pair, i) => i > 0 && !pair.includes(k.key));
    for (const pair of history.slice(firstWithout)) expect(pair).not.toContain(k.key);
    expect(history.at(-1)).toContain(r.key);
  });

  it("suspend, resume and revoke are published before the call returns; a revoked secret is gone for good", async () => {
    let k = await dev.keys.get(project.id, plain.id);
    k = await dev.keys.suspend(project.id, plain.id, { reason: "investigating" }, k.etag);
    expect(k).toMatchObject({ status: "suspended", gateway: { state: "synced" } });
    expect(sub(plain.id)?.state).toBe("suspended");
    k = await dev.keys.resume(project.id, plain.id, { reason: "cleared" }, k.etag);
    expect(sub(plain.id)?.state).toBe("active");
    k = await admin.keys.revoke(project.id, plain.id, { reason: "leaked" }, k.etag);
    expect(k).toMatchObject({ status: "revoked", gateway: { state: "synced" } });
    expect(sub(plain.id)?.state).toBe("cancelled");
    expect(keyHistory(plain.id).at(-1)).not.toContain(plain.key);
    expect(await reasonOf(admin.keys.revoke(project.id, plain.id, { reason: "again" }, k.etag))).toBe("409 key_revoked");
    expect(await reasonOf(admin.keys.resume(project.id, plain.id, { reason: "no" }, k.etag))).toBe("409 key_not_suspended");
  });

  it("an admin's suspension is an admin's to lift; a key in someone else's name is an admin's to make", async () => {
    const k = await dev.keys.create(project.id, { name: "held by dora" });
    const suspended = await admin.keys.suspend(project.id, k.id, { reason: "suspected abuse" }, k.etag);
    expect(await reasonOf(dev.keys.resume(project.id, k.id, { reason: "it was me" }, suspended.etag))).toBe("403 key_suspended_by_admin");
    expect(sub(k.id)?.state).toBe("suspended");
    const resumed = await admin.keys.resume(project.id, k.id, { reason: "cleared" }, suspended.etag);
    expect(resumed.status).toBe("active");
    // The holder's own suspension stays the holder's to lift.
    const own = await dev.keys.suspend(project.id, k.id, { reason: "pausing" }, resumed.etag);
    expect((await dev.keys.resume(project.id, k.id, { reason: "back" }, own.etag)).status).toBe("active");
    // A developer makes keys in their own name only; an admin may name the holder.
    expect(await reasonOf(dev.keys.create(project.id, { name: "for alice", owner: "alice" }))).toBe("403 key_owner_not_caller");
    expect((await dev.keys.create(project.id, { name: "for me", owner: "dora" })).owner).toBe("dora");
    expect((await admin.keys.create(project.id, { name: "for dora", owner: "dora" })).owner).toBe("dora");
  });

  it("a suspension the gateway missed during a rotation's overlap is applied by the job, not at the overlap's end", async () => {
    const k = await create({ name: "suspended mid-rotation" });
    const before = await synced(k.id);
    const rotated = await dev.keys.rotate(project.id, k.id, { overlap: "P7D" }, before.etag);
    plaintexts.add(rotated.key);
    await until(async () => ((await dev.keys.get(project.id, k.id)).rotation?.overlapUntil ? true : undefined), "overlap begins");
    broken = true;
    const suspended = await dev.keys.suspend(project.id, k.id, { reason: "investigating" }, (await dev.keys.get(project.id, k.id)).etag);
    broken = false;
    expect(suspended).toMatchObject({ status: "suspended", gateway: { state: "pending" } });
    expect(sub(k.id)?.state).toBe("active");
    await t.app.host.invokeTimer("keyLifecycle");
    expect(sub(k.id)?.state).toBe("suspended");
    expect((await dev.keys.get(project.id, k.id)).rotation?.phase).toBe("overlap");
  });

  it("reports revocationPending, never revoked, while the gateway does not confirm; the job finishes it", async () => {
    const k = await create({ name: "to revoke while down" });
    const cur = await synced(k.id);
    // The keys that hold the project (its deletion is refused naming how many).
    const holding = async () => {
      const refused = await admin.projects.delete(project.id, (await admin.projects.get(project.id)).etag).then(
        () => undefined,
        (e: { problem?: { reason?: string; detail?: string } }) => e.problem,
      );
      expect(refused?.reason).toBe("project_has_dependents");
      return Number(/(\d+) keys/.exec(refused?.detail ?? "")?.[1] ?? 0);
    };
    const before = await holding();
    broken = true;
    const pending = await admin.keys.revoke(project.id, k.id, { reason: "gateway down" }, cur.etag);
    expect(pending.status).toBe("revocationPending");
    expect(sub(k.id)?.state).toBe("active");
    // Still a subscription at the gateway: it holds the project as before.
    expect(await holding()).toBe(before);
    broken = false;
    await t.app.host.invokeTimer("keyLifecycle");
    expect(await holding()).toBe(before - 1);
    expect((await admin.keys.get(project.id, k.id)).status).toBe("revoked");
    expect(sub(k.id)?.state).toBe("cancelled");
  });

  it("expiry: notices at 14 days and 1 day, then expired and refused by the gateway", async () => {
    const soon = await create({ name: "short-lived", expiresAt: new Date(appClock.ms() + 3_600_000).toISOString() });
    await synced(soon.id);
    await t.app.host.invokeTimer("keyLifecycle");
    await t.app.host.invokeTimer("keyLifecycle");
    await t.relay();
    const notices = t.events().filter((e) => e.type === "aigov.key.expiring.v1" && (e.data as { keyId: string }).keyId === soon.id);
    // Inside a day of expiry: only the 1-day notice (the 14-day one would say nothing new), and only once.
    expect(notices.map((e) => (e.data as { notice: string }).notice)).toEqual(["1d"]);
    appClock.advance(3_601_000); // past its expiry
    await t.app.host.invokeTimer("keyLifecycle");
    expect((await admin.keys.get(project.id, soon.id)).status).toBe("expired");
    expect(sub(soon.id)?.state).toBe("cancelled");
  });

  it("a key with one character changed fails its checksum before any lookup", async () => {
    const k = [...plain.key];
    k[10] = k[10] === "A" ? "B" : "A";
    const counts = () => t.app.cosmos!.counts();
    const before = counts();
    const err = await errorOf(admin.keys.lookup(k.join("")));
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).problem?.errors?.[0]?.field).toBe("body.key");
    const after = counts();
    expect(after.read - before.read).toBe(0);
    expect(after.query - before.query).toBe(0);
  });

  it("scheduled rotation: the job rotates a key older than the project's policy; the owner collects the new secret once", async () => {
    const k = await create({ name: "scheduled" });
    await synced(k.id);
    // Make the secret 11 days old (the project rotates after 10) without waiting 11 days.
    const item = t.container().item(k.id, ["t-keys", project.id]);
    const { resource } = await item.read<Record<string, unknown>>();
    await item.replace({ ...resource!, secretCreatedAt: new Date(Date.now() - 11 * 86_400_000).toISOString() });
    await t.app.host.invokeTimer("keyLifecycle");
    const rotating = await dev.keys.get(project.id, k.id);
    expect(rotating).toMatchObject({ rotation: { scheduled: true }, awaitingCollection: true });
    // Running the job again starts nothing new (idempotent).
    await t.app.host.invokeTimer("keyLifecycle");
    expect((await dev.keys.get(project.id, k.id)).rotation?.startedAt).toBe(rotating.rotation?.startedAt);
    expect(await reasonOf(admin.keys.collect(project.id, k.id))).toBe("403 key_owner_only");
    const collected = await dev.keys.collect(project.id, k.id);
    plaintexts.add(collected.key);
    expect(collected.key).not.toBe(k.key);
    expect(isWellFormedKey(collected.key)).toBe(true);
    expect(await reasonOf(dev.keys.collect(project.id, k.id))).toBe("409 rotated_secret_not_waiting"); // once
    expect(await admin.keys.lookup(collected.key)).toMatchObject({ keyId: k.id, secret: "next" });
  });

  it("shares a key with another project through an approval; visible in both; revocable", async () => {
    const other = await admin.projects.create(projectSpec("keys-other"));
    await admin.models.create(other.id, {
      name: "gpt-4o-mini",
      provider: "azure-openai",
      modelName: "gpt-4o-mini",
      backends: [{ id: "weu", url: "https://other-mini.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
    });
    // The target project reaches the gateway with a person's publish (automation never publishes a project).
    await admin.policy.publish({ reason: "the other project" });
    const k = await create({ name: "to share", scopes: { models: [mini.id] } });
    const before = await synced(k.id);
    // An approver named as no token names them (an e-mail address) would never decide: refused, nothing changes.
    const byAddress = (await errorOf(dev.keys.share(project.id, k.id, { projectId: other.id, justification: "shared evaluation", approvers: [{ user: "quinn@contoso.com" }] }, before.etag))) as ApiError;
    expect([byAddress.status, byAddress.problem?.errors?.[0]?.field]).toEqual([400, "body.approvers.0.user"]);
    expect((await dev.keys.get(project.id, k.id)).etag).toBe(before.etag);
    const { key: pending, approval } = await dev.keys.share(project.id, k.id, { projectId: other.id, justification: "shared evaluation", approvers: [{ user: "quinn" }] }, before.etag);
    expect(pending.shares).toEqual([expect.objectContaining({ projectId: other.id, status: "pending", approvalId: approval.id })]);
    expect(approval.subject).toMatchObject({ resourceType: "keyShare", resourceId: k.id, projectId: other.id });
    expect(await reasonOf(dev.keys.share(project.id, k.id, { projectId: other.id, justification: "again" }, pending.etag))).toBe("409 key_already_shared");
    // The tenant's route for key shares comes first (the target project's admins or a TenantAdmin); quinn, whom the requester added, decides after.
    expect(approval.stages.map((x) => [x.origin, x.approvers])).toEqual([
      ["route", [{ role: "ProjectAdmin", scope: "project" }, { role: "TenantAdmin", scope: "tenant" }]],
      ["requester", [{ user: "quinn" }]],
    ]);
    const quinn = await t.as("t-keys", "quinn", ["Approver"]);
    expect(await reasonOf(quinn.approvals.decide(approval.id, { decision: "approve", justification: "first?" }, approval.etag))).toBe("403 approver_not_in_stage");
    await admin.approvals.decide(approval.id, { decision: "approve", justification: "the target project agrees" }, approval.etag);
    expect((await dev.keys.get(project.id, k.id)).shares[0]?.status).toBe("pending");
    await quinn.approvals.decide(approval.id, { decision: "approve", justification: "fine" }, (await quinn.approvals.get(approval.id)).etag);
    await until(async () => ((await dev.keys.get(project.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    const moved = await synced(k.id);
    const product = N.product(project.id, moved.gateway.profile);
    expect(moved.gateway.profile).not.toBe(before.gateway.profile);
    expect(sub(k.id)?.scope).toMatch(new RegExp(`/products/${product}$`));
    // The key's product reaches the other project's API too, and only this key is on it.
    expect(fake.state.has(`products/${product}/apis/${N.api(other.id)}`)).toBe(true);
    expect(fake.state.has(`products/${product}/apis/${N.api(project.id)}`)).toBe(true);
    const shared = await admin.keys.shared(other.id);
    expect(shared.items.map((x) => [x.id, x.sharedFrom])).toEqual([[k.id, project.id]]);

    // The gateway is unavailable while the share ends: the key still reaches the other project, so the
    // share is not reported revoked until the gateway has moved it.
    const cur = await dev.keys.get(project.id, k.id);
    fake.failNext(503, 8);
    const ended = await dev.keys.unshare(project.id, k.id, other.id, cur.etag);
    expect(ended.shares[0]?.status).toBe("revocationPending");
    expect(sub(k.id)?.scope).toMatch(new RegExp(`/products/${product}$`));
    expect((await admin.keys.shared(other.id)).items).toEqual([]);
    const back = await synced(k.id);
    expect(back.shares[0]?.status).toBe("revoked");
    // Said when the gateway confirmed it (the revoke event said it was asked for), with its audit record.
    await t.relay();
    expect(t.events().filter((e) => e.type === "aigov.key.share.revocation.confirmed.v1" && (e.data as { keyId: string }).keyId === k.id).map((e) => e.data)).toEqual([expect.objectContaining({ keyId: k.id, toProjects: [other.id] })]);
    expect(back.gateway.profile).toBe(before.gateway.profile);
    expect(sub(k.id)?.scope).toMatch(new RegExp(`/products/${N.product(project.id, before.gateway.profile)}$`));
    expect((await admin.keys.shared(other.id)).items).toEqual([]);
    // The next publish removes the product that linked the other project.
    await admin.policy.publish({ reason: "clean up" });
    await t.app.host.invokeTimer("gatewayPublishSweep");
    await until(async () => (fake.state.has(`products/${product}`) ? undefined : true), "shared product removed");

    // Shared again: the admin of the project shared with may end what reaches into it (and nobody else there may).
    const again = await dev.keys.share(project.id, k.id, { projectId: other.id, justification: "again" }, (await dev.keys.get(project.id, k.id)).etag);
    await admin.approvals.decide(again.approval.id, { decision: "approve", justification: "ok" }, again.approval.etag);
    await until(async () => ((await dev.keys.get(project.id, k.id)).shares.some((x) => x.projectId === other.id && x.status === "active") ? true : undefined), "shared again");
    const withTara = await admin.projects.get(other.id);
    await admin.projects.update(other.id, { roleAssignments: [...withTara.roleAssignments, { principalId: "tara", role: "ProjectAdmin" }, { principalId: "tom", role: "Developer" }] }, withTara.etag);
    const tara = await t.as("t-keys", "tara", ["Reader"]);
    const tom = await t.as("t-keys", "tom", ["Reader"]);
    const current = await dev.keys.get(project.id, k.id);
    expect(await reasonOf(tom.keys.unshare(project.id, k.id, other.id, current.etag))).toBe("403 forbidden");
    const endedByTarget = await tara.keys.unshare(project.id, k.id, other.id, current.etag);
    expect(endedByTarget.shares.find((x) => x.projectId === other.id && x.approvalId === again.approval.id)?.status).toMatch(/^(revoked|revocationPending)$/);
    // The target's admin learns nothing of keys that do not reach into their project: a key of the project
    // that is not shared there, and one that does not exist, are the same 404 (nor does a stale ETag tell).
    const unshared = await create({ name: "never shared", scopes: { models: [mini.id] } });
    const missing = "key_00000000000000000000";
    const probe = (keyId: string) => errorOf(tara.keys.unshare(project.id, keyId, other.id, '"stale"')).then((e) => { const p = (e as ApiError).problem; return [(e as ApiError).status, p?.reason, JSON.stringify({ ...p, correlationId: undefined }).replaceAll(keyId, "<key>")]; });
    expect(await probe(unshared.id)).toEqual(await probe(missing));
    expect((await probe(missing))[0]).toBe(404);
  });

  it("a key revoked while its new product is not yet at the gateway is cancelled where its subscription is now, at once", async () => {
    const other = await admin.projects.create(projectSpec("keys-revoke-moving"));
    await admin.policy.publish({ reason: "the other project" });
    await t.app.host.invokeTimer("gatewayPublishSweep");
    const k = await create({ name: "leaks while moving", scopes: { models: [mini.id] } });
    const before = await synced(k.id);
    const { approval } = await dev.keys.share(project.id, k.id, { projectId: other.id, justification: "evaluation" }, before.etag);
    await admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(project.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    // The shared profile's product waits for a publish (no sweep has run): the subscription is still on the old product.
    expect(sub(k.id)?.scope).toMatch(new RegExp(`/products/${N.product(project.id, before.gateway.profile)}$`));
    const revoked = await dev.keys.revoke(project.id, k.id, { reason: "leaked" }, (await dev.keys.get(project.id, k.id)).etag);
    expect(revoked.status).toBe("revoked");
    expect(sub(k.id)).toMatchObject({ state: "cancelled" });
    expect(sub(k.id)?.scope).toMatch(new RegExp(`/products/${N.product(project.id, before.gateway.profile)}$`));
    // The product it stays on stays compiled: the next publish neither deletes it nor fails on it.
    const next = await admin.policy.publish({ reason: "after the revoke" });
    if (next.revision) {
      await t.app.host.invokeTimer("gatewayPublishSweep");
      await until(async () => ((await admin.policy.revision(next.revision!.id)).status === "published" ? true : undefined), "published");
    }
    expect(fake.state.has(`products/${N.product(project.id, before.gateway.profile)}`)).toBe(true);

    // A share waiting for its approval when its key is revoked is withdrawn at once (nobody is asked to
    // decide it, nobody can approve it) and not made: nothing is listed in the target project.
    const late = await create({ name: "revoked before the approval" });
    const lateCur = await synced(late.id);
    const { approval: pending } = await dev.keys.share(project.id, late.id, { projectId: other.id, justification: "evaluation" }, lateCur.etag);
    await dev.keys.revoke(project.id, late.id, { reason: "not needed" }, (await dev.keys.get(project.id, late.id)).etag);
    expect((await admin.approvals.get(pending.id)).status).toBe("withdrawn");
    expect(await reasonOf(admin.approvals.decide(pending.id, { decision: "approve", justification: "ok" }, (await admin.approvals.get(pending.id)).etag))).toMatch(/^409 /);
    // Its driver (or, here, the approval sweep) settles the withdrawn request: the share is not made.
    await t.app.host.invokeTimer("approvalDriverSweep");
    await until(async () => ((await dev.keys.get(project.id, late.id)).shares[0]?.status === "rejected" ? true : undefined), "share not made");
    expect((await admin.keys.shared(other.id)).items.map((x) => x.id)).not.toContain(late.id);
  });

  it("a key-scope exemption moves the key's subscription to the exemption's product, and back when it ends", async () => {
    const k = await create({ name: "exempted key", limits: { tokensPerMinute: 1000 } });
    const own = await synced(k.id);
    const ownProduct = N.product(project.id, own.gateway.profile);
    const exemption = await dev.exemptions.request({
      control: "tokens.perMinute",
      scope: { level: "key", projectId: project.id, keyId: k.id },
      relaxation: { kind: "limit", value: 5000 },
      category: "waiver",
      owner: "dora",
      reason: { deliveryBlocker: "batch backfill", affectedControl: "1000 tokens per minute", expectedEndState: "backfill done" },
      compensatingControls: ["backfill watched"],
      evidence: ["https://tickets.example.com/BF-1"],
      expiresAt: new Date(Date.now() + 3 * 86_400_000).toISOString(),
    });
    const approval = await admin.approvals.get(exemption.approvalId);
    await admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.exemptions.get(exemption.id)).status === "active" ? true : undefined), "exemption active");
    const exemptProduct = await until(async () => {
      await t.app.host.invokeTimer("gatewayPublishSweep");
      await t.app.host.invokeTimer("keyLifecycle");
      const scope = sub(k.id)?.scope ?? "";
      return /\/products\/[^/]*zzzz_x/.test(scope) ? scope.split("/products/")[1] : undefined;
    }, "key on the exemption product");
    const policy = String(fake.state.get(`apis/${N.api(project.id)}/policies/policy`)?.properties.value);
    expect(policy).toContain('tokens-per-minute="5000"');
    expect(fake.state.has(`products/${ownProduct}`)).toBe(true);

    const active = await dev.exemptions.get(exemption.id);
    await admin.exemptions.revoke(exemption.id, { reason: "done" }, active.etag);
    await until(async () => {
      await t.app.host.invokeTimer("gatewayPublishSweep");
      await t.app.host.invokeTimer("keyLifecycle");
      return sub(k.id)?.scope?.endsWith(`/products/${ownProduct}`) ? true : undefined;
    }, "key back on its own product");
    // No publish failed on the way (the exemption product was never deleted under the subscription).
    expect((await admin.policy.revisions()).items.filter((r) => r.status === "failed")).toEqual([]);
    await admin.policy.publish({ reason: "after the exemption" });
    await until(async () => {
      await t.app.host.invokeTimer("gatewayPublishSweep");
      return fake.state.has(`products/${exemptProduct}`) ? undefined : true;
    }, "exemption product removed");
  });

  it("never stores, logs or emits a key: every document, audit record, event, file and log line is scanned", async () => {
    await t.relay();
    const docs = (await t.container().items.query("SELECT * FROM c").fetchAll()).resources;
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(readFileSync(p).toString("latin1"));
      }
    };
    walk(t.app.dataDir);
    const haystacks = [JSON.stringify(docs), JSON.stringify(t.events()), captured, ...files];
    expect(plaintexts.size).toBeGreaterThan(6);
    for (const p of plaintexts) {
      for (const needle of [p, Buffer.from(p).toString("base64"), Buffer.from(p).toString("base64url")]) {
        for (const h of haystacks) expect(h.includes(needle), `found ${needle.slice(0, 9)}…`).toBe(false);
      }
    }
  });
});
