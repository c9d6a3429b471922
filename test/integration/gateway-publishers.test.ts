import { canonicalXml, comparableHash } from "../../src/domain/publishing/render.js";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import type { PipelineRequest } from "@azure/core-rest-pipeline";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { ArmGatewayPublisher } from "../../src/adapters/apim/arm-publisher.js";
import { artifactHash, GatewayPublishError, normalizeArtifact } from "../../src/adapters/apim/plan.js";
import { FilePublisher } from "../../src/adapters/local/file-publisher.js";
import { PUBLISHED_MARKER } from "../../src/local-gateway/runtime/folder.js";
import {
  artifactRef,
  expectedReadBack,
  readBackHash,
  subscriptionFingerprint,
  type ApiArtifact,
  type ArtifactRef,
  type GatewayArtifact,
  type GatewayPublisher,
  type GatewayReadBack,
  type ProductArtifact,
  type ResolveSecret,
  type SecretRef,
  type SubscriptionArtifact,
  type SubscriptionReadBack,
} from "../../src/ports/gateway.js";
import { createArmFake, type ArmFake } from "../support/arm-fake.js";
import { errorOf } from "../support/errors.js";

// ---- a representative desired set, written by hand, deliberately not in publish order ----

const API_POLICY = `<policies>
  <inbound>
    <base />
    <include-fragment fragment-id="frag-token-limit" />
    <choose>
      <when condition="@(context.Request.Headers.Any(h => h.Key == &quot;x-debug&quot;) &amp;&amp; context.Api.Id != &quot;&quot;)">
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
const KV_SECRET = "https://kv-aigov.vault.azure.net/secrets/openai-key/8f2b1c0d9e7a4b6c8d2e1f0a3b5c7d9e";

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
  "policyFragments/frag-token-limit": { properties: { value: FRAGMENT, format: "xml", description: "token limit" } },
  "apis/proj-x/policies/policy": { properties: { value: API_POLICY, format: "xml" } },
  "policies/policy": { properties: { value: GLOBAL_POLICY, format: "xml" } },
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

const armPublisher = (fake: ArmFake, resolveSecret?: ResolveSecret) =>
  new ArmGatewayPublisher({
    subscriptionId: SUB,
    resourceGroup: RG,
    serviceName: SVC,
    credential: fakeCredential,
    clientOptions: { httpClient: fake.httpClient, ...fastRetries },
    ...(resolveSecret ? { resolveSecret } : {}),
  });

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
        // Policies and fragments come back in the gateway's own serialization: the same document, compared parsed.
        expect(comparableHash(read[ref] as GatewayArtifact)).toBe(comparableHash(byRef(ref)));
        if (!ref.startsWith("policy:") && !ref.startsWith("fragment:")) {
          expect(read[ref]).toEqual(normalizeArtifact(byRef(ref)));
          expect(artifactHash(read[ref] as GatewayArtifact)).toBe(first.hashes[ref]);
        }
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
    expect(fake.requests[1]?.body).toEqual({ properties: { value: xml, format: "xml" } });
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

  it("read() GETs policies and fragments as xml, the format they were published in, and maps ARM back to the port", async () => {
    await publisher.publish(DESIRED, {});
    fake.requests.length = 0;
    const read = await publisher.read(["policy:api/proj-x", "fragment:frag-token-limit", "backend:pool-gpt4o", "namedValue:nv-openai-key"]);
    expect(fake.requests.map((r) => `${r.method} ${r.resource} ${JSON.stringify(r.query)}`).sort()).toEqual([
      `GET apis/proj-x/policies/policy {"format":"xml"}`,
      `GET backends/pool-gpt4o {}`,
      `GET namedValues/nv-openai-key {}`,
      `GET policyFragments/frag-token-limit {"format":"xml"}`,
    ]);
    // APIM answers with its own serialization of the same document: equal once both are parsed.
    const back = read["policy:api/proj-x"];
    expect(back?.kind === "policy" ? back.xml : "").not.toBe(API_POLICY);
    expect(canonicalXml(back?.kind === "policy" ? back.xml : "")).toBe(canonicalXml(API_POLICY));
    expect(read["backend:pool-gpt4o"]).toEqual(normalizeArtifact(byRef("backend:pool-gpt4o")));
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

  it("a backend edited in the portal to go through a proxy, skip TLS checks or send another credential reads back as drift", async () => {
    const first = await publisher.publish(DESIRED, {});
    const hashOf = async () => artifactHash((await publisher.read(["backend:aoai-eastus"]))["backend:aoai-eastus"] as GatewayArtifact);
    // APIM's defaults as it reports them are not drift.
    fake.edit("backends/aoai-eastus", (p) => void (p.tls = { validateCertificateChain: true, validateCertificateName: true }));
    expect(await hashOf()).toBe(first.hashes["backend:aoai-eastus"]);
    const edits: [string, (p: Record<string, unknown>) => void][] = [
      ["proxy", (p) => void (p.proxy = { url: "http://proxy.evil.example.com:8080" })],
      ["tls", (p) => void (p.tls = { validateCertificateChain: false, validateCertificateName: true })],
      ["credentials.query", (p) => void (p.credentials = { ...(p.credentials as object), query: { code: ["x"] } })],
    ];
    for (const [what, edit] of edits) {
      await publisher.publish(DESIRED, {});
      fake.edit("backends/aoai-eastus", edit);
      expect(await hashOf(), what).not.toBe(first.hashes["backend:aoai-eastus"]);
    }
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

  it("with a budget it stops after the step that spent it; called again with the hashes it returns, it goes on, and ends where one call would", async () => {
    const spent = { spent: () => true };
    const sent: string[] = [];
    let out = await publisher.publish(DESIRED, {}, spent);
    let calls = 1;
    sent.push(...out.sent);
    expect(out).toMatchObject({ sent: [ORDER[0]], remaining: ORDER.length - 1 });
    while (out.remaining !== undefined) {
      out = await publisher.publish(DESIRED, out.hashes, spent);
      sent.push(...out.sent);
      calls++;
    }
    // One artifact per call, each sent once, in the order one call sends them.
    expect([calls, sent]).toEqual([ORDER.length, ORDER]);
    const whole = createArmFake();
    const single = await armPublisher(whole).publish(DESIRED, {});
    expect(out.hashes).toEqual(single.hashes);
    const bodies = (f: ArmFake) => [...f.state.entries()].map(([k, v]) => [k, v.properties]).sort();
    expect(bodies(fake)).toEqual(bodies(whole));
    // Deletes too: one per call, in the order one call deletes them.
    const kept = DESIRED.filter((a) => a.kind === "namedValue");
    fake.requests.length = 0;
    const deleted: string[] = [];
    out = await publisher.publish(kept, out.hashes, spent);
    deleted.push(...out.deleted);
    while (out.remaining !== undefined) {
      out = await publisher.publish(kept, out.hashes, spent);
      deleted.push(...out.deleted);
    }
    const once = await armPublisher(whole).publish(kept, single.hashes);
    expect(deleted).toEqual(once.deleted);
    expect(bodies(fake)).toEqual(bodies(whole));
    // A budget never spent changes nothing: one call, no remaining.
    expect(await publisher.publish(DESIRED, out.hashes, { spent: () => false })).not.toHaveProperty("remaining");
  });

  it("transient failures are retried by the SDK's own retry policy", async () => {
    fake.failNext(503);
    fake.failNext(429);
    const out = await publisher.publish([byRef("backend:aoai-eastus")], {});
    expect(out.sent).toEqual(["backend:aoai-eastus"]);
    expect(calls()).toEqual(["HEAD backends/aoai-eastus → 503", "HEAD backends/aoai-eastus → 429", "HEAD backends/aoai-eastus → 404", "PUT backends/aoai-eastus → 201"]);
  });

  it("a refused ETag lookup (HEAD: no body, so no message) names its status", async () => {
    fake.failNext(403);
    const err = await errorOf(publisher.publish([byRef("backend:aoai-eastus")], {}));
    expect(err).toBeInstanceOf(GatewayPublishError);
    expect((err as GatewayPublishError).status).toBe(403);
    expect((err as Error).message).toBe("gateway publish failed at backend:aoai-eastus: HTTP 403 (no error message)");
    expect(calls()).toEqual(["HEAD backends/aoai-eastus → 403"]);
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
    // The gateway's serialization of the same documents.
    expect(Object.values(read).map((a) => comparableHash(a as GatewayArtifact))).toEqual(scoped.map(comparableHash));
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

  /** The ARM-shaped files (the publish marker, which only tells the local gateway to look, aside). */
  const files = async (root: string): Promise<string[]> =>
    (await readdir(root, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile() && !(e.parentPath === root && e.name === PUBLISHED_MARKER))
      .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
      .sort();

  it("writes each artifact at its ARM resource path: the exact ARM body as .json, the XML as .xml", async () => {
    await publisher.publish(DESIRED, {});
    // Beside them, the marker each publish replaces as it ends: the local gateway looks at the folder when it changes.
    expect((await readdir(dir)).includes(PUBLISHED_MARKER)).toBe(true);
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

// ---- APIs, products and subscriptions (virtual keys) ----

const KEYS: Record<string, string> = {
  "vk-1/v1": "K1-primary-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
  "vk-1/v2": "K1-primary-rotated-00112233445566778899aabbccdd",
  "vk-1b/v1": "K1-secondary-a0b1c2d3e4f5061728394a5b6c7d8e9f",
  "vk-2/v1": "K2-primary-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
  "vk-2b/v1": "K2-secondary-ffeeddccbbaa99887766554433221100",
};
const ALL_KEYS = Object.values(KEYS);
const resolved: string[] = [];
const resolveSecret = async (ref: SecretRef): Promise<string> => {
  const key = KEYS[`${ref.name}/${ref.version}`];
  if (key === undefined) throw new Error(`no secret ${ref.name}/${ref.version}`);
  resolved.push(`${ref.name}/${ref.version}`);
  return key;
};
const noKeyIn = (what: string, value: unknown) => {
  const text = typeof value === "string" ? value : inspect(value, { depth: 20, showHidden: true });
  for (const k of ALL_KEYS) expect(text.includes(k), `${what} holds a key`).toBe(false);
};

const PRODUCT_POLICY = `<policies><inbound><base /><set-variable name="aigov-key-tier" value="1" /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>`;
const API: ApiArtifact = {
  kind: "api",
  id: "proj-x",
  displayName: "Project X (proj-x)",
  description: "the project's models",
  path: "aigov/proj-x",
  protocols: ["https"],
  subscriptionRequired: true,
  subscriptionKeyHeaderName: "api-key",
  operations: [
    { id: "aigov-post", method: "POST", urlTemplate: "/*", displayName: "POST (every path)" },
    { id: "aigov-get", method: "GET", urlTemplate: "/*", displayName: "GET (every path)" },
  ],
};
const PRODUCT: ProductArtifact = {
  kind: "product",
  id: "gold",
  displayName: "Project X, tier gold",
  subscriptionRequired: true,
  approvalRequired: false,
  state: "published",
  apis: ["proj-x"],
};
const SUB1: SubscriptionArtifact = {
  kind: "subscription",
  id: "vk1",
  displayName: "alice's key",
  scope: { type: "product", productId: "gold" },
  state: "active",
  primaryKey: { name: "vk-1", version: "v1" },
  secondaryKey: { name: "vk-1b", version: "v1" },
};
const SUB2: SubscriptionArtifact = {
  kind: "subscription",
  id: "vk2",
  displayName: "bob's key",
  scope: { type: "api", apiId: "proj-x" },
  state: "active",
  primaryKey: { name: "vk-2", version: "v1" },
  secondaryKey: { name: "vk-2b", version: "v1" },
};
const ROTATED1: SubscriptionArtifact = { ...SUB1, primaryKey: { name: "vk-1", version: "v2" } };
/** Deliberately out of order. */
const ENTITIES: GatewayArtifact[] = [
  SUB1,
  { kind: "policy", scope: { type: "api", apiId: "proj-x" }, xml: API_POLICY },
  { kind: "policy", scope: { type: "product", productId: "gold" }, xml: PRODUCT_POLICY },
  PRODUCT,
  API,
  SUB2,
];
const ENTITY_ORDER = ["api:proj-x", "product:gold", "policy:api/proj-x", "policy:product/gold", "subscription:vk1", "subscription:vk2"];
const entityRef = (ref: ArtifactRef) => ENTITIES.find((a) => artifactRef(a) === ref) as GatewayArtifact;
const replace = (set: GatewayArtifact[], a: GatewayArtifact) => set.map((x) => (artifactRef(x) === artifactRef(a) ? a : x));

interface EntityHarness {
  name: string;
  setup(): Promise<{
    publisher: GatewayPublisher;
    /** Replaces subscription vk1's primary key behind the publisher's back. */
    tamperKey(): Promise<void>;
    /** Every byte the publisher left behind that a user could read (files), or "" for ARM. */
    leftovers(): Promise<string>;
  }>;
}

const entityHarnesses: EntityHarness[] = [
  {
    name: "ArmGatewayPublisher (ARM fake that 404s children of missing parents)",
    async setup() {
      const fake = createArmFake({ strictParents: true });
      return {
        publisher: armPublisher(fake, resolveSecret),
        tamperKey: async () => fake.edit("subscriptions/vk1", (p) => (p.primaryKey = "set-in-the-portal")),
        leftovers: async () => "",
      };
    },
  },
  {
    name: "FilePublisher",
    async setup() {
      const dir = await mkdtemp(join(tmpdir(), "aigov-apim-"));
      tempDirs.push(dir);
      return {
        publisher: new FilePublisher(dir, { resolveSecret }),
        tamperKey: async () => {
          const file = join(dir, "subscriptions", "vk1.json");
          const body = JSON.parse(await readFile(file, "utf8")) as { properties: { primaryKey: unknown } };
          body.properties.primaryKey = { secretRef: { name: "vk-2", version: "v1" } };
          await writeFile(file, JSON.stringify(body));
        },
        leftovers: async () => {
          const entries = await readdir(dir, { recursive: true, withFileTypes: true });
          const texts = await Promise.all(entries.filter((e) => e.isFile()).map((e) => readFile(join(e.parentPath, e.name), "utf8")));
          return texts.join("\n");
        },
      };
    },
  },
];

for (const h of entityHarnesses) {
  describe(`APIs, products and subscriptions: ${h.name}`, () => {
    let ctx: Awaited<ReturnType<EntityHarness["setup"]>>;
    beforeEach(async () => {
      resolved.length = 0;
      ctx = await h.setup();
    });

    it("publishes API, product, policies, subscriptions in that order; reads them back hashing as published", async () => {
      const out = await ctx.publisher.publish(ENTITIES, {});
      expect(out.sent).toEqual(ENTITY_ORDER);
      for (const ref of ENTITY_ORDER) expect(out.hashes[ref]).toBe(artifactHash(entityRef(ref)));
      const read = await ctx.publisher.read([...ENTITY_ORDER, "api:nope", "product:nope", "subscription:nope"]);
      for (const ref of ENTITY_ORDER) {
        const want = await expectedReadBack(entityRef(ref), resolveSecret);
        if (ref.startsWith("policy:")) {
          // Policies come back in the gateway's own serialization: the same document, compared parsed.
          expect(comparableHash(read[ref] as GatewayArtifact), ref).toBe(comparableHash(want as GatewayArtifact));
          continue;
        }
        expect(read[ref], ref).toEqual(want);
        expect(readBackHash(read[ref] as GatewayReadBack), ref).toBe(readBackHash(want));
        if (!ref.startsWith("subscription:")) expect(readBackHash(read[ref] as GatewayReadBack)).toBe(out.hashes[ref]);
      }
      expect(read["subscription:vk1"]).toEqual({
        kind: "subscription",
        id: "vk1",
        displayName: "alice's key",
        scope: { type: "product", productId: "gold" },
        state: "active",
        primaryKeyFingerprint: subscriptionFingerprint(KEYS["vk-1/v1"]!),
        secondaryKeyFingerprint: subscriptionFingerprint(KEYS["vk-1b/v1"]!),
      });
      expect(subscriptionFingerprint("x")).toMatch(/^[0-9a-f]{16}$/);
      expect([read["api:nope"], read["product:nope"], read["subscription:nope"]]).toEqual([undefined, undefined, undefined]);
      // The keys were needed (to write, to fingerprint) but are in no result and nothing left behind.
      expect(resolved.length).toBeGreaterThan(0);
      noKeyIn("the outcome", out);
      noKeyIn("read()", read);
      noKeyIn("what the publisher left behind", await ctx.leftovers());
    });

    it("publishing again with the returned hashes sends nothing", async () => {
      const first = await ctx.publisher.publish(ENTITIES, {});
      const again = await ctx.publisher.publish([...ENTITIES].reverse(), first.hashes);
      expect(again.sent).toEqual([]);
      expect(again.deleted).toEqual([]);
      expect(again.hashes).toEqual(first.hashes);
    });

    it("a rotated key (new SecretRef version) sends that subscription again, and read() shows the new key's fingerprint", async () => {
      const first = await ctx.publisher.publish(ENTITIES, {});
      const rotated = replace(ENTITIES, ROTATED1);
      expect(artifactHash(ROTATED1)).not.toBe(first.hashes["subscription:vk1"]);
      const out = await ctx.publisher.publish(rotated, first.hashes);
      expect(out.sent).toEqual(["subscription:vk1"]);
      const read = await ctx.publisher.read(["subscription:vk1"]);
      expect(read["subscription:vk1"]).toMatchObject({ primaryKeyFingerprint: subscriptionFingerprint(KEYS["vk-1/v2"]!) });
      expect(readBackHash(read["subscription:vk1"] as GatewayReadBack)).toBe(readBackHash(await expectedReadBack(ROTATED1, resolveSecret)));
    });

    it("a partial desired set (one key, `previous` holding only its ref) touches nothing else", async () => {
      const first = await ctx.publisher.publish(ENTITIES, {});
      const out = await ctx.publisher.publish([ROTATED1], { "subscription:vk1": first.hashes["subscription:vk1"] as string });
      expect(out).toEqual({ sent: ["subscription:vk1"], unchanged: [], deleted: [], hashes: { "subscription:vk1": artifactHash(ROTATED1) } });
      const read = await ctx.publisher.read(ENTITY_ORDER);
      for (const ref of ENTITY_ORDER) expect(read[ref], ref).toBeDefined();
      // Revoking that one key alone: deleted, everything else stays.
      const revoked = await ctx.publisher.publish([], out.hashes);
      expect(revoked.deleted).toEqual(["subscription:vk1"]);
      expect(Object.values(await ctx.publisher.read(ENTITY_ORDER)).filter((x) => x === undefined)).toHaveLength(1);
    });

    it("a key changed behind the publisher's back is drift (fingerprints differ); republishing repairs it", async () => {
      const first = await ctx.publisher.publish(ENTITIES, {});
      await ctx.tamperKey();
      const want = await expectedReadBack(SUB1, resolveSecret);
      const got = (await ctx.publisher.read(["subscription:vk1"]))["subscription:vk1"] as SubscriptionReadBack;
      expect(got.primaryKeyFingerprint).not.toBe((want as SubscriptionReadBack).primaryKeyFingerprint);
      expect(got.secondaryKeyFingerprint).toBe((want as SubscriptionReadBack).secondaryKeyFingerprint);
      expect(readBackHash(got)).not.toBe(readBackHash(want));
      const { ["subscription:vk1"]: _drifted, ...rest } = first.hashes;
      expect((await ctx.publisher.publish(ENTITIES, rest)).sent).toEqual(["subscription:vk1"]);
      expect((await ctx.publisher.read(["subscription:vk1"]))["subscription:vk1"]).toEqual(want);
    });

    it("keeps operations and product links exactly as listed", async () => {
      const first = await ctx.publisher.publish(ENTITIES, {});
      const other: ApiArtifact = { ...API, id: "proj-y", path: "aigov/proj-y", operations: [] };
      const postOnly: ApiArtifact = { ...API, operations: [{ id: "aigov-post", method: "POST", urlTemplate: "/*", displayName: "POST, renamed" }] };
      const next = [...replace(replace(ENTITIES, postOnly), { ...PRODUCT, apis: ["proj-y"] }), other];
      const out = await ctx.publisher.publish(next, first.hashes);
      expect(out.sent).toEqual(["api:proj-x", "api:proj-y", "product:gold"]);
      const read = await ctx.publisher.read(["api:proj-x", "api:proj-y", "product:gold"]);
      expect(read["api:proj-x"]).toEqual(normalizeArtifact(postOnly));
      expect(read["api:proj-y"]).toEqual(normalizeArtifact(other));
      expect(read["product:gold"]).toMatchObject({ apis: ["proj-y"] });
    });

    it("deletes in reverse: subscriptions, products, APIs; a policy with its product or API, never before it", async () => {
      const first = await ctx.publisher.publish(ENTITIES, {});
      const out = await ctx.publisher.publish([], first.hashes);
      expect(out.deleted).toEqual(["subscription:vk2", "subscription:vk1", "product:gold", "policy:product/gold", "api:proj-x", "policy:api/proj-x"]);
      expect(Object.values(await ctx.publisher.read(ENTITY_ORDER))).toEqual(ENTITY_ORDER.map(() => undefined));
    });

    it("refuses ids and secret refs that could escape a path", async () => {
      await expect(ctx.publisher.publish([{ ...API, operations: [{ ...API.operations[0]!, id: "../x" }] }], {})).rejects.toThrow(/invalid operation id/);
      await expect(ctx.publisher.publish([{ ...PRODUCT, apis: ["a/b"] }], {})).rejects.toThrow(/invalid api id/);
      await expect(ctx.publisher.publish([{ ...SUB1, primaryKey: { name: "vk/1", version: "v1" } }], {})).rejects.toThrow(/invalid secret name/);
      await expect(ctx.publisher.publish([{ ...SUB1, scope: { type: "api", apiId: ".." } }], {})).rejects.toThrow(/invalid api id/);
    });
  });
}

describe("ArmGatewayPublisher on the wire: APIs, products, subscriptions", () => {
  let fake: ArmFake;
  let publisher: ArmGatewayPublisher;
  beforeEach(() => {
    fake = createArmFake({ strictParents: true });
    publisher = armPublisher(fake, resolveSecret);
  });
  const calls = () => fake.requests.map((r) => `${r.method} ${r.resource}${r.ifMatch ? ` If-Match:${r.ifMatch}` : ""} → ${r.status}`);

  it("creates with the exact requests; the keys are in the subscription bodies and in no other request", async () => {
    await publisher.publish(ENTITIES, {});
    expect(calls()).toEqual([
      "HEAD apis/proj-x → 404",
      "PUT apis/proj-x → 201",
      "PUT apis/proj-x/operations/aigov-get → 201",
      "PUT apis/proj-x/operations/aigov-post → 201",
      "HEAD products/gold → 404",
      "PUT products/gold → 201",
      "HEAD apis/proj-x/policies/policy → 404",
      "PUT apis/proj-x/policies/policy → 201",
      "HEAD products/gold/policies/policy → 404",
      "PUT products/gold/policies/policy → 201",
      "HEAD subscriptions/vk1 → 404",
      "PUT subscriptions/vk1 → 201",
      "HEAD subscriptions/vk2 → 404",
      "PUT subscriptions/vk2 → 201",
      // A product is linked to an API last, once the API's policy is in place (plan.ts, RANK).
      "PUT products/gold/apis/proj-x → 201",
    ]);
    for (const r of fake.requests) {
      expect(r.path).toBe(SERVICE + r.resource);
      expect(r.apiVersion).toBe("2024-05-01");
    }
    const bodies = Object.fromEntries(fake.requests.filter((r) => r.method === "PUT").map((r) => [r.resource, r.body]));
    expect(bodies).toEqual({
      "apis/proj-x": {
        properties: {
          displayName: "Project X (proj-x)",
          description: "the project's models",
          path: "aigov/proj-x",
          protocols: ["https"],
          subscriptionRequired: true,
          subscriptionKeyParameterNames: { header: "api-key" },
        },
      },
      "apis/proj-x/operations/aigov-get": { properties: { displayName: "GET (every path)", method: "GET", urlTemplate: "/*" } },
      "apis/proj-x/operations/aigov-post": { properties: { displayName: "POST (every path)", method: "POST", urlTemplate: "/*" } },
      "products/gold": { properties: { displayName: "Project X, tier gold", subscriptionRequired: true, approvalRequired: false, state: "published" } },
      "products/gold/apis/proj-x": undefined,
      "apis/proj-x/policies/policy": { properties: { value: API_POLICY, format: "xml" } },
      "products/gold/policies/policy": { properties: { value: PRODUCT_POLICY, format: "xml" } },
      "subscriptions/vk1": {
        properties: { scope: "/products/gold", displayName: "alice's key", state: "active", primaryKey: KEYS["vk-1/v1"], secondaryKey: KEYS["vk-1b/v1"] },
      },
      "subscriptions/vk2": {
        properties: { scope: "/apis/proj-x", displayName: "bob's key", state: "active", primaryKey: KEYS["vk-2/v1"], secondaryKey: KEYS["vk-2b/v1"] },
      },
    });
    for (const r of fake.requests) if (r.resource !== "subscriptions/vk1" && r.resource !== "subscriptions/vk2") noKeyIn(`${r.method} ${r.resource}`, JSON.stringify(r.body ?? ""));
  });

  it("the fake refuses a policy whose API does not exist, as APIM does (what the ordering prevents)", async () => {
    const err = await errorOf(publisher.publish([entityRef("policy:api/proj-x")], {}));
    expect(err).toBeInstanceOf(GatewayPublishError);
    expect((err as GatewayPublishError).status).toBe(404);
  });

  it("idempotent: a second publish with the returned hashes sends no request at all", async () => {
    const first = await publisher.publish(ENTITIES, {});
    fake.requests.length = 0;
    await publisher.publish(ENTITIES, first.hashes);
    expect(fake.requests).toEqual([]);
  });

  it("updates: If-Match on the entity, then lists and syncs its operations or links", async () => {
    const first = await publisher.publish(ENTITIES, {});
    const apiEtag = fake.state.get("apis/proj-x")?.etag as string;
    const productEtag = fake.state.get("products/gold")?.etag as string;
    fake.requests.length = 0;
    const postOnly: ApiArtifact = { ...API, operations: [{ id: "aigov-post", method: "POST", urlTemplate: "/*", displayName: "POST, renamed" }] };
    const other: ApiArtifact = { ...API, id: "proj-y", path: "aigov/proj-y", operations: [] };
    await publisher.publish([...replace(replace(ENTITIES, postOnly), { ...PRODUCT, apis: ["proj-y"] }), other], first.hashes);
    expect(calls()).toEqual([
      "HEAD apis/proj-x → 200",
      `PUT apis/proj-x If-Match:${apiEtag} → 200`,
      "GET apis/proj-x/operations → 200",
      "PUT apis/proj-x/operations/aigov-post If-Match:* → 200",
      "DELETE apis/proj-x/operations/aigov-get If-Match:* → 200",
      "HEAD apis/proj-y → 404",
      "PUT apis/proj-y → 201",
      "HEAD products/gold → 200",
      `PUT products/gold If-Match:${productEtag} → 200`,
      "GET products/gold/apis → 200",
      // A link the product loses goes at once; one it gains comes last, after the policies.
      "DELETE products/gold/apis/proj-x → 200",
      "PUT products/gold/apis/proj-y → 201",
    ]);
  });

  it("a rotated key: HEAD, then one PUT with If-Match carrying the new key", async () => {
    const first = await publisher.publish(ENTITIES, {});
    const etag = fake.state.get("subscriptions/vk1")?.etag as string;
    fake.requests.length = 0;
    await publisher.publish(replace(ENTITIES, ROTATED1), first.hashes);
    expect(calls()).toEqual(["HEAD subscriptions/vk1 → 200", `PUT subscriptions/vk1 If-Match:${etag} → 200`]);
    expect(fake.requests[1]?.body).toMatchObject({ properties: { primaryKey: KEYS["vk-1/v2"], secondaryKey: KEYS["vk-1b/v1"] } });
  });

  it("read(): GET for the entity, then its operations, its links, or listSecrets (POST) for the keys", async () => {
    await publisher.publish(ENTITIES, {});
    fake.requests.length = 0;
    await publisher.read(["api:proj-x", "product:gold", "subscription:vk1"]);
    expect(fake.requests.map((r) => `${r.method} ${r.resource}`).sort()).toEqual([
      "GET apis/proj-x",
      "GET apis/proj-x/operations",
      "GET products/gold",
      "GET products/gold/apis",
      "GET subscriptions/vk1",
      "POST subscriptions/vk1/listSecrets",
    ]);
  });

  it("deletes: subscriptions, product, API, each with the ETag just read; their policies go with them (no request)", async () => {
    const first = await publisher.publish(ENTITIES, {});
    const etags = Object.fromEntries([...fake.state].map(([k, v]) => [k, v.etag]));
    fake.requests.length = 0;
    await publisher.publish([], first.hashes);
    expect(calls().filter((c) => c.startsWith("DELETE"))).toEqual([
      `DELETE subscriptions/vk2 If-Match:${etags["subscriptions/vk2"]} → 200`,
      `DELETE subscriptions/vk1 If-Match:${etags["subscriptions/vk1"]} → 200`,
      `DELETE products/gold If-Match:${etags["products/gold"]} → 200`,
      `DELETE apis/proj-x If-Match:${etags["apis/proj-x"]} → 200`,
    ]);
    expect([...fake.state.keys()]).toEqual([]);
  });

  it("a failed subscription write reports status and message, but the error carries no key", async () => {
    fake.beforeNext("PUT", "subscriptions/vk1", () => fake.failNext(400));
    const err = await errorOf(publisher.publish(ENTITIES, {}));
    expect(err).toBeInstanceOf(GatewayPublishError);
    const e = err as GatewayPublishError;
    expect(e.status).toBe(400);
    expect(e.ref).toBe("subscription:vk1");
    noKeyIn("the error", e);
    noKeyIn("the error's cause", e.cause);
  });

  it("reading keys back that the SDK cannot parse fails without them: the SDK's error would quote the body, which is the keys", async () => {
    await publisher.publish(ENTITIES, {});
    const garbled = armPublisher(
      {
        ...fake,
        httpClient: {
          sendRequest: async (r: PipelineRequest) => {
            const res = await fake.httpClient.sendRequest(r);
            // A truncated answer: the keys, then nothing.
            return r.url.includes("/listSecrets?") ? { ...res, bodyAsText: `${res.bodyAsText!.slice(0, -1)},"` } : res;
          },
        },
      } as ArmFake,
      resolveSecret,
    );
    const err = await errorOf(garbled.read(["subscription:vk1"]));
    expect((err as Error).message).toBe("reading the subscription's keys failed (HTTP 200): the answer could not be read");
    noKeyIn("the error", err);
    // An error answer keeps its message (it holds no key, and says what to fix).
    fake.beforeNext("POST", "subscriptions/vk1/listSecrets", () => fake.failNext(403));
    const refused = await errorOf(publisher.read(["subscription:vk1"]));
    expect((refused as Error).message).toMatch(/^reading the subscription's keys failed \(HTTP 403\): fault 403 injected by the test$/);
  });

  it("without resolveSecret, everything but subscriptions publishes", async () => {
    const bare = armPublisher(fake);
    await expect(bare.publish(ENTITIES, {})).rejects.toThrow(/subscription vk1: this publisher was created without resolveSecret/);
    expect(fake.state.has("products/gold/policies/policy")).toBe(true);
  });
});

