/**
 * Conformance: limits, budgets and key states promised by the API, checked by requests through the
 * local gateway. The gateway's clock is virtual: windows and periods pass when a test moves it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient, ApiError } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;
let project: Project;
let gpt: { id: string };
let mini: { id: string };

// Prices per 1K tokens: 0.01 USD (input and output) → 10 USD per million → 1e-5 USD a token.
const priced = { pricing: { currency: "USD", inputPer1kTokens: 0.01, outputPer1kTokens: 0.01 } };

beforeAll(async () => {
  g = await Governed.start("t-limits");
  // Expiries and rotation overlaps pass on the app's clock (services and durable timers), moved by the tests.
  overrideServices({ clock: g.t.appClock });
  dev = await g.as("dora", ["Developer"]);
  project = await g.project("limits");
  // gpt-4o has its own per-key limit of 20 tokens a minute; the key's own limits are on top.
  gpt = await g.model(project.id, "gpt-4o", { extra: { ...priced, settings: { tokens: { perMinute: { limit: 20, per: "key" } } } } });
  mini = await g.model(project.id, "gpt-4o-mini", { extra: priced });
  await g.publish("first");
});
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

const call = (key: string, model: string, maxTokens = 8) => g.chat(project.id, key, model, { words: 2, maxTokens });

describe("conformance: limits, budgets and key states at the local gateway", () => {
  it("a key's model scope: absent reaches every model, a list only its models, an empty list none", async () => {
    const every = await g.key(dev, project.id, { name: "every model" });
    const one = await g.key(dev, project.id, { name: "mini only", scopes: { models: [mini.id] } });
    const none = await g.key(dev, project.id, { name: "no models", scopes: { models: [] } });
    expect(none.scopes).toEqual({ models: [] });
    const status = async (key: string, model: string) => {
      const r = await call(key, model);
      return `${r.status} ${r.json.error?.code ?? ""}`.trim();
    };
    expect([await status(every.key, "gpt-4o"), await status(every.key, "gpt-4o-mini")]).toEqual(["200", "200"]);
    expect([await status(one.key, "gpt-4o"), await status(one.key, "gpt-4o-mini")]).toEqual(["403 model_not_allowed", "200"]);
    expect([await status(none.key, "gpt-4o"), await status(none.key, "gpt-4o-mini")]).toEqual(["403 model_not_allowed", "403 model_not_allowed"]);
    // A budget for a key that reaches no model buys nothing: refused.
    const refused = await dev.keys.create(project.id, { name: "no models, budget", scopes: { models: [] }, limits: { budget: { amount: 1, currency: "USD", period: "Monthly" } } }).then(
      () => undefined,
      (e: ApiError) => e.problem?.errors?.map((x) => x.field),
    );
    expect(refused).toEqual(["body.limits.budget"]);
  });

  it("a key's limit and a model's limit are separate counters: the tighter one bites, on every model", async () => {
    const key = (await g.key(dev, project.id, { name: "tpm 30", limits: { tokensPerMinute: 30 } })).key;
    // Each call counts 10 tokens (2 prompt + 8 completion, as the backend reports them).
    const first = await call(key, "gpt-4o");
    expect(first.status).toBe(200);
    const second = await call(key, "gpt-4o");
    expect(second.status).toBe(200);
    // Each limit reports what it had left when the call was let through (before this call's own tokens).
    const remaining = (r: typeof first) => Object.fromEntries([...r.headers].filter(([n]) => n.startsWith("x-aigov-tokens-remaining-")));
    expect(remaining(first)).toEqual({ "x-aigov-tokens-remaining-minute-key-model": "20", "x-aigov-tokens-remaining-minute-tier": "30" });
    expect(remaining(second)).toEqual({ "x-aigov-tokens-remaining-minute-key-model": "10", "x-aigov-tokens-remaining-minute-tier": "20" });
    const model = await call(key, "gpt-4o");
    expect(model.status).toBe(429); // the model's 20
    expect(Number(model.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await call(key, "gpt-4o-mini")).status).toBe(200); // the key has 10 left
    const own = await call(key, "gpt-4o-mini");
    expect(own.status).toBe(429); // the key's 30, counted across models
    g.t.clock.advance(61_000);
    expect((await call(key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a budget is enforced on every model, with a model limit present, and a shared key spends one budget", async () => {
    const other = await g.project("limits-shared");
    await g.model(other.id, "gpt-4o-mini", { extra: { pricing: { currency: "USD", inputPer1kTokens: 0.02, outputPer1kTokens: 0.02 } } });
    await g.publish("other project");
    // 0.0009 USD at the highest price the key can reach once shared (2e-5 a token) buys 45 tokens.
    const k = await g.key(dev, project.id, { name: "budget", scopes: { models: [mini.id, gpt.id] }, limits: { budget: { amount: 0.0009, currency: "USD", period: "Monthly" } } });
    const before = await dev.keys.get(project.id, k.id);
    const { approval } = await dev.keys.share(project.id, k.id, { projectId: other.id, justification: "evaluation" }, before.etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(project.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(project.id, k.id);
    expect((await call(k.key, "gpt-4o")).status).toBe(200); // 10
    expect((await g.chat(other.id, k.key, "gpt-4o-mini", { words: 2, maxTokens: 8 })).status).toBe(200); // 20, in the other project
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(200); // 30
    expect((await g.chat(other.id, k.key, "gpt-4o-mini", { words: 2, maxTokens: 8 })).status).toBe(200); // 40
    expect((await call(k.key, "gpt-4o-mini", 3)).status).toBe(200); // 45: the budget is spent
    const spent = await call(k.key, "gpt-4o-mini");
    expect(spent.status).toBe(403);
    expect(Number(spent.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await g.chat(other.id, k.key, "gpt-4o-mini")).status).toBe(403);
    // The next month the budget is new.
    const now = new Date(g.t.clock.now());
    g.t.clock.advance(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime() + 1000);
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a budget never buys at a price in another currency: a model priced otherwise, added later, leaves the key one token", async () => {
    const p = await g.project("currencies");
    await g.model(p.id, "usd-model", { extra: { pricing: { currency: "USD", inputPer1kTokens: 0.001, outputPer1kTokens: 0.001 } } });
    await g.publish("usd");
    // Unscoped: it reaches every model of the project, those added later too. 1 USD buys a million tokens.
    const k = await g.key(dev, p.id, { name: "usd budget", limits: { budget: { amount: 1, currency: "USD", period: "Monthly" } } });
    for (let i = 0; i < 2; i++) expect((await g.chat(p.id, k.key, "usd-model")).status).toBe(200);
    await g.model(p.id, "gbp-model", { extra: { pricing: { currency: "GBP", inputPer1kTokens: 0.01, outputPer1kTokens: 0.01 } } });
    await g.publish("gbp");
    // A GBP price says nothing about USD: the budget buys one token now (fail closed), long spent.
    expect((await g.chat(p.id, k.key, "gbp-model")).status).toBe(403);
    expect((await g.chat(p.id, k.key, "usd-model")).status).toBe(403);
  });

  it("a shared key's own limits are the key's: counted once across the projects it reaches, like its budget", async () => {
    const other = await g.project("limits-shared-tpm");
    await g.model(other.id, "gpt-4o-mini", { extra: priced });
    await g.publish("another project");
    const k = await g.key(dev, project.id, { name: "shared tpm", scopes: { models: [mini.id] }, limits: { tokensPerMinute: 30 } });
    const before = await dev.keys.get(project.id, k.id);
    const { approval } = await dev.keys.share(project.id, k.id, { projectId: other.id, justification: "evaluation" }, before.etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(project.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(project.id, k.id);
    const there = () => g.chat(other.id, k.key, "gpt-4o-mini", { words: 2, maxTokens: 8 });
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(200); // 10
    expect((await there()).status).toBe(200); // 20, in the other project
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(200); // 30: the key's minute is spent, wherever it calls
    expect((await there()).status).toBe(429);
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(429);
    g.t.clock.advance(61_000);
    expect((await there()).status).toBe(200);
  });

  it("a key-scope exemption relaxes the key's limit in its own project only: a project it is shared with approved nothing and keeps its per-key limit", async () => {
    // The owner project counts 100 tokens a minute per key; the project the key is shared into only 20.
    const own = await g.project("exempt-own", { settings: { tokens: { perMinute: { limit: 100, per: "key" } } } });
    const there = await g.project("exempt-there", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    const mini = await g.model(own.id, "gpt-4o-mini");
    await g.model(there.id, "gpt-4o-mini");
    await g.publish("two projects");
    const k = await g.key(dev, own.id, { name: "shared", scopes: { models: [mini.id] } });
    const before = await dev.keys.get(own.id, k.id);
    const { approval } = await dev.keys.share(own.id, k.id, { projectId: there.id, justification: "evaluation" }, before.etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(own.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(own.id, k.id);
    const callThere = () => g.chat(there.id, k.key, "gpt-4o-mini", { words: 2, maxTokens: 8 }); // 10 tokens
    // Baseline: the other project's 20 per key bite on the third call.
    expect((await callThere()).status).toBe(200);
    expect((await callThere()).status).toBe(200);
    expect((await callThere()).status).toBe(429);
    g.t.clock.advance(61_000);

    // An exemption of this key, judged and approved against its own project's 100 a minute.
    await g.exemptKey(dev, own.id, k.id, 1000);
    // The key's subscription moves to the exemption's product (the lifecycle job reconciles it).
    await until(async () => {
      await g.t.app.host.invokeTimer("keyLifecycle");
      await g.settle();
      g.t.clock.advance(61_000);
      const r = await g.chat(own.id, k.key, "gpt-4o-mini", { words: 2, maxTokens: 8 });
      return r.headers.get("x-aigov-tokens-remaining-minute-tier") === "1000" ? true : undefined;
    }, "key on the exemption tier");
    g.t.clock.advance(61_000);
    // In its own project the key now has its 1000.
    // In the project it is shared with, nobody approved anything: that project's 20 per key still bite.
    expect((await callThere()).status).toBe(200);
    expect((await callThere()).status).toBe(200);
    expect((await callThere()).status).toBe(429);
  });

  it("equal budgets in two projects (one profile) never buy more than the dearer project's price allows", async () => {
    const dear = await g.project("limits-dear");
    // 0.1 USD per 1K tokens: 1e-4 a token, ten times this suite's project.
    await g.model(dear.id, "gpt-4o-mini", { extra: { pricing: { currency: "USD", inputPer1kTokens: 0.1, outputPer1kTokens: 0.1 } } });
    await g.publish("a dearer project");
    const budget = { budget: { amount: 0.0009, currency: "USD", period: "Monthly" as const } };
    const cheap = await g.key(dev, project.id, { name: "budget here", limits: budget });
    const costly = await g.key(dev, dear.id, { name: "budget there", limits: budget });
    // 0.0009 USD buys 9 tokens at the dear price (1e-4 a token): one 10-token call spends the dear key's
    // budget, whichever project's keys the shared profile was built from first.
    expect((await g.chat(dear.id, costly.key, "gpt-4o-mini", { words: 2, maxTokens: 8 })).status).toBe(200);
    expect((await g.chat(dear.id, costly.key, "gpt-4o-mini", { words: 2, maxTokens: 8 })).status).toBe(403);
    // The cheaper project's key is priced the same (stricter than its own prices, never looser).
    expect((await call(cheap.key, "gpt-4o-mini")).status).toBe(200);
    expect((await call(cheap.key, "gpt-4o-mini")).status).toBe(403);
  });

  it("a project quota refuses with 403 until its period ends; a request rate with 429 until its window slides", async () => {
    const p = await g.project("quota", { settings: { tokens: { quota: { limit: 25, period: "Hourly", per: "project" } }, requests: { rate: { calls: 2, renewalPeriodSeconds: 60, per: "key" } } } });
    await g.model(p.id, "gpt-4o-mini");
    await g.publish("quota");
    const a = (await g.key(dev, p.id, { name: "a" })).key;
    const b = (await g.key(dev, p.id, { name: "b" })).key;
    const first = await g.chat(p.id, a, "gpt-4o-mini");
    expect(first.status).toBe(200);
    expect(first.headers.get("x-aigov-tokens-remaining-quota-project")).toBe("25");
    expect((await g.chat(p.id, a, "gpt-4o-mini")).headers.get("x-aigov-tokens-remaining-quota-project")).toBe("15");
    const rate = await g.chat(p.id, a, "gpt-4o-mini");
    expect(rate.status).toBe(429);
    expect(rate.json.message).toMatch(/Rate limit is exceeded/);
    // Key b has its own request rate, but the project's quota is shared: 20 of 25 are used.
    expect((await g.chat(p.id, b, "gpt-4o-mini")).status).toBe(200);
    const quota = await g.chat(p.id, b, "gpt-4o-mini");
    expect(quota.status).toBe(403);
    const hour = 3_600_000;
    g.t.clock.advance(hour - (g.t.clock.now() % hour) + 1000);
    expect((await g.chat(p.id, b, "gpt-4o-mini")).status).toBe(200);
    expect((await g.chat(p.id, a, "gpt-4o-mini")).status).toBe(200);
  });

  it("suspended, revoked and expired keys are refused; resumed keys work again", async () => {
    const k = await g.key(dev, project.id, { name: "states" });
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(200);
    await dev.keys.suspend(project.id, k.id, { reason: "investigating" }, (await dev.keys.get(project.id, k.id)).etag);
    await g.settle();
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(401);
    await dev.keys.resume(project.id, k.id, { reason: "cleared" }, (await dev.keys.get(project.id, k.id)).etag);
    await g.settle();
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(200);
    await dev.keys.revoke(project.id, k.id, { reason: "done" }, (await dev.keys.get(project.id, k.id)).etag);
    await g.settle();
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(401);

    const soon = await g.key(dev, project.id, { name: "short", expiresAt: new Date(g.t.appClock.ms() + 3_600_000).toISOString() });
    expect((await call(soon.key, "gpt-4o-mini")).status).toBe(200);
    g.t.appClock.advance(3_601_000); // past its expiry
    await g.t.app.host.invokeTimer("keyLifecycle");
    await g.settle();
    expect((await dev.keys.get(project.id, soon.id)).status).toBe("expired");
    expect((await call(soon.key, "gpt-4o-mini")).status).toBe(401);
  });

  it("during a rotation's overlap both secrets work; after it only the new one", async () => {
    const k = await g.key(dev, project.id, { name: "rotating" });
    const rotated = await dev.keys.rotate(project.id, k.id, { overlap: "PT1H" }, (await dev.keys.get(project.id, k.id)).etag);
    // The rotation's orchestration puts the new secret at the gateway; the overlap begins once it confirmed it.
    await until(async () => ((await dev.keys.get(project.id, k.id)).rotation?.overlapUntil ? true : undefined), "overlap begins");
    await g.t.gateway.reload();
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(200);
    expect((await call(rotated.key, "gpt-4o-mini")).status).toBe(200);
    g.t.appClock.advance(3_600_000); // the overlap (PT1H) passes
    await until(async () => ((await dev.keys.get(project.id, k.id)).rotation === undefined ? true : undefined), "rotation completes");
    await g.t.gateway.reload();
    expect((await call(k.key, "gpt-4o-mini")).status).toBe(401);
    expect((await call(rotated.key, "gpt-4o-mini")).status).toBe(200);
  });
});
