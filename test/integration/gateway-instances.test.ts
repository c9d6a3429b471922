/**
 * Tenants and gateway instances: a tenant assigned its own instance publishes there (locally a folder
 * of its own, served by its own local gateway); a gateway key held by another tenant is refused.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError } from "../../src/client/index.js";
import { tenantGatewayKey } from "../../src/policy/names.js";
import { Governed } from "../support/governed.js";
import { startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;

beforeAll(async () => {
  // t-squatter is given, by an operator's mistake, the key t-first derives for itself.
  process.env.GATEWAY_INSTANCES = JSON.stringify({ eu: {} });
  process.env.GATEWAY_ASSIGNMENTS = JSON.stringify({ "t-eu": { instance: "eu" }, "t-squatter": { key: tenantGatewayKey("t-first") } });
  t = await startTestApp();
});
afterAll(async () => {
  delete process.env.GATEWAY_INSTANCES;
  delete process.env.GATEWAY_ASSIGNMENTS;
  await t.stop();
});

describe("gateway instances and keys", () => {
  it("a tenant assigned its own instance publishes there and is served there, not on the default gateway", async () => {
    const eu = await Governed.start("t-eu", t);
    const p = await eu.project("eu project");
    await eu.model(p.id, "gpt-4o");
    await eu.publish("to eu");
    const euRoot = join(t.app.dataDir, "apim-eu");
    expect(readdirSync(join(euRoot, "apis"))).toContain(`${eu.names.api(p.id)}.json`);
    expect(existsSync(join(t.app.dataDir, "apim", "apis", `${eu.names.api(p.id)}.json`))).toBe(false);
    const dev = await eu.as("dora", ["Developer"]);
    const k = await dev.keys.create(p.id, { name: "eu key" });
    await eu.synced(p.id, k.id);
    const euGateway = t.app.gateways.get("eu")!;
    await euGateway.reload();
    const call = (base: string) =>
      fetch(`${base}/${eu.names.apiPath(p.id)}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", "api-key": k.key }, body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }) });
    expect((await call(euGateway.url)).status).toBe(200);
    // The default instance serves nothing of this tenant: the answer to a path nobody serves (ADR 023).
    const elsewhere = await call(t.gateway.url);
    expect({ status: elsewhere.status, code: ((await elsewhere.json()) as { error?: { code?: string } }).error?.code }).toEqual({ status: 401, code: "key_not_accepted" });
  });

  it("refuses to publish under a gateway key another tenant holds on the instance (409 gateway_key_collision), writing nothing", async () => {
    const first = await Governed.start("t-first", t);
    const p = await first.project("first");
    await first.model(p.id, "gpt-4o");
    await first.publish("first");
    const squatter = await Governed.start("t-squatter", t);
    await squatter.project("squatter");
    const before = readdirSync(join(t.app.dataDir, "apim", "apis")).sort();
    const refused = await squatter.admin.policy.publish({ reason: "collide" }).catch((e: unknown) => e as ApiError);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).problem).toMatchObject({ status: 409, reason: "gateway_key_collision" });
    expect((await squatter.admin.policy.revisions()).items).toEqual([]);
    expect(readdirSync(join(t.app.dataDir, "apim", "apis")).sort()).toEqual(before);
  });
});
