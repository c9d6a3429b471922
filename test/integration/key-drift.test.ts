/**
 * A key's subscription edited at the gateway (an APIM portal edit by someone with APIM access) is read back
 * by the key lifecycle job, reported (audit record and `aigov.key.drift.detected.v1`) and put back as the
 * key says (ADR 008). Checked by requests through the local gateway; the edit is made to its files.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";
import { startTestApp, type TestApp } from "../support/app.js";

let t: TestApp;
let g: Governed;
let other: Governed;
let dev: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  g = await Governed.start("t-key-drift", t);
  other = await Governed.start("t-key-drift-other", t);
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => t.stop());

/** The subscription's file at the local gateway (ARM path mirrored), edited as a portal edit would. */
function edit(gov: Governed, keyId: string, change: (p: Record<string, unknown>) => void): void {
  const file = join(t.app.dataDir, "apim", "subscriptions", `${gov.names.subscription(keyId)}.json`);
  const body = JSON.parse(readFileSync(file, "utf8")) as { properties: Record<string, unknown> };
  change(body.properties);
  writeFileSync(file, JSON.stringify(body, null, 2));
}
const held = (gov: Governed, keyId: string) =>
  (JSON.parse(readFileSync(join(t.app.dataDir, "apim", "subscriptions", `${gov.names.subscription(keyId)}.json`), "utf8")) as { properties: { state: string; scope: string } }).properties;

const drifts = (keyId: string) => t.events().filter((e) => e.type === "aigov.key.drift.detected.v1" && (e.data as { keyId?: string }).keyId === keyId);

describe("key subscriptions edited at the gateway", () => {
  it("a suspended key set active in the portal is found by the lifecycle job, reported, and refused again", async () => {
    const p = await g.project("drift");
    await g.model(p.id, "gpt-4o");
    await g.publish("models");
    const k = await g.key(dev, p.id, { name: "suspended then revived" });
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);
    // Another tenant's suspended key, left alone: its read-back finds nothing, and nothing of it changes.
    const op = await other.project("elsewhere");
    await other.model(op.id, "gpt-4o");
    await other.publish("models");
    const ok = await other.key(other.admin, op.id, { name: "other tenant's" });
    await other.admin.keys.suspend(op.id, ok.id, { reason: "paused" }, (await other.admin.keys.get(op.id, ok.id)).etag);
    const otherBefore = readFileSync(join(t.app.dataDir, "apim", "subscriptions", `${other.names.subscription(ok.id)}.json`), "utf8");

    await dev.keys.suspend(p.id, k.id, { reason: "investigating" }, (await dev.keys.get(p.id, k.id)).etag);
    await g.settle();
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(401);

    edit(g, k.id, (s) => (s.state = "active"));
    await t.gateway.reload();
    // The hole: the portal edit lets the suspended key in, and the tenant's drift check does not look at keys.
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(200);

    await t.app.host.invokeTimer("keyLifecycle");
    await g.settle();
    expect(held(g, k.id).state).toBe("suspended");
    expect((await g.chat(p.id, k.key, "gpt-4o")).status).toBe(401);
    expect((await dev.keys.get(p.id, k.id))).toMatchObject({ status: "suspended", gateway: { state: "synced" } });

    await t.relay();
    expect(drifts(k.id).map((e) => e.data)).toEqual([expect.objectContaining({ keyId: k.id, projectId: p.id, differs: ["state"], held: expect.objectContaining({ state: "active" }) })]);
    const audit = await g.admin.audit.list({ scope: p.id, resource: `/projects/${p.id}/keys/${k.id}` });
    expect(audit.items.filter((a) => a.action === "key.drift.detect")).toEqual([expect.objectContaining({ actor: "system:keys" })]);
    // No secret, nor a fingerprint of one, in what is reported.
    for (const e of drifts(k.id)) expect(JSON.stringify(e.data)).not.toMatch(/Fingerprint|secretRef|primaryKey/);

    // Put back: the next runs find nothing more.
    await t.app.host.invokeTimer("keyLifecycle");
    await t.relay();
    expect(drifts(k.id)).toHaveLength(1);
    // The other tenant's key was read on its own gateway and is untouched.
    expect(drifts(ok.id)).toHaveLength(0);
    expect(readFileSync(join(t.app.dataDir, "apim", "subscriptions", `${other.names.subscription(ok.id)}.json`), "utf8")).toBe(otherBefore);
  });

  it("a subscription moved to another scope, and a revoked key's set active, are put back", async () => {
    const p = await g.project("drift scope");
    const gpt = await g.model(p.id, "gpt-4o");
    await g.model(p.id, "gpt-4o-mini");
    await g.publish("models");
    const narrow = await g.key(dev, p.id, { name: "one model", scopes: { models: [gpt.id] } });
    const scope = held(g, narrow.id).scope;
    expect(scope).toContain("/products/");
    expect((await g.chat(p.id, narrow.key, "gpt-4o-mini")).status).toBe(403);

    // Widened in the portal: the subscription moved from its product to the whole API.
    edit(g, narrow.id, (s) => (s.scope = `/apis/${g.names.api(p.id)}`));
    const revoked = await g.key(dev, p.id, { name: "revoked" });
    await dev.keys.revoke(p.id, revoked.id, { reason: "leaked" }, (await dev.keys.get(p.id, revoked.id)).etag);
    await g.synced(p.id, revoked.id);
    edit(g, revoked.id, (s) => (s.state = "active"));

    await t.app.host.invokeTimer("keyLifecycle");
    await g.settle();
    expect(held(g, narrow.id).scope).toBe(scope);
    expect(held(g, revoked.id).state).toBe("cancelled");
    expect((await g.chat(p.id, narrow.key, "gpt-4o")).status).toBe(200);
    expect((await g.chat(p.id, narrow.key, "gpt-4o-mini")).status).toBe(403);
    expect((await g.chat(p.id, revoked.key, "gpt-4o")).status).toBe(401);
    await t.relay();
    expect(drifts(narrow.id).map((e) => (e.data as { differs: string[] }).differs)).toEqual([["scope"]]);
    expect(drifts(revoked.id).map((e) => (e.data as { differs: string[] }).differs)).toEqual([["state"]]);
    expect((await dev.keys.get(p.id, revoked.id)).status).toBe("revoked");
  });
});
