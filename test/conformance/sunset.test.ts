/**
 * Conformance: a sunset is when a deprecated agent or model stops being served (RFC 8594: the resource
 * "is expected to become unresponsive at a specific point in time"). Before it, calls are answered with
 * the `Sunset` header; from it on, the gateway refuses them, 410 with the reason (`agent_sunset`,
 * `model_sunset`) — by its own clock, with no publish in between. Checked through the local gateway, whose
 * clock the test moves.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient, ApiError } from "../../src/client/index.js";
import { startA2aAgent, type A2aAgent } from "../fixtures/agents/a2a-server.js";
import { Governed, refusal } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;
let agentServer: A2aAgent;
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
});
afterAll(async () => {
  await agentServer.close();
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

  it("a model's sunset date of today or earlier is refused when it is set", async () => {
    const p = await g.project("model-sunset-today");
    const m = await g.model(p.id, "gpt-35");
    for (const date of [inDays(0), inDays(-1)]) {
      const err = (await g.admin.models.update(p.id, m.id, { status: "deprecated", sunsetDate: date }, (await g.admin.models.get(p.id, m.id)).etag).catch((e: unknown) => e)) as ApiError;
      expect([err.status, err.problem?.errors]).toEqual([400, [{ field: "body.sunsetDate", message: expect.stringMatching(/after today/) }]]);
    }
    expect((await g.admin.models.get(p.id, m.id)).status).toBe("active");
  });
});
