/**
 * llm-semantic-cache-lookup's partitions at the local gateway: vary-by values are kept apart, so two
 * lists of values that concatenate to the same text (["ab", "c"] and ["a", "bc"]) never share answers.
 */
import { afterEach, describe, expect, it } from "vitest";
import { call, GatewayFolder, policies, startHarness, type Harness } from "./support.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const header = (name: string) => `<vary-by>@(context.Request.Headers.GetValueOrDefault("${name}", ""))</vary-by>`;

function cacheFolder() {
  const lookup = `<llm-semantic-cache-lookup score-threshold="0.05" embeddings-backend-id="emb" embeddings-backend-auth="system-assigned">${header("x-a")}${header("x-b")}</llm-semantic-cache-lookup>`;
  return new GatewayFolder()
    .json("apis/api1", { displayName: "API 1", path: "t1/p1", protocols: ["https"], subscriptionRequired: true, subscriptionKeyParameterNames: { header: "api-key" } })
    .json("apis/api1/operations/chat", { displayName: "chat", method: "POST", urlTemplate: "/v1/chat/completions" })
    .json("apis/api1/policies/policy", { format: "xml", value: "" })
    .xml("apis/api1/policies/policy", policies(`${lookup}<set-backend-service backend-id="be1" />`, "<base />", `<llm-semantic-cache-store duration="600" /><base />`))
    .json("backends/be1", { type: "Single", url: "https://eastus.mock.localhost" })
    .json("backends/emb", { type: "Single", url: "https://emb.cognitiveservices.azure.com/openai/deployments/e/embeddings" })
    .json("subscriptions/k1", { scope: "/apis/api1", displayName: "k1", state: "active", primaryKey: "key-one", secondaryKey: "key-two" });
}

describe("local gateway: the semantic cache's partitions", () => {
  it("keeps vary-by values apart: values that concatenate alike are different partitions", async () => {
    h = await startHarness(cacheFolder());
    expect(h.gateway.issues()).toEqual([]);
    const body = { model: "m", max_tokens: 4, messages: [{ role: "user", content: "What is the capital of France" }] };
    const ask = (a: string, b: string) => call(h!.gateway, "/t1/p1/v1/chat/completions", { key: "key-one", headers: { "x-a": a, "x-b": b }, body });
    const calls = () => h!.mocks.requests("eastus.mock.localhost").length;
    const first = await ask("ab", "c");
    expect([first.status, calls()]).toEqual([200, 1]);
    // Same partition values: a hit.
    expect([(await ask("ab", "c")).json.id, calls()]).toEqual([first.json.id, 1]);
    // "a" + "bc" is "ab" + "c" concatenated, but another partition: the backend answers.
    const other = await ask("a", "bc");
    expect([other.status, calls()]).toEqual([200, 2]);
    expect(other.json.id).not.toBe(first.json.id);
  });
});
