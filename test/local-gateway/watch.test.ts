import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import type { GatewayArtifact } from "../../src/ports/gateway.js";
import { until } from "../support/until.js";
import { call, GatewayFolder, policies, startHarness, type Harness } from "./support.js";

/** An API that answers every GET /w/ping with the policy's own text: what the gateway serves is what it loaded last. */
const answering = (text: string): GatewayArtifact[] => [
  { kind: "api", id: "w", displayName: "w", path: "w", protocols: ["https"], subscriptionRequired: true, subscriptionKeyHeaderName: "api-key", operations: [{ id: "ping", displayName: "ping", method: "GET", urlTemplate: "/ping" }] },
  { kind: "policy", scope: { type: "api", apiId: "w" }, xml: policies(`<return-response><set-status code="200" reason="OK" /><set-body>${text}</set-body></return-response>`) },
  { kind: "subscription", id: "k", displayName: "k", scope: { type: "api", apiId: "w" }, state: "active", primaryKey: { name: "k", version: "1" }, secondaryKey: { name: "k2", version: "1" } },
];
/** What the harness's secret source answers for the subscription's primary key. */
const KEY = "secret:k:1";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("local gateway: watching its folder", () => {
  it("serves a publish without being told (the publish marker), and a hand edit of a file in place (the whole-folder look)", async () => {
    const folder = new GatewayFolder();
    h = await startHarness(folder, { watch: true, pollMs: 20 });
    const publisher = new FilePublisher(folder.root);
    const served = async () => (await call(h!.gateway, "/w/ping", { method: "GET", key: KEY })).text;

    const first = await publisher.publish(answering("first"), {});
    await until(async () => (await served()) === "first", "the publish served");
    await publisher.publish(answering("second"), first.hashes);
    await until(async () => (await served()) === "second", "the next publish served");

    // In place: same file, no rename, no marker. Seen by the look at every file.
    writeFileSync(join(folder.root, "apis/w/policies/policy.xml"), policies(`<return-response><set-status code="200" reason="OK" /><set-body>by hand</set-body></return-response>`));
    await until(async () => (await served()) === "by hand", "the hand edit served");
    expect(h.gateway.issues()).toEqual([]);
  });
});
