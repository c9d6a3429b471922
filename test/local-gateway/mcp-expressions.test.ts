import { beforeAll, describe, expect, it } from "vitest";
import { compileExpression, initExpressions } from "../../src/local-gateway/expressions/engine.js";
import { CsException } from "../../src/local-gateway/expressions/values.js";
import { contextObject, type RequestState } from "../../src/local-gateway/runtime/context.js";
import { HeaderBag } from "../../src/local-gateway/runtime/message.js";
import { createCipheriv, createHmac } from "node:crypto";
import { MCP_HEADERS_DIFFER, MCP_MESSAGE_INVALID, MCP_MESSAGE_REBUILT, MCP_SESSION_OF_REQUEST, MCP_SESSION_SEALED } from "../../src/policy/expressions.js";

/** The expressions the compiler emits in an MCP server's policy (docs/gateway.md, "MCP servers at the gateway"). */
const BATCH = `@(context.Request.Method == "POST" && context.Request.Body != null && context.Request.Body.As<string>(preserveContent: true).TrimStart().StartsWith("["))`;
const METHOD = `@(context.Request.Method == "POST" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["method"]?.ToString() ?? "") : "")`;
const TOOL = `@((string)context.Variables["aigov-mcp-method"] == "tools/call" ? (context.Request.Body?.As<JObject>(preserveContent: true)?["params"]?["name"]?.ToString() ?? "") : "")`;
const ALLOWED = `@("|a|b|".Contains("|" + (string)context.Variables["aigov-mcp-tool"] + "|"))`;
const REFUSAL = `@("{\\"jsonrpc\\":\\"2.0\\",\\"id\\":" + (context.Request.Body?.As<JObject>(preserveContent: true)?["id"]?.ToString(Newtonsoft.Json.Formatting.None) ?? "null") + ",\\"error\\":{\\"code\\":-32001,\\"message\\":\\"tool_not_allowed\\"}}")`;
const INCREMENT = `@((string)context.Variables["aigov-mcp-method"] == "tools/call")`;
const COUNTER = `@(context.Subscription.Id + "|" + (string)context.Variables["aigov-mcp-tool"])`;

