import { readdir, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { type AddressInfo } from "node:net";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { type ApiArtifact, type GatewayArtifact } from "../../src/ports/gateway.js";
import { GatewayFolder, startHarness, type Harness } from "./support.js";

// ---- a tiny REST backend: widgets by id, and notes posted to a widget ----

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

async function startBackend(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const url = new URL(req.url ?? "/", "http://backend");
      const widget = /^\/api\/widgets\/([^/]+)$/.exec(url.pathname);
      const notes = /^\/api\/widgets\/([^/]+)\/notes$/.exec(url.pathname);
      const send = (status: number, json: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(json));
      };
      if (widget && req.method === "GET") {
        const id = decodeURIComponent(widget[1]!);
        if (id === "missing") return send(404, { error: "no such widget" });
        return send(200, { id, name: `widget ${id}`, verbose: url.searchParams.get("verbose") === "true" });
      }
      if (notes && req.method === "POST") return send(201, { widget: decodeURIComponent(notes[1]!), note: JSON.parse(body) as unknown, saved: true });
      send(404, { error: "not found" });
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`,
    received,
    close: async () => {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}

// ---- what the control plane publishes: a REST API, its schema document, and an MCP server of two tools ----

const SCHEMAS = {
  Widget: { type: "object", properties: { id: { type: "string" }, name: { type: "string" }, verbose: { type: "boolean" } }, required: ["id", "name"] },
  NoteRequest: { type: "object", properties: { text: { type: "string" }, tags: { type: "array", items: { $ref: "#/components/schemas/Tag" } } }, required: ["text"] },
  Tag: { type: "string", enum: ["red", "blue"] },
  NoteResult: { type: "object", properties: { widget: { type: "string" }, saved: { type: "boolean" } } },
};

function restApi(serviceUrl: string): ApiArtifact {
  const json = (typeName: string) => ({ contentType: "application/json", schemaId: "widgets", typeName });
  const id = { name: "id", type: "string", required: true, description: "the widget's id" };
  return {
    kind: "api",
    id: "rest-widgets",
    displayName: "Widgets",
    path: "t1/rest/widgets",
    protocols: ["https"],
    subscriptionRequired: true,
    subscriptionKeyHeaderName: "api-key",
    serviceUrl,
    schemas: [{ id: "widgets", contentType: "application/vnd.oai.openapi.components+json", document: { components: { schemas: SCHEMAS } } }],
    operations: [
      {
        id: "get-widget",
        method: "GET",
        urlTemplate: "/widgets/{id}",
        displayName: "Get a widget",
        description: "Reads one widget.",
        templateParameters: [id],
        request: { queryParameters: [{ name: "verbose", type: "boolean", required: false }] },
        responses: [{ statusCode: 200, representations: [json("Widget")] }],
      },
      {
        id: "add-note",
        method: "POST",
        urlTemplate: "/widgets/{id}/notes",
        displayName: "Add a note",
        templateParameters: [id],
        request: { headers: [{ name: "x-request-source", type: "string", required: false }], representations: [json("NoteRequest")] },
        responses: [{ statusCode: 201, representations: [json("NoteResult")] }],
      },
    ],
  };
}

const REST_POLICY = `<policies><inbound><base /><set-header name="x-rest-policy" exists-action="override"><value>@(context.Api.Id + "/" + context.Operation.Id + "/" + context.Subscription.Id)</value></set-header><set-header name="api-key" exists-action="delete" /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>`;
const KEY = "secret:key-a:v1";
const MCP_ONLY_KEY = "secret:key-b:v1";

function artifacts(backend: string): GatewayArtifact[] {
  return [
    restApi(backend),
    {
      kind: "api",
      id: "mcp-widgets",
      displayName: "Widget tools",
      path: "t1/mcp/widgets",
      protocols: ["https"],
      subscriptionRequired: true,
      subscriptionKeyHeaderName: "api-key",
      operations: [],
      mcp: {
        type: "restTools",
        tools: [
          { id: "get-widget", displayName: "get_widget", description: "Reads a widget by id", apiId: "rest-widgets", operationId: "get-widget" },
          { id: "add-note", displayName: "add_note", apiId: "rest-widgets", operationId: "add-note" },
        ],
      },
    },
    { kind: "policy", scope: { type: "api", apiId: "rest-widgets" }, xml: REST_POLICY },
    { kind: "product", id: "toolbox", displayName: "toolbox", subscriptionRequired: true, approvalRequired: false, state: "published", apis: ["mcp-widgets", "rest-widgets"] },
    { kind: "subscription", id: "key-a", displayName: "a", scope: { type: "product", productId: "toolbox" }, state: "active", primaryKey: { name: "key-a", version: "v1" }, secondaryKey: { name: "key-a2", version: "v1" } },
    { kind: "subscription", id: "key-b", displayName: "b", scope: { type: "api", apiId: "mcp-widgets" }, state: "active", primaryKey: { name: "key-b", version: "v1" }, secondaryKey: { name: "key-b2", version: "v1" } },
  ];
}

let backend: Awaited<ReturnType<typeof startBackend>>;
let h: Harness;
let client: Client | undefined;
const MCP = "/t1/mcp/widgets/mcp";

beforeAll(async () => {
  backend = await startBackend();
  const folder = new GatewayFolder();
  await new FilePublisher(folder.root).publish(artifacts(backend.url), {});
  h = await startHarness(folder);
});

afterAll(async () => {
  await client?.close();
  await h.close();
  await backend.close();
});

beforeEach(async () => {
  await client?.close();
  client = undefined;
  backend.received.length = 0;
});

async function connect(key = KEY): Promise<Client> {
  client = new Client({ name: "rest-tools-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${h.gateway.url}${MCP}`), { requestInit: { headers: { "api-key": key } } }));
  return client;
}

