import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { ArmGatewayPublisher } from "../../src/adapters/apim/arm-publisher.js";
import { artifactHash, GatewayPublishError, normalizeArtifact } from "../../src/adapters/apim/plan.js";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { artifactRef, type ArtifactRef, type GatewayArtifact, type GatewayPublisher } from "../../src/ports/gateway.js";
import { createArmFake, type ArmFake } from "../support/arm-fake.js";
import { errorOf } from "../support/errors.js";

// ---- a representative desired set, written by hand, deliberately not in publish order ----

const API_POLICY = `<policies>
  <inbound>
    <base />
    <include-fragment fragment-id="frag-token-limit" />
    <choose>
      <when condition="@(context.Request.Headers.Any(h => h.Key == &quot;x-debug&quot;) && context.Api.Id != "")">
        <set-header name="x-aigov-debug" exists-action="override"><value>1</value></set-header>
      </when>
    </choose>
    <set-backend-service backend-id="pool-gpt4o" />
  </inbound>
  <backend><forward-request buffer-request-body="true" /></backend>
  <outbound><base /></outbound>
  <on-error><base /></on-error>
</policies>`;
const API_POLICY_V2 = API_POLICY.replace("x-aigov-debug", "x-aigov-trace");
const GLOBAL_POLICY = `<policies><inbound><set-header name="x-aigov" exists-action="override"><value>{{nv-tenant}}</value></set-header></inbound><backend><forward-request /></backend><outbound /><on-error /></policies>`;
const FRAGMENT = `<fragment><llm-token-limit counter-key="@(context.Subscription.Id)" tokens-per-minute="1000" estimate-prompt-tokens="false" /></fragment>`;
const KV_SECRET = "https://kv-aigov.vault.azure.net/secrets/openai-key";

const breaker = (name: string) => ({
  rules: [
    {
      name,
      failureCondition: { count: 1, interval: "PT1M", statusCodeRanges: [{ min: 429, max: 429 }, { min: 500, max: 503 }], errorReasons: ["Server errors"] },
      tripDuration: "PT1M",
      acceptRetryAfter: true,
    },
  ],
});

const DESIRED: GatewayArtifact[] = [
  { kind: "policy", scope: { type: "api", apiId: "proj-x" }, xml: API_POLICY },
  {
    kind: "backend",
    id: "pool-gpt4o",
    type: "Pool",
    description: "gpt-4o, east first",
    services: [
      { id: "aoai-eastus", priority: 1, weight: 3 },
      { id: "aoai-westus", priority: 2, weight: 1 },
    ],
  },
  { kind: "fragment", id: "frag-token-limit", description: "token limit", xml: FRAGMENT },
  {
    kind: "backend",
    id: "aoai-eastus",
    type: "Single",
    url: "https://aoai-eastus.openai.azure.com/openai",
    circuitBreaker: breaker("eastus-breaker"),
    credentialHeaders: { "api-key": ["{{nv-openai-key}}"] },
  },
  { kind: "policy", scope: { type: "global" }, xml: GLOBAL_POLICY },
  { kind: "namedValue", id: "nv-openai-key", displayName: "nv-openai-key", secret: true, keyVault: { secretIdentifier: KV_SECRET } },
  { kind: "backend", id: "aoai-westus", type: "Single", url: "https://aoai-westus.openai.azure.com/openai", description: "west", circuitBreaker: breaker("westus-breaker") },
  { kind: "namedValue", id: "nv-tenant", displayName: "tenant", secret: false, value: "contoso", tags: ["aigov"] },
];

/** Publish order: named values, single backends, pools, fragments, policies (input order within each). */
const ORDER: ArtifactRef[] = [
  "namedValue:nv-openai-key",
  "namedValue:nv-tenant",
  "backend:aoai-eastus",
  "backend:aoai-westus",
  "backend:pool-gpt4o",
  "fragment:frag-token-limit",
  "policy:api/proj-x",
  "policy:global",
];

