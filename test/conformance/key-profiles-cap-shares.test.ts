/**
 * Conformance: ending a share never takes a project past its cap on key profiles, and an ended key is
 * shared with nobody in what the API shows.
 *
 * - A key's profile includes the projects it is shared with, so ending a share gives it another profile.
 *   In a project already holding the most key profiles its gateway document holds, that profile must not
 *   be a new one the publish cannot compile (which would set the whole project aside: its policy no longer
 *   published, and the unshared key still working where it was shared). The profiles a share's end can give
 *   a key are held for it while it is shared, so an unshare is never refused and never overflows.
 * - A revoked key's shares read ended (revoked), and the key is no longer listed among the keys shared into
 *   the other project (whose record of it ends, audited and announced there).
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
  g = await Governed.start("t-cap-shares");
  dev = await g.as("dora", ["Developer"]);
});
afterAll(() => g.stop());


/** Keys with distinct profiles in the project until the cap refuses one (at most MAX_PROJECT_KEY_TIERS of them). */
async function fill(projectId: string, base: number): Promise<number> {
  for (let i = 0; i < MAX_PROJECT_KEY_TIERS; i++) {
    try {
      await dev.keys.create(projectId, { name: `filler ${i}`, limits: { tokensPerMinute: base + i } });
    } catch (err) {
      expect(await reasonOf(Promise.reject(err))).toBe("409 key_profiles_exhausted");
      return i;
    }
  }
  return MAX_PROJECT_KEY_TIERS;
}

/** Lets the system publishes that many key changes asked for be applied (each is one revision). */
async function quiet(): Promise<void> {
  await until(async () => {
    await g.t.app.host.invokeTimer("gatewayPublishSweep");
    return (await g.admin.policy.revisions({ maxPageSize: 50 })).items.every((r) => r.status !== "pending") ? true : undefined;
  }, "no revision pending", 180_000, 500);
}

describe("conformance: ending a share in a project full of key profiles", () => {
  it("an unshare is made, the project keeps publishing, and the key stops working where it was shared", async () => {
    const { home, there, k } = await g.sharedKey(dev, "full", "shared", 999);
    expect((await g.chat(there.id, k.key, "gpt-4o-mini")).status).toBe(200);
    // The home project filled with distinct profiles, as far as the cap lets it.
    const made = await fill(home.id, 2000);
    expect(made).toBeLessThan(MAX_PROJECT_KEY_TIERS);
    await quiet();
    await g.publish("home full");
    const before = await g.lastRevision();

    const unshared = await dev.keys.unshare(home.id, k.id, there.id, (await dev.keys.get(home.id, k.id)).etag);
    expect(unshared.shares.find((s) => s.projectId === there.id)?.status).toMatch(/^(revoked|revocationPending)$/);
    await g.synced(home.id, k.id);
    await quiet();
    await g.publish("after the unshare");
    // No project set aside by any publish since: the home project's policy is published as it is.
    expect(await g.isolatedSince(before)).toEqual([]);
    const key = await dev.keys.get(home.id, k.id);
    expect(key.shares.find((s) => s.projectId === there.id)?.status).toBe("revoked");
    expect(key.gateway.state).toBe("synced");
    expect(g.productLinks(g.names.product(home.id, key.gateway.profile))).toEqual([g.names.api(home.id)]);
    expect(g.policyXml(home.id)).toContain(key.gateway.profile);
    // The key works at home and no longer in the other project.
    expect((await g.chat(home.id, k.key, "gpt-4o-mini")).status).toBe(200);
    expect(refusal(await g.chat(there.id, k.key, "gpt-4o-mini"))).toEqual(NOT_SERVED);
    // A key with the settings of one there already is still made (no new profile).
    expect((await dev.keys.create(home.id, { name: "same as filler", limits: { tokensPerMinute: 2000 } })).id).toMatch(/^key_/);
  }, 240_000);
});

describe("conformance: a revoked key is shared with nobody in what the API shows", () => {
  it("its shares read revoked, the other project no longer lists it, and that project's record ends (audited, announced)", async () => {
    const home = await g.project("rv-home");
    const there = await g.project("rv-there");
    await g.publish("two more projects");
    const k = await g.key(dev, home.id, { name: "shared then revoked" });
    await g.shareAndApprove(dev, home.id, k.id, there.id);
    expect((await g.admin.keys.shared(there.id)).items.map((x) => x.id)).toContain(k.id);
    await dev.keys.revoke(home.id, k.id, { reason: "leaked" }, (await dev.keys.get(home.id, k.id)).etag);
    await g.synced(home.id, k.id);
    const key = await dev.keys.get(home.id, k.id);
    expect(key.status).toBe("revoked");
    expect(key.shares.map((s) => [s.projectId, s.status])).toEqual([[there.id, "revoked"]]);
    expect((await g.admin.keys.shared(there.id)).items.map((x) => x.id)).not.toContain(k.id);
    await g.t.relay();
    const ended = g.t.events().filter((e) => e.type === "aigov.key.share.ended.v1" && e.subject === `/tenants/t-cap-shares/projects/${there.id}/keys/shared/${k.id}`);
    expect(ended).toHaveLength(1);
    const audit = await g.admin.audit.list({ scope: there.id, resource: `/projects/${there.id}/keys/shared/${k.id}`, maxPageSize: 50 });
    expect(audit.items.map((r) => r.action)).toContain("key.share.end");
    // Its share cannot be ended again (it has ended), nor the key shared anew.
    expect(await reasonOf(dev.keys.unshare(home.id, k.id, there.id, (await dev.keys.get(home.id, k.id)).etag))).toBe("404 not_found");
  }, 120_000);
});
