import { beforeAll, describe, expect, it } from "vitest";
import { compileExpression, initExpressions } from "../../src/local-gateway/expressions/engine.js";
import { CsException } from "../../src/local-gateway/expressions/values.js";
import { contextObject, type RequestState } from "../../src/local-gateway/runtime/context.js";
import { HeaderBag } from "../../src/local-gateway/runtime/message.js";

/** The expressions the compiler emits in an MCP server's policy (docs/gateway.md, "MCP servers at the gateway"). */
const BATCH = `@(context.Request.Method == "POST" && context.Request.Body != null && context.Request.Body.As<string>(preserveContent: true).TrimStart().StartsWith("["))`;
const METHOD = `@(context.Request.Method == "POST" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["method"]?.ToString() ?? "") : "")`;
const TOOL = `@((string)context.Variables["aigov-mcp-method"] == "tools/call" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["params"]?["name"]?.ToString() ?? "") : "")`;
const ALLOWED = `@("|a|b|".Contains("|" + (string)context.Variables["aigov-mcp-tool"] + "|"))`;
const REFUSAL = `@("{\\"jsonrpc\\":\\"2.0\\",\\"id\\":" + (context.Request.Body?.As<JObject>(preserveContent: true)?["id"]?.ToString(Newtonsoft.Json.Formatting.None) ?? "null") + ",\\"error\\":{\\"code\\":-32001,\\"message\\":\\"tool_not_allowed\\"}}")`;
const INCREMENT = `@((string)context.Variables["aigov-mcp-method"] == "tools/call")`;
const COUNTER = `@(context.Subscription.Id + "|" + (string)context.Variables["aigov-mcp-tool"])`;

function state(method: string, body: string | undefined, vars: Record<string, unknown> = {}): RequestState {
  return {
    requestId: "5b0c4c1e-7d25-4f5e-9a43-2f3a2c1d0e9f",
    ip: "127.0.0.1",
    method,
    originalUrl: new URL("http://gw/t1/mcp/x/mcp"),
    path: "/mcp",
    query: new URLSearchParams(),
    headers: new HeaderBag([["Content-Type", "application/json"]]),
    body: body === undefined ? undefined : Buffer.from(body),
    bodyConsumed: false,
    matched: {},
    api: { id: "mcp-x", name: "X", path: "t1/mcp/x" },
    operation: { id: "message", name: "message", method, urlTemplate: "/mcp" },
    subscription: { id: "key-a", name: "a", key: "k", primaryKey: "k", secondaryKey: "k2" },
    variables: new Map(Object.entries(vars)),
    response: undefined,
    lastError: undefined,
    deployment: { region: "local", serviceName: "local" },
    mcp: true,
  };
}

const run = (src: string, s: RequestState) => compileExpression(src.slice(2, -1), "single")({ context: contextObject(s), random: () => 0.5 });
const call = (params: object, id: unknown = 1) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params });

beforeAll(() => initExpressions());

