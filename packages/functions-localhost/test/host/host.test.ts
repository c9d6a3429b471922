/* eslint-disable @typescript-eslint/no-explicit-any -- JSON bodies of the fixture app are read loosely */
import http from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getProgrammingModel, getRegisteredFunctions, installCoreShim } from "../../src/core-shim.js";
import { type LocalHost, startLocalHost } from "../../src/host.js";

const fixtures = path.resolve(__dirname, "../fixtures/host-app");
const MAX_BODY = 64 * 1024;

const logs: { level: string; message: string }[] = [];
let host: LocalHost;

beforeAll(async () => {
  // Must precede the first require of @azure/functions (the fixtures load it).
  installCoreShim();
  process.env.SLOW_TICK_SCHEDULE = "* * * * * *";
  host = await startLocalHost({
    port: 0,
    functionFiles: [path.join(fixtures, "http.js"), path.join(fixtures, "timer.js")],
    maxRequestBodyBytes: MAX_BODY,
    inputBindingProviders: {
      durableClient: (binding, fn) => JSON.stringify({ taskHubName: "TestHub", bindingType: binding.type, fn: fn.name }),
    },
    builtinRoutes: [
      {
        method: "GET",
        path: "/.dev/ping",
        handle: (_req, res) => {
          res.writeHead(200, { "content-type": "text/plain" });
          res.end("pong");
        },
      },
      {
        method: "GET",
        path: "/.dev/broken",
        handle: () => {
          throw new Error("the route failed");
        },
      },
      {
        method: "POST",
        path: "/.dev/echo/*",
        handle: (req, res, body) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ url: req.url, length: body.length }));
        },
      },
    ],
    log: (level, message) => logs.push({ level, message }),
  });
});

afterAll(async () => {
  if (process.env.DUMP_HOST_LOGS) console.log(logs.map((l) => `${l.level} ${l.message}`).join("\n"));
  await host?.close();
});

async function getJson(p: string, init?: RequestInit): Promise<{ status: number; body: any; res: Response }> {
  const res = await fetch(host.url + p, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, res };
}

function expectProblem(r: { status: number; body: any; res: Response }, status: number): void {
  expect(r.status).toBe(status);
  expect(r.res.headers.get("content-type")).toBe("application/problem+json");
  expect(r.body).toMatchObject({ type: "about:blank", status });
  expect(typeof r.body.title).toBe("string");
  expect(typeof r.body.detail).toBe("string");
}

async function waitFor<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 4000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("core shim contract", () => {
  it("captures registrations with the http output keyed $return", () => {
    const fns = getRegisteredFunctions();
    const echo = fns.find((f) => f.name === "echo");
    expect(echo).toBeDefined();
    expect(echo!.trigger.binding).toMatchObject({ type: "httpTrigger", direction: "in", route: "echo", methods: ["POST"] });
    expect(echo!.metadata.bindings[echo!.trigger.key]).toBe(echo!.trigger.binding);
    expect(echo!.metadata.bindings.$return).toMatchObject({ type: "http", direction: "out" });
    expect(typeof echo!.callback).toBe("function");

    const tick = fns.find((f) => f.name === "tick");
    expect(tick!.trigger.binding).toMatchObject({ type: "timerTrigger", direction: "in", schedule: "* * * * * *" });
    expect(tick!.metadata.bindings.$return).toBeUndefined();

    const withClient = fns.find((f) => f.name === "withClient")!;
    expect(withClient.metadata.bindings.starter).toMatchObject({ type: "durableClient", direction: "in" });

    // Registration order is preserved across files.
    const names = fns.map((f) => f.name);
    expect(names.indexOf("getProject")).toBeLessThan(names.indexOf("tick"));
    expect(host.functions.map((f) => f.name)).toEqual(names);
  });

  it("receives the library's programming model and makes @azure/functions-core resolvable", () => {
    expect((getProgrammingModel() as { name: string }).name).toBe("@azure/functions");
    installCoreShim(); // idempotent
    const core = createRequire(__filename)("@azure/functions-core") as { registerFunction: unknown; version: string };
    expect(typeof core.registerFunction).toBe("function");
  });
});

