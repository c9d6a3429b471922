import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DISCOVERY_LIMITS, discoverServer, type DiscoveredServer, type DiscoveryLimits, type DiscoveryOutcome } from "../../src/pillars/tools/discovery/client.js";
import { diffTools, toolHash } from "../../src/pillars/tools/definitions.js";
import { annotationsOf, validateTool } from "../../src/pillars/tools/validation.js";
import { startGovernanceServer, type GovernanceServer } from "../fixtures/mcp/governance.js";
import { DEEP_NESTING, PAGED_TOOL_COUNT, startHostileServer, type HostileServer } from "../fixtures/mcp/hostile.js";
import { listenLoopback, readJson, type LoopbackServer } from "../fixtures/mcp/http.js";
import { MCP_SERVER_NAMES, startMcpServer, type McpServerName, type RunningMcpServer } from "../fixtures/mcp/servers.js";

/**
 * Discovery against real MCP implementations and against servers built to misbehave, all on 127.0.0.1.
 * In the slow project: the reference server runs as a child process.
 */

const LOCAL = { allowLoopback: true };
/** Small bounds for the misbehaving servers, so a failure to stop shows up as a wrong outcome, not a slow test. */
const TIGHT: DiscoveryLimits = { ...DEFAULT_DISCOVERY_LIMITS, connectTimeoutMs: 1_000, requestTimeoutMs: 1_000, totalTimeoutMs: 5_000 };

function expectServer(outcome: DiscoveryOutcome): DiscoveredServer {
  if (!outcome.ok) throw new Error(`discovery failed: ${outcome.code}: ${outcome.message}`);
  return outcome.server;
}

function expectFailure(outcome: DiscoveryOutcome) {
  if (outcome.ok) throw new Error(`discovery succeeded with ${outcome.server.tools.length} tools; a failure was expected`);
  return outcome;
}

const toolNamed = (server: DiscoveredServer, name: string) => {
  const tool = server.tools.find((t) => t.name === name);
  if (!tool) throw new Error(`no tool ${name} among ${server.tools.map((t) => String(t.name)).join(", ")}`);
  return tool;
};

const errorsOf = (tool: Record<string, unknown>, version: string) => validateTool(tool, version).filter((f) => f.severity === "error");

