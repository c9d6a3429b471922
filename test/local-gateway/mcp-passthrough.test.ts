import { randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo } from "node:net";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { localIdentityToken } from "../../src/local-gateway/index.js";
import { type GatewayArtifact } from "../../src/ports/gateway.js";
import { GatewayFolder, startHarness, type Harness } from "./support.js";

// ---- the remote MCP server: the SDK's own, over Streamable HTTP (with sessions) and over SSE ----

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
}

/** Lets a test hold a tool's answer until it has seen the tool's progress notification arrive. */
let release: () => void = () => undefined;

function mcpServer(): McpServer {
  const server = new McpServer({ name: "upstream", version: "1.2.3" });
  server.registerTool("echo", { description: "echoes", inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: "text", text }] }));
  server.registerTool("add", { description: "adds", inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] }));
  server.registerTool("secret", { description: "not for every key" }, async () => ({ content: [{ type: "text", text: "classified" }] }));
  // A tool without an input schema is called with `extra` alone.
  server.registerTool("slow", { description: "reports progress, then waits to be released" }, async (extra) => {
    const token = extra._meta?.progressToken;
    const held = new Promise<void>((ok) => (release = ok));
    if (token !== undefined) await extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress: 1, total: 2 } });
    await held;
    return { content: [{ type: "text", text: "released" }] };
  });
  return server;
}

async function startUpstream(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const sse = new Map<string, SSEServerTransport>();
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const url = new URL(req.url ?? "/", "http://upstream");
    if (url.pathname === "/sse" && req.method === "GET") {
      const t = new SSEServerTransport("/messages", res);
      sse.set(t.sessionId, t);
      res.on("close", () => sse.delete(t.sessionId));
      await mcpServer().connect(t);
      return;
    }
    if (url.pathname === "/messages" && req.method === "POST") {
      const t = sse.get(url.searchParams.get("sessionId") ?? "");
      if (!t) return void res.writeHead(404).end();
      return t.handlePostMessage(req, res);
    }
    if (url.pathname === "/mcp") {
      const sid = req.headers["mcp-session-id"];
      let t = typeof sid === "string" ? sessions.get(sid) : undefined;
      if (!t) {
        if (typeof sid === "string") return void res.writeHead(404).end();
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => void sessions.set(id, created) });
        created.onclose = () => void (created.sessionId && sessions.delete(created.sessionId));
        await mcpServer().connect(created);
        t = created;
      }
      return t.handleRequest(req, res);
    }
    res.writeHead(404).end();
  };
  const server: Server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}

// ---- what the control plane publishes: two pass-through servers with the policy the compiler emits ----

const attr = (v: string) => v.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
const text = (v: string) => v.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const BATCH = `@(context.Request.Method == "POST" && context.Request.Body != null && context.Request.Body.As<string>(preserveContent: true).TrimStart().StartsWith("["))`;
const METHOD = `@(context.Request.Method == "POST" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["method"]?.ToString() ?? "") : "")`;
const TOOL = `@((string)context.Variables["aigov-mcp-method"] == "tools/call" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["params"]?["name"]?.ToString() ?? "") : "")`;
const ALLOWED = `@("|echo|add|slow|".Contains("|" + (string)context.Variables["aigov-mcp-tool"] + "|"))`;
const REFUSAL = `@("{\\"jsonrpc\\":\\"2.0\\",\\"id\\":" + (context.Request.Body?.As<JObject>(preserveContent: true)?["id"]?.ToString(Newtonsoft.Json.Formatting.None) ?? "null") + ",\\"error\\":{\\"code\\":-32001,\\"message\\":\\"tool_not_allowed\\"}}")`;
const json = `<set-header name="Content-Type" exists-action="override"><value>application/json</value></set-header>`;
const MCP_POLICY = `<policies>
  <inbound>
    <base />
    <choose>
      <when condition="${attr(BATCH)}">
        <return-response><set-status code="400" reason="Bad Request" />${json}<set-body>${text('{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batch_not_allowed"}}')}</set-body></return-response>
      </when>
    </choose>
    <set-variable name="aigov-mcp-method" value="${attr(METHOD)}" />
    <set-variable name="aigov-mcp-tool" value="${attr(TOOL)}" />
    <set-variable name="aigov-mcp-allowed" value="${attr(ALLOWED)}" />
    <choose>
      <when condition="${attr(`@((string)context.Variables["aigov-mcp-method"] == "tools/call" && !(bool)context.Variables["aigov-mcp-allowed"])`)}">
        <return-response><set-status code="403" reason="Forbidden" />${json}<set-body>${text(REFUSAL)}</set-body></return-response>
      </when>
    </choose>
    <rate-limit-by-key calls="3" renewal-period="60" counter-key="${attr(`@(context.Subscription.Id + "|" + (string)context.Variables["aigov-mcp-tool"])`)}" increment-condition="${attr(`@((string)context.Variables["aigov-mcp-method"] == "tools/call")`)}" />
    <set-header name="x-upstream-token" exists-action="override"><value>{{nv-upstream-token}}</value></set-header>
    <authentication-managed-identity resource="api://mcp-upstream" />
  </inbound>
  <backend><base /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>`;

