import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHttpHeaders, type PipelineRequest, type PipelineResponse } from "@azure/core-rest-pipeline";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { ArmGatewayPublisher } from "../../src/adapters/apim/arm-publisher.js";
import { GatewayPublishError } from "../../src/adapters/apim/plan.js";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { PUBLISHED_MARKER } from "../../src/local-gateway/runtime/folder.js";
import { artifactHash, artifactRef, expectedReadBack, readBackHash, type ApiArtifact, type GatewayArtifact, type GatewayPublisher, type GatewayReadBack } from "../../src/ports/gateway.js";
import { createArmFake, FAKE_ARM_SUBSCRIPTION, type ArmFake } from "../support/arm-fake.js";
import { errorOf } from "../support/errors.js";

const RG = "rg-aigov";
const SVC = "apim-aigov";
const SERVICE_ID = `/subscriptions/${FAKE_ARM_SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.ApiManagement/service/${SVC}`;
const SERVICE_PATH = /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.ApiManagement\/service\/[^/]+\/(.+)$/i;
const PREVIEW = "2025-09-01-preview";
const STABLE = "2024-05-01";

// ---- the artifacts: a REST API with a schema document, a server of its tools, a pass-through server ----

const WIDGET = { type: "object", properties: { id: { type: "string" } } };
const REST: ApiArtifact = {
  kind: "api",
  id: "rest-widgets",
  displayName: "Widgets",
  description: "the widgets API",
  path: "t1/rest/widgets",
  protocols: ["https"],
  subscriptionRequired: true,
  subscriptionKeyHeaderName: "api-key",
  serviceUrl: "https://widgets.example.com/api",
  schemas: [{ id: "widgets", contentType: "application/vnd.oai.openapi.components+json", document: { components: { schemas: { Widget: WIDGET } } } }],
  operations: [
    {
      id: "get-widget",
      method: "GET",
      urlTemplate: "/widgets/{id}",
      displayName: "Get a widget",
      description: "Reads one widget.",
      templateParameters: [{ name: "id", type: "string", required: true, description: "the id" }],
      request: { queryParameters: [{ name: "verbose", type: "boolean", required: false }] },
      responses: [{ statusCode: 200, representations: [{ contentType: "application/json", schemaId: "widgets", typeName: "Widget" }] }],
    },
    {
      id: "add-note",
      method: "POST",
      urlTemplate: "/widgets/{id}/notes",
      displayName: "Add a note",
      templateParameters: [{ name: "id", type: "string", required: true }],
      request: { representations: [{ contentType: "application/json", schemaId: "widgets", typeName: "Widget" }] },
    },
  ],
};
const TOOLS: ApiArtifact = {
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
      { id: "get-widget", displayName: "get_widget", description: "Reads a widget", apiId: "rest-widgets", operationId: "get-widget" },
      { id: "add-note", displayName: "add_note", apiId: "rest-widgets", operationId: "add-note" },
    ],
  },
};
const PASS: ApiArtifact = {
  kind: "api",
  id: "mcp-remote",
  displayName: "Remote server",
  path: "t1/mcp/remote",
  protocols: ["https"],
  subscriptionRequired: true,
  subscriptionKeyHeaderName: "api-key",
  operations: [],
  mcp: { type: "passThrough", serviceUrl: "https://mcp.example.com", transportType: "sse", endpoints: [{ name: "sse", uriTemplate: "/sse" }, { name: "message", uriTemplate: "/messages" }] },
};
/** Deliberately in the wrong order: MCP servers first. */
const DESIRED: GatewayArtifact[] = [TOOLS, PASS, REST];

// ---- ARM: the shared fake, with what it does not model (tools, schemas, operation status) served here ----

interface Call {
  method: string;
  resource: string;
  apiVersion: string | null;
  ifMatch: string | undefined;
  body: unknown;
  status: number;
}

