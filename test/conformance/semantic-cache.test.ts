/**
 * Conformance: the semantic cache at the local gateway, checked by requests only. A cached answer is
 * still an answer: a spent quota or budget (and a key's tokens per minute) stops it as it stops a call to
 * the backend, and the hit itself spends no tokens. Answers cached under looser content-safety settings
 * are not served once the settings are tightened, and tenants never share a cache partition.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed, refusal } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;

// 0.01 USD per 1K tokens, input and output: 1e-5 USD a token.
const priced = { pricing: { currency: "USD", inputPer1kTokens: 0.01, outputPer1kTokens: 0.01 } };
const cacheOn = { scoreThreshold: 0.05, durationSeconds: 600 };
const services = {
  embeddings: { url: "https://embeddings.cognitiveservices.azure.com/openai/deployments/embeddings/embeddings" },
  contentSafety: { url: "https://safety.cognitiveservices.azure.com" },
};

beforeAll(async () => {
  g = await Governed.start("t-semantic-cache");
  dev = await g.as("dora", ["Developer"]);
  const s = await g.admin.settings.get();
  await g.admin.settings.put({ settings: {}, services }, s.etag);
});
afterAll(() => g.stop());

/** A chat call with a prompt of the given words: the fake counts one token a word, plus `max_tokens` (8). */
const ask = (projectId: string, key: string, model: string, prompt: string) =>
  g.call(projectId, "/v1/chat/completions", { key, body: { model, max_tokens: 8, messages: [{ role: "user", content: prompt }] } });

// 6 prompt tokens + 8 = 14 tokens; 3 + 8 = 11 tokens.
const P = "What is the capital of France";
const Q = "Name a colour";

