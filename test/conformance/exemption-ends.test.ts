/**
 * Conformance: a key-scope exemption at the local gateway — it relaxes the exempted key only, and the key's
 * limit comes back when the exemption is revoked or expires (the key lifecycle job moves the key back, ADR 007).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const HOUR = 3_600_000;
let t: TestApp;
let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  t = await startTestApp();
  overrideServices({ clock: t.appClock });
  g = await Governed.start("t-exm-ends", t);
  dev = await g.as("dora", ["Developer"]);
});
afterAll(async () => {
  overrideServices({});
  await t.stop();
});

async function burst(projectId: string, key: string, n: number, model = "gpt-4o"): Promise<number[]> {
  const statuses = [];
  for (let i = 0; i < n; i++) statuses.push((await g.chat(projectId, key, model, { words: 2, maxTokens: 8 })).status);
  g.t.clock.advance(61_000);
  return statuses;
}

/** A key's tokens-per-minute waiver (olga's), ending `ms` from now on the app's clock, active and at the gateway. */
const keyExemption = (projectId: string, keyId: string, value: number, ms: number) => g.exemptKey(dev, projectId, keyId, value, { owner: "olga", ms, now: () => t.appClock.ms() });

/** Runs the key lifecycle job and the publish sweep until `f` holds (keys move within a minute). */
async function reconciled(what: string, f: () => Promise<boolean>): Promise<void> {
  await until(async () => {
    await g.t.app.host.invokeTimer("keyLifecycle");
    await g.settle();
    return (await f()) ? true : undefined;
  }, what);
}

describe("key exemptions end at the gateway", () => {
  it("a revoked key exemption gives the key its limit back; other keys never had it", async () => {
    const p = await g.project("key-revoke", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    const k = await g.key(dev, p.id, { name: "exempted" });
    const other = await g.key(dev, p.id, { name: "other" });
    expect(await burst(p.id, k.key, 4)).toEqual([200, 200, 429, 429]);
    const id = await keyExemption(p.id, k.id, 1000, 3 * 24 * HOUR);
    await reconciled("key on the exemption tier", async () => (await burst(p.id, k.key, 4)).every((s) => s === 200));
    expect(await burst(p.id, other.key, 4)).toEqual([200, 200, 429, 429]);
    // A key exemption's end changes no artifact (its tier stays compiled until the key has moved back): no
    // system publish to wait for; the lifecycle job moves the key back.
    await g.admin.exemptions.revoke(id, { reason: "done" }, (await g.admin.exemptions.get(id)).etag);
    await reconciled("key back on its limit", async () => JSON.stringify(await burst(p.id, k.key, 4)) === JSON.stringify([200, 200, 429, 429]));
    expect(await burst(p.id, other.key, 4)).toEqual([200, 200, 429, 429]);
  }, 120_000);

  it("an expired key exemption gives the key its limit back", async () => {
    const p = await g.project("key-expire", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    await g.model(p.id, "gpt-4o");
    await g.publish("baseline");
    const k = await g.key(dev, p.id, { name: "exempted" });
    const id = await keyExemption(p.id, k.id, 1000, 2 * HOUR);
    await reconciled("key on the exemption tier", async () => (await burst(p.id, k.key, 4)).every((s) => s === 200));
    t.appClock.advance(3 * HOUR);
    g.t.clock.advance(3 * HOUR);
    await t.app.host.invokeTimer("exemptionSweep");
    await reconciled("key back on its limit", async () => JSON.stringify(await burst(p.id, k.key, 4)) === JSON.stringify([200, 200, 429, 429]));
    expect((await g.admin.exemptions.get(id)).status).toBe("expired");
  }, 120_000);
});