describe("FilePublisher on disk: APIs, products, subscriptions", () => {
  let dir: string;
  let publisher: FilePublisher;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "aigov-apim-"));
    tempDirs.push(dir);
    publisher = new FilePublisher(dir, { resolveSecret });
  });

  /** The ARM-shaped files (the publish marker, which only tells the local gateway to look, aside). */
  const files = async (root: string): Promise<string[]> =>
    (await readdir(root, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile() && !(e.parentPath === root && e.name === PUBLISHED_MARKER))
      .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
      .sort();
  const json = async (path: string) => JSON.parse(await readFile(join(dir, path), "utf8")) as unknown;

  it("mirrors the ARM paths; a subscription's file names its secrets instead of holding the keys", async () => {
    await publisher.publish(ENTITIES, {});
    expect(await files(dir)).toEqual([
      "apis/proj-x.json",
      "apis/proj-x/operations/aigov-get.json",
      "apis/proj-x/operations/aigov-post.json",
      "apis/proj-x/policies/policy.json",
      "apis/proj-x/policies/policy.xml",
      "products/gold.json",
      "products/gold/apis/proj-x.json",
      "products/gold/policies/policy.json",
      "products/gold/policies/policy.xml",
      "subscriptions/vk1.json",
      "subscriptions/vk2.json",
    ]);
    expect(await json("apis/proj-x/operations/aigov-get.json")).toEqual({ properties: { displayName: "GET (every path)", method: "GET", urlTemplate: "/*" } });
    expect(await json("products/gold/apis/proj-x.json")).toEqual({});
    expect(await json("subscriptions/vk1.json")).toEqual({
      properties: {
        scope: "/products/gold",
        displayName: "alice's key",
        state: "active",
        primaryKey: { secretRef: { name: "vk-1", version: "v1" } },
        secondaryKey: { secretRef: { name: "vk-1b", version: "v1" } },
      },
    });
  });

  it("deleting an API or product removes its operations or links with it", async () => {
    const first = await publisher.publish(ENTITIES, {});
    await publisher.publish([], first.hashes);
    expect(await files(dir)).toEqual([]);
  });

  it("a hand-edited operation reads back as a changed API", async () => {
    const first = await publisher.publish(ENTITIES, {});
    await writeFile(join(dir, "apis/proj-x/operations/aigov-get.json"), JSON.stringify({ properties: { displayName: "x", method: "DELETE", urlTemplate: "/*" } }));
    const read = await publisher.read(["api:proj-x"]);
    expect(readBackHash(read["api:proj-x"] as GatewayReadBack)).not.toBe(first.hashes["api:proj-x"]);
  });
});
