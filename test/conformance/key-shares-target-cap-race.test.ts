/**
 * Conformance (ADR 008): the key tiers a project accepts from keys shared into it — (source project,
 * profile) pairs, with the profiles the shares' ends would leave them with — never go past the most its
 * gateway document holds (MAX_PROJECT_KEY_TIERS), even when two shares from different projects are approved
 * into it at the same instant. The cap lives with the target project, but each share is written in its key's
 * own project: of two shares racing for the target's last place, one is made and the other is not (its
 * share reads rejected). The interleaving is forced, not timed: the second share is approved and settled
 * while the first one's write is held (a store seam).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { overrideServices } from "../../src/app/services.js";
import { MAX_PROJECT_KEY_TIERS } from "../../src/policy/input.js";
import type { BatchOp } from "../../src/ports/store.js";
import { reasonOf } from "../support/errors.js";
import { until } from "../support/until.js";
import { Governed } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;

beforeAll(async () => {
  g = await Governed.start("t-share-cap-race");
  dev = await g.as("dora", ["Developer"]);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

/** A key of its own profile in `home`, shared (approved) with each of `into`. */
async function sharedWithAll(home: string, tokensPerMinute: number, into: string[]): Promise<string> {
  const k = await dev.keys.create(home, { name: `shared ${tokensPerMinute}`, limits: { tokensPerMinute } });
  for (const target of into) await g.shareAndApprove(dev, home, k.id, target);
  return k.id;
}

async function shareStatus(projectId: string, keyId: string, into: string): Promise<string | undefined> {
  return (await g.admin.keys.get(projectId, keyId)).shares.find((s) => s.projectId === into)?.status;
}

const settled = (projectId: string, keyId: string, into: string) =>
  until(async () => {
    const s = await shareStatus(projectId, keyId, into);
    return s === "active" || s === "rejected" ? s : undefined;
  }, `share of ${keyId} into ${into} settled`);

describe("conformance: the last key tier a project accepts, taken by shares from two projects at once", () => {
  it("one share is made, the other is not, and a share asked for after them is refused", async () => {
    const target = await g.project("cap-target");
    const others = [];
    for (let i = 0; i < 4; i++) others.push((await g.project(`cap-other-${i}`)).id);
    const [h1, h2, h3, a, b] = await Promise.all(["cap-h1", "cap-h2", "cap-h3", "cap-a", "cap-b"].map((n) => g.project(n)));
    // The target accepts MAX - 1 places: a key shared with it and k others holds 2^k of them (every
    // combination of its other shares' ends keeps it shared with the target).
    await sharedWithAll(h1!.id, 1001, [target.id, ...others]); // 16
    await sharedWithAll(h2!.id, 1002, [target.id, ...others]); // 32
    await sharedWithAll(h3!.id, 1003, [target.id, others[0]!, others[1]!]); // 36
    await sharedWithAll(h3!.id, 1004, [target.id, others[0]!]); // 38
    await sharedWithAll(h3!.id, 1005, [target.id]); // 39
    expect(MAX_PROJECT_KEY_TIERS).toBe(40);

    // Two keys of two other projects ask to be shared with the target: each fits alone.
    const ka = (await dev.keys.create(a!.id, { name: "racer a", limits: { tokensPerMinute: 3001 } })).id;
    const kb = (await dev.keys.create(b!.id, { name: "racer b", limits: { tokensPerMinute: 3002 } })).id;
    const asked = async (projectId: string, keyId: string) => (await dev.keys.share(projectId, keyId, { projectId: target.id, justification: "evaluation" }, (await dev.keys.get(projectId, keyId)).etag)).approval;
    const approvalA = await asked(a!.id, ka);
    const approvalB = await asked(b!.id, kb);

    // A's share is approved; as its key's write is about to land, B's is approved and settles.
    let inBetween: string | undefined;
    overrideServices({
      beforeBatch: async (_p, ops: readonly BatchOp[]) => {
        const settling = ops.some((o) => o.kind === "replace" && o.doc.id === ka && (o.doc.shares as { status: string }[] | undefined)?.some((x) => x.status === "active"));
        if (inBetween !== undefined || !settling) return;
        inBetween = "";
        await g.admin.approvals.decide(approvalB.id, { decision: "approve", justification: "ok" }, approvalB.etag);
        inBetween = await settled(b!.id, kb, target.id);
      },
    });
    let first: string;
    try {
      await g.admin.approvals.decide(approvalA.id, { decision: "approve", justification: "ok" }, approvalA.etag);
      first = await settled(a!.id, ka, target.id);
    } finally {
      overrideServices({});
    }
    expect(inBetween).toBeDefined();
    // Exactly one of them took the target's last place: A's, held for it while its key was written.
    expect({ first, inBetween }).toEqual({ first: "active", inBetween: "rejected" });
    expect((await g.admin.keys.shared(target.id)).items.map((k) => k.id).filter((id) => id === ka || id === kb)).toEqual([ka]);
    // The place held while A's key was written is given back once the key and the target's record of it are (the record holds it now).
    const { resource: guard } = await g.t.container().item("keyTierGuard", [g.tenant, target.id]).read<{ acceptedPlaces?: Record<string, unknown> }>();
    expect(guard?.acceptedPlaces ?? {}).toEqual({});
    // The target is full: another key's share is refused when asked for.
    const kc = (await dev.keys.create(a!.id, { name: "late", limits: { tokensPerMinute: 3003 } })).id;
    expect(await reasonOf(dev.keys.share(a!.id, kc, { projectId: target.id, justification: "evaluation" }, (await dev.keys.get(a!.id, kc)).etag))).toBe("409 key_profiles_exhausted");
  }, 300_000);
});
