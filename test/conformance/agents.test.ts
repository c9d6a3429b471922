/**
 * Conformance: what the agents pillar promises at the gateway — a served agent is reachable only with a
 * key that grants it, only for the data classes its guardrails allow, within its calls per minute, never
 * with the virtual key forwarded, with Sunset once deprecated, and not at all when disabled, blocked or
 * with the pillar off — and that an agent's own key follows its guardrails. Every promise is checked by
 * requests through the local gateway to an A2A agent (and the fake model backends) on loopback.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient, ApiError } from "../../src/client/index.js";
import { startA2aAgent, type A2aAgent } from "../fixtures/agents/a2a-server.js";
import { generateKeyPair } from "jose";
import { signAgentCard } from "../../src/pillars/agents/card/index.js";
import { errorOf } from "../support/errors.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";
import { newId } from "../../src/domain/common.js";
import { MAX_PROJECT_AGENTS as MAX_AGENTS } from "../../src/policy/input.js";

let g: Governed;
let dev: AigovClient;
let agentServer: A2aAgent;

beforeAll(async () => {
  g = await Governed.start("t-agents");
  dev = await g.as("dora", ["Developer"]);
  // Content safety guardrails call the tenant's Azure AI Content Safety (a fake backend).
  const s = await g.admin.settings.get();
  await g.admin.settings.put({ settings: {}, services: { contentSafety: { url: "https://safety.cognitiveservices.azure.com" } } }, s.etag);
  agentServer = await startA2aAgent();
});
afterAll(async () => {
  await agentServer.close();
  await g.stop();
});

let rpc = 0;
async function send(projectId: string, agentId: string, key: string, text: string, headers: Record<string, string> = { "x-aigov-data-class": "internal" }) {
  // The agent's endpoint at the gateway: the API, then the endpoint's last path segment (/a2a).
  const res = await fetch(`${g.t.gateway.url}/${g.names.agentApiPath(projectId, agentId)}/a2a`, {
    method: "POST",
    headers: { "content-type": "application/json", "api-key": key, ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpc, method: "message/send", params: { message: { role: "user", messageId: `u${rpc}`, parts: [{ kind: "text", text }] } } }),
  });
  const body = await res.text();
  return { status: res.status, headers: res.headers, json: (body ? JSON.parse(body) : {}) as { result?: { parts: { text: string }[] }; error?: { code?: string } } };
}

/** A request sent with its path exactly as written (fetch would normalise it). */
function raw(path: string, key: string): Promise<{ status: number; body: string }> {
  const u = new URL(g.t.gateway.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: "POST", headers: { "api-key": key, "x-aigov-data-class": "internal", "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "message/send", params: { message: { role: "user", messageId: "x", parts: [{ kind: "text", text: "t" }] } } }));
  });
}

async function activeAgent(projectId: string, guardrails: Record<string, unknown> = {}) {
  const agent = await g.admin.agents.create(projectId, { name: "travel", card: { url: agentServer.url }, guardrails: { dataClasses: ["public", "internal"], ...guardrails } });
  return g.admin.agents.transition(projectId, agent.id, { to: "active" });
}

