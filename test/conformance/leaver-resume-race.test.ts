/**
 * Conformance (ADR 026): a key its owner suspended themselves, and resumes while their project role is
 * being removed, does not outlive the removal. The removal skips keys a person suspended (that suspension
 * stays the person's), so a resume that passed its checks before the removal and is written after it would
 * bring the key back for someone who holds no key-holding role on the project. The interleaving is forced,
 * not timed: the resume's write is held (a store seam) until the removal's write of the project has landed
 * (what the removal then does to the leaver's keys queues behind the held write: the change writer commits
 * one batch at a time per partition). The key must end suspended as the leaver's (at the gateway, in the
 * stored key and in its events), and giving the role back resumes it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import type { BatchOp } from "../../src/ports/store.js";
import { reasonOf } from "../support/errors.js";
import { until } from "../support/until.js";
import { Governed } from "../support/governed.js";

let g: Governed;
let dora: AigovClient; // a Developer only through the project's assignment

beforeAll(async () => {
  g = await Governed.start("t-leaver-resume");
  dora = await g.as("dora", []);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

const resumesDorasKey = (keyId: string) => (ops: readonly BatchOp[]) => ops.some((o) => o.kind === "replace" && o.doc.docType === "virtualKey" && o.doc.id === keyId && o.doc.status === "active");

describe("a key its owner resumes while their project role is removed", () => {
  it("is suspended as the leaver's when the resume is written after the removal's write of the project", async () => {
    const p = await g.project("leaver-resume", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] });
    await g.model(p.id, "gpt-4o-mini");
    await g.publish("leaver-resume");
    const k = await g.key(dora, p.id, { name: "paused" });
    expect((await g.chat(p.id, k.key, "gpt-4o-mini")).status).toBe(200);
    await dora.keys.suspend(p.id, k.id, { reason: "not needed this week" }, (await dora.keys.get(p.id, k.id)).etag);
    await g.synced(p.id, k.id);
    expect((await g.chat(p.id, k.key, "gpt-4o-mini")).status).toBe(401);

    let removed = false;
    let removal: Promise<unknown> | undefined;
    const isResume = resumesDorasKey(k.id);
    overrideServices({
      beforeBatch: async (_partition, ops) => {
        if (removed || !isResume(ops)) return;
        removed = true;
        // Dora's resume passed its checks; before it is written, an admin moves her to Reader: the project's
        // write lands first (the update's work on her keys waits behind this write).
        removal = g.admin.projects.update(p.id, { roleAssignments: [{ principalId: "dora", role: "Reader" }] }, (await g.admin.projects.get(p.id)).etag);
        await until(async () => ((await g.admin.projects.get(p.id)).roleAssignments.some((a) => a.role === "Reader") ? true : undefined), "the removal's write");
      },
    });
    try {
      await dora.keys.resume(p.id, k.id, { reason: "needed again" }, (await dora.keys.get(p.id, k.id)).etag);
    } finally {
      overrideServices({});
    }
    expect(removed).toBe(true);
    await removal;
    await g.synced(p.id, k.id);

    const { resource } = await g.t.container().item(k.id, [g.tenant, p.id]).read<{ status: string; suspendedBy?: string }>();
    expect(resource).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    expect((await g.admin.keys.get(p.id, k.id)).status).toBe("suspended");
    expect((await g.chat(p.id, k.key, "gpt-4o-mini")).status).toBe(401);
    await g.t.relay();
    const types = g.t.events().filter((e) => (e.data as { keyId?: string } | undefined)?.keyId === k.id).map((e) => e.type);
    // Suspended by her, resumed by her, suspended as the leaver's: the last word is a suspension.
    expect(types.filter((t) => t === "aigov.key.suspended.v1")).toHaveLength(2);
    expect(types.at(-1)).toBe("aigov.key.suspended.v1");
    // Nobody but the role given back brings it back: an admin's resume is refused.
    expect(await reasonOf(g.admin.keys.resume(p.id, k.id, { reason: "x" }, (await g.admin.keys.get(p.id, k.id)).etag))).toBe("409 key_owner_without_role");

    // The role given back resumes it.
    await g.admin.projects.update(p.id, { roleAssignments: [{ principalId: "dora", role: "Developer" }] }, (await g.admin.projects.get(p.id)).etag);
    await g.synced(p.id, k.id);
    expect((await g.chat(p.id, k.key, "gpt-4o-mini")).status).toBe(200);
  }, 180_000);
});
