import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileTexts } from "../../src/local-gateway/runtime/folder.js";
import { loadSnapshot, SnapshotCache } from "../../src/local-gateway/runtime/snapshot.js";
import { call, GatewayFolder, policies, startHarness, type Harness } from "./support.js";

const chat = (words: number, maxTokens = 8) => ({ model: "m", max_tokens: maxTokens, messages: [{ role: "user", content: Array.from({ length: words }, (_, i) => `w${i}`).join(" ") }] });

function basicFolder(inbound: string, extra: (f: GatewayFolder) => void = () => undefined) {
  const f = new GatewayFolder()
    .json("apis/api1", { displayName: "API 1", path: "t1/p1", protocols: ["https"], subscriptionRequired: true, subscriptionKeyParameterNames: { header: "api-key" } })
    .json("apis/api1/operations/chat", { displayName: "chat", method: "POST", urlTemplate: "/v1/chat/completions" })
    .json("apis/api1/operations/dep", { displayName: "dep", method: "POST", urlTemplate: "/openai/deployments/{deployment-id}/chat/completions" })
    .json("apis/api1/policies/policy", { format: "xml", value: "" })
    .xml("apis/api1/policies/policy", policies(`${inbound}<set-backend-service backend-id="be1" />`))
    .json("backends/be1", { type: "Single", url: "https://eastus.mock.localhost" })
    .json("subscriptions/k1", { scope: "/apis/api1", displayName: "k1", state: "active", primaryKey: "key-one", secondaryKey: "key-two" })
    .json("subscriptions/k2", { scope: "/apis/api1", displayName: "k2", state: "suspended", primaryKey: "key-suspended", secondaryKey: "key-s2" });
  extra(f);
  return f;
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("local gateway: requests through published files", () => {
  it("authenticates subscription keys the way APIM does (header, query, both slots, state, scope)", async () => {
    h = await startHarness(basicFolder(""));
    expect(h.gateway.issues()).toEqual([]);
    const ok = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(3) });
    expect(ok.status).toBe(200);
    expect(ok.json.usage).toEqual({ prompt_tokens: 3, completion_tokens: 8, total_tokens: 11 });
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-two", body: chat(3) })).status).toBe(200);
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions?subscription-key=key-one", { body: chat(3) })).status).toBe(200);
    const missing = await call(h.gateway, "/t1/p1/v1/chat/completions", { body: chat(3) });
    expect(missing.status).toBe(401);
    expect(missing.json.message).toMatch(/missing subscription key/);
    expect(missing.headers.get("www-authenticate")).toContain('name="api-key"');
    // The default header name is not accepted once the API names its own.
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { headers: { "Ocp-Apim-Subscription-Key": "key-one" }, body: chat(3) })).status).toBe(401);
    const suspended = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-suspended", body: chat(3) });
    expect(suspended.status).toBe(401);
    expect(suspended.json.message).toMatch(/invalid subscription key/);
    expect((await call(h.gateway, "/t1/p1/v1/nope", { key: "key-one", body: {} })).status).toBe(404);
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { method: "GET", key: "key-one" })).status).toBe(404);
    // The backend got the request (with the client's key still in it: removing it is the policy's job).
    expect(h.mocks.requests("eastus.mock.localhost").map((r) => r.path)).toEqual(["/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions"]);
  });

  it("runs on-error for APIM's predefined errors (no API, no operation, no or an invalid key) with context.LastError, the global scope alone when no API matched", async () => {
    const global = `<policies><inbound/><backend><forward-request/></backend><outbound/><on-error>
      <return-response><set-status code="418" reason="Teapot"/><set-header name="x-reason" exists-action="override"><value>@(context.LastError.Source + "/" + context.LastError.Reason)</value></set-header><set-header name="x-api" exists-action="override"><value>@(context.Api == null ? "none" : context.Api.Id)</value></set-header><set-header name="x-op" exists-action="override"><value>@(context.Operation == null ? "none" : context.Operation.Id)</value></set-header><set-header name="x-api-scope" exists-action="override"><value>@(context.Variables.GetValueOrDefault&lt;string&gt;("apiScope", "none"))</value></set-header></return-response>
    </on-error></policies>`;
    // The API's on-error runs first and places the global statements with <base/>; the global return-response ends
    // the pipeline there, so what follows <base/> (the 299) never runs.
    h = await startHarness(
      basicFolder("", (f) =>
        f
          .json("policies/policy", { format: "xml", value: "" })
          .xml("policies/policy", global)
          .xml("apis/api1/policies/policy", `<policies><inbound><base/><set-backend-service backend-id="be1"/></inbound><backend><base/></backend><outbound><base/></outbound><on-error><set-variable name="apiScope" value="ran"/><base/><set-status code="299" reason="After"/></on-error></policies>`),
      ),
    );
    expect(h.gateway.issues()).toEqual([]);
    const seen = async (path: string, init: Parameters<typeof call>[2]) => {
      const r = await call(h!.gateway, path, init);
      return [r.status, r.headers.get("x-reason"), r.headers.get("x-api"), r.headers.get("x-op"), r.headers.get("x-api-scope")];
    };
    expect(await seen("/nowhere", { key: "key-one", body: {} })).toEqual([418, "configuration/OperationNotFound", "none", "none", "none"]);
    expect(await seen("/t1/p1/v1/nope", { key: "key-one", body: {} })).toEqual([418, "configuration/OperationNotFound", "api1", "none", "ran"]);
    expect(await seen("/t1/p1/v1/chat/completions", { body: chat(1) })).toEqual([418, "authorization/SubscriptionKeyNotFound", "api1", "chat", "ran"]);
    expect(await seen("/t1/p1/v1/chat/completions", { key: "key-suspended", body: chat(1) })).toEqual([418, "authorization/SubscriptionKeyInvalid", "api1", "chat", "ran"]);
    // A valid key goes on as before, and the backend saw only it.
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(1) })).status).toBe(200);
    expect(h.mocks.requests("eastus.mock.localhost")).toHaveLength(1);
  });

  it("counts tokens from the backend's usage: llm-token-limit answers 429 with Retry-After, then frees up", async () => {
    h = await startHarness(basicFolder(`<llm-token-limit counter-key="@(context.Subscription.Id)" tokens-per-minute="30" estimate-prompt-tokens="false" remaining-tokens-header-name="x-remaining" />`));
    expect(h.gateway.issues()).toEqual([]);
    const first = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(2, 10) });
    expect(first.status).toBe(200);
    expect(first.headers.get("x-remaining")).toBe("30");
    for (let i = 0; i < 2; i++) expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(2, 10) })).status).toBe(200);
    const over = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(2, 10) });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(h.mocks.requests("eastus.mock.localhost")).toHaveLength(3);
    h.clock.advance(61_000);
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(2, 10) })).status).toBe(200);
  });

  it("reports a document it cannot run as a load error with file and line, and answers 500 naming it", async () => {
    h = await startHarness(basicFolder(`<set-variable name="x" value="@(context.Request.Nope)" />\n<quota-by-key calls="1" renewal-period="300" counter-key="x" />`));
    const issues = h.gateway.issues();
    expect(issues.map((i) => [i.file, i.message.replace(/'.*$/, "")])).toEqual([
      ["apis/api1/policies/policy.xml", "attribute "],
      ["apis/api1/policies/policy.xml", "<quota-by-key> is not a policy the local gateway implements"],
    ]);
    expect(issues[0]!.message).toMatch(/member 'Nope'/);
    const res = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(1) });
    expect(res.status).toBe(500);
    expect(res.json.message).toMatch(/could not load apis\/api1\/policies\/policy.xml \(line 1\)/);
    expect(h.mocks.requests("eastus.mock.localhost")).toHaveLength(0);
  });

  it("takes a document removed between listing and reading (a publish deleting it) as absent, not as a load error", async () => {
    // A dangling link cannot be read (ENOENT), like a file removed after the folder was read.
    const f = basicFolder("", (g) => {
      mkdirSync(join(g.root, "policies"), { recursive: true });
      symlinkSync(join(g.root, "gone.json"), join(g.root, "apis/api2.json"));
      symlinkSync(join(g.root, "gone.json"), join(g.root, "subscriptions/k3.json"));
      symlinkSync(join(g.root, "gone.xml"), join(g.root, "policies/policy.xml"));
    });
    h = await startHarness(f);
    expect(h.gateway.issues()).toEqual([]);
    const res = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(1) });
    expect(res.status).toBe(200);
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "k3-never-loaded", body: chat(1) })).status).toBe(401);
  });

  it("a reload serves what changed and only that: a fragment, a named value, a document rewritten at the same size, a removed file", async () => {
    const header = (name: string) => `<set-header name="x-seen" exists-action="override"><value>${name}</value></set-header>`;
    const f = basicFolder(`<include-fragment fragment-id="frag1" />`, (g) =>
      g
        .xml("policyFragments/frag1", `<fragment>${header("{{who}}")}</fragment>`)
        .json("policyFragments/frag1", { format: "xml", value: "" })
        .json("namedValues/who", { displayName: "who", value: "alpha" }),
    );
    h = await startHarness(f);
    const seen = async () => {
      await call(h!.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(1) });
      return h!.mocks.requests("eastus.mock.localhost").at(-1)?.headers["x-seen"];
    };
    expect(h.gateway.issues()).toEqual([]);
    expect(await seen()).toBe("alpha");
    // The API's document is unchanged; what it includes is not.
    f.json("namedValues/who", { displayName: "who", value: "bravo" });
    await h.gateway.reload();
    expect(await seen()).toBe("bravo");
    f.xml("policyFragments/frag1", `<fragment>${header("frag-2")}</fragment>`);
    await h.gateway.reload();
    expect(await seen()).toBe("frag-2");
    // The same number of bytes, in place.
    f.xml("policyFragments/frag1", `<fragment>${header("frag-3")}</fragment>`);
    await h.gateway.reload();
    expect(await seen()).toBe("frag-3");
    f.xml("apis/api1/policies/policy", policies(`${header("doc-1")}<set-backend-service backend-id="be1" />`));
    await h.gateway.reload();
    expect(await seen()).toBe("doc-1");
    f.xml("apis/api1/policies/policy", policies(`${header("doc-2")}<set-backend-service backend-id="be1" />`));
    await h.gateway.reload();
    expect(await seen()).toBe("doc-2");
    // A key's file removed: the key no longer opens the API.
    rmSync(join(f.root, "subscriptions/k1.json"));
    await h.gateway.reload();
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(1) })).status).toBe(401);
    expect(h.gateway.issues()).toEqual([]);
  });

  it("a reload reuses what did not change: the same policy documents, until their text or a fragment changes", async () => {
    const op = (name: string) => policies(`<set-header name="x-op" exists-action="override"><value>${name}</value></set-header>`);
    const f = basicFolder(`<include-fragment fragment-id="frag1" />`, (g) =>
      g
        .xml("policyFragments/frag1", `<fragment><set-header name="x-f" exists-action="override"><value>f1</value></set-header></fragment>`)
        .json("policyFragments/frag1", { format: "xml", value: "" })
        .json("apis/api1/operations/chat/policies/policy", { format: "xml", value: "" })
        .xml("apis/api1/operations/chat/policies/policy", op("chat-1"))
        .json("apis/api1/operations/dep/policies/policy", { format: "xml", value: "" })
        .xml("apis/api1/operations/dep/policies/policy", op("dep-1")),
    );
    const sources = { resolveSecret: async () => "k", resolveKeyVaultSecret: async () => undefined };
    const cache = new SnapshotCache();
    const docs = async () => {
      const snap = await loadSnapshot(f.root, sources, cache);
      expect(snap.issues).toEqual([]);
      const api = snap.apis.find((a) => a.id === "api1")!;
      return { api: api.policy, chat: api.operations.find((o) => o.id === "chat")!.policy, dep: api.operations.find((o) => o.id === "dep")!.policy };
    };
    const first = await docs();
    const same = await docs();
    for (const d of ["api", "chat", "dep"] as const) expect(same[d]).toBe(first[d]);
    f.xml("apis/api1/operations/chat/policies/policy", op("chat-2"));
    const chatChanged = await docs();
    expect(chatChanged.chat).not.toBe(first.chat);
    expect(chatChanged.api).toBe(first.api);
    expect(chatChanged.dep).toBe(first.dep);
    f.xml("policyFragments/frag1", `<fragment><set-header name="x-f" exists-action="override"><value>f2</value></set-header></fragment>`);
    const fragmentChanged = await docs();
    for (const d of ["api", "chat", "dep"] as const) expect(fragmentChanged[d]).not.toBe(chatChanged[d]);

  });

  it("a file read as it was being modified is read again, whatever its stamp says; once read settled, it is not", async () => {
    // A second edit within the file system clock's tick, at the same size, keeps the stamp: the scan says the file is recent.
    const file = join(new GatewayFolder().xml("x", "v1").root, "x.xml");
    const texts = new FileTexts();
    expect(await texts.read(file, { stamp: "same", recent: true })).toBe("v1");
    writeFileSync(file, "v2");
    expect(await texts.read(file, { stamp: "same", recent: true })).toBe("v2");
    expect(await texts.read(file, { stamp: "same", recent: false })).toBe("v2");
    writeFileSync(file, "v3");
    expect(await texts.read(file, { stamp: "same", recent: false })).toBe("v2"); // settled: the stamp is trusted
    expect(await texts.read(file, { stamp: "new", recent: false })).toBe("v3");
  });

  it("runs cors as APIM documents it: preflights from the effective inbound's cors statements, headers on whatever answers, unmatched origins left alone", async () => {
    const corsOf = (origin: string, terminate: boolean) =>
      `<cors allow-credentials="false" terminate-unmatched-request="${terminate}"><allowed-origins><origin>${origin}</origin></allowed-origins><allowed-methods preflight-result-max-age="300"><method>POST</method></allowed-methods><allowed-headers><header>api-key</header><header>content-type</header></allowed-headers><expose-headers><header>x-remaining</header></expose-headers></cors>`;
    const folder = (apiTerminates: boolean) =>
      basicFolder("", (f) =>
        f
          // The API's cors before <base/> (first in the effective inbound), the global one after it.
          .xml("apis/api1/policies/policy", `<policies><inbound>${corsOf("https://a.example", apiTerminates)}<base /><set-backend-service backend-id="be1" /></inbound><backend><base /></backend><outbound><base /></outbound><on-error><base /></on-error></policies>`)
          .xml("policies/policy", `<policies><inbound>${corsOf("https://b.example:443", false)}</inbound><backend><forward-request /></backend><outbound /><on-error /></policies>`),
      );
    h = await startHarness(folder(false));
    expect(h.gateway.issues()).toEqual([]);
    const preflight = (origin: string, method = "POST", headers = "api-key") =>
      call(h!.gateway, "/t1/p1/v1/chat/completions", { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers } });
    const a = await preflight("https://a.example");
    expect([a.status, a.headers.get("access-control-allow-origin"), a.headers.get("access-control-allow-methods"), a.headers.get("access-control-max-age")]).toEqual([200, "https://a.example", "POST", "300"]);
    // Not the API's origin, and terminate-unmatched-request="false": the global statement (next in order) answers.
    expect((await preflight("https://b.example")).headers.get("access-control-allow-origin")).toBe("https://b.example");
    for (const refused of [await preflight("https://c.example"), await preflight("https://a.example", "DELETE"), await preflight("https://a.example", "POST", "x-other")]) {
      expect(refused.status).toBe(200);
      expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    }
    // An OPTIONS request that is not a preflight is an ordinary request no operation serves.
    expect((await call(h.gateway, "/t1/p1/v1/chat/completions", { method: "OPTIONS" })).status).toBe(404);

    const actual = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(2), headers: { origin: "https://a.example" } });
    expect([actual.status, actual.headers.get("access-control-allow-origin"), actual.headers.get("access-control-expose-headers")]).toEqual([200, "https://a.example", "x-remaining"]);
    // A key refused before any policy runs: no CORS headers (nothing in APIM's documentation says it adds them there).
    const badKey = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "nope", body: chat(2), headers: { origin: "https://a.example" } });
    expect([badKey.status, badKey.headers.get("access-control-allow-origin")]).toEqual([401, null]);
    const other = await call(h.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", body: chat(2), headers: { origin: "https://c.example" } });
    expect([other.status, other.headers.get("access-control-allow-origin")]).toEqual([200, null]);
    expect(h.mocks.requests("eastus.mock.localhost")).toHaveLength(2);
    await h.close();

    // terminate-unmatched-request="true" on the API's statement: the global one is never reached.
    h = await startHarness(folder(true));
    expect((await preflight("https://b.example")).headers.get("access-control-allow-origin")).toBeNull();
  });

  it("refuses cors where APIM's reference does not put it: nested, twice in a section, outside inbound, with a bad origin", async () => {
    const c = (origin = "https://a.example") => `<cors><allowed-origins><origin>${origin}</origin></allowed-origins><allowed-headers><header>api-key</header></allowed-headers></cors>`;
    h = await startHarness(
      basicFolder(`<choose><when condition="@(true)">${c()}</when></choose>${c()}${c("not an origin")}`, (f) =>
        f.xml("apis/api1/operations/chat/policies/policy", `<policies><inbound><base /></inbound><backend><base /></backend><outbound><base />${c()}</outbound><on-error><base /></on-error></policies>`),
      ),
    );
    expect(h.gateway.issues().map((i) => i.message)).toEqual(
      expect.arrayContaining([
        "the local gateway runs <cors> only as a direct child of <inbound>",
        "<cors> may appear only once in a section (found 3)",
        "<origin> must be * or a URI with scheme, host and port, not 'not an origin'",
        "<cors> is not allowed in the outbound section",
      ]),
    );
  });
});


