import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type MockBackends, startMockBackends } from "../../src/local-backends/index.js";
import { send, ssePayloads } from "./http.js";

let mock: MockBackends;
beforeAll(async () => {
  mock = await startMockBackends();
});
afterAll(() => mock.close());
beforeEach(() => mock.reset());

interface Chunk {
  id: string;
  object: string;
  model: string;
  choices: { index: number; delta?: { role?: string; content?: string }; text?: string; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

async function stream(path: string, body: unknown) {
  const r = await send(mock.port, { path, body });
  expect(r.status).toBe(200);
  expect(r.headers["content-type"]).toBe("text/event-stream");
  expect(r.headers["content-length"]).toBeUndefined();
  const payloads = ssePayloads(r.text);
  expect(payloads.at(-1)).toBe("[DONE]");
  return { reply: r, chunks: payloads.slice(0, -1).map((p) => JSON.parse(p) as Chunk) };
}

describe("chat streaming", () => {
  it("sends a chunk per word, then a stop chunk, and no usage unless asked", async () => {
    const { reply, chunks } = await stream("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", {
      stream: true,
      max_tokens: 3,
      messages: [{ role: "user", content: "stream this please" }],
    });
    expect(reply.headers["x-mock-model"]).toBe("gpt-4o");
    expect(reply.headers["x-mock-instance"]).toBe("eastus.mock.localhost");
    expect(chunks.map((c) => c.choices)).toEqual([
      [{ index: 0, delta: { role: "assistant", content: "w1" }, finish_reason: null }],
      [{ index: 0, delta: { content: " w2" }, finish_reason: null }],
      [{ index: 0, delta: { content: " w3" }, finish_reason: null }],
      [{ index: 0, delta: {}, finish_reason: "stop" }],
    ]);
    for (const c of chunks) {
      expect(c).toMatchObject({ object: "chat.completion.chunk", model: "gpt-4o", id: chunks[0]?.id });
      expect(c).not.toHaveProperty("usage");
    }
  });

  it("adds a usage-only chunk with include_usage", async () => {
    const { chunks } = await stream("/v1/chat/completions", {
      model: "gpt-4o-mini",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "one two three four" }],
    });
    expect(chunks).toHaveLength(8 + 2);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-2)?.choices).toEqual([{ index: 0, delta: {}, finish_reason: "stop" }]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 4, completion_tokens: 8, total_tokens: 12 } });
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    expect(text).toBe("w1 w2 w3 w4 w5 w6 w7 w8");
  });
});

describe("completions streaming", () => {
  it("streams text chunks and usage", async () => {
    const { chunks } = await stream("/v1/completions", {
      model: "instruct",
      prompt: "a b",
      max_tokens: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(chunks.map((c) => c.choices)).toEqual([
      [{ index: 0, text: "w1", logprobs: null, finish_reason: null }],
      [{ index: 0, text: " w2", logprobs: null, finish_reason: null }],
      [{ index: 0, text: "", logprobs: null, finish_reason: "stop" }],
      [],
    ]);
    expect(chunks[0]).toMatchObject({ object: "text_completion", model: "instruct" });
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });
  });

  it("refuses to stream /responses rather than answering unstreamed", async () => {
    const r = await send(mock.port, { path: "/v1/responses", body: { model: "m", input: "x", stream: true } });
    expect(r.status).toBe(400);
    expect(r.json()).toEqual({
      error: { message: "the mock does not stream /responses; send stream: false", type: "invalid_request_error", code: "invalid_request" },
    });
  });
});
