/**
 * Conformance: the headers of a governed model's answer, checked by requests through the local gateway
 * against fake backends that send what OpenAI and Azure OpenAI send besides the body. An answer says what
 * the caller's own limits have left (`x-aigov-tokens-remaining-*`) and nothing about the deployment's:
 * the provider's rate-limit headers describe the deployment every key shares, its request ids and
 * placement describe the gateway's call, not the caller's, and a semantic-cache hit never replays them or
 * another caller's correlation id. None of this depends on `headers.stripSecrets`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;

const services = {
  embeddings: { url: "https://embeddings.cognitiveservices.azure.com/openai/deployments/embeddings/embeddings" },
  contentSafety: { url: "https://safety.cognitiveservices.azure.com" },
};
const cacheOn = { scoreThreshold: 0.05, durationSeconds: 600 };

/** What a provider sends about the deployment and its own call: never for a caller of the gateway. */
const DEPLOYMENT_HEADERS = [
  "x-ratelimit-limit-requests",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-requests",
  "x-ratelimit-reset-tokens",
  "apim-request-id",
  "x-ms-region",
  "x-ms-deployment-name",
  "azureml-model-session",
];
const present = (h: Headers, names: string[]) => names.filter((n) => h.get(n) !== null);

beforeAll(async () => {
  g = await Governed.start("t-answer-headers");
  dev = await g.as("dora", ["Developer"]);
  const s = await g.admin.settings.get();
  await g.admin.settings.put({ settings: {}, services }, s.etag);
});
afterAll(() => g.stop());

const ask = (projectId: string, key: string, model: string, prompt: string, headers: Record<string, string> = {}) =>
  g.call(projectId, "/v1/chat/completions", { key, headers, body: { model, max_tokens: 8, messages: [{ role: "user", content: prompt }] } });

describe("conformance: what an answer's headers say", () => {
  it("the caller's own limits, never the deployment's rate-limit headers, request ids or placement (OpenAI and Azure OpenAI backends)", async () => {
    const p = await g.project("own-limits", { settings: { tokens: { quota: { limit: 1000, period: "Monthly", per: "key" } } } });
    await g.model(p.id, "oa-model");
    await g.model(p.id, "az-model", { provider: "azure-openai" });
    await g.publish("two providers, a quota per key");
    const k = (await g.key(dev, p.id, { name: "own limits", limits: { tokensPerMinute: 500 } })).key;

    const oa = await ask(p.id, k, "oa-model", "What is the capital of France");
    expect(oa.status).toBe(200);
    expect([oa.headers.get("x-aigov-tokens-remaining-quota-key"), oa.headers.get("x-aigov-tokens-remaining-minute-tier")]).toEqual(["1000", "500"]);
    expect(present(oa.headers, [...DEPLOYMENT_HEADERS, "x-request-id"])).toEqual([]);

    // 14 tokens spent: the next answer says 986 and 486, whatever the deployment has left.
    const az = await ask(p.id, k, "az-model", "What is the capital of France", { "x-ms-client-request-id": "client-1" });
    expect(az.status).toBe(200);
    expect([az.headers.get("x-aigov-tokens-remaining-quota-key"), az.headers.get("x-aigov-tokens-remaining-minute-tier")]).toEqual(["986", "486"]);
    expect(present(az.headers, [...DEPLOYMENT_HEADERS, "x-request-id"])).toEqual([]);
    // The backends were called, with the deployment path for Azure OpenAI (so the headers above were sent).
    expect(g.t.backends.requests("az-model.mock.localhost").map((r) => r.path)).toEqual(["/openai/deployments/az-model-deployment/chat/completions"]);
    expect(g.t.backends.requests("oa-model.mock.localhost")).toHaveLength(1);
  });

  it("a cache hit never replays another caller's x-ms-client-request-id, nor the filling call's request ids", async () => {
    const p = await g.project("hit-ids", { settings: { semanticCache: cacheOn } });
    await g.model(p.id, "hit-model", { provider: "azure-openai" });
    await g.publish("cache, no correlation setting");
    const k = (await g.key(dev, p.id, { name: "hit ids" })).key;
    const prompt = "Name a colour please";
    const first = await ask(p.id, k, "hit-model", prompt, { "x-ms-client-request-id": "first-caller" });
    expect(first.status).toBe(200);
    const hit = await ask(p.id, k, "hit-model", prompt, { "x-ms-client-request-id": "second-caller" });
    expect([hit.status, hit.json.id, g.t.backends.requests("hit-model.mock.localhost").length]).toEqual([200, first.json.id, 1]);
    expect(hit.headers.get("x-ms-client-request-id")).not.toBe("first-caller");
    expect(present(hit.headers, [...DEPLOYMENT_HEADERS, "x-request-id"])).toEqual([]);
  });

  for (const header of ["x-ms-client-request-id", "x-request-id"] as const) {
    it(`correlation id in ${header}: every answer from the backend echoes the caller's, a cache hit never carries another's or the backend's`, async () => {
      const p = await g.project(`corr-${header}`, { settings: { semanticCache: cacheOn, correlationId: { header } } });
      const model = `corr-${header.replace(/^x-/, "").replace(/-/g, "")}`;
      await g.model(p.id, model, { provider: "azure-openai" });
      await g.publish(`cache, correlation in ${header}`);
      const k = (await g.key(dev, p.id, { name: "corr" })).key;
      const prompt = "Tell me a short fact";
      const first = await ask(p.id, k, model, prompt, { [header]: "first-caller" });
      expect([first.status, first.headers.get(header)]).toEqual([200, "first-caller"]);
      // The backend got the caller's id (it is injected on requests) and answered with its own headers.
      expect(g.t.backends.requests(`${model}.mock.localhost`)[0]?.headers[header]).toBe("first-caller");
      const hit = await ask(p.id, k, model, prompt, { [header]: "second-caller" });
      expect([hit.status, hit.json.id, g.t.backends.requests(`${model}.mock.localhost`).length]).toEqual([200, first.json.id, 1]);
      // Locally a hit carries no echo (outbound does not run for it, ADR 025): nothing at all, rather than a value of another call.
      expect(hit.headers.get(header)).toBeNull();
    });
  }
});
