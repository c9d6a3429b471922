/**
 * Conformance: an agent's own key answers for the agent's standing, whoever changes it.
 * - A sync that finds an agent gone at its source (`removedAtSource`) holds its key, as a block or a
 *   switch-off does: the key is suspended by the system (`suspendedBy: "agentHold"`), refused at the
 *   gateway, cannot be resumed or replaced (409 `agent_removed_at_source`), and comes back when the cloud
 *   lists the agent again. Blocked and removed at once, the refusal is the removal's (unblocking alone
 *   does not release the key), its detail naming both holds.
 * - Another tenant cannot act on an agent or its key by id: its block, switch-off, key suspension and
 *   key issue are a 404 exactly like a missing agent's, and the first tenant's key keeps working.
 * Checked with chat completions of the agent's key through the local gateway, the sync against the
 * Bedrock fake over the unmodified SDK.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiError } from "../../src/client/index.js";
import type { Connection, SyncRun } from "../../src/pillars/agents/schema.js";
import { startBedrockFake, type BedrockFake } from "../../src/local-backends/agent-clouds/index.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";
import { until } from "../support/until.js";
import { newId } from "../../src/domain/common.js";

const ACCESS_KEY = "AKIAFAKEFAKEFAKE0002";
const REGION = "us-east-1";
let g: Governed;
let other: Governed;
let bedrock: BedrockFake;

beforeAll(async () => {
  g = await Governed.start("t-agent-src");
  other = await Governed.start("t-agent-src-other", g.t);
  bedrock = await startBedrockFake({ seed: "hold", regions: { [REGION]: 3 }, accessKeyId: ACCESS_KEY });
}, 60_000);
afterAll(async () => {
  await bedrock?.close();
  // The other tenant shares the app: stopping it once stops both.
  await g?.stop();
});

const refusedWith = (p: Promise<unknown>) => p.then(() => undefined, (e: ApiError) => [e.status, e.problem?.reason]);

async function storedKey(projectId: string, keyId: string): Promise<{ status: string; suspendedBy?: string }> {
  const { resource } = await g.t.container().item(keyId, [g.tenant, projectId]).read<{ status: string; suspendedBy?: string }>();
  return resource!;
}

async function sync(connection: Connection): Promise<SyncRun> {
  const run = await g.admin.connections.sync(connection.id);
  return until(async () => {
    const r = await g.admin.connections.run(connection.id, run.id);
    return r.status === "running" ? undefined : r;
  }, `sync ${run.id}`, 60_000);
}

/** A local agent with a model in its guardrails, active, with its own key that works at the gateway. */
async function agentWithKey(gov: Governed, name: string) {
  const p = await gov.project(name);
  const m = await gov.model(p.id, `${name}-model`);
  const agent = await gov.admin.agents.create(p.id, { name, guardrails: { models: [m.id] } });
  await gov.admin.agents.transition(p.id, agent.id, { to: "active" });
  await gov.publish("models");
  const issued = await gov.admin.agents.issueKey(p.id, agent.id, {});
  await gov.synced(p.id, issued.id);
  const chat = () => gov.call(p.id, "/v1/chat/completions", { key: issued.key, body: { model: `${name}-model`, messages: [{ role: "user", content: "hi" }] } });
  return { p, agent, issued, chat };
}

/**
 * A project `name` with a model `<name>-model`, a Bedrock connection `connection` synced (three agents), the
 * `pick`-th synced agent (by id) made active with the model, and a key issued to it that works.
 */