function state(method: string, body: string | undefined, vars: Record<string, unknown> = {}, headers: [string, string][] = []): RequestState {
  return {
    requestId: "5b0c4c1e-7d25-4f5e-9a43-2f3a2c1d0e9f",
    ip: "127.0.0.1",
    method,
    originalUrl: new URL("http://gw/t1/mcp/x/mcp"),
    path: "/mcp",
    query: new URLSearchParams(),
    headers: new HeaderBag([["Content-Type", "application/json"], ...headers]),
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

const run = (src: string, s: RequestState) => compileExpression(src.slice(2, -1), src.startsWith("@{") ? "block" : "single")({ context: contextObject(s), random: () => 0.5, now: Date.now });
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

  it("the compiler's message check: one JSON-RPC request, notification or response per POST, nothing a case-blind decoder could read otherwise", () => {
    const invalid = (body: string | undefined, method = "POST") => run(MCP_MESSAGE_INVALID, state(method, body));
    // Valid: a request, a notification, a client's response (result or error).
    expect(invalid(call({ name: "a" }))).toBe(false);
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }))).toBe(false);
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 4, result: { roots: [] } }))).toBe(false);
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 4, error: { code: -1, message: "no" } }))).toBe(false);
    expect(invalid(undefined, "GET")).toBe(false);
    // Refused: a method the checks would read as absent or as something else…
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 1, Method: "tools/call", params: { name: "x" } }))).toBe(true);
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 1, method: null, Method: "tools/call" }))).toBe(true);
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 1, method: 7 }))).toBe(true);
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 1, method: { a: 1 } }))).toBe(true);
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "" }))).toBe(true);
    // …a response with anything besides a response's members, no body, not an object.
    expect(invalid(JSON.stringify({ jsonrpc: "2.0", id: 1, result: {}, params: { name: "x" } }))).toBe(true);
    expect(invalid(undefined)).toBe(true);
    expect(invalid("  7")).toBe(true);
    expect(invalid('"tools/call"')).toBe(true);
  });

  it("the compiler's header check: Mcp-Method and a tools/call's Mcp-Name, when sent, say what the message says", () => {
    const differ = (vars: Record<string, string>, headers: [string, string][]) => run(MCP_HEADERS_DIFFER, state("POST", "{}", vars, headers));
    const toolsCall = { "aigov-mcp-method": "tools/call", "aigov-mcp-tool": "a" };
    expect(differ(toolsCall, [])).toBe(false);
    expect(differ(toolsCall, [["Mcp-Method", "tools/call"], ["mcp-name", "a"]])).toBe(false);
    expect(differ(toolsCall, [["Mcp-Method", "tools/list"]])).toBe(true);
    expect(differ(toolsCall, [["Mcp-Name", "b"]])).toBe(true);
    expect(differ({ "aigov-mcp-method": "resources/read", "aigov-mcp-tool": "" }, [["Mcp-Method", "resources/read"], ["Mcp-Name", "file:///x"]])).toBe(false);
    expect(differ({ "aigov-mcp-method": "", "aigov-mcp-tool": "" }, [["Mcp-Method", "tools/call"]])).toBe(true);
  });

  it("the compiler's rebuilt message keeps exactly what was checked (last of two equal keys, as read) and a response's members", () => {
    const rebuilt = (body: string, method: string) => JSON.parse(run(MCP_MESSAGE_REBUILT, state("POST", body, { "aigov-mcp-method": method })) as string) as unknown;
    const sent = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"b","Name":"c","arguments":{"x":1},"task":{"ttl":5},"extra":true,"name":"a"},"Params":{}}`;
    expect(rebuilt(sent, "tools/call")).toEqual({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "a", arguments: { x: 1 }, task: { ttl: 5 } } });
    expect(rebuilt(JSON.stringify({ jsonrpc: "2.0", id: "r", result: { ok: true } }), "")).toEqual({ jsonrpc: "2.0", id: "r", result: { ok: true } });
    expect(rebuilt(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: { cursor: "c" } }), "tools/list")).toEqual({ jsonrpc: "2.0", id: 2, method: "tools/list", params: { cursor: "c" } });
  });

  it("an MCP server's policy may not read the response body (APIM: it breaks streaming)", () => {
    const s = state("POST", "{}");
    s.response = { status: 200, reason: "OK", headers: new HeaderBag(), body: Buffer.from("{}") };
    expect(() => run(`@(context.Response.Body != null)`, s)).toThrow(/must not read context.Response.Body/);
    expect(run(`@(context.Response.Body != null)`, { ...s, mcp: false })).toBe(true);
  });

  it("a session id is sealed for the key that opened it (AES under a key only its holder has) and opened for that key only", () => {
    const upstreamId = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
    const answered = state("POST", call({ name: "a" }));
    answered.response = { status: 200, reason: "OK", headers: new HeaderBag([["mcp-session-id", upstreamId]]), body: undefined };
    const sealed = run(MCP_SESSION_SEALED, answered) as string;
    // .NET's Aes (CBC, PKCS7) under HMACSHA256(UTF8 presented key) of "aigov-mcp-session|<API id>", over "<id>|<MAC>",
    // the MAC an HMACSHA256 of "<id>|<API id>" under the same key.
    const key = createHmac("sha256", Buffer.from("k", "utf8")).update("aigov-mcp-session|mcp-x", "utf8").digest();
    const mac = createHmac("sha256", key).update(`${upstreamId}|mcp-x`, "utf8").digest("base64");
    const cipher = createCipheriv("aes-256-cbc", key, Buffer.from("aigov-mcp-sess-1", "utf8"));
    expect(sealed).toBe(Buffer.concat([cipher.update(`${upstreamId}|${mac}`, "utf8"), cipher.final()]).toString("base64"));
    expect(sealed).not.toContain(upstreamId.slice(0, 8)); // the server's id never reaches the client
    const asking = (id: string, presented = "k", api = "mcp-x") => {
      const s = state("POST", call({ name: "a" }), {}, [["Mcp-Session-Id", id]]);
      return run(MCP_SESSION_OF_REQUEST, { ...s, api: { ...s.api!, id: api }, subscription: { ...s.subscription!, key: presented } });
    };
    expect(asking(sealed)).toBe(upstreamId);
    // Another key (the same subscription's other one too) or another API: garbage or a padding failure, never the id.
    const refusedOrFailed = (f: () => unknown) => {
      try {
        return f() === " " ? "refused" : "opened";
      } catch (e) {
        return (e as CsException).exception;
      }
    };
    for (const [presented, api] of [["k2", "mcp-x"], ["other-key", "mcp-x"], ["k", "mcp-y"]] as const) expect(["refused", "CryptographicException"]).toContain(refusedOrFailed(() => asking(sealed, presented, api)));
    // The bare server id is no base64 of a sealed name; a forged one fails the padding or opens to nothing.
    expect(refusedOrFailed(() => asking(upstreamId))).toBe("FormatException");
    expect(["refused", "CryptographicException"]).toContain(refusedOrFailed(() => asking(Buffer.alloc(48, 7).toString("base64"))));
    // An altered block (CBC lets it decrypt to garbage with the padding intact) fails the MAC: refused, never forwarded.
    const raw = Buffer.from(sealed, "base64");
    raw[0] = raw[0]! ^ 1;
    expect(refusedOrFailed(() => asking(raw.toString("base64")))).toBe("refused");
    expect(run(MCP_SESSION_OF_REQUEST, state("POST", call({ name: "a" })))).toBe("");
    // A '|' inside the server's own id is kept: the API id is what ends the sealed name.
    const piped = state("POST", call({ name: "a" }));
    piped.response = { status: 200, reason: "OK", headers: new HeaderBag([["Mcp-Session-Id", "a|b"]]), body: undefined };
    expect(asking(run(MCP_SESSION_SEALED, piped) as string)).toBe("a|b");
  });

  it("HMACSHA256, Encoding.UTF8.GetBytes and Convert.ToBase64String as .NET has them (RFC 4231 case 2)", () => {
    const s = state("GET", undefined);
    expect(run(`@(Convert.ToBase64String(new HMACSHA256(Encoding.UTF8.GetBytes("Jefe")).ComputeHash(Encoding.UTF8.GetBytes("what do ya want for nothing?"))))`, s)).toBe(
      Buffer.from("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "hex").toString("base64"),
    );
    expect(run(`@(Convert.ToBase64String(Encoding.UTF8.GetBytes("é")))`, s)).toBe("w6k=");
    expect(() => run(`@(new HMACSHA256("key"))`, s)).toThrow(/byte\[\]/);
    expect(() => run(`@(Convert.ToBase64String("text"))`, s)).toThrow(/byte\[\]/);
    const aes = `Encoding.UTF8.GetBytes("0123456789abcdef0123456789abcdef"), Encoding.UTF8.GetBytes("0123456789abcdef")`;
    expect(run(`@(Encoding.UTF8.GetString(Encoding.UTF8.GetBytes("round trip").Encrypt("Aes", ${aes}).Decrypt("Aes", ${aes})))`, s)).toBe("round trip");
    expect(() => run(`@(Encoding.UTF8.GetBytes("x").Encrypt("Aes", Encoding.UTF8.GetBytes("short"), Encoding.UTF8.GetBytes("0123456789abcdef")))`, s)).toThrow(/not a valid size/);
  });
});
