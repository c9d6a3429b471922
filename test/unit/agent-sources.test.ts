import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  AgentCloudState,
  type BedrockFake,
  type FakeAgent,
  type FoundryFake,
  type VertexFake,
  engineEtag,
  startBedrockFake,
  startFoundryFake,
  startVertexFake,
} from "../../src/local-backends/agent-clouds/index.js";
import { FEDERATION_AUDIENCE } from "../../src/pillars/agents/federation.js";
import { createBedrockSource } from "../../src/pillars/agents/sources/bedrock.js";
import { createFoundrySource } from "../../src/pillars/agents/sources/foundry.js";
import { createAgentSource } from "../../src/pillars/agents/sources/index.js";
import { type AgentSource, type Cloud, reportableMessage, type SourceAgent, SourceError, type SourcePage, type SourceTarget } from "../../src/pillars/agents/sources/source.js";
import { createVertexSource } from "../../src/pillars/agents/sources/vertex.js";

/**
 * The three adapters, each driving its cloud's real SDK (unmodified) against the local fake of that cloud.
 * Back-off is shortened to a millisecond through the target's `retry` (the SDKs wait up to seconds between
 * attempts); the retries themselves are the SDKs' own, which the fakes' request counters show.
 */

const ATTEMPTS = 3;
const FAST = { maxAttempts: ATTEMPTS, baseDelayMs: 1, requestTimeoutMs: 5_000 };
/** Regions and their agent counts: with PAGE, three pages each. */
const REGIONS: Record<string, number> = { "region-a": 11, "region-b": 9 };
const PAGE = 4;

type Retry = NonNullable<Extract<SourceTarget, { cloud: "bedrock" }>["retry"]>;

interface Harness {
  cloud: Cloud;
  state: AgentCloudState;
  /** The list request's kind in the fake's counters. */
  listKind: string;
  /** SourceError.code of a request that timed out. */
  timeoutCode: string;
  source(options?: { retry?: Retry; badCredentials?: boolean }): AgentSource;
  expected(agent: FakeAgent, region: string): SourceAgent;
  /** Wire patches that make a record malformed, and the field each breaks. */
  malformed: { wire?: Record<string, unknown>; wireDetail?: Record<string, unknown>; breaks: string }[];
  close(): Promise<void>;
}

async function listAll(source: AgentSource, region: string, pageSize = PAGE): Promise<{ agents: SourceAgent[]; pages: SourcePage[] }> {
  const pages: SourcePage[] = [];
  let cursor: string | undefined;
  do {
    const page = await source.listPage(region, cursor, { pageSize });
    pages.push(page);
    cursor = page.next;
  } while (cursor !== undefined && pages.length < 100);
  return { agents: pages.flatMap((p) => p.agents), pages };
}

/** Empty labels are no labels: the adapters leave the field out. */
const labelsOf = (a: FakeAgent) => (Object.keys(a.labels).length ? a.labels : undefined);

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

const bySourceId = (a: SourceAgent, b: SourceAgent) => (a.sourceId < b.sourceId ? -1 : a.sourceId > b.sourceId ? 1 : 0);

async function failure(promise: Promise<unknown>): Promise<SourceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  return error as SourceError;
}

async function bedrockHarness(): Promise<Harness & { fake: BedrockFake }> {
  const state = new AgentCloudState("bedrock", { seed: "bedrock-test", regions: REGIONS, runtimesPerRegion: 5 });
  // Aliases and action groups come a page of one or two at a time, so following their pages is exercised.
  const fake = await startBedrockFake({ state, accessKeyId: "AKIDTEST", pageCaps: { ListAgentAliases: 1, ListAgentActionGroups: 2 } });
  const sources: AgentSource[] = [];
  return {
    cloud: "bedrock",
    fake,
    state,
    listKind: "ListAgents",
    timeoutCode: "ETIMEDOUT",
    source: ({ retry = FAST, badCredentials = false } = {}) => {
      const s = createBedrockSource({
        cloud: "bedrock",
        accountId: "123456789012",
        credentials: { accessKeyId: badCredentials ? "AKIDOTHER" : "AKIDTEST", secretAccessKey: "secret" },
        endpoint: fake.endpoint,
        retry,
      });
      sources.push(s);
      return s;
    },
    expected: (a) => ({
      sourceId: a.id,
      name: a.name,
      description: a.description,
      sourceVersion: a.version,
      sourceStatus: a.status,
      updatedAt: a.updatedAt,
      model: a.model,
      labels: labelsOf(a),
      aliases: a.aliases.map((x) => ({ id: x.id, name: x.name, status: x.status, agentVersion: x.agentVersion })),
      actions: a.actions.map((g) => ({ id: g.id, name: g.name, state: g.state })),
    }),
    malformed: [
      { wire: { agentName: undefined }, breaks: "agentName is missing" },
      { wire: { agentName: 42 }, breaks: "agentName is number" },
      // The SDK itself refuses a GetAgent answer with an epoch number for a date: that agent alone is malformed.
      { wireDetail: { updatedAt: 1767225600 }, breaks: "RFC-3339" },
    ],
    close: async () => {
      for (const s of sources) await s.close?.();
      await fake.close();
    },
  };
}

