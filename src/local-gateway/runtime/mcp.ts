/**
 * MCP servers at the local gateway (docs/gateway.md, "MCP servers at the gateway"): what an API of
 * `type: "mcp"` serves besides the policy pipeline every API runs.
 *
 * - Pass-through: the gateway forwards to the remote server (gateway.ts); here only the rewrite of the
 *   SSE transport's `endpoint` event, so a client posts its messages back through the gateway.
 * - Tools made from REST operations: the gateway is the MCP server itself (Streamable HTTP, JSON answers,
 *   no sessions). Tool schemas are derived from the backing operation (its parameters and the schema
 *   documents of its API) when the files load; a `tools/call` becomes a request to that operation, which
 *   the gateway sends through the operation's own API (its subscription check and policies).
 *
 * APIM documents neither the tool schemas it derives nor how it answers the protocol; what is decided
 * here is listed in docs/gateway.md.
 */
import { StringDecoder } from "node:string_decoder";
import { type HeaderBag } from "./message.js";

/** The versions the gateway's own server speaks (an initialize naming another gets the fallback). */
export const MCP_VERSIONS = ["2025-03-26", "2025-06-18", "2025-11-25"] as const;
export const MCP_FALLBACK_VERSION = "2025-06-18";

// ---------------------------------------------------------------- operations as tools

export interface OperationParam {
  name: string;
  type: string;
  required: boolean;
  description?: string;
  schemaId?: string;
  typeName?: string;
}

export interface Representation {
  contentType: string;
  schemaId?: string;
  typeName?: string;
}

/** What a REST operation's file says about its request and answers (ARM OperationContract). */
export interface OperationShape {
  method: string;
  urlTemplate: string;
  description?: string;
  templateParameters: OperationParam[];
  queryParameters: OperationParam[];
  headers: OperationParam[];
  representations: Representation[];
  responses: { statusCode: number; representations: Representation[] }[];
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === "object" && !Array.isArray(v);
const isJson = (contentType: string) => /[/+]json\b/i.test(contentType);

/** A JSON Schema type for an ARM parameter type ("string", "integer", …); anything else is left untyped. */
const JSON_TYPES = new Set(["string", "integer", "number", "boolean", "array", "object"]);

/**
 * Resolves `typeName` in a schema document of the API (`components.schemas`) into a schema the tool can
 * carry alone: the component inline, with its `#/components/schemas/X` references rewritten to
 * `#/$defs/X` and every component they reach collected into `$defs`.
 */
class SchemaResolver {
  readonly defs = new Map<string, Json>();
  readonly problems: string[] = [];

  constructor(private readonly documents: Map<string, Record<string, unknown>>) {}

  resolve(schemaId: string, typeName: string): JsonObject | undefined {
    const component = this.component(schemaId, typeName);
    if (!component) return undefined;
    return this.rewrite(schemaId, component) as JsonObject;
  }

  private component(schemaId: string, name: string): JsonObject | undefined {
    const doc = this.documents.get(schemaId);
    if (!doc) {
      this.problems.push(`schema '${schemaId}' does not exist`);
      return undefined;
    }
    const c = doc[name];
    if (!isObject(c)) {
      this.problems.push(`schema '${schemaId}' has no component '${name}'`);
      return undefined;
    }
    return c;
  }

  private rewrite(schemaId: string, v: Json): Json {
    if (Array.isArray(v)) return v.map((x) => this.rewrite(schemaId, x));
    if (!isObject(v)) return v;
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === "$ref" && typeof x === "string") {
        const m = /^#\/components\/schemas\/(.+)$/.exec(x);
        if (!m) {
          // A tool schema is sent to clients as it is: a reference outside the document cannot be followed.
          this.problems.push(`schema '${schemaId}': reference '${x}' is not to a component of the same document`);
          out[k] = x;
          continue;
        }
        const name = decodeURIComponent(m[1]!);
        out[k] = `#/$defs/${m[1]!}`;
        if (!this.defs.has(name)) {
          this.defs.set(name, null);
          const c = this.component(schemaId, name);
          this.defs.set(name, c ? this.rewrite(schemaId, c) : {});
        }
        continue;
      }
      out[k] = this.rewrite(schemaId, x);
    }
    return out;
  }
}