describe("conformance: the semantic cache at the local gateway", () => {
  it("a spent token quota stops cached answers too (403), and a hit spends no tokens", async () => {
    const p = await g.project("cache-quota", { settings: { semanticCache: cacheOn, tokens: { quota: { limit: 25, period: "Monthly", per: "key" } } } });
    await g.model(p.id, "cq-model");
    await g.publish("cache and a quota");
    const k = (await g.key(dev, p.id, { name: "quota" })).key;
    const calls = () => g.t.backends.requests("cq-model.mock.localhost").length;

    const first = await ask(p.id, k, "cq-model", P);
    expect(first.status).toBe(200);
    const hit = await ask(p.id, k, "cq-model", P);
    expect([hit.status, hit.json.id, calls()]).toEqual([200, first.json.id, 1]);
    // The hit was let through with 11 left and spent nothing: the next call still has 11.
    expect(hit.headers.get("x-aigov-tokens-remaining-quota-key")).toBe("11");
    const other = await ask(p.id, k, "cq-model", Q);
    expect([other.status, other.headers.get("x-aigov-tokens-remaining-quota-key")]).toEqual([200, "11"]);
    // 25 of 25 spent: the cached answer is refused as a backend call is.
    const spent = await ask(p.id, k, "cq-model", P);
    expect([spent.status, spent.json.statusCode]).toEqual([403, 403]);
    expect(Number(spent.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await ask(p.id, k, "cq-model", Q)).status).toBe(403);
    expect(calls()).toBe(2);
    // Another key of the project has its own quota, and the cache answers it.
    const fresh = (await g.key(dev, p.id, { name: "quota 2" })).key;
    const cached = await ask(p.id, fresh, "cq-model", P);
    expect([cached.status, cached.json.id, calls()]).toEqual([200, first.json.id, 2]);
  });

  it("with estimatePromptTokens a hit needs room for the prompt's estimate, as a call does (docs/gateway.md, ADR 025)", async () => {
    const p = await g.project("cache-estimate", { settings: { semanticCache: cacheOn, tokens: { quota: { limit: 20, period: "Monthly", per: "key", estimatePromptTokens: true } } } });
    await g.model(p.id, "ce-model");
    await g.publish("cache and an estimating quota");
    const k = (await g.key(dev, p.id, { name: "estimate" })).key;
    // P is 29 characters: an estimate of 8 tokens; the call spends 14, leaving 6.
    const first = await ask(p.id, k, "ce-model", P);
    expect([first.status, first.headers.get("x-aigov-tokens-remaining-quota-key")]).toEqual([200, "12"]);
    const refused = await ask(p.id, k, "ce-model", P);
    expect([refused.status, refused.json.statusCode]).toEqual([403, 403]);
    // A prompt whose estimate fits is answered (from the backend: the cache holds no answer for it).
    const short = await ask(p.id, k, "ce-model", "Hi");
    expect([short.status, short.headers.get("x-aigov-tokens-remaining-quota-key")]).toEqual([200, "5"]);
    expect(g.t.backends.requests("ce-model.mock.localhost")).toHaveLength(2);
  });

  it("an exhausted budget stops cached answers too (403)", async () => {
    const p = await g.project("cache-budget", { settings: { semanticCache: cacheOn } });
    await g.model(p.id, "cb-model", { extra: priced });
    await g.publish("cache and a budget");
    // 0.00025 USD at 1e-5 USD a token: 25 tokens a month.
    const k = (await g.key(dev, p.id, { name: "budget", limits: { budget: { amount: 0.00025, currency: "USD", period: "Monthly" } } })).key;
    const calls = () => g.t.backends.requests("cb-model.mock.localhost").length;
    const first = await ask(p.id, k, "cb-model", P);
    expect(first.status).toBe(200);
    expect([(await ask(p.id, k, "cb-model", P)).json.id, calls()]).toEqual([first.json.id, 1]);
    expect((await ask(p.id, k, "cb-model", Q)).status).toBe(200); // 25 of 25
    const spent = await ask(p.id, k, "cb-model", P);
    expect([spent.status, spent.json.statusCode]).toEqual([403, 403]);
    expect(calls()).toBe(2);
  });

  it("a key past its tokens per minute gets no cached answer either (429)", async () => {
    const p = await g.project("cache-tpm", { settings: { semanticCache: cacheOn } });
    await g.model(p.id, "ct-model");
    await g.publish("cache and a rate");
    const k = (await g.key(dev, p.id, { name: "tpm", limits: { tokensPerMinute: 25 } })).key;
    expect((await ask(p.id, k, "ct-model", P)).status).toBe(200);
    expect((await ask(p.id, k, "ct-model", Q)).status).toBe(200);
    const limited = await ask(p.id, k, "ct-model", P);
    expect(limited.status).toBe(429);
    g.t.clock.advance(61_000);
    expect((await ask(p.id, k, "ct-model", P)).status).toBe(200);
    expect(g.t.backends.requests("ct-model.mock.localhost")).toHaveLength(2);
  });

  it("tightened content safety: an answer cached under the looser settings is not served", async () => {
    const p = await g.project("cache-safety", {
      settings: { semanticCache: cacheOn, contentSafety: { outputType: "EightSeverityLevels", categories: { Hate: 5 }, enforceOnCompletions: true } },
    });
    await g.model(p.id, "cs-model");
    await g.publish("cache and content safety");
    const k = (await g.key(dev, p.id, { name: "safety" })).key;
    const prompt = "Tell me about unsafe:Hate:3 history";
    const first = await ask(p.id, k, "cs-model", prompt);
    expect(first.status).toBe(200);
    expect([(await ask(p.id, k, "cs-model", prompt)).json.id, g.t.backends.requests("cs-model.mock.localhost").length]).toEqual([first.json.id, 1]);
    const cur = await g.admin.projects.get(p.id);
    await g.admin.projects.update(p.id, { settings: { semanticCache: cacheOn, contentSafety: { outputType: "EightSeverityLevels", categories: { Hate: 3 }, enforceOnCompletions: true } } }, cur.etag);
    await g.publish("tighter content safety");
    const blocked = await ask(p.id, k, "cs-model", prompt);
    expect(blocked.status).toBe(403);
    expect(blocked.json.message).toMatch(/content safety \(Hate\)/);
    // A prompt the tighter settings still pass: answered afresh, not from the looser settings' entries.
    const fine = "Tell me about history";
    expect((await ask(p.id, k, "cs-model", fine)).status).toBe(200);
  });

  it("an answer cached under one model deployment is not served once the model points at another", async () => {
    const p = await g.project("cache-deployment", { settings: { semanticCache: cacheOn } });
    const m = await g.model(p.id, "dep-model", { modelName: "dep-v1" });
    await g.publish("cache, deployment v1");
    const k = (await g.key(dev, p.id, { name: "deployment" })).key;
    const first = await ask(p.id, k, "dep-model", P);
    expect([first.status, first.json.model]).toEqual([200, "dep-v1"]);
    expect((await ask(p.id, k, "dep-model", P)).json.id).toBe(first.json.id);
    const cur = await g.admin.models.get(p.id, m.id);
    await g.admin.models.update(p.id, m.id, { modelName: "dep-v2" } as never, cur.etag);
    await g.publish("deployment v2");
    const after = await ask(p.id, k, "dep-model", P);
    expect([after.status, after.json.model]).toEqual([200, "dep-v2"]);
  });

  it("a deprecated model's answers all carry Sunset and Deprecation: the cache does not answer for it, the project's other models keep it", async () => {
    const p = await g.project("cache-deprecated", { settings: { semanticCache: cacheOn } });
    const old = await g.model(p.id, "old-model");
    await g.model(p.id, "new-model");
    await g.publish("cache, two models");
    const k = (await g.key(dev, p.id, { name: "deprecated" })).key;
    await g.admin.models.update(p.id, old.id, { status: "deprecated", sunsetDate: "2099-06-30" }, (await g.admin.models.get(p.id, old.id)).etag);
    await g.publish("old-model deprecated");
    for (let i = 0; i < 2; i++) {
      const r = await ask(p.id, k, "old-model", P);
      expect([r.status, r.headers.get("sunset"), r.headers.get("deprecation")?.startsWith("@")]).toEqual([200, "Tue, 30 Jun 2099 00:00:00 GMT", true]);
    }
    expect(g.t.backends.requests("old-model.mock.localhost")).toHaveLength(2);
    const first = await ask(p.id, k, "new-model", P);
    expect((await ask(p.id, k, "new-model", P)).json.id).toBe(first.json.id);
    expect(g.t.backends.requests("new-model.mock.localhost")).toHaveLength(1);
  });

  it("a hit never carries a header headers.stripSecrets removes from answers, nor another caller's correlation id", async () => {
    const p = await g.project("cache-strip", { settings: { semanticCache: cacheOn, headers: { stripSecrets: { extra: ["x-mock-instance"] } }, correlationId: {} } });
    await g.model(p.id, "strip-model");
    await g.publish("cache and stripped headers");
    const k = (await g.key(dev, p.id, { name: "strip" })).key;
    const askAs = (id: string) => g.call(p.id, "/v1/chat/completions", { key: k, headers: { "x-correlation-id": id }, body: { model: "strip-model", max_tokens: 8, messages: [{ role: "user", content: P }] } });
    const first = await askAs("first-caller");
    expect([first.status, first.headers.get("x-mock-instance"), first.headers.get("x-correlation-id")]).toEqual([200, null, "first-caller"]);
    const hit = await askAs("second-caller");
    expect(hit.json.id).toBe(first.json.id);
    expect(hit.headers.get("x-mock-instance")).toBeNull();
    expect(hit.headers.get("x-correlation-id")).not.toBe("first-caller");
  });

  it("two tenants with the same project settings, model names and prompt never share a cached answer", async () => {
    const b = await Governed.start("t-semantic-cache-b", g.t);
    const bDev = await b.as("ben", ["Developer"]);
    const s = await b.admin.settings.get();
    await b.admin.settings.put({ settings: {}, services }, s.etag);
    const ap = await g.project("shared-name", { settings: { semanticCache: cacheOn } });
    const bp = await b.project("shared-name", { settings: { semanticCache: cacheOn } });
    await g.model(ap.id, "same-model", { modelName: "tenant-a-deployment", hosts: ["same-a.mock.localhost"] });
    await b.model(bp.id, "same-model", { modelName: "tenant-b-deployment", hosts: ["same-b.mock.localhost"] });
    await g.publish("tenant a");
    await b.publish("tenant b");
    const ak = (await g.key(dev, ap.id, { name: "a" })).key;
    const bk = (await b.key(bDev, bp.id, { name: "b" })).key;
    const a1 = await ask(ap.id, ak, "same-model", P);
    expect([a1.status, a1.json.model]).toEqual([200, "tenant-a-deployment"]);
    expect((await ask(ap.id, ak, "same-model", P)).json.id).toBe(a1.json.id);
    const b1 = await b.call(bp.id, "/v1/chat/completions", { key: bk, body: { model: "same-model", max_tokens: 8, messages: [{ role: "user", content: P }] } });
    expect([b1.status, b1.json.model]).toEqual([200, "tenant-b-deployment"]);
    expect(b1.json.id).not.toBe(a1.json.id);
    expect(g.t.backends.requests("same-b.mock.localhost")).toHaveLength(1);
    expect(refusal(b1)).toEqual({ status: 200, code: undefined });
  });
});
