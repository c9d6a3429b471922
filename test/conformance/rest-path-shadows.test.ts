/**
 * The gateway decides which REST tool a call is (and so whether the key may make it) by matching the path
 * against the operations' templates. Backends may read the same path as another operation: servlet
 * containers (Tomcat, Jetty, Undertow: Spring) strip `;params` from each segment, and Rails routes match an
 * optional `.:format` suffix, so `/items/admin;x=1` and `/items/admin.json` are `getItem` to the gateway and
 * `getAdmin` there. Both are refused (400 `path_ambiguous`), directly and through the MCP server.
 * (Found by the tools attack helper, stop 41.) The backend below routes as Tomcat or Rails would.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const ok = { "200": { description: "ok", content: { "application/json": { schema: { type: "object" } } } } };
const DOC = {
  openapi: "3.1.0",
  info: { title: "Items", version: "1.0.0" },
  paths: {
    "/items/admin": { get: { operationId: "getAdmin", summary: "Administrative dump of every item", responses: ok } },
    "/items/{id}": { get: { operationId: "getItem", summary: "Read an item", parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }], responses: ok } },
  },
};

let g: Governed;
let dev: AigovClient;
const ran: string[] = [];
/** How the backend reads a path: a servlet container (path parameters stripped) or Rails (an optional `.:format` suffix). */
let mode: "servlet" | "rails" = "servlet";
let backendUrl = "";
let close: () => Promise<void>;

beforeAll(async () => {
  g = await Governed.start("t-path-shadows");
  dev = await g.as("dora", ["Developer"]);
  const server = createServer((req, res) => {
    const raw = new URL(req.url ?? "/", "http://b.invalid").pathname;
    const path = mode === "servlet" ? raw.split("/").map((s) => s.split(";")[0]).join("/") : raw.replace(/\.(json|xml|html)$/, "");
    const op = path === "/items/admin" ? "getAdmin" : /^\/items\/[^/]+$/.test(path) ? "getItem" : "none";
    ran.push(op);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ op }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  backendUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
});
afterAll(async () => {
  await close();
  await g.stop();
});

describe("a path a backend reads as another operation than the gateway checked", () => {
  it("directly: a key scoped to getItem cannot reach getAdmin as /items/admin;x=1 or /items/admin.json", async () => {
    const p = await g.project("path-params");
    const created = await g.admin.tools.createServer(p.id, { name: "items", source: { kind: "openapi", baseUrl: backendUrl, document: DOC }, discovery: { enabled: false, intervalHours: 24 } });
    const s = await until(async () => {
      const x = await g.admin.tools.getServer(p.id, created.id);
      if (x.discoveryState.status === "failed") throw new Error(JSON.stringify(x.discoveryState.failure));
      return x.discoveryState.status === "succeeded" ? x : undefined;
    }, "conversion");
    expect((await g.admin.tools.listTools(p.id, s.id)).items.map((t) => t.name).sort()).toEqual(["getAdmin", "getItem"]);
    await g.publish("items");
    const key = (await g.key(dev, p.id, { name: "getItem only", scopes: { tools: [`${s.id}/getItem`] } })).key;
    const rest = `${g.t.gateway.url}/${g.names.restApiPath(p.id, "items")}`;
    // Control: the key reads an item, and is refused getAdmin by its path.
    expect((await fetch(`${rest}/items/a`, { headers: { "api-key": key } })).status).toBe(200);
    expect((await fetch(`${rest}/items/admin`, { headers: { "api-key": key } })).status).toBe(403);
    expect(ran).toEqual(["getItem"]);
    // `;params` (servlet) and an extension on a sibling's literal (Rails), in any case and with an encoded dot: refused.
    for (const path of ["/items/admin;x=1", "/items/admin.json", "/items/ADMIN.xml", "/items/admin%2Ejson"]) {
      const res = await fetch(`${rest}${path}`, { headers: { "api-key": key } });
      expect([res.status, ((await res.json()) as { error?: { code?: string } }).error?.code], path).toEqual([400, "path_ambiguous"]);
    }
    expect(ran).toEqual(["getItem"]);
    // An id with an extension that names no sibling goes through.
    expect((await fetch(`${rest}/items/report.json`, { headers: { "api-key": key } })).status).toBe(200);
  }, 60_000);

  it("through the MCP server: getItem with id 'admin.json' (getAdmin at a Rails backend) is refused", async () => {
    mode = "rails";
    try {
      const p = await g.project("format-suffix");
      const created = await g.admin.tools.createServer(p.id, { name: "items", source: { kind: "openapi", baseUrl: backendUrl, document: DOC }, discovery: { enabled: false, intervalHours: 24 } });
      const s = await until(async () => {
        const x = await g.admin.tools.getServer(p.id, created.id);
        return x.discoveryState.status === "succeeded" ? x : undefined;
      }, "conversion");
      await g.publish("items");
      const key = (await g.key(dev, p.id, { name: "getItem only", scopes: { tools: [`${s.id}/getItem`] } })).key;
      const call = (name: string, args: Record<string, unknown>) =>
        fetch(`${g.t.gateway.url}/${g.names.mcpApiPath(p.id, "items")}/mcp`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, "mcp-protocol-version": "2025-06-18" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } }),
        }).then(async (r) => ({ status: r.status, text: await r.text() }));
      const before = ran.length;
      // Control: getAdmin itself is refused.
      expect((await call("getAdmin", {})).status).toBe(403);
      expect((await call("getItem", { id: "a" })).status).toBe(200);
      const res = await call("getItem", { id: "admin.json" });
      expect(ran.slice(before), res.text).toEqual(["getItem"]); // only the control call reached the backend
      expect(res.text).toContain("path_ambiguous");
    } finally {
      mode = "servlet";
    }
  }, 60_000);
});
