import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type MockBackends, startMockBackends } from "../../src/local-backends/index.js";
import { send } from "./http.js";

let mock: MockBackends;
beforeAll(async () => {
  mock = await startMockBackends();
});
afterAll(() => mock.close());
beforeEach(() => mock.reset());

const EAST = "eastus.mock.localhost";
const WEST = "westus.mock.localhost";
const chat = (host = EAST, headers: Record<string, string> = {}) =>
  send(mock.port, { host, headers, path: "/v1/chat/completions", body: { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] } });

describe("injected failures", () => {
  it("fails the next N with 429 and Retry-After, then succeeds", async () => {
    mock.configure(EAST, { failNext: { status: 429, count: 2, retryAfterSeconds: 7 } });
    for (let i = 0; i < 2; i++) {
      const r = await chat();
      expect(r.status).toBe(429);
      expect(r.headers["retry-after"]).toBe("7");
      expect(r.headers["x-mock-instance"]).toBe(EAST);
      expect(r.headers["x-mock-model"]).toBe("gpt-4o");
      expect(r.json()).toEqual({
        error: { message: `Injected failure 429 from mock instance ${EAST}.`, type: "requests", code: "rate_limit_exceeded" },
      });
    }
    const ok = await chat();
    expect(ok.status).toBe(200);
    expect(ok.headers["retry-after"]).toBeUndefined();
    expect(ok.json()).toMatchObject({ usage: { prompt_tokens: 1, completion_tokens: 8, total_tokens: 9 } });
    expect(mock.requests(EAST)).toHaveLength(3);
  });

  it("does not spend failNext on unknown routes", async () => {
    mock.configure(EAST, { failNext: { status: 500, count: 1 } });
    expect((await send(mock.port, { host: EAST, path: "/v1/models" })).status).toBe(404);
    const r = await chat();
    expect(r.status).toBe(500);
    expect(r.headers["retry-after"]).toBeUndefined();
    expect(r.json()).toMatchObject({ error: { type: "server_error", code: "server_error" } });
    expect((await chat()).status).toBe(200);
  });

  it("fails every request while failAlways is set, until it is cleared", async () => {
    mock.configure(EAST, { failAlways: { status: 503, retryAfterSeconds: 1 } });
    for (let i = 0; i < 3; i++) {
      const r = await chat();
      expect(r.status).toBe(503);
      expect(r.headers["retry-after"]).toBe("1");
      expect(r.json()).toMatchObject({ error: { message: `Injected failure 503 from mock instance ${EAST}.` } });
    }
    mock.configure(EAST, { failAlways: undefined });
    expect((await chat()).status).toBe(200);
  });
});

describe("latency", () => {
  it("delays the answer by at least latencyMs", async () => {
    mock.configure(EAST, { latencyMs: 80 });
    const started = performance.now();
    const r = await chat();
    // A little slack: Node timers may fire a millisecond early against performance.now().
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(r.json()).toMatchObject({ object: "chat.completion" });
  });
});

describe("credentials", () => {
  it("requireKey accepts the api-key header or a bearer of the key, and 401s the rest", async () => {
    mock.configure(EAST, { requireKey: "sekrit" });
    const denied = await chat(EAST, { "api-key": "wrong" });
    expect(denied.status).toBe(401);
    expect(denied.json()).toEqual({
      error: { message: "Access denied due to invalid subscription key or wrong API endpoint.", type: "invalid_request_error", code: "invalid_api_key" },
    });
    expect((await chat()).status).toBe(401);
    expect((await chat(EAST, { "api-key": "sekrit" })).status).toBe(200);
    expect((await chat(EAST, { authorization: "Bearer sekrit" })).status).toBe(200);
  });

  it("requireBearer wants any bearer token", async () => {
    mock.configure(EAST, { requireBearer: true });
    const denied = await chat(EAST, { "api-key": "k" });
    expect(denied.status).toBe(401);
    expect(denied.json()).toMatchObject({ error: { code: "invalid_api_key", message: expect.stringContaining("bearer") } });
    expect((await chat(EAST, { authorization: "Basic abc" })).status).toBe(401);
    expect((await chat(EAST, { authorization: "Bearer eyJ.any.thing" })).status).toBe(200);
  });

  it("checks credentials before spending an injected failure", async () => {
    mock.configure(EAST, { requireBearer: true, failNext: { status: 429, count: 1 } });
    expect((await chat()).status).toBe(401);
    expect((await chat(EAST, { authorization: "Bearer t" })).status).toBe(429);
    expect((await chat(EAST, { authorization: "Bearer t" })).status).toBe(200);
  });
});

describe("instances", () => {
  it("keep separate logs and behaviour, chosen by host name without port or case", async () => {
    mock.configure(WEST, { failAlways: { status: 500 } });
    const east = await send(mock.port, { host: "EastUS.Mock.Localhost:8443", path: "/v1/chat/completions?trace=1", body: { model: "a", messages: [{ role: "user", content: "x" }] } });
    expect(east.status).toBe(200);
    expect(east.headers["x-mock-instance"]).toBe(EAST);
    const west = await chat(WEST);
    expect(west.status).toBe(500);
    expect(west.headers["x-mock-instance"]).toBe(WEST);

    const [e] = mock.requests(EAST);
    expect(mock.requests(EAST)).toHaveLength(1);
    expect(e).toMatchObject({ method: "POST", path: "/v1/chat/completions", query: { trace: "1" }, body: { model: "a" } });
    expect(e?.headers.host).toBe("EastUS.Mock.Localhost:8443");
    expect(e?.at).toBeGreaterThan(Date.now() - 60_000);
    expect(mock.requests(`${WEST}:1234`).map((r) => r.body)).toEqual([{ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }]);
  });

  it("hands out copies of the log", async () => {
    await chat();
    const first = mock.requests(EAST);
    first[0]!.path = "/changed";
    first.push(first[0]!);
    expect(mock.requests(EAST).map((r) => r.path)).toEqual(["/v1/chat/completions"]);
  });

  it("merges configure() over the current behaviour, and reset() forgets everything", async () => {
    mock.configure(EAST, { requireKey: "k" });
    mock.configure(EAST, { latencyMs: 1 });
    expect((await chat()).status).toBe(401);
    mock.reset();
    expect(mock.requests(EAST)).toEqual([]);
    expect((await chat()).status).toBe(200);
  });

  it("refuses nonsense behaviour", () => {
    expect(() => mock.configure(EAST, { failNext: { status: 200, count: 1 } })).toThrow(/400-599/);
    expect(() => mock.configure(EAST, { latencyMs: -1 })).toThrow(/latencyMs/);
  });
});
