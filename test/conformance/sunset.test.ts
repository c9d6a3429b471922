/**
 * Conformance: a sunset is when a deprecated agent, model or MCP server stops being served (RFC 8594: the
 * resource "is expected to become unresponsive at a specific point in time"). Before it, calls are answered
 * with the `Sunset` header; from it on, the gateway refuses them, 410 with the reason (`agent_sunset`,
 * `model_sunset`; for MCP servers and toolboxes a JSON-RPC error with `data.reason` `tool_server_sunset` /
 * `toolbox_sunset`) — by its own clock, with no publish in between. Checked through the local gateway, whose
 * clock the test moves.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient, ApiError } from "../../src/client/index.js";
import { startA2aAgent, type A2aAgent } from "../fixtures/agents/a2a-server.js";
import { startGovernanceServer, type GovernanceServer } from "../fixtures/mcp/governance.js";
import { startRestBackend, type RestBackend } from "../fixtures/rest/index.js";
import { Governed, refusal } from "../support/governed.js";
import { convertedServer, ITEMS_API, remoteServer as remoteServerOf } from "../support/tools.js";

let g: Governed;
let dev: AigovClient;
let agentServer: A2aAgent;
let mcpUpstream: GovernanceServer;
let restBackend: RestBackend;
const DAY = 24 * 60 * 60 * 1000;
/** The UTC date `days` from now by the app's clock (the real time: what the API validates against). */
const inDays = (days: number) => new Date(Date.now() + days * DAY).toISOString().slice(0, 10);
/** The UTC date `days` from now by the gateway's clock (ahead of the app's once a test has moved it). */
const gatewayDays = (days: number) => new Date(g.t.clock.now() + days * DAY).toISOString().slice(0, 10);
const imf = (isoDate: string) => new Date(`${isoDate}T00:00:00Z`).toUTCString();

beforeAll(async () => {
  g = await Governed.start("t-sunset");
  dev = await g.as("dora", ["Developer"]);
  agentServer = await startA2aAgent();
  mcpUpstream = await startGovernanceServer();
  restBackend = await startRestBackend(ITEMS_API);
});
afterAll(async () => {
  await agentServer.close();
  await mcpUpstream.close();
  await restBackend.close();
  await g.stop();
});

let rpc = 0;
async function send(projectId: string, agentId: string, key: string, path = "/a2a") {
  const res = await fetch(`${g.t.gateway.url}/${g.names.agentApiPath(projectId, agentId)}${path}`, {
    method: path === "/a2a" ? "POST" : "GET",
    headers: { "content-type": "application/json", "api-key": key, "x-aigov-data-class": "internal" },
    ...(path === "/a2a" ? { body: JSON.stringify({ jsonrpc: "2.0", id: ++rpc, method: "message/send", params: { message: { role: "user", messageId: `u${rpc}`, parts: [{ kind: "text", text: "x" }] } } }) } : {}),
  });
  const body = await res.text();
  return { status: res.status, headers: res.headers, json: (body ? JSON.parse(body) : {}) as { error?: { code?: string; message?: string } } };
}

async function activeAgent(projectId: string, name: string) {
  const agent = await g.admin.agents.create(projectId, { name, card: { url: agentServer.url }, guardrails: { dataClasses: ["public", "internal"] } });
  return g.admin.agents.transition(projectId, agent.id, { to: "active" });
}

