/**
 * Conformance: what the registry and governance settings say about models — lifecycle, regions,
 * A/B splits, pillars, exemptions — checked by requests through the local gateway.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localGatewayFolder } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import { backendId } from "../../src/pillars/models/compiler.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;
const key = (h: string) => ({ type: "apiKey" as const, header: "api-key" as const, key: `provider-key-${h}` });

beforeAll(async () => {
  g = await Governed.start("t-registry");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());

describe("conformance: models, regions, splits, pillars and exemptions at the local gateway", () => {
  it("deprecated models answer with Sunset and Deprecation; blocked models are not found", async () => {
    const p = await g.project("lifecycle");
    const old = await g.model(p.id, "gpt-35");
    await g.model(p.id, "gpt-4o");
    await g.publish("lifecycle");
    const k = (await g.key(dev, p.id, { name: "lifecycle" })).key;
    expect((await g.chat(p.id, k, "gpt-35")).headers.get("sunset")).toBeNull();
    const cur = await g.admin.models.get(p.id, old.id);
    const deprecated = await g.admin.models.update(p.id, old.id, { status: "deprecated", sunsetDate: "2099-06-30" }, cur.etag);
    await g.publish("deprecate");
    const answer = await g.chat(p.id, k, "gpt-35");
    expect(answer.status).toBe(200);
    expect(answer.headers.get("sunset")).toBe("Tue, 30 Jun 2099 00:00:00 GMT");
    expect(answer.headers.get("deprecation")).toBe(`@${Date.parse(`${deprecated.deprecatedAt}T00:00:00Z`) / 1000}`);
    expect((await g.chat(p.id, k, "gpt-4o")).headers.get("sunset")).toBeNull();
    await g.admin.models.update(p.id, old.id, { status: "blocked", sunsetDate: null }, deprecated.etag);
    await g.publish("block");
    const blocked = await g.chat(p.id, k, "gpt-35");
    expect([blocked.status, blocked.json.error?.code]).toEqual([404, "model_not_found"]);
  });

  it("only backends in allowed regions serve; a model with none left is refused", async () => {
    const p = await g.project("regions", { settings: { regions: { allowed: ["westeurope"] } } });
    await g.admin.models.create(p.id, {
      name: "gpt-4o",
      provider: "openai",
      modelName: "gpt-4o",
      backends: [
        { id: "us", url: "https://us.mock.localhost/v1", region: "eastus", credential: key("us") },
        { id: "eu", url: "https://eu.mock.localhost/v1", region: "westeurope", credential: key("eu") },
      ],
    });
    await g.admin.models.create(p.id, { name: "o3", provider: "openai", modelName: "o3", backends: [{ id: "us", url: "https://o3us.mock.localhost/v1", region: "eastus", credential: key("o3us") }] });
    await g.publish("regions");
    const k = (await g.key(dev, p.id, { name: "regions" })).key;
    for (let i = 0; i < 10; i++) expect((await g.chat(p.id, k, "gpt-4o")).headers.get("x-mock-instance")).toBe("eu.mock.localhost");
    expect(g.t.backends.requests("us.mock.localhost")).toHaveLength(0);
    const none = await g.chat(p.id, k, "o3");
    expect([none.status, none.json.error?.code]).toEqual([403, "model_unavailable_in_region"]);
  });

  it("an A/B split sends each version its share of requests", async () => {
    const p = await g.project("split");
    await g.admin.models.create(p.id, {
      name: "gpt-4o",
      provider: "openai",
      modelName: "gpt-4o",
      split: { variants: [{ version: "a", weight: 70 }, { version: "b", weight: 30 }] },
      backends: [
        { id: "a", version: "a", url: "https://va.mock.localhost/v1", region: "eastus", credential: key("va") },
        { id: "b", version: "b", url: "https://vb.mock.localhost/v1", region: "eastus", credential: key("vb") },
      ],
    });
    await g.publish("split");
    const k = (await g.key(dev, p.id, { name: "split" })).key;
    const n = 400;
    let a = 0;
    for (let i = 0; i < n; i++) if ((await g.chat(p.id, k, "gpt-4o")).headers.get("x-mock-instance") === "va.mock.localhost") a++;
    // Binomial(400, 0.7): mean 280, standard deviation ~9.2; five deviations either way.
    expect(a).toBeGreaterThan(280 - 46);
    expect(a).toBeLessThan(280 + 46);
    expect(g.t.backends.requests("va.mock.localhost").length + g.t.backends.requests("vb.mock.localhost").length).toBe(n);
  });

  it("a project with the models pillar off serves nothing; switched on again it serves", async () => {
    const p = await g.project("pillar");
    await g.model(p.id, "gpt-4o");
    await g.publish("pillar on");
    const k = (await g.key(dev, p.id, { name: "pillar" })).key;
    expect((await g.chat(p.id, k, "gpt-4o")).status).toBe(200);
    const cur = await g.admin.projects.get(p.id);
    const off = await g.admin.projects.update(p.id, { pillars: { models: false } }, cur.etag);
    await g.publish("pillar off");
    expect(refusal(await g.chat(p.id, k, "gpt-4o"))).toEqual(NOT_SERVED);
    await g.admin.projects.update(p.id, { pillars: { models: true } }, off.etag);
    await g.publish("pillar on again");
    expect((await g.chat(p.id, k, "gpt-4o")).status).toBe(200);
  });

  it("a new provider key goes live with the publish that ships its backend's URL, not at the gateway's Key Vault re-read before it", async () => {
    const p = await g.project("rekey");
    const model = await g.admin.models.create(p.id, { name: "gpt-4o", provider: "openai", modelName: "gpt-4o", backends: [{ id: "b0", url: "https://old-origin.mock.localhost/v1", region: "eastus", credential: { type: "apiKey", header: "api-key", key: "key-for-old-origin" } }] });
    await g.publish("rekey baseline");
    const k = (await g.key(dev, p.id, { name: "rekey" })).key;
    expect((await g.chat(p.id, k, "gpt-4o")).status).toBe(200);
    // Moved to another provider with a new key; not published yet.
    await g.admin.models.update(p.id, model.id, { backends: [{ id: "b0", url: "https://new-origin.mock.localhost/v1", region: "eastus", credential: { type: "apiKey", header: "api-key", key: "key-for-new-origin" } }] }, model.etag);
    // APIM re-reads Key Vault-backed named values on its own (within 4 hours): the local gateway's reload does the same.
    expect(await g.t.gateway.reload()).toEqual([]);
    expect((await g.chat(p.id, k, "gpt-4o")).status).toBe(200);
    const seenByOld = g.t.backends.requests("old-origin.mock.localhost").map((r) => r.headers["api-key"]);
    expect(seenByOld).toEqual(["key-for-old-origin", "key-for-old-origin"]);
    await g.publish("rekey");
    expect((await g.chat(p.id, k, "gpt-4o")).status).toBe(200);
    expect(g.t.backends.requests("new-origin.mock.localhost").map((r) => r.headers["api-key"])).toEqual(["key-for-new-origin"]);
    expect(g.t.backends.requests("old-origin.mock.localhost")).toHaveLength(2);
    // The publish wrote the new key's named value, switched the backend to it and then removed the old one.
    const prefix = g.names.namedValue(`nv-${backendId(model, "b0")}`);
    const files = readdirSync(join(localGatewayFolder(g.t.app.dataDir, "default"), "namedValues")).filter((f) => f.startsWith(prefix));
    expect(files).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(localGatewayFolder(g.t.app.dataDir, "default"), "namedValues", files[0]!), "utf8")).properties.keyVault.secretIdentifier).toMatch(/\/secrets\/model-[a-z0-9-]+\/[0-9a-zA-Z]+$/);
    expect(g.t.gateway.issues()).toEqual([]);
  });

  it("an exemption relaxes its control at the gateway while active, and its revocation restores it exactly", async () => {
    const p = await g.project("exempt", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    const k = (await g.key(dev, p.id, { name: "exempt" })).key;
    const burst = async () => {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await g.chat(p.id, k, "gpt-4o")).status);
      g.t.clock.advance(61_000);
      return statuses;
    };
    expect(await burst()).toEqual([200, 200, 429, 429]);
    const exemption = await g.exemptProject(dev, p.id, "tokens.perMinute", { kind: "limit", value: 1000 });
    expect(await burst()).toEqual([200, 200, 200, 200]);
    await g.revokeExemption(exemption);
    expect(await burst()).toEqual([200, 200, 429, 429]);
  });
});
