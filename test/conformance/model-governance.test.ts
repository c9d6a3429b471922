/**
 * Conformance: model-gateway governance rules that other suites do not reach — the semantic cache across
 * data classes, and `prompt.maxBytes` measured on the request body the caller sent — checked by requests
 * through the local gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-model-governance");
  dev = await g.as("dora", ["Developer"]);
  const s = await g.admin.settings.get();
  await g.admin.settings.put(
    { settings: {}, services: { embeddings: { url: "https://embeddings.cognitiveservices.azure.com/openai/deployments/embeddings/embeddings" } } },
    s.etag,
  );
});
afterAll(() => g.stop());

describe("conformance: data classes, the semantic cache and prompt size at the local gateway", () => {
  it("an answer cached for one data class is never served to a request of another", async () => {
    const p = await g.project("cache-classes", {
      settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 600 }, dataClass: { allowed: ["public", "confidential"] } },
    });
    await g.model(p.id, "dc-cache-model", { extra: { dataClasses: ["public", "confidential"] } });
    await g.publish("cache with data classes");
    const k = (await g.key(dev, p.id, { name: "classes" })).key;
    const ask = (dataClass: string) =>
      g.call(p.id, "/v1/chat/completions", {
        key: k,
        headers: { "x-aigov-data-class": dataClass },
        body: { model: "dc-cache-model", max_tokens: 8, messages: [{ role: "user", content: "Summarize the acquisition plan" }] },
      });
    expect((await ask("confidential")).status).toBe(200);
    expect(g.t.backends.requests("dc-cache-model.mock.localhost")).toHaveLength(1);
    // Same prompt, declared public: the confidential request's answer must not come back from the cache.
    const pub = await ask("public");
    expect(pub.status).toBe(200);
    expect(g.t.backends.requests("dc-cache-model.mock.localhost")).toHaveLength(2);
    // Within one data class the cache still answers (any case or spacing of the declared class).
    expect((await ask(" Public ")).status).toBe(200);
    expect((await ask("confidential")).status).toBe(200);
    expect(g.t.backends.requests("dc-cache-model.mock.localhost")).toHaveLength(2);
  });

  it("maxMessageCount skips the cache for longer conversations (APIM: messages after which caching is skipped): two conversations never share an answer by their last message", async () => {
    const p = await g.project("cache-messages", { settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 600, maxMessageCount: 1 } } });
    await g.model(p.id, "msg-cache-model");
    await g.publish("cache with a message count");
    const k = (await g.key(dev, p.id, { name: "messages" })).key;
    const ask = (messages: { role: string; content: string }[]) => g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "msg-cache-model", max_tokens: 8, messages } });
    const calls = () => g.t.backends.requests("msg-cache-model.mock.localhost").length;
    // Two different conversations that end with the same words.
    expect((await ask([{ role: "user", content: "Draft the layoff memo for the finance team" }, { role: "assistant", content: "Here is a draft" }, { role: "user", content: "Go on." }])).status).toBe(200);
    expect((await ask([{ role: "user", content: "Tell me a story about dragons" }, { role: "assistant", content: "Once upon a time" }, { role: "user", content: "Go on." }])).status).toBe(200);
    expect(calls()).toBe(2);
    // A conversation within the count is cached as usual.
    expect((await ask([{ role: "user", content: "What is the capital of France?" }])).status).toBe(200);
    expect((await ask([{ role: "user", content: "What is the capital of France?" }])).status).toBe(200);
    expect(calls()).toBe(3);
  });

  it("prompt.maxBytes counts the body the caller sent, the same on every request shape", async () => {
    const body = { model: "size-model", max_tokens: 8, messages: [{ role: "system", content: "be brief" }, { role: "user", content: "x".repeat(200) }] };
    const bytes = Buffer.byteLength(JSON.stringify(body));
    const p = await g.project("prompt-size", { settings: { prompt: { maxBytes: bytes } } });
    await g.model(p.id, "size-model");
    await g.model(p.id, "size-azure", { provider: "azure-openai", hosts: ["size-azure.mock.localhost"] });
    await g.publish("prompt size");
    const k = (await g.key(dev, p.id, { name: "size" })).key;
    // Exactly at the limit: served, whichever backend kind the model has.
    const atLimit = await g.call(p.id, "/v1/chat/completions", { key: k, body });
    expect([atLimit.status, atLimit.json.error?.code]).toEqual([200, undefined]);
    const azureBody = { ...body, model: "size-azure" };
    const azureLimitBody = { ...azureBody, messages: [body.messages[0]!, { role: "user", content: "x".repeat(200 - (Buffer.byteLength(JSON.stringify(azureBody)) - bytes)) }] };
    expect(Buffer.byteLength(JSON.stringify(azureLimitBody))).toBe(bytes);
    expect((await g.call(p.id, "/v1/chat/completions", { key: k, body: azureLimitBody })).status).toBe(200);
    // One byte over: 413 on both.
    const over = { ...body, messages: [body.messages[0]!, { role: "user", content: "x".repeat(201) }] };
    const refused = await g.call(p.id, "/v1/chat/completions", { key: k, body: over });
    expect([refused.status, refused.json.error?.code]).toEqual([413, "prompt_too_large"]);
    // Padding the caller's body with whitespace does not pass a body over the limit either.
    const padded = await g.call(p.id, "/v1/chat/completions", { key: k, body: JSON.stringify(body, null, 4) });
    expect([padded.status, padded.json.error?.code]).toEqual([413, "prompt_too_large"]);
  });
});