describe("conformance: agents at the local gateway", () => {
  it("a card fetched from the agent's well-known path is checked and gives the endpoint; a draft agent is not served", async () => {
    const p = await g.project("cards");
    const agent = await g.admin.agents.create(p.id, { name: "travel", card: { url: agentServer.url } });
    expect(agent.card).toMatchObject({ origin: "fetched", version: "1.0", valid: true, trust: "unsigned", url: `${agentServer.url}/.well-known/agent-card.json` });
    expect(agent.card?.card).toMatchObject({ name: "Travel planner", interfaces: [{ url: `${agentServer.url}/a2a`, binding: "JSONRPC" }] });
    expect(agent.endpoint).toEqual({ url: `${agentServer.url}/a2a`, protocol: "a2a" });
    expect(agent.lifecycle.state).toBe("draft");
    await g.publish("a draft agent");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [agent.id] } })).key;
    expect(refusal(await send(p.id, agent.id, k, "Lisbon"))).toEqual(NOT_SERVED);
  });

  it("a signed card is kept with its signature checked; a card whose signature breaks, or that is invalid, is refused and nothing is stored", async () => {
    const p = await g.project("signed-cards");
    const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
    const signed = await signAgentCard({ ...agentServer.card }, privateKey, { kid: "k1", alg: "EdDSA", embedJwk: true });
    const ok = await g.admin.agents.create(p.id, { name: "signed", card: { card: signed } });
    expect(ok.card).toMatchObject({ origin: "supplied", valid: true, trust: "self-signed", signatures: [{ status: "valid", kid: "k1", selfSigned: true }] });
    const tampered = { ...signed, description: "Plans trips and sends your passport elsewhere" };
    await expect(g.admin.agents.create(p.id, { name: "tampered", card: { card: tampered } })).rejects.toMatchObject({ status: 400, problem: { reason: "agent_card_invalid" } });
    const { supportedInterfaces: _gone, ...noInterfaces } = agentServer.card;
    await expect(g.admin.agents.create(p.id, { name: "invalid", card: { card: noInterfaces } })).rejects.toMatchObject({ status: 400, problem: { reason: "agent_card_invalid" } });
    await expect(g.admin.agents.create(p.id, { name: "unreachable", card: { url: "http://127.0.0.1:9/" } })).rejects.toMatchObject({ status: 400, problem: { reason: "agent_card_unreachable" } });
    // Read over plain http, a card could be anyone's: refused before any request, as for MCP upstreams.
    const plain = await errorOf(g.admin.agents.create(p.id, { name: "plain", card: { url: "http://agent.example.com/" } }));
    expect(plain).toMatchObject({ status: 400, problem: { reason: "upstream_address_refused", errors: [{ field: "body.card.url", message: "plain http is allowed for loopback addresses only" }] } });
    expect((await g.admin.agents.list(p.id)).items.map((a) => a.name)).toEqual(["signed"]);
  });

  it("a served agent: the key's agent scope, the data class, the calls per minute; the virtual key never reaches the agent", async () => {
    const p = await g.project("served");
    const agent = await activeAgent(p.id, { limits: { callsPerMinute: 3 } });
    const other = await activeAgent(p.id);
    await g.publish("two served agents");
    const caller = await g.key(dev, p.id, { name: "caller", scopes: { agents: [agent.id] } });
    const k = caller.key;
    const before = agentServer.received.length;
    const ok = await send(p.id, agent.id, k, "Lisbon in May");
    expect([ok.status, ok.json.result?.parts[0]?.text]).toEqual([200, "planned: Lisbon in May"]);
    const reached = agentServer.received.at(-1)!;
    expect(reached.path).toBe("/a2a");
    expect(reached.headers["api-key"]).toBeUndefined();
    expect(JSON.stringify(reached.headers)).not.toContain(k);
    // The data class must be declared, and be one the agent's guardrails allow.
    expect((await send(p.id, agent.id, k, "no class", {})).status).toBe(403);
    expect((await send(p.id, agent.id, k, "secret plans", { "x-aigov-data-class": "restricted" })).status).toBe(403);
    // An allowed class declared next to another is not the allowed class.
    expect((await send(p.id, agent.id, k, "secret plans", { "x-aigov-data-class": "restricted, internal" })).status).toBe(403);
    expect(agentServer.received.length).toBe(before + 1);
    // Calls per minute, per key.
    const statuses = [(await send(p.id, agent.id, k, "2")).status, (await send(p.id, agent.id, k, "3")).status, (await send(p.id, agent.id, k, "4")).status];
    expect(statuses).toEqual([200, 200, 429]);
    g.t.clock.advance(61_000);
    expect((await send(p.id, agent.id, k, "again")).status).toBe(200);
    // Another agent of the project is not in this key's scope: its API is not linked to the key's product.
    const refused = await send(p.id, other.id, k, "Oslo");
    expect(refused.status).toBe(401);
    // A key for models only reaches no agent.
    const modelsOnly = (await g.key(dev, p.id, { name: "models" })).key;
    expect((await send(p.id, agent.id, modelsOnly, "Oslo")).status).toBe(401);
    // Its last use, from the gateway's own logs once ingested, on the agent and in the list.
    expect((await g.admin.agents.get(p.id, agent.id)).lastUsedAt).toBeUndefined();
    await g.t.gateway.flushLogs();
    await g.t.app.host.invokeTimer("usageIngest");
    expect((await g.admin.agents.get(p.id, agent.id)).lastUsedAt).toMatch(/^\d{4}-/);
    expect((await g.admin.agents.list(p.id)).items.find((a) => a.id === agent.id)?.lastUsedAt).toMatch(/^\d{4}-/);
    // Metered per agent: what reached it, what the data class and the limit refused (the gateway's own logs).
    // The gateway's clock is 61 s ahead by now (the rate limit's window): the range ends after it.
    const usage = await g.admin.usage.project(p.id, { kind: "agent", groupBy: "resource,key", from: new Date(g.t.clock.now() - 3_600_000).toISOString(), to: new Date(g.t.clock.now() + 120_000).toISOString() });
    const row = (agentId: string, keyId: string | undefined) => usage.groups.find((x) => x.resource === agentId && x.keyId === keyId)?.summary;
    expect(row(agent.id, caller.id)).toMatchObject({ requests: 8, succeeded: 4, errors: { scope: 3, limit: 1 } });
  });

  it("an endpoint the gateway may not forward to is refused when a person names it; from a card it is simply not served, and the publish goes on", async () => {
    const p = await g.project("endpoints");
    for (const url of ["https://10.0.0.4/a2a", "http://169.254.169.254/latest/meta-data", "https://agent.example.com/a2a%2fv1", "https://agent.example.com/a/../v1", "https://agent.example.com/a2a?x=1"]) {
      const err = await g.admin.agents.create(p.id, { name: "bad endpoint", endpoint: { url }, guardrails: { dataClasses: ["internal"] } }).then(() => undefined, (e: unknown) => e as ApiError);
      expect([err?.status, err?.problem?.errors?.[0]?.field], url).toEqual([400, "body.endpoint.url"]);
    }
    // A card whose only interface reads two ways: recorded, but the agent has nothing the gateway may serve.
    const own = agentServer.card as { supportedInterfaces: Record<string, unknown>[] };
    const odd = { ...agentServer.card, supportedInterfaces: [{ ...own.supportedInterfaces[0], url: "https://agent.example.com/a2a%2fv1" }] };
    const created = await g.admin.agents.create(p.id, { name: "odd card", card: { card: odd }, guardrails: { dataClasses: ["internal"] } });
    await g.admin.agents.transition(p.id, created.id, { to: "active" });
    const fine = await activeAgent(p.id);
    const result = await g.admin.policy.publish({ reason: "an agent that cannot be served next to one that can" });
    expect(result.isolated ?? []).toEqual([]);
    await g.publish("settled");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [created.id, fine.id] } })).key;
    expect(refusal(await send(p.id, created.id, k, "Lisbon"))).toEqual(NOT_SERVED);
    expect((await send(p.id, fine.id, k, "Lisbon")).status).toBe(200);
  });

  it("the gateway serves the registry's card at the API, rewritten to its own URLs: unsigned, with the key's scheme instead of the Authorization one it removes, interfaces elsewhere dropped", async () => {
    const p = await g.project("served-cards");
    const { privateKey } = await generateKeyPair("EdDSA", { extractable: true });
    const own = agentServer.card as { supportedInterfaces: Record<string, unknown>[] };
    const published = {
      ...agentServer.card,
      supportedInterfaces: [...own.supportedInterfaces, { url: "https://elsewhere.example.com/a2a", protocolBinding: "HTTP+JSON", protocolVersion: "1.0" }],
      securitySchemes: { bearer: { httpAuthSecurityScheme: { scheme: "Bearer" } } },
      securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    };
    const signed = await signAgentCard(published, privateKey, { kid: "k1", alg: "EdDSA", embedJwk: true });
    const created = await g.admin.agents.create(p.id, { name: "carded", card: { card: signed }, guardrails: { dataClasses: ["internal"] } });
    expect(created.card).toMatchObject({ valid: true, trust: "self-signed", document: { signatures: [expect.any(Object)] } });
    const agent = await g.admin.agents.transition(p.id, created.id, { to: "active" });
    const bare = await g.admin.agents.create(p.id, { name: "no card", endpoint: { url: `${agentServer.url}/a2a` }, guardrails: { dataClasses: ["internal"] } });
    await g.admin.agents.transition(p.id, bare.id, { to: "active" });
    await g.publish("an agent with a card, one without");
    const k = (await g.key(dev, p.id, { name: "card reader", scopes: { agents: [agent.id, bare.id] } })).key;
    const api = `${g.t.gateway.url}/${g.names.agentApiPath(p.id, agent.id)}`;
    const before = agentServer.received.length;

    // No data class needed: fetching the card sends the agent nothing (the agent is not asked at all).
    const res = await fetch(`${api}/.well-known/agent-card.json`, { headers: { "api-key": k } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    const card = (await res.json()) as Record<string, unknown> & { supportedInterfaces: { url: string }[]; securitySchemes: Record<string, unknown>; securityRequirements: unknown[] };
    expect(agentServer.received.length).toBe(before);
    expect(card.signatures).toBeUndefined();
    expect(card.supportedInterfaces).toEqual([{ url: `${api}/a2a`, protocolBinding: "JSONRPC", protocolVersion: "1.0" }]);
    // The agent's bearer scheme rides on Authorization, which the gateway removes: the card asks for the key instead.
    expect(card.securitySchemes).toEqual({ aigovGatewayKey: { apiKeySecurityScheme: { location: "header", name: "api-key", description: expect.any(String) } } });
    expect(card.securityRequirements).toEqual([{ schemes: { aigovGatewayKey: { list: [] } } }]);
    const original = published as Record<string, unknown>;
    expect({ name: card.name, skills: card.skills, provider: card.provider }).toEqual({ name: original.name, skills: original.skills, provider: original.provider });

    // No other well-known path is the agent's: the v0.2 card path, the card path in capitals or with a
    // trailing slash, an encoded dot — none reaches the agent's own card (its URLs would send clients past the gateway).
    // (In capitals it is the card operation still — templates match ignoring case — so the gateway's card.)
    // (Percent-encoded letters and '-' are read as themselves, as .NET's Uri does: the card operation too.)
    for (const path of ["/.WELL-KNOWN/AGENT-CARD.JSON", "/.well%2Dknown/agent-card.json"]) {
      const same = await fetch(`${api}${path}`, { headers: { "api-key": k } });
      expect(((await same.json()) as typeof card).supportedInterfaces).toEqual(card.supportedInterfaces);
    }
    for (const path of ["/.well-known/agent.json", "/.WELL-KNOWN/agent.json", "/.well-known/agent-card.json/", "/%2Ewell-known/agent-card.json", "/.well-%6Bnown/agent.json", "/.%77ell-known/agent.json", "/a2a/../.well-known/agent.json", "/.well-known/oauth-protected-resource"]) {
      const variant = await fetch(`${api}${path}`, { headers: { "api-key": k, "x-aigov-data-class": "internal" } });
      const text = await variant.text();
      expect([path, variant.status, text]).toEqual([path, 404, expect.stringContaining("well_known_not_served")]);
    }
    expect(agentServer.received.length).toBe(before);

    // The card's URL is the agent at the gateway: a call there reaches the agent, under the guardrails.
    const call = (url: string, headers: Record<string, string>) =>
      fetch(url, { method: "POST", headers: { "content-type": "application/json", "api-key": k, ...headers }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "message/send", params: { message: { role: "user", messageId: "c1", parts: [{ kind: "text", text: "Porto" }] } } }) });
    const answered = await call(card.supportedInterfaces[0]!.url, { "x-aigov-data-class": "internal", authorization: "Bearer for-the-agent" });
    expect([answered.status, ((await answered.json()) as { result: { parts: { text: string }[] } }).result.parts[0]!.text]).toEqual([200, "planned: Porto"]);
    // Which is why the card does not ask for the agent's bearer token: it would not get there.
    expect(agentServer.received.at(-1)!.headers.authorization).toBeUndefined();
    expect((await call(card.supportedInterfaces[0]!.url, {})).status).toBe(403);

    // Only with a key that reaches the agent; an agent without a recorded card: 404 with the reason.
    expect((await fetch(`${api}/.well-known/agent-card.json`)).status).toBe(401);
    const modelsOnly = (await g.key(dev, p.id, { name: "models only" })).key;
    expect((await fetch(`${api}/.well-known/agent-card.json`, { headers: { "api-key": modelsOnly } })).status).toBe(401);
    const none = await fetch(`${g.t.gateway.url}/${g.names.agentApiPath(p.id, bare.id)}/.well-known/agent-card.json`, { headers: { "api-key": k } });
    expect([none.status, ((await none.json()) as { error: { code: string } }).error.code]).toEqual([404, "agent_card_not_recorded"]);
  });

  it("deprecated agents answer with Sunset; disabled, blocked and retired ones are gone from the gateway, and so is everything with the pillar off", async () => {
    const p = await g.project("lifecycle");
    const agent = await activeAgent(p.id);
    await g.publish("served");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [agent.id] } })).key;
    expect((await send(p.id, agent.id, k, "x")).status).toBe(200);

    await g.admin.agents.transition(p.id, agent.id, { to: "deprecated", sunsetDate: "2099-01-31" });
    await g.publish("deprecated");
    const sunset = await send(p.id, agent.id, k, "x");
    expect([sunset.status, sunset.headers.get("sunset")]).toEqual([200, "Sat, 31 Jan 2099 00:00:00 GMT"]);

    await g.admin.agents.update(p.id, agent.id, { enabled: false }, (await g.admin.agents.get(p.id, agent.id)).etag);
    await g.publish("disabled");
    expect(refusal(await send(p.id, agent.id, k, "x"))).toEqual(NOT_SERVED);
    await g.admin.agents.update(p.id, agent.id, { enabled: true }, (await g.admin.agents.get(p.id, agent.id)).etag);
    await g.publish("enabled");
    expect((await send(p.id, agent.id, k, "x")).status).toBe(200);

    const blocked = await g.admin.agents.transition(p.id, agent.id, { to: "blocked", reason: "prompt injection found" });
    expect(blocked.lifecycle).toMatchObject({ state: "blocked", blockedFrom: "deprecated" });
    await g.publish("blocked");
    expect(refusal(await send(p.id, agent.id, k, "x"))).toEqual(NOT_SERVED);
    const back = await g.admin.agents.transition(p.id, agent.id, { to: "deprecated" });
    expect(back.lifecycle).toMatchObject({ state: "deprecated", sunsetDate: "2099-01-31" });
    await g.publish("unblocked");
    expect((await send(p.id, agent.id, k, "x")).status).toBe(200);

    const cur = await g.admin.projects.get(p.id);
    await g.admin.projects.update(p.id, { pillars: { agents: false } }, cur.etag);
    await g.publish("agents off");
    expect(refusal(await send(p.id, agent.id, k, "x"))).toEqual(NOT_SERVED);
    expect((await g.admin.agents.get(p.id, agent.id)).lifecycle.state).toBe("deprecated");
  });

  it("an agent's own key reaches the models and limits of its guardrails, and follows when they change", async () => {
    const p = await g.project("agent-key");
    const planner = await g.model(p.id, "planner-model");
    const writer = await g.model(p.id, "writer-model");
    const agent = await g.admin.agents.create(p.id, { name: "with a key", guardrails: { models: [planner.id] } });
    await g.publish("models");
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    expect(issued.scopes.models).toEqual([planner.id]);
    expect((await g.admin.agents.get(p.id, agent.id)).key?.keyId).toBe(issued.id);
    await g.synced(p.id, issued.id);
    const chat = (model: string) => g.call(p.id, "/v1/chat/completions", { key: issued.key, body: { model, messages: [{ role: "user", content: "hi" }] } });
    expect((await chat("planner-model")).status).toBe(200);
    expect((await chat("writer-model")).status).toBe(403);

    await g.admin.agents.update(p.id, agent.id, { guardrails: { models: [writer.id], limits: { requestsPerMinute: 100 } } }, (await g.admin.agents.get(p.id, agent.id)).etag);
    const rescoped = await g.admin.keys.get(p.id, issued.id);
    expect([rescoped.scopes.models, rescoped.limits]).toEqual([[writer.id], { requestsPerMinute: 100 }]);
    await g.synced(p.id, issued.id);
    expect((await chat("writer-model")).status).toBe(200);
    expect((await chat("planner-model")).status).toBe(403);

    // An agent without models in its guardrails gets no key (it would reach no model).
    const bare = await g.admin.agents.create(p.id, { name: "no models" });
    await expect(g.admin.agents.issueKey(p.id, bare.id, {})).rejects.toMatchObject({ status: 400, problem: { reason: "agent_guardrails_need_models" } });
    // Retiring the agent revokes its key.
    await g.admin.agents.transition(p.id, agent.id, { to: "retired" });
    expect(["revoked", "revocationPending"]).toContain((await g.admin.keys.get(p.id, issued.id)).status);
  });

  it("a guardrails PATCH is a merge patch: one limit keeps the models, data classes and level (and the key its scope); null removes a limit; an agent with a key keeps a model", async () => {
    const p = await g.project("guardrails-merge");
    const planner = await g.model(p.id, "merge-planner");
    await g.model(p.id, "merge-writer");
    const agent = await activeAgent(p.id, { models: [planner.id], dataClasses: ["internal"], contentSafety: "high", limits: { requestsPerMinute: 100 } });
    await g.publish("an agent with guardrails");
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    await g.synced(p.id, issued.id);
    const caller = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [agent.id] } })).key;
    const chat = (model: string) => g.call(p.id, "/v1/chat/completions", { key: issued.key, body: { model, messages: [{ role: "user", content: "hi" }] } }).then((r) => r.status);

    // Only a per-caller limit: everything else stays as it was.
    const etag = (await g.admin.agents.get(p.id, agent.id)).etag;
    const patched = await g.admin.agents.update(p.id, agent.id, { guardrails: { limits: { callsPerMinute: 2 } } }, etag);
    const kept = { models: [planner.id], tools: [], limits: { requestsPerMinute: 100, callsPerMinute: 2 }, contentSafety: "high", dataClasses: ["internal"] };
    expect(patched.guardrails).toEqual(kept);
    expect((await g.admin.agents.get(p.id, agent.id)).guardrails).toEqual(kept);
    const key = await g.admin.keys.get(p.id, issued.id);
    expect([key.scopes.models, key.limits]).toEqual([[planner.id], { requestsPerMinute: 100, contentSafety: "high" }]);
    await g.publish("calls per minute");
    await g.synced(p.id, issued.id);
    // The agent's key still reaches its model and no other (a key with no model scope would reach both).
    expect([await chat("merge-planner"), await chat("merge-writer")]).toEqual([200, 403]);
    // At the agent's API: the data classes kept (public is not one of them), and the new limit.
    expect((await send(p.id, agent.id, caller, "public?", { "x-aigov-data-class": "public" })).status).toBe(403);
    const statuses = [(await send(p.id, agent.id, caller, "1")).status, (await send(p.id, agent.id, caller, "2")).status, (await send(p.id, agent.id, caller, "3")).status];
    expect(statuses).toEqual([200, 200, 429]);

    // null removes one limit, and only that one.
    const removeLimit: Record<string, unknown> = { guardrails: { limits: { callsPerMinute: null } } };
    const cleared = await g.admin.agents.update(p.id, agent.id, removeLimit as never, (await g.admin.agents.get(p.id, agent.id)).etag);
    expect(cleared.guardrails).toEqual({ ...kept, limits: { requestsPerMinute: 100 } });

    // Emptying the models of an agent with a key is refused, and nothing changes (agent, key, gateway).
    const before = await g.admin.agents.get(p.id, agent.id);
    await g.t.relay();
    const updates = () => g.t.events().filter((e) => e.type === "aigov.agent.updated.v1" && e.subject.endsWith(`/agents/${agent.id}`)).length;
    const updatedBefore = updates();
    expect(updatedBefore).toBe(2);
    const err = await g.admin.agents.update(p.id, agent.id, { guardrails: { models: [] } }, before.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect([err?.status, err?.problem?.reason, err?.problem?.errors?.[0]?.field]).toEqual([400, "agent_guardrails_need_models", "body.guardrails.models"]);
    const after = await g.admin.agents.get(p.id, agent.id);
    expect([after.etag, after.guardrails.models]).toEqual([before.etag, [planner.id]]);
    expect((await g.admin.keys.get(p.id, issued.id)).scopes.models).toEqual([planner.id]);
    await g.t.relay();
    expect(updates()).toBe(updatedBefore);
    await g.synced(p.id, issued.id);
    expect([await chat("merge-planner"), await chat("merge-writer")]).toEqual([200, 403]);
    // An agent without a key may have no models.
    const keyless = await g.admin.agents.create(p.id, { name: "keyless", guardrails: { models: [planner.id] } });
    expect((await g.admin.agents.update(p.id, keyless.id, { guardrails: { models: [] } }, keyless.etag)).guardrails.models).toEqual([]);
  });

  it("two concurrent key issues give the agent one key: the other request is refused (agent_has_key) and the key it made is revoked; the agent's key goes with its retirement", async () => {
    const p = await g.project("agent-key-race");
    const m = await g.model(p.id, "race-model");
    const agent = await g.admin.agents.create(p.id, { name: "raced", guardrails: { models: [m.id] } });
    await g.publish("models");
    const results = await Promise.allSettled([g.admin.agents.issueKey(p.id, agent.id, {}), g.admin.agents.issueKey(p.id, agent.id, {})]);
    const won = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason as ApiError] : []));
    expect(won).toHaveLength(1);
    expect(lost.map((e) => [e.status, e.problem?.reason])).toEqual([[409, "agent_has_key"]]);
    const winner = won[0]!;
    expect((await g.admin.agents.get(p.id, agent.id)).key?.keyId).toBe(winner.id);
    // Every key made for the agent but the one it names is revoked, and the revocation is at the gateway.
    const made = (await g.admin.keys.list(p.id)).items.filter((k) => k.name === "agent raced");
    const others = made.filter((k) => k.id !== winner.id);
    expect(others.length).toBeLessThanOrEqual(1);
    for (const k of others) {
      await g.synced(p.id, k.id);
      expect((await g.admin.keys.get(p.id, k.id)).status).toBe("revoked");
    }
    await g.t.relay();
    const events = g.t.events();
    expect(events.filter((e) => e.type === "aigov.agent.key.issued.v1" && (e.data as { agentId?: string }).agentId === agent.id).map((e) => (e.data as { keyId: string }).keyId)).toEqual([winner.id]);
    for (const k of others) expect(events.some((e) => e.type === "aigov.key.revocation.requested.v1" && (e.data as { keyId?: string }).keyId === k.id)).toBe(true);
    await g.synced(p.id, winner.id);
    const chat = () => g.call(p.id, "/v1/chat/completions", { key: winner.key, body: { model: "race-model", messages: [{ role: "user", content: "hi" }] } }).then((r) => r.status);
    expect(await chat()).toBe(200);
    await g.admin.agents.transition(p.id, agent.id, { to: "retired" });
    await g.synced(p.id, winner.id);
    expect((await g.admin.keys.get(p.id, winner.id)).status).toBe("revoked");
    expect(await chat()).toBe(401);
  });

  it("a retired agent gets no key, and keys no calls at the gateway", async () => {
    const p = await g.project("retired-without-key");
    const m = await g.model(p.id, "retired-model");
    const agent = await g.admin.agents.create(p.id, { name: "gone", guardrails: { models: [m.id] } });
    await g.admin.agents.transition(p.id, agent.id, { to: "retired" });
    const refused = await g.admin.agents.issueKey(p.id, agent.id, {}).then(
      () => undefined,
      (e: { status?: number; problem?: { reason?: string } }) => [e.status, e.problem?.reason],
    );
    expect(refused).toEqual([409, "agent_retired"]);
    expect((await g.admin.agents.get(p.id, agent.id)).key).toBeUndefined();
    expect((await g.admin.keys.list(p.id)).items).toEqual([]);
  });

  it("retiring a retired agent that still names a live key revokes the key (a retirement whose revocation failed is retried)", async () => {
    const p = await g.project("agent-retire-retry");
    const m = await g.model(p.id, "retry-model");
    const agent = await g.admin.agents.create(p.id, { name: "half retired", guardrails: { models: [m.id] } });
    await g.publish("models");
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    await g.synced(p.id, issued.id);
    const chat = () => g.call(p.id, "/v1/chat/completions", { key: issued.key, body: { model: "retry-model", messages: [{ role: "user", content: "hi" }] } }).then((r) => r.status);
    expect(await chat()).toBe(200);
    // What a retirement whose revocation failed left: the agent retired, its key live.
    const item = g.t.container().item(agent.id, [g.tenant, p.id]);
    const { resource } = await item.read<Record<string, unknown>>();
    await item.replace({ ...resource!, lifecycle: { state: "retired" } });
    expect((await g.admin.agents.get(p.id, agent.id)).lifecycle.state).toBe("retired");
    expect((await g.admin.keys.get(p.id, issued.id)).status).toBe("active");

    const again = await g.admin.agents.transition(p.id, agent.id, { to: "retired" });
    expect([again.lifecycle.state, again.key?.keyId]).toEqual(["retired", issued.id]);
    await g.synced(p.id, issued.id);
    expect((await g.admin.keys.get(p.id, issued.id)).status).toBe("revoked");
    expect(await chat()).toBe(401);
    await g.t.relay();
    expect(g.t.events().some((e) => e.type === "aigov.key.revocation.requested.v1" && (e.data as { keyId?: string; reason?: string }).keyId === issued.id)).toBe(true);
    // A retired agent without a live key stays where it is: retired is final.
    await expect(g.admin.agents.transition(p.id, agent.id, { to: "active" })).rejects.toMatchObject({ status: 409, problem: { reason: "agent_transition_not_allowed" } });
  });

  it("a card written for both A2A versions is served with both versions' interfaces at the gateway: v0.3's url and additional interfaces too, and no extended card in either form", async () => {
    const p = await g.project("dual-cards");
    const own = agentServer.card as { supportedInterfaces: Record<string, unknown>[]; capabilities?: Record<string, unknown> };
    const dual = {
      ...agentServer.card,
      capabilities: { ...own.capabilities, extendedAgentCard: true },
      // v0.3's fields, for v0.3 clients: the agent's own address, and an interface elsewhere.
      protocolVersion: "0.3.0",
      url: `${agentServer.url}/a2a`,
      preferredTransport: "JSONRPC",
      additionalInterfaces: [
        { url: `${agentServer.url}/a2a`, transport: "JSONRPC" },
        { url: "https://elsewhere.example.com/a2a", transport: "HTTP+JSON" },
      ],
      supportsAuthenticatedExtendedCard: true,
    };
    const created = await g.admin.agents.create(p.id, { name: "dual", card: { card: dual }, guardrails: { dataClasses: ["internal"] } });
    expect(created.card).toMatchObject({ valid: true, version: "1.0" });
    const agent = await g.admin.agents.transition(p.id, created.id, { to: "active" });
    await g.publish("a card for both versions");
    const k = (await g.key(dev, p.id, { name: "card reader", scopes: { agents: [agent.id] } })).key;
    const api = `${g.t.gateway.url}/${g.names.agentApiPath(p.id, agent.id)}`;
    const res = await fetch(`${api}/.well-known/agent-card.json`, { headers: { "api-key": k } });
    expect(res.status).toBe(200);
    const text = await res.text();
    const card = JSON.parse(text) as Record<string, unknown> & { url: string; capabilities: Record<string, unknown> };
    expect(card.supportedInterfaces).toEqual([{ url: `${api}/a2a`, protocolBinding: "JSONRPC", protocolVersion: "1.0" }]);
    expect(card.url).toBe(`${api}/a2a`);
    expect(card.additionalInterfaces).toEqual([{ url: `${api}/a2a`, transport: "JSONRPC" }]);
    expect(card.supportsAuthenticatedExtendedCard).toBeUndefined();
    expect(card.capabilities.extendedAgentCard).toBe(false);
    // No address in the card leads past the gateway.
    expect(text).not.toContain(new URL(agentServer.url).host);
    expect(text).not.toContain("elsewhere.example.com");
    // A v0.3 client calls `url`: through the gateway, under the guardrails.
    const call = (headers: Record<string, string>) =>
      fetch(card.url, { method: "POST", headers: { "content-type": "application/json", "api-key": k, ...headers }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "message/send", params: { message: { role: "user", messageId: "d1", parts: [{ kind: "text", text: "Faro" }] } } }) });
    const answered = await call({ "x-aigov-data-class": "internal" });
    expect([answered.status, ((await answered.json()) as { result: { parts: { text: string }[] } }).result.parts[0]!.text]).toEqual([200, "planned: Faro"]);
    expect((await call({ "x-aigov-data-class": "restricted" })).status).toBe(403);
  });

  it("an agent's content-safety level screens its key's model calls on top of the project's (which has none here)", async () => {
    const p = await g.project("agent-safety");
    const m = await g.model(p.id, "safe-model");
    const strict = await g.admin.agents.create(p.id, { name: "strict", guardrails: { models: [m.id], contentSafety: "high" } });
    const lax = await g.admin.agents.create(p.id, { name: "lax", guardrails: { models: [m.id], contentSafety: "low" } });
    await g.publish("models");
    const ks = await g.admin.agents.issueKey(p.id, strict.id, {});
    const kl = await g.admin.agents.issueKey(p.id, lax.id, {});
    expect([ks.limits.contentSafety, kl.limits.contentSafety]).toEqual(["high", "low"]);
    await g.synced(p.id, ks.id);
    await g.synced(p.id, kl.id);
    const plain = (await g.key(dev, p.id, { name: "no level" })).key;
    const ask = (key: string, content: string) => g.call(p.id, "/v1/chat/completions", { key, body: { model: "safe-model", messages: [{ role: "user", content }] } }).then((r) => r.status);
    expect(await ask(ks.key, "mild unsafe:Violence:2")).toBe(403);
    expect(await ask(ks.key, "a calm question")).toBe(200);
    expect(await ask(kl.key, "rough unsafe:Violence:4")).toBe(200);
    expect(await ask(kl.key, "severe unsafe:Violence:6")).toBe(403);
    expect(await ask(plain, "severe unsafe:Violence:6")).toBe(200);
  });
});

