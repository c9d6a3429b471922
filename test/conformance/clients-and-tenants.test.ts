/**
 * Conformance: unmodified clients (the openai SDK, OpenAI-style and Azure OpenAI configurations, with
 * streaming) through the local gateway; and two tenants on one gateway, neither able to affect the
 * other's artifacts or traffic.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { AzureOpenAI } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AigovClient } from "../../src/client/index.js";
import type { Project } from "../../src/domain/projects/schema.js";
import { Governed, NOT_SERVED, refusal } from "../support/governed.js";

let g: Governed;
let dev: AigovClient;
let project: Project;

beforeAll(async () => {
  g = await Governed.start("t-clients");
  dev = await g.as("dora", ["Developer"]);
  project = await g.project("clients");
  await g.model(project.id, "gpt-4o-mini", { modelName: "mini-2024-07-18" });
  await g.model(project.id, "azure-mini", { provider: "azure-openai", modelName: "azure-mini", hosts: ["aoai.mock.localhost"] });
  await g.model(project.id, "text-embedding-3-small", { modelName: "te3s" });
  await g.publish("clients");
});
afterAll(() => g.stop());

describe("conformance: unmodified openai SDK clients through the local gateway", () => {
  it("the OpenAI-style client (base URL, key in the api-key header): chat, streaming, embeddings", async () => {
    const key = (await g.key(dev, project.id, { name: "sdk" })).key;
    const client = new OpenAI({ baseURL: `${g.base(project.id)}/v1`, apiKey: "not-used-by-the-gateway", defaultHeaders: { "api-key": key }, maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hello there" }], max_tokens: 4 });
    expect(chat.model).toBe("mini-2024-07-18");
    expect(chat.usage).toEqual({ prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 });
    expect(chat.choices[0]?.message.content).toBe("w1 w2 w3 w4");

    const stream = await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "stream please" }], max_tokens: 5, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text.trim().split(/\s+/)).toHaveLength(5);
    expect(usage).toMatchObject({ prompt_tokens: 2, completion_tokens: 5, total_tokens: 7 });

    const emb = await client.embeddings.create({ model: "text-embedding-3-small", input: "vectors please" });
    expect(emb.data[0]?.embedding).toHaveLength(64);
    const refused = await client.chat.completions.create({ model: "not-registered", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("the Azure OpenAI client (deployment in the path, api-key header), streaming, with token limits counted from the streamed usage", async () => {
    const k = await g.key(dev, project.id, { name: "azure sdk", limits: { tokensPerMinute: 25 } });
    const client = new AzureOpenAI({ endpoint: g.base(project.id), apiKey: k.key, apiVersion: "2024-10-21", deployment: "azure-mini", maxRetries: 0 });
    const streamOnce = async () => {
      const stream = await client.chat.completions.create({ model: "azure-mini", messages: [{ role: "user", content: "one two" }], max_tokens: 8, stream: true, stream_options: { include_usage: true } });
      let n = 0;
      for await (const chunk of stream) n += chunk.choices[0]?.delta.content ? 1 : 0;
      return n;
    };
    // 10 tokens a stream (2 prompt + 8 completion, from the usage chunk). A request passes while the key's
    // count is under its limit (prompt tokens are not estimated ahead): 0, 10, 20 pass, at 30 it is refused.
    expect(await streamOnce()).toBe(8);
    expect(await streamOnce()).toBe(8);
    expect(await streamOnce()).toBe(8);
    const refused = await streamOnce().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect(g.t.backends.requests("aoai.mock.localhost").map((r) => r.path)).toEqual(Array(3).fill("/openai/deployments/azure-mini/chat/completions"));
  });
});

describe("conformance: the gateway's request and token logs", () => {
  it("writes a record per request and per LLM call, in the columns of APIM's gateway and LLM logs, joined on CorrelationId", async () => {
    const k = await g.key(dev, project.id, { name: "logged" });
    const ok = await g.chat(project.id, k.key, "gpt-4o-mini", { words: 3, maxTokens: 4 });
    expect(ok.status).toBe(200);
    await g.chat(project.id, "aigw_wrong", "gpt-4o-mini");
    await g.t.gateway.flushLogs();
    const day = new Date(g.t.clock.now()).toISOString().slice(0, 10);
    // One file per table and hour of the day.
    const read = (table: string) =>
      readdirSync(join(g.t.app.dataDir, "gateway", table, day))
        .flatMap((hour) => readFileSync(join(g.t.app.dataDir, "gateway", table, day, hour), "utf8").trim().split("\n"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = read("ApiManagementGatewayLogs");
    const llm = read("ApiManagementGatewayLlmLog");
    const mine = requests.filter((r) => r.ApimSubscriptionId === g.names.subscription(k.id));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      ApiId: g.names.api(project.id),
      OperationId: "v1-chat-completions",
      ResponseCode: 200,
      BackendResponseCode: 200,
      IsRequestSuccess: true,
      Method: "POST",
      Cache: "none",
    });
    expect(String(mine[0]!.BackendId)).toMatch(new RegExp(`^${g.names.prefix}-be-`));
    const tokens = llm.filter((r) => r.CorrelationId === mine[0]!.CorrelationId);
    expect(tokens).toEqual([expect.objectContaining({ DeploymentName: "gpt-4o-mini", ModelName: "mini-2024-07-18", PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7, IsStreamCompletion: false })]);
    expect(requests.some((r) => r.ResponseCode === 401 && r.LastErrorReason === "SubscriptionKeyInvalid")).toBe(true);
  });
});

describe("conformance: two tenants on one gateway", () => {
  it("neither can affect the other's artifacts or traffic", async () => {
    const other = await Governed.start("t-clients-b", g.t);
    const theirs = await other.project("clients");
    await other.model(theirs.id, "gpt-4o-mini", { modelName: "b-mini" });
    await other.publish("b");
    const bDev = await other.as("bob", ["Developer"]);
    const bKey = (await other.key(bDev, theirs.id, { name: "b" })).key;
    const aKey = (await g.key(dev, project.id, { name: "a" })).key;
    // Different gateway keys: different API paths, fragments, backends.
    expect(other.names.prefix).not.toBe(g.names.prefix);
    expect((await g.chat(project.id, aKey, "gpt-4o-mini")).json.model).toBe("mini-2024-07-18");
    expect((await other.chat(theirs.id, bKey, "gpt-4o-mini")).json.model).toBe("b-mini");
    // A key of one tenant is not a key of the other's APIs.
    expect((await g.chat(project.id, bKey, "gpt-4o-mini")).status).toBe(401);
    expect((await other.chat(theirs.id, aKey, "gpt-4o-mini")).status).toBe(401);
    // B switches its models pillar off and publishes: A's fragments and traffic are untouched.
    const aFragments = readdirSync(join(g.t.app.dataDir, "apim", "policyFragments")).filter((f) => f.startsWith(g.names.prefix));
    expect(aFragments.length).toBeGreaterThan(0);
    const cur = await other.admin.projects.get(theirs.id);
    await other.admin.projects.update(theirs.id, { pillars: { models: false } }, cur.etag);
    await other.publish("b off");
    for (const f of aFragments) expect(existsSync(join(g.t.app.dataDir, "apim", "policyFragments", f)), f).toBe(true);
    expect((await g.chat(project.id, aKey, "gpt-4o-mini")).status).toBe(200);
    expect(refusal(await other.chat(theirs.id, bKey, "gpt-4o-mini"))).toEqual(NOT_SERVED);
  });
});
