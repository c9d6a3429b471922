/**
 * Conformance: failover, circuit breakers, content safety and the semantic cache, checked by requests
 * through the local gateway against the fake backends (whose failures and answers the tests set).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;

const key = (h: string) => ({ type: "apiKey" as const, header: "api-key" as const, key: `provider-key-${h}` });

beforeAll(async () => {
  g = await Governed.start("t-resilience");
  dev = await g.as("dora", ["Developer"]);
  const s = await g.admin.settings.get();
  await g.admin.settings.put(
    {
      settings: {},
      services: { contentSafety: { url: "https://safety.cognitiveservices.azure.com" }, embeddings: { url: "https://embeddings.cognitiveservices.azure.com/openai/deployments/embeddings/embeddings" } },
    },
    s.etag,
  );
});
afterAll(() => g.stop());

describe("conformance: failover, circuit breaker, content safety and semantic cache at the local gateway", () => {
  it("fails over on 429/5xx to the next backend, opens the breaker, and closes it after the trip duration", async () => {
    const p = await g.project("failover", {
      settings: { failover: { retry: { enabled: true }, circuitBreaker: { failureCount: 1, failureInterval: "PT1M", tripDuration: "PT1M", statusCodes: [{ min: 429, max: 429 }, { min: 500, max: 599 }] } } },
    });
    await g.admin.models.create(p.id, {
      name: "gpt-4o",
      provider: "openai",
      modelName: "gpt-4o",
      backends: [
        { id: "primary", url: "https://primary.mock.localhost/v1", region: "eastus", priority: 1, credential: key("primary") },
        { id: "standby", url: "https://standby.mock.localhost/v1", region: "eastus", priority: 2, credential: key("standby") },
      ],
    });
    await g.publish("failover");
    const k = (await g.key(dev, p.id, { name: "failover" })).key;
    expect((await g.chat(p.id, k, "gpt-4o")).headers.get("x-mock-instance")).toBe("primary.mock.localhost");

    g.t.backends.configure("primary.mock.localhost", { failNext: { status: 429, count: 1 } });
    const failed = await g.chat(p.id, k, "gpt-4o");
    expect(failed.status).toBe(200);
    expect(failed.headers.get("x-mock-instance")).toBe("standby.mock.localhost");
    // The primary's breaker is open: the next calls go to the standby without trying the primary.
    const primaryCalls = g.t.backends.requests("primary.mock.localhost").length;
    expect((await g.chat(p.id, k, "gpt-4o")).headers.get("x-mock-instance")).toBe("standby.mock.localhost");
    expect(g.t.backends.requests("primary.mock.localhost")).toHaveLength(primaryCalls);
    // Everything down: a generic 503 without pool details.
    g.t.backends.configure("standby.mock.localhost", { failAlways: { status: 500 } });
    const down = await g.chat(p.id, k, "gpt-4o");
    expect(down.status).toBe(503);
    expect(down.text).not.toContain("mock.localhost");
    // After the trip duration the primary is tried again.
    g.t.backends.configure("standby.mock.localhost", { failAlways: null as never });
    g.t.clock.advance(61_000);
    expect((await g.chat(p.id, k, "gpt-4o")).headers.get("x-mock-instance")).toBe("primary.mock.localhost");
  });

  it("content safety blocks a prompt at or above the threshold with 403, through its managed identity", async () => {
    const p = await g.project("safety", { settings: { contentSafety: { categories: { Violence: 4, Hate: 4 }, outputType: "EightSeverityLevels" } } });
    await g.model(p.id, "gpt-4o");
    await g.publish("content safety");
    const k = (await g.key(dev, p.id, { name: "safety" })).key;
    const ok = await g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "gpt-4o", messages: [{ role: "user", content: "a calm question unsafe:Violence:3" }] } });
    expect(ok.status).toBe(200);
    const blocked = await g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "gpt-4o", messages: [{ role: "user", content: "something unsafe:Violence:5" }] } });
    expect(blocked.status).toBe(403);
    const checks = g.t.backends.requests("safety.cognitiveservices.azure.com");
    expect(checks.map((r) => r.path)).toEqual(["/contentsafety/text:analyze", "/contentsafety/text:analyze"]);
    expect(checks[0]!.headers.authorization).toMatch(/^Bearer /);
    // The blocked prompt never reached the model.
    expect(g.t.backends.requests("gpt-4o.mock.localhost").map((r) => JSON.stringify(r.body))).not.toContain("unsafe:Violence:5");
  });

  it("the semantic cache answers a repeated prompt without calling the model", async () => {
    const p = await g.project("cache", { settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 60 } } });
    await g.model(p.id, "gpt-4o-mini");
    await g.publish("semantic cache");
    const k = (await g.key(dev, p.id, { name: "cache" })).key;
    const ask = (content: string) => g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "gpt-4o-mini", messages: [{ role: "user", content }] } });
    const first = await ask("What is the capital of France?");
    const second = await ask("What is the capital of France?");
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.json).toEqual(first.json);
    expect(g.t.backends.requests("gpt-4o-mini.mock.localhost")).toHaveLength(1);
    await ask("Explain the theory of relativity");
    expect(g.t.backends.requests("gpt-4o-mini.mock.localhost")).toHaveLength(2);
    expect(g.t.backends.requests("embeddings.cognitiveservices.azure.com")).toHaveLength(3);
    // The cached answer expires with its duration.
    g.t.clock.advance(61_000);
    await ask("What is the capital of France?");
    expect(g.t.backends.requests("gpt-4o-mini.mock.localhost")).toHaveLength(3);
  });

  it("a cache hit carries no other key's counters (x-aigov-tokens-remaining-*)", async () => {
    const p = await g.project("cache-headers", { settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 600 } } });
    await g.model(p.id, "cache-hdr-model");
    await g.publish("cache headers");
    const limited = (await g.key(dev, p.id, { name: "500 tpm", limits: { tokensPerMinute: 500 } })).key;
    const other = (await g.key(dev, p.id, { name: "no limits" })).key;
    const ask = (k: string) => g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "cache-hdr-model", messages: [{ role: "user", content: "What is the capital of France?" }] } });
    const first = await ask(limited);
    expect(first.headers.get("x-aigov-tokens-remaining-minute-tier")).toBe("500");
    const hit = await ask(other);
    expect([hit.status, hit.json]).toEqual([200, first.json]);
    expect(g.t.backends.requests("cache-hdr-model.mock.localhost")).toHaveLength(1);
    expect([...hit.headers.keys()].filter((h) => h.startsWith("x-aigov-tokens-remaining"))).toEqual([]);
  });

  it("a cached answer is one call's: an embeddings request of the same text is not answered with a cached chat completion", async () => {
    const p = await g.project("cache-calls", { settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 600 } } });
    await g.model(p.id, "cache-calls-model");
    await g.publish("cache per call");
    const k = (await g.key(dev, p.id, { name: "calls" })).key;
    const q = "What is the capital of France?";
    const chat = await g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "cache-calls-model", messages: [{ role: "user", content: q }] } });
    expect(chat.json.object).toBe("chat.completion");
    const embedded = await g.call(p.id, "/v1/embeddings", { key: k, body: { model: "cache-calls-model", input: q } });
    expect([embedded.status, embedded.json.object]).toEqual([200, "list"]);
    expect(g.t.backends.requests("cache-calls-model.mock.localhost").map((r) => r.path)).toEqual(["/v1/chat/completions", "/v1/embeddings"]);
  });

  it("a key's request rate counts cache hits, and is spent before the paid services (content safety, embeddings) are called", async () => {
    const p = await g.project("cache-rate", { settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 600 }, contentSafety: { categories: { Violence: 4 } } } });
    await g.model(p.id, "cache-rate-model");
    await g.publish("cache and rate");
    const k = (await g.key(dev, p.id, { name: "2 rpm", limits: { requestsPerMinute: 2 } })).key;
    const paid = () => g.t.backends.requests("embeddings.cognitiveservices.azure.com").length + g.t.backends.requests("safety.cognitiveservices.azure.com").length;
    const before = paid();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "cache-rate-model", messages: [{ role: "user", content: i < 3 ? "What is the capital of France?" : `question ${i}` }] } })).status);
    expect(statuses).toEqual([200, 200, 429, 429, 429]);
    expect(g.t.backends.requests("cache-rate-model.mock.localhost")).toHaveLength(1);
    // Two admitted calls: one content safety check and one embedding each; the refused ones reach neither.
    expect(paid() - before).toBe(4);
  });
});