describe("conformance: agents at the local gateway, hostile inputs and key custody", () => {
  it("a path with an encoded slash, backslash or dot never reaches the agent: it could leave the service path for a sibling agent on the same host", async () => {
    const p = await g.project("encoded-paths");
    // Two agents on one host (as a cloud serves many): a's service URL is <host>/agents/a.
    const a = await g.admin.agents.create(p.id, { name: "a", endpoint: { url: `${agentServer.url}/agents/a/a2a` }, guardrails: { dataClasses: ["internal"] } });
    await g.admin.agents.transition(p.id, a.id, { to: "active" });
    await g.publish("a served");
    const k = (await g.key(dev, p.id, { name: "a caller", scopes: { agents: [a.id] } })).key;
    const base = `/${g.names.agentApiPath(p.id, a.id)}`;
    expect((await raw(`${base}/a2a`, k)).status).toBe(200);
    const before = agentServer.received.length;
    for (const tail of ["/..%2fb/a2a", "/a2a/..%2F..%2Fb/a2a", "/%2e%2e%2fb/a2a", "/..%5cb/a2a"]) {
      const r = await raw(`${base}${tail}`, k);
      expect([tail, r.status, r.body]).toEqual([tail, 400, expect.stringContaining("agent_path_ambiguous")]);
    }
    expect(agentServer.received.slice(before).map((x) => x.path)).toEqual([]);
  });

  it("an agent whose card endpoint is longer than the compiler takes is not served, and does not freeze the project at the gateway (a retirement in the same publish holds)", async () => {
    const p = await g.project("long-url");
    const victim = await g.admin.agents.create(p.id, { name: "victim", card: { url: agentServer.url }, guardrails: { dataClasses: ["internal"] } });
    await g.admin.agents.transition(p.id, victim.id, { to: "active" });
    await g.publish("victim served");
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [victim.id] } })).key;
    expect((await send(p.id, victim.id, k, "x")).status).toBe(200);

    const own = agentServer.card as { supportedInterfaces: Record<string, unknown>[] };
    const longPath = `${agentServer.url}/${"a".repeat(2030 - agentServer.url.length)}/a2a`;
    const long = { ...agentServer.card, supportedInterfaces: [{ ...own.supportedInterfaces[0], url: longPath }] };
    const created = await g.admin.agents.create(p.id, { name: "long", card: { card: long }, guardrails: { dataClasses: ["internal"] } });
    await g.admin.agents.transition(p.id, created.id, { to: "active" });
    // And the victim is retired in the same publish.
    await g.admin.agents.transition(p.id, victim.id, { to: "retired" });
    const r = await g.admin.policy.publish({ reason: "retire one, activate the other" });
    // The long endpoint is simply not served; the project's other changes reach the gateway.
    expect(r.isolated ?? []).toEqual([]);
    await g.publish("settle");
    expect(refusal(await send(p.id, victim.id, k, "x"))).toEqual(NOT_SERVED);
    const k2 = (await g.key(dev, p.id, { name: "long caller", scopes: { agents: [created.id] } })).key;
    expect(refusal(await send(p.id, created.id, k2, "x"))).toEqual(NOT_SERVED);
  });

  it("an agent whose key was revoked (a leak answered through the keys API) can be issued a new one", async () => {
    const p = await g.project("revoked-agent-key");
    const m = await g.model(p.id, "reissue-model");
    const agent = await g.admin.agents.create(p.id, { name: "leaky", guardrails: { models: [m.id] } });
    await g.publish("models");
    const first = await g.admin.agents.issueKey(p.id, agent.id, {});
    const k = await g.admin.keys.get(p.id, first.id);
    await g.admin.keys.revoke(p.id, first.id, { reason: "leaked" }, k.etag);
    await g.synced(p.id, first.id);
    expect((await g.admin.keys.get(p.id, first.id)).status).toBe("revoked");
    // The agent still names the revoked key: it must be able to get a working one again.
    const second = await g.admin.agents.issueKey(p.id, agent.id, {}).then((r) => r, (e: { status?: number; problem?: { reason?: string } }) => ({ refused: [e.status, e.problem?.reason] }));
    expect(second).not.toHaveProperty("refused");
    expect((await g.admin.agents.get(p.id, agent.id)).key?.keyId).toBe((second as { id: string }).id);
  });

  it("when an agent changes owner, its key goes with it: the former owner can no longer rotate it and take its secret", async () => {
    const p = await g.project("agent-owner-change");
    const m = await g.model(p.id, "owner-model");
    const agent = await g.admin.agents.create(p.id, { name: "handed over", owner: "dora", guardrails: { models: [m.id] } });
    await g.publish("models");
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    await g.synced(p.id, issued.id);
    await g.admin.agents.update(p.id, agent.id, { owner: "erin" }, (await g.admin.agents.get(p.id, agent.id)).etag);
    const key = await g.admin.keys.get(p.id, issued.id);
    expect(key.owner).toBe("erin");
    const rotated = await dev.keys.rotate(p.id, issued.id, {}, key.etag).then((r) => ({ status: 200, secret: r.key }), (e: { status?: number }) => ({ status: e.status, secret: undefined }));
    expect(rotated.status).toBe(403);
    // Audited, and an event says so (without any secret).
    await g.t.relay();
    expect(g.t.events().filter((e) => e.type === "aigov.key.reassigned.v1").map((e) => e.data)).toContainEqual(expect.objectContaining({ keyId: issued.id, owner: "erin", previousOwner: "dora" }));
  });

  it("a project serves at most 500 agents: an activation past them is refused (project_agent_limit) and changes nothing", async () => {
    const p = await g.project("agent-cap");
    const first = await activeAgent(p.id);
    const container = g.t.container();
    const { resources } = await container.items.query({ query: "SELECT * FROM c WHERE c.id = @id", parameters: [{ name: "@id", value: first.id }] }).fetchAll();
    const { _etag, _rid, _self, _ts, _attachments, ...stored } = resources[0] as Record<string, unknown> & { tenantId: string; scopeId: string };
    // 499 more served agents, written straight to the store (as 499 activations would leave it).
    const clones = Array.from({ length: MAX_AGENTS - 1 }, (_, i) => ({ ...stored, id: newId("agt"), name: `clone ${i}` }));
    for (let i = 0; i < clones.length; i += 50) await Promise.all(clones.slice(i, i + 50).map((c) => container.items.create(c)));
    try {
      const draft = await g.admin.agents.create(p.id, { name: "one more", card: { url: agentServer.url }, guardrails: { dataClasses: ["internal"] } });
      const refused = await g.admin.agents.transition(p.id, draft.id, { to: "active" }).catch((e: ApiError) => e);
      expect([(refused as ApiError).status, (refused as ApiError).problem?.reason]).toEqual([409, "project_agent_limit"]);
      expect((await g.admin.agents.get(p.id, draft.id)).lifecycle.state).toBe("draft");
      // Enabling an active agent that is switched off would serve one more too.
      const off = { ...stored, id: newId("agt"), name: "switched off", enabled: false };
      clones.push(off);
      await container.items.create(off);
      const enabled = await g.admin.agents.update(p.id, off.id, { enabled: true }, (await g.admin.agents.get(p.id, off.id)).etag).catch((e: ApiError) => e);
      expect([(enabled as ApiError).status, (enabled as ApiError).problem?.reason]).toEqual([409, "project_agent_limit"]);
      // One retired makes room.
      await g.admin.agents.transition(p.id, first.id, { to: "retired" });
      expect((await g.admin.agents.transition(p.id, draft.id, { to: "active" })).lifecycle.state).toBe("active");
    } finally {
      // Later tests publish this tenant: it should not carry 500 agents for them.
      for (let i = 0; i < clones.length; i += 50) await Promise.all(clones.slice(i, i + 50).map((c) => container.item(c.id, [stored.tenantId, stored.scopeId]).delete()));
    }
  });
});
