/**
 * An Entra object id names its user in any letter case (src/domain/users.ts). A project role assignment
 * written with one in capitals is that user's: it gives them the role, and separation of duties holds them
 * to it — including assignments stored in capitals before assignments were kept in canonical form.
 * (Found by an attack helper, stop 41: "managed by the requester" compared them exactly.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { reasonOf } from "../support/errors.js";

const REQUESTER = "9c4f1a2b-3d5e-4f60-8a7b-1c2d3e4f5a6b";
const DECIDER = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d";
let t: TestApp;
const as = (tenant: string): Promise<[AigovClient, AigovClient, AigovClient]> => Promise.all([t.as(tenant, "tina", ["TenantAdmin"]), t.as(tenant, REQUESTER, ["Developer"]), t.as(tenant, DECIDER, ["TenantAdmin"])]);

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.stop());

describe("object ids in any letter case", () => {
  it("an assignment written in capitals is kept as tokens carry the id, gives the role, and one spelled twice is one", async () => {
    const [admin, requester] = await as("t-case-kept");
    const p = await admin.projects.create(projectSpec("case kept", { roleAssignments: [{ principalId: REQUESTER.toUpperCase(), role: "ProjectAdmin" }, { principalId: REQUESTER, role: "ProjectAdmin" }] }));
    expect(p.roleAssignments).toEqual([{ principalId: REQUESTER, role: "ProjectAdmin" }]);
    // As ProjectAdmin on the project (no tenant role beyond Developer), the requester may edit it.
    const edited = await requester.projects.update(p.id, { description: "edited by its admin" }, p.etag);
    expect(edited.description).toBe("edited by its admin");
  });

  it("an assignment stored in capitals before keeps the date it was made when the project is next edited", async () => {
    const [admin] = await as("t-case-dates");
    const p = await admin.projects.create(projectSpec("case dates", { roleAssignments: [{ principalId: REQUESTER, role: "ProjectAdmin" }] }));
    const container = t.container();
    const { resource } = await container.item(p.id, ["t-case-dates", "_tenant"]).read<Record<string, unknown>>();
    const then = "2020-01-02T03:04:05.000Z";
    await container.item(p.id, ["t-case-dates", "_tenant"]).replace({ ...resource!, roleAssignments: [{ principalId: REQUESTER.toUpperCase(), role: "ProjectAdmin" }], roleAssignedAt: { [`${REQUESTER.toUpperCase()}/ProjectAdmin`]: then } });
    await admin.projects.update(p.id, { description: "an edit of something else" }, (await admin.projects.get(p.id)).etag);
    const { resource: after } = await container.item(p.id, ["t-case-dates", "_tenant"]).read<{ roleAssignments: unknown; roleAssignedAt: unknown }>();
    expect([after!.roleAssignments, after!.roleAssignedAt]).toEqual([[{ principalId: REQUESTER, role: "ProjectAdmin" }], { [`${REQUESTER}/ProjectAdmin`]: then }]);
  });

  for (const [label, assignments] of [
    ["the requester's ProjectAdmin assignment in capitals", [{ principalId: REQUESTER.toUpperCase(), role: "ProjectAdmin" }, { principalId: DECIDER, role: "Developer" }]],
    ["the decider's assignment in capitals", [{ principalId: REQUESTER, role: "ProjectAdmin" }, { principalId: DECIDER.toUpperCase(), role: "Developer" }]],
  ] as const) {
    it(`separation of duties: ${label} still makes the decider one the requester manages (403), also as stored before canonical form`, async () => {
      const tenant = `t-sod-${label.includes("requester") ? "req" : "dec"}`;
      const [admin, requester, decider] = await as(tenant);
      const p = await admin.projects.create(projectSpec(`sod ${label}`, { roleAssignments: [...assignments] }));
      const a = await requester.approvals.create({ subject: { resourceType: "model", resourceId: "x", projectId: p.id, change: { a: 1 } }, justification: "need it" });
      expect(await reasonOf(decider.approvals.decide(a.id, { decision: "approve", justification: "ok" }, a.etag))).toBe("403 approver_managed_by_requester");
      // The same assignments as a project stored them before (capitals kept): still refused.
      const container = t.container();
      const { resource } = await container.item(p.id, [tenant, "_tenant"]).read<Record<string, unknown>>();
      await container.item(p.id, [tenant, "_tenant"]).replace({ ...resource!, roleAssignments: assignments });
      const b = await requester.approvals.create({ subject: { resourceType: "model", resourceId: "y", projectId: p.id, change: { a: 2 } }, justification: "need it again" });
      expect(await reasonOf(decider.approvals.decide(b.id, { decision: "approve", justification: "ok" }, b.etag))).toBe("403 approver_managed_by_requester");
    });
  }
});