describe("the expressions of an MCP server's policy", () => {
  it("tells a batch (a JSON array, after any whitespace) from a single message; GET has no body", () => {
    expect(run(BATCH, state("POST", ` \r\n\t[${call({ name: "a" })}]`))).toBe(true);
    expect(run(BATCH, state("POST", call({ name: "a" })))).toBe(false);
    expect(run(BATCH, state("GET", undefined))).toBe(false);
    // .NET's TrimStart() does not trim U+FEFF (JavaScript's trimStart would).
    expect(run(BATCH, state("POST", "\uFEFF[]"))).toBe(false);
    expect(run(`@(" \\t x ".TrimStart() + "|" + " x \\n".TrimEnd())`, state("GET", undefined))).toBe("x | x");
  });

  it("reads the JSON-RPC method and, for tools/call only, the tool's name", () => {
    expect(run(METHOD, state("POST", call({ name: "a" })))).toBe("tools/call");
    expect(run(METHOD, state("POST", JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })))).toBe("notifications/initialized");
    expect(run(METHOD, state("POST", JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} })))).toBe("");
    expect(run(METHOD, state("GET", undefined))).toBe("");
    expect(run(TOOL, state("POST", call({ name: "get_widget" }), { "aigov-mcp-method": "tools/call" }))).toBe("get_widget");
    expect(run(TOOL, state("POST", call({}), { "aigov-mcp-method": "tools/call" }))).toBe("");
    expect(run(TOOL, state("POST", JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call" }), { "aigov-mcp-method": "tools/call" }))).toBe("");
    expect(run(TOOL, state("POST", JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { name: "x" } }), { "aigov-mcp-method": "tools/list" }))).toBe("");
    // The expressions read with preserveContent: the body is still there for the backend.
    const s = state("POST", call({ name: "a" }));
    run(METHOD, s);
    expect(s.bodyConsumed).toBe(false);
  });

  it("matches a tool against the allowed list by whole name", () => {
    expect(run(ALLOWED, state("POST", "{}", { "aigov-mcp-tool": "a" }))).toBe(true);
    expect(run(ALLOWED, state("POST", "{}", { "aigov-mcp-tool": "b" }))).toBe(true);
    expect(run(ALLOWED, state("POST", "{}", { "aigov-mcp-tool": "c" }))).toBe(false);
    expect(run(ALLOWED, state("POST", "{}", { "aigov-mcp-tool": "" }))).toBe(false);
    // A requested name holding the separator spans two entries and passes: the list alone cannot refuse
    // it (MCP tool names are [A-Za-z0-9_.-], but only as a SHOULD), so the policy must also refuse "|".
    expect(run(ALLOWED, state("POST", "{}", { "aigov-mcp-tool": "a|b" }))).toBe(true);
  });

  it("builds the refusal with the request's id as JSON (number, string, null, absent)", () => {
    const refusal = (id: unknown) => JSON.parse(run(REFUSAL, state("POST", call({ name: "c" }, id))) as string) as unknown;
    expect(refusal(7)).toEqual({ jsonrpc: "2.0", id: 7, error: { code: -32001, message: "tool_not_allowed" } });
    expect(refusal('a "quoted" id')).toMatchObject({ id: 'a "quoted" id' });
    expect(refusal(null)).toMatchObject({ id: null });
    expect(JSON.parse(run(REFUSAL, state("POST", JSON.stringify({ jsonrpc: "2.0", method: "tools/call" }))) as string)).toMatchObject({ id: null });
    // Formatting.None is compact JSON; Indented spreads it; ToString() of a JValue is the bare value.
    const obj = state("POST", JSON.stringify({ id: { a: [1, 2] }, s: "x" }));
    expect(run(`@(context.Request.Body.As<JObject>(preserveContent: true)["id"].ToString(Formatting.None))`, obj)).toBe('{"a":[1,2]}');
    expect(run(`@(context.Request.Body.As<JObject>(preserveContent: true)["id"].ToString(Newtonsoft.Json.Formatting.Indented))`, obj)).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(run(`@(context.Request.Body.As<JObject>(preserveContent: true)["s"].ToString())`, obj)).toBe("x");
  });

  it("keys the rate limit per subscription and tool, counting tools/call only", () => {
    expect(run(COUNTER, state("POST", "{}", { "aigov-mcp-tool": "a" }))).toBe("key-a|a");
    expect(run(INCREMENT, state("POST", "{}", { "aigov-mcp-method": "tools/call" }))).toBe(true);
    expect(run(INCREMENT, state("POST", "{}", { "aigov-mcp-method": "tools/list" }))).toBe(false);
  });

  it("a body that is not JSON fails the expression as APIM's would (JsonReaderException → on-error), without touching the gateway", () => {
    expect(run(BATCH, state("POST", "not json"))).toBe(false);
    expect(() => run(METHOD, state("POST", "not json"))).toThrow(CsException);
    expect(() => run(METHOD, state("POST", "not json"))).toThrow(/JsonReaderException/);
    // A batch read as an object is a cast failure: the compiler tests for batches first.
    expect(() => run(METHOD, state("POST", "[]"))).toThrow(/InvalidCastException/);
  });

  it("an MCP server's policy may not read the response body (APIM: it breaks streaming)", () => {
    const s = state("POST", "{}");
    s.response = { status: 200, reason: "OK", headers: new HeaderBag(), body: Buffer.from("{}") };
    expect(() => run(`@(context.Response.Body != null)`, s)).toThrow(/must not read context.Response.Body/);
    expect(run(`@(context.Response.Body != null)`, { ...s, mcp: false })).toBe(true);
  });
});