async function vertexHarness(): Promise<Harness & { fake: VertexFake }> {
  const state = new AgentCloudState("vertex", { seed: "vertex-test", regions: REGIONS });
  const fake = await startVertexFake({ state, token: "vertex-token", projectId: "proj-1" });
  const sources: AgentSource[] = [];
  return {
    cloud: "vertex",
    fake,
    state,
    listKind: "ListReasoningEngines",
    timeoutCode: "DEADLINE_EXCEEDED",
    source: ({ retry = FAST, badCredentials = false } = {}) => {
      const s = createVertexSource({
        cloud: "vertex",
        projectId: "proj-1",
        credentials: { kind: "accessToken", token: badCredentials ? "stolen" : "vertex-token" },
        endpoint: { host: fake.host, port: fake.port },
        retry,
      });
      sources.push(s);
      return s;
    },
    expected: (a, region) => ({
      sourceId: `projects/proj-1/locations/${region}/reasoningEngines/${a.id}`,
      name: a.name,
      description: a.description,
      sourceVersion: engineEtag(a),
      updatedAt: a.updatedAt,
      labels: labelsOf(a),
      actions: a.actions.map((m) => ({ id: m.name, name: m.name })),
    }),
    malformed: [
      // protobuf JSON decoding turns a missing string into "": still no name.
      { wire: { displayName: undefined }, breaks: "displayName is missing" },
      { wire: { name: "projects/someone-else/locations/x/reasoningEngines/1" }, breaks: "is not a reasoning engine of" },
    ],
    close: async () => {
      for (const s of sources) await s.close?.();
      await fake.close();
    },
  };
}

async function foundryHarness(): Promise<Harness & { fake: FoundryFake }> {
  const state = new AgentCloudState("foundry", { seed: "foundry-test", regions: REGIONS });
  const fake = await startFoundryFake({ state, token: "entra-token" });
  const endpoints = fake.projectEndpoints();
  return {
    cloud: "foundry",
    fake,
    state,
    listKind: "ListAgents",
    timeoutCode: "Timeout",
    source: ({ retry = FAST, badCredentials = false } = {}) =>
      createFoundrySource({
        cloud: "foundry",
        projectEndpoints: { ...endpoints, "region-malformed": fake.projectEndpoint("region-malformed"), "region-changes": fake.projectEndpoint("region-changes") },
        credentials: { kind: "staticToken", token: badCredentials ? "expired" : "entra-token" },
        httpClient: fake.httpClient,
        retry,
      }),
    expected: (a) => ({
      sourceId: a.id,
      name: a.name,
      description: a.description,
      sourceVersion: a.version,
      sourceStatus: a.status,
      updatedAt: a.updatedAt,
      model: a.model,
      labels: labelsOf(a),
      actions: a.actions.map((t) => ({ id: t.id, name: t.name })),
      card: a.card,
    }),
    malformed: [
      { wire: { name: undefined }, breaks: "name is missing" },
      { wire: { name: 42 }, breaks: "name is number" },
      // The SDK's own deserialiser throws on this one; the page is still read record by record.
      { wire: { versions: undefined }, breaks: "versions.latest is missing" },
    ],
    close: () => fake.close(),
  };
}

