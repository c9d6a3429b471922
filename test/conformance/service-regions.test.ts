/**
 * Conformance: region rules cover the tenant's shared services that see prompts (ADR 024). The semantic
 * cache is not used for a model whose `regions.allowed` excludes the embeddings deployment's region (checked by
 * requests through the local gateway: backend and embeddings calls counted), and a settings write that would
 * leave content safety on under a rule excluding the content-safety service's region is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";
import { errorOf, reasonOf } from "../support/errors.js";

const EMBEDDINGS_HOST = "emb-eastus.cognitiveservices.azure.com";
const EMBEDDINGS = { url: `https://${EMBEDDINGS_HOST}/openai/deployments/embeddings/embeddings`, region: "eastus" };
const CONTENT_SAFETY = { url: "https://cs-eastus.cognitiveservices.azure.com", region: "eastus" };

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-service-regions");
  dev = await g.as("dora", ["Developer"]);
  await g.putServices({ embeddings: EMBEDDINGS, contentSafety: CONTENT_SAFETY });
});
afterAll(() => g.stop());

describe("conformance: region rules and the shared services that see prompts", () => {
  it("the semantic cache is not used for a model whose region rule excludes the embeddings deployment; the project's other models keep it", async () => {
    const p = await g.project("cache-regions", { settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 600 } } });
    await g.model(p.id, "us-cache-model");
    await g.model(p.id, "eu-cache-model", { backend: { region: "westeurope" }, extra: { settings: { regions: { allowed: ["westeurope"] } } } });
    await g.publish("cache with a region rule");
    const k = (await g.key(dev, p.id, { name: "regions" })).key;
    const ask = (model: string) => g.call(p.id, "/v1/chat/completions", { key: k, body: { model, max_tokens: 8, messages: [{ role: "user", content: "Summarize the quarterly report" }] } });
    const calls = (model: string) => g.t.backends.requests(`${model}.mock.localhost`).length;
    const embedded = () => g.t.backends.requests(EMBEDDINGS_HOST).length;

    // The unrestricted model: the second request is a cache hit.
    expect((await ask("us-cache-model")).status).toBe(200);
    expect((await ask("us-cache-model")).status).toBe(200);
    expect(calls("us-cache-model")).toBe(1);
    const embeddedBefore = embedded();
    expect(embeddedBefore).toBe(2);

    // The model held to westeurope: no lookup, no store — both requests reach its backend, and its prompt never reaches the eastus embeddings deployment.
    expect((await ask("eu-cache-model")).status).toBe(200);
    expect((await ask("eu-cache-model")).status).toBe(200);
    expect(calls("eu-cache-model")).toBe(2);
    expect(embedded()).toBe(embeddedBefore);

    // The preview names the model the cache skips.
    const preview = await g.admin.policy.preview(p.id, {});
    expect(preview.warnings?.some((w) => w.includes("eu-cache-model") && w.includes("semantic cache is not used"))).toBe(true);
    expect(preview.warnings?.some((w) => w.includes("us-cache-model"))).toBe(false);
  });

  it("with the embeddings deployment in an allowed region the restricted model is cached again", async () => {
    await g.putServices({ embeddings: { ...EMBEDDINGS, url: EMBEDDINGS.url.replace("emb-eastus", "emb-westeurope"), region: "westeurope" }, contentSafety: CONTENT_SAFETY });
    const p = await g.project("cache-regions-eu", { settings: { semanticCache: { scoreThreshold: 0.05, durationSeconds: 600 } } });
    await g.model(p.id, "eu-cached-model", { backend: { region: "westeurope" }, extra: { settings: { regions: { allowed: ["westeurope"] } } } });
    await g.publish("embeddings in westeurope");
    const k = (await g.key(dev, p.id, { name: "eu" })).key;
    const ask = () => g.call(p.id, "/v1/chat/completions", { key: k, body: { model: "eu-cached-model", max_tokens: 8, messages: [{ role: "user", content: "Summarize the annual report" }] } });
    expect((await ask()).status).toBe(200);
    expect((await ask()).status).toBe(200);
    expect(g.t.backends.requests("eu-cached-model.mock.localhost")).toHaveLength(1);
    await g.putServices({ embeddings: EMBEDDINGS, contentSafety: CONTENT_SAFETY });
  });

  it("a write that leaves content safety on under a region rule excluding the content-safety service's region is refused, naming the field", async () => {
    // A model write.
    const p = await g.project("cs-regions", { settings: { contentSafety: {} } });
    const refusedModel = await errorOf(g.model(p.id, "eu-cs-model", { backend: { region: "westeurope" }, extra: { settings: { regions: { allowed: ["westeurope"] } } } }));
    expect(refusedModel).toBeInstanceOf(ApiError);
    expect((refusedModel as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refusedModel as ApiError).problem?.errors?.[0]?.field).toBe("body.settings.regions.allowed");
    expect((refusedModel as ApiError).problem?.errors?.[0]?.message).toContain("eastus");
    expect((await g.admin.models.list(p.id)).items.map((m) => m.name)).not.toContain("eu-cs-model");

    // A project write; with the region allowed it passes.
    const cur = await g.admin.projects.get(p.id);
    const refusedProject = await errorOf(g.admin.projects.update(p.id, { settings: { contentSafety: {}, regions: { allowed: ["westeurope"] } } }, cur.etag));
    expect((refusedProject as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refusedProject as ApiError).problem?.errors?.[0]?.field).toBe("body.settings.regions.allowed");
    expect((await g.admin.projects.get(p.id)).settings).toEqual({ contentSafety: {} });
    expect(await reasonOf(g.admin.projects.update(p.id, { settings: { contentSafety: {}, regions: { allowed: ["westeurope", "eastus"] } } }, cur.etag))).toBe("200");

    // A tenant services write that moves the content-safety service out of that rule.
    const refusedServices = await errorOf(g.putServices({ embeddings: EMBEDDINGS, contentSafety: { url: "https://cs-brazil.cognitiveservices.azure.com", region: "brazilsouth" } }));
    expect((refusedServices as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refusedServices as ApiError).problem?.errors?.[0]?.field).toBe("body.services.contentSafety.region");
    expect((refusedServices as ApiError).problem?.errors?.[0]?.message).toContain(p.id);
    expect((await g.admin.settings.get()).services).toMatchObject({ contentSafety: CONTENT_SAFETY });

    // A tenant settings write that narrows the regions under the project's content safety.
    const refusedTenant = await errorOf(g.putServices({ embeddings: EMBEDDINGS, contentSafety: CONTENT_SAFETY }, { regions: { allowed: ["westeurope"] } }));
    expect((refusedTenant as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refusedTenant as ApiError).problem?.errors?.[0]?.field).toBe("body.settings.regions.allowed");
    expect((await g.admin.settings.get()).settings).toEqual({});
  });

  it("a content-safety service without a region is not refused: the policy preview warns", async () => {
    await g.putServices({ embeddings: EMBEDDINGS, contentSafety: { url: CONTENT_SAFETY.url } });
    const p = await g.project("cs-unstated", { settings: { contentSafety: {}, regions: { allowed: ["eastus"] } } });
    const preview = await g.admin.policy.preview(p.id, {});
    expect(preview.artifacts.length).toBeGreaterThan(0);
    expect(preview.warnings).toEqual([expect.stringContaining("services.contentSafety states no region")]);
    await g.putServices({ embeddings: EMBEDDINGS, contentSafety: CONTENT_SAFETY });
  });
});