interface McpArm {
  fake: ArmFake;
  calls: Call[];
  /** Children this test serves: resource path → properties. */
  children: Map<string, Record<string, unknown>>;
  /** Statuses the next long-running operation reports, one per poll (then Succeeded). */
  statuses: string[];
  pacing: { retryAfter?: string };
  publisher(opts?: { mcpEndpoints?: "list" | "map"; pollTimeoutMs?: number }): ArmGatewayPublisher;
}

function mcpArm(): McpArm {
  const fake = createArmFake({ strictParents: true });
  const calls: Call[] = [];
  const children = new Map<string, Record<string, unknown>>();
  const statuses: string[] = [];
  /** A Retry-After the status answers carry (the service asks the poller to wait). */
  const pacing: { retryAfter?: string } = {};
  let etag = 0;
  const answer = (request: PipelineRequest, status: number, body?: unknown, headers: Record<string, string> = {}): PipelineResponse => ({
    request,
    status,
    headers: createHttpHeaders({ ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers }),
    bodyAsText: body === undefined ? undefined : JSON.stringify(body),
  });
  const conflict = (request: PipelineRequest, message: string) => answer(request, 409, { error: { code: "Conflict", message } });
  /** Tools that name an operation of this API (APIM refuses to delete what a tool names). */
  const toolsNaming = (apiId: string, opId = "[^/]+") => [...children].filter(([k, p]) => k.includes("/tools/") && new RegExp(`/apis/${apiId}/operations/${opId}$`).test(String(p.operationId)));

  const serve = async (request: PipelineRequest, send: (r: PipelineRequest) => Promise<PipelineResponse>): Promise<PipelineResponse> => {
    const url = new URL(request.url);
    const resource = SERVICE_PATH.exec(decodeURIComponent(url.pathname))?.[1] ?? "";
    const version = url.searchParams.get("api-version");
    const child = /^apis\/([^/]+)\/(tools|schemas)(?:\/([^/]+))?$/.exec(resource);
    if (resource.startsWith("operationResults/")) {
      const res = answer(request, 200, { status: statuses.shift() ?? "Succeeded", ...(resource.endsWith("-failing") ? { error: { code: "ValidationError", message: "the MCP server's endpoints were refused" } } : {}) });
      if (pacing.retryAfter !== undefined) res.headers.set("retry-after", pacing.retryAfter);
      return res;
    }
    if (child) {
      const [, apiId, kind, id] = child;
      if ((kind === "tools") !== (version === PREVIEW)) return answer(request, 400, { error: { code: "InvalidApiVersion", message: `${kind} at ${version}` } });
      if (!fake.state.has(`apis/${apiId}`)) return answer(request, 404, { error: { code: "ResourceNotFound", message: `apis/${apiId}` } });
      if (!id && request.method === "GET") {
        const value = [...children].filter(([k]) => k.startsWith(`apis/${apiId}/${kind}/`)).map(([k, properties]) => ({ name: k.split("/").pop(), properties }));
        return answer(request, 200, { value });
      }
      const existing = children.get(resource);
      if (request.method === "DELETE") {
        if (!request.headers.get("if-match")) return answer(request, 412, { error: { code: "PreconditionFailed", message: "If-Match is required" } });
        if (kind === "schemas" && [...fake.state].some(([k, e]) => k.startsWith(`apis/${apiId}/operations/`) && JSON.stringify(e.properties).includes(`"schemaId":"${id}"`)))
          return conflict(request, `schema ${id} is used by an operation`);
        children.delete(resource);
        return answer(request, existing ? 200 : 204);
      }
      if (request.method === "PUT") {
        const body = JSON.parse(String(request.body)) as { properties: Record<string, unknown> };
        if (kind === "tools") {
          const op = /\/apis\/([^/]+)\/operations\/([^/]+)$/.exec(String(body.properties.operationId));
          if (!String(body.properties.operationId).startsWith(`${SERVICE_ID}/`) || !op || !fake.state.has(`apis/${op[1]}/operations/${op[2]}`))
            return answer(request, 400, { error: { code: "ValidationError", message: `operation ${String(body.properties.operationId)} does not exist` } });
        }
        children.set(resource, body.properties);
        return answer(request, existing ? 200 : 201, { id: resource, name: id, properties: { ...body.properties, provisioningState: "Succeeded" } }, { etag: `"c${++etag}"` });
      }
    }
    const op = /^apis\/([^/]+)\/operations\/([^/]+)$/.exec(resource);
    if (request.method === "DELETE" && op && toolsNaming(op[1]!, op[2]).length) return conflict(request, `operation ${op[2]} is used by a tool`);
    const api = /^apis\/([^/]+)$/.exec(resource);
    if (request.method === "DELETE" && api && toolsNaming(api[1]!).some(([k]) => !k.startsWith(`${resource}/`))) return conflict(request, `an MCP server's tool uses ${resource}`);
    const res = await send(request);
    if (api && request.method === "DELETE" && res.status < 300) for (const k of [...children.keys()]) if (k.startsWith(`${resource}/`)) children.delete(k);
    // The preview's writes of an MCP server are long-running: their status is polled at Azure-AsyncOperation.
    if (api && version === PREVIEW && (request.method === "PUT" || request.method === "DELETE") && res.status < 300) {
      const failing = JSON.stringify(request.body ?? "").includes("failing.example.com") ? "failing" : "ok";
      res.headers.set("azure-asyncoperation", `https://management.azure.com${SERVICE_ID}/operationResults/${api[1]}-${++etag}-${failing}?api-version=${PREVIEW}`);
      res.headers.set("retry-after", "0");
    }
    return res;
  };

  const around = async (request: PipelineRequest, send: (r: PipelineRequest) => Promise<PipelineResponse>) => {
    const url = new URL(request.url);
    const res = await serve(request, send);
    calls.push({
      method: request.method,
      resource: SERVICE_PATH.exec(decodeURIComponent(url.pathname))?.[1] ?? url.pathname,
      apiVersion: url.searchParams.get("api-version"),
      ifMatch: request.headers.get("if-match"),
      body: typeof request.body === "string" && request.body ? JSON.parse(request.body) : undefined,
      status: res.status,
    });
    return res;
  };
  return {
    fake,
    calls,
    children,
    statuses,
    pacing,
    publisher: (opts = {}) =>
      new ArmGatewayPublisher({
        subscriptionId: FAKE_ARM_SUBSCRIPTION,
        resourceGroup: RG,
        serviceName: SVC,
        credential: { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3600e3 }) },
        clientOptions: { httpClient: { sendRequest: (r) => around(r, (x) => fake.httpClient.sendRequest(x)) }, retryOptions: { retryDelayInMs: 1, maxRetryDelayInMs: 5 } },
        pollIntervalMs: 1,
        ...opts,
      }),
  };
}