describe("HTTP triggers", () => {
  it("passes route params (with constraints), query and repeated query keys", async () => {
    const r = await getJson("/api/projects/42?q=hello%20world&tag=a&tag=b");
    expect(r.status).toBe(200);
    expect(r.res.headers.get("content-type")).toBe("application/json");
    expect(r.body).toEqual({ fn: "getProject", id: "42", q: "hello world", tags: ["a,b"] });
  });

  it("prefers literals over parameters and constrained over unconstrained parameters", async () => {
    expect((await getJson("/api/projects/mine")).body).toEqual({ fn: "myProjects" });
    expect((await getJson("/api/PROJECTS/Mine")).body).toEqual({ fn: "myProjects" });
    expect((await getJson("/api/projects/7")).body.fn).toBe("getProject");
    expect((await getJson("/api/projects/abc")).body).toEqual({ fn: "projectByName", name: "abc" });
    // PUT only exists on the unconstrained route: method selection happens before precedence.
    expect((await getJson("/api/projects/mine", { method: "PUT" })).body).toEqual({ fn: "projectByName", name: "mine" });
  });

  it("returns 404 problem+json when a constraint fails or nothing matches", async () => {
    expectProblem(await getJson("/api/items/not-a-guid"), 404);
    expectProblem(await getJson("/api/does/not/exist"), 404);
    expectProblem(await getJson("/nope"), 404);
    expectProblem(await getJson("/api/opt/abc1"), 404);
  });

  it("matches complex segments, guid constraints, optional parameters and catch-alls", async () => {
    const rotated = await getJson("/api/items/key-1:rotate", { method: "POST" });
    expect(rotated.body).toEqual({ fn: "rotateItem", id: "key-1" });

    const guid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const item = await getJson(`/api/items/${guid}`, { method: "DELETE" });
    expect(item.body).toEqual({ fn: "getItem", id: guid, method: "DELETE" });

    expect((await getJson("/api/files/a/b%20c/d.txt")).body).toEqual({ fn: "files", path: "a/b c/d.txt" });
    expect((await getJson("/api/files")).body).toEqual({ fn: "files", path: null });

    expect((await getJson("/api/opt")).body).toEqual({ params: {} });
    expect((await getJson("/api/opt/abc")).body).toEqual({ params: { name: "abc" } });
  });

  it("returns 405 with an Allow header when the path matches but the method does not", async () => {
    const r = await getJson("/api/items/key-1:rotate");
    expectProblem(r, 405);
    expect(r.res.headers.get("allow")).toBe("POST");
    const r2 = await getJson("/api/echo", { method: "PATCH" });
    expectProblem(r2, 405);
    expect(r2.res.headers.get("allow")).toBe("POST");
  });

  it("round-trips a JSON body, headers and the absolute URL; context logs reach the log function", async () => {
    const r = await getJson("/api/echo?x=1", {
      method: "POST",
      headers: { "content-type": "application/json", "X-Custom": "yes" },
      body: JSON.stringify({ hello: "wörld", n: [1, 2, 3] }),
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      body: { hello: "wörld", n: [1, 2, 3] },
      contentType: "application/json",
      custom: "yes",
      method: "POST",
      url: `${host.url}/api/echo?x=1`,
      functionName: "echo",
    });
    expect(r.body.invocationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(logs).toContainEqual({ level: "info", message: '[echo] echo called with {"hello":"wörld","n":[1,2,3]}' });
    expect(logs).toContainEqual({ level: "warn", message: "[echo] echo warning" });
  });

  it("round-trips binary bodies", async () => {
    const res = await fetch(`${host.url}/api/binary`, { method: "POST", body: new Uint8Array([1, 2, 3, 255]) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([255, 3, 2, 1]);
  });

  it("defaults the route to the function name and the methods to GET and POST", async () => {
    expect(await (await fetch(`${host.url}/api/defaultRoute`)).text()).toBe("default GET");
    expect(await (await fetch(`${host.url}/api/defaultroute`, { method: "POST", body: "x" })).text()).toBe("default POST");
    const r = await getJson("/api/defaultRoute", { method: "DELETE" });
    expectProblem(r, 405);
    expect(r.res.headers.get("allow")).toBe("GET, POST");
  });

  it("returns multi-value headers and cookies", async () => {
    const res = await fetch(`${host.url}/api/cookies`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("cookies set");
    expect(res.headers.get("x-multi")).toBe("a, b");
    expect(res.headers.get("x-single")).toBe("1");
    const cookies = res.headers.getSetCookie();
    expect(cookies).toHaveLength(2);
    expect(cookies[0]).toBe("session=abc%20123; path=/; secure; samesite=strict; httponly");
    expect(cookies[1]).toBe("theme=dark; max-age=3600");
  });

  it("gives GET, HEAD and POST handlers the request's URL, method, headers, body and clone", async () => {
    const headers = { "x-custom": "yes", "content-type": "text/plain" };
    const get = await getJson("/api/inspect?q=1&q=2", { headers });
    expect(get.status).toBe(200);
    expect(get.res.headers.get("x-method")).toBe("GET");
    const expected = {
      url: `${host.url}/api/inspect?q=1&q=2`,
      custom: "yes",
      query: ["1,2"], // repeated keys comma-joined, as the host sends them
      bodyUsed: false,
      clone: { url: `${host.url}/api/inspect?q=1&q=2`, custom: "yes" },
      user: null,
    };
    expect(get.body).toStrictEqual({ ...expected, method: "GET", bodyIsNull: true, text: "" });
    const post = await getJson("/api/inspect?q=1&q=2", { method: "POST", headers, body: "sent" });
    expect(post.body).toStrictEqual({ ...expected, method: "POST", bodyIsNull: false, text: "sent", bodyUsed: true });
    const head = await fetch(`${host.url}/api/inspect`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("x-method")).toBe("HEAD");
  });

  it("converts an HTTP function's other outputs next to its response", async () => {
    const res = await fetch(`${host.url}/api/with-output`, { method: "POST" });
    expect(res.status).toBe(202);
    expect(await res.text()).toBe("queued");
    const out = await host.invokeDetailed("withOutput", { method: "POST", url: "http://localhost/api/with-output", headers: {}, params: {} });
    expect(out.outputs).toStrictEqual({ queued: { n: 1 } });
    expect(out.returnValue).toMatchObject({ statusCode: "202", headers: { "content-type": "text/plain;charset=UTF-8" } });
  });

  it("answers 204 when the handler returns nothing", async () => {
    const res = await fetch(`${host.url}/api/nothing`, { method: "POST" });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
  });

  it("turns a throwing handler into 500 problem+json without leaking the error, and logs it", async () => {
    const r = await getJson("/api/boom");
    expectProblem(r, 500);
    expect(JSON.stringify(r.body)).not.toContain("kaboom");
    const line = logs.find((l) => l.level === "error" && l.message.includes("kaboom secret detail"));
    expect(line?.message).toMatch(/Functions\.boom.*Id=[0-9a-f-]{36}/);
  });

  it("rejects bodies over the limit with 413 before invoking (content-length and chunked)", async () => {
    const big = Buffer.alloc(MAX_BODY + 1, 0x61);
    const r = await getJson("/api/echo", { method: "POST", headers: { "content-type": "application/json" }, body: big });
    expectProblem(r, 413);

    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${host.url}/api/echo`);
      const req = http.request(
        { hostname: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "transfer-encoding": "chunked" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 4; i++) req.write(Buffer.alloc(MAX_BODY / 2, 0x62));
      req.end();
    });
    expect(status).toBe(413);
    expect(logs.some((l) => l.message.includes("echo called") && l.message.includes("bbbb"))).toBe(false);
  });

  it("checks the Host of every request on a kept-alive connection, whatever came before", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const url = new URL(`${host.url}/api/projects/mine`);
    const get = (hostHeader: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({ hostname: url.hostname, port: url.port, path: url.pathname, agent, headers: { host: hostHeader } }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end();
      });
    try {
      const statuses = [];
      for (const h of [url.host, "evil.example", url.host, url.host, `EVIL.example:${url.port}`, "localhost"]) statuses.push(await get(h));
      expect(statuses).toEqual([200, 421, 200, 200, 421, 200]);
    } finally {
      agent.destroy();
    }
  });

  it("feeds non-trigger inputs from inputBindingProviders", async () => {
    const r = await getJson("/api/client");
    expect(r.body).toEqual({ client: { taskHubName: "TestHub", bindingType: "durableClient", fn: "withClient" } });
  });

  it("runs preInvocation and postInvocation hooks", async () => {
    const res = await fetch(`${host.url}/api/hooked`);
    expect(await res.text()).toBe("replaced by hook, seen by post hook");
  });

  it("serves builtin routes (exact and prefix) before functions", async () => {
    expect(await (await fetch(`${host.url}/.dev/ping`)).text()).toBe("pong");
    const r = await getJson("/.dev/echo/a/b", { method: "POST", body: "12345" });
    expect(r.body).toEqual({ url: "/.dev/echo/a/b", length: 5 });
    const wrong = await getJson("/.dev/ping", { method: "POST" });
    expectProblem(wrong, 405);
    expect(wrong.res.headers.get("allow")).toBe("GET");
  });

  it("a builtin route that throws answers 500 problem+json and is logged by path: its query (a key, a token) is not", async () => {
    expectProblem(await getJson("/.dev/broken?code=system-key-value&token=approval-token-value"), 500);
    const line = logs.find((l) => l.message.startsWith("Unhandled error serving GET /.dev/broken"));
    expect(line?.message).toMatch(/^Unhandled error serving GET \/\.dev\/broken: Error: the route failed\n/);
    expect(JSON.stringify(logs)).not.toMatch(/system-key-value|approval-token-value/);
  });
});

describe("timers and generic invocation", () => {
  it("fires a * * * * * * timer within a few seconds with the camel-cased timer payload", async () => {
    const state = await waitFor(
      async () => (await getJson("/api/tick-state")).body,
      (s) => s.ticks >= 2,
    );
    expect(state.ticks).toBeGreaterThanOrEqual(2);
    expect(state.lastTimer).toMatchObject({ isPastDue: false, schedule: { adjustForDST: true } });
    expect(Date.parse(state.lastTimer.scheduleStatus.next)).toBeGreaterThan(Date.parse(state.lastTimer.scheduleStatus.last));
    expect(logs.some((l) => l.message.startsWith("[tick] tick"))).toBe(true);
  });

  it("logs failing timer runs and keeps serving", async () => {
    await waitFor(
      async () => logs.some((l) => l.level === "error" && l.message.includes("timer boom")),
      (v) => v,
    );
    expect(logs.some((l) => l.level === "error" && l.message.includes("Functions.failingTimer"))).toBe(true);
    expect((await getJson("/api/projects/1")).status).toBe(200);
  });

  it("honours runOnStartup and %Setting% schedules, and never overlaps runs of one timer", async () => {
    const state = await waitFor(
      async () => (await getJson("/api/tick-state")).body,
      (s) => s.slowStarts >= 1 && s.startup >= 1,
    );
    expect(state.startup).toBe(1);
    expect(state.slowStarts).toBeGreaterThanOrEqual(1);
    // slowTick runs 2.5 s on a 1 s schedule: the next occurrences must be skipped, not overlapped.
    const skipped = await waitFor(
      async () => logs.some((l) => l.message.startsWith("[slowTick] previous run still in progress")),
      (v) => v,
    );
    expect(skipped).toBe(true);
    expect((await getJson("/api/tick-state")).body.slowMaxActive).toBe(1);
  });

  it("runs a timer through POST /admin/functions/{name} and invokeTimer()", async () => {
    const before = (await getJson("/api/tick-state")).body.manual;
    const res = await fetch(`${host.url}/admin/functions/manualTimer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(202);
    const after = await waitFor(
      async () => (await getJson("/api/tick-state")).body.manual,
      (m) => m === before + 1,
    );
    expect(after).toBe(before + 1);
    await host.invokeTimer("manualTimer");
    expect((await getJson("/api/tick-state")).body.manual).toBe(before + 2);

    expectProblem(await getJson("/admin/functions/noSuchFunction", { method: "POST" }), 404);
    expectProblem(await getJson("/admin/functions/manualTimer"), 405);
  });

  it("invoke() runs a generic trigger through the worker path", async () => {
    const out = await host.invoke("echoActivity", JSON.stringify({ a: 1 }), { triggerMetadata: { InstanceId: "abc" } });
    expect(out).toMatchObject({ got: { a: 1 }, metadata: { instanceId: "abc" } });

    expect(await host.invoke("stringActivity", "plain text")).toBe("echo:string:plain text");
    // A JSON-looking string is parsed by the library, as the worker does with RpcTypedData.string.
    expect(await host.invoke("stringActivity", "42")).toBe("echo:number:42");
    expect(await host.invoke("echoActivity", { nested: true })).toMatchObject({ got: { nested: true } });

    const detailed = await host.invokeDetailed("echoActivity", "x");
    expect(detailed.result).toMatchObject({ got: "x" });
    expect(detailed.rawReturnValue).toHaveProperty("json");

    await expect(host.invoke("failingActivity", null)).rejects.toThrow("activity failed");
    await expect(host.invoke("noSuchFunction", null)).rejects.toThrow(/noSuchFunction/);
  });

  it("invoke() can drive an HTTP function with an RpcHttpData value", async () => {
    const out = (await host.invoke("getProject", {
      method: "GET",
      url: "http://localhost/api/projects/5?q=z",
      headers: {},
      params: { id: "5" },
    })) as { statusCode: string; body: { bytes: Uint8Array } };
    expect(out.statusCode).toBe("200");
    expect(JSON.parse(Buffer.from(out.body.bytes).toString("utf8"))).toMatchObject({ fn: "getProject", id: "5", q: "z" });
  });
});