/** The exact ARM request bodies (api-version 2024-05-01), by resource path below the service. */
const BODIES: Record<string, unknown> = {
  "namedValues/nv-openai-key": { properties: { displayName: "nv-openai-key", secret: true, keyVault: { secretIdentifier: KV_SECRET } } },
  "namedValues/nv-tenant": { properties: { displayName: "tenant", secret: false, value: "contoso", tags: ["aigov"] } },
  "backends/aoai-eastus": {
    properties: {
      type: "Single",
      url: "https://aoai-eastus.openai.azure.com/openai",
      protocol: "http",
      circuitBreaker: breaker("eastus-breaker"),
      credentials: { header: { "api-key": ["{{nv-openai-key}}"] } },
    },
  },
  "backends/aoai-westus": {
    properties: { type: "Single", url: "https://aoai-westus.openai.azure.com/openai", protocol: "http", description: "west", circuitBreaker: breaker("westus-breaker") },
  },
  "backends/pool-gpt4o": {
    properties: {
      type: "Pool",
      description: "gpt-4o, east first",
      pool: {
        services: [
          { id: "/backends/aoai-eastus", priority: 1, weight: 3 },
          { id: "/backends/aoai-westus", priority: 2, weight: 1 },
        ],
      },
    },
  },
  "policyFragments/frag-token-limit": { properties: { value: FRAGMENT, format: "rawxml", description: "token limit" } },
  "apis/proj-x/policies/policy": { properties: { value: API_POLICY, format: "rawxml" } },
  "policies/policy": { properties: { value: GLOBAL_POLICY, format: "rawxml" } },
};
const RESOURCE: Record<ArtifactRef, string> = Object.fromEntries(ORDER.map((ref, i) => [ref, Object.keys(BODIES)[i] as string]));

const byRef = (ref: ArtifactRef) => DESIRED.find((a) => artifactRef(a) === ref) as GatewayArtifact;
const without = (...refs: ArtifactRef[]) => DESIRED.filter((a) => !refs.includes(artifactRef(a)));
const withApiPolicy = (xml: string) => DESIRED.map((a) => (artifactRef(a) === "policy:api/proj-x" ? { ...a, xml } : a)) as GatewayArtifact[];


// ---- the behaviour both publishers share ----

interface Harness {
  name: string;
  setup(): Promise<{
    publisher: GatewayPublisher;
    /** Changes the eastus backend's URL to `url` behind the publisher's back. */
    tamper(url: string): Promise<void>;
    teardown(): Promise<void>;
  }>;
}