async function syncedAgentWithKey(name: string, connection: string, pick: number) {
  const p = await g.project(name);
  const model = await g.model(p.id, `${name}-model`);
  const con = await g.admin.connections.create({
    name: connection,
    projectId: p.id,
    scope: { cloud: "bedrock", accountId: "123456789012", endpoint: bedrock.endpoint },
    regions: [REGION],
    credentials: { kind: "awsAccessKey", accessKeyId: ACCESS_KEY, secretAccessKey: "fake-secret-access-key-value" },
    owner: "platform-team",
  });
  expect((await sync(con)).counts).toMatchObject({ discovered: 3 });
  const synced = (await g.admin.agents.list(p.id, { connectionId: con.id })).items.sort((a, b) => (a.id < b.id ? -1 : 1))[pick]!;
  const sourceId = synced.provenance!.sourceId;
  await g.admin.agents.update(p.id, synced.id, { guardrails: { models: [model.id] } }, (await g.admin.agents.get(p.id, synced.id)).etag);
  await g.admin.agents.transition(p.id, synced.id, { to: "active" });
  await g.publish("models");
  const issued = await g.admin.agents.issueKey(p.id, synced.id, {});
  await g.synced(p.id, issued.id);
  const chat = () => g.call(p.id, "/v1/chat/completions", { key: issued.key, body: { model: `${name}-model`, messages: [{ role: "user", content: "hi" }] } });
  expect((await chat()).status).toBe(200);
  return { p, con, synced, sourceId, issued, chat };
}

describe("conformance: an agent removed at its source stops acting", () => {
  it("the sync holds the agent's key when its cloud no longer lists it, and releases it when the cloud lists it again", async () => {
    const { p, con, synced, sourceId, issued, chat } = await syncedAgentWithKey("synced", "aws", 0);

    // Gone at the source: the agent is removedAtSource, and its key is held like a blocked agent's.
    const saved = bedrock.state.get(REGION, sourceId)!;
    bedrock.state.remove(REGION, sourceId);
    expect((await sync(con)).counts).toMatchObject({ removedAtSource: 1 });
    expect((await g.admin.agents.get(p.id, synced.id)).sync?.state).toBe("removedAtSource");
    await g.synced(p.id, issued.id);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });
    expect(refusal(await chat())).toEqual(NOT_SERVED);
    // Neither resumed nor replaced while it is gone.
    expect(await refusedWith(g.admin.keys.resume(p.id, issued.id, { reason: "let it through" }, (await g.admin.keys.get(p.id, issued.id)).etag))).toEqual([409, "agent_removed_at_source"]);
    expect(await refusedWith(g.admin.agents.issueKey(p.id, synced.id, {}))).toEqual([409, "agent_removed_at_source"]);
    // The hold's sweep keeps it held.
    await g.t.app.host.invokeTimer("agentSyncSchedule");
    expect((await storedKey(p.id, issued.id)).status).toBe("suspended");

    // Back at the source: the key the removal held comes back.
    bedrock.state.put(REGION, saved);
    expect((await sync(con)).counts).toMatchObject({ returned: 1 });
    await g.synced(p.id, issued.id);
    const back = await storedKey(p.id, issued.id);
    expect([back.status, back.suspendedBy]).toEqual(["active", undefined]);
    expect((await chat()).status).toBe(200);

    // Audited and evented, by the system, naming the agent.
    await g.t.relay();
    const events = g.t.events().filter((e) => (e.data as { keyId?: string }).keyId === issued.id);
    expect(events.filter((e) => e.type === "aigov.key.suspended.v1").map((e) => (e.data as { reason: string }).reason)).toEqual([expect.stringContaining(synced.id)]);
    expect(events.filter((e) => e.type === "aigov.key.resumed.v1").map((e) => (e.data as { reason: string }).reason)).toEqual([expect.stringContaining(synced.id)]);
  }, 120_000);
});

