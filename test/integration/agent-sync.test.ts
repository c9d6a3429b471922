/**
 * Cross-cloud agent sync against the three clouds' SDKs, unmodified, on local fakes seeded with
 * thousands of agents across regions and pages, with throttling, server errors, time-outs and malformed
 * records injected: every sync converges to the source, a second one writes nothing, an agent gone at
 * the source becomes `removedAtSource`, what people decided here (lifecycle, enabled, guardrails,
 * edited fields) survives every sync, and the switches stop a sync without touching any agent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { overrideServices } from "../../src/app/services.js";
import type { ApiError } from "../../src/client/index.js";
import type { Agent, AgentSummary, Connection, SyncRun } from "../../src/pillars/agents/schema.js";
import { createAgentSource } from "../../src/pillars/agents/sources/index.js";
import type { SourceTarget } from "../../src/pillars/agents/sources/source.js";
import { startBedrockFake, startFoundryFake, startVertexFake, type BedrockFake, type FoundryFake, type VertexFake } from "../../src/local-backends/agent-clouds/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../../src/cli/main.js";
import { Governed } from "../support/governed.js";
import { until } from "../support/until.js";

const ACCESS_KEY = "AKIAFAKEFAKEFAKE0001";
let g: Governed;
let bedrock: BedrockFake;
let vertex: VertexFake;
let foundry: FoundryFake;
let project: Project;
const con: Record<"bedrock" | "vertex" | "foundry", Connection> = {} as never;

beforeAll(async () => {
  g = await Governed.start("t-agent-sync");
  [bedrock, vertex, foundry] = await Promise.all([
    startBedrockFake({ seed: "b", regions: { "us-east-1": 420, "eu-west-1": 310 }, accessKeyId: ACCESS_KEY }),
    startVertexFake({ seed: "v", regions: { "us-central1": 330, "europe-west4": 260 } }),
    startFoundryFake({ seed: "f", regions: { eastus: 240, westeurope: 190 } }),
  ]);
  // Foundry's SDK refuses a bearer token over plain HTTP: it reaches its fake in process (the SDK's httpClient option).
  // Short back-offs and time-outs keep the injected faults quick; the SDKs' retry logic is the real one.
  overrideServices({
    pillarSeams: {
      agentSources: (target: SourceTarget) => createAgentSource({ ...target, ...(target.cloud === "foundry" ? { httpClient: foundry.httpClient } : {}), retry: { baseDelayMs: 5, requestTimeoutMs: 1500 } } as SourceTarget),
    },
  });
  project = await g.project("synced agents");
  con.bedrock = await g.admin.connections.create({
    name: "aws",
    projectId: project.id,
    scope: { cloud: "bedrock", accountId: "123456789012", endpoint: bedrock.endpoint },
    regions: ["us-east-1", "eu-west-1"],
    credentials: { kind: "awsAccessKey", accessKeyId: ACCESS_KEY, secretAccessKey: "fake-secret-access-key-value" },
    owner: "platform-team",
  });
  con.vertex = await g.admin.connections.create({
    name: "gcp",
    projectId: project.id,
    scope: { cloud: "vertex", projectId: vertex.projectId, endpoint: `http://${vertex.host}:${vertex.port}` },
    regions: ["us-central1", "europe-west4"],
    credentials: { kind: "accessToken", token: "fake-google-token" },
  });
  con.foundry = await g.admin.connections.create({
    name: "foundry",
    projectId: project.id,
    scope: { cloud: "foundry", projectEndpoints: foundry.projectEndpoints() },
    regions: Object.keys(foundry.projectEndpoints()),
    credentials: { kind: "accessToken", token: "fake-entra-token" },
  });
}, 60_000);

afterAll(async () => {
  overrideServices({});
  await Promise.all([bedrock?.close(), vertex?.close(), foundry?.close()]);
  await g?.stop();
});

async function sync(connection: Connection): Promise<SyncRun> {
  const run = await g.admin.connections.sync(connection.id);
  return until(async () => {
    const r = await g.admin.connections.run(connection.id, run.id);
    return r.status === "running" ? undefined : r;
  }, `sync ${run.id} of ${connection.name}`, 120_000);
}

/** A valid A2A v1.0 card, as a cloud stores it. */
function a2aCard(name: string, description: string, url: string) {
  return {
    name,
    description,
    version: "1.0.0",
    supportedInterfaces: [{ url, protocolBinding: "JSONRPC", protocolVersion: "1.0" }],
    capabilities: {},
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [{ id: "s", name: "Skill", description: "Does it", tags: ["t"] }],
  };
}