const SUB = "6f1c3f8e-2a4b-4c1d-9e8f-0a1b2c3d4e5f";
const RG = "rg-aigov";
const SVC = "apim-aigov";
const SERVICE = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ApiManagement/service/${SVC}/`;
const fakeCredential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3600e3 }) };
const fastRetries = { retryOptions: { retryDelayInMs: 1, maxRetryDelayInMs: 5 } };

const armPublisher = (fake: ArmFake) =>
  new ArmGatewayPublisher({ subscriptionId: SUB, resourceGroup: RG, serviceName: SVC, credential: fakeCredential, clientOptions: { httpClient: fake.httpClient, ...fastRetries } });

const tempDirs: string[] = [];
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

const harnesses: Harness[] = [
  {
    name: "ArmGatewayPublisher (real SDK → in-process ARM fake)",
    async setup() {
      const fake = createArmFake();
      return {
        publisher: armPublisher(fake),
        tamper: async (url) => fake.edit("backends/aoai-eastus", (p) => (p.url = url)),
        teardown: async () => undefined,
      };
    },
  },
  {
    name: "FilePublisher (temp dir)",
    async setup() {
      const dir = await mkdtemp(join(tmpdir(), "aigov-apim-"));
      tempDirs.push(dir);
      const file = join(dir, "backends", "aoai-eastus.json");
      return {
        publisher: new FilePublisher(dir),
        tamper: async (url) => {
          const body = JSON.parse(await readFile(file, "utf8")) as { properties: { url: string } };
          body.properties.url = url;
          await writeFile(file, JSON.stringify(body));
        },
        teardown: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
];

for (const h of harnesses) {
  describe(`GatewayPublisher contract: ${h.name}`, () => {
    let ctx: Awaited<ReturnType<Harness["setup"]>>;
    beforeEach(async () => {
      ctx = await h.setup();
      return () => ctx.teardown();
    });

    it("publishes everything in dependency order and hashes every artifact", async () => {
      const out = await ctx.publisher.publish(DESIRED, {});
      expect(out.sent).toEqual(ORDER);
      expect(out.unchanged).toEqual([]);
      expect(out.deleted).toEqual([]);
      expect(Object.keys(out.hashes).sort()).toEqual([...ORDER].sort());
      for (const ref of ORDER) expect(out.hashes[ref]).toBe(artifactHash(byRef(ref)));
    });

    it("publishing again with the returned hashes sends nothing", async () => {
      const first = await ctx.publisher.publish(DESIRED, {});
      const again = await ctx.publisher.publish([...DESIRED].reverse(), first.hashes);
      expect(again).toEqual({ sent: [], unchanged: DESIRED.map(artifactRef).reverse(), deleted: [], hashes: first.hashes });
    });

    it("changing one policy sends exactly that one", async () => {
      const first = await ctx.publisher.publish(DESIRED, {});
      const out = await ctx.publisher.publish(withApiPolicy(API_POLICY_V2), first.hashes);
      expect(out.sent).toEqual(["policy:api/proj-x"]);
      expect(out.unchanged).toHaveLength(ORDER.length - 1);
      expect(out.hashes["policy:api/proj-x"]).not.toBe(first.hashes["policy:api/proj-x"]);
    });

    it("deletes what left the desired set, in reverse order (a pool before its members, whatever `previous` says)", async () => {
      const first = await ctx.publisher.publish(DESIRED, {});
      // `previous` in an order that would delete the member first if the pool's type were not looked up.
      const previous = Object.fromEntries(
        ["backend:pool-gpt4o", "backend:aoai-westus", "namedValue:nv-tenant", "policy:global", ...ORDER].map((r) => [r, first.hashes[r] as string]),
      );
      const out = await ctx.publisher.publish(without("policy:global", "backend:pool-gpt4o", "backend:aoai-westus", "namedValue:nv-tenant"), previous);
      expect(out.sent).toEqual([]);
      expect(out.deleted).toEqual(["policy:global", "backend:pool-gpt4o", "backend:aoai-westus", "namedValue:nv-tenant"]);
      expect(Object.keys(out.hashes).sort()).toEqual(["backend:aoai-eastus", "fragment:frag-token-limit", "namedValue:nv-openai-key", "policy:api/proj-x"]);
      const read = await ctx.publisher.read(out.deleted);
      expect(Object.values(read)).toEqual([undefined, undefined, undefined, undefined]);
    });

    it("read() returns what was published, hashing the same; missing artifacts are undefined", async () => {
      const first = await ctx.publisher.publish(DESIRED, {});
      const read = await ctx.publisher.read([...ORDER, "backend:nope", "policy:api/nope/operation/op1"]);
      for (const ref of ORDER) {
        expect(read[ref]).toEqual(normalizeArtifact(byRef(ref)));
        expect(artifactHash(read[ref] as GatewayArtifact)).toBe(first.hashes[ref]);
      }
      expect(read["backend:nope"]).toBeUndefined();
      expect(read["policy:api/nope/operation/op1"]).toBeUndefined();
    });

    it("an entity changed behind the publisher's back reads back changed (drift is visible)", async () => {
      const first = await ctx.publisher.publish(DESIRED, {});
      await ctx.tamper("https://evil.example.com/openai");
      const read = await ctx.publisher.read(["backend:aoai-eastus"]);
      expect(read["backend:aoai-eastus"]).toMatchObject({ url: "https://evil.example.com/openai" });
      expect(artifactHash(read["backend:aoai-eastus"] as GatewayArtifact)).not.toBe(first.hashes["backend:aoai-eastus"]);
      // Publishing with an empty `previous` repairs it.
      const repaired = await ctx.publisher.publish(DESIRED, {});
      expect(repaired.sent).toEqual(ORDER);
      expect((await ctx.publisher.read(["backend:aoai-eastus"]))["backend:aoai-eastus"]).toEqual(normalizeArtifact(byRef("backend:aoai-eastus")));
    });

    it("refuses a desired set that names an artifact twice, and an unknown ref", async () => {
      await expect(ctx.publisher.publish([...DESIRED, byRef("policy:global")], {})).rejects.toThrow(/policy:global appears twice/);
      await expect(ctx.publisher.read(["widget:x"])).rejects.toThrow(/unknown artifact ref/);
      await expect(ctx.publisher.publish([{ kind: "backend", id: "../x", type: "Single", url: "https://x" }], {})).rejects.toThrow(/invalid backend id/);
    });
  });
}

// ---- ARM specifics: the exact requests ----

describe("ArmGatewayPublisher on the wire", () => {
  let fake: ArmFake;
  let publisher: ArmGatewayPublisher;
  beforeEach(() => {
    fake = createArmFake();
    publisher = armPublisher(fake);
  });
  const calls = () => fake.requests.map((r) => `${r.method} ${r.resource}${r.ifMatch ? ` If-Match:${r.ifMatch}` : ""} → ${r.status}`);

  it("creates: HEAD (404) then a plain PUT, per artifact, in order, with the exact paths, api-version and bodies", async () => {
    await publisher.publish(DESIRED, {});
    expect(calls()).toEqual(ORDER.flatMap((ref) => [`HEAD ${RESOURCE[ref]} → 404`, `PUT ${RESOURCE[ref]} → 201`]));
    for (const r of fake.requests) {
      expect(r.path).toBe(SERVICE + r.resource);
      expect(r.apiVersion).toBe("2024-05-01");
      expect(r.ifNoneMatch).toBeUndefined();
      expect(r.authorization).toBe("Bearer t"); // the fake credential was used
    }
    const puts = fake.requests.filter((r) => r.method === "PUT");
    expect(puts.map((r) => r.resource)).toEqual(Object.keys(BODIES));
    for (const r of puts) expect(r.body, r.resource).toEqual(BODIES[r.resource]);
  });

  it("updates with If-Match: the ETag just read from the gateway", async () => {
    const first = await publisher.publish(DESIRED, {});
    const etag = fake.state.get("apis/proj-x/policies/policy")?.etag as string;
    fake.requests.length = 0;
    const xml = API_POLICY_V2;
    await publisher.publish(withApiPolicy(xml), first.hashes);
    expect(calls()).toEqual([`HEAD apis/proj-x/policies/policy → 200`, `PUT apis/proj-x/policies/policy If-Match:${etag} → 200`]);
    expect(fake.requests[1]?.body).toEqual({ properties: { value: xml, format: "rawxml" } });
    expect(fake.state.get("apis/proj-x/policies/policy")?.etag).not.toBe(etag);
  });

  it("idempotent: a second publish with the returned hashes sends no request at all", async () => {
    const first = await publisher.publish(DESIRED, {});
    fake.requests.length = 0;
    await publisher.publish(DESIRED, first.hashes);
    expect(fake.requests).toEqual([]);
  });

  it("deletes: looks everything up first (GET for backends, to learn pool vs single), then DELETEs in reverse order with If-Match", async () => {
    const first = await publisher.publish(DESIRED, {});
    const etags = Object.fromEntries([...fake.state].map(([k, v]) => [k, v.etag]));
    fake.requests.length = 0;
    await publisher.publish(without("backend:aoai-westus", "backend:pool-gpt4o", "namedValue:nv-tenant", "policy:global", "fragment:frag-token-limit"), first.hashes);
    expect(calls()).toEqual([
      "HEAD namedValues/nv-tenant → 200",
      "GET backends/aoai-westus → 200",
      "GET backends/pool-gpt4o → 200",
      "HEAD policyFragments/frag-token-limit → 200",
      "HEAD policies/policy → 200",
      `DELETE policies/policy If-Match:${etags["policies/policy"]} → 200`,
      `DELETE policyFragments/frag-token-limit If-Match:${etags["policyFragments/frag-token-limit"]} → 200`,
      `DELETE backends/pool-gpt4o If-Match:${etags["backends/pool-gpt4o"]} → 200`,
      `DELETE backends/aoai-westus If-Match:${etags["backends/aoai-westus"]} → 200`,
      `DELETE namedValues/nv-tenant If-Match:${etags["namedValues/nv-tenant"]} → 200`,
    ]);
    expect([...fake.state.keys()].sort()).toEqual(["apis/proj-x/policies/policy", "backends/aoai-eastus", "namedValues/nv-openai-key"]);
  });

  it("an artifact already gone is reported deleted without a DELETE", async () => {
    const first = await publisher.publish(DESIRED, {});
    fake.state.delete("policies/policy");
    fake.requests.length = 0;
    const out = await publisher.publish(without("policy:global"), first.hashes);
    expect(out.deleted).toEqual(["policy:global"]);
    expect(calls()).toEqual(["HEAD policies/policy → 404"]);
  });

  it("read() GETs policies and fragments as rawxml (the default xml form is escaped) and maps ARM back to the port", async () => {
    await publisher.publish(DESIRED, {});
    fake.requests.length = 0;
    const read = await publisher.read(["policy:api/proj-x", "fragment:frag-token-limit", "backend:pool-gpt4o", "namedValue:nv-openai-key"]);
    expect(fake.requests.map((r) => `${r.method} ${r.resource} ${JSON.stringify(r.query)}`).sort()).toEqual([
      `GET apis/proj-x/policies/policy {"format":"rawxml"}`,
      `GET backends/pool-gpt4o {}`,
      `GET namedValues/nv-openai-key {}`,
      `GET policyFragments/frag-token-limit {"format":"rawxml"}`,
    ]);
    expect(read["policy:api/proj-x"]).toEqual({ kind: "policy", scope: { type: "api", apiId: "proj-x" }, xml: API_POLICY });
    expect(read["backend:pool-gpt4o"]).toEqual(normalizeArtifact(byRef("backend:pool-gpt4o")));
    // The escaped form really differs: what read() would have compared without format=rawxml.
    expect(API_POLICY).toContain("=>");
  });

  it("reads pool members given as full ARM resource ids (as the service may return them) back as backend ids", async () => {
    await publisher.publish(DESIRED, {});
    fake.edit("backends/pool-gpt4o", (p) => {
      const services = (p.pool as { services: { id: string }[] }).services;
      for (const s of services) s.id = `${SERVICE}backends/${s.id.slice("/backends/".length)}`;
    });
    const read = await publisher.read(["backend:pool-gpt4o"]);
    expect(read["backend:pool-gpt4o"]).toEqual(normalizeArtifact(byRef("backend:pool-gpt4o")));
  });

  it("a secret named value edited to a raw (non Key Vault) secret reads back as drift", async () => {
    const first = await publisher.publish(DESIRED, {});
    fake.edit("namedValues/nv-openai-key", (p) => {
      delete p.keyVault;
      p.value = "sk-raw";
    });
    const read = await publisher.read(["namedValue:nv-openai-key"]);
    expect(read["namedValue:nv-openai-key"]).toMatchObject({ secret: true, keyVault: { secretIdentifier: "" } });
    expect(artifactHash(read["namedValue:nv-openai-key"] as GatewayArtifact)).not.toBe(first.hashes["namedValue:nv-openai-key"]);
  });

  it("a concurrent change between the ETag read and the write fails with 412 and a resumable partial outcome", async () => {
    const first = await publisher.publish(DESIRED, {});
    const desired = DESIRED.map((a) =>
      artifactRef(a) === "policy:api/proj-x" ? { ...a, xml: "<policies><inbound><base /></inbound></policies>" } : artifactRef(a) === "backend:aoai-westus" ? { ...a, description: "west v2" } : a,
    ) as GatewayArtifact[];
    fake.beforeNext("PUT", "apis/proj-x/policies/policy", () => fake.edit("apis/proj-x/policies/policy", (p) => (p.value = "<policies>portal</policies>")));
    const err = await errorOf(publisher.publish(desired, first.hashes));
    expect(err).toBeInstanceOf(GatewayPublishError);
    const e = err as GatewayPublishError;
    expect(e.status).toBe(412);
    expect(e.ref).toBe("policy:api/proj-x");
    expect(e.partial.sent).toEqual(["backend:aoai-westus"]);
    expect(e.partial.hashes["backend:aoai-westus"]).toBe(artifactHash(desired[6] as GatewayArtifact));
    expect(e.partial.hashes["policy:api/proj-x"]).toBe(first.hashes["policy:api/proj-x"]); // not written
    expect(fake.state.get("apis/proj-x/policies/policy")?.properties.value).toBe("<policies>portal</policies>");
    // Resuming from the partial outcome sends only what is left (and now overwrites the portal edit, guarded by its new ETag).
    fake.requests.length = 0;
    const resumed = await publisher.publish(desired, e.partial.hashes);
    expect(resumed.sent).toEqual(["policy:api/proj-x"]);
    expect(fake.requests.map((r) => r.status)).toEqual([200, 200]);
  });

  it("transient failures are retried by the SDK's own retry policy", async () => {
    fake.failNext(503);
    fake.failNext(429);
    const out = await publisher.publish([byRef("backend:aoai-eastus")], {});
    expect(out.sent).toEqual(["backend:aoai-eastus"]);
    expect(calls()).toEqual(["HEAD backends/aoai-eastus → 503", "HEAD backends/aoai-eastus → 429", "HEAD backends/aoai-eastus → 404", "PUT backends/aoai-eastus → 201"]);
  });

  it("covers product and operation policy scopes", async () => {
    const scoped: GatewayArtifact[] = [
      { kind: "policy", scope: { type: "operation", apiId: "proj-x", operationId: "chat" }, xml: "<policies><inbound><base /></inbound></policies>" },
      { kind: "policy", scope: { type: "product", productId: "gold" }, xml: "<policies><inbound><base /></inbound></policies>" },
    ];
    const out = await publisher.publish(scoped, {});
    expect(out.sent).toEqual(["policy:api/proj-x/operation/chat", "policy:product/gold"]);
    expect(fake.requests.filter((r) => r.method === "PUT").map((r) => r.path)).toEqual([
      `${SERVICE}apis/proj-x/operations/chat/policies/policy`,
      `${SERVICE}products/gold/policies/policy`,
    ]);
    const read = await publisher.read(out.sent);
    expect(Object.values(read)).toEqual(scoped);
  });

  it("the fake itself: 412 on a stale If-Match, 404 on unknown entities, GUID subscriptions only", async () => {
    const bad = new ArmGatewayPublisher({ subscriptionId: "not-a-guid", resourceGroup: RG, serviceName: SVC, credential: fakeCredential, clientOptions: { httpClient: fake.httpClient } });
    await expect(bad.read(["backend:x"])).rejects.toThrow();
    const { ApiManagementClient } = await import("@azure/arm-apimanagement");
    const client = new ApiManagementClient(fakeCredential, SUB, { httpClient: fake.httpClient });
    await client.backend.createOrUpdate(RG, SVC, "b1", { url: "https://x", protocol: "http" });
    await expect(client.backend.createOrUpdate(RG, SVC, "b1", { url: "https://y", protocol: "http" }, { ifMatch: '"stale"' })).rejects.toMatchObject({ statusCode: 412 });
    await expect(client.backend.get(RG, SVC, "nope")).rejects.toMatchObject({ statusCode: 404 });
  });
});

// ---- file publisher specifics: the files ----

describe("FilePublisher on disk", () => {
  let dir: string;
  let publisher: FilePublisher;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "aigov-apim-"));
    tempDirs.push(dir);
    publisher = new FilePublisher(dir);
  });

  const files = async (root: string): Promise<string[]> =>
    (await readdir(root, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
      .sort();

  it("writes each artifact at its ARM resource path: the exact ARM body as .json, the XML as .xml", async () => {
    await publisher.publish(DESIRED, {});
    const xmlFiles = ["apis/proj-x/policies/policy.xml", "policies/policy.xml", "policyFragments/frag-token-limit.xml"];
    expect(await files(dir)).toEqual([...Object.keys(BODIES).map((r) => `${r}.json`), ...xmlFiles].sort());
    for (const [resource, body] of Object.entries(BODIES)) {
      expect(JSON.parse(await readFile(join(dir, `${resource}.json`), "utf8")), resource).toEqual(body);
    }
    expect(await readFile(join(dir, "apis/proj-x/policies/policy.xml"), "utf8")).toBe(API_POLICY);
    expect(await readFile(join(dir, "policyFragments/frag-token-limit.xml"), "utf8")).toBe(FRAGMENT);
  });

  it("a hand-edited .xml shows up in read() as a changed policy", async () => {
    const first = await publisher.publish(DESIRED, {});
    const edited = API_POLICY.replace("<base />", "<base /><ip-filter action=\"allow\"><address>10.0.0.1</address></ip-filter>");
    await writeFile(join(dir, "apis/proj-x/policies/policy.xml"), edited);
    const read = await publisher.read(["policy:api/proj-x", "policy:global"]);
    expect(read["policy:api/proj-x"]).toEqual({ kind: "policy", scope: { type: "api", apiId: "proj-x" }, xml: edited });
    expect(artifactHash(read["policy:api/proj-x"] as GatewayArtifact)).not.toBe(first.hashes["policy:api/proj-x"]);
    expect(artifactHash(read["policy:global"] as GatewayArtifact)).toBe(first.hashes["policy:global"]);
  });

  it("a .json made unreadable by hand is reported, not silently ignored", async () => {
    await publisher.publish(DESIRED, {});
    await writeFile(join(dir, "backends/aoai-eastus.json"), "{ not json");
    await expect(publisher.read(["backend:aoai-eastus"])).rejects.toThrow(/aoai-eastus\.json is not valid JSON/);
  });

  it("deletes remove the files and the directories left empty", async () => {
    const first = await publisher.publish(DESIRED, {});
    await publisher.publish(without("policy:api/proj-x", "fragment:frag-token-limit"), first.hashes);
    await expect(stat(join(dir, "apis"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(join(dir, "policyFragments"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(await files(dir)).not.toContain("apis/proj-x/policies/policy.json");
  });
});
