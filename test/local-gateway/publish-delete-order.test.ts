/**
 * A publish that removes a governed API and the product that links it, stopped after every single step
 * (a publish sent in slices, PUBLISH_SLICE_SECONDS, stops exactly so): at no step does the local gateway
 * serve a call that both the old state (the policies refuse it) and the new one (no API) refuse. APIM
 * deletes an API's or a product's policy with it, so a policy whose owner goes too is removed with its
 * owner, never before it: deleting it first left the API (with its serviceUrl) reachable by the product's
 * keys with no policy at all until the product and the API were gone — and with APIM, which refuses to
 * delete a product that still has subscriptions, until the keys had moved.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import type { ArtifactRef, GatewayArtifact } from "../../src/ports/gateway.js";
import { call, GatewayFolder, policies, startHarness, type Harness } from "./support.js";

const UPSTREAM = "agent.mock.localhost";
const api: GatewayArtifact = {
  kind: "api",
  id: "aigov-x-agent",
  displayName: "an agent",
  path: "aigov/x/agent",
  protocols: ["https"],
  subscriptionRequired: true,
  subscriptionKeyHeaderName: "api-key",
  serviceUrl: `https://${UPSTREAM}/base`,
  operations: [{ id: "post", method: "POST", urlTemplate: "/*", displayName: "POST" }],
};
const refuseUnless = (header: string, value: string, reason: string) =>
  `<check-header name="${header}" failed-check-httpcode="403" failed-check-error-message="${reason}" ignore-case="false"><value>${value}</value></check-header>`;
const apiPolicy: GatewayArtifact = { kind: "policy", scope: { type: "api", apiId: "aigov-x-agent" }, xml: policies(refuseUnless("x-aigov-data-class", "internal", "data_class_not_allowed")) };
const product: GatewayArtifact = { kind: "product", id: "aigov-x-tier", displayName: "tier", subscriptionRequired: true, approvalRequired: false, state: "published", apis: ["aigov-x-agent"] };
const productPolicy: GatewayArtifact = { kind: "policy", scope: { type: "product", productId: "aigov-x-tier" }, xml: policies(refuseUnless("x-tier", "gold", "tier_refused")) };
const subscription: GatewayArtifact = {
  kind: "subscription",
  id: "aigov-x-key",
  displayName: "a key",
  scope: { type: "product", productId: "aigov-x-tier" },
  state: "active",
  primaryKey: { name: "key", version: "v1" },
  secondaryKey: { name: "key", version: "v2" },
};
const KEY = "secret:key:v1";

let folder: GatewayFolder;
let h: Harness;
let publisher: FilePublisher;

beforeAll(async () => {
  folder = new GatewayFolder();
  h = await startHarness(folder);
  publisher = new FilePublisher(folder.root, { resolveSecret: async (ref) => `secret:${ref.name}:${ref.version}` });
});
afterAll(async () => {
  await h.close();
});

async function send() {
  await h.gateway.reload();
  return call(h.gateway, "/aigov/x/agent/a2a", { key: KEY, body: { hello: "world" } });
}

describe("deleting a governed API and its product, one step at a time", () => {
  it("every step refuses what the policies refused; nothing reaches the API's serviceUrl", async () => {
    const first = await publisher.publish([api, apiPolicy, product, productPolicy], {});
    // The key's subscription is written apart from the publish (a key's sync), and stays while the publish runs.
    await publisher.publish([subscription], {});
    expect((await send()).status).toBe(403);
    expect(h.mocks.requests(UPSTREAM)).toHaveLength(0);

    let previous: Record<ArtifactRef, string> = first.hashes;
    const seen: { step: number; status: number }[] = [];
    for (let step = 1; step < 20; step++) {
      const out = await publisher.publish([], previous, { spent: () => true });
      previous = out.hashes;
      seen.push({ step, status: (await send()).status });
      if (out.remaining === undefined) break;
    }
    expect(Object.keys(previous)).toEqual([]);
    expect(h.mocks.requests(UPSTREAM)).toHaveLength(0);
    // Refused at every step: by the policies while the product stands (403), then for want of the product
    // (401: the key is scoped to it), then for want of the API (404: nothing serves the path).
    expect(seen).toEqual([
      { step: 1, status: 401 },
      { step: 2, status: 404 },
    ]);
  });

  it("a publish that stops at the product's delete (APIM refuses it while a key is on it) leaves the API governed", async () => {
    const root = mkdtempSync(join(tmpdir(), "aigov-gw-order-"));
    const p = new FilePublisher(root, { resolveSecret: async (ref) => `secret:${ref.name}:${ref.version}` });
    const first = await p.publish([api, apiPolicy, product, productPolicy], {});
    // Stop right before the product's own delete: whatever ran before it is what the gateway holds while APIM refuses it.
    let previous: Record<ArtifactRef, string> = first.hashes;
    for (let step = 0; step < 20 && previous["product:aigov-x-tier"] !== undefined; step++) {
      const out = await p.publish([], previous, { spent: () => true });
      if (out.hashes["product:aigov-x-tier"] === undefined) break;
      previous = out.hashes;
    }
    // What stands until the product can go: the API's and the product's policies are still there.
    expect(Object.keys(previous).sort()).toEqual(["api:aigov-x-agent", "policy:api/aigov-x-agent", "policy:product/aigov-x-tier", "product:aigov-x-tier"]);
  });
});