async function agentsOf(connection: Connection): Promise<AgentSummary[]> {
  const out: AgentSummary[] = [];
  let token: string | undefined;
  do {
    const page = await g.admin.agents.list(project.id, { connectionId: connection.id, maxPageSize: 100, ...(token ? { continuationToken: token } : {}) });
    out.push(...page.items);
    token = page.continuationToken;
  } while (token);
  return out;
}

/** What the source holds, as the registry should: region → source ids. */
function sourceIds(cloud: "bedrock" | "vertex" | "foundry"): Map<string, Set<string>> {
  const fake = { bedrock, vertex, foundry }[cloud];
  const out = new Map<string, Set<string>>();
  for (const region of fake.state.regions()) {
    const ids = fake.state.list(region).filter((a) => !a.wire || a.name !== "malformed").map((a) => (cloud === "vertex" ? `projects/${vertex.projectId}/locations/${region}/reasoningEngines/${a.id}` : a.id));
    out.set(region, new Set(ids));
  }
  return out;
}

function present(agents: Agent[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const a of agents.filter((x) => x.sync?.state === "present")) {
    const set = out.get(a.provenance!.region) ?? new Set<string>();
    set.add(a.provenance!.sourceId);
    out.set(a.provenance!.region, set);
  }
  return out;
}

async function agentEtags(): Promise<Map<string, string>> {
  const { resources } = await g.t
    .container()
    .items.query<{ id: string; _etag: string }>({ query: "SELECT c.id, c._etag FROM c WHERE c.tenantId = @t AND c.docType = 'agent'", parameters: [{ name: "@t", value: g.tenant }] })
    .fetchAll();
  return new Map(resources.map((r) => [r.id, r._etag]));
}

