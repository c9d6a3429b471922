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
      // The fallback answers what no operation serves (src/http/fallback.ts); it is no route of the API.
      .filter((f) => f.trigger.binding.type === "httpTrigger" && f.name !== "routeFallback")
      .flatMap((f) => {
        const b = f.trigger.binding as { route?: string; methods?: string[] };
        return (b.methods ?? ["GET", "POST"]).map((m) => `${m.toUpperCase()} /${b.route ?? f.name}`);
      });
    expect(served.length).toBeGreaterThanOrEqual(9);
    for (const route of served) expect(documented, `${route} is served but not documented`).toContain(route);
    expect(served.length).toBe(documented.size);
  });

  it("a path the API does not have is a problem+json 404 not_found; a method a path does not take, 405 method_not_allowed with Allow; every route still wins over the fallback", async () => {
    const token = await t.token("t1", "alice", ["TenantAdmin"]);
    const send = async (method: string, path: string) => {
      const res = await fetch(`${t.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, "x-correlation-id": "walk-1" } });
      const text = await res.text();
      return { status: res.status, type: res.headers.get("content-type"), allow: res.headers.get("allow"), body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    };
    const missing = await send("GET", "/api/no/such/thing");
    expect(missing).toMatchObject({ status: 404, type: "application/problem+json; charset=utf-8", body: { status: 404, reason: "not_found", instance: "/api/no/such/thing", correlationId: "walk-1" } });
    const wrongMethod = await send("DELETE", "/api/projects");
    expect(wrongMethod).toMatchObject({ status: 405, allow: "GET, POST", body: { status: 405, reason: "method_not_allowed", code: "MethodNotAllowed", detail: "/api/projects takes GET, POST" } });
    // A path with parameters: the methods its operations take.
    expect((await send("GET", "/api/approvals/apr_x/decisions")).allow).toBe("POST");
    expect((await send("PUT", "/api/projects/prj_x")).allow).toBe("DELETE, GET, PATCH");
    // Served routes are not shadowed.
    expect((await send("GET", "/api/projects")).status).toBe(200);
    expect((await send("GET", "/api/projects/prj_aaaaaaaaaaaaaaaaaaaa")).body).toMatchObject({ status: 404, reason: "not_found" });
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