/**
 * The input schema of a tool made from an operation: an object with one property per template, query
 * and header parameter (a name used twice keeps its first: path, then query, then header) and `body`
 * for the JSON request representation; required are the template parameters, the required others, and
 * `body` when the operation has one. The output schema is the 200 answer's JSON representation when it
 * is an object (MCP requires an object). Problems (a schema that cannot be resolved) are returned.
 */
export function toolSchemas(op: OperationShape, documents: Map<string, Record<string, unknown>>): { input: JsonObject; output?: JsonObject; problems: string[] } {
  const r = new SchemaResolver(documents);
  const properties: JsonObject = {};
  const required: string[] = [];
  const param = (p: OperationParam, alwaysRequired: boolean) => {
    if (Object.hasOwn(properties, p.name)) return;
    const resolved = p.schemaId && p.typeName ? r.resolve(p.schemaId, p.typeName) : undefined;
    const schema: JsonObject = resolved ?? (JSON_TYPES.has(p.type) ? { type: p.type } : {});
    properties[p.name] = p.description ? { ...schema, description: p.description } : schema;
    if (alwaysRequired || p.required) required.push(p.name);
  };
  for (const p of op.templateParameters) param(p, true);
  for (const p of op.queryParameters) param(p, false);
  for (const p of op.headers) param(p, false);
  const body = op.representations.find((x) => isJson(x.contentType)) ?? op.representations[0];
  if (body && !Object.hasOwn(properties, "body")) {
    const schema = body.schemaId && body.typeName ? r.resolve(body.schemaId, body.typeName) : undefined;
    properties.body = schema ?? {};
    required.push("body");
  }
  const ok = op.responses.find((x) => x.statusCode === 200)?.representations.find((x) => isJson(x.contentType));
  let output = ok?.schemaId && ok.typeName ? r.resolve(ok.schemaId, ok.typeName) : undefined;
  // A response component that only names another ({ $ref }) is followed to see whether it is an object.
  for (let i = 0; output && typeof output.$ref === "string" && Object.keys(output).length === 1 && i < 8; i++) {
    const name = decodeURIComponent(output.$ref.slice("#/$defs/".length));
    const next = r.defs.get(name);
    output = isObject(next) ? next : undefined;
  }
  const defs: JsonObject = r.defs.size ? { $defs: Object.fromEntries(r.defs) as JsonObject } : {};
  const input: JsonObject = { type: "object", properties, ...(required.length ? { required } : {}), ...defs };
  return { input, ...(output?.type === "object" ? { output: { ...output, ...defs } } : {}), problems: r.problems };
}

/** The REST request a `tools/call` stands for, or why the arguments do not make one. */
export function toolRequest(op: OperationShape, args: JsonObject): { method: string; path: string; query: URLSearchParams; headers: Record<string, string>; body?: Buffer; contentType?: string } | { error: string } {
  const text = (v: Json) => (typeof v === "string" ? v : JSON.stringify(v));
  let path = op.urlTemplate;
  for (const p of op.templateParameters) {
    const v = args[p.name];
    if (v === undefined || v === null) return { error: `missing argument '${p.name}'` };
    // "." and ".." survive percent-encoding and would move the request to another operation's path.
    if (text(v) === "." || text(v) === "..") return { error: `argument '${p.name}' cannot be '${text(v)}'` };
    path = path.split(`{${p.name}}`).join(encodeURIComponent(text(v)));
  }
  if (/\{[^}]+\}/.test(path)) return { error: `the operation's URL template ${op.urlTemplate} has a parameter the operation does not declare` };
  const query = new URLSearchParams();
  for (const p of op.queryParameters) {
    const v = args[p.name];
    if (v === undefined || v === null) {
      if (p.required) return { error: `missing argument '${p.name}'` };
      continue;
    }
    for (const x of Array.isArray(v) ? v : [v]) query.append(p.name, text(x));
  }
  const headers: Record<string, string> = {};
  for (const p of op.headers) {
    const v = args[p.name];
    if (v === undefined || v === null) {
      if (p.required) return { error: `missing argument '${p.name}'` };
      continue;
    }
    headers[p.name] = text(v);
  }
  const rep = op.representations.find((x) => isJson(x.contentType)) ?? op.representations[0];
  if (!rep) return { method: op.method, path, query, headers };
  if (args.body === undefined) return { error: "missing argument 'body'" };
  const body = Buffer.from(isJson(rep.contentType) ? JSON.stringify(args.body) : text(args.body), "utf8");
  return { method: op.method, path, query, headers, body, contentType: rep.contentType };
}