describe("local gateway: the request's path", () => {
  it("decodes percent-encoded letters, digits, '-', '_' and '~' before matching an operation, as APIM's .NET Uri does", async () => {
    h = await startHarness(
      basicFolder("", (f) =>
        f
          .json("apis/api1/operations/item", { displayName: "item", method: "GET", urlTemplate: "/items/{id}" })
          .json("apis/api1/operations/purge", { displayName: "purge", method: "GET", urlTemplate: "/items/purge" })
          .json("apis/api1/operations/purge/policies/policy", { format: "xml", value: "" })
          .xml("apis/api1/operations/purge/policies/policy", policies(`<return-response><set-status code="403" reason="Forbidden" /></return-response>`)),
      ),
    );
    expect(h.gateway.issues()).toEqual([]);
    // `%70urge` is `purge`: the purge operation answers, never `/items/{id}` with an id a backend would decode.
    for (const path of ["/t1/p1/items/purge", "/t1/p1/items/%70urge", "/t1/p1/items/%70%75%72%67%65"]) expect((await call(h.gateway, path, { method: "GET", key: "key-one" })).status, path).toBe(403);
    expect(h.mocks.requests("eastus.mock.localhost")).toHaveLength(0);
    // Any other id is the item operation's, forwarded (the mock backend has no such path: its 404).
    expect((await call(h.gateway, "/t1/p1/items/%41b", { method: "GET", key: "key-one" })).status).toBe(404);
    expect(h.mocks.requests("eastus.mock.localhost").map((r) => r.path)).toEqual(["/items/Ab"]);
  });
});
