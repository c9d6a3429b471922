/**
 * Conformance: the window between a share's end and the key's move. Unshared, a key's profile changes (the
 * shared project is part of it), but its subscription stays on the old product — which links the project
 * it was shared with — until the gateway confirms the move. Every publish meanwhile keeps that project
 * applying the old tier (`publishedProfile`), so the key reaches it only with its own scope and limits,
 * never with that project's defaults and every model; and a publish that stops part-way after the move
 * leaves the key refused there, never let in ungoverned.
 *
 * The key is held on its old product by a real write failure of the file publisher: a directory where the
 * subscription's temporary file goes (`<file>.<pid>.tmp`, file-publisher.ts atomicWrite) makes every sync
 * of it fail, as a gateway refusing the move would.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-unshare");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());

const apim = () => join(g.t.app.dataDir, "apim");
/** A directory where `file` is written first (its temporary name): every write of `file` fails until it goes. */
function block(file: string): () => void {
  const tmp = `${file}.${process.pid}.tmp`;
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, "blocker"), "");
  return () => rmSync(tmp, { recursive: true, force: true });
}

describe("conformance: a key unshared but not yet moved", () => {
  it("keeps its own scope and limits in the project it was shared with until it moves, then is refused there; a publish stopped after the move lets nothing in", async () => {
    const home = await g.project("unshare-home");
    const there = await g.project("unshare-there");
    const mini = await g.model(home.id, "gpt-4o-mini");
    await g.model(home.id, "gpt-4o");
    await g.model(there.id, "gpt-4o-mini");
    await g.model(there.id, "gpt-4o");
    await g.publish("two projects");
    // The key: gpt-4o-mini only, 30 tokens a minute. The project it is shared into has neither rule.
    const k = await g.key(dev, home.id, { name: "shared", scopes: { models: [mini.id] }, limits: { tokensPerMinute: 30 } });
    const { approval } = await dev.keys.share(home.id, k.id, { projectId: there.id, justification: "evaluation" }, (await dev.keys.get(home.id, k.id)).etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(home.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(home.id, k.id);
    const sub = JSON.parse(readFileSync(join(apim(), "subscriptions", `${g.names.subscription(k.id)}.json`), "utf8")) as { properties: { scope: string } };
    const sharedProduct = sub.properties.scope.split("/").pop()!;
    expect(g.productLinks(sharedProduct)).toEqual([g.names.api(home.id), g.names.api(there.id)].sort());
    const inThere = (model: string) => g.chat(there.id, k.key, model, { words: 2, maxTokens: 8 });
    expect(refusal(await inThere("gpt-4o"))).toEqual({ status: 403, code: "model_not_allowed" });
    g.t.clock.advance(61_000);

    // The subscription cannot be written: the unshare's move, and every later sync, fails.
    const unblockSub = block(join(apim(), "subscriptions", `${g.names.subscription(k.id)}.json`));
    const unshared = await dev.keys.unshare(home.id, k.id, there.id, (await dev.keys.get(home.id, k.id)).etag);
    expect(unshared.shares[0]?.status).toBe("revocationPending");
    expect(unshared.gateway.state).not.toBe("synced");
    // Publishes meanwhile (the system's for the key's new profile, and an admin's): all complete.
    await g.settle();
    await g.publish("while the key waits");
    await g.t.app.host.invokeTimer("keyLifecycle").catch(() => undefined);
    await g.settle();
    expect((await g.admin.keys.get(home.id, k.id)).gateway.state).not.toBe("synced");
    // Still on the old product, which still links the other project; that project still applies its tier.
    expect(JSON.parse(readFileSync(join(apim(), "subscriptions", `${g.names.subscription(k.id)}.json`), "utf8")).properties.scope).toBe(sub.properties.scope);
    expect(g.productLinks(sharedProduct)).toContain(g.names.api(there.id));
    expect(g.policyXml(there.id)).toContain(sharedProduct.slice(sharedProduct.lastIndexOf("-") + 1));
    // At the gateway: the key's scope and its limit, never the project's defaults.
    expect(refusal(await inThere("gpt-4o"))).toEqual({ status: 403, code: "model_not_allowed" });
    expect([(await inThere("gpt-4o-mini")).status, (await inThere("gpt-4o-mini")).status, (await inThere("gpt-4o-mini")).status, (await inThere("gpt-4o-mini")).status]).toEqual([200, 200, 200, 429]);
    g.t.clock.advance(61_000);

    // The move goes through; the publish that drops the old product stops at the other project's policy.
    unblockSub();
    await g.synced(home.id, k.id);
    expect(refusal(await inThere("gpt-4o-mini"))).toEqual(NOT_SERVED);
    const unblockPolicy = block(join(apim(), "apis", g.names.api(there.id), "policies", "policy.xml"));
    const r = await g.admin.policy.publish({ reason: "after the move" });
    if (r.revision) {
      const done = await until(async () => {
        const rev = await g.admin.policy.revision(r.revision!.id);
        return rev.status === "pending" ? undefined : rev;
      }, "the publish after the move to end");
      expect(["failed", "published"]).toContain(done.status);
    }
    await g.t.gateway.reload();
    for (const model of ["gpt-4o", "gpt-4o-mini"]) expect(refusal(await inThere(model)), model).toEqual(NOT_SERVED);
    expect((await g.chat(home.id, k.key, "gpt-4o-mini")).status).toBe(200);
    expect(refusal(await g.chat(home.id, k.key, "gpt-4o"))).toEqual({ status: 403, code: "model_not_allowed" });
    // Once it completes, the old product is gone.
    unblockPolicy();
    await g.publish("after the move, again");
    expect(existsSync(join(apim(), "products", `${sharedProduct}.json`))).toBe(false);
    for (const model of ["gpt-4o", "gpt-4o-mini"]) expect(refusal(await inThere(model)), model).toEqual(NOT_SERVED);
  });

  it("a shared key whose exemption ended keeps reaching the project it is shared with, there with that project's limits, until it moves off the exemption's product", async () => {
    const own = await g.project("exempt-ends-own", { settings: { tokens: { perMinute: { limit: 100, per: "key" } } } });
    const there = await g.project("exempt-ends-there", { settings: { tokens: { perMinute: { limit: 20, per: "key" } } } });
    const mini = await g.model(own.id, "gpt-4o-mini");
    await g.model(own.id, "gpt-4o");
    await g.model(there.id, "gpt-4o-mini");
    await g.model(there.id, "gpt-4o");
    await g.publish("two projects");
    const k = await g.key(dev, own.id, { name: "shared, exempted", scopes: { models: [mini.id] } });
    const { approval } = await dev.keys.share(own.id, k.id, { projectId: there.id, justification: "evaluation" }, (await dev.keys.get(own.id, k.id)).etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(own.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(own.id, k.id);
    const exemptionId = await g.exemptKey(dev, own.id, k.id, 1000);
    const subFile = join(apim(), "subscriptions", `${g.names.subscription(k.id)}.json`);
    const scopeOf = () => (JSON.parse(readFileSync(subFile, "utf8")) as { properties: { scope: string } }).properties.scope;
    const before = scopeOf();
    await until(async () => {
      await g.t.app.host.invokeTimer("keyLifecycle");
      await g.settle();
      return scopeOf() !== before ? true : undefined;
    }, "key on the exemption tier");
    const exemptionProduct = scopeOf().split("/").pop()!;
    expect(g.productLinks(exemptionProduct)).toEqual([g.names.api(own.id), g.names.api(there.id)].sort());
    g.t.clock.advance(61_000);
    const callThere = (model = "gpt-4o-mini") => g.chat(there.id, k.key, model, { words: 2, maxTokens: 8 });
    expect([(await callThere()).status, (await callThere()).status, (await callThere()).status]).toEqual([200, 200, 429]);
    g.t.clock.advance(61_000);

    // The exemption ends while the key cannot move off its product.
    const unblock = block(subFile);
    try {
      await g.admin.exemptions.revoke(exemptionId, { reason: "done" }, (await g.admin.exemptions.get(exemptionId)).etag);
      // (Its publish changes nothing while the key is on the exemption's product: that product stays as it is.)
      await g.settle();
      await g.t.app.host.invokeTimer("keyLifecycle").catch(() => undefined);
      await g.settle();
      expect(scopeOf().split("/").pop()).toBe(exemptionProduct);
      // Still shared: the key reaches that project, with its scope and that project's 20 a minute — not refused as a stranger.
      expect(g.productLinks(exemptionProduct)).toContain(g.names.api(there.id));
      expect(refusal(await callThere("gpt-4o"))).toEqual({ status: 403, code: "model_not_allowed" });
      expect([(await callThere()).status, (await callThere()).status, (await callThere()).status]).toEqual([200, 200, 429]);
      g.t.clock.advance(61_000);
    } finally {
      unblock();
    }
    await g.synced(own.id, k.id);
    expect(scopeOf().split("/").pop()).not.toBe(exemptionProduct);
    expect([(await callThere()).status, (await callThere()).status, (await callThere()).status]).toEqual([200, 200, 429]);
  });
});