describe("agent sync from Bedrock, Vertex AI and Foundry", () => {
  it("converges to every source through throttling, 5xx, time-outs and malformed records; a second sync writes nothing", async () => {
    // A record that is not an agent (no name): reported, never stored.
    bedrock.state.add("us-east-1", { name: "malformed", wire: { agentName: undefined } });
    bedrock.state.inject({ type: "throttle" }, { kind: "ListAgents", times: 2 });
    bedrock.state.inject({ type: "error", status: 503 }, { kind: "GetAgent", times: 3 });
    vertex.state.inject({ type: "throttle" }, { times: 2 });
    vertex.state.inject({ type: "delay", ms: 2500 }, { times: 1 });
    foundry.state.inject({ type: "throttle" }, { times: 2 });
    foundry.state.inject({ type: "error", status: 500 }, { times: 2 });

    const runs = await Promise.all([sync(con.bedrock), sync(con.vertex), sync(con.foundry)]);
    for (const run of runs) expect(run.status, JSON.stringify(run.regions)).toBe("completed");
    const [b, v, f] = runs;
    expect(b!.counts).toMatchObject({ discovered: 730, malformed: 1, changed: 0, removedAtSource: 0 });
    expect(b!.malformed).toEqual([expect.objectContaining({ region: "us-east-1" })]);
    expect(v!.counts).toMatchObject({ discovered: 590, malformed: 0 });
    expect(f!.counts).toMatchObject({ discovered: 430, malformed: 0 });
    expect(b!.regions.map((r) => [r.region, r.status])).toEqual([["us-east-1", "completed"], ["eu-west-1", "completed"]]);
    // The faults were served and absorbed by the SDKs' retries.
    for (const fake of [bedrock, vertex, foundry]) expect(fake.stats().faults.throttle).toBeGreaterThanOrEqual(2);

    for (const cloud of ["bedrock", "vertex", "foundry"] as const) {
      const agents = await agentsOf(con[cloud]);
      expect(present(agents), cloud).toEqual(sourceIds(cloud));
      expect(new Set(agents.map((a) => a.id)).size).toBe(agents.length);
    }
    const one = (await agentsOf(con.bedrock)).find((a) => a.provenance!.region === "eu-west-1")!;
    const source = bedrock.state.get("eu-west-1", one.provenance!.sourceId)!;
    expect(one).toMatchObject({
      origin: "synced",
      name: source.name,
      owner: "platform-team",
      lifecycle: { state: "draft" },
      enabled: true,
      provenance: { connectionId: con.bedrock.id, cloud: "bedrock", account: "123456789012", region: "eu-west-1", sourceVersion: source.version, sourceStatus: source.status },
      // Its tags (ListTagsForResource) are its labels.
      source: { model: source.model, labels: source.labels },
      sync: { state: "present", conflicts: [] },
    });
    expect(one.provenance!.lastSeenAt).toBeDefined();

    await until(async () => {
      await g.t.relay();
      return g.t.events().filter((e) => e.type === "aigov.agent.discovered.v1").length >= 730 + 590 + 430 ? true : undefined;
    }, "a discovered event per agent");

    // Cloud credentials are write-only: in no document, audit record or event, and in no response.
    const { resources } = await g.t.container().items.query({ query: "SELECT * FROM c WHERE c.tenantId = @t", parameters: [{ name: "@t", value: g.tenant }] }).fetchAll();
    const seen = JSON.stringify(resources) + JSON.stringify(g.t.events()) + JSON.stringify(await g.admin.connections.list());
    for (const secret of ["fake-secret-access-key-value", "fake-google-token", "fake-entra-token"]) expect(seen).not.toContain(secret);
    expect((await g.admin.connections.get(con.bedrock.id)).credentials).toEqual({ kind: "awsAccessKey", accessKeyId: ACCESS_KEY, secretRef: expect.objectContaining({ name: expect.any(String) }) });

    const before = await agentEtags();
    const again = await Promise.all([sync(con.bedrock), sync(con.vertex), sync(con.foundry)]);
    for (const run of again) expect(run.counts).toMatchObject({ discovered: 0, changed: 0, returned: 0, removedAtSource: 0 });
    expect(again.map((r) => r.counts.unchanged)).toEqual([730, 590, 430]);
    expect(await agentEtags()).toEqual(before);
  }, 240_000);

  it("source changes arrive; gone agents become removedAtSource; lifecycle, enabled, guardrails and local edits survive; conflicts are reported", async () => {
    const agents = (await agentsOf(con.bedrock)).filter((a) => a.provenance!.region === "us-east-1").sort((a, b) => (a.id < b.id ? -1 : 1));
    const [blocked, disabled, guarded, edited, gone, broken] = agents;
    await g.admin.agents.transition(project.id, blocked!.id, { to: "blocked", reason: "under review" });
    await g.admin.agents.update(project.id, disabled!.id, { enabled: false }, (await g.admin.agents.get(project.id, disabled!.id)).etag);
    const guardrails = { models: [], tools: [], limits: { callsPerMinute: 7 }, contentSafety: "high" as const, dataClasses: ["public" as const] };
    await g.admin.agents.update(project.id, guarded!.id, { guardrails, owner: "risk-team" }, (await g.admin.agents.get(project.id, guarded!.id)).etag);
    await g.admin.agents.update(project.id, edited!.id, { description: "Described here" }, (await g.admin.agents.get(project.id, edited!.id)).etag);

    const src = (a: Agent) => a.provenance!.sourceId;
    bedrock.state.update("us-east-1", src(blocked!), { description: "new at the source" });
    bedrock.state.update("us-east-1", src(disabled!), { description: "also new" });
    bedrock.state.update("us-east-1", src(guarded!), { name: "renamed-at-source" });
    bedrock.state.update("us-east-1", src(edited!), { description: "Described at the source" });
    const removed = bedrock.state.get("us-east-1", src(gone!))!;
    bedrock.state.remove("us-east-1", src(gone!));
    // Still listed, but now a record that is not an agent: reported, not taken, and not "removed".
    bedrock.state.update("us-east-1", src(broken!), { wire: { agentName: undefined } });

    const run = await sync(con.bedrock);
    expect(run.status).toBe("completed");
    expect(run.counts).toMatchObject({ changed: 4, removedAtSource: 1, discovered: 0, conflicts: 1 });
    expect(run.conflicts).toEqual([{ agentId: edited!.id, field: "description" }]);
    expect(run.malformed.map((m) => m.sourceId)).toContain(src(broken!));
    expect(await g.admin.agents.get(project.id, broken!.id)).toMatchObject({ name: broken!.name, sync: { state: "present" } });

    const after = async (a: Agent) => g.admin.agents.get(project.id, a.id);
    expect(await after(blocked!)).toMatchObject({ description: "new at the source", lifecycle: { state: "blocked", blockedFrom: "draft", reason: "under review" } });
    expect(await after(disabled!)).toMatchObject({ description: "also new", enabled: false });
    expect(await after(guarded!)).toMatchObject({ name: "renamed-at-source", owner: "risk-team", guardrails });
    const conflicted = await after(edited!);
    expect(conflicted.description).toBe("Described here");
    expect(conflicted.sync!.conflicts).toEqual([expect.objectContaining({ field: "description", localValue: "Described here", sourceValue: "Described at the source" })]);
    const gone1 = await after(gone!);
    expect(gone1.sync!.state).toBe("removedAtSource");
    expect(gone1.provenance!.removedAtSourceAt).toBeDefined();
    expect(gone1.provenance!.lastSeenAt).toBeUndefined();
    await until(async () => {
      await g.t.relay();
      return g.t.events().some((e) => e.type === "aigov.agent.removedAtSource.v1" && (e.data as { agentId?: string }).agentId === gone!.id) ? true : undefined;
    }, "the removedAtSource event");

    // Back at the source: present again, the same agent (its id derives from the source).
    bedrock.state.put("us-east-1", removed);
    const back = await sync(con.bedrock);
    expect(back.counts).toMatchObject({ returned: 1, removedAtSource: 0, discovered: 0 });
    expect((await after(gone!)).sync!.state).toBe("present");
  }, 120_000);

  it("switched off for one connection, a project or the tenant: no agent changes, the others sync on; a failing connection fails alone", async () => {
    const vertexBefore = await agentsOf(con.vertex);
    const region = "us-central1";
    const victim = vertexBefore.find((a) => a.provenance!.region === region)!;
    vertex.state.remove(region, victim.provenance!.sourceId.split("/").pop()!);
    await g.admin.connections.update(con.vertex.id, { enabled: false }, (await g.admin.connections.get(con.vertex.id)).etag);
    bedrock.state.add("eu-west-1", { name: "new-agent" });
    // Foundry's eastus refuses the credentials: that region fails, the others do not.
    foundry.state.inject({ type: "deny", status: 403 }, { region: "eastus", times: 1000 });

    const [b, v, f] = await Promise.all([sync(con.bedrock), sync(con.vertex), sync(con.foundry)]);
    expect([v.status, v.skippedBecause]).toEqual(["skipped", "connection_disabled"]);
    expect((await g.admin.agents.get(project.id, victim.id)).sync!.state).toBe("present");
    expect(b).toMatchObject({ status: "completed", counts: { discovered: 1 } });
    expect(f.status).toBe("partial");
    expect(f.regions.find((r) => r.region === "eastus")).toMatchObject({ status: "failed", error: { kind: "refused" } });
    // A failed listing never marks anything removed.
    expect((await agentsOf(con.foundry)).filter((a) => a.sync?.state === "removedAtSource")).toEqual([]);

    await g.admin.connections.update(con.vertex.id, { enabled: true }, (await g.admin.connections.get(con.vertex.id)).etag);
    await g.admin.agents.putSettings(project.id, { syncEnabled: false }, "initial");
    expect(await sync(con.vertex)).toMatchObject({ status: "skipped", skippedBecause: "project_sync_disabled" });
    const settings = await g.admin.agents.getSettings(project.id);
    await g.admin.agents.putSettings(project.id, { syncEnabled: true }, settings.etag);
    await g.admin.connections.putSettings({ syncEnabled: false }, "initial");
    expect(await sync(con.vertex)).toMatchObject({ status: "skipped", skippedBecause: "tenant_sync_disabled" });
    expect((await g.admin.agents.get(project.id, victim.id)).sync!.state).toBe("present");
    await g.admin.connections.putSettings({ syncEnabled: true }, (await g.admin.connections.getSettings()).etag);
    const on = await sync(con.vertex);
    expect(on.counts.removedAtSource).toBe(1);
    expect((await g.admin.agents.get(project.id, victim.id)).sync!.state).toBe("removedAtSource");
  }, 120_000);

  it("cards a cloud stores are checked: a valid one is kept normalised, a broken one is recorded with its findings and no card", async () => {
    const card = a2aCard("Carded", "An agent with a card", "https://carded.example.com/a2a");
    const good = foundry.state.add("westeurope", { name: "carded", card });
    const bad = foundry.state.add("westeurope", { name: "broken-card", card: { ...card, supportedInterfaces: [{ url: "not a url", protocolBinding: "JSONRPC", protocolVersion: "1.0" }] } });
    const run = await sync(con.foundry);
    expect(run.counts.discovered).toBeGreaterThanOrEqual(2);
    const agents = await agentsOf(con.foundry);
    const listed = agents.find((a) => a.provenance!.sourceId === good.id)!;
    // A list carries what was checked and found, not the card: GET the agent for it.
    expect(listed.card).toMatchObject({ origin: "cloud", version: "1.0", valid: true, trust: "unsigned" });
    expect(listed.card).not.toHaveProperty("card");
    expect(listed.card).not.toHaveProperty("document");
    const ok = await g.admin.agents.get(project.id, listed.id);
    expect(ok.card).toMatchObject({ origin: "cloud", version: "1.0", valid: true, hash: listed.card!.hash, card: { name: "Carded", interfaces: [{ url: "https://carded.example.com/a2a", binding: "JSONRPC" }] } });
    const broken = agents.find((a) => a.provenance!.sourceId === bad.id)!;
    expect(broken.card).toMatchObject({ origin: "cloud", valid: false });
    expect(broken.card).not.toHaveProperty("card");
    expect(broken.card!.findings.some((x) => x.severity === "error")).toBe(true);
    const found = await g.admin.catalog.search({ q: "carded", kind: "agents" });
    expect(found.items.map((i) => i.id)).toContain(ok.id);

    // A person sets the card here: it is theirs, as an edited name is. The cloud's later card does not
    // replace it; the change is a conflict, recorded with both cards' hashes.
    const mine = { ...card, name: "Carded here", description: "The card the team reviewed" };
    const edited = await g.admin.agents.update(ok.projectId, ok.id, { card: { card: mine } }, ok.etag);
    expect(edited.card).toMatchObject({ origin: "supplied", card: { name: "Carded here" } });
    foundry.state.update("westeurope", good.id, { card: { ...card, description: "Changed at the source" } });
    const after = await sync(con.foundry);
    expect(after.conflicts).toContainEqual({ agentId: ok.id, field: "card" });
    const kept = await g.admin.agents.get(project.id, ok.id);
    expect(kept.card).toMatchObject({ origin: "supplied", hash: edited.card!.hash, card: { name: "Carded here" } });
    expect(kept.sync!.conflicts).toEqual([expect.objectContaining({ field: "card", localValue: edited.card!.hash, sourceValue: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown })]);
    // Unchanged at the source since: the next run reports no new conflict for it.
    expect((await sync(con.foundry)).conflicts).not.toContainEqual({ agentId: ok.id, field: "card" });
  }, 120_000);

  it("a card changed at the cloud is staged: the gateway serves the published card until a person publishes the new one", async () => {
    const card = a2aCard("Served card", "First words", "https://served-card.example.com/a2a");
    const source = foundry.state.add("westeurope", { name: "served-card", card });
    await sync(con.foundry);
    const found = (await agentsOf(con.foundry)).find((a) => a.provenance!.sourceId === source.id)!;
    await g.admin.agents.update(project.id, found.id, { guardrails: { dataClasses: ["internal"] } }, found.etag);
    await g.admin.agents.transition(project.id, found.id, { to: "active" });
    await g.publish("a synced agent with a cloud card, active");
    const dev = await g.as("sync-card-dev", ["Developer"]);
    const k = (await g.key(dev, project.id, { name: "card reader", scopes: { agents: [found.id] } })).key;
    const cardAtGateway = async () => {
      const res = await fetch(`${g.t.gateway.url}/${g.names.agentApiPath(project.id, found.id)}/.well-known/agent-card.json`, { headers: { "api-key": k } });
      expect(res.status).toBe(200);
      return (await res.json()) as { description: string };
    };
    expect((await cardAtGateway()).description).toBe("First words");

    // The cloud's new card is recorded, and waits for a person: what the gateway serves changes only when someone publishes it.
    foundry.state.update("westeurope", source.id, { card: { ...card, description: "Changed at the source" } });
    const run = await sync(con.foundry);
    expect(run.counts.changed).toBeGreaterThanOrEqual(1);
    expect((await g.admin.agents.get(project.id, found.id)).card).toMatchObject({ origin: "cloud", card: { description: "Changed at the source" } });
    await g.settle();
    expect((await cardAtGateway()).description).toBe("First words");
    expect((await g.admin.policy.diff()).changes.filter((c) => c.ref.includes(found.id)).length).toBeGreaterThan(0);
    await g.publish("the synced card, reviewed");
    expect((await cardAtGateway()).description).toBe("Changed at the source");
    expect((await g.admin.policy.diff()).changes.filter((c) => c.ref.includes(found.id))).toEqual([]);
  }, 120_000);

  it("the CLI: connections sync --wait prints the run's report; agents list, transition and the catalog", async () => {
    const env = { AIGOV_CONFIG: join(mkdtempSync(join(tmpdir(), "aigov-cli-agents-")), "config.json") };
    const aigov = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(["--endpoint", g.t.url, ...args], { out: (x) => out.push(x), err: (x) => err.push(x), env });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    expect((await aigov("login", "--dev", "--tenant", g.tenant, "--user", "cli-admin", "--roles", "TenantAdmin")).code).toBe(0);
    bedrock.state.add("eu-west-1", { name: "cli-agent" });
    const synced = await aigov("-o", "json", "connections", "sync", con.bedrock.id, "--wait");
    expect(synced.code, synced.err).toBe(0);
    const report = JSON.parse(synced.out) as SyncRun;
    expect(report).toMatchObject({ status: "completed", counts: { discovered: 1 } });
    const listed = await aigov("-o", "json", "agents", "list", project.id, "--connection", con.bedrock.id, "--max-page-size", "100");
    const agent = (JSON.parse(listed.out) as Agent[]).find((a) => a.name === "cli-agent") ?? (await agentsOf(con.bedrock)).find((a) => a.name === "cli-agent")!;
    expect(agent).toBeDefined();
    const moved = await aigov("-o", "json", "agents", "transition", project.id, agent.id, "active");
    expect(JSON.parse(moved.out)).toMatchObject({ lifecycle: { state: "active" } });
    const found = await aigov("-o", "json", "catalog", "search", "cli-agent", "--kind", "agents");
    expect((JSON.parse(found.out) as { id: string }[]).map((i) => i.id)).toContain(agent.id);
    const runs = await aigov("connections", "runs", con.bedrock.id);
    expect(runs.out).toContain(report.id);
  });

  it("a connection cannot be pointed at another account: its next run would take over the agents of the same ids", async () => {
    const endpoints = foundry.projectEndpoints();
    const [region] = Object.keys(endpoints);
    const elsewhere = { ...endpoints, [region!]: endpoints[region!]!.replace(/\/api\/projects\/[^/]+/, "/api/projects/another-project") };
    const current = await g.admin.connections.get(con.foundry.id);
    const refused = await g.admin.connections.update(con.foundry.id, { scope: { cloud: "foundry", projectEndpoints: elsewhere } }, current.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect([refused?.status, refused?.problem?.errors?.map((e) => e.field)]).toEqual([400, [`body.scope.projectEndpoints.${region}`]]);
    const aws = await g.admin.connections.get(con.bedrock.id);
    const moved = await g.admin.connections.update(con.bedrock.id, { scope: { cloud: "bedrock", accountId: "210987654321", endpoint: bedrock.endpoint } }, aws.etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect(moved?.problem?.errors?.map((e) => e.field)).toEqual(["body.scope.accountId"]);
    expect((await g.admin.connections.get(con.foundry.id)).etag).toBe(current.etag);
    // Nor in two steps: a region dropped, then added back with another project.
    const others = Object.fromEntries(Object.entries(endpoints).filter(([r]) => r !== region));
    if (Object.keys(others).length) {
      const dropped = await g.admin.connections.update(con.foundry.id, { scope: { cloud: "foundry", projectEndpoints: others }, regions: Object.keys(others) }, current.etag);
      const back = await g.admin.connections.update(con.foundry.id, { scope: { cloud: "foundry", projectEndpoints: elsewhere }, regions: Object.keys(elsewhere) }, dropped.etag).then(() => undefined, (e: unknown) => e as ApiError);
      expect(back?.problem?.errors?.map((e) => e.field)).toEqual([`body.scope.projectEndpoints.${region}`]);
      const restored = await g.admin.connections.update(con.foundry.id, { scope: { cloud: "foundry", projectEndpoints: endpoints }, regions: Object.keys(endpoints) }, dropped.etag);
      expect(restored.scope).toEqual(current.scope);
      expect(restored).not.toHaveProperty("regionAccounts");
    }
  });

  it("a project that a connection syncs into cannot be deleted (its runs would write agents nobody can see); without it, it can", async () => {
    const target = await g.project("sync target");
    const connection = await g.admin.connections.create({
      name: "into-target",
      projectId: target.id,
      scope: { cloud: "vertex", projectId: vertex.projectId, endpoint: `http://${vertex.host}:${vertex.port}` },
      regions: ["us-central1"],
      credentials: { kind: "accessToken", token: "fake-google-token" },
    });
    const refused = await g.admin.projects.delete(target.id, (await g.admin.projects.get(target.id)).etag).then(() => undefined, (e: unknown) => e as ApiError);
    expect([refused?.status, refused?.problem?.reason, refused?.problem?.detail]).toEqual([409, "project_has_dependents", expect.stringContaining("1 agent connections")]);
    await g.admin.connections.delete(connection.id, (await g.admin.connections.get(connection.id)).etag);
    await g.admin.projects.delete(target.id, (await g.admin.projects.get(target.id)).etag);
    expect((await g.admin.projects.get(target.id).then(() => 200, (e: unknown) => (e as ApiError).status))).toBe(404);
  });

  it("agents a sync discovers once its project's delete has begun are withdrawn, and the run stops: nothing outlives its project", async () => {
    const target = await g.project("deleted under a sync");
    const connection = await g.admin.connections.create({
      name: "into-doomed",
      projectId: target.id,
      scope: { cloud: "vertex", projectId: vertex.projectId, endpoint: `http://${vertex.host}:${vertex.port}` },
      regions: ["us-central1"],
      credentials: { kind: "accessToken", token: "fake-google-token" },
    });
    // The run read its connection before the delete began (here: the delete's mark in the project's partition,
    // written as projects/service.ts delete() writes it, after the run started listing).
    const container = g.t.container();
    await container.items.upsert({ id: `deleting.${target.id}`, tenantId: g.tenant, scopeId: target.id, docType: "projectDeletion", since: new Date().toISOString() });
    const run = await sync(connection);
    expect(run.regions.map((r) => [r.region, r.status, r.error?.message])).toEqual([["us-central1", "failed", "project_deleted"]]);
    const { resources } = await container.items.query<{ id: string }>({ query: "SELECT c.id FROM c WHERE c.tenantId = @t AND c.scopeId = @p AND c.docType = 'agent'", parameters: [{ name: "@t", value: g.tenant }, { name: "@p", value: target.id }] }).fetchAll();
    expect(resources).toEqual([]);
    await container.item(`deleting.${target.id}`, [g.tenant, target.id]).delete();
    await g.admin.connections.delete(connection.id, (await g.admin.connections.get(connection.id)).etag);
    await g.admin.projects.delete(target.id, (await g.admin.projects.get(target.id)).etag);
  });

  it("a run whose orchestration was lost is driven again by the schedule's sweep and completes", async () => {
    // Slow answers: the run is still listing when its orchestration is lost.
    bedrock.state.setRandomFaults({ delay: 1, delayMs: 300, seed: 3 });
    const run = await g.admin.connections.sync(con.bedrock.id);
    const durable = (path: string, init: RequestInit = {}) => fetch(`${g.t.url}/runtime/webhooks/durabletask${path}`, { ...init, headers: { "x-functions-key": g.t.app.durableKey } });
    await until(async () => ((await durable(`/instances/agent-sync-${run.id}`)).status !== 404 ? true : undefined), "the run's orchestration exists");
    expect((await durable(`/instances/agent-sync-${run.id}/terminate?reason=lost`, { method: "POST" })).status).toBe(202);
    await until(async () => (((await (await durable(`/instances/agent-sync-${run.id}`)).json()) as { runtimeStatus: string }).runtimeStatus === "Terminated" ? true : undefined), "terminated");
    expect((await g.admin.connections.run(con.bedrock.id, run.id)).status).toBe("running");
    bedrock.state.setRandomFaults(undefined);
    await g.t.app.host.invokeTimer("agentSyncSchedule");
    const done = await until(async () => {
      const r = await g.admin.connections.run(con.bedrock.id, run.id);
      return r.status === "running" ? undefined : r;
    }, "the restarted run", 120_000);
    expect(done.status).toBe("completed");
    expect(present(await agentsOf(con.bedrock))).toEqual(sourceIds("bedrock"));
  }, 180_000);
});
