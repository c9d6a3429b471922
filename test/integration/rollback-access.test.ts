/**
 * A rollback restores configuration, never access (ADR 006): whatever governance has taken away since
 * the target revision stays taken away at the gateway. Checked by requests through the local gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import { startA2aAgent, type A2aAgent } from "../fixtures/agents/a2a-server.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";
import { until } from "../support/until.js";

let g: Governed;
let dev: AigovClient;
let agentServer: A2aAgent;

beforeAll(async () => {
  g = await Governed.start("t-rollback-access");
  dev = await g.as("dora", ["Developer"]);
  agentServer = await startA2aAgent();
});
afterAll(async () => {
  await agentServer.close();
  await g.stop();
});

let rpc = 0;
async function send(projectId: string, agentId: string, key: string) {
  const res = await fetch(`${g.t.gateway.url}/${g.names.agentApiPath(projectId, agentId)}/a2a`, {
    method: "POST",
    headers: { "content-type": "application/json", "api-key": key, "x-aigov-data-class": "internal" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpc, method: "message/send", params: { message: { role: "user", messageId: `u${rpc}`, parts: [{ kind: "text", text: "hi" }] } } }),
  });
  const body = await res.text();
  return { status: res.status, json: (body ? JSON.parse(body) : {}) as unknown };
}

/** The rollback, applied and at the gateway. */
async function rollBack(revisionId: string): Promise<void> {
  const r = await g.admin.policy.rollback(revisionId, { reason: "roll back" });
  if (r.revision) await until(async () => ((await g.admin.policy.revision(r.revision!.id)).status === "published" ? true : undefined), "rollback published");
  await g.settle();
}

const newestPublished = async () => (await g.admin.policy.revisions()).items.find((r) => r.status === "published")!;

describe("rollback never brings back access governance took away", () => {
  it("a retired agent (retirement is final) is not served again by rolling back to a revision from before its retirement", async () => {
    const p = await g.project("retired-agent-rollback");
    const created = await g.admin.agents.create(p.id, { name: "travel", card: { url: agentServer.url }, guardrails: { dataClasses: ["internal"] } });
    const agent = await g.admin.agents.transition(p.id, created.id, { to: "active" });
    await g.publish("agent served");
    const before = await newestPublished();
    const k = (await g.key(dev, p.id, { name: "caller", scopes: { agents: [agent.id] } })).key;
    expect((await send(p.id, agent.id, k)).status).toBe(200);

    await g.admin.agents.transition(p.id, agent.id, { to: "retired" });
    await g.publish("agent retired");
    expect(refusal(await send(p.id, agent.id, k))).toEqual(NOT_SERVED);

    await rollBack(before.id);
    expect((await g.admin.agents.get(p.id, agent.id)).lifecycle.state).toBe("retired");
    expect(refusal(await send(p.id, agent.id, k))).toEqual(NOT_SERVED);
  });

  it("a deleted project is not put back on the gateway by rolling back to a revision from before its deletion (a key shared into it reaches nothing)", async () => {
    const home = await g.project("share-home");
    await g.model(home.id, "home-model");
    const gone = await g.project("share-gone");
    const goneModel = await g.model(gone.id, "gone-model");
    await g.publish("two projects");
    const k = await g.key(dev, home.id, { name: "shared", scopes: {} });
    const { approval } = await dev.keys.share(home.id, k.id, { projectId: gone.id, justification: "evaluation" }, (await dev.keys.get(home.id, k.id)).etag);
    await g.admin.approvals.decide(approval.id, { decision: "approve", justification: "ok" }, approval.etag);
    await until(async () => ((await dev.keys.get(home.id, k.id)).shares[0]?.status === "active" ? true : undefined), "share active");
    await g.synced(home.id, k.id);
    expect((await g.chat(gone.id, k.key, "gone-model")).status).toBe(200);
    const before = await newestPublished();

    await g.admin.models.delete(gone.id, goneModel.id, (await g.admin.models.get(gone.id, goneModel.id)).etag);
    await g.admin.projects.delete(gone.id, (await g.admin.projects.get(gone.id)).etag);
    await g.publish("project deleted");
    expect(refusal(await g.chat(gone.id, k.key, "gone-model"))).toEqual(NOT_SERVED);

    await rollBack(before.id);
    expect(refusal(await g.chat(gone.id, k.key, "gone-model"))).toEqual(NOT_SERVED);
  });

  it("a pillar switched off since stays off through a rollback, and a model deleted since stays gone", async () => {
    const p = await g.project("pillar-rollback");
    const kept = await g.model(p.id, "kept-model");
    const dropped = await g.model(p.id, "dropped-model");
    await g.publish("two models");
    const before = await newestPublished();
    const k = (await g.key(dev, p.id, { name: "caller", scopes: {} })).key;
    expect((await g.chat(p.id, k, "kept-model")).status).toBe(200);
    expect((await g.chat(p.id, k, "dropped-model")).status).toBe(200);

    await g.admin.models.delete(p.id, dropped.id, (await g.admin.models.get(p.id, dropped.id)).etag);
    await g.admin.projects.update(p.id, { pillars: { models: false } }, (await g.admin.projects.get(p.id)).etag);
    await g.publish("models off");
    expect(refusal(await g.chat(p.id, k, "kept-model"))).toEqual(NOT_SERVED);

    await rollBack(before.id);
    expect(refusal(await g.chat(p.id, k, "kept-model"))).toEqual(NOT_SERVED);
    // Switched on again: the model still registered is served, the one deleted since is not.
    await g.admin.projects.update(p.id, { pillars: { models: true } }, (await g.admin.projects.get(p.id)).etag);
    await g.publish("models on");
    expect((await g.chat(p.id, k, "kept-model")).status).toBe(200);
    await rollBack(before.id);
    expect((await g.chat(p.id, k, "kept-model")).status).toBe(200);
    expect((await g.chat(p.id, k, "dropped-model")).status).not.toBe(200);
    expect(kept.id).not.toBe(dropped.id);
  });

  // Last in the file: it narrows the tenant's regions (put back at the end).
  it("a tenant floor tightened since the target revision holds through a rollback: a region the tenant no longer allows stays refused", async () => {
    const p = await g.project("region-floor-rollback");
    await g.model(p.id, "east-model"); // served from eastus
    await g.publish("model in eastus");
    const before = await newestPublished();
    const k = (await g.key(dev, p.id, { name: "caller", scopes: {} })).key;
    expect((await g.chat(p.id, k, "east-model")).status).toBe(200);

    const original = await g.admin.settings.get();
    await g.admin.settings.put({ settings: { ...original.settings, regions: { allowed: ["westeurope"] } } }, original.etag);
    await g.publish("EU only");
    const refused = { status: 403, code: "model_unavailable_in_region" };
    expect(refusal(await g.chat(p.id, k, "east-model"))).toEqual(refused);

    // The target revision's tenant settings allowed every region; the live tenant's floor still holds.
    await rollBack(before.id);
    expect(refusal(await g.chat(p.id, k, "east-model"))).toEqual(refused);
    expect((await g.admin.settings.get()).settings.regions).toEqual({ allowed: ["westeurope"] });

    const now = await g.admin.settings.get();
    await g.admin.settings.put({ settings: original.settings }, now.etag);
  });
});
