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
const chat = () => send(mock.port, { host: EAST, path: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: "hi" }] } });
// Control routes answer whatever the Host, so a person can hit them with plain curl.
const ctl = (method: string, path: string, body?: unknown) =>
  send(mock.port, { host: `127.0.0.1:${mock.port}`, method, path, ...(body === undefined ? {} : { body }) });

describe("control routes", () => {
  it("configure an instance, show its behaviour, and clear fields with null", async () => {
    const set = await ctl("POST", `/.mock/instances/${EAST}`, { failAlways: { status: 502 }, latencyMs: 1 });
    expect(set.status).toBe(200);
    expect(set.json()).toEqual({ host: EAST, behaviour: { latencyMs: 1, failAlways: { status: 502 } } });
    expect((await chat()).status).toBe(502);

    const cleared = await ctl("POST", `/.mock/instances/EastUS.mock.localhost`, { failAlways: null });
    expect(cleared.json()).toStrictEqual({ host: EAST, behaviour: { latencyMs: 1 } });
    expect((await ctl("GET", `/.mock/instances/${EAST}`)).json()).toEqual({ host: EAST, behaviour: { latencyMs: 1 } });
    expect((await chat()).status).toBe(200);
  });

  it("show the remaining failNext count", async () => {
    await ctl("POST", `/.mock/instances/${EAST}`, { failNext: { status: 429, count: 2 } });
    await chat();
    expect((await ctl("GET", `/.mock/instances/${EAST}`)).json()).toEqual({ host: EAST, behaviour: { latencyMs: 0, failNext: { status: 429, count: 1 } } });
  });

  it("return an instance's request log, and are not logged themselves", async () => {
    await chat();
    const r = await ctl("GET", `/.mock/instances/${EAST}/requests`);
    expect(r.status).toBe(200);
    const log = r.json<{ method: string; path: string; body: unknown; at: number }[]>();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ method: "POST", path: "/v1/chat/completions", body: { model: "m" } });
    expect(mock.requests(`127.0.0.1:${mock.port}`)).toEqual([]);
    expect((await ctl("GET", "/.mock/instances/unknown.mock.localhost/requests")).json()).toEqual([]);
  });

  it("reset everything", async () => {
    mock.configure(EAST, { requireKey: "k" });
    await chat();
    const r = await ctl("POST", "/.mock/reset");
    expect(r.json()).toEqual({ reset: true });
    expect(mock.requests(EAST)).toEqual([]);
    expect((await chat()).status).toBe(200);
  });

  it("refuse bad behaviour with a message", async () => {
    const cases: [unknown, string][] = [
      [{ failNext: { status: 429 } }, "failNext.count must be an integer ≥ 0"],
      [{ failnext: { status: 429, count: 1 } }, 'unknown behaviour field "failnext" (known: latencyMs, failNext, failAlways, requireKey, requireBearer)'],
      [[1], "the behaviour must be a JSON object"],
      [{ requireBearer: "yes" }, "requireBearer must be a boolean"],
    ];
    for (const [body, message] of cases) {
      const r = await ctl("POST", `/.mock/instances/${EAST}`, body);
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({ error: { code: "InvalidRequestBody", message } });
    }
    const broken = await send(mock.port, { method: "POST", path: `/.mock/instances/${EAST}`, raw: "{" });
    expect(broken.json()).toMatchObject({ error: { code: "InvalidRequestBody" } });
    expect(mock.requests(EAST)).toEqual([]);
  });

  it("404 unknown control routes with the list of routes", async () => {
    const r = await ctl("DELETE", "/.mock/instances/x");
    expect(r.status).toBe(404);
    expect(r.json()).toMatchObject({ error: { code: "NotFound", message: expect.stringContaining("POST /.mock/reset") } });
  });
});

describe("server lifecycle", () => {
  it("listens on the requested port and closes with a request still sleeping", async () => {
    const probe = await startMockBackends();
    const port = probe.port;
    await probe.close();
    const fixed = await startMockBackends({ port });
    expect(fixed.port).toBe(port);
    expect(fixed.url).toBe(`http://127.0.0.1:${port}`);
    fixed.configure(EAST, { latencyMs: 60_000 });
    const pending = send(port, { host: EAST, path: "/v1/chat/completions", body: { messages: [{ role: "user", content: "x" }] } });
    await new Promise((r) => setTimeout(r, 50));
    await fixed.close();
    await expect(pending).rejects.toThrow(/socket hang up|ECONNRESET/);
  });
});
