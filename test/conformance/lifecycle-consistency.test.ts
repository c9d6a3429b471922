/**
 * Conformance: models, MCP servers and agents keep one lifecycle rule for the dates they carry.
 * - `deprecatedAt` (the `Deprecation` header, RFC 9745) is the day the resource *became* deprecated: set
 *   on the transition into `deprecated`, kept while it stays deprecated or is blocked, dropped when it is
 *   active again. A resource deprecated before the date was recorded gets none from a later write (that
 *   write's day is not the day it was deprecated): its answers carry `Sunset` and no `Deprecation`.
 * - Blocked and moved back to `deprecated`, a resource returns to what it had: its stored sunset date
 *   holds even when it has passed meanwhile (it is then past its sunset, 410, ADR 027); a date being
 *   *set* must still be after today.
 * Checked through the API and requests through the local gateway, the app's clock and the gateway's moved
 * together.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { AigovClient, ApiError } from "../../src/client/index.js";
import { startA2aAgent, type A2aAgent } from "../fixtures/agents/a2a-server.js";
import { startGovernanceServer, type GovernanceServer } from "../fixtures/mcp/governance.js";
import { Governed, refusal } from "../support/governed.js";
import { remoteServer as remoteServerOf } from "../support/tools.js";

let g: Governed;
let dev: AigovClient;
let agentServer: A2aAgent;
let mcpUpstream: GovernanceServer;
const DAY = 24 * 60 * 60 * 1000;

beforeAll(async () => {
  g = await Governed.start("t-lifecycle-consistency");
  // Dates are judged by the services' clock: the app's, which the test moves (with the gateway's).
  overrideServices({ clock: g.t.appClock });
  dev = await g.as("dora", ["Developer"]);
  agentServer = await startA2aAgent();
  mcpUpstream = await startGovernanceServer();
});
afterAll(async () => {
  overrideServices({});
  await agentServer.close();
  await mcpUpstream.close();
  await g.stop();
});

/** The UTC date `days` from now by the app's clock. */
const appDays = (days: number) => new Date(g.t.appClock.ms() + days * DAY).toISOString().slice(0, 10);
const imf = (isoDate: string) => new Date(`${isoDate}T00:00:00Z`).toUTCString();
const deprecation = (isoDate: string) => `@${Date.parse(`${isoDate}T00:00:00Z`) / 1000}`;
const refusedWith = (p: Promise<unknown>) => p.then(() => undefined, (e: ApiError) => [e.status, e.problem?.errors ?? e.problem?.reason]);