const KEY = "secret:key-a:v1";
const MCP_ONLY_KEY = "secret:key-b:v1";

function artifacts(upstream: string): GatewayArtifact[] {
  const api = (id: string, path: string, transportType: "streamable" | "sse"): GatewayArtifact => ({
    kind: "api",
    id,
    displayName: `MCP ${id}`,
    path,
    protocols: ["https"],
    subscriptionRequired: true,
    subscriptionKeyHeaderName: "api-key",
    operations: [],
    mcp: {
      type: "passThrough",
      serviceUrl: upstream,
      transportType,
      endpoints: transportType === "sse" ? [{ name: "sse", uriTemplate: "/sse" }, { name: "message", uriTemplate: "/messages" }] : [{ name: "message", uriTemplate: "/mcp" }],
    },
  });
  return [
    { kind: "namedValue", id: "nv-upstream-token", displayName: "nv-upstream-token", secret: false, value: "upstream-credential" },
    api("mcp-stream", "t1/mcp/stream", "streamable"),
    api("mcp-sse", "t1/mcp/sse", "sse"),
    { kind: "policy", scope: { type: "api", apiId: "mcp-stream" }, xml: MCP_POLICY },
    { kind: "policy", scope: { type: "api", apiId: "mcp-sse" }, xml: MCP_POLICY },
    { kind: "product", id: "toolbox", displayName: "toolbox", subscriptionRequired: true, approvalRequired: false, state: "published", apis: ["mcp-stream", "mcp-sse"] },
    { kind: "subscription", id: "key-a", displayName: "a", scope: { type: "product", productId: "toolbox" }, state: "active", primaryKey: { name: "key-a", version: "v1" }, secondaryKey: { name: "key-a2", version: "v1" } },
    { kind: "subscription", id: "key-b", displayName: "b", scope: { type: "api", apiId: "mcp-stream" }, state: "active", primaryKey: { name: "key-b", version: "v1" }, secondaryKey: { name: "key-b2", version: "v1" } },
  ];
}

let upstream: Awaited<ReturnType<typeof startUpstream>>;
let h: Harness;
let clients: Client[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
  const folder = new GatewayFolder();
  await new FilePublisher(folder.root).publish(artifacts(upstream.url), {});
  h = await startHarness(folder);
});

afterAll(async () => {
  await h.close();
  await upstream.close();
});

beforeEach(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  clients = [];
  upstream.seen.length = 0;
  h.clock.advance(120_000); // every rate-limit window of an earlier test is over
});

async function connect(kind: "streamable" | "sse", key = KEY): Promise<{ client: Client; transport: StreamableHTTPClientTransport | SSEClientTransport }> {
  const headers = { "api-key": key };
  const transport =
    kind === "streamable"
      ? new StreamableHTTPClientTransport(new URL(`${h.gateway.url}/t1/mcp/stream/mcp`), { requestInit: { headers } })
      : new SSEClientTransport(new URL(`${h.gateway.url}/t1/mcp/sse/sse`), { requestInit: { headers } });
  const client = new Client({ name: "test-client", version: "0.0.1" });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

const rpc = (method: string, params: object, id: unknown = 1) => JSON.stringify({ jsonrpc: "2.0", id, method, params });
const post = (path: string, body: string, headers: Record<string, string> = { "api-key": KEY }) =>
  fetch(`${h.gateway.url}${path}`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body });

