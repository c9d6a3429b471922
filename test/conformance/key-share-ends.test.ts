/**
 * Conformance: what a share leaves behind once the key ends, and what the project it was shared with is
 * told about the key.
 *
 * - A revoked key is shared with nobody: its shared profile leaves the other project's compiled policy
 *   (the product no longer links that project's API) and frees its place among the tiers that project
 *   accepts, so a share the cap refused before the revocation is made after it.
 * - The other project's admin, who may end a share into their project, sees of the key only the share
 *   into their project (in the unshare's answer and in the list of keys shared into their project) —
 *   never the key's shares with projects they may not see.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { MAX_PROJECT_KEY_TIERS } from "../../src/policy/input.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";
import { reasonOf } from "../support/errors.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-share-ends");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());


describe("conformance: a revoked key is shared with nobody", () => {
  it("its shared profile leaves the other project's policy and product links; the key is refused there", async () => {
    const { home, there, k } = await g.sharedKey(dev, "ends", "shared then revoked", 1000);
    const profile = (await dev.keys.get(home.id, k.id)).gateway.profile;
    const product = g.names.product(home.id, profile);
    expect(g.productLinks(product)).toEqual([g.names.api(home.id), g.names.api(there.id)].sort());
    expect(g.policyXml(there.id)).toContain(profile);
    expect((await g.chat(there.id, k.key, "gpt-4o-mini")).status).toBe(200);

    await dev.keys.revoke(home.id, k.id, { reason: "leaked" }, (await dev.keys.get(home.id, k.id)).etag);
    await g.synced(home.id, k.id);
    await g.publish("after the revocation");
    expect((await g.admin.keys.get(home.id, k.id)).status).toBe("revoked");
    // The other project accepts the profile no more: its policy does not name it, the product does not link its API.
    expect(g.policyXml(there.id)).not.toContain(profile);
    expect(g.productLinks(product)).not.toContain(g.names.api(there.id));
    expect(refusal(await g.chat(there.id, k.key, "gpt-4o-mini"))).toEqual(NOT_SERVED);
    expect(refusal(await g.chat(home.id, k.key, "gpt-4o-mini"))).toEqual(NOT_SERVED);
  });

  it("frees its place among the tiers the other project accepts: a share refused by the cap before the revocation is made after it", async () => {
    const crowded = await g.project("cap-target");
    const from = await g.project("cap-from");
    const from2 = await g.project("cap-from-2");
    const other = await g.project("cap-other");
    // MAX_PROJECT_KEY_TIERS distinct profiles shared into the target, half from each of two projects (a key
    // shared is a new profile in its own project too: one project alone has no room for all of them).
    const keys = [];
    const keys2 = [];
    for (let i = 0; i < MAX_PROJECT_KEY_TIERS / 2; i++) {
      keys.push(await dev.keys.create(from.id, { name: `k${i}`, limits: { tokensPerMinute: 1000 + i } }));
      keys2.push(await dev.keys.create(from2.id, { name: `k${i}`, limits: { tokensPerMinute: 2000 + i } }));
    }
    for (const k of keys) await g.shareAndApprove(dev, from.id, k.id, crowded.id);
    for (const k of keys2) await g.shareAndApprove(dev, from2.id, k.id, crowded.id);
    const extra = await dev.keys.create(other.id, { name: "one more", limits: { tokensPerMinute: 5000 } });
    const ask = async () => dev.keys.share(other.id, extra.id, { projectId: crowded.id, justification: "evaluation" }, (await dev.keys.get(other.id, extra.id)).etag);
    expect(await reasonOf(ask())).toBe("409 key_profiles_exhausted");

    // One of them revoked: its place is free.
    await dev.keys.revoke(from.id, keys[0]!.id, { reason: "no longer needed" }, (await dev.keys.get(from.id, keys[0]!.id)).etag);
    const { approval } = await ask();
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    const made = await until(async () => {
      const s = (await dev.keys.get(other.id, extra.id)).shares[0]?.status;
      return s === "pending" ? undefined : s;
    }, "the share decided");
    expect(made).toBe("active");
    // The whole target compiles and is published with the new share (never set aside past the cap).
    await g.publish("the crowded project");
    const extraProfile = (await dev.keys.get(other.id, extra.id)).gateway.profile;
    expect(g.policyXml(crowded.id)).toContain(extraProfile);
    expect(g.policyXml(crowded.id)).not.toContain((await dev.keys.get(from.id, keys[0]!.id)).gateway.profile);
   }, 240_000);
});

describe("conformance: the other project's admin sees only the share into their project", () => {
  it("in the unshare's answer and in the list of keys shared into their project", async () => {
    const home = await g.project("view-home");
    // adam administers project a only (a ProjectAdmin assigned on it): he may end shares into it.
    const a = await g.project("view-a", { roleAssignments: [{ principalId: "adam", role: "ProjectAdmin" }] });
    const b = await g.project("view-b");
    const k = await dev.keys.create(home.id, { name: "shared twice" });
    await g.shareAndApprove(dev, home.id, k.id, a.id);
    await g.shareAndApprove(dev, home.id, k.id, b.id);
    const aAdmin = await g.as("adam", []);
    // adam cannot read the key in its own project, nor project b.
    expect(await reasonOf(aAdmin.keys.get(home.id, k.id))).toMatch(/^40[34]/);
    const listed = (await aAdmin.keys.shared(a.id)).items.find((x) => x.id === k.id)!;
    expect(listed.shares.map((s) => s.projectId)).toEqual([a.id]);
    expect(JSON.stringify(listed)).not.toContain(b.id);
    const unshared = await aAdmin.keys.unshare(home.id, k.id, a.id, listed.etag);
    expect(unshared.shares.map((s) => s.projectId)).toEqual([a.id]);
    expect(JSON.stringify(unshared)).not.toContain(b.id);
    // The key's owner still sees every share.
    expect((await dev.keys.get(home.id, k.id)).shares.map((s) => s.projectId).sort()).toEqual([a.id, b.id].sort());
  });
});
