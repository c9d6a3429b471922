/**
 * Conformance (ADR 026): a key created by a person while their project role is being removed does not
 * outlive the removal. The interleaving is forced, not timed: the key's write is held (a store seam) until
 * the removal — its write and its suspensions of the leaver's keys — has finished, so the removal cannot
 * have listed the key. The key must end suspended as the leaver's (checked at the gateway, in the stored
 * key and in its events), and giving the role back resumes it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import type { BatchOp } from "../../src/ports/store.js";
import { reasonOf } from "../support/errors.js";
import { Governed } from "../support/governed.js";

let g: Governed;
let dora: AigovClient; // a Developer only through the project's assignment

beforeAll(async () => {
  g = await Governed.start("t-leaver-race");
  dora = await g.as("dora", []);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

const createsDorasKey = (ops: readonly BatchOp[]) => ops.some((o) => o.kind === "create" && o.doc.docType === "virtualKey" && o.doc.owner === "dora");

describe("a key created while its owner's project role is removed", () => {
  it("is suspended as the leaver's, though the removal's suspensions ran before the key was written", async () => {
    const p = await g.project("leaver-race", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] });
    await g.model(p.id, "gpt-4o-mini");
    await g.publish("leaver-race");

    let removed = false;
    overrideServices({
      beforeBatch: async (_partition, ops) => {
        if (removed || !createsDorasKey(ops)) return;
        removed = true;
        // Dora's create passed its checks; before its key is written, an admin moves her to Reader (the
        // update's suspensions of her keys run, and find none).
        await g.admin.projects.update(p.id, { roleAssignments: [{ principalId: "dora", role: "Reader" }] }, (await g.admin.projects.get(p.id)).etag);
      },
    });
    let created;
    try {
      created = await dora.keys.create(p.id, { name: "late" });
    } finally {
      overrideServices({});
    }
    expect(removed).toBe(true);
    await g.synced(p.id, created.id);

    const { resource } = await g.t.container().item(created.id, [g.tenant, p.id]).read<{ status: string; suspendedBy?: string }>();
    expect(resource).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    expect((await g.chat(p.id, created.key, "gpt-4o-mini")).status).toBe(401);
    await g.t.relay();
    expect(g.t.events().filter((e) => (e.data as { keyId?: string } | undefined)?.keyId === created.id).map((e) => e.type)).toContain("aigov.key.suspended.v1");
    // Nobody but the role given back brings it back: an admin's resume is refused.
    expect(await reasonOf(g.admin.keys.resume(p.id, created.id, { reason: "x" }, (await g.admin.keys.get(p.id, created.id)).etag))).toBe("409 key_owner_without_role");

    // The role given back resumes it.
    await g.admin.projects.update(p.id, { roleAssignments: [{ principalId: "dora", role: "Developer" }] }, (await g.admin.projects.get(p.id)).etag);
    await g.synced(p.id, created.id);
    expect((await g.chat(p.id, created.key, "gpt-4o-mini")).status).toBe(200);
  }, 180_000);
});
