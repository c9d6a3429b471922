/**
 * Conformance: a REST API registered from an OpenAPI document of 200 operations becomes MCP tools
 * deterministically, and the tools are callable through the local gateway (REST-as-MCP) against a
 * local REST backend that echoes what reached it.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { convertOpenApi } from "../../src/pillars/tools/openapi/convert.js";
import { restRequestFor } from "../../src/pillars/tools/openapi/invoke.js";
import { generateOpenApi, startRestBackend, type RestBackend, type RestEcho } from "../fixtures/rest/index.js";
import { Governed } from "../support/governed.js";
import { ITEMS_API } from "../support/tools.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;
let backend: RestBackend;
const document = generateOpenApi(200);

beforeAll(async () => {
  g = await Governed.start("t-tools-openapi");
  dev = await g.as("dora", ["Developer"]);
  backend = await startRestBackend(document);
});
afterAll(async () => {
  await backend.close();
  await g.stop();
});

async function register(projectId: string, name: string) {
  const created = await g.admin.tools.createServer(projectId, { name, source: { kind: "openapi", baseUrl: backend.url, document } });
  return until(async () => {
    const s = await g.admin.tools.getServer(projectId, created.id);
    if (s.discoveryState.status === "failed") throw new Error(JSON.stringify(s.discoveryState.failure));
    return s.discoveryState.status === "succeeded" ? s : undefined;
  }, `conversion of ${name}`);
}

async function allTools(projectId: string, serverId: string) {
  const out: { name: string; hash: string }[] = [];
  let token: string | undefined;
  do {
    const page = await g.admin.tools.listTools(projectId, serverId, { maxPageSize: 100, ...(token ? { continuationToken: token } : {}) });
    out.push(...page.items.map((t) => ({ name: t.name, hash: t.hash })));
    token = page.continuationToken;
  } while (token);
  return out;
}

let rpcId = 0;
async function rpc(path: string, key: string, method: string, params: unknown) {
  const res = await fetch(`${g.t.gateway.url}/${path}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }),
  });
  return { status: res.status, json: (await res.json()) as { result?: Record<string, unknown>; error?: { message: string } } };
}

type Schema = Record<string, unknown>;
/** A value an input schema accepts (local refs resolved against the root's $defs), for calling every tool. */
function sample(schema: Schema, root: Schema, depth = 0): unknown {
  if (depth > 8) return null;
  if (typeof schema.$ref === "string") return sample((root.$defs as Record<string, Schema>)[schema.$ref.replace("#/$defs/", "")] ?? {}, root, depth + 1);
  if (Array.isArray(schema.enum)) return schema.enum[0];
  if ("const" in schema) return schema.const;
  for (const k of ["anyOf", "oneOf", "allOf"]) {
    const alts = schema[k] as Schema[] | undefined;
    if (alts?.length) return sample(alts.find((a) => a.type !== "null") ?? alts[0]!, root, depth + 1);
  }
  const type = Array.isArray(schema.type) ? (schema.type as string[]).find((t) => t !== "null") : (schema.type as string | undefined);
  switch (type) {
    case "integer":
      return Math.max(1, Number(schema.minimum ?? 1));
    case "number":
      return 1.5;
    case "boolean":
      return true;
    case "array":
      return [];
    case "object": {
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      const required = (schema.required ?? []) as string[];
      return Object.fromEntries(required.map((r) => [r, sample(props[r] ?? {}, root, depth + 1)]));
    }
    default:
      return typeof schema.format === "string" && schema.format === "date-time" ? "2026-12-03T00:00:00Z" : "v1";
  }
}

