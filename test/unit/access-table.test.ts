import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CALLERS, describeAccess, isProjectScoped, renderAccessTable, verdict, verdictFor, withAccessTable } from "../../src/api/access.js";
import { operations } from "../../src/api/all-operations.js";

const DOC = join(__dirname, "..", "..", "docs", "api.md");

describe("who may do what: one table, from the operation declarations", () => {
  it("the table in docs/api.md is the one the declarations give (npm run docs:roles rewrites it)", () => {
    const doc = readFileSync(DOC, "utf8");
    expect(withAccessTable(doc, renderAccessTable(operations)), "docs/api.md is out of date: run npm run docs:roles").toBe(doc);
  });

  it("has a row per operation and a cell per caller", () => {
    const table = renderAccessTable(operations);
    const rows = table.split("\n").slice(2);
    expect(rows).toHaveLength(operations.length);
    for (const row of rows) expect(row.split(" | ")).toHaveLength(CALLERS.length + 2);
  });

  it("every declaration is well formed: project assignments only where the path names a project; anonymous operations name no roles", () => {
    for (const op of operations) {
      const { access } = op;
      if (!isProjectScoped(op)) {
        expect(access.project, `${op.operationId}: project roles need {projectId} in the path`).toBeUndefined();
        expect(access.own?.project, `${op.operationId}: project roles need {projectId} in the path`).toBeUndefined();
      }
      if (op.anonymous) expect(access.tenant, op.operationId).toEqual([]);
      else expect(access.tenant.length > 0 || access.own !== undefined, `${op.operationId}: nobody may call it`).toBe(true);
      expect(describeAccess(access, op.anonymous)).not.toBe("");
    }
  });

  it("effective roles are the tenant roles and the roles assigned on the project", () => {
    const managers = operations.find((o) => o.operationId === "revokeKey")!;
    const none = new Set<string>();
    expect(verdict(managers.access, new Set(["TenantAdmin"]), none)).toBe("yes");
    expect(verdict(managers.access, none, new Set(["ProjectAdmin"]))).toBe("yes");
    expect(verdict(managers.access, none, new Set(["Developer"]))).toBe("own");
    expect(verdict(managers.access, new Set(["Reader"]), none)).toBe("own");
    expect(verdict(managers.access, none, none)).toBe("no");
    // The review's case: a Developer assigned on the project (no tenant role) may revoke their own key.
    expect(verdictFor(managers, { label: "x", tenantRoles: [], projectRoles: ["Developer"] })).toBe("own");
    // Assignments count only on the project in the path: elsewhere the same caller has no role.
    const settings = operations.find((o) => o.operationId === "putTenantSettings")!;
    expect(verdictFor(settings, { label: "x", tenantRoles: [], projectRoles: ["ProjectAdmin"] })).toBe("no");
  });
});