describe("conformance: sunsets at the local gateway", () => {
  it("a deprecated agent is served with Sunset until its sunset, then refused 410 agent_sunset with no republish; other agents are unaffected", async () => {
    const p = await g.project("agent-sunset");
    const soon = await activeAgent(p.id, "soon");
    const later = await activeAgent(p.id, "later");
    const active = await activeAgent(p.id, "active");
    const soonDate = gatewayDays(2);
    const laterDate = gatewayDays(30);
    await g.admin.agents.transition(p.id, soon.id, { to: "deprecated", sunsetDate: soonDate });
    await g.admin.agents.transition(p.id, later.id, { to: "deprecated", sunsetDate: laterDate });
    await g.publish("deprecated");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [soon.id, later.id, active.id] } })).key;

    const before = await send(p.id, soon.id, k);
    expect([before.status, before.headers.get("sunset")]).toEqual([200, imf(soonDate)]);
    expect((await send(p.id, soon.id, k, "/.well-known/agent-card.json")).status).toBe(200);

    // Past the sunset instant (00:00 UTC of the date), by the gateway's clock alone.
    g.t.clock.advance(3 * DAY);
    const reached = agentServer.received.length;
    const after = await send(p.id, soon.id, k);
    expect(refusal(after)).toEqual({ status: 410, code: "agent_sunset" });
    expect(after.json.error?.message).toMatch(/sunset/i);
    expect(refusal(await send(p.id, soon.id, k, "/.well-known/agent-card.json"))).toEqual({ status: 410, code: "agent_sunset" });
    expect(agentServer.received.length).toBe(reached);
    const stillLater = await send(p.id, later.id, k);
    expect([stillLater.status, stillLater.headers.get("sunset")]).toEqual([200, imf(laterDate)]);
    const stillActive = await send(p.id, active.id, k);
    expect([stillActive.status, stillActive.headers.get("sunset")]).toEqual([200, null]);
  });

  it("a deprecated agent records when it was deprecated, and its answers carry Deprecation (RFC 9745) beside Sunset, as a model's do; the date survives a block and unblock", async () => {
    const p = await g.project("agent-deprecation");
    const a = await activeAgent(p.id, "dep");
    const date = gatewayDays(30);
    const deprecated = await g.admin.agents.transition(p.id, a.id, { to: "deprecated", sunsetDate: date });
    expect(deprecated.lifecycle).toEqual({ state: "deprecated", sunsetDate: date, deprecatedAt: inDays(0) });
    await g.admin.agents.transition(p.id, a.id, { to: "blocked" });
    const back = await g.admin.agents.transition(p.id, a.id, { to: "deprecated" });
    expect(back.lifecycle).toEqual({ state: "deprecated", sunsetDate: date, deprecatedAt: inDays(0) });
    await g.publish("a deprecated agent");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [a.id] } })).key;
    const answer = await send(p.id, a.id, k);
    expect([answer.status, answer.headers.get("sunset"), answer.headers.get("deprecation")]).toEqual([200, imf(date), `@${Date.parse(`${inDays(0)}T00:00:00Z`) / 1000}`]);
    // The card the gateway answers itself is the agent's answer too: it says the same.
    const card = await send(p.id, a.id, k, "/.well-known/agent-card.json");
    expect([card.status, card.headers.get("sunset"), card.headers.get("deprecation")]).toEqual([200, imf(date), `@${Date.parse(`${inDays(0)}T00:00:00Z`) / 1000}`]);
    // Active again: neither header, and no deprecation date kept.
    expect((await g.admin.agents.transition(p.id, a.id, { to: "active" })).lifecycle).toEqual({ state: "active" });
  });

  it("a sunset date of today or earlier is refused when deprecating an agent (its calls would be refused at once: retire or block it instead)", async () => {
    const p = await g.project("agent-sunset-today");
    const a = await activeAgent(p.id, "today");
    for (const date of [inDays(0), inDays(-1)]) {
      const err = (await g.admin.agents.transition(p.id, a.id, { to: "deprecated", sunsetDate: date }).catch((e: unknown) => e)) as ApiError;
      expect([err.status, err.problem?.errors]).toEqual([400, [{ field: "body.sunsetDate", message: expect.stringMatching(/after today/) }]]);
    }
    expect((await g.admin.agents.get(p.id, a.id)).lifecycle.state).toBe("active");
    expect((await g.admin.agents.transition(p.id, a.id, { to: "deprecated", sunsetDate: inDays(1) })).lifecycle).toMatchObject({ state: "deprecated", sunsetDate: inDays(1) });
  });

  it("a deprecated model is served with Sunset until its sunset, then refused 410 model_sunset with no republish; other models are unaffected", async () => {
    const p = await g.project("model-sunset");
    const old = await g.model(p.id, "gpt-35");
    const mid = await g.model(p.id, "gpt-4");
    await g.model(p.id, "gpt-4o");
    const oldDate = gatewayDays(2);
    const midDate = gatewayDays(30);
    await g.admin.models.update(p.id, old.id, { status: "deprecated", sunsetDate: oldDate }, (await g.admin.models.get(p.id, old.id)).etag);
    await g.admin.models.update(p.id, mid.id, { status: "deprecated", sunsetDate: midDate }, (await g.admin.models.get(p.id, mid.id)).etag);
    await g.publish("deprecated");
    const k = (await g.key(dev, p.id, { name: "caller" })).key;

    const before = await g.chat(p.id, k, "gpt-35");
    expect([before.status, before.headers.get("sunset")]).toEqual([200, imf(oldDate)]);
    const sent = g.t.backends.requests("gpt-35.mock.localhost").length;

    g.t.clock.advance(3 * DAY);
    const after = await g.chat(p.id, k, "gpt-35");
    expect(refusal(after)).toEqual({ status: 410, code: "model_sunset" });
    expect(g.t.backends.requests("gpt-35.mock.localhost")).toHaveLength(sent);
    const stillMid = await g.chat(p.id, k, "gpt-4");
    expect([stillMid.status, stillMid.headers.get("sunset")]).toEqual([200, imf(midDate)]);
    const other = await g.chat(p.id, k, "gpt-4o");
    expect([other.status, other.headers.get("sunset")]).toEqual([200, null]);
  });

  it("a call to a model past its sunset is refused 410 before anything spends: it does not count against the request rate, so the project's other models keep theirs", async () => {
    const p = await g.project("model-sunset-rate", { settings: { requests: { rate: { calls: 3, renewalPeriodSeconds: 60, per: "key" } } } });
    const old = await g.model(p.id, "gpt-35");
    await g.model(p.id, "gpt-4o");
    await g.admin.models.update(p.id, old.id, { status: "deprecated", sunsetDate: gatewayDays(2) }, (await g.admin.models.get(p.id, old.id)).etag);
    await g.publish("a deprecated model under a request rate");
    const k = (await g.key(dev, p.id, { name: "caller" })).key;

    g.t.clock.advance(3 * DAY);
    for (let i = 0; i < 5; i++) expect(refusal(await g.chat(p.id, k, "gpt-35"))).toEqual({ status: 410, code: "model_sunset" });
    // The gate reads the body to find the model: one that is not a JSON object is still the client's 400.
    expect(refusal(await g.call(p.id, "/v1/chat/completions", { key: k, body: [1] }))).toEqual({ status: 400, code: "invalid_body" });
    // Named in the path (an Azure OpenAI deployment route), the model is just as gone.
    expect(refusal(await g.chat(p.id, k, "gpt-35", { route: "deployment" }))).toEqual({ status: 410, code: "model_sunset" });
    // The key's three calls a minute are all still there for the model that is served.
    const served = [];
    for (let i = 0; i < 4; i++) served.push((await g.chat(p.id, k, "gpt-4o")).status);
    expect(served).toEqual([200, 200, 200, 429]);
  });

  it("with a sunset gate, prompt.maxBytes is still judged on the bytes before any body is read as JSON: an oversized body is 413 whatever it holds, and spends nothing", async () => {
    const p = await g.project("model-sunset-size", { settings: { prompt: { maxBytes: 200 }, requests: { rate: { calls: 3, renewalPeriodSeconds: 60, per: "key" } } } });
    const old = await g.model(p.id, "gpt-35");
    await g.model(p.id, "gpt-4o");
    await g.admin.models.update(p.id, old.id, { status: "deprecated", sunsetDate: gatewayDays(2) }, (await g.admin.models.get(p.id, old.id)).etag);
    await g.publish("a deprecated model and a prompt size limit");
    const k = (await g.key(dev, p.id, { name: "caller" })).key;
    const big = "x".repeat(400);
    const sent = g.t.backends.requests("gpt-35.mock.localhost").length;

    // Before the sunset too: the gate is compiled as soon as a model has a sunset date.
    for (let i = 0; i < 4; i++) {
      // Not JSON, and too large: the size is the answer (the gate must not parse it first).
      expect(refusal(await g.call(p.id, "/v1/chat/completions", { key: k, body: `{"model":"gpt-4o","messages":[${big}` }))).toEqual({ status: 413, code: "prompt_too_large" });
      // JSON naming the served model, too large: 413.
      expect(refusal(await g.chat(p.id, k, "gpt-4o", { extra: { user: big } }))).toEqual({ status: 413, code: "prompt_too_large" });
    }
    g.t.clock.advance(3 * DAY);
    // Past the sunset, a too-large call to the gone model is refused by its size, before the body is read.
    expect(refusal(await g.chat(p.id, k, "gpt-35", { extra: { user: big } }))).toEqual({ status: 413, code: "prompt_too_large" });
    expect(refusal(await g.chat(p.id, k, "gpt-35"))).toEqual({ status: 410, code: "model_sunset" });
    // None of these used the key's three calls a minute.
    const served = [];
    for (let i = 0; i < 4; i++) served.push((await g.chat(p.id, k, "gpt-4o")).status);
    expect(served).toEqual([200, 200, 200, 429]);
    expect(g.t.backends.requests("gpt-35.mock.localhost")).toHaveLength(sent);
  });

  it("a model past its sunset is refused 410 model_sunset even where it has no backend in an allowed region (it is gone, not misplaced)", async () => {
    const p = await g.project("model-sunset-region", { settings: { regions: { allowed: ["westeurope"] } } });
    const m = await g.model(p.id, "o3");
    await g.admin.models.update(p.id, m.id, { status: "deprecated", sunsetDate: gatewayDays(2) }, (await g.admin.models.get(p.id, m.id)).etag);
    await g.publish("a deprecated model outside the allowed regions");
    const k = (await g.key(dev, p.id, { name: "caller" })).key;
    expect(refusal(await g.chat(p.id, k, "o3"))).toEqual({ status: 403, code: "model_unavailable_in_region" });
    g.t.clock.advance(3 * DAY);
    expect(refusal(await g.chat(p.id, k, "o3"))).toEqual({ status: 410, code: "model_sunset" });
    expect(g.t.backends.requests("o3.mock.localhost")).toHaveLength(0);
  });

  it("a model's sunset date of today or earlier is refused when it is set", async () => {
    const p = await g.project("model-sunset-today");
    const m = await g.model(p.id, "gpt-35");
    for (const date of [inDays(0), inDays(-1)]) {
      const err = (await g.admin.models.update(p.id, m.id, { status: "deprecated", sunsetDate: date }, (await g.admin.models.get(p.id, m.id)).etag).catch((e: unknown) => e)) as ApiError;
      expect([err.status, err.problem?.errors]).toEqual([400, [{ field: "body.sunsetDate", message: expect.stringMatching(/after today/) }]]);
    }
    expect((await g.admin.models.get(p.id, m.id)).status).toBe("active");
  });

  it("a deprecated MCP server and a toolbox of its tools are served with Sunset until its sunset, then refused 410 with a JSON-RPC error (tool_server_sunset, toolbox_sunset) with no republish; other servers are unaffected", async () => {
    const p = await g.project("mcp-sunset");
    const soon = await remoteServer(p.id, "soon");
    const later = await remoteServer(p.id, "later");
    const plain = await remoteServer(p.id, "plain");
    const soonDate = gatewayDays(2);
    const laterDate = gatewayDays(30);
    await g.admin.tools.updateServer(p.id, soon.id, { status: "deprecated", sunsetDate: soonDate }, (await g.admin.tools.getServer(p.id, soon.id)).etag);
    await g.admin.tools.updateServer(p.id, later.id, { status: "deprecated", sunsetDate: laterDate }, (await g.admin.tools.getServer(p.id, later.id)).etag);
    const soonBox = await g.admin.toolboxes.create(p.id, { name: "soon-box", tools: [{ server: "soon", tool: "get_weather" }] });
    const plainBox = await g.admin.toolboxes.create(p.id, { name: "plain-box", tools: [{ server: "plain", tool: "get_weather" }] });
    await g.publish("deprecated servers");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { tools: [soon.id, later.id, plain.id, soonBox.id, plainBox.id] } })).key;
    const server = (name: string) => g.names.mcpApiPath(p.id, name);
    const box = (name: string) => g.names.toolboxApiPath(p.id, name);

    for (const path of [server("soon"), box("soon-box")]) {
      const before = await mcpCall(path, k);
      expect([path, before.status, before.headers.get("sunset"), before.json.result?.content?.[0]?.text]).toEqual([path, 200, imf(soonDate), "Sunny in Oslo"]);
    }

    // Past the sunset instant (00:00 UTC of the date), by the gateway's clock alone.
    g.t.clock.advance(3 * DAY);
    const reached = mcpUpstream.received.length;
    const after = await mcpCall(server("soon"), k);
    expect([after.status, after.json]).toEqual([410, { jsonrpc: "2.0", id: after.id, error: { code: -32001, message: expect.stringMatching(/sunset/i), data: { reason: "tool_server_sunset" } } }]);
    // Every method, not only tools/call: the server is gone.
    const listed = await mcpCall(server("soon"), k, "tools/list");
    expect([listed.status, listed.json.error?.data?.reason]).toEqual([410, "tool_server_sunset"]);
    const stream = await fetch(`${g.t.gateway.url}/${server("soon")}/mcp`, { headers: { accept: "text/event-stream", "api-key": k, "mcp-protocol-version": "2025-06-18" } });
    expect([stream.status, await stream.json()]).toEqual([410, { jsonrpc: "2.0", id: null, error: expect.objectContaining({ data: { reason: "tool_server_sunset" } }) }]);
    const viaBox = await mcpCall(box("soon-box"), k);
    expect([viaBox.status, viaBox.json]).toEqual([410, { jsonrpc: "2.0", id: viaBox.id, error: { code: -32001, message: expect.stringMatching(/sunset/i), data: { reason: "toolbox_sunset" } } }]);
    expect(mcpUpstream.received.length).toBe(reached);

    const stillLater = await mcpCall(server("later"), k);
    expect([stillLater.status, stillLater.headers.get("sunset")]).toEqual([200, imf(laterDate)]);
    for (const path of [server("plain"), box("plain-box")]) {
      const still = await mcpCall(path, k);
      expect([path, still.status, still.headers.get("sunset"), still.json.result?.content?.[0]?.text]).toEqual([path, 200, null, "Sunny in Oslo"]);
    }
  });

  it("a deprecated converted server's REST API is refused from its sunset on too (410 tool_server_sunset), called directly or through its MCP server", async () => {
    const p = await g.project("rest-sunset");
    const s = await convertedServer(g.admin, p.id, "items", restBackend.url);
    const date = gatewayDays(2);
    await g.admin.tools.updateServer(p.id, s.id, { status: "deprecated", sunsetDate: date }, (await g.admin.tools.getServer(p.id, s.id)).etag);
    await g.publish("a deprecated converted server");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { tools: [s.id] } })).key;
    const direct = () => fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "items")}/items/a1`, { headers: { "api-key": k } });

    const before = await direct();
    expect([before.status, before.headers.get("sunset"), ((await before.json()) as { operationId?: string }).operationId]).toEqual([200, imf(date), "getItem"]);
    const viaMcp = await mcpCall(g.names.mcpApiPath(p.id, "items"), k, "tools/call", { name: "getItem", arguments: { id: "a1" } });
    expect([viaMcp.status, viaMcp.headers.get("sunset")]).toEqual([200, imf(date)]);

    g.t.clock.advance(3 * DAY);
    const reached = restBackend.received.length;
    const after = await direct();
    expect([after.status, await after.json()]).toEqual([410, { error: { code: "tool_server_sunset", message: expect.stringMatching(/sunset/i) } }]);
    const afterMcp = await mcpCall(g.names.mcpApiPath(p.id, "items"), k, "tools/call", { name: "getItem", arguments: { id: "a1" } });
    expect([afterMcp.status, afterMcp.json.error?.data?.reason]).toEqual([410, "tool_server_sunset"]);
    expect(restBackend.received.length).toBe(reached);
  });

  it("a deprecated MCP server records when it was deprecated, and its answers carry Deprecation (RFC 9745) beside Sunset — its MCP API, a toolbox of its tools, a converted server's REST API — as a model's and an agent's do", async () => {
    const p = await g.project("mcp-deprecation");
    const remote = await remoteServer(p.id, "remote");
    const items = await convertedServer(g.admin, p.id, "items", restBackend.url);
    const date = gatewayDays(30);
    const deprecation = `@${Date.parse(`${inDays(0)}T00:00:00Z`) / 1000}`;
    const deprecate = async (id: string) => g.admin.tools.updateServer(p.id, id, { status: "deprecated", sunsetDate: date }, (await g.admin.tools.getServer(p.id, id)).etag);
    const deprecated = await deprecate(remote.id);
    expect([deprecated.status, deprecated.sunsetDate, deprecated.deprecatedAt]).toEqual(["deprecated", date, inDays(0)]);
    expect((await deprecate(items.id)).deprecatedAt).toBe(inDays(0));
    // Blocked and deprecated again, it was still deprecated on that day; a new sunset date does not move it either.
    await g.admin.tools.updateServer(p.id, remote.id, { status: "blocked" }, (await g.admin.tools.getServer(p.id, remote.id)).etag);
    expect((await g.admin.tools.getServer(p.id, remote.id)).deprecatedAt).toBe(inDays(0));
    expect((await deprecate(remote.id)).deprecatedAt).toBe(inDays(0));
    expect((await g.admin.tools.updateServer(p.id, remote.id, { sunsetDate: gatewayDays(31) }, (await g.admin.tools.getServer(p.id, remote.id)).etag)).deprecatedAt).toBe(inDays(0));
    await g.admin.tools.updateServer(p.id, remote.id, { sunsetDate: date }, (await g.admin.tools.getServer(p.id, remote.id)).etag);
    // A server registered deprecated records the day too.
    const born = await g.admin.tools.createServer(p.id, { name: "born", source: { kind: "remote", url: mcpUpstream.url }, status: "deprecated", sunsetDate: date });
    expect(born.deprecatedAt).toBe(inDays(0));
    const box = await g.admin.toolboxes.create(p.id, { name: "remote-box", tools: [{ server: "remote", tool: "get_weather" }] });
    await g.publish("deprecated servers");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { tools: [remote.id, items.id, box.id] } })).key;
    const headers = (a: { status: number; headers: Headers }) => [a.status, a.headers.get("sunset"), a.headers.get("deprecation")];

    expect(headers(await mcpCall(g.names.mcpApiPath(p.id, "remote"), k))).toEqual([200, imf(date), deprecation]);
    expect(headers(await mcpCall(g.names.toolboxApiPath(p.id, "remote-box"), k))).toEqual([200, imf(date), deprecation]);
    expect(headers(await fetch(`${g.t.gateway.url}/${g.names.restApiPath(p.id, "items")}/items/a1`, { headers: { "api-key": k } }))).toEqual([200, imf(date), deprecation]);
    expect(headers(await mcpCall(g.names.mcpApiPath(p.id, "items"), k, "tools/call", { name: "getItem", arguments: { id: "a1" } }))).toEqual([200, imf(date), deprecation]);

    // Active again: no deprecation date kept, and after a publish neither header.
    const active = await g.admin.tools.updateServer(p.id, remote.id, { status: "active", sunsetDate: null }, (await g.admin.tools.getServer(p.id, remote.id)).etag);
    expect([active.status, active.deprecatedAt]).toEqual(["active", undefined]);
    await g.publish("active again");
    expect(headers(await mcpCall(g.names.mcpApiPath(p.id, "remote"), k))).toEqual([200, null, null]);
  });

  it("an MCP server's sunset date of today or earlier is refused when it is set (registering or deprecating it)", async () => {
    const p = await g.project("mcp-sunset-today");
    for (const date of [inDays(0), inDays(-1)]) {
      const err = (await g.admin.tools.createServer(p.id, { name: "born-deprecated", source: { kind: "remote", url: mcpUpstream.url }, status: "deprecated", sunsetDate: date }).catch((e: unknown) => e)) as ApiError;
      expect([err.status, err.problem?.errors]).toEqual([400, [{ field: "body.sunsetDate", message: expect.stringMatching(/after today/) }]]);
    }
    const s = await remoteServer(p.id, "today");
    for (const date of [inDays(0), inDays(-1)]) {
      const err = (await g.admin.tools.updateServer(p.id, s.id, { status: "deprecated", sunsetDate: date }, (await g.admin.tools.getServer(p.id, s.id)).etag).catch((e: unknown) => e)) as ApiError;
      expect([err.status, err.problem?.errors]).toEqual([400, [{ field: "body.sunsetDate", message: expect.stringMatching(/after today/) }]]);
    }
    expect((await g.admin.tools.getServer(p.id, s.id)).status).toBe("active");
    const deprecated = await g.admin.tools.updateServer(p.id, s.id, { status: "deprecated", sunsetDate: inDays(1) }, (await g.admin.tools.getServer(p.id, s.id)).etag);
    expect([deprecated.status, deprecated.sunsetDate]).toEqual(["deprecated", inDays(1)]);
  });
});

/** Registers the MCP upstream in a project and waits for its first discovery. */
const remoteServer = (projectId: string, name: string) => remoteServerOf(g.admin, projectId, name, mcpUpstream.url);

type McpAnswer = { jsonrpc?: string; id?: number; result?: { content?: { text: string }[] }; error?: { code?: number; message?: string; data?: { reason?: string } } };

/** One JSON-RPC request to an MCP API through the local gateway (get_weather by default). */
async function mcpCall(apiPath: string, key: string, method = "tools/call", params: unknown = { name: "get_weather", arguments: { city: "Oslo" } }) {
  const id = ++rpc;
  const res = await fetch(`${g.t.gateway.url}/${apiPath}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", id, method, params }),
  });
  const text = await res.text();
  const data = text.startsWith("event:") || text.startsWith("data:") ? text.split("\n").find((l) => l.startsWith("data:"))!.slice(5) : text;
  return { id, status: res.status, headers: res.headers, json: (data ? JSON.parse(data) : {}) as McpAnswer };
}