describe.each([
  ["bedrock", bedrockHarness],
  ["vertex", vertexHarness],
  ["foundry", foundryHarness],
] as const)("%s source through the real SDK", (_, makeHarness) => {
  let h: Harness;
  let source: AgentSource;

  beforeAll(async () => {
    h = await makeHarness();
    source = h.source();
  });
  afterAll(async () => {
    await source.close?.();
    await h.close();
  });
  beforeEach(() => h.state.resetStats());

  it("pages through every region, three pages or more each, and gets exactly the fake's agents", async () => {
    for (const region of Object.keys(REGIONS)) {
      const { agents, pages } = await listAll(source, region);
      expect(pages.length).toBeGreaterThanOrEqual(3);
      expect(pages.every((p) => p.agents.length <= PAGE && p.malformed.length === 0)).toBe(true);
      expect(agents.sort(bySourceId)).toEqual(h.state.list(region).map((a) => h.expected(a, region)).sort(bySourceId));
      // One list request per page: nothing follows pages behind the adapter's back.
      expect(h.state.stats().byKindRegion[`${h.listKind} ${region}`]).toBe(pages.length);
    }
  });

  it("sees the cloud change between syncs: an edit, a deletion, a new agent", async () => {
    const region = "region-changes";
    h.state.seed(region, 5);
    const before = await listAll(source, region);
    const [edited, removed] = h.state.list(region);
    h.state.update(region, edited!.id, { description: "edited" });
    h.state.remove(region, removed!.id);
    h.state.add(region, { name: "newcomer", description: "added later", model: h.cloud === "vertex" ? undefined : "model-x" });
    const after = await listAll(source, region);
    expect(after.agents.sort(bySourceId)).toEqual(h.state.list(region).map((a) => h.expected(a, region)).sort(bySourceId));
    expect(after.agents.find((a) => a.sourceId === before.agents.find((b) => b.name === edited!.name)?.sourceId)).toMatchObject({
      description: "edited",
    });
    expect(after.agents.some((a) => a.name === removed!.name)).toBe(false);
    expect(after.agents.some((a) => a.name === "newcomer")).toBe(true);
  });

  it("absorbs throttling and a 5xx with the SDK's own retries: the page arrives, the fake counts the retries", async () => {
    const region = "region-a";
    h.state.inject({ type: "throttle" }, { kind: h.listKind, region, times: 1 });
    h.state.inject({ type: "error", status: 503 }, { kind: h.listKind, region, times: 1 });
    const page = await source.listPage(region, undefined, { pageSize: PAGE });
    expect(page.agents).toHaveLength(PAGE);
    const stats = h.state.stats();
    expect(stats.byKindRegion[`${h.listKind} ${region}`]).toBe(3);
    expect(stats.byStatus).toMatchObject({ "429": 1, "503": 1 });
  });

  it("reports throttling that outlasts the retries as throttled, after exactly maxAttempts requests", async () => {
    h.state.inject({ type: "throttle" }, { kind: h.listKind, times: ATTEMPTS });
    const error = await failure(source.listPage("region-a", undefined, { pageSize: PAGE }));
    expect(error.kind).toBe("throttled");
    expect(error.retryable).toBe(true);
    expect(h.state.stats().byKind[h.listKind]).toBe(ATTEMPTS);
  });

  it("reports 5xx that outlasts the retries as unavailable", async () => {
    h.state.inject({ type: "error", status: 503 }, { kind: h.listKind, times: ATTEMPTS });
    const error = await failure(source.listPage("region-a", undefined, { pageSize: PAGE }));
    expect(error.kind).toBe("unavailable");
    expect(h.state.stats().byKind[h.listKind]).toBe(ATTEMPTS);
  });

  it("reports an answer slower than the request time-out as unavailable", async () => {
    const impatient = h.source({ retry: { ...FAST, requestTimeoutMs: 200 } });
    // Were the time-out not enforced, the first attempt would succeed after the delay.
    h.state.inject({ type: "delay", ms: 2_000 }, { kind: h.listKind, times: ATTEMPTS });
    const error = await failure(impatient.listPage("region-a", undefined, { pageSize: PAGE }));
    expect(error).toMatchObject({ kind: "unavailable", code: h.timeoutCode });
    await impatient.close?.();
  });

  it("lists everything under random throttling and 5xx (the benchmark's mode), the SDK retrying each", async () => {
    // Enough attempts that no request runs out of them (0.3^12), and pages of one so there are many requests.
    const patient = h.source({ retry: { ...FAST, maxAttempts: 12 } });
    h.state.setRandomFaults({ throttle: 0.2, error: 0.1, seed: `random-${h.cloud}` });
    try {
      const { agents } = await listAll(patient, "region-b", 1);
      expect(agents.sort(bySourceId)).toEqual(h.state.list("region-b").map((a) => h.expected(a, "region-b")).sort(bySourceId));
      const { faults, total } = h.state.stats();
      expect(faults.throttle + faults.error).toBeGreaterThan(0);
      expect(total).toBeGreaterThan(faults.throttle + faults.error);
    } finally {
      h.state.setRandomFaults(undefined);
      await patient.close?.();
    }
  });

  it("puts malformed records in malformed, never in agents, and keeps the rest of the page", async () => {
    const region = "region-malformed";
    const good = h.state.seed(region, 2);
    const bad = h.malformed.map(({ breaks: _, ...patch }, i) => h.state.add(region, { name: `broken-${i}`, model: "m", ...patch }));
    const { agents, pages } = await listAll(source, region, 10);
    expect(agents.sort(bySourceId)).toEqual(good.map((a) => h.expected(a, region)).sort(bySourceId));
    const malformed = pages.flatMap((p) => p.malformed);
    expect(malformed).toHaveLength(bad.length);
    for (const m of h.malformed) expect(malformed.some((r) => r.reason.includes(m.breaks))).toBe(true);
  });

  it("refuses bad credentials and a denied caller (403), without retrying", async () => {
    const stranger = h.source({ badCredentials: true });
    expect((await failure(stranger.listPage("region-a", undefined))).kind).toBe("refused");
    await stranger.close?.();
    h.state.resetStats();
    h.state.inject({ type: "deny", status: 403 }, { kind: h.listKind });
    const error = await failure(source.listPage("region-a", undefined));
    expect(error.kind).toBe("refused");
    expect(error.retryable).toBe(false);
    expect(h.state.stats().byKind[h.listKind]).toBe(1);
  });

  it("ends with the caller's abort, not a SourceError, when the signal fires", async () => {
    h.state.inject({ type: "delay", ms: 2_000 }, { kind: h.listKind });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const error = await source.listPage("region-a", undefined, { signal: controller.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).not.toBeInstanceOf(SourceError);
    expect((error as Error).name).toBe("AbortError");
  });

  it("is what createAgentSource builds for its cloud", async () => {
    const target = { bedrock: { cloud: "bedrock", accountId: "1", credentials: { kind: "default" } }, vertex: { cloud: "vertex", projectId: "p", credentials: { kind: "default" } }, foundry: { cloud: "foundry", projectEndpoints: {}, credentials: { kind: "default" } } }[h.cloud] as SourceTarget;
    const built = await createAgentSource(target);
    expect(built.cloud).toBe(h.cloud);
    await built.close?.();
  });
});

describe("bedrock specifics", () => {
  let h: Awaited<ReturnType<typeof bedrockHarness>>;
  beforeAll(async () => {
    h = await bedrockHarness();
  });
  afterAll(() => h.close());
  beforeEach(() => h.state.resetStats());

  it("fetches GetAgent, every alias page and every action-group page of the latest version, per agent", async () => {
    const region = "region-b";
    await listAll(h.source(), region);
    const agents = h.state.list(region);
    const stats = h.state.stats();
    expect(stats.byKindRegion[`GetAgent ${region}`]).toBe(agents.length);
    // Pages of one alias (and an empty page for an agent without): one request per alias, at least one per agent.
    expect(stats.byKindRegion[`ListAgentAliases ${region}`]).toBe(agents.reduce((n, a) => n + Math.max(1, a.aliases.length), 0));
    expect(stats.byKindRegion[`ListAgentActionGroups ${region}`]).toBe(agents.reduce((n, a) => n + Math.max(1, Math.ceil(a.actions.length / 2)), 0));
    expect(stats.byKindRegion[`ListTagsForResource ${region}`]).toBe(agents.length);
  });

  it("reads tags as labels; a role that may not list tags still syncs the agent, unlabelled", async () => {
    const region = "region-a";
    const [first, second] = h.state.list(region);
    h.state.inject({ type: "deny", status: 403 }, { kind: "ListTagsForResource", agentId: first!.id });
    const page = await h.source().listPage(region, undefined, { pageSize: PAGE });
    const byId = new Map(page.agents.map((a) => [a.sourceId, a]));
    expect(byId.get(first!.id)).toBeDefined();
    expect(byId.get(first!.id)!.labels).toBeUndefined();
    expect(byId.get(second!.id)!.labels).toEqual(second!.labels);
    expect(Object.keys(second!.labels).length).toBeGreaterThan(0);
    expect(page.malformed).toEqual([]);
  });

  it("skips an agent deleted between the list and its details", async () => {
    const region = "region-a";
    const [victim] = h.state.list(region);
    const all = h.state.list(region).slice(0, PAGE);
    h.state.beforeNext({ kind: "GetAgent", agentId: victim!.id }, () => h.state.remove(region, victim!.id));
    const page = await h.source().listPage(region, undefined, { pageSize: PAGE });
    expect(page.agents.map((a) => a.sourceId).sort()).toEqual(all.slice(1).map((a) => a.id).sort());
    expect(page.malformed).toEqual([]);
    h.state.put(region, victim!);
  });

  it("continues with AgentCore runtimes after the agents, in the same cursor chain", async () => {
    const withRuntimes = createBedrockSource({
      cloud: "bedrock",
      accountId: "123456789012",
      credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret" },
      endpoint: h.fake.endpoint,
      agentCore: true,
      retry: FAST,
    });
    const region = "region-b";
    const { agents, pages } = await listAll(withRuntimes, region);
    const runtimes = h.state.list(region, "runtime");
    expect(agents.filter((a) => a.sourceId.startsWith("arn:aws:bedrock-agentcore:"))).toEqual(
      runtimes.map((r) => ({
        sourceId: `arn:aws:bedrock-agentcore:${region}:123456789012:runtime/${r.id}`,
        name: r.name,
        description: r.description,
        sourceVersion: r.version,
        sourceStatus: r.status,
        updatedAt: r.updatedAt,
      })),
    );
    expect(agents).toHaveLength(h.state.list(region).length + runtimes.length);
    expect(pages.length).toBeGreaterThanOrEqual(3 + 2);
    expect(h.state.stats().byKindRegion[`ListAgentRuntimes ${region}`]).toBe(2);
    await withRuntimes.close?.();
  });

  it("workload identity federation: assumes the role with the Entra ID token through STS, lists with the temporary credentials; a token for another audience is refused", async () => {
    const roleArn = "arn:aws:iam::123456789012:role/aigov-agent-sync";
    const state = new AgentCloudState("bedrock", { seed: "federated", regions: { "region-f": 7 } });
    const fake = await startBedrockFake({ state, webIdentity: { roleArn, audience: FEDERATION_AUDIENCE } });
    const token = (aud: string) => `${b64({ alg: "RS256", kid: "k" })}.${b64({ aud, iss: "https://login.microsoftonline.com/tid/v2.0", sub: "mi-object-id" })}.sig`;
    try {
      const federated = createBedrockSource({ cloud: "bedrock", accountId: "123456789012", credentials: { kind: "webIdentity", roleArn, sessionName: "aigov-t-fed", token: async () => token(FEDERATION_AUDIENCE) }, endpoint: fake.endpoint, retry: FAST });
      const { agents } = await listAll(federated, "region-f");
      expect(agents.map((a) => a.sourceId).sort()).toEqual(state.list("region-f").map((a) => a.id).sort());
      // One role assumption serves the whole listing (the SDK caches the temporary credentials).
      expect(fake.stsCalls).toEqual([{ roleArn, roleSessionName: "aigov-t-fed", claims: expect.objectContaining({ aud: FEDERATION_AUDIENCE, sub: "mi-object-id" }), granted: true }]);

      // A signature the service rejects: AWS quotes the canonical request back, the session token among the
      // signed headers. The report (stored, evented, returned) keeps the first line only.
      state.inject({ type: "badSignature" }, { kind: "ListAgents" });
      const mismatch = await failure(federated.listPage("region-f", undefined, { pageSize: PAGE }));
      expect([mismatch.kind, mismatch.code]).toEqual(["refused", "InvalidSignatureException"]);
      expect(mismatch.message).toBe(
        "ListAgents: The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
      );

      const wrongAudience = createBedrockSource({ cloud: "bedrock", accountId: "123456789012", credentials: { kind: "webIdentity", roleArn, sessionName: "aigov-t-fed", token: async () => token("api://something-else") }, endpoint: fake.endpoint, retry: FAST });
      const refused = await failure(wrongAudience.listPage("region-f", undefined, { pageSize: PAGE }));
      expect(refused.kind).toBe("refused");
      // A key id STS never issued is refused too.
      const stranger = createBedrockSource({ cloud: "bedrock", accountId: "123456789012", credentials: { accessKeyId: "AKIDSTRANGER0000", secretAccessKey: "x" }, endpoint: fake.endpoint, retry: FAST });
      expect((await failure(stranger.listPage("region-f", undefined, { pageSize: PAGE }))).kind).toBe("refused");
    } finally {
      await fake.close();
    }
  });

  it("refuses a cursor it did not issue", async () => {
    const error = await failure(h.source().listPage("region-a", "not-a-cursor"));
    expect(error).toMatchObject({ kind: "refused", code: "InvalidCursor" });
  });

  it("fails the page, and stops the other detail workers, when a detail call fails for good", async () => {
    h.state.inject({ type: "error", status: 500 }, { kind: "GetAgent", times: 50 });
    const error = await failure(h.source().listPage("region-a", undefined, { pageSize: 10 }));
    expect(error.kind).toBe("unavailable");
    // Eight workers start; once one has failed, the others start nothing new.
    expect(h.state.stats().byKind.GetAgent).toBeLessThanOrEqual(8 * ATTEMPTS);
  });
});

describe("what a source's failure reports", () => {
  it("the first line, credential-looking fragments removed, at most 500 characters", () => {
    expect(reportableMessage("\n  Denied.\nThe Canonical String for this request should have been\n'GET\n/agents/\n\nx-amz-security-token:IQoJb3JpZ2luX2VjE\n'")).toBe("Denied.");
    expect(reportableMessage("failed: x-amz-security-token: IQoJb3JpZ2luX2VjE, then Authorization: Bearer eyJhbGciOi.x.y and ?sig=abc&X-Amz-Signature=0f9e")).toBe(
      "failed: x-amz-security-token: [redacted], then Authorization: Bearer [redacted] and ?sig=[redacted]&X-Amz-Signature=[redacted]",
    );
    expect(reportableMessage("x".repeat(600))).toHaveLength(500);
    expect(new SourceError("refused", "ListAgents: no\nsecret here").message).toBe("ListAgents: no");
  });
});

describe("vertex specifics", () => {
  let h: Awaited<ReturnType<typeof vertexHarness>>;
  beforeAll(async () => {
    h = await vertexHarness();
  });
  afterAll(() => h.close());
  beforeEach(() => h.state.resetStats());

  it("does not retry INTERNAL (not a retry code for List): one request, unavailable", async () => {
    h.state.inject({ type: "error", status: 500 }, { kind: "ListReasoningEngines" });
    const error = await failure(h.source().listPage("region-a", undefined));
    expect(error).toMatchObject({ kind: "unavailable", code: "INTERNAL" });
    expect(h.state.stats().total).toBe(1);
  });

  it("cannot read past a record with a wrong-typed field: the client rejects the whole page (unavailable)", async () => {
    const region = "region-wrong-type";
    h.state.seed(region, 2);
    h.state.add(region, { name: "typed-wrong", wire: { displayName: 42 } });
    const error = await failure(h.source().listPage(region, undefined));
    expect(error.kind).toBe("unavailable");
    expect(error.message).toContain("displayName");
  });

  it("refuses a service account key that is not one, before any request", async () => {
    const broken = createVertexSource({ cloud: "vertex", projectId: "proj-1", credentials: { kind: "serviceAccountKey", json: "{not json" }, retry: FAST });
    expect(await failure(broken.listPage("region-a", undefined))).toMatchObject({ kind: "refused", code: "InvalidCredentials" });
    expect(h.state.stats().total).toBe(0);
  });

  it("refuses a project the caller may not list", async () => {
    const other = createVertexSource({
      cloud: "vertex",
      projectId: "not-mine",
      credentials: { kind: "accessToken", token: "vertex-token" },
      endpoint: { host: h.fake.host, port: h.fake.port },
      retry: FAST,
    });
    expect(await failure(other.listPage("region-a", undefined))).toMatchObject({ kind: "refused", code: "PERMISSION_DENIED" });
    await other.close?.();
  });

  it("workload identity federation: exchanges the Entra ID token at STS for the pool provider, impersonates the service account, lists with its token; another audience is refused", async () => {
    const provider = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/azure-pool/providers/aigov-entra";
    const serviceAccount = "agent-sync@proj-fed.iam.gserviceaccount.com";
    const state = new AgentCloudState("vertex", { seed: "federated", regions: { "region-f": 6 } });
    const fake = await startVertexFake({ state, projectId: "proj-fed", workloadIdentity: { provider, subjectAudience: FEDERATION_AUDIENCE, serviceAccount } });
    const token = (aud: string) => `${b64({ alg: "RS256", kid: "k" })}.${b64({ aud, iss: "https://login.microsoftonline.com/tid/v2.0", sub: "mi-object-id" })}.sig`;
    const source = (aud: string) =>
      createVertexSource({ cloud: "vertex", projectId: "proj-fed", credentials: { kind: "workloadIdentity", provider, serviceAccount, token: async () => token(aud) }, endpoint: { host: fake.host, port: fake.port }, retry: FAST });
    try {
      const federated = source(FEDERATION_AUDIENCE);
      const { agents } = await listAll(federated, "region-f");
      expect(agents.map((a) => a.sourceId).sort()).toEqual(state.list("region-f").map((a) => `projects/proj-fed/locations/region-f/reasoningEngines/${a.id}`).sort());
      expect(fake.stsCalls).toEqual([
        { endpoint: "sts", audience: provider, subjectClaims: expect.objectContaining({ aud: FEDERATION_AUDIENCE, sub: "mi-object-id" }), granted: true },
        { endpoint: "impersonation", audience: serviceAccount, granted: true },
      ]);
      await federated.close?.();
      const wrong = source("api://something-else");
      expect((await failure(wrong.listPage("region-f", undefined))).kind).toBe("refused");
      await wrong.close?.();
    } finally {
      await fake.close();
    }
  });
});

describe("foundry specifics", () => {
  let h: Awaited<ReturnType<typeof foundryHarness>>;
  beforeAll(async () => {
    h = await foundryHarness();
  });
  afterAll(() => h.close());
  beforeEach(() => h.state.resetStats());

  it("refuses a region without a project endpoint, before any request", async () => {
    expect(await failure(h.source().listPage("region-z", undefined))).toMatchObject({ kind: "refused", code: "NoProjectEndpoint" });
    expect(h.state.stats().total).toBe(0);
  });

  it("refuses a project endpoint whose host does not resolve (a typo, not an outage)", async () => {
    const typo = createFoundrySource({
      cloud: "foundry",
      projectEndpoints: { "region-a": "https://region-a.services.ai.azure.invalid/api/projects/p" },
      credentials: { kind: "staticToken", token: "entra-token" },
      httpClient: h.fake.httpClient,
      retry: FAST,
    });
    expect(await failure(typo.listPage("region-a", undefined))).toMatchObject({ kind: "refused", code: "ENOTFOUND" });
  });

  it("keeps agent_card as the cloud gives it (the SDK's model would keep three of its fields)", async () => {
    const { agents } = await listAll(h.source(), "region-a");
    const withCard = h.state.list("region-a").find((a) => a.card !== undefined);
    expect(agents.find((a) => a.sourceId === withCard!.id)?.card).toEqual(withCard!.card);
    expect(withCard!.card).toHaveProperty("url");
  });

  it("serves records the SDK's own models accept, and the SDK's iterator follows has_more (why the adapter takes one page)", async () => {
    const { AIProjectClient } = await import("@azure/ai-projects");
    const client = new AIProjectClient(h.fake.projectEndpoint("region-a"), { getToken: async () => ({ token: "entra-token", expiresOnTimestamp: Date.now() + 60_000 }) }, { httpClient: h.fake.httpClient });
    const names: string[] = [];
    for await (const agent of client.agents.list({ limit: PAGE })) names.push(agent.name);
    expect(names.sort()).toEqual(h.state.list("region-a").map((a) => a.name).sort());
    expect(h.state.stats().byKind.ListAgents).toBe(Math.ceil(REGIONS["region-a"]! / PAGE));
  });

  it("does not retry a request that timed out (the Azure pipeline does not): one request, unavailable", async () => {
    h.state.inject({ type: "delay", ms: 1_000 }, { kind: "ListAgents", times: ATTEMPTS });
    const error = await failure(h.source({ retry: { ...FAST, requestTimeoutMs: 100 } }).listPage("region-a", undefined));
    expect(error.kind).toBe("unavailable");
    expect(h.state.stats().byKind.ListAgents).toBe(1);
  });
});
