/**
 * Conformance: an agent that is blocked or disabled loses its own access at the gateway. Its key is
 * suspended by the system (`suspendedBy: "agentHold"`), stays suspended while the agent is held (resuming
 * it, or issuing the agent a new key, is refused: 409 `agent_blocked_or_disabled`), and comes back when
 * the agent is unblocked or enabled again — exactly when this hold suspended it: a key a person suspended
 * stays suspended. Checked by chat completions with the agent's key through the local gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiError } from "../../src/client/index.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";

let g: Governed;

beforeAll(async () => {
  g = await Governed.start("t-agent-hold");
});
afterAll(async () => {
  await g.stop();
});

const refusedWith = (p: Promise<unknown>) => p.then(() => undefined, (e: ApiError) => [e.status, e.problem?.reason]);

async function agentWithKey(name: string) {
  const p = await g.project(name);
  const m = await g.model(p.id, `${name}-model`);
  const agent = await g.admin.agents.create(p.id, { name, guardrails: { models: [m.id] } });
  await g.admin.agents.transition(p.id, agent.id, { to: "active" });
  await g.publish("models");
  const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
  await g.synced(p.id, issued.id);
  const chat = () => g.call(p.id, "/v1/chat/completions", { key: issued.key, body: { model: `${name}-model`, messages: [{ role: "user", content: "hi" }] } });
  return { p, agent, issued, chat };
}

async function storedKey(projectId: string, keyId: string): Promise<{ status: string; suspendedBy?: string }> {
  const { resource } = await g.t.container().item(keyId, [g.tenant, projectId]).read<{ status: string; suspendedBy?: string }>();
  return resource!;
}

describe("conformance: a blocked or disabled agent loses its own key's access", () => {
  it("blocked: the agent's key is suspended by the system and refused at the gateway; unblocked, it works again", async () => {
    const { p, agent, issued, chat } = await agentWithKey("hold-block");
    expect((await chat()).status).toBe(200);

    await g.admin.agents.transition(p.id, agent.id, { to: "blocked", reason: "prompt injection" });
    await g.publish("blocked");
    await g.synced(p.id, issued.id);
    expect(refusal(await chat())).toEqual(NOT_SERVED);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });

    // While blocked: the key is not resumed, and the agent is issued no new key.
    const etag = (await g.admin.keys.get(p.id, issued.id)).etag;
    expect(await refusedWith(g.admin.keys.resume(p.id, issued.id, { reason: "let it through" }, etag))).toEqual([409, "agent_blocked_or_disabled"]);
    expect(await refusedWith(g.admin.agents.issueKey(p.id, agent.id, {}))).toEqual([409, "agent_blocked_or_disabled"]);
    expect((await g.admin.keys.get(p.id, issued.id)).status).toBe("suspended");

    await g.admin.agents.transition(p.id, agent.id, { to: "active" });
    await g.publish("unblocked");
    await g.synced(p.id, issued.id);
    const back = await storedKey(p.id, issued.id);
    expect([back.status, back.suspendedBy]).toEqual(["active", undefined]);
    expect((await chat()).status).toBe(200);

    // Audited and evented: the suspension and the resumption, by the system, naming the agent.
    await g.t.relay();
    const events = g.t.events().filter((e) => (e.data as { keyId?: string }).keyId === issued.id);
    expect(events.filter((e) => e.type === "aigov.key.suspended.v1").map((e) => (e.data as { reason: string }).reason)).toEqual([expect.stringContaining(agent.id)]);
    expect(events.filter((e) => e.type === "aigov.key.resumed.v1").map((e) => (e.data as { reason: string }).reason)).toEqual([expect.stringContaining(agent.id)]);
  });

  it("a key a person suspended before the block stays suspended after the unblock", async () => {
    const { p, agent, issued, chat } = await agentWithKey("hold-person");
    await g.admin.keys.suspend(p.id, issued.id, { reason: "investigating a leak" }, (await g.admin.keys.get(p.id, issued.id)).etag);
    await g.synced(p.id, issued.id);
    expect(refusal(await chat())).toEqual(NOT_SERVED);

    await g.admin.agents.transition(p.id, agent.id, { to: "blocked", reason: "prompt injection" });
    await g.admin.agents.transition(p.id, agent.id, { to: "active" });
    await g.publish("blocked and back");
    await g.synced(p.id, issued.id);
    const kept = await storedKey(p.id, issued.id);
    expect(kept.status).toBe("suspended");
    expect(kept.suspendedBy).not.toBe("agentHold");
    expect(refusal(await chat())).toEqual(NOT_SERVED);
    // The person's suspension is the person's to lift.
    await g.admin.keys.resume(p.id, issued.id, { reason: "cleared" }, (await g.admin.keys.get(p.id, issued.id)).etag);
    await g.synced(p.id, issued.id);
    expect((await chat()).status).toBe(200);
  });

  it("disabled (enabled: false) and enabled again: the same, and a key a person suspended meanwhile stays suspended", async () => {
    const { p, agent, issued, chat } = await agentWithKey("hold-disable");
    const toggle = async (enabled: boolean) => g.admin.agents.update(p.id, agent.id, { enabled }, (await g.admin.agents.get(p.id, agent.id)).etag);
    await toggle(false);
    await g.publish("disabled");
    await g.synced(p.id, issued.id);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });
    expect(refusal(await chat())).toEqual(NOT_SERVED);
    expect(await refusedWith(g.admin.keys.resume(p.id, issued.id, { reason: "x" }, (await g.admin.keys.get(p.id, issued.id)).etag))).toEqual([409, "agent_blocked_or_disabled"]);

    await toggle(true);
    await g.publish("enabled");
    await g.synced(p.id, issued.id);
    expect((await chat()).status).toBe(200);

    // Suspended by a person first: disabling and enabling the agent leaves it suspended.
    await g.admin.keys.suspend(p.id, issued.id, { reason: "investigating" }, (await g.admin.keys.get(p.id, issued.id)).etag);
    await toggle(false);
    await toggle(true);
    await g.synced(p.id, issued.id);
    expect((await storedKey(p.id, issued.id)).status).toBe("suspended");
    expect(refusal(await chat())).toEqual(NOT_SERVED);

    // Suspended by a person while the agent is disabled: the person's suspension outlives the hold.
    await g.admin.keys.resume(p.id, issued.id, { reason: "cleared" }, (await g.admin.keys.get(p.id, issued.id)).etag);
    await toggle(false);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });
    await g.admin.keys.suspend(p.id, issued.id, { reason: "leaked while disabled" }, (await g.admin.keys.get(p.id, issued.id)).etag);
    expect((await storedKey(p.id, issued.id)).suspendedBy).not.toBe("agentHold");
    await toggle(true);
    await g.synced(p.id, issued.id);
    expect((await storedKey(p.id, issued.id)).status).toBe("suspended");
    expect(refusal(await chat())).toEqual(NOT_SERVED);
  });

  it("a hold the request did not finish (a crash after the agent's write) is finished by the sweep, both ways", async () => {
    const { p, agent, issued, chat } = await agentWithKey("hold-crash");
    const item = g.t.container().item(agent.id, [g.tenant, p.id]);
    // What a block that crashed after writing the agent left: the agent blocked, its key active.
    const { resource } = await item.read<Record<string, unknown> & { lifecycle: Record<string, unknown> }>();
    await item.replace({ ...resource!, lifecycle: { state: "blocked", blockedFrom: "active", reason: "prompt injection" } });
    expect((await g.admin.keys.get(p.id, issued.id)).status).toBe("active");
    await g.t.app.host.invokeTimer("agentSyncSchedule");
    await g.synced(p.id, issued.id);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });
    expect(refusal(await chat())).toEqual(NOT_SERVED);
    // What an unblock that crashed after writing the agent left: the agent active, its key held.
    const { resource: blocked } = await item.read<Record<string, unknown>>();
    await item.replace({ ...blocked!, lifecycle: { state: "active" } });
    await g.t.app.host.invokeTimer("agentSyncSchedule");
    await g.synced(p.id, issued.id);
    expect((await storedKey(p.id, issued.id)).status).toBe("active");
    expect((await chat()).status).toBe(200);
  });
});