/** Every implementation, started once for the file (side by side: the reference server is a child process). */
const implementations = new Map<McpServerName, RunningMcpServer>();
beforeAll(async () => {
  const started = await Promise.allSettled(MCP_SERVER_NAMES.map(async (name) => implementations.set(name, await startMcpServer(name))));
  const failed = started.find((s) => s.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
});
afterAll(() => Promise.all([...implementations.values()].map((s) => s.close())));

describe.each(MCP_SERVER_NAMES)("discovery against %s", (name) => {
  let running: RunningMcpServer;
  beforeAll(() => {
    running = implementations.get(name)!;
  });

  it("finds the server's transport and negotiated version, and an echo tool every implementation's validator accepts", async () => {
    // auto: the SSE-only servers are reached through the fallback after Streamable HTTP is refused.
    const server = expectServer(await discoverServer({ url: running.url, transport: "auto" }, DEFAULT_DISCOVERY_LIMITS, LOCAL));
    expect(server.transport).toBe(running.transport);
    expect(server.protocolVersion).toBe(running.expectedProtocolVersion);
    expect(server.serverInfo.name).not.toBe("");
    expect(server.pages).toBeGreaterThanOrEqual(1);
    expect(server.bytes).toBeGreaterThan(0);
    const echo = toolNamed(server, "echo");
    expect(typeof echo.description).toBe("string");
    for (const tool of server.tools) expect({ tool: tool.name, errors: errorsOf(tool, server.protocolVersion) }).toEqual({ tool: tool.name, errors: [] });
  });

  it("connects over the transport named explicitly too", async () => {
    const server = expectServer(await discoverServer({ url: running.url, transport: running.transport }, DEFAULT_DISCOVERY_LIMITS, LOCAL));
    expect(server.transport).toBe(running.transport);
  });
});

describe("raw fields and versions", () => {
  const discover = async (name: McpServerName) => expectServer(await discoverServer({ url: implementations.get(name)!.url, transport: "auto" }, DEFAULT_DISCOVERY_LIMITS, LOCAL));

  it("keeps what the 1.32 SDK sends beyond the 2024 fields (title, outputSchema, execution) and the instructions", async () => {
    const server = await discover("sdk-v1");
    const echo = toolNamed(server, "echo");
    expect(echo.title).toBe("Echo");
    expect(echo.execution).toEqual({ taskSupport: "forbidden" });
    expect(echo.outputSchema).toMatchObject({ type: "object", properties: { message: { type: "string" } } });
    expect(server.instructions).toBe("Fixture server of the 1.32 SDK.");
    expect(annotationsOf(echo)).toEqual({ readOnly: true, destructive: false, idempotent: true, openWorld: false });
  });

  it("keeps icons from the v2 SDK, and its 2020-12 schemas validate at 2025-11-25", async () => {
    const server = await discover("sdk-v2");
    const echo = toolNamed(server, "echo");
    expect(echo.icons).toEqual([{ src: "https://example.invalid/echo.png", mimeType: "image/png", sizes: ["48x48"] }]);
    expect(validateTool(echo, server.protocolVersion)).toEqual([]);
  });

  it("judges a tool by the version its server negotiated: newer fields are flagged on an older one", async () => {
    const legacy = toolNamed(await discover("sdk-legacy"), "echo");
    expect(Object.keys(legacy).sort()).toEqual(["description", "inputSchema", "name"]);
    expect(validateTool(legacy, "2024-11-05")).toEqual([]);

    const modern = toolNamed(await discover("sdk-v1"), "echo");
    expect(validateTool(modern, "2025-11-25")).toEqual([]);
    const asOld = validateTool(modern, "2024-11-05");
    expect(asOld.filter((f) => f.severity === "error")).toEqual([]);
    expect(asOld.filter((f) => f.code === "field_newer_than_version").map((f) => f.path).sort()).toEqual(["/annotations", "/execution", "/outputSchema", "/title"]);
  });

  it("records mcp-lite at 2025-03-26, where annotations are defined", async () => {
    const server = await discover("mcp-lite");
    expect(server.protocolVersion).toBe("2025-03-26");
    expect(validateTool(toolNamed(server, "echo"), server.protocolVersion)).toEqual([]);
  });

  it("lists resources, templates and prompts when the server advertises them", async () => {
    const server = await discover("everything-streamable");
    expect(server.capabilities).toHaveProperty("resources");
    expect(server.capabilities).toHaveProperty("prompts");
    expect(server.resources.length).toBeGreaterThan(0);
    expect(server.resourceTemplates.length).toBeGreaterThan(0);
    expect(server.prompts.length).toBeGreaterThan(0);
    for (const resource of server.resources) expect(typeof resource.uri).toBe("string");
  });

  it("does not list resources or prompts a server does not advertise", async () => {
    const server = await discover("sdk-v1");
    expect(server.capabilities).not.toHaveProperty("resources");
    expect([server.resources, server.resourceTemplates, server.prompts]).toEqual([[], [], []]);
  });
});

describe("bounds", () => {
  const hostile = new Map<string, HostileServer>();
  beforeAll(async () => {
    for (const kind of ["paged-5000", "malformed-schema", "oversized", "silent", "cursor-loop"] as const) hostile.set(kind, await startHostileServer(kind));
  });
  afterAll(() => Promise.all([...hostile.values()].map((s) => s.close())));
  const url = (kind: string) => hostile.get(kind)!.url;

  it("pages through 5,000 tools to the end", async () => {
    const before = hostile.get("paged-5000")!.listRequests;
    const server = expectServer(await discoverServer({ url: url("paged-5000"), transport: "streamable-http" }, DEFAULT_DISCOVERY_LIMITS, LOCAL));
    expect(server.tools).toHaveLength(PAGED_TOOL_COUNT);
    expect(new Set(server.tools.map((t) => t.name)).size).toBe(PAGED_TOOL_COUNT);
    expect(server.pages).toBe(hostile.get("paged-5000")!.listRequests - before);
    expect(server.pages).toBeGreaterThan(1);
  });

  it("refuses a cursor it did not issue with -32602 (the fixture's contract)", async () => {
    const response = await fetch(url("paged-5000"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list", params: { cursor: "not-a-cursor" } }),
    });
    expect(await response.json()).toMatchObject({ id: 7, error: { code: -32602 } });
  });

  it("stops past the tool, page and byte limits", async () => {
    const target = { url: url("paged-5000"), transport: "streamable-http" as const };
    expect(expectFailure(await discoverServer(target, { ...DEFAULT_DISCOVERY_LIMITS, maxTools: PAGED_TOOL_COUNT - 1 }, LOCAL)).code).toBe("too_many_tools");
    expect(expectFailure(await discoverServer(target, { ...DEFAULT_DISCOVERY_LIMITS, maxPages: 10 }, LOCAL)).code).toBe("too_many_pages");
    // Every page is small; their sum is not.
    expect(expectFailure(await discoverServer(target, { ...DEFAULT_DISCOVERY_LIMITS, maxManifestBytes: 100_000 }, LOCAL)).code).toBe("manifest_too_large");
  });

  it("keeps tools with broken schemas and reports each through validation, without failing discovery", async () => {
    const server = expectServer(await discoverServer({ url: url("malformed-schema"), transport: "auto" }, DEFAULT_DISCOVERY_LIMITS, LOCAL));
    const codes = (name: string) => errorsOf(toolNamed(server, name), server.protocolVersion).map((f) => f.code);
    expect(codes("good_tool")).toEqual([]);
    expect(codes("bad_type")).toContain("schema_invalid");
    expect(codes("deep_nesting")).toEqual(["schema_too_deep"]);
    expect(codes("external_ref")).toEqual(["schema_external_ref"]);
    expect(codes("lookbehind_pattern")).toEqual(["schema_pattern_unsupported"]);
    expect(codes("non_object_root")).toEqual(["input_schema_root_not_object"]);
    // The nesting arrived whole, and hashing it does not recurse.
    let depth = 0;
    for (let node = toolNamed(server, "deep_nesting").inputSchema as Record<string, unknown> | undefined; node?.properties; depth++) {
      node = (node.properties as Record<string, Record<string, unknown>>).a;
    }
    expect(depth).toBe(DEEP_NESTING + 1);
    expect(toolHash(toolNamed(server, "deep_nesting"))).toMatch(/^[0-9a-f]{64}$/);
  });

  it("keeps vendor fields, icons, execution and _meta as sent", async () => {
    const server = expectServer(await discoverServer({ url: url("malformed-schema"), transport: "streamable-http" }, DEFAULT_DISCOVERY_LIMITS, LOCAL));
    const good = toolNamed(server, "good_tool");
    expect(good["x-vendor-extra"]).toEqual({ team: "fixtures", tier: 2 });
    expect(good.execution).toEqual({ taskSupport: "optional" });
    expect(good._meta).toEqual({ "example.invalid/trace": "abc" });
    expect(good.icons).toEqual([{ src: "https://example.invalid/icon.png", mimeType: "image/png", sizes: ["32x32"], theme: "light" }]);
  });

  it("fails an oversized list with manifest_too_large", async () => {
    const outcome = expectFailure(await discoverServer({ url: url("oversized"), transport: "streamable-http" }, { ...TIGHT, maxManifestBytes: 1024 * 1024 }, LOCAL));
    expect(outcome.code).toBe("manifest_too_large");
  });

  it("gives up on a server that never answers with timeout, on either transport", async () => {
    const limits = { ...TIGHT, connectTimeoutMs: 300, requestTimeoutMs: 300 };
    for (const transport of ["auto", "streamable-http", "sse"] as const) {
      expect({ transport, code: expectFailure(await discoverServer({ url: url("silent"), transport }, limits, LOCAL)).code }).toEqual({ transport, code: "timeout" });
    }
  });

  it("ends at the total deadline or a caller's abort", async () => {
    const limits = { ...TIGHT, requestTimeoutMs: 60_000, totalTimeoutMs: 300 };
    expect(expectFailure(await discoverServer({ url: url("silent"), transport: "streamable-http" }, limits, LOCAL)).code).toBe("timeout");
    const controller = new AbortController();
    const pending = discoverServer({ url: url("silent"), transport: "streamable-http" }, { ...limits, totalTimeoutMs: 60_000 }, { ...LOCAL, signal: controller.signal });
    controller.abort();
    expect(expectFailure(await pending).code).toBe("timeout");
  });

  it("detects a cursor that comes round again", async () => {
    expect(expectFailure(await discoverServer({ url: url("cursor-loop"), transport: "streamable-http" }, DEFAULT_DISCOVERY_LIMITS, LOCAL)).code).toBe("cursor_loop");
  });

  it("refuses loopback unless the caller allows it, before any request is sent", async () => {
    const server = hostile.get("paged-5000")!;
    const before = server.listRequests;
    for (const address of [server.url, server.url.replace("127.0.0.1", "localhost")]) {
      const outcome = expectFailure(await discoverServer({ url: address, transport: "auto" }, TIGHT, { allowLoopback: false }));
      expect(outcome.code).toBe("blocked_address");
    }
    expect(server.listRequests).toBe(before);
  });

  it("refuses non-HTTP schemes and the metadata address", async () => {
    expect(expectFailure(await discoverServer({ url: "file:///etc/passwd", transport: "auto" }, TIGHT, LOCAL)).code).toBe("blocked_address");
    expect(expectFailure(await discoverServer({ url: "http://169.254.169.254/mcp", transport: "auto" }, TIGHT, { allowLoopback: true, allowPrivate: true })).code).toBe(
      "blocked_address",
    );
  });
});

describe("servers that answer wrongly", () => {
  const TOKEN = "Bearer s3cr3t-token-value-42";
  let echoingAuth: LoopbackServer;
  let oldVersion: LoopbackServer;
  let unauthorized: LoopbackServer;
  let closedPort: number;

  /** Answers initialize with a JSON-RPC error carrying the request's Authorization header, as a careless server might. */
  const jsonRpc = (answer: (message: { id: unknown; method: string }, auth: string) => object) =>
    listenLoopback((req, res) => {
      if (req.method !== "POST") return void res.writeHead(405).end();
      void readJson(req).then((message) => {
        const m = message as { id: unknown; method: string };
        if (m.id === undefined) return void res.writeHead(202).end();
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: m.id, ...answer(m, String(req.headers.authorization)) }));
      });
    });

  beforeAll(async () => {
    echoingAuth = await jsonRpc((_m, auth) => ({ error: { code: -32603, message: `rejected credentials ${auth}` } }));
    oldVersion = await jsonRpc(() => ({ result: { protocolVersion: "1999-01-01", capabilities: {}, serverInfo: { name: "old", version: "0" } } }));
    unauthorized = await listenLoopback((_req, res) => void res.writeHead(401, { "content-type": "text/plain" }).end("no"));
    const gone = await listenLoopback((_req, res) => void res.end());
    closedPort = gone.port;
    await gone.close();
  });
  afterAll(() => Promise.all([echoingAuth, oldVersion, unauthorized].map((s) => s?.close())));

  it("never repeats a header value in its message", async () => {
    const outcome = expectFailure(
      await discoverServer({ url: `http://127.0.0.1:${echoingAuth.port}/mcp`, transport: "streamable-http", headers: { Authorization: TOKEN } }, TIGHT, LOCAL),
    );
    expect(outcome.code).toBe("protocol_error");
    expect(outcome.message).toContain("rejected credentials");
    expect(outcome.message).not.toContain("s3cr3t-token-value-42");
  });

  it("never repeats part of a header value, wherever the message is shortened", async () => {
    // The echo is padded so that shortening the message to its limit would cut the value at every offset.
    const padded = await listenLoopback((req, res) => {
      if (req.method !== "POST") return void res.writeHead(405).end();
      const pad = Number(new URL(req.url ?? "/", "http://x").searchParams.get("pad"));
      void readJson(req).then((message) => {
        const m = message as { id: unknown };
        if (m.id === undefined) return void res.writeHead(202).end();
        const error = { code: -32603, message: `${"A".repeat(pad)}${String(req.headers.authorization)}` };
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: m.id, error }));
      });
    });
    try {
      for (let pad = 470; pad <= 500; pad += 3) {
        for (const transport of ["streamable-http", "auto"] as const) {
          const outcome = expectFailure(await discoverServer({ url: `http://127.0.0.1:${padded.port}/mcp?pad=${pad}`, transport, headers: { Authorization: TOKEN } }, TIGHT, LOCAL));
          expect(outcome.code).toBe("protocol_error");
          expect(outcome.message.length).toBeLessThan(1100);
          expect(outcome.message, `pad ${pad}, ${transport}`).not.toMatch(/s3cr3t|Bearer s/);
        }
      }
    } finally {
      await padded.close();
    }
  });

  it("reports a protocol version it cannot speak, with the version offered", async () => {
    const outcome = expectFailure(await discoverServer({ url: `http://127.0.0.1:${oldVersion.port}/mcp`, transport: "streamable-http" }, TIGHT, LOCAL));
    expect(outcome).toMatchObject({ code: "unsupported_protocol_version", protocolVersion: "1999-01-01" });
  });

  it("reports an HTTP refusal on both transports as http_error", async () => {
    const outcome = expectFailure(await discoverServer({ url: `http://127.0.0.1:${unauthorized.port}/mcp`, transport: "auto" }, TIGHT, LOCAL));
    expect(outcome.code).toBe("http_error");
    expect(outcome.message).toContain("401");
  });

  it("reports a closed port as connect_failed", async () => {
    expect(expectFailure(await discoverServer({ url: `http://127.0.0.1:${closedPort}/mcp`, transport: "auto" }, TIGHT, LOCAL)).code).toBe("connect_failed");
  });

  it("returns an outcome for input that is not a target at all", async () => {
    expect(expectFailure(await discoverServer({ url: "not a url", transport: "auto" }, TIGHT, LOCAL)).code).toBe("connect_failed");
    expect((await discoverServer(null as never, null as never, LOCAL)).ok).toBe(false);
  });
});