// ---------------------------------------------------------------- the gateway's own server

export interface ServedTool {
  name: string;
  description?: string;
  inputSchema: JsonObject;
  outputSchema?: JsonObject;
}

/** What the tool's backing operation answered (through its API's pipeline). */
export interface ToolAnswer {
  status: number;
  body: Buffer;
}

export interface McpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** For the MCP log. */
  log: { method: string; tool: string; toolCount: number; error: string; errorType: string };
}

const jsonAnswer = (status: number, message: unknown, log: McpAnswer["log"]): McpAnswer => ({ status, headers: { "Content-Type": "application/json" }, body: JSON.stringify(message), log });
const rpcError = (status: number, id: Json, code: number, message: string, log: Omit<McpAnswer["log"], "error" | "errorType">) =>
  jsonAnswer(status, { jsonrpc: "2.0", id, error: { code, message } }, { ...log, error: message, errorType: String(code) });

/**
 * One request to an MCP server made of tools: Streamable HTTP with JSON answers and no sessions
 * (stateless), so GET and DELETE are 405 (the transport lets a server refuse both). Batches (JSON
 * arrays, 2025-03-26 only) are refused: every version after it dropped them, and a batch would carry
 * several calls past a policy that reads one.
 */
export async function serveTools(
  req: { method: string; headers: HeaderBag; body: Buffer | undefined },
  server: { name: string; title: string; tools: ServedTool[] },
  call: (tool: string, args: JsonObject) => Promise<ToolAnswer | { error: string }>,
): Promise<McpAnswer> {
  const none = { method: "", tool: "", toolCount: 0 };
  if (req.method !== "POST") return { status: 405, headers: { Allow: "POST" }, body: "", log: { ...none, error: "", errorType: "" } };
  const version = req.headers.joined("mcp-protocol-version");
  let message: unknown;
  try {
    message = JSON.parse(req.body?.toString("utf8") ?? "");
  } catch {
    return rpcError(400, null, -32700, "Parse error", none);
  }
  if (Array.isArray(message)) return rpcError(400, null, -32600, "Invalid Request: batches are not supported", none);
  if (!isObject(message) || message.jsonrpc !== "2.0") return rpcError(400, null, -32600, "Invalid Request", none);
  const id = message.id ?? null;
  const method = typeof message.method === "string" ? message.method : "";
  const log = { method, tool: "", toolCount: 0 };
  // A notification, or the client's answer to a server request (this server sends none): accepted, no body.
  if (!method || message.id === undefined) return { status: 202, headers: {}, body: "", log: { ...log, error: "", errorType: "" } };
  if (method !== "initialize" && version !== undefined && !(MCP_VERSIONS as readonly string[]).includes(version)) {
    return rpcError(400, id, -32600, `Bad Request: unsupported MCP-Protocol-Version ${version}`, log);
  }
  const params = isObject(message.params) ? message.params : {};
  const result = (value: JsonObject, extra: Partial<McpAnswer["log"]> = {}) => jsonAnswer(200, { jsonrpc: "2.0", id, result: value }, { ...log, error: "", errorType: "", ...extra });
  switch (method) {
    case "initialize": {
      const asked = typeof params.protocolVersion === "string" ? params.protocolVersion : "";
      const protocolVersion = (MCP_VERSIONS as readonly string[]).includes(asked) ? asked : MCP_FALLBACK_VERSION;
      return result({ protocolVersion, capabilities: { tools: {} }, serverInfo: { name: server.name, title: server.title, version: "1.0.0" } });
    }
    case "ping":
      return result({});
    case "tools/list":
      // One page: this server never hands out a cursor, so any cursor is not one of its own.
      if (params.cursor !== undefined) return rpcError(200, id, -32602, "Invalid params: unknown cursor", log);
      return result({ tools: server.tools.map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), inputSchema: t.inputSchema, ...(t.outputSchema ? { outputSchema: t.outputSchema } : {}) })) as Json[] }, { toolCount: server.tools.length });
    case "tools/call": {
      const name = typeof params.name === "string" ? params.name : "";
      const tool = server.tools.find((t) => t.name === name);
      if (!tool) return rpcError(200, id, -32602, `Unknown tool: ${name}`, { ...log, tool: name });
      const args = params.arguments === undefined ? {} : params.arguments;
      if (!isObject(args)) return rpcError(200, id, -32602, "Invalid params: arguments must be an object", { ...log, tool: name });
      const answer = await call(name, args);
      if ("error" in answer) {
        // Invalid arguments are a tool error the model can read and correct (2025-11-25, SEP-1303).
        return result({ content: [{ type: "text", text: answer.error }], isError: true }, { tool: name, error: answer.error, errorType: "InvalidArguments" });
      }
      const text = answer.body.toString("utf8");
      let structured: Json | undefined;
      try {
        structured = text ? (JSON.parse(text) as Json) : undefined;
      } catch {
        structured = undefined;
      }
      // An error's body is not the output the tool's schema describes (clients validate structuredContent
      // against it): it goes as text only.
      const isError = answer.status >= 400;
      return result(
        { content: [{ type: "text", text }], ...(!isError && isObject(structured) ? { structuredContent: structured } : {}), isError },
        { tool: name, ...(answer.status >= 400 ? { error: `the operation answered ${answer.status}`, errorType: "ToolError" } : {}) },
      );
    }
    default:
      return rpcError(200, id, -32601, `Method not found: ${method}`, log);
  }
}

