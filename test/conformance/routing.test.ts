/**
 * Conformance: what the API promises about routing holds for requests sent through the published
 * artifacts (the local gateway executing .data/apim/). Every check below is an HTTP request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;
let project: Project;
let mini: { id: string };
let any: string;
let onlyMini: string;

beforeAll(async () => {
  g = await Governed.start("t-routing");
  dev = await g.as("dora", ["Developer"]);
  project = await g.project("routing");
  mini = await g.model(project.id, "gpt-4o-mini", { modelName: "mini-2024-07-18" });
  await g.model(project.id, "gpt-4o", { modelName: "gpt-4o-2024-08-06" });
  await g.model(project.id, "azure-mini", { provider: "azure-openai", modelName: "azure-mini-dep", hosts: ["aoai-east.mock.localhost"] });
  await g.publish("first");
  any = (await g.key(dev, project.id, { name: "any model" })).key;
  onlyMini = (await g.key(dev, project.id, { name: "mini only", scopes: { models: [mini.id] } })).key;
});
afterAll(() => g.stop());

describe("conformance: routing and model scope at the local gateway", () => {
  it("serves the three request shapes and sends the governed deployment, never the client's name", async () => {
    const v1 = await g.chat(project.id, any, "gpt-4o-mini");
    expect(v1.status).toBe(200);
    // The fake answers with the model it was asked for: the registry's modelName.
    expect(v1.json.model).toBe("mini-2024-07-18");
    expect((await g.chat(project.id, any, "gpt-4o-mini", { route: "openai-v1" })).json.model).toBe("mini-2024-07-18");
    const azure = await g.chat(project.id, any, "azure-mini", { route: "deployment" });
    expect(azure.status).toBe(200);
    expect(azure.json.model).toBe("azure-mini-dep");
    // Azure OpenAI clients that name the deployment only in the path work; OpenAI-style clients reach an Azure deployment too.
    const viaV1 = await g.chat(project.id, any, "azure-mini");
    expect(viaV1.json.model).toBe("azure-mini-dep");
    const azureCalls = g.t.backends.requests("aoai-east.mock.localhost");
    expect(azureCalls.map((r) => r.path)).toEqual(["/openai/deployments/azure-mini-dep/chat/completions", "/openai/deployments/azure-mini-dep/chat/completions"]);
    // The client's api-version is kept; without one the gateway adds the default.
    expect(azureCalls.map((r) => r.query["api-version"])).toEqual(["2024-10-21", "2024-10-21"]);
    const v1Calls = g.t.backends.requests("gpt-4o-mini.mock.localhost");
    expect(v1Calls.map((r) => [r.path, (r.body as { model: string }).model])).toEqual([
      ["/v1/chat/completions", "mini-2024-07-18"],
      ["/v1/chat/completions", "mini-2024-07-18"],
    ]);
  });

  it("a body that is not a JSON object is the caller's 400 on every request shape, and reaches no backend", async () => {
    const before = g.t.backends.requests("gpt-4o-mini.mock.localhost").length + g.t.backends.requests("aoai-east.mock.localhost").length;
    const paths = ["/v1/chat/completions", "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21", "/openai/deployments/azure-mini/chat/completions?api-version=2024-10-21"];
    for (const path of paths) {
      for (const body of ['{"model":"gpt-4o-mini",', "[1]", '"hello"', "{{", "null", "42"]) {
        const r = await g.call(project.id, path, { key: any, body });
        // Where the body names no model and the path none either, "no model" is the first thing wrong: 400 too.
        expect([r.status, r.json.error?.code], `${path} ${JSON.stringify(body)}`).toEqual([400, expect.stringMatching(/^(invalid_body|model_required)$/)]);
      }
    }
    expect(g.t.backends.requests("gpt-4o-mini.mock.localhost").length + g.t.backends.requests("aoai-east.mock.localhost").length).toBe(before);
    // A well-formed request right after is served: the state of one request never leaks into the next.
    expect((await g.chat(project.id, any, "gpt-4o-mini")).status).toBe(200);
  });

  it("a backend refusing the gateway's credential is the caller's 502 with the gateway's own text, never the provider's", async () => {
    g.t.backends.configure("gpt-4o.mock.localhost", { requireKey: "a-key-the-registry-does-not-hold" });
    try {
      const refused = await g.chat(project.id, any, "gpt-4o");
      expect([refused.status, refused.json.error?.code]).toEqual([502, "backend_credential_refused"]);
      expect(refused.text).not.toMatch(/Access denied|subscription key|provider-key/);
      expect(g.t.backends.requests("gpt-4o.mock.localhost").at(-1)!.headers["api-key"]).toBe("provider-key-gpt-4o.mock.localhost");
    } finally {
      g.t.backends.configure("gpt-4o.mock.localhost", { requireKey: null as never });
    }
    expect((await g.chat(project.id, any, "gpt-4o")).status).toBe(200);
  });

  it("the virtual key never reaches a provider: the backend gets the provider key the registry holds", async () => {
    await g.chat(project.id, any, "gpt-4o", { headers: { authorization: `Bearer ${any}` } });
    const seen = g.t.backends.requests("gpt-4o.mock.localhost").at(-1)!;
    expect(seen.headers["api-key"]).toBe("provider-key-gpt-4o.mock.localhost");
    expect(JSON.stringify(seen)).not.toContain(any);
    expect(seen.headers.authorization).toBeUndefined();
  });

  it("a key scoped to one model is refused another — also when the path names another deployment than the body", async () => {
    expect((await g.chat(project.id, onlyMini, "gpt-4o-mini")).status).toBe(200);
    const other = await g.chat(project.id, onlyMini, "gpt-4o");
    expect(other.status).toBe(403);
    expect(other.json.error?.code).toBe("model_not_allowed");
    // The bypass: the body names the allowed model, the path another deployment.
    const before = g.t.backends.requests("gpt-4o.mock.localhost").length;
    const bypass = await g.call(project.id, "/openai/deployments/gpt-4o/chat/completions", { key: onlyMini, body: { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] } });
    expect(bypass.status).toBe(400);
    expect(bypass.json.error?.code).toBe("model_mismatch");
    const pathOnly = await g.call(project.id, "/openai/deployments/gpt-4o/chat/completions", { key: onlyMini, body: { messages: [{ role: "user", content: "hi" }] } });
    expect(pathOnly.status).toBe(403);
    // A deployment name the registry does not know is not a model of the project, whatever the backend serves.
    const raw = await g.call(project.id, "/openai/deployments/gpt-4o-2024-08-06/chat/completions", { key: any, body: { messages: [{ role: "user", content: "hi" }] } });
    expect([raw.status, raw.json.error?.code]).toEqual([404, "model_not_found"]);
    expect(g.t.backends.requests("gpt-4o.mock.localhost").length).toBe(before);
  });

  it("answers paths and methods the API does not serve as any path nobody serves (401 key_not_accepted), 401 without a valid key, 400 without a model", async () => {
    expect(refusal(await g.call(project.id, "/v1/models", { method: "GET", key: any }))).toEqual(NOT_SERVED);
    expect(refusal(await g.call(project.id, "/v1/chat/completions", { method: "GET", key: any }))).toEqual(NOT_SERVED);
    expect(refusal(await g.chat(project.id, "aigw_not-a-key", "gpt-4o"))).toEqual(NOT_SERVED);
    expect(refusal(await g.call(project.id, "/v1/chat/completions", { body: { messages: [] } }))).toEqual({ status: 401, code: "key_missing" });
    const noModel = await g.call(project.id, "/v1/chat/completions", { key: any, body: { messages: [{ role: "user", content: "hi" }] } });
    expect([noModel.status, noModel.json.error?.code]).toEqual([400, "model_required"]);
  });

  it("stock clients need no data-class header; with a data-class rule the header is required and checked", async () => {
    expect((await g.chat(project.id, any, "gpt-4o")).status).toBe(200);
    const current = await g.admin.projects.get(project.id);
    await g.admin.projects.update(project.id, { settings: { dataClass: { allowed: ["public", "internal"] } } }, current.etag);
    await g.publish("data classes");
    const missing = await g.chat(project.id, any, "gpt-4o");
    expect(missing.status).toBe(403);
    expect((await g.chat(project.id, any, "gpt-4o", { headers: { "x-aigov-data-class": "confidential" } })).status).toBe(403);
    expect((await g.chat(project.id, any, "gpt-4o", { headers: { "x-aigov-data-class": "internal" } })).status).toBe(200);
    expect((await g.chat(project.id, any, "gpt-4o", { headers: { "x-aigov-data-class": " Internal " } })).status).toBe(200);
    // A request declaring an allowed class next to another is not a request of the allowed class.
    for (const declared of ["confidential, internal", "internal,confidential", "internal, internal"]) {
      const r = await g.chat(project.id, any, "gpt-4o", { headers: { "x-aigov-data-class": declared } });
      expect([r.status, r.json.error?.code], declared).toEqual([403, "data_class_not_allowed"]);
    }
    const again = await g.admin.projects.get(project.id);
    await g.admin.projects.update(project.id, { settings: null }, again.etag);
    await g.publish("no data classes");
    expect((await g.chat(project.id, any, "gpt-4o")).status).toBe(200);
  });
});
