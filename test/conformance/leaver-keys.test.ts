/**
 * Conformance: a person whose project role is taken away (by an admin's edit of the project, or by an
 * access review's deny) no longer gets through the gateway with the keys they own in that project. Their
 * keys are suspended — not revoked — audited and announced, and given back when the role is given back.
 * Checked by chat completions through the local gateway, the stored keys and the events.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import type { AccessReview } from "../../src/domain/reviews/schema.js";
import { reasonOf } from "../support/errors.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dora: AigovClient; // no tenant role: a Developer only through the project's assignment
let erin: AigovClient; // likewise, and keeps her role
let modelId: string;

async function storedKey(projectId: string, keyId: string): Promise<{ status: string; suspendedBy?: string; leaverHold?: boolean }> {
  const { resource } = await g.t.container().item(keyId, [g.tenant, projectId]).read<{ status: string; suspendedBy?: string; leaverHold?: boolean }>();
  return resource!;
}
async function setRoles(p: Project, roleAssignments: { principalId: string; role: "ProjectAdmin" | "Developer" | "Reader" | "Approver" }[]): Promise<void> {
  await g.admin.projects.update(p.id, { roleAssignments }, (await g.admin.projects.get(p.id)).etag);
}
async function eventsAbout(keyId: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
  await g.t.relay();
  return g.t.events().filter((e) => (e.data as { keyId?: string } | undefined)?.keyId === keyId).map((e) => ({ type: e.type, data: e.data as Record<string, unknown> }));
}
async function reaches(id: string, status: AccessReview["status"]): Promise<AccessReview> {
  return until(async () => {
    const r = await g.admin.reviews.get(id);
    return r.status === status ? r : undefined;
  }, `access review ${id} ${status}`);
}

beforeAll(async () => {
  g = await Governed.start("t-leavers");
  overrideServices({ clock: g.t.appClock });
  dora = await g.as("dora", []);
  erin = await g.as("erin", []);
}, 120_000);
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

describe("a person whose project role is removed", () => {
  let p: Project;
  let doras: { id: string; key: string };
  let erins: { id: string; key: string };

  it("loses the use of their keys in the project at the gateway when an admin removes the role: suspended (not revoked), audited, announced", async () => {
    p = await g.project("leavers", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }, { principalId: "erin", role: "Developer" }] });
    modelId = (await g.model(p.id, "gpt-4o-mini")).id;
    await g.publish("leavers");
    doras = await g.key(dora, p.id, { name: "doras", scopes: { models: [modelId] } });
    erins = await g.key(erin, p.id, { name: "erins", scopes: { models: [modelId] } });
    expect((await g.chat(p.id, doras.key, "gpt-4o-mini")).status).toBe(200);

    // Dora is moved to Reader: she may still read the project, but holds no role that may hold keys.
    await setRoles(p, [{ principalId: "dora", role: "Reader" }, { principalId: "erin", role: "Developer" }]);
    await g.synced(p.id, doras.id);
    expect(await storedKey(p.id, doras.id)).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    expect((await g.chat(p.id, doras.key, "gpt-4o-mini")).status).toBe(401);
    // Erin keeps her role and her key.
    expect((await g.chat(p.id, erins.key, "gpt-4o-mini")).status).toBe(200);
    expect(await eventsAbout(doras.id)).toContainEqual({ type: "aigov.key.suspended.v1", data: expect.objectContaining({ keyId: doras.id, projectId: p.id }) as unknown as Record<string, unknown> });
    const audit = await g.admin.audit.list({ scope: p.id, resource: `/projects/${p.id}/keys/${doras.id}` });
    expect(audit.items.map((r) => r.action)).toContain("key.suspend");

    // Dora cannot resume it herself, nor can an admin give a leaver's key back by resuming it.
    expect(await reasonOf(dora.keys.resume(p.id, doras.id, { reason: "mine" }, (await g.admin.keys.get(p.id, doras.id)).etag))).toMatch(/^(403|409)/);
    expect(await reasonOf(g.admin.keys.resume(p.id, doras.id, { reason: "she needs it" }, (await g.admin.keys.get(p.id, doras.id)).etag))).toBe("409 key_owner_without_role");
    await g.synced(p.id, doras.id);
    expect((await g.chat(p.id, doras.key, "gpt-4o-mini")).status).toBe(401);
  });

  it("gets the keys back when the role is given back", async () => {
    await setRoles(p, [{ principalId: "dora", role: "Developer" }, { principalId: "erin", role: "Developer" }]);
    await g.synced(p.id, doras.id);
    expect(await storedKey(p.id, doras.id)).toMatchObject({ status: "active" });
    expect((await g.chat(p.id, doras.key, "gpt-4o-mini")).status).toBe(200);
    expect((await eventsAbout(doras.id)).map((e) => e.type)).toContain("aigov.key.resumed.v1");
  });

  it("a key the person suspended themselves stays suspended when the role comes back", async () => {
    const own = await g.key(dora, p.id, { name: "own", scopes: { models: [modelId] } });
    await dora.keys.suspend(p.id, own.id, { reason: "not now" }, (await dora.keys.get(p.id, own.id)).etag);
    await setRoles(p, [{ principalId: "erin", role: "Developer" }]);
    await setRoles(p, [{ principalId: "dora", role: "Developer" }, { principalId: "erin", role: "Developer" }]);
    await g.synced(p.id, own.id);
    expect((await storedKey(p.id, own.id)).status).toBe("suspended");
    expect((await g.chat(p.id, own.key, "gpt-4o-mini")).status).toBe(401);
    // Meanwhile her other key went and came back with the role.
    await g.synced(p.id, doras.id);
    expect((await g.chat(p.id, doras.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("loses the use of their keys when an access review's deny removes the role", async () => {
    const review = await g.admin.reviews.create({
      name: "who may act",
      kind: "roleAssignments",
      scope: { level: "project", projectId: p.id },
      stages: [{ reviewers: { type: "users", users: ["olivia"] }, durationDays: 7 }],
    });
    await reaches(review.id, "inProgress");
    const olivia = await g.as("olivia", []);
    const item = (await g.admin.reviews.items(review.id, { maxPageSize: 100 })).items.find((i) => i.target.id === "dora/Developer")!;
    await olivia.reviews.decide(review.id, item.id, { decision: "deny", justification: "left the team" });
    await g.admin.reviews.stop(review.id, { reason: "decided" }, (await g.admin.reviews.get(review.id)).etag);
    const done = await reaches(review.id, "completed");
    await g.admin.reviews.apply(review.id, done.etag);
    const applied = await reaches(review.id, "completed");
    expect(applied.report!.applied).toMatchObject({ removed: 1 });
    await g.synced(p.id, doras.id);
    expect(await storedKey(p.id, doras.id)).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    expect((await g.chat(p.id, doras.key, "gpt-4o-mini")).status).toBe(401);
    expect((await g.chat(p.id, erins.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a removal whose suspensions a crash cut short (the leaver listed, the key still active) is finished by the key lifecycle job", async () => {
    const q = await g.project("leavers-crash", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] });
    const model = await g.model(q.id, "gpt-4o");
    await g.publish("leavers-crash");
    const k = await g.key(dora, q.id, { name: "crashed", scopes: { models: [model.id] } });
    expect((await g.chat(q.id, k.key, "gpt-4o")).status).toBe(200);
    // What the removal's write leaves when the process stops right after it.
    const item = g.t.container().item(q.id, [g.tenant, "_tenant"]);
    const { resource } = await item.read<Record<string, unknown>>();
    await item.replace({ ...resource!, roleAssignments: [], roleAssignedAt: {}, keyHoldersLeft: ["dora"], leaversPending: true });
    expect((await storedKey(q.id, k.id)).status).toBe("active");

    await g.t.app.host.invokeTimer("keyLifecycle");
    await g.synced(q.id, k.id);
    expect(await storedKey(q.id, k.id)).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    expect((await g.chat(q.id, k.key, "gpt-4o")).status).toBe(401);
    // Done once: the project no longer lists her, and giving the role back gives the key back.
    const { resource: after } = await item.read<Record<string, unknown>>();
    expect(after).not.toHaveProperty("keyHoldersLeft");
    expect(after).not.toHaveProperty("leaversPending");
    await g.admin.projects.update(q.id, { roleAssignments: [{ principalId: "dora", role: "Developer" }] }, (await g.admin.projects.get(q.id)).etag);
    await g.synced(q.id, k.id);
    expect((await g.chat(q.id, k.key, "gpt-4o")).status).toBe(200);
  });

  it("a key the person asked for, approved after they lost the role, stays suspended until the role is given back", async () => {
    const q = await g.project("leavers-request", { owner: "olivia", keyPolicy: { requireApproval: true }, roleAssignments: [{ principalId: "dora", role: "Developer" }] });
    const model = await g.model(q.id, "gpt-4o-mini");
    await g.publish("leavers-request");
    const k = await dora.keys.create(q.id, { name: "asked", scopes: { models: [model.id] }, justification: "evaluation" });
    expect(k).toMatchObject({ status: "suspended", approval: { state: "pending" } });
    await setRoles(q, []);
    const approval = await g.admin.approvals.get(k.approval!.approvalId);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "agreed before she left" }, approval.etag);
    await until(async () => ((await g.admin.keys.get(q.id, k.id)).approval?.state === "approved" ? true : undefined), "request settled");
    await g.synced(q.id, k.id);
    expect(await storedKey(q.id, k.id)).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(401);
    await setRoles(q, [{ principalId: "dora", role: "Developer" }]);
    await g.synced(q.id, k.id);
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a ProjectAdmin who takes away their own role is answered, and their keys there stop working", async () => {
    const q = await g.project("leavers-self", { owner: "olivia", roleAssignments: [{ principalId: "pia", role: "ProjectAdmin" }, { principalId: "erin", role: "Developer" }] });
    const pia = await g.as("pia", []);
    const model = await g.model(q.id, "gpt-4o-mini");
    await g.publish("leavers-self");
    const k = await g.key(pia, q.id, { name: "pias", scopes: { models: [model.id] } });
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(200);
    const updated = await pia.projects.update(q.id, { roleAssignments: [{ principalId: "erin", role: "Developer" }] }, (await pia.projects.get(q.id)).etag);
    expect(updated.roleAssignments).toEqual([{ principalId: "erin", role: "Developer" }]);
    expect(updated).not.toHaveProperty("keyHoldersLeft");
    // The answer's ETag is the project's as stored now (the leavers' list written and cleared since).
    expect(updated.etag).toBe((await g.admin.projects.get(q.id)).etag);
    await g.synced(q.id, k.id);
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(401);
  });

  it("a key the person suspended themselves is held for them as a leaver: no resume brings it back until the role is given back, which leaves it theirs to resume", async () => {
    const q = await g.project("leavers-own", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] });
    const model = await g.model(q.id, "gpt-4o-mini");
    await g.publish("leavers-own");
    const k = await g.key(dora, q.id, { name: "paused", scopes: { models: [model.id] } });
    await dora.keys.suspend(q.id, k.id, { reason: "not now" }, (await dora.keys.get(q.id, k.id)).etag);
    // Dora is moved to Reader: the removal leaves her own suspension hers, but holds the key for the leaver.
    await setRoles(q, [{ principalId: "dora", role: "Reader" }]);
    const held = await g.admin.keys.get(q.id, k.id);
    expect(held).toMatchObject({ status: "suspended" });
    expect(held).not.toHaveProperty("suspendedBy");
    expect(held).not.toHaveProperty("leaverHold");

    // Neither she (a Reader now) nor an admin brings the leaver's key back.
    expect(await reasonOf(dora.keys.resume(q.id, k.id, { reason: "mine" }, (await dora.keys.get(q.id, k.id)).etag))).toBe("409 key_owner_without_role");
    expect(await reasonOf(g.admin.keys.resume(q.id, k.id, { reason: "she needs it" }, (await g.admin.keys.get(q.id, k.id)).etag))).toBe("409 key_owner_without_role");
    await g.synced(q.id, k.id);
    expect((await storedKey(q.id, k.id)).status).toBe("suspended");
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(401);
    // Held by an audited, announced change of the key, kept out of its view.
    expect(await storedKey(q.id, k.id)).toMatchObject({ status: "suspended", leaverHold: true });
    const audit = await g.admin.audit.list({ scope: q.id, resource: `/projects/${q.id}/keys/${k.id}` });
    expect(audit.items.map((r) => r.action)).toContain("key.leaverHold");
    expect(await eventsAbout(k.id)).toContainEqual({ type: "aigov.key.leaverHold.changed.v1", data: expect.objectContaining({ keyId: k.id, projectId: q.id, held: true }) as unknown as Record<string, unknown> });

    // The role given back: the hold ends, the suspension stays hers — and now she may resume it.
    await setRoles(q, [{ principalId: "dora", role: "Developer" }]);
    await g.synced(q.id, k.id);
    const back = await storedKey(q.id, k.id);
    expect(back.status).toBe("suspended");
    expect(back).not.toHaveProperty("leaverHold");
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(401);
    expect(await eventsAbout(k.id)).toContainEqual({ type: "aigov.key.leaverHold.changed.v1", data: expect.objectContaining({ keyId: k.id, held: false }) as unknown as Record<string, unknown> });
    expect(await dora.keys.resume(q.id, k.id, { reason: "back on the team" }, (await dora.keys.get(q.id, k.id)).etag)).toMatchObject({ status: "active" });
    await g.synced(q.id, k.id);
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(200);
  });

  it("a leaver's key whose removal suspended it, then suspended by a person, is held for the leaver all the same", async () => {
    const q = await g.project("leavers-resuspended", { owner: "olivia", roleAssignments: [{ principalId: "dora", role: "Developer" }] });
    const model = await g.model(q.id, "gpt-4o-mini");
    await g.publish("leavers-resuspended");
    const k = await g.key(dora, q.id, { name: "twice", scopes: { models: [model.id] } });
    await setRoles(q, [{ principalId: "dora", role: "Reader" }]);
    expect(await storedKey(q.id, k.id)).toMatchObject({ status: "suspended", suspendedBy: "roleRemoved" });
    // A person's suspension of the leaver's key makes it theirs, not the leaver's to resume.
    await dora.keys.suspend(q.id, k.id, { reason: "pausing it too" }, (await dora.keys.get(q.id, k.id)).etag);
    expect(await reasonOf(dora.keys.resume(q.id, k.id, { reason: "mine" }, (await dora.keys.get(q.id, k.id)).etag))).toBe("409 key_owner_without_role");
    expect(await reasonOf(g.admin.keys.resume(q.id, k.id, { reason: "she needs it" }, (await g.admin.keys.get(q.id, k.id)).etag))).toBe("409 key_owner_without_role");
    await g.synced(q.id, k.id);
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(401);
    expect(await storedKey(q.id, k.id)).toMatchObject({ status: "suspended", leaverHold: true });
    await setRoles(q, [{ principalId: "dora", role: "Developer" }]);
    expect(await storedKey(q.id, k.id)).toMatchObject({ status: "suspended" });
    expect(await dora.keys.resume(q.id, k.id, { reason: "back" }, (await dora.keys.get(q.id, k.id)).etag)).toMatchObject({ status: "active" });
    await g.synced(q.id, k.id);
    expect((await g.chat(q.id, k.key, "gpt-4o-mini")).status).toBe(200);
  });
});