const line = (c: Call) => `${c.method} ${c.resource.replace(/operationResults\/.*/, "operationResults/…")} ${c.apiVersion}${c.ifMatch ? ` If-Match:${c.ifMatch}` : ""} → ${c.status}`;

async function expectNoDrift(publisher: GatewayPublisher, desired: GatewayArtifact[], hashes: Record<string, string>) {
  const refs = desired.map(artifactRef);
  const read = await publisher.read(refs);
  for (const a of desired) {
    const ref = artifactRef(a);
    expect(read[ref], ref).toEqual(await expectedReadBack(a, async () => ""));
    expect(readBackHash(read[ref] as GatewayReadBack), ref).toBe(hashes[ref]);
  }
}

describe("ArmGatewayPublisher: MCP servers, tools and REST operations", () => {
  let arm: McpArm;
  beforeEach(() => {
    arm = mcpArm();
  });

  it("writes HTTP APIs (schemas, then operations, at the SDK's version) before MCP servers and their tools (plain REST at the preview), with these bodies", async () => {
    const out = await arm.publisher().publish(DESIRED, {});
    expect(out.sent).toEqual(["api:rest-widgets", "api:mcp-widgets", "api:mcp-remote"]);
    expect(arm.calls.map(line)).toEqual([
      `HEAD apis/rest-widgets ${STABLE} → 404`,
      `PUT apis/rest-widgets ${STABLE} → 201`,
      `PUT apis/rest-widgets/schemas/widgets ${STABLE} → 201`,
      `PUT apis/rest-widgets/operations/add-note ${STABLE} → 201`,
      `PUT apis/rest-widgets/operations/get-widget ${STABLE} → 201`,
      `HEAD apis/mcp-widgets ${PREVIEW} → 404`,
      `PUT apis/mcp-widgets ${PREVIEW} → 201`,
      `GET operationResults/… ${PREVIEW} → 200`,
      `PUT apis/mcp-widgets/tools/add-note ${PREVIEW} → 201`,
      `PUT apis/mcp-widgets/tools/get-widget ${PREVIEW} → 201`,
      `HEAD apis/mcp-remote ${PREVIEW} → 404`,
      `PUT apis/mcp-remote ${PREVIEW} → 201`,
      `GET operationResults/… ${PREVIEW} → 200`,
    ]);
    const body = (resource: string) => arm.calls.find((c) => c.method === "PUT" && c.resource === resource)?.body;
    expect(body("apis/rest-widgets")).toEqual({
      properties: {
        displayName: "Widgets",
        description: "the widgets API",
        path: "t1/rest/widgets",
        protocols: ["https"],
        subscriptionRequired: true,
        subscriptionKeyParameterNames: { header: "api-key" },
        serviceUrl: "https://widgets.example.com/api",
      },
    });
    expect(body("apis/rest-widgets/schemas/widgets")).toEqual({ properties: { contentType: "application/vnd.oai.openapi.components+json", document: { components: { schemas: { Widget: WIDGET } } } } });
    expect(body("apis/rest-widgets/operations/get-widget")).toEqual({
      properties: {
        displayName: "Get a widget",
        method: "GET",
        urlTemplate: "/widgets/{id}",
        description: "Reads one widget.",
        templateParameters: [{ name: "id", type: "string", required: true, description: "the id" }],
        request: { queryParameters: [{ name: "verbose", type: "boolean", required: false }] },
        responses: [{ statusCode: 200, representations: [{ contentType: "application/json", schemaId: "widgets", typeName: "Widget" }] }],
      },
    });
    expect(body("apis/mcp-widgets")).toEqual({
      properties: { type: "mcp", displayName: "Widget tools", path: "t1/mcp/widgets", protocols: ["https"], subscriptionRequired: true, subscriptionKeyParameterNames: { header: "api-key" } },
    });
    expect(body("apis/mcp-widgets/tools/get-widget")).toEqual({
      properties: { displayName: "get_widget", description: "Reads a widget", operationId: `${SERVICE_ID}/apis/rest-widgets/operations/get-widget` },
    });
    expect(body("apis/mcp-remote")).toEqual({
      properties: {
        type: "mcp",
        displayName: "Remote server",
        path: "t1/mcp/remote",
        protocols: ["https"],
        subscriptionRequired: true,
        subscriptionKeyParameterNames: { header: "api-key" },
        serviceUrl: "https://mcp.example.com",
        mcpProperties: { transportType: "sse", endpoints: [{ name: "message", uriTemplate: "/messages" }, { name: "sse", uriTemplate: "/sse" }] },
      },
    });
  });

  it("reads back what it wrote (the preview for APIs, tools and schemas by their listings): no drift; a second publish sends nothing", async () => {
    const publisher = arm.publisher();
    const out = await publisher.publish(DESIRED, {});
    for (const a of DESIRED) expect(out.hashes[artifactRef(a)]).toBe(artifactHash(a));
    arm.calls.length = 0;
    await expectNoDrift(publisher, DESIRED, out.hashes);
    expect(arm.calls.map((c) => `${c.method} ${c.resource} ${c.apiVersion}`).sort()).toEqual([
      `GET apis/mcp-remote ${PREVIEW}`,
      `GET apis/mcp-widgets ${PREVIEW}`,
      `GET apis/mcp-widgets/tools ${PREVIEW}`,
      `GET apis/rest-widgets ${PREVIEW}`,
      `GET apis/rest-widgets/operations ${STABLE}`,
      `GET apis/rest-widgets/schemas ${STABLE}`,
    ]);
    arm.calls.length = 0;
    const again = await publisher.publish([...DESIRED].reverse(), out.hashes);
    expect([again.sent, arm.calls]).toEqual([[], []]);
  });

  /** DESIRED published, then the get-widget tool and the operation behind it to leave: the REST API keeps add-note only. */
  async function getWidgetLeaves() {
    const publisher = arm.publisher();
    const first = await publisher.publish(DESIRED, {});
    const rest: ApiArtifact = { ...REST, schemas: [], operations: REST.operations.filter((o) => o.id === "add-note").map((o) => ({ ...o, request: {} })) };
    const tools: ApiArtifact = { ...TOOLS, mcp: { type: "restTools", tools: TOOLS.mcp!.type === "restTools" ? TOOLS.mcp!.tools.filter((t) => t.id === "add-note") : [] } };
    arm.calls.length = 0;
    return { publisher, first, rest, tools };
  }

  it("a tool and the operation behind it leave in one publish: the tool first, the operation (and its unused schema) last", async () => {
    const { publisher, first, rest, tools } = await getWidgetLeaves();
    const out = await publisher.publish([tools, PASS, rest], first.hashes);
    expect(out.sent).toEqual(["api:rest-widgets", "api:mcp-widgets"]);
    const writes = arm.calls.filter((c) => c.method === "PUT" || c.method === "DELETE").map(line);
    expect(writes).toEqual([
      `PUT apis/rest-widgets ${STABLE} If-Match:${writes[0]!.match(/If-Match:(\S+)/)![1]} → 200`,
      `PUT apis/rest-widgets/operations/add-note ${STABLE} If-Match:* → 200`,
      `PUT apis/mcp-widgets ${PREVIEW} If-Match:${writes[2]!.match(/If-Match:(\S+)/)![1]} → 200`,
      `DELETE apis/mcp-widgets/tools/get-widget ${PREVIEW} If-Match:* → 200`,
      `DELETE apis/rest-widgets/operations/get-widget ${STABLE} If-Match:* → 200`,
      `DELETE apis/rest-widgets/schemas/widgets ${STABLE} If-Match:* → 200`,
    ]);
    await expectNoDrift(publisher, [tools, PASS, rest], out.hashes);
  });

  it("stopped after every step, the operation a tool names still leaves after the tool: its API is sent again until one call gets to the end", async () => {
    const { publisher, first, rest, tools } = await getWidgetLeaves();
    const spent = { spent: () => true };
    let out = await publisher.publish([tools, PASS, rest], first.hashes, spent);
    let calls = 1;
    // The HTTP API's write leaves its stale operation for the end: no progress yet, so the call goes on to the MCP server.
    expect(out).toMatchObject({ sent: ["api:rest-widgets", "api:mcp-widgets"] });
    expect(out.remaining).toBeGreaterThan(0);
    while (out.remaining !== undefined) {
      out = await publisher.publish([tools, PASS, rest], out.hashes, spent);
      calls++;
      expect(calls).toBeLessThan(5);
    }
    const deletes = arm.calls.filter((c) => c.method === "DELETE").map(line);
    expect(deletes).toEqual([
      `DELETE apis/mcp-widgets/tools/get-widget ${PREVIEW} If-Match:* → 200`,
      `DELETE apis/rest-widgets/operations/get-widget ${STABLE} If-Match:* → 200`,
      `DELETE apis/rest-widgets/schemas/widgets ${STABLE} If-Match:* → 200`,
    ]);
    await expectNoDrift(publisher, [tools, PASS, rest], out.hashes);
    expect(await publisher.publish([tools, PASS, rest], out.hashes)).toMatchObject({ sent: [] });
  });

  it("deletes MCP servers (preview, with the ETag just read) before the HTTP APIs their tools name", async () => {
    const publisher = arm.publisher();
    const first = await publisher.publish(DESIRED, {});
    const etags = Object.fromEntries([...arm.fake.state].map(([k, v]) => [k, v.etag]));
    arm.calls.length = 0;
    const out = await publisher.publish([], first.hashes);
    expect(out.deleted).toEqual(["api:mcp-remote", "api:mcp-widgets", "api:rest-widgets"]);
    expect(arm.calls.filter((c) => c.method === "DELETE").map(line)).toEqual([
      `DELETE apis/mcp-remote ${PREVIEW} If-Match:${etags["apis/mcp-remote"]} → 200`,
      `DELETE apis/mcp-widgets ${PREVIEW} If-Match:${etags["apis/mcp-widgets"]} → 200`,
      `DELETE apis/rest-widgets ${STABLE} If-Match:${etags["apis/rest-widgets"]} → 200`,
    ]);
    // Each delete was ordered by the type the gateway reported (a GET at the preview).
    expect(arm.calls.filter((c) => c.method === "GET" && /^apis\/[^/]+$/.test(c.resource)).every((c) => c.apiVersion === PREVIEW)).toBe(true);
    expect([...arm.fake.state.keys(), ...arm.children.keys()]).toEqual([]);
  });

  it("sends the REST specification's map of endpoints when asked, and reads either shape back as the same server", async () => {
    const publisher = arm.publisher({ mcpEndpoints: "map" });
    const out = await publisher.publish([PASS], {});
    expect(arm.calls.find((c) => c.method === "PUT")?.body).toMatchObject({ properties: { mcpProperties: { transportType: "sse", endpoints: { sse: { uriTemplate: "/sse" }, messages: { uriTemplate: "/messages" } } } } });
    await expectNoDrift(publisher, [PASS], out.hashes);
    // Changed behind the publisher's back: drift.
    arm.fake.edit("apis/mcp-remote", (p) => ((p.mcpProperties as { endpoints: Record<string, unknown> }).endpoints = { sse: { uriTemplate: "/events" }, messages: { uriTemplate: "/messages" } }));
    const read = await publisher.read(["api:mcp-remote"]);
    expect(readBackHash(read["api:mcp-remote"] as GatewayReadBack)).not.toBe(out.hashes["api:mcp-remote"]);
  });

  it("waits for a long-running write; a failed one stops the publish with the service's message and leaves the hash unrecorded", async () => {
    arm.statuses.push("InProgress", "InProgress");
    const ok = await arm.publisher().publish([PASS], {});
    expect(arm.calls.filter((c) => c.resource.startsWith("operationResults/"))).toHaveLength(3);
    const failing: ApiArtifact = { ...PASS, mcp: { ...(PASS.mcp as Extract<ApiArtifact["mcp"], { type: "passThrough" }>), serviceUrl: "https://failing.example.com" } };
    arm.statuses.push("Failed");
    const err = await errorOf(arm.publisher().publish([failing], ok.hashes));
    expect(err).toBeInstanceOf(GatewayPublishError);
    const e = err as GatewayPublishError;
    expect(e.message).toMatch(/api:mcp-remote.*Failed: the MCP server's endpoints were refused/);
    expect(e.partial.hashes["api:mcp-remote"]).toBe(ok.hashes["api:mcp-remote"]);
  });

  it("never waits past its deadline, whatever Retry-After the service asks for", async () => {
    arm.statuses.push("InProgress", "InProgress", "InProgress");
    arm.pacing.retryAfter = "86400";
    const err = await errorOf(arm.publisher({ pollTimeoutMs: 50 }).publish([PASS], {}));
    expect(err).toBeInstanceOf(GatewayPublishError);
    expect(err.message).toMatch(/did not finish in time/);
    delete arm.pacing.retryAfter;
  });

  it("refuses what APIM would refuse before sending anything", async () => {
    const publisher = arm.publisher();
    const sse = PASS.mcp as Extract<ApiArtifact["mcp"], { type: "passThrough" }>;
    await expect(publisher.publish([{ ...PASS, mcp: { ...sse, endpoints: [{ name: "sse", uriTemplate: "/sse" }] } }], {})).rejects.toThrow(/needs the endpoints message and sse/);
    await expect(publisher.publish([{ ...PASS, mcp: { ...sse, transportType: "streamable" } }], {})).rejects.toThrow(/needs the endpoints message/);
    await expect(publisher.publish([{ ...PASS, mcp: { ...sse, endpoints: [{ name: "sse", uriTemplate: "sse" }, { name: "message", uriTemplate: "/m" }] } }], {})).rejects.toThrow(/must start with/);
    await expect(publisher.publish([{ ...TOOLS, operations: REST.operations }], {})).rejects.toThrow(/MCP server: it has tools, not operations/);
    await expect(publisher.publish([{ ...TOOLS, mcp: { type: "restTools", tools: [{ id: "../x", displayName: "x", apiId: "a", operationId: "o" }] } }], {})).rejects.toThrow(/invalid tool id/);
    expect(arm.calls).toEqual([]);
  });
});

describe("FilePublisher: MCP servers, tools and schemas as files", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  /** The ARM-shaped files (the publish marker aside). */
  const files = async (root: string) =>
    (await readdir(root, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile() && !(e.parentPath === root && e.name === PUBLISHED_MARKER))
      .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
      .sort();

  it("writes the ARM bodies at the ARM paths (a tool names its operation by the relative id), reads them back without drift, and removes stale children", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aigov-apim-mcp-"));
    dirs.push(dir);
    const publisher = new FilePublisher(dir);
    const out = await publisher.publish(DESIRED, {});
    expect(await files(dir)).toEqual([
      "apis/mcp-remote.json",
      "apis/mcp-widgets.json",
      "apis/mcp-widgets/tools/add-note.json",
      "apis/mcp-widgets/tools/get-widget.json",
      "apis/rest-widgets.json",
      "apis/rest-widgets/operations/add-note.json",
      "apis/rest-widgets/operations/get-widget.json",
      "apis/rest-widgets/schemas/widgets.json",
    ]);
    const json = async (p: string) => JSON.parse(await readFile(join(dir, p), "utf8")) as unknown;
    expect(await json("apis/mcp-widgets/tools/get-widget.json")).toEqual({ properties: { displayName: "get_widget", description: "Reads a widget", operationId: "/apis/rest-widgets/operations/get-widget" } });
    expect(await json("apis/mcp-remote.json")).toMatchObject({ properties: { type: "mcp", serviceUrl: "https://mcp.example.com", mcpProperties: { transportType: "sse" } } });
    await expectNoDrift(publisher, DESIRED, out.hashes);

    const rest: ApiArtifact = { ...REST, schemas: [], operations: [] };
    const pass: ApiArtifact = { ...TOOLS, mcp: { type: "restTools", tools: [] } };
    const next = await publisher.publish([rest, pass], out.hashes);
    expect(next.deleted).toEqual(["api:mcp-remote"]);
    expect(await files(dir)).toEqual(["apis/mcp-widgets.json", "apis/rest-widgets.json"]);
    await expectNoDrift(publisher, [rest, pass], next.hashes);
  });
});
