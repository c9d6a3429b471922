/**
 * Conformance: keys asked for where keys need an approval (keyPolicy.requireApproval). What the API says
 * about each key — suspended while its approval is pending, active once approved, revoked if rejected —
 * is checked by calls through the local gateway with the key's secret, and in the audit log and events.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { reasonOf } from "../support/errors.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;
let pam: AigovClient;
let projectId = "";

beforeAll(async () => {
  g = await Governed.start("t-key-requests");
  dev = await g.as("dora", ["Developer"]);
  pam = await g.as("pam", ["ProjectAdmin"]);
  projectId = (await g.project("guarded", { keyPolicy: { requireApproval: true } })).id;
  await g.model(projectId, "guarded");
  await g.publish("a project whose keys need an approval");
});
afterAll(() => g.stop());

const chat = (key: string) => g.chat(projectId, key, "guarded", { words: 2, maxTokens: 4 });
/** The events the outbox relay has sent by now (CloudEvents in the local sink). */
async function events(): Promise<{ type: string; data: { keyId?: string } }[]> {
  await g.t.relay();
  return g.t.events() as { type: string; data: { keyId?: string } }[];
}

describe("conformance: key requests where keys need an approval", () => {
  it("a developer's key is created suspended with its approval; it works at the gateway only once approved", async () => {
    // Without a justification: refused, and nothing is written (no key, no approval).
    const approvalsBefore = (await g.admin.approvals.list({})).items.length;
    expect(await reasonOf(dev.keys.create(projectId, { name: "no reason" }))).toBe("400 key_justification_required");
    expect((await g.admin.keys.list(projectId)).items).toEqual([]);
    expect((await g.admin.approvals.list({})).items.length).toBe(approvalsBefore);

    const k = await dev.keys.create(projectId, { name: "dora's key", justification: "the fraud model's evaluation" });
    expect(k).toMatchObject({ status: "suspended", approval: { state: "pending", requestedBy: "dora" }, owner: "dora" });
    expect(k.key).toMatch(/^aigw_/);
    const approval = await g.admin.approvals.get(k.approval!.approvalId);
    expect(approval).toMatchObject({ subject: { resourceType: "keyRequest", resourceId: k.id, projectId }, justification: "the fraud model's evaluation", status: "pending" });
    // The default route: the project's admins or a TenantAdmin.
    expect(approval.stages.map((s) => s.approvers)).toEqual([[{ role: "ProjectAdmin", scope: "project" }, { role: "TenantAdmin", scope: "tenant" }]]);

    // At the gateway: its subscription exists, suspended; the secret is refused.
    await g.synced(projectId, k.id);
    expect((await chat(k.key)).status).toBe(401);
    expect(g.t.backends.requests("guarded.mock.localhost")).toHaveLength(0);
    // Nobody resumes or shares it past its approval.
    const current = await dev.keys.get(projectId, k.id);
    expect(await reasonOf(dev.keys.resume(projectId, k.id, { reason: "impatient" }, current.etag))).toBe("409 key_awaiting_approval");
    expect(await reasonOf(g.admin.keys.resume(projectId, k.id, { reason: "admin, but not through the approval" }, current.etag))).toBe("409 key_awaiting_approval");
    // The requester cannot approve their own request.
    expect(await reasonOf(dev.approvals.decide(approval.id, { decision: "approve", justification: "me" }, approval.etag))).toMatch(/^403 /);

    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "evaluation agreed" }, approval.etag);
    await until(async () => ((await dev.keys.get(projectId, k.id)).status === "active" ? true : undefined), "key active after approval");
    await g.synced(projectId, k.id);
    expect((await dev.keys.get(projectId, k.id)).approval).toMatchObject({ state: "approved", decidedAt: expect.any(String) });
    expect((await chat(k.key)).status).toBe(200);
    expect(g.t.backends.requests("guarded.mock.localhost")).toHaveLength(1);

    const audit = (await g.admin.audit.list({ scope: projectId, resource: `/projects/${projectId}/keys/${k.id}`, maxPageSize: 100 })).items.map((r) => r.action);
    expect(audit).toEqual(expect.arrayContaining(["key.create", "key.request.approve"]));
    expect((await events()).filter((e) => JSON.stringify(e.data).includes(k.id)).map((e) => e.type)).toEqual(expect.arrayContaining(["aigov.key.created.v1", "aigov.key.request.approved.v1"]));
  });

  it("a rejected request revokes the key; a project admin's own key needs no approval", async () => {
    const k = await dev.keys.create(projectId, { name: "too broad", justification: "all models, forever" });
    const approval = await g.admin.approvals.get(k.approval!.approvalId);
    await g.admin.approvals.decide(approval.id, { decision: "reject", justification: "ask for one model" }, approval.etag);
    await until(async () => {
      const cur = await dev.keys.get(projectId, k.id);
      return cur.status === "revoked" && cur.approval?.state === "rejected" ? true : undefined;
    }, "key revoked after rejection");
    await g.synced(projectId, k.id);
    expect((await chat(k.key)).status).toBe(401);
    expect((await events()).filter((e) => JSON.stringify(e.data).includes(k.id)).map((e) => e.type)).toEqual(expect.arrayContaining(["aigov.key.request.rejected.v1"]));

    const own = await pam.keys.create(projectId, { name: "pam's key" });
    expect(own.status).toBe("active");
    expect(own.approval).toBeUndefined();
    await g.synced(projectId, own.id);
    expect((await chat(own.key)).status).toBe(200);
  });

  it("approvals cannot be opened for key requests by hand", async () => {
    expect(
      await reasonOf(g.admin.approvals.create({ subject: { resourceType: "keyRequest", resourceId: "key_x", projectId, change: { keyId: "key_x" } }, justification: "sneaky", stages: [{ approvers: [{ user: "someone-else" }], decisionTimeout: "P1D" }] })),
    ).toBe("400 subject_type_reserved");
  });
});