describe("conformance: an agent both blocked and removed at its source", () => {
  it("is refused as removed at its source (unblocking alone does not bring its key back), the answer naming both holds; unblocked, still so; listed again, its key comes back", async () => {
    const { p, con, synced, sourceId, issued, chat } = await syncedAgentWithKey("blocked-and-gone", "aws-both", 1);
    const resume = async () => g.admin.keys.resume(p.id, issued.id, { reason: "let it through" }, (await g.admin.keys.get(p.id, issued.id)).etag);
    const answer = (q: Promise<unknown>) => q.then(() => undefined, (e: ApiError) => [e.status, e.problem?.reason, e.problem?.detail]);

    // Blocked, then gone at its source.
    await g.admin.agents.transition(p.id, synced.id, { to: "blocked", reason: "prompt injection" });
    expect(await refusedWith(resume())).toEqual([409, "agent_blocked_or_disabled"]);
    const saved = bedrock.state.get(REGION, sourceId)!;
    bedrock.state.remove(REGION, sourceId);
    expect((await sync(con)).counts).toMatchObject({ removedAtSource: 1 });
    await g.synced(p.id, issued.id);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "suspended", suspendedBy: "agentHold" });
    expect(refusal(await chat())).toEqual(NOT_SERVED);
    // Removal is what a person cannot undo: it is the reason; the detail names the block too.
    const both = [409, "agent_removed_at_source", expect.stringMatching(/removed at its source.*blocked|blocked.*removed at its source/)];
    expect(await answer(resume())).toEqual(both);
    expect(await answer(g.admin.agents.issueKey(p.id, synced.id, {}))).toEqual(both);

    // Unblocked: still removed at its source, its key still held.
    await g.admin.agents.transition(p.id, synced.id, { to: "active" });
    expect(await answer(resume())).toEqual([409, "agent_removed_at_source", expect.not.stringMatching(/blocked/)]);
    expect((await storedKey(p.id, issued.id)).status).toBe("suspended");

    // Listed again: its key comes back.
    bedrock.state.put(REGION, saved);
    expect((await sync(con)).counts).toMatchObject({ returned: 1 });
    await g.synced(p.id, issued.id);
    expect((await storedKey(p.id, issued.id)).status).toBe("active");
    expect((await chat()).status).toBe(200);
  }, 120_000);
});

describe("conformance: another tenant cannot act on an agent or its key by id", () => {
  it("block, switch-off, key suspension and key issue from another tenant are a missing agent's 404, and the agent's key keeps working", async () => {
    const { p, agent, issued, chat } = await agentWithKey(g, "mine");
    expect((await chat()).status).toBe(200);
    // The other tenant's admin, with the same ids: the project, the agent, the key.
    const theirs = await other.project("theirs");
    const missing = async (call: () => Promise<unknown>) => {
      try {
        await call();
        return "succeeded";
      } catch (e) {
        const err = e as ApiError;
        return { status: err.status, reason: err.problem?.reason };
      }
    };
    const probes = {
      block: (pid: string, aid: string) => other.admin.agents.transition(pid, aid, { to: "blocked", reason: "hostile" }),
      retire: (pid: string, aid: string) => other.admin.agents.transition(pid, aid, { to: "retired" }),
      disable: (pid: string, aid: string) => other.admin.agents.update(pid, aid, { enabled: false }, "*"),
      issueKey: (pid: string, aid: string) => other.admin.agents.issueKey(pid, aid, {}),
      get: (pid: string, aid: string) => other.admin.agents.get(pid, aid),
    };
    for (const [name, probe] of Object.entries(probes)) {
      const cross = await missing(() => probe(p.id, agent.id));
      // As a missing agent: in a project of the other tenant's own, and in a project nobody has.
      const ownProject = await missing(() => probe(theirs.id, agent.id));
      const noProject = await missing(() => probe(newId("prj"), newId("agt")));
      expect(cross, name).toEqual({ status: 404, reason: "not_found" });
      expect(ownProject, name).toEqual({ status: 404, reason: "not_found" });
      expect(noProject, name).toEqual(cross);
    }
    for (const act of [
      () => other.admin.keys.suspend(p.id, issued.id, { reason: "hostile" }, "*"),
      () => other.admin.keys.revoke(p.id, issued.id, { reason: "hostile" }, "*"),
      () => other.admin.keys.get(p.id, issued.id),
    ]) {
      expect(await missing(act)).toEqual({ status: 404, reason: "not_found" });
    }
    // Nothing changed for the first tenant: the agent, its key, and the key at the gateway.
    expect((await g.admin.agents.get(p.id, agent.id)).lifecycle.state).toBe("active");
    expect((await g.admin.agents.get(p.id, agent.id)).enabled).toBe(true);
    await g.publish("after the probes");
    await g.synced(p.id, issued.id);
    expect(await storedKey(p.id, issued.id)).toMatchObject({ status: "active" });
    expect((await chat()).status).toBe(200);
  }, 60_000);
});
