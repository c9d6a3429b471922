import { afterEach, describe, expect, it } from "vitest";
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
});
