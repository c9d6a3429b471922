import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type MockBackends, startMockBackends } from "../../src/local-backends/index.js";
import { send } from "./http.js";

let mock: MockBackends;
beforeAll(async () => {
  mock = await startMockBackends();
});
afterAll(() => mock.close());
beforeEach(() => mock.reset());

const post = (path: string, body: unknown, host = "eastus.mock.localhost") => send(mock.port, { host, path, body });

interface ChatCompletion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: { index: number; message: { role: string; content: string }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

describe("chat completions", () => {
  it("answers w1…wn with usage counted in words", async () => {
    const r = await post("/v1/chat/completions", {
      model: "gpt-4o",
      max_tokens: 5,
      messages: [
        { role: "system", content: "You are terse." },
        { role: "user", content: [{ type: "text", text: "What is  the capital\nof France?" }, { type: "image_url", image_url: { url: "x" } }] },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["x-mock-model"]).toBe("gpt-4o");
    expect(r.headers["x-mock-instance"]).toBe("eastus.mock.localhost");
    const body = r.json<ChatCompletion>();
    expect(body).toMatchObject({
      object: "chat.completion",
      model: "gpt-4o",
      choices: [{ index: 0, message: { role: "assistant", content: "w1 w2 w3 w4 w5" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 },
    });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(60);
  });

  it("defaults to 8 words, honours max_completion_tokens, and counts at least one prompt token", async () => {
    const dflt = (await post("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: "hi there" }] })).json<ChatCompletion>();
    expect(dflt.choices[0]?.message.content).toBe("w1 w2 w3 w4 w5 w6 w7 w8");
    expect(dflt.usage).toEqual({ prompt_tokens: 2, completion_tokens: 8, total_tokens: 10 });

    const r = await post("/v1/chat/completions", { model: "m", max_completion_tokens: 3, messages: [{ role: "user", content: "   " }] });
    expect(r.json<ChatCompletion>().usage).toEqual({ prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 });
  });

  it("serves the deployment named in the path, whatever the body says", async () => {
    const r = await post("/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21", {
      model: "something-else",
      messages: [{ role: "user", content: "hello" }],
    });
    expect(r.status).toBe(200);
    expect(r.headers["x-mock-model"]).toBe("gpt-4o-mini");
    expect(r.json<ChatCompletion>().model).toBe("gpt-4o-mini");
  });

  it("serves the body's model under /openai/v1 and any other base path", async () => {
    for (const path of ["/openai/v1/chat/completions", "/some/base/chat/completions/"]) {
      const r = await post(path, { model: "phi-4", messages: [{ role: "user", content: "hello" }] });
      expect(r.status, path).toBe(200);
      expect(r.json<ChatCompletion>().model).toBe("phi-4");
      expect(r.headers["x-mock-model"]).toBe("phi-4");
    }
  });

  it("rejects a bad max_tokens and missing messages with OpenAI-shaped 400s", async () => {
    const bad = await post("/v1/chat/completions", { model: "m", max_tokens: 0, messages: [{ role: "user", content: "x" }] });
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({ error: { message: "'max_tokens' must be an integer ≥ 1", type: "invalid_request_error", code: "invalid_request" } });
    const none = await post("/v1/chat/completions", { model: "m" });
    expect(none.status).toBe(400);
    expect(none.json()).toMatchObject({ error: { type: "invalid_request_error", message: expect.stringContaining("messages") } });
  });
});

describe("completions", () => {
  it("answers a text_completion with usage over a prompt array", async () => {
    const r = await post("/openai/deployments/davinci/completions?api-version=2024-10-21", { prompt: ["one two", "three"], max_tokens: 2 });
    expect(r.status).toBe(200);
    const body = r.json<{ id: string }>();
    expect(body).toMatchObject({
      object: "text_completion",
      model: "davinci",
      choices: [{ index: 0, text: "w1 w2", finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
    expect(body.id).toMatch(/^cmpl-/);
  });

  it("takes a string prompt on /v1", async () => {
    const r = await post("/v1/completions", { model: "gpt-3.5-turbo-instruct", prompt: "Say this is a test" });
    expect(r.json()).toMatchObject({ model: "gpt-3.5-turbo-instruct", usage: { prompt_tokens: 5, completion_tokens: 8, total_tokens: 13 } });
  });
});

describe("responses", () => {
  it("answers a string input with a completed message and input/output usage", async () => {
    const r = await post("/openai/v1/responses", { model: "gpt-4.1", input: "tell me a story", max_output_tokens: 4 });
    expect(r.status).toBe(200);
    const body = r.json<{ id: string; created_at: number; output: { id: string }[] }>();
    expect(body).toMatchObject({
      object: "response",
      model: "gpt-4.1",
      status: "completed",
      output: [
        { type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: "w1 w2 w3 w4", annotations: [] }] },
      ],
      usage: { input_tokens: 4, output_tokens: 4, total_tokens: 8 },
    });
    expect(body.id).toMatch(/^resp_/);
    expect(body.output[0]?.id).toMatch(/^msg_/);
    expect(typeof body.created_at).toBe("number");
  });

  it("counts a message-array input", async () => {
    const r = await post("/openai/deployments/gpt-4.1/responses?api-version=2025-04-01-preview", {
      input: [
        { role: "developer", content: "be brief" },
        { role: "user", content: [{ type: "input_text", text: "what now" }] },
      ],
    });
    expect(r.json()).toMatchObject({ model: "gpt-4.1", usage: { input_tokens: 4, output_tokens: 8, total_tokens: 12 } });
  });
});

describe("unknown routes and bad bodies", () => {
  it("404s other paths and non-POST methods in OpenAI shape", async () => {
    for (const [method, path] of [
      ["GET", "/v1/models"],
      ["GET", "/v1/chat/completions"],
      ["POST", "/v1/chat/completion"],
    ] as const) {
      const r = await send(mock.port, { method, path, ...(method === "POST" ? { body: {} } : {}) });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.json()).toEqual({ error: { message: `The mock model endpoint has no ${method} ${path}`, type: "invalid_request_error", code: "not_found" } });
      expect(r.headers["x-mock-instance"]).toBe("eastus.mock.localhost");
    }
  });

  it("400s malformed, empty and non-object JSON", async () => {
    const cases: [string | undefined, string][] = [
      ['{"model": "x", ', "The request body is not valid JSON."],
      [undefined, "The request body is empty."],
      ["[1,2]", "The request body must be a JSON object."],
    ];
    for (const [raw, message] of cases) {
      const r = await send(mock.port, { method: "POST", path: "/v1/chat/completions", ...(raw === undefined ? {} : { raw }) });
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({ error: { message, type: "invalid_request_error", code: "invalid_json" } });
    }
  });

  it("records malformed bodies as their raw text", async () => {
    await send(mock.port, { path: "/v1/chat/completions?x=1", raw: "not json", headers: { "x-trace": "t1" } });
    const [rec] = mock.requests("eastus.mock.localhost");
    expect(rec).toMatchObject({ method: "POST", path: "/v1/chat/completions", query: { x: "1" }, body: "not json" });
    expect(rec?.headers["x-trace"]).toBe("t1");
    expect(rec?.headers.host).toBe("eastus.mock.localhost");
  });
});
