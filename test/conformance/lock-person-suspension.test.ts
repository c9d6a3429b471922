/**
 * Conformance: a person's suspension in a locked sandbox outlives the lock. Suspending keys still works in
 * a locked project (docs/project-lifecycle.md), also a key the lock suspended: the suspension becomes the
 * person's, and the extension that lifts the lock resumes only what the lock suspended — "a key a person
 * suspended is never resumed by it". Checked by chat completions through the local gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const DAY = 86_400_000;
let g: Governed;
let paula: AigovClient;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const sweep = () => g.t.app.host.invokeTimer("projectLifecycle");
async function approve(approvalId: string): Promise<void> {
  await g.admin.approvals.decide(approvalId, { decision: "approve", justification: "agreed" }, (await g.admin.approvals.get(approvalId)).etag);
}
async function storedKey(projectId: string, keyId: string): Promise<{ status: string; suspendedBy?: string }> {
  const { resource } = await g.t.container().item(keyId, [g.tenant, projectId]).read<{ status: string; suspendedBy?: string }>();
  return resource!;
}
async function extend(projectId: string): Promise<void> {
  const asked = await paula.projects.extend(projectId, { reviewDate: day(g.t.appClock.ms() + 30 * DAY), justification: "another month" });
  await approve(asked.extension!.approvalId);
  await until(async () => ((await g.admin.projects.get(projectId)).lock === undefined ? true : undefined), "the extension settled");
}

beforeAll(async () => {
  g = await Governed.start("t-lock-person");
  overrideServices({ clock: g.t.appClock });
  paula = await g.as("paula", []);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

describe("a person's suspension in a locked sandbox", () => {
  it("an admin suspends a key the lock suspended (a leak found while locked): the extension leaves it suspended, the lock's other keys come back", async () => {
    const p = await g.project("locked-leak", { environment: "sandbox", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const model = await g.model(p.id, "gpt-4o-mini");
    await g.publish("locked-leak");
    const leaked = await g.key(g.admin, p.id, { name: "leaked", owner: "dora", scopes: { models: [model.id] } });
    const other = await g.key(g.admin, p.id, { name: "other", owner: "dora", scopes: { models: [model.id] } });
    expect((await g.chat(p.id, leaked.key, "gpt-4o-mini")).status).toBe(200);

    g.t.appClock.advance(2 * DAY);
    await sweep();
    expect((await g.admin.projects.get(p.id)).lock).toMatchObject({ reason: "sandboxExpired" });
    expect(await storedKey(p.id, leaked.id)).toMatchObject({ status: "suspended", suspendedBy: "projectLock" });

    // Suspending still works in a locked project: the suspension is now the admin's.
    const suspended = await g.admin.keys.suspend(p.id, leaked.id, { reason: "secret leaked" }, (await g.admin.keys.get(p.id, leaked.id)).etag);
    expect(suspended.status).toBe("suspended");
    expect((await storedKey(p.id, leaked.id)).suspendedBy).not.toBe("projectLock");

    await extend(p.id);
    await g.synced(p.id, leaked.id);
    await g.synced(p.id, other.id);
    expect((await storedKey(p.id, leaked.id)).status).toBe("suspended");
    expect((await g.chat(p.id, leaked.key, "gpt-4o-mini")).status).toBe(401);
    expect((await g.chat(p.id, other.key, "gpt-4o-mini")).status).toBe(200);
    // The next sweep does not resume it either.
    await sweep();
    await g.synced(p.id, leaked.id);
    expect((await g.chat(p.id, leaked.key, "gpt-4o-mini")).status).toBe(401);
  });

  it("a key suspended by a person after the lock listed it but before the lock suspended it (a sweep that stopped after its lock write) stays suspended after the extension", async () => {
    const p = await g.project("locked-unfinished", { environment: "sandbox", reviewDate: day(g.t.appClock.ms() + 2 * DAY), owner: "olivia", roleAssignments: [{ principalId: "paula", role: "ProjectAdmin" }] });
    const model = await g.model(p.id, "gpt-4o-mini");
    await g.publish("locked-unfinished");
    const key = await g.key(g.admin, p.id, { name: "k", owner: "dora", scopes: { models: [model.id] } });
    g.t.appClock.advance(2 * DAY);
    // What a sweep leaves that stopped after writing the lock (it lists the key, still active).
    const item = g.t.container().item(p.id, [g.tenant, "_tenant"]);
    const { resource } = await item.read<Record<string, unknown>>();
    await item.replace({ ...resource!, lock: { at: g.t.appClock.now().toISOString(), reason: "sandboxExpired", detail: "sandbox past its review date" }, suspendedByLock: [key.id] });
    expect((await g.admin.keys.get(p.id, key.id)).status).toBe("active");

    await g.admin.keys.suspend(p.id, key.id, { reason: "secret leaked" }, (await g.admin.keys.get(p.id, key.id)).etag);
    await sweep();
    await extend(p.id);
    await g.synced(p.id, key.id);
    expect((await storedKey(p.id, key.id)).status).toBe("suspended");
    expect((await g.chat(p.id, key.key, "gpt-4o-mini")).status).toBe(401);
  });
});
