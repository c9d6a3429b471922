/**
 * A pillar is one folder and one entry in the pillar list: a fixture pillar registered through the
 * list alone (no other file knows it) is served, documented, offered by the CLI, and counted when a
 * project is deleted alongside the models pillar. The isolation and bad-input walks register it
 * too (test/integration/isolation.test.ts, bad-input.test.ts), so they walk its routes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/main.js";
import type { AigovClient } from "../../src/client/index.js";
import { pillars } from "../../src/pillars/index.js";
import { projectSpec, startTestApp, type TestApp } from "../support/app.js";
import { registerFixturePillar } from "../support/walk.js";
import { createWidget, deleteWidget, getWidget, listWidgets } from "../fixtures/widgets-pillar.js";

let t: TestApp;
let admin: AigovClient;

beforeAll(async () => {
  registerFixturePillar();
  t = await startTestApp();
  admin = await t.as("t-pillars", "alice", ["TenantAdmin", "Auditor"]);
});
afterAll(() => t.stop());

describe("pillars", () => {
  it("the pillar list is the one place: models and a registered fixture pillar", () => {
    expect(pillars().map((p) => p.name)).toEqual(["models", "tools", "agents", "widgets"]);
  });

  it("a registered pillar's routes are served, in the OpenAPI document, and its CLI verbs exist", async () => {
    const doc = (await t.anonymous.openApi()) as { paths: Record<string, Record<string, { operationId: string; description?: string }>> };
    expect(Object.keys(doc.paths["/projects/{projectId}/widgets"] ?? {}).sort()).toEqual(["get", "post"]);
    expect(doc.paths["/projects/{projectId}/widgets/{widgetId}"]?.delete?.operationId).toBe("deleteWidget");
    const project = await admin.projects.create(projectSpec("widgets home"));
    const created = (await admin.call(createWidget, { params: { projectId: project.id }, body: { name: "first" } })).body;
    expect(created).toMatchObject({ name: "first", projectId: project.id, tenantId: "t-pillars" });
    expect((await admin.call(getWidget, { params: { projectId: project.id, widgetId: created.id } })).body).toEqual(created);
    expect((await admin.call(listWidgets, { params: { projectId: project.id } })).body.items.map((w) => w.id)).toEqual([created.id]);
    // Audited and evented through the kernel like any resource.
    const audit = await admin.audit.list({ scope: project.id });
    expect(audit.items.map((r) => [r.action, r.resource])).toEqual([["widget.create", `/projects/${project.id}/widgets/${created.id}`]]);
    await t.relay();
    expect(t.events().filter((e) => e.type === "aigov.widget.created.v1").map((e) => e.subject)).toEqual([`/tenants/t-pillars/projects/${project.id}/widgets/${created.id}`]);
    const verbs = buildProgram({ out: () => undefined, err: () => undefined, env: {} }).commands.map((c) => c.name());
    expect(verbs).toEqual(expect.arrayContaining(["models", "widgets"]));
  });

  it("project deletion asks every pillar: a widget blocks it like a model does", async () => {
    const project = await admin.projects.create(projectSpec("holds things"));
    const model = await admin.models.create(project.id, {
      name: "gpt-4o",
      provider: "azure-openai",
      modelName: "gpt-4o",
      backends: [{ id: "weu", url: "https://p.openai.azure.com", region: "westeurope", credential: { type: "managedIdentity", audience: "https://cognitiveservices.azure.com" } }],
    });
    const widget = (await admin.call(createWidget, { params: { projectId: project.id }, body: { name: "blocker" } })).body;
    const refused = async () => {
      const p = await admin.projects.get(project.id);
      return admin.projects.delete(project.id, p.etag).then(() => undefined, (e: { problem?: { reason?: string; detail?: string } }) => e.problem);
    };
    expect(await refused()).toMatchObject({ reason: "project_has_dependents", detail: expect.stringMatching(/1 models, 1 widgets/) as unknown });
    await admin.models.delete(project.id, model.id, model.etag);
    expect(await refused()).toMatchObject({ reason: "project_has_dependents", detail: expect.stringMatching(/1 widgets/) as unknown });
    await admin.call(deleteWidget, { params: { projectId: project.id, widgetId: widget.id }, ifMatch: widget.etag });
    const p = await admin.projects.get(project.id);
    await admin.projects.delete(project.id, p.etag);
    expect((await admin.projects.list()).items.map((x) => x.id)).not.toContain(project.id);
  });
});