/** Rewrites the stored document of a project's resource (a record written by an older version). */
async function tamper(projectId: string, id: string, change: (doc: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  const item = g.t.container().item(id, [g.tenant, projectId]);
  const { resource } = await item.read<Record<string, unknown>>();
  await item.replace(change(resource!));
}

/** Registers the MCP upstream in a project and waits for its first discovery. */
const remoteServer = (projectId: string, name: string) => remoteServerOf(g.admin, projectId, name, mcpUpstream.url);

let rpc = 0;
async function mcpCall(apiPath: string, key: string) {
  const id = ++rpc;
  const res = await fetch(`${g.t.gateway.url}/${apiPath}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "api-key": key, "mcp-protocol-version": "2025-06-18" },
    body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "get_weather", arguments: { city: "Oslo" } } }),
  });
  const text = await res.text();
  const data = text.startsWith("event:") || text.startsWith("data:") ? text.split("\n").find((l) => l.startsWith("data:"))!.slice(5) : text;
  return { status: res.status, headers: res.headers, json: (data ? JSON.parse(data) : {}) as { error?: { data?: { reason?: string } } } };
}

async function agentCall(projectId: string, agentId: string, key: string) {
  const res = await fetch(`${g.t.gateway.url}/${g.names.agentApiPath(projectId, agentId)}/a2a`, {
    method: "POST",
    headers: { "content-type": "application/json", "api-key": key, "x-aigov-data-class": "internal" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpc, method: "message/send", params: { message: { role: "user", messageId: `u${rpc}`, parts: [{ kind: "text", text: "x" }] } } }),
  });
  const body = await res.text();
  return { status: res.status, headers: res.headers, json: (body ? JSON.parse(body) : {}) as { error?: { code?: string } } };
}

describe("conformance: one lifecycle rule for models, MCP servers and agents", () => {
  it("a model's deprecatedAt is set when it becomes deprecated: one deprecated before the date was recorded gets none from a later write (no Deprecation header); a block keeps it", async () => {
    const p = await g.project("model-deprecated-at");
    const legacy = await g.model(p.id, "legacy");
    const kept = await g.model(p.id, "kept");
    const date = appDays(30);
    for (const m of [legacy, kept]) await g.admin.models.update(p.id, m.id, { status: "deprecated", sunsetDate: date }, (await g.admin.models.get(p.id, m.id)).etag);
    // "legacy" was deprecated before the date was recorded; "kept" was deprecated on an earlier day.
    await tamper(p.id, legacy.id, ({ deprecatedAt: _drop, ...doc }) => doc);
    const earlier = appDays(-100);
    await tamper(p.id, kept.id, (doc) => ({ ...doc, deprecatedAt: earlier }));

    // A later write while it stays deprecated (a new sunset date) does not make today the day it was deprecated.
    const later = appDays(40);
    const written = await g.admin.models.update(p.id, legacy.id, { sunsetDate: later }, (await g.admin.models.get(p.id, legacy.id)).etag);
    expect([written.status, written.sunsetDate, written.deprecatedAt]).toEqual(["deprecated", later, undefined]);
    expect((await g.admin.models.get(p.id, legacy.id)).deprecatedAt).toBeUndefined();

    // Blocked, the model keeps the day it was deprecated; deprecated again, it answers with it.
    const blocked = await g.admin.models.update(p.id, kept.id, { status: "blocked" }, (await g.admin.models.get(p.id, kept.id)).etag);
    expect([blocked.status, blocked.deprecatedAt]).toEqual(["blocked", earlier]);
    const back = await g.admin.models.update(p.id, kept.id, { status: "deprecated" }, blocked.etag);
    expect([back.status, back.sunsetDate, back.deprecatedAt]).toEqual(["deprecated", date, earlier]);

    await g.publish("deprecated models");
    const k = (await g.key(dev, p.id, { name: "caller" })).key;
    const headers = (a: { status: number; headers: Headers }) => [a.status, a.headers.get("sunset"), a.headers.get("deprecation")];
    expect(headers(await g.chat(p.id, k, "legacy"))).toEqual([200, imf(later), null]);
    expect(headers(await g.chat(p.id, k, "kept"))).toEqual([200, imf(date), deprecation(earlier)]);

    // Active again: no date kept; deprecated anew, today is the day.
    const active = await g.admin.models.update(p.id, kept.id, { status: "active", sunsetDate: null }, back.etag);
    expect([active.status, active.deprecatedAt]).toEqual(["active", undefined]);
    const anew = await g.admin.models.update(p.id, kept.id, { status: "deprecated", sunsetDate: date }, active.etag);
    expect(anew.deprecatedAt).toBe(appDays(0));
  });

  it("blocked and moved back to deprecated after its sunset has passed, a model, an MCP server and an agent alike keep their sunset date and are refused 410 as past it; a new date must still be after today", async () => {
    const p = await g.project("unblock-past-sunset");
    const m = await g.model(p.id, "gone");
    const s = await remoteServer(p.id, "gone-srv");
    const created = await g.admin.agents.create(p.id, { name: "gone-agent", card: { url: agentServer.url }, guardrails: { dataClasses: ["public", "internal"] } });
    const a = await g.admin.agents.transition(p.id, created.id, { to: "active" });
    const sunset = appDays(2);
    await g.admin.models.update(p.id, m.id, { status: "deprecated", sunsetDate: sunset }, (await g.admin.models.get(p.id, m.id)).etag);
    await g.admin.tools.updateServer(p.id, s.id, { status: "deprecated", sunsetDate: sunset }, (await g.admin.tools.getServer(p.id, s.id)).etag);
    await g.admin.agents.transition(p.id, a.id, { to: "deprecated", sunsetDate: sunset });
    await g.admin.models.update(p.id, m.id, { status: "blocked" }, (await g.admin.models.get(p.id, m.id)).etag);
    await g.admin.tools.updateServer(p.id, s.id, { status: "blocked" }, (await g.admin.tools.getServer(p.id, s.id)).etag);
    await g.admin.agents.transition(p.id, a.id, { to: "blocked" });
    // A model blocked from active, never deprecated: its first sunset date is being set.
    const never = await g.model(p.id, "never");
    await g.admin.models.update(p.id, never.id, { status: "blocked" }, (await g.admin.models.get(p.id, never.id)).etag);

    // The sunset passes while they are blocked.
    g.t.appClock.advance(3 * DAY);
    g.t.clock.advance(3 * DAY);

    // Back to deprecated: the stored sunset date holds, past as it is.
    const model = await g.admin.models.update(p.id, m.id, { status: "deprecated" }, (await g.admin.models.get(p.id, m.id)).etag);
    expect([model.status, model.sunsetDate]).toEqual(["deprecated", sunset]);
    const server = await g.admin.tools.updateServer(p.id, s.id, { status: "deprecated" }, (await g.admin.tools.getServer(p.id, s.id)).etag);
    expect([server.status, server.sunsetDate]).toEqual(["deprecated", sunset]);
    const agent = await g.admin.agents.transition(p.id, a.id, { to: "deprecated" });
    expect([agent.lifecycle.state, agent.lifecycle.sunsetDate]).toEqual(["deprecated", sunset]);

    // A date being set is still judged: today or earlier is refused, for each.
    const afterToday = [400, [{ field: "body.sunsetDate", message: expect.stringMatching(/after today/) }]];
    expect(await refusedWith(g.admin.models.update(p.id, m.id, { sunsetDate: appDays(-2) }, model.etag))).toEqual(afterToday);
    expect(await refusedWith(g.admin.tools.updateServer(p.id, s.id, { sunsetDate: appDays(0) }, server.etag))).toEqual(afterToday);
    expect(await refusedWith(g.admin.models.update(p.id, never.id, { status: "deprecated", sunsetDate: appDays(-1) }, (await g.admin.models.get(p.id, never.id)).etag))).toEqual(afterToday);

    // At the gateway each is past its sunset: 410 with its reason.
    await g.publish("past their sunset");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { tools: [s.id], agents: [a.id] } })).key;
    expect(refusal(await g.chat(p.id, k, "gone"))).toEqual({ status: 410, code: "model_sunset" });
    const viaMcp = await mcpCall(g.names.mcpApiPath(p.id, "gone-srv"), k);
    expect([viaMcp.status, viaMcp.json.error?.data?.reason]).toEqual([410, "tool_server_sunset"]);
    expect(refusal(await agentCall(p.id, a.id, k))).toEqual({ status: 410, code: "agent_sunset" });
  });
});
