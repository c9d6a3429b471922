/**
 * Conformance: an agent past its sunset stops acting, not only being called. The gateway refuses calls to
 * it from the sunset on by its own clock (sunset.test.ts); its own key — the agent as a caller of models
 * and tools — is held by the agent hold's sweep (the `agentSyncSchedule` tick) from the sunset on, like a
 * blocked agent's (`suspendedBy: "agentHold"`, audited as `system:agent-hold`, `aigov.key.suspended.v1`):
 * resuming it or issuing the agent a key is 409 `agent_sunset_passed`. The agent stays `deprecated` (the
 * gateway keeps answering 410 `agent_sunset`, ADR 027); made active again, its key comes back; retired,
 * its key is revoked. Checked by chat completions with the agent's key through the local gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { ApiError } from "../../src/client/index.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";

let g: Governed;
const DAY = 24 * 60 * 60 * 1000;

beforeAll(async () => {
  g = await Governed.start("t-agent-sunset-hold");
  // The sunset is judged by the services' clock: the app's, which the test moves.
  overrideServices({ clock: g.t.appClock });
});
afterAll(async () => {
  overrideServices({});
  await g.stop();
});

const refusedWith = (p: Promise<unknown>) => p.then(() => undefined, (e: ApiError) => [e.status, e.problem?.reason]);
/** The UTC date `days` from now by the app's clock. */
const appDays = (days: number) => new Date(g.t.appClock.ms() + days * DAY).toISOString().slice(0, 10);

async function storedKey(projectId: string, keyId: string): Promise<{ status: string; suspendedBy?: string }> {
  const { resource } = await g.t.container().item(keyId, [g.tenant, projectId]).read<{ status: string; suspendedBy?: string }>();
  return resource!;
}

describe("conformance: an agent past its sunset loses its own key's access", () => {
  it("the sweep holds a past-sunset agent's key; it is neither resumed nor replaced; active again, the key comes back; retired, it is revoked", async () => {
    const p = await g.project("sunset-hold");
    const m = await g.model(p.id, "sunset-hold-model");
    const later = await g.admin.agents.create(p.id, { name: "later", guardrails: { models: [m.id] } });
    const agent = await g.admin.agents.create(p.id, { name: "soon", guardrails: { models: [m.id] } });
    for (const a of [agent, later]) await g.admin.agents.transition(p.id, a.id, { to: "active" });
    await g.publish("models");
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    const laterKey = await g.admin.agents.issueKey(p.id, later.id, {});
    await g.synced(p.id, issued.id);
    await g.synced(p.id, laterKey.id);
    const chat = (key: string) => g.call(p.id, "/v1/chat/completions", { key, body: { model: "sunset-hold-model", messages: [{ role: "user", content: "hi" }] } });

    await g.admin.agents.transition(p.id, agent.id, { to: "deprecated", sunsetDate: appDays(2) });
    await g.admin.agents.transition(p.id, later.id, { to: "deprecated", sunsetDate: appDays(30) });
    // Before the sunset the sweep leaves both keys alone.
    await g.t.app.host.invokeTimer("agentSyncSchedule");
    expect((await storedKey(p.id, issued.id)).status).toBe("active");
    expect((await chat(issued.key)).status).toBe(200);

    // Past the sunset (both clocks): the sweep holds the key of the agent whose sunset passed, only that one.
    g.t.appClock.advance(3 * DAY);
    g.t.clock.advance(3 * DAY);
    await g.t.app.host.invokeTimer("agentSyncSchedule");
    await g.synced(p.id, issued.id);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });
    expect(refusal(await chat(issued.key))).toEqual(NOT_SERVED);
    expect((await storedKey(p.id, laterKey.id)).status).toBe("active");
    expect((await chat(laterKey.key)).status).toBe(200);
    await g.t.relay();
    const suspended = g.t.events().filter((e) => e.type === "aigov.key.suspended.v1" && (e.data as { keyId?: string }).keyId === issued.id);
    expect(suspended.map((e) => (e.data as { reason: string }).reason)).toEqual([expect.stringMatching(new RegExp(`${agent.id}.*sunset`))]);
    // The registry still says what it is: deprecated, its sunset passed.
    expect((await g.admin.agents.get(p.id, agent.id)).lifecycle).toMatchObject({ state: "deprecated", sunsetDate: appDays(-1) });

    // Neither resumed nor replaced while it is past its sunset; the sweep again keeps it held.
    expect(await refusedWith(g.admin.keys.resume(p.id, issued.id, { reason: "let it through" }, (await g.admin.keys.get(p.id, issued.id)).etag))).toEqual([409, "agent_sunset_passed"]);
    expect(await refusedWith(g.admin.agents.issueKey(p.id, agent.id, {}))).toEqual([409, "agent_sunset_passed"]);
    await g.t.app.host.invokeTimer("agentSyncSchedule");
    expect((await storedKey(p.id, issued.id)).status).toBe("suspended");

    // Made active again by a person: the key the hold suspended comes back.
    await g.admin.agents.transition(p.id, agent.id, { to: "active" });
    await g.synced(p.id, issued.id);
    expect((await storedKey(p.id, issued.id)).status).toBe("active");
    expect((await chat(issued.key)).status).toBe(200);

    // Retired: the key is revoked.
    await g.admin.agents.transition(p.id, agent.id, { to: "retired" });
    expect(["revoked", "revocationPending"]).toContain((await g.admin.keys.get(p.id, issued.id)).status);
  });

  it("deprecated with a sunset that then passes, a transition that keeps it deprecated (block and unblock) holds its key at once", async () => {
    const p = await g.project("sunset-unblock");
    const m = await g.model(p.id, "sunset-unblock-model");
    const agent = await g.admin.agents.create(p.id, { name: "unblocked", guardrails: { models: [m.id] } });
    await g.admin.agents.transition(p.id, agent.id, { to: "active" });
    await g.publish("models");
    const issued = await g.admin.agents.issueKey(p.id, agent.id, {});
    await g.admin.agents.transition(p.id, agent.id, { to: "deprecated", sunsetDate: appDays(1) });
    await g.admin.agents.transition(p.id, agent.id, { to: "blocked" });
    g.t.appClock.advance(2 * DAY);
    g.t.clock.advance(2 * DAY);
    await g.admin.agents.transition(p.id, agent.id, { to: "deprecated" });
    await g.synced(p.id, issued.id);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });
  });
});