describe("conformance: OpenAPI documents as MCP tools at the local gateway", () => {
  it("200 operations convert deterministically: the same document gives the same tools, in two servers", async () => {
    const p = await g.project("openapi-determinism");
    const a = await register(p.id, "shop-a");
    const b = await register(p.id, "shop-b");
    const ta = await allTools(p.id, a.id);
    expect(ta.length).toBeGreaterThan(150);
    expect(await allTools(p.id, b.id)).toEqual(ta);
    expect(new Set(ta.map((t) => t.name)).size).toBe(ta.length);
  });

  it("the tools are listed and callable through the gateway; each call reaches the backend as its operation", async () => {
    const p = await g.project("openapi-calls");
    const s = await register(p.id, "shop");
    await g.publish("openapi tools");
    const key = (await g.key(dev, p.id, { name: "shop", scopes: { tools: [s.id] } })).key;
    const path = g.names.mcpApiPath(p.id, "shop");
    const listed = await rpc(path, key, "tools/list", {});
    expect(listed.status, JSON.stringify(listed.json)).toBe(200);
    const tools = (listed.json.result?.tools ?? []) as { name: string; inputSchema: Schema }[];
    expect(tools.map((t) => t.name).sort()).toEqual((await allTools(p.id, s.id)).map((t) => t.name).sort());

    const converted = await convertOpenApi(document);
    if (!converted.ok) throw new Error("the fixture document converts");
    const bindings = new Map(converted.tools.map((t) => [t.name, t.binding]));
    const picked = tools.filter((_, i) => i % 10 === 0);
    for (const tool of picked) {
      const before = backend.received.length;
      const args = sample(tool.inputSchema, tool.inputSchema) as Record<string, unknown>;
      const called = await rpc(path, key, "tools/call", { name: tool.name, arguments: args });
      expect(called.status, tool.name).toBe(200);
      expect(called.json.result?.isError, `${tool.name}: ${JSON.stringify(called.json.result?.content)}`).toBe(false);
      expect(backend.received.length, `${tool.name} reached the backend once`).toBe(before + 1);
      const echo = backend.received.at(-1) as RestEcho;
      // The backend saw the request the tool's operation makes from these arguments (computed
      // independently by the converter's binding), and the key never travelled on.
      const expected = restRequestFor(bindings.get(tool.name)!, args);
      if ("error" in expected) throw new Error(`${tool.name}: ${expected.error}`);
      expect([echo.method, echo.path], tool.name).toEqual([expected.method, `${new URL(backend.url).pathname.replace(/\/$/, "")}${expected.path.split("?")[0]}`]);
      if (expected.body !== undefined) expect(echo.body, tool.name).toEqual(JSON.parse(expected.body));
      expect(Object.keys(echo.headers).some((h) => h.toLowerCase() === "api-key")).toBe(false);
      const structured = called.json.result?.structuredContent as RestEcho | undefined;
      if (structured) expect(structured.path).toBe(echo.path);
    }
    const outside = await rpc(path, (await g.key(dev, p.id, { name: "models only" })).key, "tools/call", { name: picked[0]!.name, arguments: {} });
    expect(outside.status).toBe(401);

    // A key scoped to one tool: another tool is refused, through the MCP server and when the key calls
    // the REST API behind it directly (its operations are governed as the tools they are).
    const [one, other] = [tools.find((t) => bindings.get(t.name)!.method === "GET")!, tools.find((t) => bindings.get(t.name)!.method === "DELETE")!];
    const narrow = (await g.key(dev, p.id, { name: "one tool", scopes: { tools: [`${s.id}/${one.name}`] } })).key;
    const reached = backend.received.length;
    const viaMcp = await rpc(path, narrow, "tools/call", { name: other.name, arguments: sample(other.inputSchema, other.inputSchema) });
    expect([viaMcp.status, (viaMcp.json.error as { data?: { reason?: string } } | undefined)?.data?.reason]).toEqual([403, "tool_not_in_scope"]);
    const direct = restRequestFor(bindings.get(other.name)!, sample(other.inputSchema, other.inputSchema) as Record<string, unknown>);
    if ("error" in direct) throw new Error(direct.error);
    const res = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${direct.path}`, { method: direct.method, headers: { "api-key": narrow, ...direct.headers } });
    expect([res.status, ((await res.json()) as { error?: { code?: string } }).error?.code]).toEqual([403, "tool_not_in_scope"]);
    expect(backend.received.length).toBe(reached);
    const allowed = await rpc(path, narrow, "tools/call", { name: one.name, arguments: sample(one.inputSchema, one.inputSchema) });
    expect([allowed.status, allowed.json.result?.isError]).toEqual([200, false]);
    // The allowed GET called directly cannot ask a backend to run it as another method.
    const get = restRequestFor(bindings.get(one.name)!, sample(one.inputSchema, one.inputSchema) as Record<string, unknown>);
    if ("error" in get) throw new Error(get.error);
    const overrides = { "x-http-method-override": "DELETE", "x-http-method": "DELETE", "x-method-override": "DELETE" };
    const sep = get.path.includes("?") ? "&" : "?";
    // Override headers are removed on the way.
    const overridden = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${get.path}`, { method: get.method, headers: { "api-key": narrow, ...get.headers, ...overrides } });
    expect(overridden.status).toBe(200);
    const seen = backend.received.at(-1)!;
    expect([seen.method, Object.keys(seen.headers).filter((h) => h.toLowerCase() in overrides)]).toEqual(["GET", []]);
    // A query naming it is refused, however the name is spelled for a backend that decodes it (PHP: `.` and
    // `[` read as `_`, leading spaces dropped); a parameter that merely contains the word goes through.
    const reachedBefore = backend.received.length;
    for (const q of ["_method=DELETE", "%5Fmethod=DELETE", ".method=DELETE", "+_method=DELETE", "%20%20.m%65thod=DELETE", "_METHOD=DELETE", "[method=DELETE", "_method[]=DELETE", "_method%00x=DELETE"]) {
      const res = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${get.path}${sep}${q}`, { method: get.method, headers: { "api-key": narrow, ...get.headers } });
      expect([res.status, ((await res.json()) as { error?: { code?: string } }).error?.code], q).toEqual([400, "method_override_refused"]);
    }
    expect(backend.received.length).toBe(reachedBefore);
    expect((await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${get.path}${sep}payment_method=card`, { method: get.method, headers: { "api-key": narrow, ...get.headers } })).status).toBe(200);
    // A POST's form body naming another method (Rails, Laravel, Symfony read `_method` there) is refused.
    const post = tools.find((t) => bindings.get(t.name)!.method === "POST")!;
    const wide = (await g.key(dev, p.id, { name: "whole server", scopes: { tools: [s.id] } })).key;
    const postRequest = restRequestFor(bindings.get(post.name)!, sample(post.inputSchema, post.inputSchema) as Record<string, unknown>);
    if ("error" in postRequest) throw new Error(postRequest.error);
    const before = backend.received.length;
    // A form names it however its names are encoded (percent-encoded, PHP's `.` for `_`), and a compressed body
    // hides it from the gateway (a backend inflates it): any body but plain JSON is refused (tools send JSON only).
    const forms: [string, string | Uint8Array, Record<string, string>?][] = [
      ["application/x-www-form-urlencoded", "_method=DELETE&x=1"],
      ["application/x-www-form-urlencoded", "%5Fmethod=DELETE"],
      ["application/x-www-form-urlencoded", ".method=DELETE"],
      ["multipart/form-data; boundary=b", '--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b--\r\n'],
      ["application/x-www-form-urlencoded", gzipSync("_method=DELETE"), { "content-encoding": "gzip" }],
      ["application/json", gzipSync('{"_method":"DELETE"}'), { "content-encoding": "gzip" }],
      ["application/x-www-form-urlencoded; charset=json", "_method=DELETE"],
      ["application/x-www-form-urlencoded, application/json", "_method=DELETE"],
      ["", "_method=DELETE"],
    ];
    for (const [type, body, extra] of forms) {
      const res = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${postRequest.path}`, { method: "POST", headers: { "api-key": wide, ...(type ? { "content-type": type } : {}), ...extra }, body: type ? body : new Blob([body]) });
      expect([res.status, ((await res.json()) as { error?: { code?: string } }).error?.code], `${type} ${JSON.stringify(extra ?? {})}`).toEqual([415, "body_not_json"]);
    }
    // A JSON body naming it (Laravel and Symfony read `_method` from JSON input too), escaped or not: refused.
    for (const body of ['{"_method":"DELETE"}', '{"\\u005fmethod":"DELETE","name":"x"}', ' {"name":"x","_method":"DELETE"}']) {
      const res = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${postRequest.path}`, { method: "POST", headers: { "api-key": wide, "content-type": "application/json" }, body });
      expect([res.status, ((await res.json()) as { error?: { code?: string } }).error?.code], body).toEqual([400, "method_override_refused"]);
    }
    // A body the gateway cannot parse is a 400, never a 500; one behind a byte order mark (which a backend may
    // skip, reading the `_method` the gateway's check would not see) is refused as well.
    for (const body of ['{"_method":"DELETE"', "{", '\uFEFF{"_method":"DELETE"}', ' \uFEFF{"name":"x"}']) {
      const res = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${postRequest.path}`, { method: "POST", headers: { "api-key": wide, "content-type": "application/json" }, body });
      expect([res.status, ((await res.json()) as { error?: { code?: string } }).error?.code], JSON.stringify(body)).toEqual([400, "invalid_body"]);
    }
    // A path whose `;params` a servlet backend drops before routing (`/items/admin;x=1` is `/items/admin` there) is refused.
    const byParam = tools.find((t) => bindings.get(t.name)!.method === "GET" && /\}$/.test(bindings.get(t.name)!.urlTemplate))!;
    const paramRequest = restRequestFor(bindings.get(byParam.name)!, sample(byParam.inputSchema, byParam.inputSchema) as Record<string, unknown>);
    if ("error" in paramRequest) throw new Error(paramRequest.error);
    const [pathOnly, query] = paramRequest.path.split("?") as [string, string | undefined];
    const semicolon = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${pathOnly};x=1${query ? `?${query}` : ""}`, { method: "GET", headers: { "api-key": wide, ...paramRequest.headers } });
    expect([semicolon.status, ((await semicolon.json()) as { error?: { code?: string } }).error?.code]).toEqual([400, "path_ambiguous"]);
    expect(backend.received.length).toBe(before);
    // Plain JSON still goes through.
    const plain = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${postRequest.path}`, { method: "POST", headers: { "api-key": wide, "content-type": "application/json; charset=utf-8", ...postRequest.headers }, body: postRequest.body ?? "{}" });
    expect(plain.status).toBe(200);
    expect(backend.received.length).toBe(before + 1);
  }, 120_000);

  it("a deprecated converted server carries its Sunset at the gateway: through its MCP server, a toolbox of its tools and its REST API", async () => {
    const converted = await convertOpenApi(document);
    if (!converted.ok) throw new Error("the fixture document converts");
    const get = converted.tools.find((t) => t.binding.method === "GET")!;
    const p = await g.project("openapi-sunset");
    const s = await register(p.id, "shop");
    await g.admin.tools.updateServer(p.id, s.id, { status: "deprecated", sunsetDate: "2099-03-31" }, (await g.admin.tools.getServer(p.id, s.id)).etag);
    const box = await g.admin.toolboxes.create(p.id, { name: "shop-box", tools: [{ server: "shop", tool: get.name }] });
    await g.publish("a deprecated converted server");
    const key = (await g.key(dev, p.id, { name: "sunset", scopes: { tools: [s.id, box.id] } })).key;
    const sunset = "Tue, 31 Mar 2099 00:00:00 GMT";
    const args = sample(get.inputSchema, get.inputSchema) as Record<string, unknown>;
    for (const path of [g.names.mcpApiPath(p.id, "shop"), g.names.toolboxApiPath(p.id, "shop-box")]) {
      const res = await fetch(`${g.t.gateway.url}/${path}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method: "tools/call", params: { name: get.name, arguments: args } }),
      });
      await res.arrayBuffer();
      expect([path, res.status, res.headers.get("sunset")]).toEqual([path, 200, sunset]);
    }
    const req = restRequestFor(get.binding, args);
    if ("error" in req) throw new Error(req.error);
    const direct = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${req.path}`, { method: req.method, headers: { "api-key": key, ...req.headers } });
    await direct.arrayBuffer();
    expect([direct.status, direct.headers.get("sunset")]).toEqual([200, sunset]);
  }, 120_000);

  it("per-tool rate limits hold per key and tool however the tool is reached: its server, a toolbox, or its REST API directly", async () => {
    const converted = await convertOpenApi(document);
    if (!converted.ok) throw new Error("the fixture document converts");
    const gets = converted.tools.filter((t) => t.binding.method === "GET");
    const [limited, other] = [gets[0]!, gets[1]!];
    const args = (t: typeof limited) => sample(t.inputSchema, t.inputSchema) as Record<string, unknown>;
    const p = await g.project("openapi-limits");
    const s = await register(p.id, "shop");
    const limits = { tools: { [limited.name]: { calls: 2, renewalPeriodSeconds: 60 } }, perTool: { calls: 3, renewalPeriodSeconds: 60 } };
    await g.admin.tools.updateServer(p.id, s.id, { limits }, (await g.admin.tools.getServer(p.id, s.id)).etag);
    const box = await g.admin.toolboxes.create(p.id, { name: "shop-box", tools: [{ server: "shop", tool: limited.name }] });
    await g.publish("openapi limits");
    const key = (await g.key(dev, p.id, { name: "limited", scopes: { tools: [s.id, box.id] } })).key;
    const call = async (path: string, tool: string) => {
      const t = converted.tools.find((x) => x.name === tool)!;
      const r = await rpc(path, key, "tools/call", { name: tool, arguments: args(t) });
      return r.status === 200 && r.json.result?.isError === true ? `tool error: ${JSON.stringify(r.json.result.content)}` : r.status;
    };
    const direct = async (tool: (typeof converted.tools)[number]) => {
      const req = restRequestFor(tool.binding, args(tool));
      if ("error" in req) throw new Error(req.error);
      const res = await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "shop")}${req.path}`, { method: req.method, headers: { "api-key": key, ...req.headers } });
      await res.arrayBuffer();
      return res.status;
    };
    const reached = backend.received.length;
    // Two calls of the limited tool, one through the server and one through the toolbox, use its budget:
    // a third is refused through either MCP API and when the key calls the operation itself.
    expect(await call(g.names.mcpApiPath(p.id, "shop"), limited.name)).toBe(200);
    expect(await call(g.names.toolboxApiPath(p.id, "shop-box"), limited.name)).toBe(200);
    expect(await direct(limited)).toBe(429);
    expect(await call(g.names.mcpApiPath(p.id, "shop"), limited.name)).toBe(429);
    expect(await call(g.names.toolboxApiPath(p.id, "shop-box"), limited.name)).toBe(429);
    expect(backend.received.length).toBe(reached + 2);
    // A tool without a limit of its own has the server's per-tool default, also when called directly.
    expect([await direct(other), await direct(other), await call(g.names.mcpApiPath(p.id, "shop"), other.name), await direct(other)]).toEqual([200, 200, 200, 429]);
    g.t.clock.advance(61_000);
    expect(await direct(limited)).toBe(200);
  }, 120_000);
});