async function logs(table: string): Promise<Record<string, unknown>[]> {
  await h.gateway.flushLogs();
  const dir = join(h.logDir, table);
  // One file per UTC hour: <Table>/<yyyy-mm-dd>/<hh>.ndjson.
  const files = (await readdir(dir, { recursive: true }).catch(() => [] as string[])).filter((f) => f.endsWith(".ndjson"));
  const lines = (await Promise.all(files.map((f) => readFile(join(dir, f), "utf8")))).join("").split("\n").filter(Boolean);
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("local gateway: pass-through MCP servers", () => {
  it("loads what the file publisher wrote", () => {
    expect(h.gateway.issues()).toEqual([]);
  });

  for (const kind of ["streamable", "sse"] as const) {
    it(`${kind}: initialize, tools/list and tools/call work through the gateway with a key`, async () => {
      const { client } = await connect(kind);
      expect(client.getServerVersion()).toMatchObject({ name: "upstream", version: "1.2.3" });
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name).sort()).toEqual(["add", "echo", "secret", "slow"]);
      expect(await client.callTool({ name: "echo", arguments: { text: "hi" } })).toMatchObject({ content: [{ type: "text", text: "hi" }] });
      expect(await client.callTool({ name: "add", arguments: { a: 2, b: 3 } })).toMatchObject({ content: [{ type: "text", text: "5" }] });
    });

    it(`${kind}: the remote server never sees the key, and gets what the policy set`, async () => {
      const { client } = await connect(kind);
      await client.callTool({ name: "echo", arguments: { text: "x" } });
      expect(upstream.seen.length).toBeGreaterThan(1);
      for (const r of upstream.seen) {
        expect(r.headers["api-key"], `${r.method} ${r.url}`).toBeUndefined();
        expect(r.url).not.toContain("subscription-key");
        expect(r.headers["x-upstream-token"]).toBe("upstream-credential");
        expect(r.headers.authorization).toBe(`Bearer ${localIdentityToken("api://mcp-upstream")}`);
      }
    });

    it(`${kind}: a tool outside the policy's list is refused with a JSON-RPC error; the others pass`, async () => {
      const { client } = await connect(kind);
      await expect(client.callTool({ name: "secret", arguments: {} })).rejects.toThrow(/403|tool_not_allowed/);
      expect(await client.callTool({ name: "echo", arguments: { text: "still" } })).toMatchObject({ content: [{ text: "still" }] });
      expect(upstream.seen.some((r) => r.method === "POST" && JSON.stringify(r.url).includes("secret"))).toBe(false);
    });

    it(`${kind}: the per-tool rate limit bites on the 4th call of one tool, not on another tool`, async () => {
      const { client } = await connect(kind);
      for (let i = 0; i < 3; i++) await client.callTool({ name: "echo", arguments: { text: `n${i}` } });
      await expect(client.callTool({ name: "echo", arguments: { text: "over" } })).rejects.toThrow(/429|Rate limit/);
      expect(await client.callTool({ name: "add", arguments: { a: 1, b: 1 } })).toMatchObject({ content: [{ text: "2" }] });
      // tools/list is not a tools/call: it does not count, and is not limited.
      expect((await client.listTools()).tools.length).toBe(4);
    });

    it(`${kind}: streams are passed as they come (a progress notification arrives before the answer exists)`, async () => {
      const { client } = await connect(kind);
      const progress: number[] = [];
      const result = await client.callTool({ name: "slow", arguments: {} }, undefined, {
        onprogress: (p) => {
          progress.push(p.progress);
          // Only a notification that reached the client before the answer was produced can release it.
          release();
        },
      });
      expect(progress).toEqual([1]);
      expect(result).toMatchObject({ content: [{ text: "released" }] });
    });
  }

  it("streamable: the session id, the protocol version header, GET and DELETE pass through", async () => {
    const { client, transport } = await connect("streamable");
    const t = transport as StreamableHTTPClientTransport;
    expect(t.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    await client.listTools();
    const after = upstream.seen.filter((r) => r.method === "POST").slice(1);
    expect(after.length).toBeGreaterThan(0);
    for (const r of after) {
      expect(r.headers["mcp-session-id"]).toBe(t.sessionId);
      expect(r.headers["mcp-protocol-version"]).toBe(t.protocolVersion);
    }
    // The client opened the server's GET stream after initialization.
    expect(upstream.seen.some((r) => r.method === "GET" && r.headers["mcp-session-id"] === t.sessionId)).toBe(true);
    const sid = t.sessionId ?? "";
    await t.terminateSession();
    expect(upstream.seen.some((r) => r.method === "DELETE" && r.headers["mcp-session-id"] === sid)).toBe(true);
    // The upstream forgot the session: the next request with it is its 404, passed back as it is.
    const gone = await post("/t1/mcp/stream/mcp", rpc("tools/list", {}), { "api-key": KEY, "mcp-session-id": sid });
    expect(gone.status).toBe(404);
  });

  it("notifications are answered 202 with no body, as the remote server answered", async () => {
    const init = await post("/t1/mcp/stream/mcp", rpc("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } }));
    expect(init.status).toBe(200);
    const sid = init.headers.get("mcp-session-id") ?? "";
    await init.text();
    const note = await post("/t1/mcp/stream/mcp", JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }), { "api-key": KEY, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" });
    expect(note.status).toBe(202);
    expect(await note.text()).toBe("");
  });

  it("without a key: 401 (header or query), as for HTTP APIs; the remote server is not called", async () => {
    const res = await post("/t1/mcp/stream/mcp", rpc("initialize", {}), {});
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('name="api-key"');
    expect((await fetch(`${h.gateway.url}/t1/mcp/sse/sse`)).status).toBe(401);
    expect((await fetch(`${h.gateway.url}/t1/mcp/sse/sse`, { headers: { "api-key": "wrong" } })).status).toBe(401);
    // A key scoped to one API does not open another.
    expect((await post("/t1/mcp/sse/messages?sessionId=x", rpc("ping", {}), { "api-key": MCP_ONLY_KEY })).status).toBe(401);
    expect(upstream.seen).toEqual([]);
    const c = new Client({ name: "test-client", version: "0.0.1" });
    await expect(c.connect(new StreamableHTTPClientTransport(new URL(`${h.gateway.url}/t1/mcp/stream/mcp`)))).rejects.toThrow();
    // The query parameter works too, and never reaches the remote server.
    const q = await post("/t1/mcp/stream/mcp?subscription-key=secret%3Akey-b%3Av1", rpc("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } }), {});
    expect(q.status).toBe(200);
    await q.text();
    expect(upstream.seen.map((r) => r.url)).toEqual(["/mcp"]);
  });

  it("the refusal names the request's own id, whatever its type", async () => {
    for (const id of [7, "abc"]) {
      const res = await post("/t1/mcp/stream/mcp", rpc("tools/call", { name: "secret", arguments: {} }, id));
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ jsonrpc: "2.0", id, error: { code: -32001, message: "tool_not_allowed" } });
    }
    const noId = await post("/t1/mcp/stream/mcp", JSON.stringify({ jsonrpc: "2.0", method: "tools/call", params: { name: "secret" } }));
    expect(await noId.json()).toMatchObject({ id: null, error: { message: "tool_not_allowed" } });
  });

  it("a batch is refused by the policy; a body that is not JSON fails the expression (on-error: 500) and the gateway carries on", async () => {
    const batch = await post("/t1/mcp/stream/mcp", `  [${rpc("ping", {})}]`);
    expect(batch.status).toBe(400);
    expect(await batch.json()).toMatchObject({ error: { code: -32600, message: "batch_not_allowed" } });
    const garbage = await post("/t1/mcp/stream/mcp", "this is not json");
    expect(garbage.status).toBe(500);
    expect(upstream.seen).toEqual([]);
    const records = await logs("ApiManagementGatewayLogs");
    const failed = records.filter((r) => r.ApiId === "mcp-stream" && r.ResponseCode === 500).at(-1);
    expect(failed).toMatchObject({ LastErrorSource: "expression", LastErrorReason: "ExpressionValueEvaluationFailure", LastErrorSection: "inbound" });
    expect(String(failed?.LastErrorMessage)).toMatch(/JsonReaderException/);
    const { client } = await connect("streamable");
    expect(await client.callTool({ name: "echo", arguments: { text: "fine" } })).toMatchObject({ content: [{ text: "fine" }] });
  });

  it("logs every request to an MCP server, with the JSON-RPC method and the tool", async () => {
    const { client } = await connect("streamable");
    await client.callTool({ name: "echo", arguments: { text: "logged" } });
    const mcp = await logs("ApiManagementGatewayMCPLog");
    const call = mcp.filter((r) => r.Method === "tools/call" && r.ToolName === "echo").at(-1);
    expect(call).toMatchObject({ ApiType: "passthrough", TransportType: "streamable", McpServerEndpoint: "/t1/mcp/stream/mcp", AuthenticationMethod: "api_key" });
    const init = mcp.filter((r) => r.Method === "initialize").at(-1);
    expect(init).toMatchObject({ ClientName: "test-client", ClientVersion: "0.0.1" });
    const gateway = await logs("ApiManagementGatewayLogs");
    expect(gateway.find((r) => r.CorrelationId === call?.CorrelationId)).toMatchObject({ ApiId: "mcp-stream", OperationId: "message", ResponseCode: 200, ApimSubscriptionId: "key-a", ProductId: "toolbox" });
  });
});
