/**
 * Conformance: a key tier's content safety (a key's `limits.contentSafety`, an agent's guardrail level) sends
 * the key's prompts to the tenant's content-safety service like a project's or a model's does, so the region
 * rule covers it too (ADR 024): a key write that would screen prompts outside the regions its project (or a
 * model it reaches) allows is refused, and so is a settings write that would put an existing key there.
 * Checked through the local gateway: the content-safety service's host records every prompt it screens.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";
import { errorOf, reasonOf } from "../support/errors.js";

const CS_HOST = "cs-eastus.cognitiveservices.azure.com";
const CONTENT_SAFETY = { url: `https://${CS_HOST}`, region: "eastus" };

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-service-regions-keys");
  dev = await g.as("dora", ["Developer"]);
  await g.putServices({ contentSafety: CONTENT_SAFETY });
});
afterAll(() => g.stop());

describe("conformance: region rules and a key tier's content safety", () => {
  it("a key whose tier screens prompts outside its project's regions is refused; no prompt reaches the out-of-region service", async () => {
    const p = await g.project("tier-cs-eu", { settings: { regions: { allowed: ["westeurope"] } } });
    await g.model(p.id, "eu-tier-model", { backend: { region: "westeurope" } });
    const refused = await errorOf(dev.keys.create(p.id, { name: "guarded", limits: { contentSafety: "medium" } }));
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refused as ApiError).problem?.errors?.[0]?.field).toBe("body.limits.contentSafety");
    expect((refused as ApiError).problem?.errors?.[0]?.message).toContain("eastus");
    expect((await dev.keys.list(p.id)).items).toHaveLength(0);

    // Whatever keys the project has, none of its prompts is screened in eastus.
    await g.publish("tier content safety under a region rule");
    const plain = (await g.key(dev, p.id, { name: "plain" })).key;
    const before = g.t.backends.requests(CS_HOST).length;
    const res = await g.chat(p.id, plain, "eu-tier-model");
    expect(res.status).toBe(200);
    expect(g.t.backends.requests(CS_HOST).length).toBe(before);
  });

  it("a project write that puts an existing content-safety key under a rule excluding the service is refused", async () => {
    const p = await g.project("tier-cs-then-rule");
    await g.model(p.id, "tier-rule-model", { backend: { region: "westeurope" } });
    await g.publish("tier content safety, no rule yet");
    const k = await g.key(dev, p.id, { name: "guarded-first", limits: { contentSafety: "low" } });
    const before = g.t.backends.requests(CS_HOST).length;
    expect((await g.chat(p.id, k.key, "tier-rule-model")).status).toBe(200);
    // With no rule the key's prompts are screened (in eastus, which nothing forbids).
    expect(g.t.backends.requests(CS_HOST).length).toBeGreaterThan(before);

    const cur = await g.admin.projects.get(p.id);
    const refused = await errorOf(g.admin.projects.update(p.id, { settings: { regions: { allowed: ["westeurope"] } } }, cur.etag));
    expect((refused as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refused as ApiError).problem?.errors?.[0]?.field).toBe("body.settings.regions.allowed");
    expect((refused as ApiError).problem?.errors?.[0]?.message).toContain(k.id);
    expect((await g.admin.projects.get(p.id)).settings ?? {}).toEqual({});

    // A model write to the same effect, and a tenant write: refused too.
    const refusedModel = await errorOf(g.model(p.id, "tier-rule-eu-only", { backend: { region: "westeurope" }, extra: { settings: { regions: { allowed: ["westeurope"] } } } }));
    expect((refusedModel as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    const refusedTenant = await errorOf(g.putServices({ contentSafety: CONTENT_SAFETY }, { regions: { allowed: ["westeurope"] } }));
    expect((refusedTenant as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refusedTenant as ApiError).problem?.errors?.[0]?.message).toContain(k.id);
    // No rule applies to the key's project: the tenant may move the service.
    expect(await reasonOf(g.putServices({ contentSafety: { url: "https://cs-brazil.cognitiveservices.azure.com", region: "brazilsouth" } }, {}))).toBe("200");
    await g.putServices({ contentSafety: CONTENT_SAFETY });
  });

  it("sharing a content-safety key into a project whose rule excludes the service is refused", async () => {
    const from = await g.project("tier-cs-source");
    await g.model(from.id, "source-model");
    const into = await g.project("tier-cs-target-eu", { settings: { regions: { allowed: ["westeurope"] } } });
    await g.model(into.id, "source-model", { backend: { region: "westeurope" } });
    await g.publish("source and target");
    const k = await g.key(dev, from.id, { name: "shared-guarded", limits: { contentSafety: "medium" } });
    const cur = await dev.keys.get(from.id, k.id);
    const refused = await errorOf(dev.keys.share(from.id, k.id, { projectId: into.id, justification: "use the EU model" }, cur.etag));
    expect((refused as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refused as ApiError).problem?.errors?.[0]?.field).toBe("body.projectId");
    expect((await dev.keys.get(from.id, k.id)).shares).toEqual([]);
  });

  it("a key written while the service stated no region is warned of in the preview, and stating an excluded region is refused", async () => {
    await g.putServices({ contentSafety: { url: CONTENT_SAFETY.url } });
    const p = await g.project("tier-cs-unstated", { settings: { regions: { allowed: ["westeurope"] } } });
    await g.model(p.id, "unstated-model", { backend: { region: "westeurope" } });
    await g.publish("no region stated");
    const k = await g.key(dev, p.id, { name: "before-region", limits: { contentSafety: "high" } });
    const preview = await g.admin.policy.preview(p.id, {});
    expect(preview.warnings?.some((w) => w.startsWith("key tier ") && w.includes("services.contentSafety states no region"))).toBe(true);

    const refused = await errorOf(g.putServices({ contentSafety: CONTENT_SAFETY }));
    expect((refused as ApiError).problem).toMatchObject({ status: 400, reason: "service_region_not_allowed" });
    expect((refused as ApiError).problem?.errors?.[0]?.field).toBe("body.services.contentSafety.region");
    expect((refused as ApiError).problem?.errors?.[0]?.message).toContain(k.id);
    expect(((await g.admin.settings.get()).services as { contentSafety?: { region?: string } }).contentSafety?.region).toBeUndefined();
    // In an allowed region it is stated, and the warning is gone.
    expect(await reasonOf(g.putServices({ contentSafety: { url: "https://cs-westeurope.cognitiveservices.azure.com", region: "westeurope" } }))).toBe("200");
    expect((await g.admin.policy.preview(p.id, {})).warnings ?? []).toEqual([]);
  });
});