describe("definition changes", () => {
  let governance: GovernanceServer;
  beforeAll(async () => {
    governance = await startGovernanceServer();
  });
  afterAll(() => governance?.close());

  const entries = async () => {
    const server = expectServer(await discoverServer({ url: governance.url, transport: "auto" }, DEFAULT_DISCOVERY_LIMITS, LOCAL));
    return server.tools.map((definition) => ({ name: String(definition.name), hash: toolHash(definition), definition }));
  };

  it("reads annotations from the upstream tools", async () => {
    const all = await entries();
    const definition = (name: string) => all.find((e) => e.name === name)!.definition;
    expect(annotationsOf(definition("get_weather"))).toMatchObject({ readOnly: true, destructive: false });
    expect(annotationsOf(definition("delete_file"))).toMatchObject({ readOnly: false, destructive: true });
  });

  it("hashes a changed description differently and diffs it as a description change", async () => {
    const before = await entries();
    const again = await entries();
    expect(diffTools(before, again)).toEqual({ added: [], removed: [], changed: [] });

    governance.setDescription("get_weather", "Current weather for a city, and the user's location history");
    const after = await entries();
    const hash = (list: typeof before, name: string) => list.find((e) => e.name === name)!.hash;
    expect(hash(after, "get_weather")).not.toBe(hash(before, "get_weather"));
    expect(hash(after, "delete_file")).toBe(hash(before, "delete_file"));
    expect(diffTools(before, after)).toEqual({ added: [], removed: [], changed: [{ name: "get_weather", fields: ["description"] }] });
    // Discovery lists; it never calls a tool.
    expect(governance.calls.size).toBe(0);
  });
});