const post = (body: string, headers: Record<string, string> = { "api-key": KEY }) =>
  fetch(`${h.gateway.url}${MCP}`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body });
const rpc = (method: string, params: object, id: unknown = 1) => JSON.stringify({ jsonrpc: "2.0", id, method, params });

async function logs(table: string): Promise<Record<string, unknown>[]> {
  await h.gateway.flushLogs();
  const dir = join(h.logDir, table);
  // One file per UTC hour: <Table>/<yyyy-mm-dd>/<hh>.ndjson.
  const files = (await readdir(dir, { recursive: true }).catch(() => [] as string[])).filter((f) => f.endsWith(".ndjson"));
  return (await Promise.all(files.map((f) => readFile(join(dir, f), "utf8"))))
    .join("")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("local gateway: an MCP server made of REST operations", () => {
  it("loads what the file publisher wrote", () => {
    expect(h.gateway.issues()).toEqual([]);
  });

  it("tools/list: both tools, their input schemas from the operations' parameters and schema document, output from the 200 answer", async () => {
    const c = await connect();
    expect(c.getServerCapabilities()).toEqual({ tools: {} });
    const { tools } = await c.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["add_note", "get_widget"]);
    const get = tools.find((t) => t.name === "get_widget");
    const add = tools.find((t) => t.name === "add_note");
    expect(get).toMatchObject({
      description: "Reads a widget by id",
      inputSchema: { type: "object", properties: { id: { type: "string", description: "the widget's id" }, verbose: { type: "boolean" } }, required: ["id"] },
      outputSchema: SCHEMAS.Widget,
    });
    expect(add?.inputSchema).toEqual({
      type: "object",
      properties: {
        id: { type: "string", description: "the widget's id" },
        "x-request-source": { type: "string" },
        body: { type: "object", properties: { text: { type: "string" }, tags: { type: "array", items: { $ref: "#/$defs/Tag" } } }, required: ["text"] },
      },
      required: ["id", "body"],
      $defs: { Tag: SCHEMAS.Tag },
    });
    // Only a 200 answer describes the output (add-note answers 201).
    expect(add?.outputSchema).toBeUndefined();
  });

  it("tools/call reaches the backend with the path, query and body the arguments make, through the REST API's policy, and answers its JSON", async () => {
    const c = await connect();
    const got = await c.callTool({ name: "get_widget", arguments: { id: "w 1/2", verbose: true } });
    expect(got).toEqual({ content: [{ type: "text", text: JSON.stringify({ id: "w 1/2", name: "widget w 1/2", verbose: true }) }], structuredContent: { id: "w 1/2", name: "widget w 1/2", verbose: true }, isError: false });
    const added = await c.callTool({ name: "add_note", arguments: { id: "w1", "x-request-source": "agent", body: { text: "hello", tags: ["red"] } } });
    expect(added).toMatchObject({ structuredContent: { widget: "w1", note: { text: "hello", tags: ["red"] }, saved: true }, isError: false });
    expect(backend.received.map((r) => `${r.method} ${r.url}`)).toEqual(["GET /api/widgets/w%201%2F2?verbose=true", "POST /api/widgets/w1/notes"]);
    const [g, p] = backend.received;
    expect(JSON.parse(p!.body)).toEqual({ text: "hello", tags: ["red"] });
    expect(p!.headers["content-type"]).toBe("application/json");
    expect(p!.headers["x-request-source"]).toBe("agent");
    // The REST API's own policy ran, with the caller's subscription; it removed the key; no MCP header leaked.
    expect(g!.headers["x-rest-policy"]).toBe("rest-widgets/get-widget/key-a");
    expect(p!.headers["x-rest-policy"]).toBe("rest-widgets/add-note/key-a");
    for (const r of backend.received) {
      expect(r.headers["api-key"]).toBeUndefined();
      expect(r.headers["mcp-protocol-version"]).toBeUndefined();
      expect(r.headers["mcp-session-id"]).toBeUndefined();
    }
  });

  it("an error answer of the operation is a tool error; missing arguments are a tool error before any call", async () => {
    const c = await connect();
    const missing = await c.callTool({ name: "get_widget", arguments: { id: "missing" } });
    // The error body is text only: it is not the output the tool's schema describes.
    expect(missing).toEqual({ content: [{ type: "text", text: JSON.stringify({ error: "no such widget" }) }], isError: true });
    const bad = await c.callTool({ name: "add_note", arguments: { id: "w1" } });
    expect(bad).toEqual({ content: [{ type: "text", text: "missing argument 'body'" }], isError: true });
    expect(backend.received.map((r) => r.url)).toEqual(["/api/widgets/missing"]);
  });

  it("an unknown tool is JSON-RPC error -32602", async () => {
    const c = await connect();
    const err = await c.callTool({ name: "delete_everything", arguments: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(-32602);
    expect(backend.received).toEqual([]);
  });

  it("the internal call is authorised by the caller's key under the REST API's own rules: a key for the MCP server alone gets a tool error", async () => {
    const c = await connect(MCP_ONLY_KEY);
    expect((await c.listTools()).tools).toHaveLength(2);
    const res = await c.callTool({ name: "get_widget", arguments: { id: "w1" } });
    expect(res.isError).toBe(true);
    expect(JSON.parse((res.content as { text: string }[])[0]!.text)).toMatchObject({ statusCode: 401, message: expect.stringMatching(/invalid subscription key/) });
    expect(backend.received).toEqual([]);
  });

  it("speaks the protocol: version negotiation, ping, notifications 202, batches 400, GET/DELETE 405, parse errors, no key 401", async () => {
    const init = async (protocolVersion: string) => ((await (await post(rpc("initialize", { protocolVersion, capabilities: {}, clientInfo: { name: "raw", version: "1" } }))).json()) as { result: { protocolVersion: string } }).result.protocolVersion;
    expect(await init("2025-03-26")).toBe("2025-03-26");
    expect(await init("2025-11-25")).toBe("2025-11-25");
    expect(await init("2024-11-05")).toBe("2025-06-18");
    expect(await init("1999-01-01")).toBe("2025-06-18");
    const ping = await post(rpc("ping", {}, "p1"));
    expect(await ping.json()).toEqual({ jsonrpc: "2.0", id: "p1", result: {} });
    const note = await post(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    expect([note.status, await note.text()]).toEqual([202, ""]);
    const batch = await post(`[${rpc("ping", {})}]`);
    expect(batch.status).toBe(400);
    expect(await batch.json()).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32600 } });
    const garbage = await post("{not json");
    expect([garbage.status, ((await garbage.json()) as { error: { code: number } }).error.code]).toEqual([400, -32700]);
    const unknown = await post(rpc("resources/list", {}));
    expect(((await unknown.json()) as { error: { code: number } }).error.code).toBe(-32601);
    const badVersion = await post(rpc("tools/list", {}), { "api-key": KEY, "mcp-protocol-version": "2099-01-01" });
    expect(badVersion.status).toBe(400);
    for (const method of ["GET", "DELETE"]) {
      const res = await fetch(`${h.gateway.url}${MCP}`, { method, headers: { "api-key": KEY } });
      expect([res.status, res.headers.get("allow")]).toEqual([405, "POST"]);
    }
    expect((await post(rpc("tools/list", {}), {})).status).toBe(401);
    expect(backend.received).toEqual([]);
  });

  it("logs the tool call (MCP log) and the internal call to the operation (gateway log)", async () => {
    const c = await connect();
    await c.callTool({ name: "get_widget", arguments: { id: "logged" } });
    const mcp = (await logs("ApiManagementGatewayMCPLog")).filter((r) => r.ToolName === "get_widget").at(-1);
    expect(mcp).toMatchObject({ ApiType: "rest", TransportType: "streamable", Method: "tools/call", ServerName: "mcp-widgets", OperationName: "get-widget", Error: "" });
    const gateway = await logs("ApiManagementGatewayLogs");
    expect(gateway.find((r) => r.CorrelationId === mcp?.CorrelationId)).toMatchObject({ ApiId: "mcp-widgets", ResponseCode: 200, ApimSubscriptionId: "key-a" });
    expect(gateway.filter((r) => r.ApiId === "rest-widgets" && r.Url === "/t1/rest/widgets/widgets/logged").at(-1)).toMatchObject({ OperationId: "get-widget", ResponseCode: 200, BackendResponseCode: 200, ApimSubscriptionId: "key-a" });
    const list = await (await post(rpc("tools/list", {}))).json();
    expect(list).toMatchObject({ result: { tools: [{ name: "add_note" }, { name: "get_widget" }] } });
    expect((await logs("ApiManagementGatewayMCPLog")).filter((r) => r.Method === "tools/list").at(-1)).toMatchObject({ ToolCount: 2 });
  });
});