describe("conformance: a REST tool's approval holds for the endpoint it was approved for", () => {
  const op = (summary: string) => ({ operationId: "deleteItem", summary, parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }], responses: { "204": { description: "gone" } } });
  const v1 = { openapi: "3.1.0", info: { title: "Items", version: "1.0.0" }, paths: { "/items/{id}": { delete: op("Delete an item") } } };
  // The same tool (name, description, schema: the same definition hash), bound to another endpoint.
  const v2 = { openapi: "3.1.0", info: { title: "Items", version: "1.0.0" }, paths: { "/admin/tenants/{id}": { delete: op("Delete an item") } } };
  const both = { ...v1, paths: { ...v1.paths, ...v2.paths, "/admin/tenants/{id}": { delete: { ...op("Delete a tenant"), operationId: "deleteTenant" } } } };
  let items: RestBackend;
  beforeAll(async () => {
    items = await startRestBackend(both);
  });
  afterAll(() => items.close());

  /** A project whose tools need approval, with the items server discovered and published, and a key for it. */
  async function approvalProject(name: string) {
    const p = await g.project(name);
    await g.admin.tools.putSettings(p.id, { approvalMode: "all" }, "initial");
    const created = await g.admin.tools.createServer(p.id, { name: "items", source: { kind: "openapi", baseUrl: items.url, document: v1 }, discovery: { enabled: false, intervalHours: 24 } });
    /** The server once a discovery made a snapshot other than `before`. */
    const discovered = (before?: string) =>
      until(async () => {
        const server = await g.admin.tools.getServer(p.id, created.id);
        return server.discoveryState.status === "succeeded" && server.discoveryState.snapshotId !== before ? server : undefined;
      }, `a snapshot after ${before}`);
    const s = await discovered();
    const [tool] = (await g.admin.tools.listTools(p.id, s.id)).items;
    await g.publish("rest tools");
    const key = (await g.key(dev, p.id, { name: "items", scopes: { tools: [s.id] } })).key;
    return { p, s, tool, key, path: g.names.mcpApiPath(p.id, "items"), discovered };
  }

  it("re-pointing an approved tool at another operation suspends its approval (binding_changed) and the gateway refuses it until approved again", async () => {
    const { p, s, tool, key, path, discovered } = await approvalProject("rest-approvals");

    /** Asks for the tool's approval (approvers see where a call goes), approves it and waits until the gateway has it. */
    const approve = async (justification: string, urlTemplate: string) => {
      const asked = await dev.tools.requestApproval(p.id, s.id, tool!.name, { justification });
      const approval = await g.admin.approvals.get(asked.approval.id);
      expect(approval.subject.change).toMatchObject({ operation: { method: "DELETE", urlTemplate } });
      await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
      await until(async () => ((await g.admin.tools.getTool(p.id, s.id, tool!.name)).approval.state === "approved" ? true : undefined), `approved for ${urlTemplate}`);
      await g.systemPublish(approval.id);
    };
    /** The path the backend sees for a path of the document. */
    const reachedPath = (id: string) => `${new URL(items.url).pathname.replace(/\/$/, "")}${id}`;

    await approve("cleanup", "/items/{id}");
    const approved = await rpc(path, key, "tools/call", { name: tool!.name, arguments: { id: "a" } });
    expect([approved.status, (items.received.at(-1) as RestEcho).path]).toEqual([200, reachedPath("/items/a")]);

    // An approval made before bindings were pinned (none stored): the next discovery pins the binding it holds for.
    const grants = async () => (await g.t.container().items.query<{ id: string; serverId: string; tool: string; pinnedBinding?: string }>({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.docType = 'toolGrant'", parameters: [{ name: "@t", value: g.tenant }] }).fetchAll()).resources.filter((x) => x.serverId === s.id);
    const [legacy] = await grants();
    const pinned = legacy!.pinnedBinding;
    expect(pinned).toMatch(/^v2:[0-9a-f]{64}$/);
    await g.t.container().item(legacy!.id, [g.tenant, p.id]).replace({ ...legacy, pinnedBinding: undefined });
    const unchanged = (await g.admin.tools.getServer(p.id, s.id)).discoveryState.lastAttemptAt;
    await g.admin.tools.discover(p.id, s.id);
    await until(async () => ((await g.admin.tools.getServer(p.id, s.id)).discoveryState.lastAttemptAt !== unchanged ? true : undefined), "rediscovered");
    await until(async () => ((await grants())[0]!.pinnedBinding === pinned ? true : undefined), "the binding pinned");

    // Re-pointed: same definition, another endpoint.
    const current = await g.admin.tools.getServer(p.id, s.id);
    await g.admin.tools.updateServer(p.id, s.id, { source: { kind: "openapi", baseUrl: items.url, document: v2 } }, current.etag);
    const rediscovered = await discovered(current.discoveryState.snapshotId);
    const after = await g.admin.tools.getTool(p.id, s.id, tool!.name);
    expect(after.hash).toBe(tool!.hash);
    expect(after.approval).toMatchObject({ state: "suspended", cause: "binding_changed" });
    await g.systemPublish(`snapshot ${rediscovered.discoveryState.snapshotId}`);
    const reached = items.received.length;
    const refused = await rpc(path, key, "tools/call", { name: tool!.name, arguments: { id: "b" } });
    expect([refused.status, (refused.json.error as { data?: { reason?: string } } | undefined)?.data?.reason]).toEqual([403, "tool_not_approved"]);
    expect(items.received.length).toBe(reached);

    // Approved for the new endpoint, it is callable there.
    await approve("the admin endpoint, reviewed", "/admin/tenants/{id}");
    const reapproved = await rpc(path, key, "tools/call", { name: tool!.name, arguments: { id: "c" } });
    expect([reapproved.status, (items.received.at(-1) as RestEcho).path]).toEqual([200, reachedPath("/admin/tenants/c")]);
  }, 120_000);

  it("re-pointing an approved tool's server at another host suspends its approval: the same definition elsewhere is not approved", async () => {
    const elsewhere = await startRestBackend(both);
    try {
      const { p, s, tool, key, path, discovered } = await approvalProject("rest-approvals-host");
      const approve = async () => {
        const asked = await dev.tools.requestApproval(p.id, s.id, tool!.name, { justification: "cleanup" });
        const approval = await g.admin.approvals.get(asked.approval.id);
        await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
        await until(async () => ((await g.admin.tools.getTool(p.id, s.id, tool!.name)).approval.state === "approved" ? true : undefined), "approved");
        await g.systemPublish(approval.id);
        return approval;
      };
      // Approvers see where calls go.
      expect((await approve()).subject.change).toMatchObject({ endpoint: new URL(items.url).href, operation: { method: "DELETE", urlTemplate: "/items/{id}" } });
      expect((await rpc(path, key, "tools/call", { name: tool!.name, arguments: { id: "a" } })).status).toBe(200);

      // The same document served by another host: same definition, same operation, another endpoint.
      const current = await g.admin.tools.getServer(p.id, s.id);
      await g.admin.tools.updateServer(p.id, s.id, { source: { kind: "openapi", baseUrl: elsewhere.url, document: v1 } }, current.etag);
      await discovered(current.discoveryState.snapshotId);
      const after = await g.admin.tools.getTool(p.id, s.id, tool!.name);
      expect(after.hash).toBe(tool!.hash);
      expect(after.approval).toMatchObject({ state: "suspended", cause: "binding_changed" });
      await g.publish("the new host");
      const refused = await rpc(path, key, "tools/call", { name: tool!.name, arguments: { id: "b" } });
      expect([refused.status, (refused.json.error as { data?: { reason?: string } } | undefined)?.data?.reason]).toEqual([403, "tool_not_approved"]);
      expect(elsewhere.received.length).toBe(0);
      // Approved for the new host, it is callable there.
      await approve();
      expect((await rpc(path, key, "tools/call", { name: tool!.name, arguments: { id: "c" } })).status).toBe(200);
      expect(elsewhere.received.length).toBe(1);

      // An approval stored before endpoints were pinned (no pin at all): moved back to the first host, the
      // previous snapshot's source says where it was approved, so it is suspended rather than pinned there.
      const grant = (await g.t.container().items.query<{ id: string; serverId: string }>({ query: "SELECT * FROM c WHERE c.tenantId = @t AND c.docType = 'toolGrant'", parameters: [{ name: "@t", value: g.tenant }] }).fetchAll()).resources.find((x) => x.serverId === s.id)!;
      await g.t.container().item(grant.id, [g.tenant, p.id]).replace({ ...grant, pinnedBinding: undefined });
      const moved = await g.admin.tools.getServer(p.id, s.id);
      await g.admin.tools.updateServer(p.id, s.id, { source: { kind: "openapi", baseUrl: items.url, document: v1 } }, moved.etag);
      await discovered(moved.discoveryState.snapshotId);
      expect((await g.admin.tools.getTool(p.id, s.id, tool!.name)).approval).toMatchObject({ state: "suspended", cause: "binding_changed" });
    } finally {
      await elsewhere.close();
    }
  }, 120_000);
});

describe("conformance: an edit made while a discovery runs is discovered", () => {
  it("a listing of the old source that fails (or is unchanged) is not recorded on the new source: the run lists again", async () => {
    // The old source: a document URL that answers only when released, with a failure.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const asked: string[] = [];
    const old = createServer((req, res) => {
      asked.push(req.url ?? "");
      void released.then(() => res.writeHead(503).end("down"));
    });
    await new Promise<void>((r) => old.listen(0, "127.0.0.1", r));
    try {
      const p = await g.project("edited while listed");
      const created = await g.admin.tools.createServer(p.id, { name: "moving", source: { kind: "openapi", baseUrl: backend.url, documentUrl: `http://127.0.0.1:${(old.address() as AddressInfo).port}/openapi.json` }, discovery: { enabled: false, intervalHours: 24 } });
      await until(async () => (asked.length ? true : undefined), "the old source asked");
      // Edited while its discovery waits on the old source: the edit's discovery joins the running one.
      await g.admin.tools.updateServer(p.id, created.id, { source: { kind: "openapi", baseUrl: backend.url, document: ITEMS_API } }, created.etag);
      release();
      const s = await until(async () => {
        const x = await g.admin.tools.getServer(p.id, created.id);
        return x.discoveryState.status === "succeeded" || x.discoveryState.status === "failed" ? x : undefined;
      }, "the discovery's outcome");
      expect(s.discoveryState, JSON.stringify(s.discoveryState)).toMatchObject({ status: "succeeded", toolCount: 2 });
      expect((await g.admin.tools.listTools(p.id, s.id)).items.map((t) => t.name).sort()).toEqual(["deleteItem", "getItem"]);
    } finally {
      old.closeAllConnections();
      await new Promise<void>((r) => old.close(() => r()));
    }
  });
});
