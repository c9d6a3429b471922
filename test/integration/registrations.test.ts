import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { operations } from "../../src/api/all-operations.js";
import { buildProgram, cliVerbs } from "../../src/cli/main.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { operationsOf } from "../support/walk.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.stop());

describe("one description of the API", () => {
  it("every HTTP function the host serves is in the OpenAPI document, with the same method and route", async () => {
    const doc = await t.anonymous.openApi();
    const documented = new Set(operationsOf(doc).map((o) => `${o.method} ${o.path}`));
    const served = t.app.host.functions
      .filter((f) => f.trigger.binding.type === "httpTrigger")
      .flatMap((f) => {
        const b = f.trigger.binding as { route?: string; methods?: string[] };
        return (b.methods ?? ["GET", "POST"]).map((m) => `${m.toUpperCase()} /${b.route ?? f.name}`);
      });
    expect(served.length).toBeGreaterThanOrEqual(9);
    for (const route of served) expect(documented, `${route} is served but not documented`).toContain(route);
    expect(served.length).toBe(documented.size);
  });

  it("the document is OpenAPI 3.1 with components for every $ref", async () => {
    const doc = await t.anonymous.openApi();
    expect(doc.openapi).toBe("3.1.0");
    const text = JSON.stringify(doc);
    const refs = [...text.matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)].map((m) => m[1]!);
    const schemas = Object.keys((doc.components as { schemas: object }).schemas);
    for (const ref of refs) expect(schemas).toContain(ref);
    expect(schemas).toEqual(expect.arrayContaining(["Project", "ProjectSpec", "ProjectPatch", "Problem", "AuditRecord"]));
  });

  it("every operation has a CLI verb that the CLI implements", () => {
    const verbs = cliVerbs(buildProgram({ out: () => undefined, err: () => undefined, env: {} }));
    for (const op of operations) expect(verbs, `no CLI verb for ${op.operationId}`).toContain(op.cli);
  });
});