// ---------------------------------------------------------------- logs

/** The JSON-RPC request of a POST as the MCP log describes it (method, tool, client); empty when it is none. */
export function describeMessage(body: Buffer | undefined): { method: string; tool: string; protocolVersion: string; clientName: string; clientVersion: string } {
  const out = { method: "", tool: "", protocolVersion: "", clientName: "", clientVersion: "" };
  let m: unknown;
  try {
    m = body?.length ? JSON.parse(body.toString("utf8")) : undefined;
  } catch {
    return out;
  }
  if (!isObject(m)) return out;
  const params = isObject(m.params) ? m.params : {};
  const client = isObject(params.clientInfo) ? params.clientInfo : {};
  out.method = typeof m.method === "string" ? m.method : "";
  if (out.method === "tools/call" && typeof params.name === "string") out.tool = params.name;
  if (out.method === "initialize") {
    out.protocolVersion = typeof params.protocolVersion === "string" ? params.protocolVersion : "";
    out.clientName = typeof client.name === "string" ? client.name : "";
    out.clientVersion = typeof client.version === "string" ? client.version : "";
  }
  return out;
}

// ---------------------------------------------------------------- SSE transport

/**
 * Passes an SSE stream through, rewriting the `data` of the first `endpoint` event (the URL the client
 * must post its messages to, e.g. "/messages?sessionId=…") to the gateway's message path with the same
 * query. Events before it are held only until they are complete; after it everything passes as it comes.
 */
export async function* rewriteEndpointEvent(stream: AsyncIterable<Buffer>, gatewayPath: string): AsyncGenerator<Buffer> {
  const decoder = new StringDecoder("utf8");
  let pending = "";
  let done = false;
  for await (const chunk of stream) {
    if (done) {
      yield chunk;
      continue;
    }
    pending += decoder.write(chunk);
    let out = "";
    for (let m = /\r?\n\r?\n/.exec(pending); m && !done; m = /\r?\n\r?\n/.exec(pending)) {
      const event = pending.slice(0, m.index);
      const sep = m[0];
      pending = pending.slice(m.index + sep.length);
      const lines = event.split(/\r?\n/);
      if (lines.some((l) => /^event:\s*endpoint\s*$/.test(l))) {
        done = true;
        out += lines.map((l) => (l.startsWith("data:") ? `data: ${gatewayEndpoint(l.slice(5).trim(), gatewayPath)}` : l)).join("\n") + sep;
      } else out += event + sep;
    }
    if (done) {
      out += pending + decoder.end();
      pending = "";
    }
    if (out) yield Buffer.from(out, "utf8");
  }
  if (!done) {
    const rest = pending + decoder.end();
    if (rest) yield Buffer.from(rest, "utf8");
  }
}

function gatewayEndpoint(upstream: string, gatewayPath: string): string {
  const u = new URL(upstream, "http://upstream.invalid");
  return `${gatewayPath}${u.search}`;
}
